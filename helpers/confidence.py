"""How sure a WER is: bootstrap intervals over speakers, and the paired difference between two models.

A WER measured on a few hundred clips moves when other clips are drawn. The bootstrap shows by how much: draw the
test set again (with replacement) many times from the one at hand and look at the spread of the WER. Clips of one
speaker are not independent (a voice the model handles badly spoils all of its clips), so whole speakers are drawn
(all their clips together); without a speaker column, clips are drawn.

The paired bootstrap compares two models on the same clips: each draw scores both on the same speakers, so what the
two have in common (hard clips, easy clips) cancels out, and the interval of the difference is much narrower than
the two intervals side by side suggest. Its `probability_improved` is the share of draws in which the second model
has the lower WER.

    errors = clip_errors(references, predictions, normalizer)            # per clip: errors, reference words
    interval(errors, speakers)                                           # {"value", "low", "high", ...}
    paired(errors_zero_shot, errors_fine_tuned, speakers)                # fine-tuned minus zero-shot
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from helpers.metrics import char_counts, normalize_all, word_counts

RESAMPLES = 1000
LEVEL = 0.95


@dataclass
class ClipErrors:
    """Per scored clip: edit errors and reference length (words, or characters for CER)."""

    errors: np.ndarray
    lengths: np.ndarray
    kept: list[int]  # indices (in the input) of the clips scored: those with a non-empty normalised reference


def clip_errors(references: Sequence[str], predictions: Sequence[str], normalizer: Callable[[str], str] | None,
                unit: str = "word") -> ClipErrors:
    """Errors and reference length of every clip whose normalised reference is not empty (`unit`: "word", "char")."""
    count = word_counts if unit == "word" else char_counts
    refs, preds = normalize_all(references, normalizer), normalize_all(predictions, normalizer)
    kept = [i for i, ref in enumerate(refs) if ref]
    errors, lengths = np.zeros(len(kept)), np.zeros(len(kept))
    for j, i in enumerate(kept):
        counts = count([refs[i]], [preds[i]])
        errors[j], lengths[j] = counts.errors, counts.reference_length
    return ClipErrors(errors, lengths, kept)


def _groups(groups: Sequence | None, kept: list[int]) -> tuple[np.ndarray, str]:
    """Group index per kept clip: the speaker, or the clip itself when there are no speaker ids or all clips share
    one (drawing that one speaker again and again would give an "interval" of a single value)."""
    labels = [str(groups[i] or "") for i in kept] if groups is not None else []
    # a clip without a speaker id is a group of its own
    names = [label or f"\x00clip{i}" for i, label in zip(kept, labels)]
    _, index = np.unique(names, return_inverse=True)
    if not any(labels) or len(set(names)) < 2:
        return np.arange(len(kept)), "clips"
    return index, "speakers"


def _draws(n_groups: int, resamples: int, seed: int, chunk: int = 100):
    """Chunks of bootstrap draws as counts: row r says how often each group was drawn in draw r."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        yield rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=size)


def _summary(value: float, draws: np.ndarray, level: float, unit: str, n_groups: int, resamples: int) -> dict:
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return {"value": round(float(value), 2), "low": round(float(low), 2), "high": round(float(high), 2),
            "level": level, "resampled": unit, "groups": int(n_groups), "resamples": resamples}


def interval(errors: ClipErrors, groups: Sequence | None = None, resamples: int = RESAMPLES, level: float = LEVEL,
             seed: int = 0) -> dict:
    """The error rate (percent) with its bootstrap interval: {"value", "low", "high", "level", "resampled",
    "groups", "resamples"}; `groups` (per input clip, e.g. client_id) are drawn whole."""
    index, unit = _groups(groups, errors.kept)
    n = int(index.max()) + 1 if len(index) else 0
    if n == 0:
        return {"value": None, "low": None, "high": None, "level": level, "resampled": unit, "groups": 0,
                "resamples": resamples}
    e, w = np.bincount(index, errors.errors, n), np.bincount(index, errors.lengths, n)
    rates = np.concatenate([100 * (d @ e) / np.maximum(d @ w, 1e-12) for d in _draws(n, resamples, seed)])
    return _summary(100 * e.sum() / w.sum(), rates, level, unit, n, resamples)


def paired(before: ClipErrors, after: ClipErrors, groups: Sequence | None = None, resamples: int = RESAMPLES,
           level: float = LEVEL, seed: int = 0) -> dict:
    """`after` minus `before` in percentage points of WER on the same clips, with its bootstrap interval and
    `probability_improved`, the share of draws in which `after` has the lower error rate."""
    if before.kept != after.kept:
        raise ValueError("paired() needs both models scored on the same clips")
    index, unit = _groups(groups, before.kept)
    n = int(index.max()) + 1 if len(index) else 0
    if n == 0:
        return {"value": None, "low": None, "high": None, "probability_improved": None}
    w = np.bincount(index, before.lengths, n)
    diff = np.bincount(index, after.errors, n) - np.bincount(index, before.errors, n)
    deltas = np.concatenate([100 * (d @ diff) / np.maximum(d @ w, 1e-12) for d in _draws(n, resamples, seed)])
    out = _summary(100 * diff.sum() / w.sum(), deltas, level, unit, n, resamples)
    out["probability_improved"] = round(float(np.mean(deltas < 0)), 3)
    return out


def describe(name: str, result: dict) -> str:
    """One sentence a learner can read."""
    if result.get("value") is None:
        return f"{name}: no clip to score"
    share = int(round(100 * result["level"]))
    return (f"{name} {result['value']:.1f}% ({share}% interval {result['low']:.1f} to {result['high']:.1f}, "
            f"{result['resamples']} draws of {result['groups']} {result['resampled']})")


# ------------------------------------------------------------------------------------ evaluated models


def confidence_record(baseline, finetuned=None, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """What results.json keeps: each evaluated model's (helpers.evaluation.EvalRun) WER and CER with their
    intervals, speakers drawn whole, and, with a fine-tuned model, the paired WER difference
    (`wer_difference_finetuned_minus_baseline`, in percentage points: negative means fine-tuning helped)."""
    speakers = [clip.get("client_id") for clip in baseline.clips]
    out, words = {}, {}
    for key, run in (("baseline", baseline), ("finetuned", finetuned)):
        if run is None:
            continue
        words[key] = clip_errors(run.references, run.predictions, run.normalizer)
        chars = clip_errors(run.references, run.predictions, run.normalizer, unit="char")
        out[key] = {"wer": interval(words[key], speakers, resamples, seed=seed),
                    "cer": interval(chars, speakers, resamples, seed=seed)}
    if finetuned is not None:
        out["wer_difference_finetuned_minus_baseline"] = paired(words["baseline"], words["finetuned"], speakers,
                                                                resamples, seed=seed)
    return out


def by_group(run, column: str = "client_id", min_clips: int = 3) -> list[dict]:
    """WER per value of a clip column (the speaker, or a demographic column such as gender, age or accents), worst
    first: clips, reference words, WER, and `small` when the group has fewer than `min_clips` clips (too few to
    read). Clips without a value form the group "(not given)"."""
    words = clip_errors(run.references, run.predictions, run.normalizer)
    table: dict[str, list] = {}
    for j, i in enumerate(words.kept):
        value = str(run.clips[i].get(column) or "") or "(not given)"
        entry = table.setdefault(value, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += words.errors[j]
        entry[2] += words.lengths[j]
    rows = [{column: value[:24], "clips": n, "words": int(w), "wer": round(100 * e / w, 1) if w else None,
             "small": n < min_clips} for value, (n, e, w) in table.items()]
    return sorted(rows, key=lambda r: (r["wer"] is None, -(r["wer"] or 0)))


def group_columns(run, columns=("client_id", "gender", "age", "accents", "variant")) -> list[str]:
    """The columns worth grouping by: those with a value on at least one clip (most Common Voice clips have a
    speaker; many leave age, gender and accent empty; other sources have none of them)."""
    return [c for c in columns if any(clip.get(c) for clip in run.clips)]
