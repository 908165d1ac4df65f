"""Batched Whisper inference and its speed (RTFx).

Clips are grouped into batches of similar length, turned into log-mel features with an attention mask, and decoded
together with the language and task set explicitly (greedy), in half precision on a GPU. RTFx, the Open ASR
Leaderboard's measure, is seconds of audio transcribed per second of compute, measured after a warm-up pass:
RTFx 10 means one hour of audio takes six minutes.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from helpers.audio import SAMPLING_RATE

WINDOW_SECONDS = 30.0  # Whisper sees 30-second windows; longer clips need long-form (sequential) decoding.
# A stuck decoder repeats itself until Whisper's 448-token limit, which on a 5-second clip costs 20 times the
# time of the real transcript. No speech needs more than about 16 tokens a second (fast Hindi, whose script
# takes the most tokens; Spanish needs 6), so "auto" stops a batch at 30 tokens per second of its longest clip,
# plus 20.
TOKENS_PER_SECOND = 30
TOKEN_MARGIN = 20
# On a CPU, run the encoder one clip at a time inside a batch (see _generate_batch); False: the whole batch at once.
CPU_ENCODER_CLIP_BY_CLIP = True


# ----------------------------------------------------------------------------------------- Devices, precision, loading


def pick_device(device: str = "auto") -> str:
    """"auto" picks "cuda" when a GPU is visible, else "cpu" (also on an Apple GPU: inference speed is measured on
    CUDA and the CPU); any other value is returned as given."""
    if device != "auto":
        return device
    from helpers.environment import torch_device

    return "cuda" if torch_device() == "cuda" else "cpu"


def pick_dtype(device: str, dtype: str = "auto"):
    """Precision for inference: float16 on a GPU and float32 on the CPU when "auto", or the one named. Half
    precision on the CPU is slow and is refused, because it would make the speed numbers meaningless."""
    import torch

    names = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float32": torch.float32, "fp32": torch.float32}
    if dtype == "auto":
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    if dtype not in names:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(names)}, got {dtype!r}")
    chosen = names[dtype]
    if chosen != torch.float32 and str(device) == "cpu":
        raise ValueError(f"dtype {dtype!r} on the CPU: use float32 there (half precision is for GPUs)")
    return chosen


def load_model(name_or_path: str | Path, device: str = "auto", dtype: str = "auto"):
    """(model, processor) from a local folder or a Hub id, in eval mode on `device`, ready for inference. A local
    path that does not exist gives a FileNotFoundError naming it (no silent fall-back to the Hub)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from helpers.files import hub_id

    hub = hub_id(name_or_path)
    name = hub or str(name_or_path)
    if not hub and not Path(name).expanduser().exists():
        raise FileNotFoundError(
            f"model {name!r}: no such folder. Give a Hugging Face Hub id such as 'openai/whisper-small' or a "
            "folder holding config.json, the weights and the processor files"
        )
    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    try:
        model = WhisperForConditionalGeneration.from_pretrained(name, dtype=torch_dtype)
        processor = WhisperProcessor.from_pretrained(name)
    except OSError as err:  # transformers' message is about connections and cache folders, not about what to do
        if hub is None:
            raise OSError(f"model folder {name!r} cannot be loaded as a Whisper model with its processor "
                          f"(config.json, weights, tokenizer and preprocessor files): {err}") from err
        raise OSError(
            f"model {name!r} is not in this machine's Hugging Face cache and the Hub cannot be reached (offline, "
            "HF_HUB_OFFLINE=1, a proxy, or a wrong id). Run once with internet access to download it, or pass a "
            "local folder instead, such as models/whisper-base (made by `make setup`)."
        ) from None
    tokens, vocabulary = len(processor.tokenizer), int(model.config.vocab_size)
    if tokens < 0.9 * vocabulary:  # transformers builds an almost empty tokenizer when its files are missing
        raise ValueError(
            f"model {name!r}: its tokenizer has {tokens} tokens where the model has {vocabulary}: tokenizer.json (or "
            "vocab.json and merges.txt) is missing from the folder. Copy the tokenizer files from the checkpoint it "
            "was fine-tuned from (e.g. models/whisper-base), or save the processor with the model."
        )
    model.to(device).eval()
    return model, processor


def is_multilingual(model_or_config) -> bool:
    """True for multilingual checkpoints (given a model, its generation config or its config); English-only ones
    (".en") have no language or task tokens."""
    gen = getattr(model_or_config, "generation_config", model_or_config)
    flag = getattr(gen, "is_multilingual", None)
    if flag is not None:
        return bool(flag)
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "vocab_size", 51865) >= 51865


def generation_kwargs(model, language: str | None, num_beams: int = 1, max_new_tokens: int | None = None) -> dict:
    """Keyword arguments for `model.generate`: language and the transcribe task forced, greedy unless num_beams > 1.

    `language` is a Common Voice locale ("es", "zh-CN") or a Whisper language name ("spanish"); None lets the
    model detect the language. English-only models take no language or task: asking one for another language
    warns and transcribes as English.
    """
    from helpers.languages import whisper_language

    kwargs: dict[str, Any] = {"num_beams": num_beams, "do_sample": False}
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = max_new_tokens
    if not is_multilingual(model):
        if language is not None and whisper_language(language) != "english":
            warnings.warn(f"this model is English-only: it cannot transcribe {language!r}; it will write English")
        return kwargs
    if language is not None:
        kwargs["language"] = whisper_language(language)
    kwargs["task"] = "transcribe"
    return kwargs


# --------------------------------------------------------------------------------------------------------------- Clips


def clip_array(clip: Any) -> np.ndarray:
    """The 16 kHz mono float32 waveform of a loader row ({"audio": {"array", "sampling_rate"}, ...}), an audio dict
    or an array; other sampling rates are resampled."""
    if isinstance(clip, dict) and "audio" in clip:
        clip = clip["audio"]
    rate = SAMPLING_RATE
    if isinstance(clip, dict):
        if "array" not in clip:
            raise ValueError(f"audio dict without an 'array' (keys: {sorted(clip)}); decode the audio first")
        rate = int(clip.get("sampling_rate") or SAMPLING_RATE)
        clip = clip["array"]
    array = np.asarray(clip, dtype=np.float32)
    if array.ndim == 2:  # (samples, channels) or (channels, samples): average the channels
        array = array.mean(axis=1 if array.shape[0] > array.shape[1] else 0)
    if array.ndim != 1:
        raise ValueError(f"audio must be a 1-D waveform, got an array of shape {array.shape}")
    if rate != SAMPLING_RATE:
        import soxr

        array = soxr.resample(array, rate, SAMPLING_RATE).astype(np.float32)
    return array


# ----------------------------------------------------------------------------------------------- Batched transcription


def rtfx(audio_seconds: float, compute_seconds: float) -> float:
    """Inverse real-time factor: seconds of audio transcribed per second of compute."""
    if audio_seconds < 0 or compute_seconds < 0:
        raise ValueError(f"durations must be >= 0, got audio {audio_seconds} s and compute {compute_seconds} s")
    if compute_seconds == 0:
        return math.inf if audio_seconds > 0 else 0.0
    return audio_seconds / compute_seconds


@dataclass
class Transcription:
    """Texts in the order of the input clips, plus what the speed measurement needs."""

    texts: list[str]
    audio_seconds: float
    compute_seconds: float
    batch_size: int
    device: str
    dtype: str
    batch_sizes: list[int] = field(default_factory=list)
    clip_seconds: list[float] = field(default_factory=list)  # duration of each clip, in input order

    @property
    def rtfx(self) -> float:
        return rtfx(self.audio_seconds, self.compute_seconds)

    def speed(self) -> dict:
        """The speed record stored in results.json."""
        return {
            "rtfx": round(self.rtfx, 2),
            "audio_seconds": round(self.audio_seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "batch_size": self.batch_size,
            "device": self.device,
            "dtype": self.dtype,
            "num_clips": len(self.texts),
        }


def plan_batches(durations: Sequence[float], batch_size: int, window: int | None = None) -> list[list[int]]:
    """Group clip indices into batches of similar duration (longest first within each look-ahead window).

    Greedy decoding of a batch lasts as long as its longest transcript, so mixing a 2-second and a 10-second
    clip wastes steps on the short one. Sorting only inside windows of `window` clips (default 16 batches)
    keeps memory bounded on large or streamed splits. Every index appears exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    window = window or batch_size * 16
    batches: list[list[int]] = []
    for start in range(0, len(durations), window):
        chunk = sorted(range(start, min(start + window, len(durations))), key=lambda i: (-durations[i], i))
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return batches


def input_features(processor, arrays: list[np.ndarray], device, dtype, long_form: bool) -> dict:
    """`generate`'s inputs for a batch: short clips padded to the 30-second window; long-form keeps everything,
    padded to the longest clip. Either way the attention mask says where each clip ends."""
    extra = {"truncation": False, "padding": "longest"} if long_form else {}
    inputs = processor.feature_extractor(arrays, sampling_rate=SAMPLING_RATE, return_tensors="pt",
                                         return_attention_mask=True, **extra)
    return {"input_features": inputs["input_features"].to(device, dtype=dtype),
            "attention_mask": inputs["attention_mask"].to(device)}


def _generate_batch(model, processor, arrays: list[np.ndarray], kwargs: dict) -> list[str]:
    import torch

    long_form = max(len(a) for a in arrays) > WINDOW_SECONDS * SAMPLING_RATE
    no_timestamps = getattr(model.generation_config, "no_timestamps_token_id", None)
    if long_form and (no_timestamps is None or len(processor.tokenizer) <= no_timestamps + 1):
        warnings.warn("clips longer than 30 s need timestamp tokens, which this model's tokenizer lacks: "
                      "only their first 30 seconds are transcribed")
        long_form = False
    inputs = input_features(processor, arrays, model.device, model.dtype, long_form)
    extra = {"return_timestamps": True} if long_form else {}
    with torch.inference_mode():
        if CPU_ENCODER_CLIP_BY_CLIP and model.device.type == "cpu" and not long_form and len(arrays) > 1:
            # On a CPU a batch of 30-second windows overflows the caches: the encoder runs faster clip by clip
            # (benchmarks/bench_inference.py measures both ways). The decoder, whose steps are small, stays batched.
            from transformers.modeling_outputs import BaseModelOutput

            encoder = model.get_encoder()
            hidden = torch.cat([encoder(features[None]).last_hidden_state for features in inputs.pop("input_features")])
            inputs["encoder_outputs"] = BaseModelOutput(last_hidden_state=hidden)
        ids = model.generate(**inputs, **kwargs, **extra)
    if not isinstance(ids, torch.Tensor):
        ids = ids["sequences"]
    return [text.strip() for text in processor.batch_decode(ids, skip_special_tokens=True)]


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def token_budget(model, seconds: float) -> int:
    """The "auto" limit of new tokens for audio of `seconds` (see TOKENS_PER_SECOND), within the model's limit."""
    limit = int(getattr(model.config, "max_target_positions", 448)) - 4  # room for the decoder prompt
    return max(1, min(limit, math.ceil(seconds * TOKENS_PER_SECOND) + TOKEN_MARGIN))


def transcribe(model, processor, clips: Iterable[Any], language: str | None = None, batch_size: int = 8,
               max_new_tokens: int | str | None = "auto", window: int | None = None,
               on_window: Callable[[list[str]], None] | None = None) -> Transcription:
    """Transcribe clips in batches and time it.

    `clips` is any iterable of loader rows, audio dicts or 16 kHz arrays (a list, a `datasets.Dataset` or a
    streamed `IterableDataset`); it is read window by window, so a whole split never has to fit in memory.
    The clock covers feature extraction, generation and decoding of every batch (not reading audio files),
    so RTFx measures the model. Call `warm_up` first when the speed matters.

    `max_new_tokens`: "auto" caps each batch by the duration of its longest clip (`token_budget`), so a looping
    decoder costs little time; None leaves the model's own limit; an int is a fixed cap.
    `on_window`, if given, gets each window's texts as soon as they are done (to write them as they come).
    """
    auto = max_new_tokens == "auto"
    kwargs = generation_kwargs(model, language, max_new_tokens=None if auto else max_new_tokens)
    clips = iter(clips)
    texts: list[str] = []
    audio_seconds = compute_seconds = 0.0
    sizes: list[int] = []
    seconds: list[float] = []
    for chunk in iter(lambda: list(islice(clips, window or batch_size * 16)), []):  # a window of clips at a time
        arrays = [clip_array(clip) for clip in chunk]
        out: list[str | None] = [None] * len(arrays)
        for batch in plan_batches([len(a) for a in arrays], batch_size, window=len(arrays)):
            _sync(model.device.type)
            start = time.perf_counter()
            batch_kwargs = kwargs
            if auto:
                longest = max(len(arrays[i]) for i in batch) / SAMPLING_RATE
                if longest <= WINDOW_SECONDS:  # long-form decoding limits each 30-second window itself
                    batch_kwargs = {**kwargs, "max_new_tokens": token_budget(model, longest)}
            batch_texts = _generate_batch(model, processor, [arrays[i] for i in batch], batch_kwargs)
            _sync(model.device.type)
            compute_seconds += time.perf_counter() - start
            sizes.append(len(batch))
            for i, text in zip(batch, batch_texts):
                out[i] = text
        seconds += [len(a) / SAMPLING_RATE for a in arrays]
        audio_seconds += sum(len(a) for a in arrays) / SAMPLING_RATE
        texts.extend(out)  # type: ignore[arg-type]
        if on_window is not None:
            on_window(out)  # type: ignore[arg-type]
    return Transcription(texts=texts, audio_seconds=audio_seconds, compute_seconds=compute_seconds,
                         batch_size=batch_size, device=str(model.device), dtype=str(model.dtype).replace("torch.", ""),
                         batch_sizes=sizes, clip_seconds=seconds)


def warm_up(model, processor, clip: Any, language: str | None = None, batch_size: int = 1) -> None:
    """Run one small batch so that one-off costs (CUDA context, kernel selection, memory pools) are not timed."""
    transcribe(model, processor, [clip] * batch_size, language=language, batch_size=batch_size, max_new_tokens=8)
