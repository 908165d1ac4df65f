"""Feature preparation throughput: helpers.prepare.prepare_features against the blog recipe's one-at-a-time .map.

Both turn the same decoded clips into log-mel features + label ids, in one process, in the same run:

- recipe: `ds.map(fn)` with a function that handles one example (feature extractor and tokenizer per clip;
  every 80 x 3000 feature matrix goes to Arrow as a nested list),
- helpers: `prepare_features(ds, processor)`: batched `map` (one STFT for the whole batch, one tokenizer call)
  writing a fixed-shape float32 array column.

    .venv/bin/python -m benchmarks.bench_prepare                        # sample/es, train+dev, repeated 3 times
    .venv/bin/python -m benchmarks.bench_prepare --language tr --repeat 5

Decoding the audio is shared (done once, before timing). Prints clips/s of each and the ratio (target >= 3x).
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
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    from helpers.notebook import setup

    setup()
    import datasets
    import numpy as np
    import torch
    from transformers import WhisperProcessor

    from helpers.data import load_split
    from helpers.environment import ensure_local_model
    from helpers.languages import whisper_language
    from helpers.prepare import one_at_a_time_fn, prepare_features

    ensure_local_model(args.model)  # converts models/whisper-base when missing
    processor = WhisperProcessor.from_pretrained(args.model)
    processor.tokenizer.set_prefix_tokens(language=whisper_language(args.language), task="transcribe")
    ds = load_split(args.dataset, args.language, args.split)
    if args.repeat > 1:
        ds = datasets.concatenate_datasets([ds] * args.repeat)
        ds.set_format("numpy", columns=["audio"], output_all_columns=True)
    columns = ds.column_names
    n = len(ds)

    recipe, recipe_wall, recipe_cpu = timed(
        lambda: ds.map(one_at_a_time_fn(processor), remove_columns=columns, load_from_cache_file=False)
    )
    ours, ours_wall, ours_cpu = timed(
        lambda: prepare_features(ds, processor, batch_size=args.batch_size, num_proc=1, keep_columns=())
    )

    # Same numbers out of both (spot check on a few rows).
    for i in (0, n // 2, n - 1):
        a = np.asarray(recipe.with_format("numpy")[i]["input_features"])
        b = ours.with_format("numpy")[i]["input_features"]
        assert np.allclose(a, b, atol=1e-5), f"row {i}: features differ"
        assert list(recipe[i]["labels"]) == list(ours[i]["labels"]), f"row {i}: labels differ"

    result = {
        "clips": n,
        "dataset": f"{args.dataset}/{args.language} {args.split} x{args.repeat}",
        "torch_threads": torch.get_num_threads(),
        "recipe_seconds": round(recipe_wall, 2),
        "recipe_cpu_seconds": round(recipe_cpu, 2),
        "helpers_seconds": round(ours_wall, 2),
        "helpers_cpu_seconds": round(ours_cpu, 2),
        "recipe_clips_per_s": round(n / recipe_wall, 1),
        "helpers_clips_per_s": round(n / ours_wall, 1),
        "ratio": round(recipe_wall / ours_wall, 2),
        "cpu_ratio": round(recipe_cpu / ours_cpu, 2),
    }
    print(f"{n} clips ({result['dataset']}), {result['torch_threads']} torch threads")
    print(f"  one-at-a-time .map (blog recipe): {recipe_wall:6.2f} s  ({result['recipe_clips_per_s']} clips/s, "
          f"CPU {recipe_cpu:.2f} s)")
    print(f"  helpers.prepare_features:         {ours_wall:6.2f} s  ({result['helpers_clips_per_s']} clips/s, "
          f"CPU {ours_cpu:.2f} s)")
    print(f"  ratio: {result['ratio']:.1f}x faster (CPU time: {result['cpu_ratio']:.1f}x)  target >= 3x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
