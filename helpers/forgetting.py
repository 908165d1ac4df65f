"""What fine-tuning cost: another language's WER and Whisper's language identification, before and after.

Fine-tuning on one language teaches the decoder that every clip is in that language. Two measures show what that
did to the rest of the model: Whisper's own language detection (the token it predicts after
<|startoftranscript|>) on clips of a known language, and the WER on another language's clips.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from helpers.inference import clip_array, input_features, transcribe
from helpers.metrics import compute_metrics, rounded


def detected_languages(model, processor, arrays: Sequence[np.ndarray], batch_size: int = 8) -> list[str]:
    """Whisper's language code for each 16 kHz clip ("es", "en", ...), from its own language detection."""
    import torch

    codes: list[str] = []
    for start in range(0, len(arrays), batch_size):
        batch = [np.asarray(a, dtype=np.float32) for a in arrays[start:start + batch_size]]
        features = input_features(processor, batch, model.device, model.dtype, long_form=False)["input_features"]
        with torch.inference_mode():
            ids = model.detect_language(features)
        codes += [token.strip("<|>") for token in processor.tokenizer.convert_ids_to_tokens(ids.view(-1).tolist())]
    return codes


def language_id(run, arrays: Sequence[np.ndarray], expected: str) -> dict[str, Any]:
    """Language detection of an evaluated model (helpers.evaluation.EvalRun) on clips in the language `expected`
    (a Whisper code such as "es"): {"clips", "accuracy", "detected": {code: clips}}."""
    codes = detected_languages(run.model, run.processor, arrays)
    return {"clips": len(codes), "accuracy": round(sum(c == expected for c in codes) / len(codes), 3) if codes else None,
            "detected": dict(Counter(codes).most_common())}


def cost_record(runs: Sequence, target: Sequence[np.ndarray], target_code: str, other_clips: Sequence[Any],
                other_language: str, normalizer) -> dict[str, Any]:
    """For each evaluated model: language identification on the target language's clips and on the other
    language's, and the WER on the other language's clips (transcribed as that language, Whisper's normaliser
    for it). What results.json keeps under "fine_tuning_cost"."""
    from helpers.languages import whisper_language_code  # loads transformers: only when called

    other_code = whisper_language_code(other_language)
    other_arrays = [clip_array(clip) for clip in other_clips]
    references = [str(clip["sentence"]) for clip in other_clips]
    out: dict[str, Any] = {"other_language": other_language, "other_clips": len(other_arrays)}
    for run in runs:
        texts = transcribe(run.model, run.processor, other_arrays, language=other_language).texts
        out[run.label] = {
            "language_id_target": language_id(run, target, target_code),
            "language_id_other": language_id(run, other_arrays, other_code),
            "other_language_wer": rounded(compute_metrics(references, texts, normalizer)["wer"]),
        }
    return out


def cost_rows(record: dict[str, Any], target_code: str) -> list[dict[str, Any]]:
    """The record as table rows, one per model."""
    other = record["other_language"]
    return [{"model": label,
             f"detected as {target_code} (of {item['language_id_target']['clips']} {target_code} clips)":
                 f"{item['language_id_target']['accuracy']:.0%}",
             f"{other} clips detected as {other}": f"{item['language_id_other']['accuracy']:.0%}",
             f"{other} WER %": f"{item['other_language_wer']:.1f}"}
            for label, item in record.items() if isinstance(item, dict)]
