"""How sure a WER is: bootstrap intervals over speakers, and the paired difference between two models.

The bootstrap draws the test set again (with replacement) many times from the one at hand and looks at the spread
of the WER. Clips of one speaker are not independent (a voice the model handles badly spoils all of its clips), so
whole speakers are drawn; without a speaker column, clips are. The paired bootstrap scores both models on the same
draws, so what they have in common (hard clips, easy clips) cancels out and the interval of the difference is much
narrower than the two intervals side by side suggest.
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
    counts = [count([refs[i]], [preds[i]]) for i in kept]
    errors = np.array([c.errors for c in counts], float)
    return ClipErrors(errors, np.array([c.reference_length for c in counts], float), kept)


def _groups(groups: Sequence | None, kept: list[int]) -> tuple[np.ndarray, str]:
    """Group index per kept clip: the speaker, or the clip itself when there are no speaker ids or all clips share
    one (drawing that one speaker again and again would give an "interval" of a single value)."""
    labels = [str(groups[i] or "") for i in kept] if groups is not None else []
    # a clip without a speaker id is a group of its own
    names = [label or f"\x00clip{i}" for i, label in zip(kept, labels)]
    if not any(labels) or len(set(names)) < 2:
        return np.arange(len(kept)), "clips"
    return np.unique(names, return_inverse=True)[1], "speakers"


def _bootstrap(index: np.ndarray, errors: np.ndarray, lengths: np.ndarray, resampled: str, resamples: int, level: float,
               seed: int) -> tuple[dict, np.ndarray]:
    """The error rate in percent (`errors` over `lengths`, clips of a group drawn together) with its bootstrap
    interval, and the rate in each draw."""
    n = int(index.max()) + 1
    e, w = np.bincount(index, errors, n), np.bincount(index, lengths, n)
    rng = np.random.default_rng(seed)
    # each row of counts says how often each group is drawn in one draw; chunks of 100 draws bound the memory
    counts = (rng.multinomial(n, np.full(n, 1.0 / n), size=min(100, resamples - start))
              for start in range(0, resamples, 100))
    draws = np.concatenate([100 * (d @ e) / np.maximum(d @ w, 1e-12) for d in counts])
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return {"value": round(float(100 * e.sum() / w.sum()), 2), "low": round(float(low), 2),
            "high": round(float(high), 2), "level": level, "resampled": resampled, "groups": n,
            "resamples": resamples}, draws


def interval(errors: ClipErrors, groups: Sequence | None = None, resamples: int = RESAMPLES, level: float = LEVEL,
             seed: int = 0) -> dict:
    """The error rate (percent) with its bootstrap interval: {"value", "low", "high", "level", "resampled",
    "groups", "resamples"}; `groups` (per input clip, e.g. client_id) are drawn whole."""
    index, unit = _groups(groups, errors.kept)
    if not len(index):
        return {"value": None, "low": None, "high": None, "level": level, "resampled": unit, "groups": 0,
                "resamples": resamples}
    return _bootstrap(index, errors.errors, errors.lengths, unit, resamples, level, seed)[0]


def paired(before: ClipErrors, after: ClipErrors, groups: Sequence | None = None, resamples: int = RESAMPLES,
           level: float = LEVEL, seed: int = 0) -> dict:
    """`after` minus `before` in percentage points of WER on the same clips, with its bootstrap interval and
    `probability_improved`, the share of draws in which `after` has the lower error rate."""
    if before.kept != after.kept:
        raise ValueError("paired() needs both models scored on the same clips")
    index, unit = _groups(groups, before.kept)
    if not len(index):
        return {"value": None, "low": None, "high": None, "probability_improved": None}
    out, deltas = _bootstrap(index, after.errors - before.errors, before.lengths, unit, resamples, level, seed)
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


def confidence_record(baseline, finetuned=None) -> dict:
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
        out[key] = {"wer": interval(words[key], speakers), "cer": interval(chars, speakers)}
    if finetuned is not None:
        out["wer_difference_finetuned_minus_baseline"] = paired(words["baseline"], words["finetuned"], speakers)
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
