"""The cross-language report of a batch run: runs/summary.csv, runs/summary.md and runs/summary.png.

Every number comes from the JSON files the notebooks write into their run_dir (runs/<language>/) and from the
batch runner's status.json. The notebooks may still be changing, so everything is read defensively: a missing
file, a missing key or a value that is not a number gives an empty cell, never an error. The key names read from
those files are listed once, in SOURCES below.

    python -m tools.summary --runs runs     # rebuild the report from what is on disk
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from helpers.metrics import relative_improvement

# Where each number comes from. Keys are tried in order; the first one holding a number wins.
SOURCES: dict[str, Any] = {
    "status": "status.json",  # written by tools.batch: state, error, seconds, notebooks{...}
    # notebook 01: {"splits": {"train": {"clips": 40, "hours": 0.05}, "dev": {...}, "test": {...}}}
    # (split entries directly at the top level are accepted too)
    "data_report": {
        "file": "data_report.json",
        "splits_key": "splits",
        "splits": ("train", "dev", "test"),
        "split_aliases": {"dev": ("validation",)},
        "clips": ("clips", "num_clips"),
        "hours": ("hours",),
        "seconds": ("seconds", "duration_seconds"),  # used when a split gives seconds instead of hours
    },
    # notebook 03: {"train_seconds": 123.4, ...}
    "training": {
        "file": "training.json",
        "train_seconds": ("train_seconds", "train_runtime", "training_seconds"),
    },
    # notebook 04: {"finetuned": true, "wer": 12.3, "wer_orthographic": 20.1, "cer": 5.0, "rtfx": 30.2,
    #               "device": "cpu", "baseline": {same keys, for the model before fine-tuning}}  (WER/CER in %)
    # With "finetuned": false only the baseline was evaluated (its numbers are also at the top level).
    "results": {
        "file": "results.json",
        "baseline": "baseline",
        "finetuned_flag": "finetuned",
        "wer": ("wer",),
        "wer_orthographic": ("wer_orthographic",),
        "cer": ("cer",),
        "rtfx": ("rtfx",),
        "device": ("device",),
        # 95 % bootstrap interval of the evaluated model's WER and the paired comparison (helpers.confidence)
        "interval": ("confidence", "finetuned", "wer"),
        "difference": ("confidence", "wer_difference_finetuned_minus_baseline"),
    },
    # notebook 05: {"int8": {"wer": 12.5, "cer": 4.0, "rtfx": 5.3}, "backends": {...}, "long_form": {...}}
    "export": {
        "file": "export.json",
        "int8": ("int8",),
        "wer": ("wer",),
        "rtfx": ("rtfx",),
    },
}

# Columns of summary.csv, in order.
COLUMNS = (
    "language",
    "status",
    "clips",
    "hours",
    "zero_shot_wer",
    "fine_tuned_wer",
    "relative_wer_improvement_pct",
    "fine_tuned_wer_low",
    "fine_tuned_wer_high",
    "probability_fine_tuning_helped",
    "wer_orthographic",
    "cer",
    "rtfx",
    "int8_wer",
    "int8_rtfx",
    "train_seconds",
    "device",
    "run_seconds",
    "error",
)

# Headers and number formats of summary.md (the error column is listed under the table instead).
MARKDOWN_COLUMNS = (
    ("language", "language", "{}"),
    ("status", "status", "{}"),
    ("clips", "clips", "{:d}"),
    ("hours", "hours", "{:.3f}"),
    ("zero_shot_wer", "zero-shot WER %", "{:.1f}"),
    ("fine_tuned_wer", "fine-tuned WER %", "{:.1f}"),
    ("relative_wer_improvement_pct", "WER improvement %", "{:+.1f}"),
    ("fine_tuned_wer_low", "95% interval from", "{:.1f}"),
    ("fine_tuned_wer_high", "to", "{:.1f}"),
    ("probability_fine_tuning_helped", "P(helped)", "{:.2f}"),
    ("wer_orthographic", "orthographic WER %", "{:.1f}"),
    ("cer", "CER %", "{:.1f}"),
    ("rtfx", "RTFx", "{:.1f}"),
    ("int8_wer", "int8 WER %", "{:.1f}"),
    ("int8_rtfx", "int8 RTFx", "{:.1f}"),
    ("train_seconds", "training (h:mm:ss)", "duration"),
    ("device", "device", "{}"),
)


def read_json(path: Path) -> dict:
    """A JSON object from `path`, or {} when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def nested(mapping: Any, path: tuple[str, ...]) -> dict:
    """The mapping found by following `path` ({} where a step is missing or not a mapping)."""
    for key in path:
        mapping = mapping.get(key) if isinstance(mapping, dict) else None
    return mapping if isinstance(mapping, dict) else {}


def number(mapping: Any, keys: tuple[str, ...]) -> float | int | None:
    """The first of `keys` in `mapping` that holds a finite number (booleans do not count), else None."""
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            return value
    return None


def text(mapping: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def data_totals(report: dict) -> tuple[int | None, float | None]:
    """Clips and hours summed over the train/dev/test splits of notebook 01's data report."""
    spec = SOURCES["data_report"]
    splits = report.get(spec["splits_key"])
    if not isinstance(splits, dict):
        splits = report
    clips: int | None = None
    hours: float | None = None
    for split in spec["splits"]:
        entry = None
        for name in (split, *spec["split_aliases"].get(split, ())):
            if isinstance(splits.get(name), dict):
                entry = splits[name]
                break
        if entry is None:
            continue
        n = number(entry, spec["clips"])
        if n is not None:
            clips = (clips or 0) + int(n)
        h = number(entry, spec["hours"])
        if h is None:
            seconds = number(entry, spec["seconds"])
            h = None if seconds is None else seconds / 3600
        if h is not None:
            hours = (hours or 0.0) + h
    return clips, hours


def status_text(status: dict) -> str:
    """One word (and the notebook concerned) for the state status.json records."""
    if not status:
        return "not run"
    state = status.get("state")
    notebooks = status.get("notebooks") if isinstance(status.get("notebooks"), dict) else {}
    if state == "ok":
        return "ok"
    if state in ("failed", "running", "interrupted"):
        word = "failed" if state == "failed" else "interrupted"  # "running" left behind = process stopped
        where = [name for name, entry in notebooks.items()
                 if isinstance(entry, dict) and entry.get("state") in ("failed", "running", "interrupted")]
        return f"{word} ({where[-1]})" if where else word
    return str(state) if state else "unknown"


def language_row(run_dir: Path, language: str | None = None) -> dict[str, Any]:
    """One summary row for the language whose outputs are in `run_dir`."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / SOURCES["status"])
    report = read_json(run_dir / SOURCES["data_report"]["file"])
    training = read_json(run_dir / SOURCES["training"]["file"])
    spec = SOURCES["results"]
    results = read_json(run_dir / spec["file"])
    export_spec = SOURCES["export"]
    int8 = nested(read_json(run_dir / export_spec["file"]), export_spec["int8"])
    baseline = results.get(spec["baseline"]) if isinstance(results.get(spec["baseline"]), dict) else {}

    clips, hours = data_totals(report)
    zero_shot = number(baseline, spec["wer"])
    fine_tuned = None if results.get(spec["finetuned_flag"]) is False else number(results, spec["wer"])
    error = status.get("error")
    interval = nested(results, spec["interval"]) if fine_tuned is not None else {}
    improvement = relative_improvement(zero_shot, fine_tuned)
    return {
        "language": language or status.get("language") or run_dir.name,
        "status": status_text(status),
        "clips": clips,
        "hours": hours,
        "zero_shot_wer": zero_shot,
        "fine_tuned_wer": fine_tuned,
        "relative_wer_improvement_pct": None if math.isnan(improvement) else improvement,
        "fine_tuned_wer_low": number(interval, ("low",)),
        "fine_tuned_wer_high": number(interval, ("high",)),
        "probability_fine_tuning_helped": number(nested(results, spec["difference"]), ("probability_improved",)),
        "wer_orthographic": number(results, spec["wer_orthographic"]),
        "cer": number(results, spec["cer"]),
        "rtfx": number(results, spec["rtfx"]),
        "int8_wer": number(int8, export_spec["wer"]),
        "int8_rtfx": number(int8, export_spec["rtfx"]),
        "train_seconds": number(training, SOURCES["training"]["train_seconds"]),
        "device": text(results, spec["device"]),
        "run_seconds": number(status, ("seconds",)),
        "error": error if isinstance(error, str) else None,
    }


def build_summary(runs: Path, languages: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows for `languages` (in that order), then for every other runs/<language>/ holding a status.json."""
    runs = Path(runs)
    order = list(dict.fromkeys(languages or []))
    if runs.is_dir():
        found = sorted(p.parent.name for p in runs.glob(f"*/{SOURCES['status']}"))
        order += [name for name in found if name not in order]
    return [language_row(runs / language, language) for language in order]


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    return value


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss (the batch runner's progress lines and the summary's training time)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if fmt == "duration":
        return clock(value)
    if fmt == "{:d}":
        return str(int(value))
    return fmt.format(value).replace("|", "\\|")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table, with failures listed under it."""
    lines = [
        "# Batch run summary",
        "",
        "WER and CER are percentages on the evaluation split; zero-shot is the model before fine-tuning. "
        "WER improvement is relative to zero-shot (positive = fewer errors, as in results.json). The 95% interval of the fine-tuned WER comes from "
        "1,000 bootstrap draws of whole speakers; P(helped) is the share of paired draws in which the fine-tuned "
        "model had the lower WER. Orthographic WER (text as written), CER and RTFx "
        "(seconds of audio transcribed per second) are the fine-tuned model's, or the baseline's when no "
        "fine-tuned model was evaluated.",
        "",
        "| " + " | ".join(header for _, header, _ in MARKDOWN_COLUMNS) + " |",
        "|" + "|".join("---" if fmt == "{}" else "--:" for _, _, fmt in MARKDOWN_COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in MARKDOWN_COLUMNS) + " |")
    failures = [row for row in rows if row.get("error")]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- **{row['language']}**: {row['error']}" for row in failures]
    return "\n".join(lines) + "\n"


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: zero-shot and fine-tuned WER per language (PNG, no display needed)."""
    from matplotlib.figure import Figure  # object API: renders with Agg, never opens a window

    languages = [row["language"] for row in rows]
    nan = float("nan")
    before = [nan if row["zero_shot_wer"] is None else row["zero_shot_wer"] for row in rows]
    after = [nan if row["fine_tuned_wer"] is None else row["fine_tuned_wer"] for row in rows]
    fig = Figure(figsize=(max(4.0, 1.0 + 0.9 * len(rows)), 3.5), dpi=100)
    ax = fig.add_subplot()
    positions = range(len(rows))
    for offset, values, label in ((-0.2, before, "zero-shot"), (0.2, after, "fine-tuned")):
        bars = ax.bar([p + offset for p in positions], values, width=0.4, label=label)
        ax.bar_label(bars, labels=["" if math.isnan(v) else f"{v:.0f}" for v in values], fontsize=8)
    ax.set_xticks(list(positions), languages)
    ax.set_ylabel("WER (%)")
    ax.set_title("Test WER per language (lower is better)")
    finite = [v for v in before + after if math.isfinite(v)]
    if finite:
        ax.set_ylim(0, max(max(finite), 1.0) * 1.3)  # room for the legend and the labels
    else:
        ax.text(0.5, 0.5, "no results yet", transform=ax.transAxes, ha="center", va="center")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _atomic_bytes(path, buffer.getvalue())


def write_summary(runs: Path, languages: list[str] | None = None) -> dict[str, Path]:
    """Write summary.csv, summary.md and summary.png into `runs`; returns their paths."""
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    rows = build_summary(runs, languages)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in COLUMNS})
    paths = {"csv": runs / "summary.csv", "md": runs / "summary.md", "png": runs / "summary.png"}
    _atomic_bytes(paths["csv"], out.getvalue().encode("utf-8"))
    _atomic_bytes(paths["md"], markdown(rows).encode("utf-8"))
    chart(rows, paths["png"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs", help="folder holding one sub-folder per language (default: runs)")
    args = parser.parse_args(argv)
    paths = write_summary(Path(args.runs))
    print(paths["md"].read_text(encoding="utf-8"), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
