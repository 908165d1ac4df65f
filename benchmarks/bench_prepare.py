"""Batch building: the collator's log-mel features (speech only) against the feature extractor's, same clips.

Training builds every batch on the fly (helpers.prepare.SpeechCollator: features + label ids), so the speed of
turning decoded clips into features is the data loader's speed. Both ways, in one process, in the same run:

- feature extractor: the collator with `processor.feature_extractor(arrays)` (the STFT of 30 s per clip, padding
  included), as the blog recipe computes features;
- helpers: the collator as it is, with `log_mel` (the STFT over the speech only; the silent frames filled in).

    .venv/bin/python -m benchmarks.bench_prepare                        # sample/es, train+dev, repeated 3 times
    .venv/bin/python -m benchmarks.bench_prepare --language tr --repeat 5

Decoding the audio is shared (done once, before timing). Prints clips/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--language", default="es")
    parser.add_argument("--split", default="train+dev")
    parser.add_argument("--model", default="models/whisper-base")
    parser.add_argument("--repeat", type=int, default=3, help="use the clips this many times (more clips, steadier timing)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    from helpers.notebook import setup

    setup()
    import numpy as np
    import torch
    from transformers import WhisperProcessor

    from helpers.data import load_split
    from helpers.environment import ensure_local_model
    from helpers.languages import whisper_language
    from helpers import prepare
    from helpers.prepare import SpeechCollator

    ensure_local_model(args.model)  # converts models/whisper-base when missing
    processor = WhisperProcessor.from_pretrained(args.model)
    processor.tokenizer.set_prefix_tokens(language=whisper_language(args.language), task="transcribe")
    ds = load_split(args.dataset, args.language, args.split)
    rows = [ds[i] for i in range(len(ds))] * args.repeat
    n = len(rows)
    collator = SpeechCollator(processor)

    def build_all():
        return [collator(rows[i:i + args.batch_size]) for i in range(0, n, args.batch_size)]

    fe = processor.feature_extractor
    plain = lambda arrays, _: fe(arrays, sampling_rate=16000, return_tensors="np").input_features  # noqa: E731
    speech_only = prepare.log_mel
    prepare.log_mel = plain
    recipe, recipe_wall, recipe_cpu = timed(build_all)
    prepare.log_mel = speech_only
    ours, ours_wall, ours_cpu = timed(build_all)

    # Same numbers out of both (spot check on a few batches).
    for i in (0, len(ours) // 2, len(ours) - 1):
        assert np.allclose(recipe[i]["input_features"].numpy(), ours[i]["input_features"].numpy(), atol=1e-5)
        assert torch.equal(recipe[i]["labels"], ours[i]["labels"])

    result = {
        "clips": n,
        "dataset": f"{args.dataset}/{args.language} {args.split} x{args.repeat}",
        "torch_threads": torch.get_num_threads(),
        "feature_extractor_seconds": round(recipe_wall, 2),
        "feature_extractor_cpu_seconds": round(recipe_cpu, 2),
        "helpers_seconds": round(ours_wall, 2),
        "helpers_cpu_seconds": round(ours_cpu, 2),
        "feature_extractor_clips_per_s": round(n / recipe_wall, 1),
        "helpers_clips_per_s": round(n / ours_wall, 1),
        "ratio": round(recipe_wall / ours_wall, 2),
        "cpu_ratio": round(recipe_cpu / ours_cpu, 2),
    }
    print(f"{n} clips ({result['dataset']}), {result['torch_threads']} torch threads")
    print(f"  feature extractor:  {recipe_wall:6.2f} s  ({result['feature_extractor_clips_per_s']} clips/s, "
          f"CPU {recipe_cpu:.2f} s)")
    print(f"  log_mel (helpers):  {ours_wall:6.2f} s  ({result['helpers_clips_per_s']} clips/s, "
          f"CPU {ours_cpu:.2f} s)")
    print(f"  ratio: {result['ratio']:.1f}x faster (CPU time: {result['cpu_ratio']:.1f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
