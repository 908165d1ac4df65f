"""Looking at a speech dataset before training on it (notebook 01): sizes, lengths, characters, leaks, mixing.

Functions take `datasets.Dataset` objects as returned by `helpers.data.load_split`, or plain lists of row dicts,
and return plain data so that tests can check them and the notebook only prints and plots.
"""

from __future__ import annotations

import shutil
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from helpers.files import read_table

# The limits and the "same sentence" rule that training applies, so that what this notebook counts is what
# notebook 03 drops: clips over 30 s (Whisper's window), labels over 448 tokens (the decoder's positions).
from helpers.prepare import MAX_AUDIO_SECONDS as MAX_SECONDS
from helpers.prepare import MAX_LABEL_TOKENS, label_lengths, sentence_key

# Each Unicode general category in words (https://www.unicode.org/reports/tr44/#General_Category_Values) and what
# it asks of the normalisation step (notebook 02): category -> [meaning, question].
CATEGORIES = read_table("unicode_categories.tsv")

SPLITS = ("train", "dev", "test")


def sample_folder(language: str) -> Path:
    """The embedded sample's folder for `language`, or the English one when the sample lacks the language."""
    from helpers.sources import SAMPLE_DIR

    folder = SAMPLE_DIR / language
    return folder if folder.is_dir() else SAMPLE_DIR / "en"


# ----------------------------------------------------------------------------------------------- sizes
def format_duration(seconds: float) -> str:
    """Seconds in the unit a person reads best: '42.0 s', '12.5 min', '3.20 h'."""
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _column(ds, name: str) -> list | None:
    if isinstance(ds, Sequence) and not hasattr(ds, "column_names"):
        values = [row.get(name) for row in ds]
        return values if any(v is not None for v in values) else None
    return list(ds[name]) if name in ds.column_names else None


def durations(ds) -> np.ndarray:
    """Clip lengths in seconds: the `duration` column where there is one, else computed from the audio."""
    values = _column(ds, "duration")
    if values is not None and all(v is not None for v in values):
        return np.asarray(values, dtype=float)
    audio = _column(ds, "audio") or []
    return np.asarray([len(a["array"]) / float(a["sampling_rate"]) for a in audio], dtype=float)


def split_summary(ds) -> dict:
    """Clips, total seconds and hours, distinct speakers (None when the source has no speaker ids), longest clip."""
    secs = durations(ds)
    speakers = _column(ds, "client_id")
    return {
        "clips": int(len(secs)),
        "seconds": round(float(secs.sum()), 2),
        "hours": round(float(secs.sum()) / 3600, 4),
        "speakers": len(set(speakers)) if speakers is not None else None,
        "mean_seconds": round(float(secs.mean()), 2) if len(secs) else 0.0,
        "max_seconds": round(float(secs.max()), 2) if len(secs) else 0.0,
    }


def summary_rows(summaries: Mapping[str, Mapping]) -> list[dict]:
    """`split_summary` results as table rows with readable units."""
    rows = []
    for split, item in summaries.items():
        speakers = item["speakers"]
        rows.append({"split": split, "clips": item["clips"], "audio": format_duration(item["seconds"]),
                     "mean clip": f"{item['mean_seconds']:.1f} s", "longest": f"{item['max_seconds']:.1f} s",
                     "speakers": "unknown" if speakers is None else speakers,
                     "clips per speaker": f"{item['clips'] / speakers:.1f}" if speakers else "-"})
    return rows


def count_over(values: Iterable[float], limit: float) -> int:
    """How many values are strictly above `limit`."""
    return int(np.sum(np.asarray(list(values), dtype=float) > limit))


def token_lengths(sentences: Iterable[str], tokenizer) -> np.ndarray:
    """Label length of each transcript in Whisper tokens, special tokens included, as the decoder will see it."""
    return np.asarray(label_lengths(tokenizer, sentences), dtype=int)


def label_tokenizer(model: str, language: str):
    """The tokenizer of `model` set up as for training labels: <|startoftranscript|><|lang|><|transcribe|>
    <|notimestamps|> ... <|endoftext|>. English-only checkpoints have no language or task tokens."""
    from transformers import WhisperConfig, WhisperTokenizerFast

    from helpers.inference import is_multilingual
    from helpers.languages import whisper_language
    from helpers.prepare import set_label_prefix

    tokenizer = WhisperTokenizerFast.from_pretrained(str(model))
    if is_multilingual(WhisperConfig.from_pretrained(str(model))):  # English-only: the tokenizer's own prefix
        set_label_prefix(tokenizer, whisper_language(language))
    return tokenizer


def token_pieces(text: str, tokenizer) -> list[str]:
    """The label of `text` token by token, special tokens included (a character that takes several byte-level
    tokens shows as '�' in each piece)."""
    return [tokenizer.decode([token]) for token in tokenizer(text).input_ids]


def token_rows(lengths_by_split: Mapping[str, Sequence[int]], sentences_by_split: Mapping[str, Sequence[str]],
               limit: int = MAX_LABEL_TOKENS) -> list[dict]:
    """Per split: mean and longest label in tokens, tokens per character of text, labels over `limit`."""
    rows = []
    for split, lengths in lengths_by_split.items():
        lengths = np.asarray(lengths)
        chars = sum(len(s) for s in sentences_by_split[split])
        rows.append({"split": split, "mean tokens": f"{lengths.mean():.1f}" if len(lengths) else "-",
                     "longest": int(lengths.max()) if len(lengths) else 0,
                     "tokens per character": f"{lengths.sum() / chars:.2f}" if chars else "-",
                     f"over {limit}": count_over(lengths, limit)})
    return rows


def longest_sentence(sentences: Iterable[str]) -> str:
    """The longest transcript (the first of equals), '' when there is none."""
    return max(sentences, key=len, default="")


def histogram(values_by_split: Mapping[str, Sequence[float]], limit: float, xlabel: str, title: str):
    """Overlaid histograms per split with the limit drawn as a red line; the x axis always reaches the limit."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    _, ax = plt.subplots(figsize=(7, 3))
    top = max([limit * 1.08] + [float(np.max(v)) * 1.05 for v in values_by_split.values() if len(v)])
    bins = np.linspace(0, top, 50)
    for split, values in values_by_split.items():
        ax.hist(values, bins=bins, alpha=0.6, label=f"{split} ({len(values)})")
    ax.axvline(limit, color="red", linestyle="--", label=f"limit {limit:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(loc="upper center")
    ax.figure.tight_layout()
    return ax


# ---------------------------------------------------------------------------------------------- characters
def character_inventory(sentences: Iterable[str]) -> dict[str, dict[str, int]]:
    """Count every character of the transcripts, grouped by Unicode general category (e.g. 'Ll', 'Po')."""
    counts = Counter(ch for sentence in sentences for ch in sentence)
    inventory: dict[str, dict[str, int]] = {}
    for ch, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        inventory.setdefault(unicodedata.category(ch), {})[ch] = n
    return dict(sorted(inventory.items()))


def inventory_rows(inventory: Mapping[str, Mapping[str, int]], max_chars: int = 40) -> list[dict]:
    """One table row per category: its meaning, distinct characters and total count, the characters (most frequent
    first, readable as `show_char` writes them) and the normalisation question it raises."""
    from helpers.golden_rule import show_char

    rows = []
    for category, chars in inventory.items():
        shown = [show_char(ch) for ch in list(chars)[:max_chars]]
        more = f" (+{len(chars) - max_chars})" if len(chars) > max_chars else ""
        ordinary_spaces = category == "Zs" and set(chars) <= {" "}
        meaning, question = CATEGORIES.get(category, ("?", ""))
        rows.append({"category": category, "meaning": meaning,
                     "distinct": len(chars), "count": int(sum(chars.values())),
                     "characters": " ".join(shown) + more, "question": "" if ordinary_spaces else question})
    return rows


# ------------------------------------------------------------------------------------------------ leaks
def overlap(a, b, max_examples: int = 5) -> dict:
    """Speakers and sentences that two splits share. Speakers are compared by `client_id`; sentences after
    `sentence_key` (so 'Hola.' and 'hola' count as the same sentence). Speakers are None when unknown."""
    spk_a, spk_b = _column(a, "client_id"), _column(b, "client_id")
    known = spk_a is not None and spk_b is not None
    shared = sorted(set(spk_a) & set(spk_b)) if known else []
    keys_b = {sentence_key(s) for s in (_column(b, "sentence") or [])}
    shared_sentences = {}  # key -> the first sentence of `a` with it
    for sentence in _column(a, "sentence") or []:
        key = sentence_key(sentence)
        if key and key in keys_b:
            shared_sentences.setdefault(key, sentence)
    return {"speakers": len(shared) if known else None, "speaker_examples": [s[:12] for s in shared[:max_examples]],
            "sentences": len(shared_sentences), "sentence_examples": list(shared_sentences.values())[:max_examples]}


def overlaps_with_test(splits: Mapping, test: str = "test") -> dict[str, dict]:
    """Overlap of every other split with the test split: the test split must share neither with training data."""
    return {name: overlap(ds, splits[test]) for name, ds in splits.items() if name != test}


def overlap_rows(overlaps: Mapping[str, Mapping], against: str = "test") -> list[dict]:
    """Overlap results as table rows: shared speakers and sentences, with a few shared sentences."""
    return [{"splits": f"{name} / {against}",
             "shared speakers": "unknown" if item["speakers"] is None else item["speakers"],
             "shared sentences": item["sentences"],
             "for example": " | ".join(item["sentence_examples"][:2])}
            for name, item in overlaps.items()]


def leak_notes(overlaps: Mapping[str, Mapping], against: str = "test") -> list[str]:
    """What each leak found by `overlaps_with_test` means and what notebook 03 does about it (empty: no leak)."""
    notes = []
    for name, item in overlaps.items():
        if item["sentences"]:
            notes.append(f"{name} / {against}: {item['sentences']} shared sentences (e.g. "
                         f"{' | '.join(item['sentence_examples'][:2])}). Notebook 03 drops these {name} rows from "
                         "training and counts them in dropped_rows.csv, so the model cannot memorise the test text.")
        if item["speakers"]:
            notes.append(f"{name} / {against}: {item['speakers']} shared speakers (e.g. "
                         f"{', '.join(item['speaker_examples'][:3])}). Notebook 03 trains on "
                         "their clips anyway: the test WER then measures voices the model has heard, and is "
                         "optimistic for new speakers. For an honest score, keep each speaker in one split (move "
                         "their clips to test, or out of the training splits).")
    return notes


def validated_leak(dataset: str, language: str) -> dict | None:
    """Overlap of Common Voice's `validated` list with the whole test split, and `test_clips` (None without such a
    list). validated.tsv holds the test clips too: training on it "for more data" trains on the test set. Only
    text and speaker columns are read (no audio), so both lists are checked whole."""
    from helpers.data import text_rows

    try:
        validated = text_rows(dataset, language, "validated")
    except ValueError:
        return None
    test = text_rows(dataset, language, "test")
    return {**overlap(validated, test), "test_clips": len(test)}


# --------------------------------------------------------------------------------------------- streaming
def first_example(iterable) -> tuple[dict, float]:
    """The first row of a (streaming) dataset and the seconds it took to get it."""
    start = time.perf_counter()
    row = next(iter(iterable))
    return row, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ mixing
CASINGS = ("keep", "lower", "plain")


def text_column(ds) -> str:
    """The transcript column of a dataset, whatever its source calls it (the loader's list, best first)."""
    from helpers.data import TEXT_COLUMNS

    for name in TEXT_COLUMNS:
        if name in ds.column_names:
            return name
    raise ValueError(f"no transcript column found: expected one of {', '.join(TEXT_COLUMNS)}; "
                     f"the dataset has {', '.join(ds.column_names)}")


def restyle(text: str, casing: str) -> str:
    """"keep" the text, "lower" its case, or make it "plain": lower case without punctuation or symbols, spaces
    kept single, the way FLEURS' `transcription` column is written."""
    if casing not in CASINGS:
        raise ValueError(f"casing must be one of {', '.join(CASINGS)}, got {casing!r}")
    if casing == "lower":
        return text.lower()
    if casing == "plain":
        text = unicodedata.normalize("NFC", text).casefold()
        return " ".join("".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text).split())
    return text


def fleurs_style(ds):
    """A copy shaped like Google's FLEURS: transcript in `transcription`, lower case without punctuation, no
    speaker ids. Used to show what mixing two differently shaped sources involves."""
    column = text_column(ds)
    ds = ds.remove_columns([c for c in ds.column_names if c not in ("audio", column)])
    return ds.map(lambda row: {"transcription": restyle(row[column], "plain")}, remove_columns=[column])


def harmonise(ds, source: str, casing: str = "keep"):
    """Bring a dataset to the common schema {audio, sentence, source}: the transcript column renamed and restyled
    (see `restyle`), the other columns dropped, each row tagged with the name of its source."""
    if casing not in CASINGS:
        raise ValueError(f"casing must be one of {', '.join(CASINGS)}, got {casing!r}")
    column = text_column(ds)
    ds = ds.remove_columns([c for c in ds.column_names if c not in ("audio", column)])
    if column != "sentence":
        ds = ds.rename_column(column, "sentence")
    return ds.map(lambda row: {"sentence": restyle(row["sentence"], casing), "source": source})


def mix(sources: Mapping[str, object], probabilities: Sequence[float] | None = None, seed: int = 42,
        casing: str = "keep"):
    """Harmonise each named source and interleave them into one dataset. Without `probabilities` the sources
    take turns, one row each; with them rows are drawn at random. Stops as soon as one source runs out
    (`interleave_datasets`' default), so no source is over-represented by repetition."""
    from datasets import interleave_datasets

    parts = [harmonise(ds, name, casing=casing) for name, ds in sources.items()]
    features = parts[0].features
    parts = [parts[0]] + [part.cast(features) for part in parts[1:]]
    mixed = interleave_datasets(parts, probabilities=list(probabilities) if probabilities else None, seed=seed)
    mixed.set_format("numpy", columns=["audio"], output_all_columns=True)  # arrays as the loader gives them
    return mixed


def casing_profile(sentences: Iterable[str]) -> dict:
    """Share of transcripts that contain an uppercase letter and that contain punctuation."""
    sentences = list(sentences)
    n = max(len(sentences), 1)
    upper = sum(any(ch.isupper() for ch in s) for s in sentences)
    punct = sum(any(unicodedata.category(ch).startswith("P") for ch in s) for s in sentences)
    return {"sentences": len(sentences), "with_uppercase": round(upper / n, 3), "with_punctuation": round(punct / n, 3)}


# ----------------------------------------------------------------------------------------------- skipped
def skipped_summary(skipped: Iterable[Mapping]) -> dict[str, dict[str, int]]:
    """Skipped rows counted per split and reason: {"train": {"empty sentence": 2}, ...}."""
    pairs = Counter((str(item.get("split", "?")), str(item.get("reason", "?"))) for item in skipped)
    summary: dict[str, dict[str, int]] = {}
    for (split, reason), n in pairs.items():
        summary.setdefault(split, {})[reason] = n
    return summary


def damaged_copy(folder: str | Path, dest: str | Path, split: str = "test") -> Path:
    """Copy one split of a Common Voice style folder (TSV and clips) to `dest`, damaging four rows the way real
    downloads are damaged: an empty clip file, a missing clip, an empty sentence and a TSV line cut short."""
    folder, dest = Path(folder), Path(dest)
    lines = (folder / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:] if line]
    if len(rows) < 5:
        raise ValueError(f"{folder / f'{split}.tsv'} has {len(rows)} rows; damaged_copy needs at least 5")
    column = {name: i for i, name in enumerate(header.split("\t"))}
    (dest / "clips").mkdir(parents=True, exist_ok=True)
    for row in rows:
        shutil.copyfile(folder / "clips" / row[column["path"]], dest / "clips" / row[column["path"]])
    (dest / "clips" / rows[0][column["path"]]).write_bytes(b"")  # an interrupted download leaves 0 bytes
    (dest / "clips" / rows[1][column["path"]]).unlink()
    rows[2][column["sentence"]] = ""
    rows[3] = rows[3][: column["sentence"] + 1]
    text = "\n".join([header] + ["\t".join(row) for row in rows]) + "\n"
    (dest / f"{split}.tsv").write_text(text, encoding="utf-8")
    return dest


# ------------------------------------------------------------------------------------------------ report
def split_report(ds, tokenizer, skipped: Iterable[Mapping] = ()) -> dict:
    """Everything data_report.json holds about one split."""
    summary = split_summary(ds)
    secs = durations(ds)
    tokens = token_lengths(_column(ds, "sentence") or [], tokenizer)
    reasons = Counter(str(item.get("reason", "?")) for item in skipped)
    summary.update({
        "over_30s": count_over(secs, MAX_SECONDS),
        "max_tokens": int(tokens.max()) if len(tokens) else 0,
        "over_448_tokens": count_over(tokens, MAX_LABEL_TOKENS),
        "skipped": int(sum(reasons.values())),
        "skipped_reasons": dict(sorted(reasons.items())),
    })
    return summary


def data_report(language: str, dataset: str, model: str, splits: Mapping, tokenizer, skipped: Sequence[Mapping],
                overlaps: Mapping, inventory: Mapping, max_clips: int = 0, leak: Mapping | None = None) -> dict:
    """Everything data_report.json holds: per split (see `split_report`), the overlaps with the test split, the
    character inventory and the skipped rows."""
    return {
        "language": language, "dataset": dataset, "model": model, "max_clips": max_clips,
        "capped": {name: bool(getattr(ds, "capped", False)) for name, ds in splits.items()},
        "splits": {name: split_report(ds, tokenizer, [s for s in skipped if s.get("split") == name])
                   for name, ds in splits.items()},
        "overlaps_with_test": dict(overlaps),
        "validated_overlap_with_test": leak,
        "characters": {category: dict(chars) for category, chars in inventory.items()},
        "skipped": [dict(item) for item in skipped],
    }
