"""What the benchmarks share: the machine load they print beside their timings, and the CTranslate2 conversion."""

from __future__ import annotations

import os
from pathlib import Path


def machine_load() -> str:
    """The 1-minute load average, which says how far the timings can be trusted on a shared machine."""
    if not hasattr(os, "getloadavg"):
        return "machine load: not available on this system"
    return (f"machine load (1-minute average) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(timings on a shared machine vary with it)")


def convert(model_dir: str | Path, out_dir: str | Path, quantization: str = "float32") -> Path:
    """Convert a saved transformers Whisper folder to CTranslate2 in `out_dir`, with the files faster-whisper needs.

    `quantization` is how the weights are stored: "float32", "float16", "int8", "int8_float16", ...; a model
    stored in one type can still be loaded in another (`compute_type`)."""
    from ctranslate2.converters import TransformersConverter

    from helpers.export import FASTER_WHISPER_FILES

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    missing = [name for name in FASTER_WHISPER_FILES if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{model_dir.as_posix()} has no {' or '.join(missing)}: save the processor with the model "
            "(`processor.save_pretrained(folder)`, as notebook 03 does) before converting it.")
    TransformersConverter(str(model_dir), copy_files=list(FASTER_WHISPER_FILES)).convert(
        str(out_dir), quantization=quantization, force=True)
    return out_dir
