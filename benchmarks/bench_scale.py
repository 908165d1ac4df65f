"""Training data at Common Voice scale: memory, time and disk of one training step as the training split grows.

For each size, a Common Voice-style locale folder whose train.tsv lists the sample's Spanish train+dev clips over
and over (with the release's clip_durations.tsv; the test split is the sample's), then, as a user would run it:

    python -m tools.train --dataset <folder> --model models/whisper-base --max-steps 1 ...

measured from outside: peak memory of the whole process tree (PSS: pages shared between the training process and
its DataLoader workers counted once; RSS summed beside it), seconds to the end of the first step and to the end of
the command, and bytes written per row (the run folder and the datasets cache, without the saved model and
checkpoint, which do not grow with the data). Beside it, in the same run, the previous in-memory path (the blog
recipe: decode every clip, store its log-mel features with Dataset.map, then train) where it fits. Then the
loader's throughput: clips per second one worker turns into a batch (decode + features + labels).

    .venv/bin/python benchmarks/bench_scale.py                       # 2,000, 10,000 and 50,000 rows
    .venv/bin/python benchmarks/bench_scale.py --rows 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "sample" / "es"
MODEL = "models/whisper-base"


def make_folder(root: Path, rows: int) -> Path:
    """A locale folder of `rows` training rows that reuse the sample's clips (clips/ links to the sample's)."""
    import soundfile as sf

    folder = root / f"es-{rows}"
    folder.mkdir(parents=True)
    (folder / "clips").symlink_to(SAMPLE / "clips", target_is_directory=True)
    (folder / "test.tsv").write_text((SAMPLE / "test.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    header, *lines = (SAMPLE / "train.tsv").read_text(encoding="utf-8").splitlines()
    lines += (SAMPLE / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    with (folder / "train.tsv").open("w", encoding="utf-8") as out:
        out.write(header + "\n")
        for i in range(rows):
            out.write(lines[i % len(lines)] + "\n")
    durations = ["clip\tduration[ms]"]
    for clip in sorted((SAMPLE / "clips").iterdir()):
        info = sf.info(str(clip))
        durations.append(f"{clip.name}\t{round(1000 * info.frames / info.samplerate)}")
    (folder / "clip_durations.tsv").write_text("\n".join(durations) + "\n", encoding="utf-8")
    return folder


def tree_memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes summed over `pid` and all its descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        pids += [int(c) for c in children]
        frontier += [int(c) for c in children]
    pss = rss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return pss, rss


def folder_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not any(s in f.parts for s in skip))


def measure(command: list[str], run_dir: Path, cache: Path, rows: int) -> dict:
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"pss": 0, "rss": 0}
    first_step: list[float] = []
    lines: list[str] = []

    def watch():
        while proc.poll() is None:
            pss, rss = tree_memory(proc.pid)
            peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for line in proc.stdout:
        lines.append(line)
        if not first_step and (line.startswith("step    1/") or "first step done" in line):
            first_step.append(time.perf_counter() - start)
    proc.wait()
    wall = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{''.join(lines[-30:])}")
    written = folder_bytes(run_dir, skip=("model", "checkpoints")) + folder_bytes(cache)
    return {"rows": rows, "peak_pss_gib": round(peak["pss"] / 2**30, 2), "peak_rss_sum_gib": round(peak["rss"] / 2**30, 2),
            "seconds_to_first_step": round(first_step[0], 1) if first_step else None, "seconds": round(wall, 1),
            "bytes_written_per_row": round(written / rows, 1),
            "model_and_checkpoint_mb": round((folder_bytes(run_dir / "model") + folder_bytes(run_dir / "checkpoints"))
                                             / 1e6)}


def new_path(folder: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "tools.train", "--language", "es", "--dataset", str(folder), "--model", MODEL,
            "--run-dir", str(run_dir), "--train-split", "train", "--max-steps", "1", "--eval-steps", "1"]


def baseline(folder: str, run_dir: str) -> None:
    """The previous in-memory path, as the blog recipe has it: every clip decoded, its features stored, one step."""
    import numpy as np
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    from helpers.data import load_split
    from helpers.train import load_model

    model, processor, _ = load_model(MODEL, "es")
    train = load_split(folder, "es", "train")

    def features(batch):
        arrays = [np.asarray(a["array"]) for a in batch["audio"]]
        return {"input_features": processor.feature_extractor(arrays, sampling_rate=16000).input_features,
                "labels": processor.tokenizer(list(batch["sentence"])).input_ids}

    train = train.map(features, batched=True, batch_size=32, remove_columns=train.column_names)
    start = processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")

    def collate(rows):
        labels = [list(r["labels"])[1:] if r["labels"][0] == start else list(r["labels"]) for r in rows]
        padded = torch.full((len(labels), max(map(len, labels))), -100)
        for i, ids in enumerate(labels):
            padded[i, : len(ids)] = torch.tensor(ids)
        return {"input_features": torch.tensor(np.array([r["input_features"] for r in rows])), "labels": padded}

    # the same batch as the new path's CPU default (4 x accumulation 2), so that only the data path differs
    args = Seq2SeqTrainingArguments(output_dir=run_dir, max_steps=1, per_device_train_batch_size=4,
                                    gradient_accumulation_steps=2, use_cpu=True,
                                    report_to=[], save_strategy="no", remove_unused_columns=False, disable_tqdm=True)
    Seq2SeqTrainer(model=model, args=args, train_dataset=train, data_collator=collate).train()
    print("first step done", flush=True)


def loader_throughput(folder: Path, clips: int = 64, batch: int = 8) -> float:
    """Clips per second that one process turns into batches (decode, log-mel, labels): one worker's throughput."""
    from transformers import WhisperProcessor

    from helpers.data import load_split
    from helpers.prepare import SpeechCollator

    processor = WhisperProcessor.from_pretrained(ROOT / MODEL)
    processor.tokenizer.set_prefix_tokens(language="spanish", task="transcribe")
    rows = load_split(str(folder), "es", "train", decode=False).select(range(clips))
    collator = SpeechCollator(processor)
    collator([rows[0]])  # warm up
    start = time.perf_counter()
    for i in range(0, clips, batch):
        collator([rows[j] for j in range(i, min(clips, i + batch))])
    return clips / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2000, 10000, 50000])
    parser.add_argument("--baseline-rows", type=int, default=2000, help="the in-memory path only at this size")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--baseline-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_child:
        baseline(*args.baseline_child)
        return {}
    from helpers.environment import ensure_local_model

    ensure_local_model(MODEL)
    results: dict = {"new": [], "in_memory": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rows in args.rows:
            folder = make_folder(tmp, rows)
            run_dir, cache = tmp / f"run-{rows}", tmp / f"cache-{rows}"
            results["new"].append(measure(new_path(folder, run_dir), run_dir, cache, rows))
            print("new path:", results["new"][-1], flush=True)
            if rows == args.baseline_rows:
                run_dir, cache = tmp / f"old-{rows}", tmp / f"old-cache-{rows}"
                command = [sys.executable, str(Path(__file__).resolve()), "--baseline-child", str(folder), str(run_dir)]
                results["in_memory"].append(measure(command, run_dir, cache, rows))
                print("in-memory path:", results["in_memory"][-1], flush=True)
        results["loader_clips_per_second_per_worker"] = round(loader_throughput(make_folder(tmp, 64)), 1)

    print("\nOne training step of whisper-base (2 threads), as the training split grows:")
    print(f"{'rows':>8} {'path':>10} {'peak PSS GiB':>13} {'RSS sum GiB':>12} {'first step s':>13} {'total s':>8} "
          f"{'bytes/row':>10}")
    for name in ("new", "in_memory"):
        for r in results[name]:
            print(f"{r['rows']:>8} {name:>10} {r['peak_pss_gib']:>13} {r['peak_rss_sum_gib']:>12} "
                  f"{r['seconds_to_first_step']:>13} {r['seconds']:>8} {r['bytes_written_per_row']:>10}")
    new = {r["rows"]: r for r in results["new"]}
    for old in results["in_memory"]:
        ours = new[old["rows"]]
        print(f"at {old['rows']} rows, in-memory / new: peak memory {old['peak_pss_gib'] / ours['peak_pss_gib']:.2f}x, "
              f"time to the first step {old['seconds_to_first_step'] / ours['seconds_to_first_step']:.2f}x "
              "(the in-memory path keeps its features in memory, so it writes nothing to disk)")
    smallest, largest = new[min(new)], new[max(new)]
    results["peak_growth_gib"] = round(largest["peak_pss_gib"] - smallest["peak_pss_gib"], 2)
    print(f"peak memory at {largest['rows']} rows minus at {smallest['rows']} rows: {results['peak_growth_gib']} GiB")
    print(f"loader: {results['loader_clips_per_second_per_worker']} clips/s per worker (decode + log-mel + labels)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
