"""From rows of speech and text to what Whisper trains on: log-mel features and label ids.

The steps, in the order notebook 03 and `python -m tools.train` run them: `check_training_split` (never "test"),
`drop_eval_overlap`, `filter_rows` (every drop counted by reason), `configure_language`, and `SpeechCollator`,
which builds each batch when the Trainer asks for it. Rows stay light until then (a path and a sentence), so
memory and disk stay flat whatever the size of the data.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import datasets
import numpy as np

from helpers.audio import SAMPLING_RATE
from helpers.data import SKIP_BAD_AUDIO, SKIP_MISSING, decode_clip
from helpers.inference import is_multilingual
from helpers.inference import WINDOW_SECONDS as MAX_AUDIO_SECONDS  # longer clips would be cut without their text
MAX_LABEL_TOKENS = 448  # the decoder's max_target_positions: longer label sequences crash training

REASON_EMPTY = "empty transcript"
REASON_AUDIO = f"audio over {MAX_AUDIO_SECONDS:g} s"
REASON_LABELS = f"labels over {MAX_LABEL_TOKENS} tokens"
REASON_SENTENCE = "sentence also in evaluation split"
REASON_CLIP = "clip also in evaluation split"

TEST_SPLIT_RULE = (
    "The test split is never used for training: it is held out so that notebook 04 can measure the "
    "fine-tuned model on speech it has never seen (rule 'test is for evaluation only' of this curriculum). "
    "Train on 'train' or 'train+dev' instead."
)


# ---------------------------------------------------------------------------------------------- splits
def check_training_split(split: str) -> str:
    """Return the split unchanged, or raise ValueError if it would put test data into training."""
    parts = [p.strip().lower() for p in str(split).split("+") if p.strip()]
    if not parts:
        raise ValueError(f"Empty split name {split!r}: expected e.g. 'train' or 'train+dev'.")
    if "test" in parts:
        raise ValueError(f"Refusing to train on split {split!r}. {TEST_SPLIT_RULE}")
    return split


# --------------------------------------------------------------------------------------------- reports
@dataclass
class DropReport:
    """Rows removed by a step, counted by reason, with enough of each row to find it again."""

    step: str
    rows_in: int | None = None
    counts: Counter = field(default_factory=Counter)
    dropped: list[dict] = field(default_factory=list)
    # what the count covers when rows_in is not known ahead
    note: str = "(streamed: counted while training reads the data; the totals go to training.json)"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def rows_out(self) -> int | None:
        return None if self.rows_in is None else self.rows_in - self.total

    def add(self, reason: str, row: dict, index: int | str | None = None, detail: str = "") -> None:
        """Count one row under `reason`; the written record says `detail` when given (the reason in full)."""
        self.counts[reason] += 1
        self.dropped.append({"step": self.step, "reason": detail or reason, "row": index,
                             "path": clip_key(row.get("path")),
                             "sentence": str(row.get("sentence") or "")[:120]})

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "dropped": self.total,
                "by_reason": dict(sorted(self.counts.items()))}

    def summary(self, reasons: Iterable[str] = ()) -> str:
        """A few aligned lines: every known reason (also at zero), then what is left."""
        names = list(dict.fromkeys([*reasons, *sorted(self.counts)]))
        width = max([len(n) for n in names] + [10])
        lines = [f"{self.step}:"] + [f"  {name:<{width}}  {self.counts.get(name, 0):>6}" for name in names]
        if self.rows_in is not None:
            lines.append(f"  {'kept':<{width}}  {self.rows_out:>6} of {self.rows_in}")
        else:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


DROPPED_ROWS = "dropped_rows.csv"  # run_dir file: every row a step left out, with its reason


def write_drops(reports: Iterable[DropReport], path: str | Path) -> Path:
    """Write every dropped row of the given reports to one CSV file (header only when nothing was dropped)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "reason", "row", "path", "sentence"])
        writer.writeheader()
        for report in reports:
            writer.writerows(report.dropped)
    return path


def training_subset(rows, max_samples: int | None, seed: int, streaming: bool = False):
    """A random subset of `max_samples` training rows (all rows for None or 0), to try things quickly."""
    if not max_samples:
        return rows
    if streaming:
        return rows.shuffle(seed=seed, buffer_size=1000).take(max_samples)
    return rows.shuffle(seed=seed).select(range(min(max_samples, len(rows))))


def _metadata_rows(ds, columns: list[str]) -> list[dict]:
    """The given columns of every row, read without decoding audio."""
    present = [c for c in columns if c in ds.column_names]
    if not present:
        return [{} for _ in range(len(ds))]
    table = ds.select_columns(present).to_dict()
    return [dict(zip(present, values)) for values in zip(*(table[c] for c in present))]


# ------------------------------------------------------------------------------------- eval overlap
# Unicode categories that do not make two sentences different: punctuation (P*), separators (Z*), control and
# format characters (Cc, Cf).
IGNORED_IN_KEYS = {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Zs", "Zl", "Zp", "Cc", "Cf"}


def sentence_key(text: str) -> str:
    """A sentence reduced for comparison (a key, not text to show): two sentences are the same when they differ
    only in Unicode form (NFKC), case, punctuation, spacing or invisible format characters (a zero-width joiner, a
    soft hyphen); letters, marks, digits and symbols ($, €, +) count. Spacing is dropped altogether, so that scripts
    written without spaces (Chinese, Thai) compare the same around punctuation. Notebook 01 uses it too."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch) not in IGNORED_IN_KEYS and not ch.isspace())


def clip_key(path: Any) -> str:
    """Clips are compared by file name: releases put the same clip under different folders."""
    return os.path.basename(str(path or "")).strip()


def drop_eval_overlap(train_ds, eval_ds):
    """Drop training rows whose sentence or clip also appears in `eval_ds`; return (train_ds, DropReport).

    Older Common Voice releases put sentences in train that newer releases use in test, so a model trained on
    an old train split and scored on a new test split would be scored on sentences it memorised.
    """
    eval_rows = _metadata_rows(eval_ds, ["sentence", "path"])
    eval_sentences = {sentence_key(r.get("sentence", "")) for r in eval_rows} - {""}
    eval_clips = {clip_key(r.get("path")) for r in eval_rows} - {""}

    def reason_for(row: dict) -> str | None:
        if clip_key(row.get("path")) in eval_clips:
            return REASON_CLIP
        return REASON_SENTENCE if sentence_key(row.get("sentence", "")) in eval_sentences else None

    return _apply(train_ds, lambda rows: [reason_for(row) for row in rows], "overlap with evaluation split",
                  ["sentence", "path"])


def _apply(ds, decide: Callable[[list[dict]], list[str | None]], step: str, columns: list[str]):
    """Keep the rows for which `decide` (all rows at once) gives None; count the others in a DropReport."""
    report = DropReport(step)
    if isinstance(ds, datasets.IterableDataset):
        # A stream cannot be counted ahead: the report fills in while training reads the data, each row once
        # (training may read the stream several times).
        seen: dict[tuple, int] = {}

        def keep(row: dict) -> bool:
            reason = decide([row])[0]
            key = (str(row.get("path") or ""), str(row.get("sentence") or ""))
            if key not in seen:
                seen[key] = len(seen)
                report.rows_in = len(seen)
                if reason is not None:
                    report.add(reason, row, seen[key])
            return reason is None

        return ds.filter(keep), report
    rows = _metadata_rows(ds, columns)
    report.rows_in = len(rows)
    kept = []
    for index, (row, reason) in enumerate(zip(rows, decide(rows))):
        if reason is None:
            kept.append(index)
        else:
            report.add(reason, row, index)
    return (ds if len(kept) == len(rows) else ds.select(kept)), report


# --------------------------------------------------------------------------------------------- filters
def filter_rows(ds, tokenizer, *, max_label_tokens: int = MAX_LABEL_TOKENS,
                text_transform: Callable[[str], str] | None = None, step: str = "filters"):
    """Drop rows Whisper cannot learn from, deciding from the text and known durations (no audio is read);
    return (ds, DropReport) with counts per reason.

    - empty transcripts, also when only punctuation is left ("...", "¿?") or nothing after `text_transform`,
    - labels over `max_label_tokens` tokens, prefix and end token included (longer sequences crash training),
    - audio over 30 s where the row's `duration` is known (Common Voice's clip_durations.tsv): Whisper would hear
      only the start of the speech but learn all its text. Clips of unknown duration are measured when a batch
      decodes them, and left out then (`SpeechCollator`, `read_skips`).

    `tokenizer` must already carry the language/task prefix (see `configure_language`).
    """

    def decide(rows: list[dict]) -> list[str | None]:
        sentences = [str(row.get("sentence") or "") for row in rows]
        sentences = [text_transform(s) for s in sentences] if text_transform is not None else sentences
        sentences = [s if any(ch.isalnum() for ch in s) else "" for s in sentences]  # punctuation only: empty
        lengths = iter(label_lengths(tokenizer, [s for s in sentences if s.strip()]))
        out = []
        for row, sentence in zip(rows, sentences):
            if not sentence.strip():
                out.append(REASON_EMPTY)
                continue
            too_long = next(lengths) > max_label_tokens
            duration = row.get("duration")  # None or NaN when unknown (NaN > 30 is False)
            out.append(REASON_AUDIO if duration is not None and float(duration) > MAX_AUDIO_SECONDS
                       else REASON_LABELS if too_long else None)
        return out

    return _apply(ds, decide, step, ["sentence", "path", "duration"])


FILTER_REASONS = (REASON_EMPTY, REASON_AUDIO, REASON_LABELS)
READ_REASONS = (SKIP_BAD_AUDIO, SKIP_MISSING, REASON_AUDIO)  # what reading a batch's clips can find
READ_STEP = "while reading audio"

OVERLAP_REASONS = (REASON_SENTENCE, REASON_CLIP)


def reasons_for(report: DropReport) -> tuple[str, ...]:
    """The reasons a report of this step can give (its summary lists them, at zero too)."""
    if report.step == READ_STEP:
        return READ_REASONS
    return OVERLAP_REASONS if report.step.startswith("overlap") else FILTER_REASONS


# -------------------------------------------------------------------------------------------- language
def set_label_prefix(tokenizer, language_name: str | None, task: str | None = "transcribe") -> None:
    """The tokens every label starts with: <|startoftranscript|><|xx|><|transcribe|><|notimestamps|> (an
    English-only model's labels have no language or task token: pass None for both)."""
    tokenizer.set_prefix_tokens(language=language_name, task=task, predict_timestamps=False)


def configure_language(processor, model, language: str | None) -> str | None:
    """Set the language/task prefix of the training labels (the tokenizer's prefix tokens) and of `generate()` (the
    generation config's `language`/`task`: transformers 5 has no `forced_decoder_ids`); return the Whisper language
    name. `language` is a Common Voice locale ("es") or a Whisper name ("spanish")."""
    from helpers.languages import whisper_language

    name = whisper_language(language) if language else None
    multilingual = is_multilingual(model)
    if not multilingual and name not in (None, "english"):
        raise ValueError(
            f"The model is English-only (a '.en' checkpoint) but language {language!r} was asked for: "
            "use a multilingual checkpoint such as models/whisper-base or openai/whisper-small."
        )
    prefix, task = (name, "transcribe") if multilingual else (None, None)  # English-only: no language/task token
    set_label_prefix(processor.tokenizer, prefix, task)
    gen = model.generation_config
    gen.forced_decoder_ids, gen.language, gen.task = None, prefix, task
    if multilingual and hasattr(model.config, "forced_decoder_ids"):
        model.config.forced_decoder_ids = None
    return name


# ------------------------------------------------------------------------------------------- features
def log_mel(arrays: list[np.ndarray], feature_extractor) -> np.ndarray:
    """Whisper's log-mel features of a batch of clips, equal to `feature_extractor(arrays).input_features`.

    Whisper pads every clip with silence to 30 s before its STFT. Silent frames have power 0, so the STFT runs here
    only over the speech plus one window, and the silent frames are filled in: a 5 s clip needs a sixth of the
    work (benchmarks/bench_prepare.py). Falls back to the feature extractor when it dithers or normalises.
    """
    import torch

    fe = feature_extractor
    # One thread: many small transforms, where extra threads only add hand-over costs (3-10x slower on a busy
    # machine); DataLoader workers run with one thread anyway.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if getattr(fe, "dither", 0.0) or not hasattr(fe, "mel_filters") or getattr(fe, "do_normalize", False):
            return fe(arrays, sampling_rate=fe.sampling_rate, return_tensors="np").input_features.astype(np.float32)
        n_fft, hop, n_samples, frames = fe.n_fft, fe.hop_length, fe.n_samples, fe.nb_max_frames
        window = torch.hann_window(n_fft)
        filters_t = torch.from_numpy(np.ascontiguousarray(fe.mel_filters.T)).float()  # (mels, n_fft // 2 + 1)
        out = np.empty((len(arrays), filters_t.shape[0], frames), dtype=np.float32)
        for i, array in enumerate(arrays):
            array = np.asarray(array, dtype=np.float32)[:n_samples]
            # speech + at least one window of silence, in whole hops: every frame that overlaps speech is computed
            # from exactly the samples it would see in the 30 s padded clip.
            length = min(n_samples, (len(array) + n_fft + hop - 1) // hop * hop)
            wave = torch.zeros(length)
            wave[: len(array)] = torch.tensor(array)
            stft = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
            # the STFT of a whole 30 s clip has one frame more than Whisper keeps
            used = min(frames, stft.shape[-1] - (1 if length == n_samples else 0))
            power = torch.zeros(n_fft // 2 + 1, frames)
            power[:, :used] = stft[:, :used].abs() ** 2
            log_spec = torch.clamp(filters_t @ power, min=1e-10).log10()
            log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
            out[i] = ((log_spec + 4.0) / 4.0).numpy()
        return out
    finally:
        torch.set_num_threads(threads)


# -------------------------------------------------------------------------------------------- collator
READ_SKIPS = "skipped_while_reading"  # run_dir folder: clips found unusable when a batch decoded them


@dataclass
class SpeechCollator:
    """Build a training (or evaluation) batch from light rows, in the DataLoader's worker processes.

    For each row: decode the clip, compute its log-mel features (`log_mel`), tokenise its sentence (prefix and end
    token added). Features are always 30 s long, so they only need stacking; labels are right-padded with -100
    (ignored by the loss). The leading <|startoftranscript|> is removed: the model adds it itself when it shifts
    the labels right to make the decoder's input. A clip that turns out to be unusable (corrupt, or too long where
    no duration was known up front) is left out of its batch and recorded in `skip_dir` (one CSV file per process).
    """

    processor: Any
    text_transform: Callable[[str], str] | None = None
    skip_dir: str | Path | None = None
    max_audio_seconds: float = MAX_AUDIO_SECONDS
    label_pad: int = -100

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        arrays, sentences = [], []
        for row in rows:
            array, reason = decode_clip(row)
            if array is not None and len(array) > self.max_audio_seconds * SAMPLING_RATE:
                array, reason = None, REASON_AUDIO
            if array is None:
                self._record(row, reason)
                continue
            arrays.append(array)
            sentence = str(row["sentence"])
            sentences.append(self.text_transform(sentence) if self.text_transform else sentence)
        if not arrays:
            raise RuntimeError(
                f"Every clip of a batch was unusable ({', '.join(str(r.get('path')) for r in rows)}); see "
                f"{self.skip_dir or 'the messages above'}. Check the dataset's clips (notebook 01 lists bad ones)."
            )
        features = torch.from_numpy(log_mel(arrays, self.processor.feature_extractor))
        tokenizer = self.processor.tokenizer
        start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        labels = [ids[1:] if ids and ids[0] == start else ids for ids in tokenizer(sentences).input_ids]
        padded = torch.full((len(labels), max(len(ids) for ids in labels)), self.label_pad, dtype=torch.long)
        for i, ids in enumerate(labels):
            padded[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return {"input_features": features, "labels": padded}

    def _record(self, row: dict, reason: str) -> None:
        record = {"split": row.get("split", ""), "row": row.get("row"), "path": clip_key(row.get("path")),
                  "reason": reason, "sentence": str(row.get("sentence") or "")[:120]}
        if self.skip_dir is None:
            print(f"skipped {record['path']}: {reason}", flush=True)
            return
        path = Path(self.skip_dir) / f"{os.getpid()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(record))
            if handle.tell() == 0:  # a new file
                writer.writeheader()
            writer.writerow(record)


def read_skips(skip_dir: str | Path) -> DropReport:
    """The clips left out of batches so far (all processes, each clip once), as a DropReport."""
    report = DropReport(READ_STEP,
                        note="(clips found unusable when their batch was read; only clips read so far count)")
    seen = set()
    for path in sorted(Path(skip_dir).glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                key = (record["split"], record["row"], record["path"])
                if key not in seen:
                    seen.add(key)
                    report.add(record["reason"].split(":")[0], record, f"{record['split']}:{record['row']}",
                               detail=record["reason"])
    report.dropped.sort(key=lambda d: str(d["row"]))
    return report


def label_lengths(tokenizer, sentences: Iterable[str], chunk: int = 4096) -> list[int]:
    """Token counts of the labels (prefix and end token included), tokenised in chunks."""
    sentences, out = list(sentences), []
    for start in range(0, len(sentences), chunk):
        out += [len(ids) for ids in tokenizer(sentences[start:start + chunk]).input_ids]
    return out
