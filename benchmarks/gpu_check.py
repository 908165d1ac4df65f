"""What a GPU does with Whisper: training throughput and peak memory, and evaluation speed by backend.

Training: whisper-base and whisper-small, bfloat16 autocast, AdamW, batches of 16, 32 and 64 clips (30-second
log-mel windows and 40-token labels), with and without gradient checkpointing; samples per second over a few steps
after a warm-up step, and the peak GPU memory. A batch that does not fit is recorded as "out of memory".
Evaluation: RTFx (seconds of audio per second of compute) at batch 64 on real test clips, for transformers (SDPA
attention, float16) and CTranslate2 (float16 and int8 weights), greedy, without timestamps.

    make gpu-check                                          # on a CUDA machine: prints, writes runs/gpu_check.json
    python benchmarks/gpu_check.py --models openai/whisper-base openai/whisper-small --out gpu_check.json
    python benchmarks/gpu_check.py --cpu                    # the small CPU form that make test runs

Every figure is measured here: the JSON also names the GPU, the versions and the settings.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.audio import SAMPLING_RATE  # noqa: E402

LABEL_TOKENS = 40  # a typical Common Voice sentence with its prompt


def train_throughput(model_name: str, batch: int, checkpointing: bool, steps: int, device: str) -> dict:
    """Samples per second and peak memory of `steps` optimiser steps after one warm-up step."""
    import torch

    from helpers.inference import load_model

    model, _ = load_model(model_name, device=device, dtype="float32")
    model.train()
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    features = torch.randn(batch, model.config.num_mel_bins, 3000, device=device)
    labels = torch.randint(0, 50000, (batch, LABEL_TOKENS), device=device)
    cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            loss = model(input_features=features, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        step()  # warm-up: kernels chosen, optimizer state allocated
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    except torch.OutOfMemoryError:
        return {"batch": batch, "gradient_checkpointing": checkpointing, "out_of_memory": True}
    finally:
        del model, optimizer
        if cuda:
            torch.cuda.empty_cache()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return {"batch": batch, "gradient_checkpointing": checkpointing, "samples_per_second": round(batch * steps / seconds, 2),
            "peak_memory_gib": peak and round(peak, 2), "steps": steps, "out_of_memory": False}


def ct2_texts(model, arrays, language: str, batch: int, processor) -> tuple[list, float]:
    """Batched decoding with a CTranslate2 Whisper model through its own API (faster-whisper's pipeline batches one
    file only)."""
    import ctranslate2
    import numpy as np

    prompt = ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"]
    texts, seconds = [], 0.0
    for i in range(0, len(arrays), batch):
        start = time.perf_counter()
        features = processor.feature_extractor(arrays[i:i + batch], sampling_rate=SAMPLING_RATE, return_tensors="np")
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features["input_features"], dtype=np.float32))
        results = model.generate(view, [prompt] * len(arrays[i:i + batch]), beam_size=1)
        texts += [processor.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]
        seconds += time.perf_counter() - start
    return texts, seconds


def eval_speed(model_name: str, arrays, language: str, batch: int, device: str) -> list[dict]:
    """RTFx of transformers (SDPA) and of CTranslate2 at `batch`, on the same clips, after a warm-up batch."""
    import ctranslate2
    import torch

    from benchmarks.common import convert
    from helpers.inference import load_model, rtfx, transcribe, warm_up
    from helpers.languages import whisper_language_code

    cuda = device.startswith("cuda")
    dtype = "float16" if cuda else "float32"
    model, processor = load_model(model_name, device=device, dtype=dtype)
    warm_up(model, processor, arrays[0], language, batch_size=min(batch, len(arrays)))
    result = transcribe(model, processor, arrays, language=language, batch_size=batch)
    rows = [{"backend": f"transformers {dtype} ({model.config._attn_implementation})", "batch": batch,
             "rtfx": round(result.rtfx, 2)}]
    del model
    if cuda:
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory() as tmp:
        folder = convert(model_name, Path(tmp) / "ct2", quantization="float16" if cuda else "float32")
        for compute_type in ("float16", "int8_float16") if cuda else ("float32", "int8"):
            code = whisper_language_code(language)
            ct2 = ctranslate2.models.Whisper(str(folder), device=device, compute_type=compute_type)
            ct2_texts(ct2, arrays[:batch], code, batch, processor)  # warm-up
            _, seconds = ct2_texts(ct2, arrays, code, batch, processor)
            rows.append({"backend": f"ctranslate2 {compute_type}", "batch": batch,
                         "rtfx": round(rtfx(result.audio_seconds, seconds), 2)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["openai/whisper-base", "openai/whisper-small"])
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dataset", default="real", help="test clips for the evaluation speed (default: real Czech)")
    parser.add_argument("--language", default="cs")
    parser.add_argument("--clips", type=int, default=256, help="test clips for the evaluation speed (repeated if fewer)")
    parser.add_argument("--cpu", action="store_true", help="the small CPU form: whisper-base, batch 2, one step")
    parser.add_argument("--out", default="runs/gpu_check.json")
    args = parser.parse_args(argv)
    if args.cpu:
        args.models, args.batches, args.eval_batch, args.steps, args.clips = ["models/whisper-base"], [2], 2, 1, 4

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.chdir(ROOT)
    import ctranslate2
    import torch
    import transformers

    from helpers.data import load_split
    from helpers.environment import ensure_local_model
    from helpers.evaluation import first_clips
    from helpers.files import write_json
    from helpers.inference import clip_array

    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run this on a GPU machine, or `--cpu` for the small CPU form")
        return 2
    arrays = [clip_array(row) for row in first_clips(load_split(args.dataset, args.language, "test"), args.clips)]
    arrays = (arrays * (args.clips // max(len(arrays), 1) + 1))[:args.clips]
    record = {"device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "transformers": transformers.__version__,
              "ctranslate2": ctranslate2.__version__, "label_tokens": LABEL_TOKENS,
              "eval_clips": len(arrays), "eval_audio_seconds": round(sum(len(a) for a in arrays) / SAMPLING_RATE, 1),
              "training": {}, "evaluation": {}}
    print(f"device: {record['device']}")
    for name in args.models:
        ensure_local_model(name)
        record["training"][name] = []
        for batch in args.batches:
            for checkpointing in (False, True):
                row = train_throughput(name, batch, checkpointing, args.steps, device)
                record["training"][name].append(row)
                print(f"train {name} batch {batch:>3} checkpointing {checkpointing!s:>5}: " + (
                    "out of memory" if row["out_of_memory"] else
                    f"{row['samples_per_second']:8.2f} samples/s, peak {row['peak_memory_gib']} GiB"))
        record["evaluation"][name] = eval_speed(name, arrays, args.language, args.eval_batch, device)
        for row in record["evaluation"][name]:
            print(f"eval  {name} {row['backend']:<36} batch {row['batch']:>3}: RTFx {row['rtfx']:8.2f}")
    print(f"wrote {write_json(record, args.out).as_posix()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
