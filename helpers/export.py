"""Notebook 05: a fine-tuned model in CTranslate2 (faster-whisper), and a long recording made from test clips."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from helpers.audio import SAMPLING_RATE
from helpers.inference import WINDOW_SECONDS, clip_array, generation_kwargs, input_features, rtfx, token_budget

# The files faster-whisper reads beside CTranslate2's model.bin: the tokenizer (else it downloads one from the
# Hub) and the feature extractor's settings (the number of mel bins: 80 up to large-v2, 128 for large-v3).
FASTER_WHISPER_FILES = ("tokenizer.json", "preprocessor_config.json")

# faster-whisper's `transcribe` defaults differ from the greedy decoding notebooks 03 and 04 score with: beam search
# of 5, timestamp tokens, a temperature fallback when a transcript looks wrong, the previous window as a prompt.
# These settings decode the way `generate` does there (with the audio padded to 30 s: `pad_to_window`).
SAME_AS_TRANSFORMERS = {"beam_size": 1, "temperature": 0.0, "without_timestamps": True,
                        "condition_on_previous_text": False}


def folder_megabytes(folder: str | Path) -> float:
    """The size on disk of every file in `folder`, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


@dataclass
class Backend:
    """One way of running a model and what it wrote for each clip, with the time it took."""

    label: str
    texts: list[str]
    audio_seconds: float
    compute_seconds: float
    size_mb: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rtfx(self) -> float:
        return rtfx(self.audio_seconds, self.compute_seconds)


def pad_to_window(audio: np.ndarray) -> np.ndarray:
    """`audio` followed by silence up to Whisper's 30-second window (longer audio is returned as it is).

    transformers (and so notebook 03's training) pads a short clip's *audio* with zeros to 30 s before computing the
    log-mel features; faster-whisper pads the *features* with zeros, which in Whisper's scaled log-mel is not silence
    but the level of a faint sound. A fine-tuned model has only ever seen silence there and can write other words;
    padding the audio first gives faster-whisper the same input as transformers."""
    window = int(WINDOW_SECONDS * SAMPLING_RATE)
    return audio if len(audio) >= window else np.pad(audio, (0, window - len(audio)))


def faster_whisper_texts(model, arrays: Sequence[np.ndarray], language: str | None, pad: bool = False,
                         **settings) -> tuple[list[str], float]:
    """Transcribe each array (one at a time, as `WhisperModel.transcribe` does) with faster-whisper; returns the texts
    and the seconds it took. `pad=True` pads each clip with silence to 30 s first (`pad_to_window`); `settings` go to
    `transcribe` (beam_size, without_timestamps, temperature, ...)."""
    from helpers.languages import whisper_language_code  # loads transformers: only when called

    code = whisper_language_code(language) if language else None
    texts, seconds = [], 0.0
    for array in arrays:
        start = time.perf_counter()
        segments, _ = model.transcribe(pad_to_window(array) if pad else array, language=code, **settings)
        texts.append("".join(segment.text for segment in segments).strip())  # segments is a generator: run it
        seconds += time.perf_counter() - start
    return texts, seconds


def differing_clips(references: Sequence[str], first: Backend, second: Backend, normalizer) -> list[dict]:
    """The clips where two backends wrote different words once normalised (spacing does not count)."""
    return [{"reference": ref, first.label: a, second.label: b} for ref, a, b in zip(references, first.texts, second.texts)
            if normalizer(a).split() != normalizer(b).split()]


# ---------------------------------------------------------------------------------------------------- long-form


@dataclass
class Recording:
    """Test clips joined into one long recording with a pause after each, and the joined reference."""

    audio: np.ndarray
    reference: str
    clips: int
    pause_seconds: float

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLING_RATE


def long_recording(rows: Iterable[Any], seconds: float, pause_seconds: float = 1.0) -> Recording:
    """Join consecutive clips (loader rows) with `pause_seconds` of silence after each until the recording is at
    least `seconds` long (or the clips run out). The clips are used in their order, none is cut."""
    if seconds <= 0 or pause_seconds < 0:
        raise ValueError(f"seconds must be > 0 and pause_seconds >= 0, got {seconds} and {pause_seconds}")
    pause = np.zeros(int(round(pause_seconds * SAMPLING_RATE)), dtype=np.float32)
    parts, sentences, total = [], [], 0
    for row in rows:
        array = clip_array(row)
        parts += [array, pause]
        sentences.append(str(row["sentence"]).strip())
        total += len(array) + len(pause)
        if total >= seconds * SAMPLING_RATE:
            break
    if not parts:
        raise ValueError("no clips to make a long recording from")
    return Recording(np.concatenate(parts), " ".join(sentences), len(sentences), pause_seconds)


def chunked_pipeline(model, processor, language: str | None):
    """transformers' chunked long-form decoding: overlapping 30-second windows decoded independently and
    stitched on their overlap, which needs no timestamp tokens. Each window's transcript is capped at what 30 s of
    speech can hold (`token_budget`, as notebook 04 caps a clip's), so a window on which the decoder loops costs a
    bounded number of words."""
    from transformers import pipeline

    kwargs = generation_kwargs(model, language, max_new_tokens=token_budget(model, WINDOW_SECONDS))
    return pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                    feature_extractor=processor.feature_extractor, chunk_length_s=WINDOW_SECONDS,
                    batch_size=1, device=model.device, generate_kwargs=kwargs)


def transformers_long_form(model, processor, audio: np.ndarray, language: str | None) -> dict:
    """Sequential long-form decoding in transformers (what `generate` does with more than 30 s of audio): decode a
    30-second window, move on to the last timestamp the model predicted, repeat. Returns the text, the segments'
    (start, end) in seconds and the compute time."""
    import torch

    if len(audio) <= WINDOW_SECONDS * SAMPLING_RATE:
        raise ValueError(f"long-form decoding needs more than {WINDOW_SECONDS:g} s of audio, got {len(audio) / SAMPLING_RATE:.1f} s")
    inputs = input_features(processor, [audio], model.device, model.dtype, long_form=True)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, return_timestamps=True, return_segments=True,
                             **generation_kwargs(model, language))
    seconds = time.perf_counter() - start
    text = processor.batch_decode(out["sequences"], skip_special_tokens=True)[0].strip()
    spans = [(round(float(s["start"]), 2), round(float(s["end"]), 2)) for s in out["segments"][0]]
    return {"text": text, "segments": spans, "seconds": seconds}
