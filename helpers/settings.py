"""What a run trains with on this machine (precision, batch size, gradient accumulation and checkpointing, loader
workers, optimiser), from the accelerator and the model's size: one table behind both notebook 00's
recommendation (`recommend`) and notebook 03's settings (`device_defaults`, `resolve_settings`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Mapping

from helpers.environment import accelerator_info, torch_device

# CPU: batch 4 x accumulation 2 (effective batch 8). Measured with whisper-base on 2 cores
# (benchmarks/bench_scale.py measures the whole process tree): a peak of 3.6 GiB where batch 8 x 1 needs 5.2 GiB,
# at the same speed.
CPU_BATCH, CPU_ACCUMULATION = 4, 2

# Per-device batch size x gradient accumulation by model width (d_model) and accelerator memory (GiB), for
# mixed precision + gradient checkpointing + AdamW: what notebook 03 trains with and notebook 00 recommends.
TABLE_BASIS = ("small and medium at 16 and 40 GB are the tested set-ups of the community fine-tuning event (V100 "
               "16 GB: small 16 x 2, medium 2 x 16; A100 40 GB: small 64, medium 32); the other entries are "
               "estimates that keep the effective batch at 32-64")
GPU_TABLE: dict[int, list[tuple[float, int, int]]] = {
    384: [(0, 16, 2), (12, 32, 1), (24, 64, 1)],  # tiny
    512: [(0, 8, 4), (12, 32, 1), (24, 64, 1)],  # base
    768: [(0, 4, 8), (16, 16, 2), (24, 32, 1), (40, 64, 1)],  # small
    1024: [(0, 1, 32), (16, 2, 16), (24, 8, 4), (40, 32, 1), (80, 64, 1)],  # medium
    1280: [(0, 1, 32), (24, 2, 16), (40, 8, 4), (80, 32, 1)],  # large
}
MEMORY_SLACK = 0.9  # a "16 GB" card reports about 15.8 GiB
SIZE_NAMES = {384: "tiny", 512: "base", 768: "small", 1024: "medium", 1280: "large"}


@dataclass
class DeviceDefaults:
    device: str  # "cpu", "cuda" or "mps"
    device_name: str
    memory_gib: float | None
    precision: str  # "fp32", "bf16" or "fp16"
    gradient_checkpointing: bool
    batch_size: int
    gradient_accumulation_steps: int
    reason: str
    too_small: bool = False  # the GPU is below the smallest tested memory for this model

    def __str__(self) -> str:
        memory = f", {self.memory_gib:.0f} GiB" if self.memory_gib else ""
        return (f"device {self.device} ({self.device_name}{memory}): {self.precision}, batch {self.batch_size} x "
                f"gradient accumulation {self.gradient_accumulation_steps}, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}\n  why: {self.reason}")


def suggest_defaults(d_model: int, device: str = "cpu", memory_gib: float | None = None,
                     bf16_supported: bool = False, device_name: str = "") -> DeviceDefaults:
    """Precision, gradient checkpointing, batch size and gradient accumulation for a device and model width."""
    width = min(GPU_TABLE, key=lambda k: abs(k - int(d_model)))  # the nearest row: tiny 384 ... large 1280
    if device == "cuda":
        precision = "bf16" if bf16_supported else "fp16"
        memory = float(memory_gib or 0.0)
        minimum, batch, accum = [r for r in GPU_TABLE[width] if memory >= r[0] * MEMORY_SLACK][-1]
        scaling = "bf16 needs no loss scaling" if bf16_supported else "no bf16 on this GPU"
        why = (f"{precision} mixed precision ({scaling}); gradient checkpointing trades ~20% speed for memory; "
               f"whisper-{SIZE_NAMES[width]} on a {minimum:.0f}+ GiB GPU: {batch} x {accum} (effective batch "
               f"{batch * accum})")
        if minimum == 0:
            why += "; this GPU is small for this model: consider adafactor, adamw_8bit or lora"
        return DeviceDefaults(device, device_name or "GPU", memory_gib, precision, True, batch, accum, why,
                              too_small=minimum == 0)
    if device == "mps":
        why = "Apple GPU: fp32 (mixed precision training is unreliable on MPS), small batches"
        return DeviceDefaults(device, device_name or "Apple GPU", memory_gib, "fp32", False, CPU_BATCH,
                              CPU_ACCUMULATION, why)
    why = ("CPU: fp32 (no mixed precision training on CPU); no gradient checkpointing (memory is not the limit, it "
           f"would only slow steps); batch {CPU_BATCH} x gradient accumulation {CPU_ACCUMULATION} (measured: "
           "whisper-base peaks at 3.6 GiB of RAM for the whole training, against 5.2 GiB at batch 8 x 1, at the same "
           "speed)")
    return DeviceDefaults("cpu", device_name or "CPU", memory_gib, "fp32", False, CPU_BATCH, CPU_ACCUMULATION, why)


def recommend(info: Mapping) -> dict:
    """Which checkpoints fit, at which batch size, and which precision to train in, for `accelerator_info()` output:
    the same table (`suggest_defaults`) that notebook 03 trains with."""
    device = info.get("device", "cpu")
    if device == "cuda":
        memory = float(info.get("memory_gib") or 0.0)
        suggested = {name: suggest_defaults(width, "cuda", memory, bool(info.get("bf16"))) for width, name in
                     SIZE_NAMES.items()}
        plans = [(name, d.batch_size, d.gradient_accumulation_steps) for name, d in suggested.items()
                 if name in ("tiny", "base") or not d.too_small]
        label, basis, precision = f"GPU with {memory:.0f} GiB", TABLE_BASIS, suggested["base"].precision
        why = ("bf16 has fp32's range, so no loss scaling is needed" if precision == "bf16"
               else "this GPU has no bf16; fp16 with loss scaling (the Trainer does it)")
        advice = f"Train in {precision} ({why})."
    else:
        plans = [("tiny", CPU_BATCH, CPU_ACCUMULATION), ("base", CPU_BATCH, CPU_ACCUMULATION)]
        precision = "fp32"
        if device == "mps":
            label, basis = "Apple GPU", "estimate"
            advice = "Apple GPU: tiny/base checkpoints in fp32; mixed precision training is not reliable on MPS."
        else:
            label, basis = "CPU only", "tested on 2 CPU cores"
            advice = ("CPU only: tiny or base on the embedded sample or the real-speech data, for learning the "
                      "workflow; use a GPU (16 GB or more) for a real fine-tune.")
    return {"device_class": label, "precision": precision, "basis": basis, "advice": advice,
            "plans": [{"checkpoint": c, "batch_size": b, "grad_accum": g} for c, b, g in plans]}


def default_num_workers(device: str, streaming: bool = False) -> int:
    """DataLoader worker processes that decode clips and compute features while the model trains.

    On a CPU the model's threads use every core: one worker prepares the next batch meanwhile (a small fraction of
    a step). On a GPU the workers must keep up: all cores but one per training process, at most 8 (README: measured
    loader throughput). A stream is read in the training process (0), where its drop counts are kept."""
    if streaming:
        return 0
    if device != "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, per_process - 1))


def device_defaults(model_or_config) -> DeviceDefaults:
    """The one place that turns 'this machine + this model' into training settings (notebook 00's probe)."""
    config = getattr(model_or_config, "config", model_or_config)
    info = accelerator_info()
    name = f"CPU, {info['cpu_cores']} cores" if info["device"] == "cpu" else info["name"]
    return suggest_defaults(int(config.d_model), info["device"], info["memory_gib"], info["bf16"], name)


def resolve_settings(cfg, defaults: DeviceDefaults) -> dict:
    """Explicit parameters of a run (a helpers.train.TrainConfig) win over the suggestions; returns the values the
    run will use."""
    precision = cfg.precision or defaults.precision
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', not {precision!r}.")
    if precision != "fp32" and defaults.device != "cuda":
        raise ValueError(f"precision {precision!r} needs a CUDA GPU; this machine trains in fp32 ({defaults.device}).")
    return {
        "device": defaults.device,
        "precision": precision,
        "batch_size": int(cfg.batch_size or defaults.batch_size),
        "gradient_accumulation_steps": int(cfg.gradient_accumulation_steps or defaults.gradient_accumulation_steps),
        "gradient_checkpointing": (
            defaults.gradient_checkpointing if cfg.gradient_checkpointing is None else bool(cfg.gradient_checkpointing)
        ),
        "num_workers": (default_num_workers(defaults.device, cfg.streaming) if cfg.num_workers is None
                        else int(cfg.num_workers)),
    }


OPTIMIZERS = {"adamw": "adamw_torch", "adafactor": "adafactor", "adamw_8bit": "adamw_bnb_8bit"}


def installed(package: str) -> bool:  # a function, so that tests can fake a missing package
    return importlib.util.find_spec(package) is not None


def check_optimizer(name: str) -> str:
    """The Trainer's `optim` value for one of our optimiser names; a clear error when it cannot run here."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, not {name!r}.")
    if name == "adamw_8bit":
        missing = []
        if not installed("bitsandbytes"):
            missing.append("the bitsandbytes package (pip install bitsandbytes)")
        if torch_device() != "cuda":
            missing.append("a CUDA GPU")
        if missing:
            raise RuntimeError(
                "optimizer='adamw_8bit' (8-bit Adam, optimiser state in 8 bits: about 75% less optimiser memory) "
                f"needs {' and '.join(missing)}, which this machine lacks. Use optimizer='adamw' or 'adafactor'."
            )
    return OPTIMIZERS[name]
