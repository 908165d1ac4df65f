"""Decode an audio clip into what Whisper expects: mono float32 samples at 16 kHz.

soundfile (libsndfile) reads mp3, wav, flac and ogg from a path or from bytes; soxr resamples. No FFmpeg
or torchcodec is needed, which is why the data loader asks `datasets` for undecoded audio and calls this.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


SAMPLING_RATE = 16000  # what Whisper's feature extractor expects: every clip is resampled to it


class AudioError(ValueError):
    """A clip that cannot be used: missing, unreadable or empty. The message names the clip and the reason."""

    def __init__(self, name: str, reason: str):
        super().__init__(name, reason)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def decode(source: str | Path | bytes, target_sr: int = SAMPLING_RATE, name: str | None = None) -> tuple[np.ndarray, float]:
    """Read `source` (a path, or the file's bytes) and return (samples, duration in seconds).

    Samples are a 1-D float32 array at `target_sr`: several channels are averaged into one, other rates are
    resampled. `name` is how errors refer to the clip (default: the path, or "<N bytes>").
    Raises AudioError for a missing file, empty data, an unreadable format or zero samples.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or f"<{len(source)} bytes>"
        if len(source) == 0:
            raise AudioError(label, "empty audio data (0 bytes)")
        handle = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise AudioError(label, "file not found")
        if path.stat().st_size == 0:
            raise AudioError(label, "empty file (0 bytes)")
        handle = str(path)
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except RuntimeError as err:  # soundfile.LibsndfileError and friends
        detail = getattr(err, "error_string", "") or str(err)
        if "does not exist" in detail:  # libsndfile's words when it cannot recognise an mp3
            detail = "format not recognised"
        raise AudioError(label, f"corrupt or unsupported audio ({detail})") from err
    if data.shape[0] == 0:
        raise AudioError(label, "empty audio (0 samples)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != target_sr:
        mono = soxr.resample(mono, rate, target_sr)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    return mono, len(mono) / target_sr
