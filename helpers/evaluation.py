"""Evaluate Whisper checkpoints on a split: predictions, both WERs, CER, speed, error analysis, outputs.

Notebook 04 walks through these steps; `python -m tools.evaluate` runs them as a script (e.g. on a GPU machine):

    clips = first_clips(load_split(dataset, language, "test"), max_eval_samples)
    baseline = evaluate_model("models/whisper-base", clips, language, normalizer, label="baseline")
    tuned = evaluate_model("runs/es/model", clips, language, normalizer, label="fine-tuned")
    write_outputs(run_dir, baseline, tuned, ...)         # predictions.csv, results.json, model card
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from helpers.audio import SAMPLING_RATE
from helpers.card import update_model_card
from helpers import metrics as M
from helpers.data import DEMOGRAPHICS
from helpers.files import hub_id, write_json
from helpers.inference import clip_array, load_model, transcribe, warm_up
from helpers.widgets import is_headless, shorten, wav_bytes

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.csv"
TRANSCRIPTS_DIR = "transcripts"  # <label>.csv per model, written while it transcribes
FLAGS = ("empty_prediction", "repetition", "too_long", "wrong_language", "wrong_script")


# ---------------------------------------------------------------------------------------------------- What to evaluate


def resolve_finetuned(finetuned: str | None, run_dir: str | Path) -> tuple[str | None, str]:
    """Which fine-tuned model to evaluate, and a sentence saying why.

    "" (the default) means <run_dir>/model, used when notebook 03 has saved a model there; "none" skips the
    fine-tuned model; anything else is a folder (which must exist) or a Hub id.
    """
    value = (finetuned or "").strip()
    if value.lower() == "none":
        return None, "fine-tuned model: none asked for (finetuned='none'), evaluating the baseline alone"
    if not value:
        default = Path(run_dir) / "model"
        if (default / "config.json").is_file():
            return str(default), f"fine-tuned model: {default.as_posix()} (saved by notebook 03)"
        return None, (f"fine-tuned model: {default.as_posix()} does not exist yet (run notebook 03 first), "
                      "so this run evaluates the baseline alone")
    path = Path(value).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"finetuned={value!r} is a folder without config.json: not a saved model")
        return value, f"fine-tuned model: {value}"
    if hub_id(value):
        return value, f"fine-tuned model: {value} (from the Hub)"
    raise FileNotFoundError(f"finetuned={value!r}: no such folder (and not a Hub id of the form 'user/model')")


def first_clips(ds, max_samples: int | None):
    """The first `max_samples` clips of a split (all of them for None or 0), in the split's own order: a Dataset
    for a `datasets.Dataset`; for a stream, a list of the first rows held in memory, or the stream itself when all
    clips are asked for (then read again for each model, clip by clip, never held in memory whole)."""
    if max_samples is not None and max_samples < 0:
        raise ValueError(f"max_eval_samples must be None, 0 (all) or positive, got {max_samples}")
    if not max_samples:
        return ds
    if hasattr(ds, "select") and hasattr(ds, "__len__"):
        return ds.select(range(min(max_samples, len(ds))))
    return list(islice(iter(ds), max_samples))


def as_text(value: Any) -> str:
    """Plain str from a dataset value (numpy-formatted rows hold numpy strings or 0-d arrays)."""
    if value is None:
        return ""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------- Running a model on the clips


@dataclass
class EvalRun:
    """One model's evaluation: its predictions beside the references, the metrics and the speed."""

    label: str  # "baseline" or "fine-tuned"
    model_name: str
    language: str
    clips: list[dict]  # per clip: index, path, client_id, duration, reference, and the DEMOGRAPHICS columns
    predictions: list[str]
    metrics: dict
    speed: dict
    normalizer: Callable[[str], str] = field(repr=False)
    model: Any = field(default=None, repr=False)
    processor: Any = field(default=None, repr=False)
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def references(self) -> list[str]:
        return [c["reference"] for c in self.clips]

    def table(self, scripts: set[str] | None = None):
        """Per-clip pandas DataFrame (`clip_table`), built once per `scripts` (normalising and scoring a whole test
        split is not free) and shared: copy it before changing it."""
        scripts = scripts if scripts is not None else M.expected_scripts(self.references)
        key = frozenset(scripts)
        if key not in self._tables:
            self._tables[key] = clip_table(self.references, self.predictions, self.normalizer, self.language,
                                           self.clips, scripts)
        return self._tables[key]


def evaluate_model(model_name: str, clips: Iterable[Any], language: str, normalizer: Callable[[str], str],
                   batch_size: int = 8, label: str = "model", warmup: bool = True, keep_model: bool = True,
                   transcripts: str | Path | None = None) -> EvalRun:
    """Load `model_name`, transcribe `clips` in batches (after a warm-up), and score the predictions. Clips are
    read as a stream: only their text stays in memory. `transcripts`: a CSV file that gets each clip's index, path,
    reference and transcript as soon as its window of clips is done, so that an evaluation of a whole split shows
    its progress on disk and keeps what it did if it is interrupted."""
    model, processor = load_model(model_name)
    info: list[dict] = []
    handle = None
    if transcripts is not None:
        Path(transcripts).parent.mkdir(parents=True, exist_ok=True)
        handle = Path(transcripts).open("w", newline="", encoding="utf-8")
        writer = csv.writer(handle)
        writer.writerow(["index", "path", "reference", "prediction"])

    written = 0

    def write(texts: list[str]) -> None:  # the next len(texts) clips read are done
        nonlocal written
        writer.writerows([c["index"], c["path"], c["reference"], text]
                         for c, text in zip(info[written:written + len(texts)], texts))
        written += len(texts)
        handle.flush()

    def rows():
        for index, row in enumerate(clips):
            if warmup and index == 0:
                warm_up(model, processor, row, language)
            info.append({"index": index, "path": as_text(row.get("path")), "client_id": as_text(row.get("client_id")),
                         "duration": _number(row.get("duration")), "reference": as_text(row.get("sentence")),
                         **{name: as_text(row.get(name)) for name in DEMOGRAPHICS}})
            yield row

    try:
        result = transcribe(model, processor, rows(), language=language, batch_size=batch_size,
                            on_window=write if handle else None)
    finally:
        if handle is not None:
            handle.close()
    if not info:
        raise ValueError(f"no clips to evaluate {model_name!r} on: the split is empty (or every row was skipped)")
    for clip, seconds in zip(info, result.clip_seconds):
        clip["duration"] = clip["duration"] or round(seconds, 3)
    scores = M.compute_metrics([c["reference"] for c in info], result.texts, normalizer)
    return EvalRun(label=label, model_name=str(model_name), language=language, clips=info,
                   predictions=result.texts, metrics=scores, speed=result.speed(), normalizer=normalizer,
                   model=model if keep_model else None, processor=processor if keep_model else None)


# ----------------------------------------------------------------------------------- Per-clip table and error analysis


def clip_table(references: Sequence[str], predictions: Sequence[str], normalizer: Callable[[str], str],
               language: str, clips: Sequence[dict], scripts: set[str]):
    """One row per clip: reference, prediction, both normalised, per-clip WER (nan for an empty reference) and
    the flags of every detector in `helpers.metrics`; `scripts` are the writing systems the language uses."""
    import pandas as pd

    refs, preds = M.normalize_all(references, None), M.normalize_all(predictions, None)  # whitespace tidied
    norm_refs = M.normalize_all(refs, normalizer)
    norm_preds = M.normalize_all(preds, normalizer)
    rows = []
    for clip, r, p, nr, np_ in zip(clips, refs, preds, norm_refs, norm_preds):
        scored = bool(r and nr)
        rows.append({
            "index": clip.get("index"),
            "path": clip.get("path", ""),
            "duration": clip.get("duration"),
            "reference": r,
            "prediction": p,
            "reference_normalized": nr,
            "prediction_normalized": np_,
            "wer": M.clip_wer(nr, np_) if scored else math.nan,
            "empty_prediction": scored and M.is_empty_prediction(nr, np_),
            "repetition": scored and M.has_repetition(nr, np_),
            "too_long": scored and M.is_too_long(nr, np_),
            "wrong_language": scored and M.is_wrong_language(nr, np_, language),
            "wrong_script": scored and M.is_wrong_script(p, scripts),
        })
    return pd.DataFrame(rows)


def error_summary(run: EvalRun, scripts: set[str] | None = None) -> dict:
    """The edit operations behind the WER (counted by `compute_metrics`) and how many clips each detector flagged."""
    counts = {key: run.metrics[key] for key in M.ErrorCounts().as_dict()}
    table = run.table(scripts)
    return {**counts, **{flag: int(table[flag].sum()) for flag in FLAGS}}


def top_confusions(table, k: int = 10) -> dict[str, list[tuple]]:
    """The `k` most frequent substitutions (reference word, predicted word, count), deletions and insertions
    (word, count) on normalised text; ties are listed alphabetically so the output is stable."""
    scored = table[table["wer"].notna()]
    found = M.confusions(list(scored["reference_normalized"]), list(scored["prediction_normalized"]))

    def ranked(counter) -> list:
        return sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]

    return {
        "substitutions": [(r, h, n) for (r, h), n in ranked(found["substitutions"])],
        "deletions": ranked(found["deletions"]),
        "insertions": ranked(found["insertions"]),
    }


def format_confusions(confusions: dict[str, list[tuple]]) -> str:
    """The confusions as three short plain-text lists."""
    lines = ["Substitutions (reference -> prediction):"]
    lines += [f"  {n:>3} x  {r} -> {h}" for r, h, n in confusions["substitutions"]] or ["  none"]
    lines.append("Deletions (words the model left out):")
    lines += [f"  {n:>3} x  {w}" for w, n in confusions["deletions"]] or ["  none"]
    lines.append("Insertions (words the model added):")
    lines += [f"  {n:>3} x  {w}" for w, n in confusions["insertions"]] or ["  none"]
    return "\n".join(lines)


def flagged_clips(table, flag: str, max_n: int = 5, max_chars: int = 120) -> list[str]:
    """Up to `max_n` lines "#index  reference => prediction" for the clips a detector flagged (texts cut at
    `max_chars` characters: a looping prediction can be very long)."""
    if flag not in FLAGS:
        raise ValueError(f"unknown flag {flag!r}: use one of {FLAGS}")
    rows = table[table[flag]].head(max_n)
    return [f"#{int(row['index']):<4} {shorten(row['reference'], max_chars)!r} => "
            f"{shorten(row['prediction'], max_chars)!r}" for _, row in rows.iterrows()]


def normalizer_note(references: Sequence[str], normalizer: Callable[[str], str], name: str) -> str:
    """One sentence on how the normaliser treats these references; a warning when it breaks words apart by
    deleting combining marks (Devanagari vowel signs and the like)."""
    ratio = M.split_words_ratio(references, normalizer)
    marks_before = sum(M.combining_marks(r) for r in references)
    marks_after = sum(M.combining_marks(normalizer(r)) for r in references)
    if ratio > 1.15 and marks_after < marks_before:
        return (f"Warning: {name} deletes the combining marks of this script ({marks_before - marks_after} in these "
                f"references: vowel signs, virama) and so breaks words apart: {ratio:.1f} words after normalising "
                "for each word before. The normalised WER counts fragments; read the CER and the orthographic WER "
                "beside it.")
    detail = "words stay whole" if ratio <= 1.02 else "some split or expanded at apostrophes, hyphens, contractions"
    return f"{name}: {ratio:.2f} words after normalising for each word before ({detail})."


def worst_clips(table, k: int = 3):
    """The `k` clips with the highest WER (ties: the earlier clip first)."""
    scored = table[table["wer"].notna()]
    return scored.sort_values(["wer", "index"], ascending=[False, True], kind="stable").head(k)


def show_worst_clips(table, clips=None, k: int = 3, headless: bool | None = None) -> list[str]:
    """Print the worst clips with their word alignment; in a front end add an audio player to each, from `clips`
    (the evaluated split)."""
    worst = worst_clips(table, k)
    blocks = [f"clip #{int(row['index'])} ({row['path']}), WER {row['wer']:.0f}%\n"
              + M.format_alignment(row["reference_normalized"], row["prediction_normalized"])
              for _, row in worst.iterrows()]
    print("\n\n".join(blocks) if blocks else "no scored clips")
    if blocks and clips is not None and not is_headless(headless):
        _show_players(clips, [int(i) for i in worst["index"]])
    return blocks


def row_at(clips, index: int) -> dict:
    """The row at `index` of a dataset, a list or a stream of clips."""
    if hasattr(clips, "__getitem__") and hasattr(clips, "__len__"):
        return clips[index]
    return next(islice(iter(clips), index, None))


def _show_players(clips, indices: list[int]) -> None:
    import ipywidgets as widgets
    from IPython.display import display

    players = []
    for index in indices:
        array = clip_array(row_at(clips, index))
        players.append(widgets.HBox([widgets.Label(f"clip #{index}"),
                                     widgets.Audio(value=wav_bytes(array, SAMPLING_RATE), format="wav", autoplay=False)]))
    display(widgets.VBox(players))


# ---------------------------------------------------------------------------------------------------- Comparing models


def comparison_rows(runs: Sequence[EvalRun]) -> list[dict]:
    """One row per model with both WERs and the CER (same clips for every model), plus the relative WER change
    of each model against the first (the baseline)."""
    rows = []
    base = runs[0].metrics["wer"] if runs else math.nan
    for run in runs:
        m = run.metrics
        change = M.relative_improvement(base, m["wer"]) if run is not runs[0] else math.nan
        rows.append({
            "model": run.label,
            "checkpoint": run.model_name,
            "clips": m["num_samples"],
            "WER %": f"{m['wer']:.2f}",
            "orthographic WER %": f"{m['wer_orthographic']:.2f}",
            "CER %": f"{m['cer']:.2f}",
            "WER % marks kept": f"{m['wer_keep_marks']:.2f}",
            "relative WER improvement %": "" if math.isnan(change) else f"{change:+.1f}",
        })
    return rows


def speed_rows(runs: Sequence[EvalRun]) -> list[dict]:
    """RTFx and what it was measured with (varies from run to run)."""
    return [{"model": r.label, "RTFx": f"{r.speed['rtfx']:.2f}", "audio s": f"{r.speed['audio_seconds']:.1f}",
             "compute s": f"{r.speed['compute_seconds']:.1f}", "batch size": r.speed["batch_size"],
             "device": r.speed["device"], "dtype": r.speed["dtype"]} for r in runs]


# ------------------------------------------------------------------ Outputs: predictions.csv, results.json, model card


def predictions_frame(main: EvalRun, baseline: EvalRun, scripts: set[str]):
    """predictions.csv as a DataFrame: one row per clip for `main`, with the baseline's prediction, normalised
    prediction and WER beside it when `main` is another model."""
    table = main.table(scripts).copy()
    if baseline is not main:
        other = baseline.table(scripts)
        if list(other["index"]) != list(table["index"]):
            raise ValueError("the baseline was evaluated on other clips than the fine-tuned model")
        for column in ("prediction", "prediction_normalized", "wer"):
            table[f"baseline_{column}"] = other[column].values
    return table


def run_record(run: EvalRun, scripts: set[str]) -> dict:
    """The numbers of one model for results.json (rates in percent, rounded to 2 decimals)."""
    m = run.metrics
    return {
        "model": run.model_name,
        "num_samples": m["num_samples"],
        "num_empty_references": m["num_empty_references"],
        "wer": M.rounded(m["wer"]),
        "wer_orthographic": M.rounded(m["wer_orthographic"]),
        "cer": M.rounded(m["cer"]),
        "wer_keep_marks": M.rounded(m.get("wer_keep_marks")),
        "rtfx": M.rounded(run.speed["rtfx"]),
        **{key: run.speed[key] for key in ("device", "dtype", "batch_size", "audio_seconds", "compute_seconds")},
        "errors": error_summary(run, scripts),
    }


def write_outputs(run_dir: str | Path, baseline: EvalRun, finetuned: EvalRun | None, *, language: str,
                  dataset: str, split: str, normalizer_name: str, num_skipped: int = 0,
                  confidence: dict | None = None, checks: dict | None = None) -> dict:
    """Write predictions.csv and results.json to run_dir, and the results into the fine-tuned model's card when
    that model is a local folder; return the results. They hold the evaluated model's numbers at the top level (the
    fine-tuned one when there is one), the baseline's under "baseline", the relative WER improvement, the bootstrap
    intervals under "confidence" (`confidence_record`'s, computed here unless given), and `checks` (e.g. what the
    model writes for silence)."""
    from helpers.confidence import confidence_record
    from helpers.languages import whisper_language

    run_dir = Path(run_dir)
    scripts = M.expected_scripts(baseline.references)
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions_frame(finetuned or baseline, baseline, scripts).to_csv(
        run_dir / PREDICTIONS_FILE, index=False, float_format="%.2f", encoding="utf-8")
    base = run_record(baseline, scripts)
    main = run_record(finetuned, scripts) if finetuned is not None else dict(base)
    improvement = M.relative_improvement(base["wer"], main["wer"]) if finetuned is not None else math.nan
    results = {
        "language": language,
        "whisper_language": whisper_language(language),
        "dataset": dataset,
        "split": split,
        "normalizer": normalizer_name,
        "finetuned": finetuned is not None,
        **main,
        "num_skipped": num_skipped,
        "relative_wer_improvement": M.rounded(improvement),
        "confidence": confidence or confidence_record(baseline, finetuned),
        **(checks or {}),
        "baseline": base,
    }
    write_json(results, run_dir / RESULTS_FILE)
    if finetuned is not None and Path(finetuned.model_name).is_dir():
        update_model_card(finetuned.model_name, results)
    return results
