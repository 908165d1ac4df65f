"""Inference backends one clip at a time: transformers against CTranslate2 (faster-whisper) float32 and int8.

The same model (converted here, in a temporary folder), the same clips, the same greedy decoding without timestamps
(`helpers.export.SAME_AS_TRANSFORMERS`, each clip padded with silence to 30 s as transformers pads it), each after
one warm-up clip, one clip per call: how a service transcribes
the requests it gets. The baseline is transformers in float32 (`helpers.inference.transcribe`, batch size 1). The
script prints each backend's RTFx (seconds of audio per second of compute), its ratio to the baseline measured in
the same run, its WER and how many transcripts differ from the baseline's.

    .venv/bin/python benchmarks/bench_backends.py                        # whisper-base, Spanish sample, test split
    .venv/bin/python benchmarks/bench_backends.py --model runs/es/model --repeats 3
    python benchmarks/bench_backends.py --model runs/cs/model --language cs --dataset real --max-samples 64
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import convert, machine_load  # noqa: E402
from helpers.audio import SAMPLING_RATE  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/whisper-base", help="a saved transformers Whisper folder")
    parser.add_argument("--language", default="es")
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-samples", type=int, default=0, help="0 = the whole split")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for every backend; 0 = torch's default")
    parser.add_argument("--repeats", type=int, default=1, help="time each backend this many times, keep the fastest")
    args = parser.parse_args(argv)

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.chdir(ROOT)
    import torch
    from faster_whisper import WhisperModel

    from helpers.data import load_split
    from helpers.environment import ensure_local_model
    from helpers.evaluation import first_clips
    from helpers.export import (SAME_AS_TRANSFORMERS, Backend, differing_clips, faster_whisper_texts,
                                folder_megabytes)
    from helpers.inference import clip_array, load_model, transcribe, warm_up
    from helpers.metrics import compute_metrics
    from helpers.normalize import eval_normalizer

    ensure_local_model(args.model)  # converts models/whisper-base when missing
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    clips = first_clips(load_split(args.dataset, args.language, args.split), args.max_samples)
    arrays = [clip_array(row) for row in clips]
    references = [row["sentence"] for row in clips]
    audio_seconds = sum(len(a) for a in arrays) / SAMPLING_RATE
    normalizer = eval_normalizer(args.language)
    print(f"model {args.model}, {threads} CPU threads; {len(arrays)} clips, {audio_seconds:.1f} s of audio, "
          f"{args.dataset}/{args.language}/{args.split}; decoding {SAME_AS_TRANSFORMERS}")

    model, processor = load_model(args.model, device="cpu")
    warm_up(model, processor, arrays[0], args.language)
    runs = [transcribe(model, processor, arrays, language=args.language, batch_size=1, max_new_tokens=None)
            for _ in range(args.repeats)]
    rows = [Backend("transformers float32", runs[0].texts, audio_seconds, min(r.compute_seconds for r in runs),
                    (Path(args.model) / "model.safetensors").stat().st_size / 1e6)]
    with tempfile.TemporaryDirectory() as tmp:
        for quantization in ("float32", "int8"):
            folder = convert(args.model, Path(tmp) / quantization, quantization=quantization)
            fw = WhisperModel(str(folder), device="cpu", compute_type=quantization, cpu_threads=threads)
            faster_whisper_texts(fw, arrays[:1], args.language, pad=True, **SAME_AS_TRANSFORMERS)  # warm-up
            timed = [faster_whisper_texts(fw, arrays, args.language, pad=True, **SAME_AS_TRANSFORMERS)
                     for _ in range(args.repeats)]
            rows.append(Backend(f"ctranslate2 {quantization}", timed[0][0], audio_seconds,
                                min(s for _, s in timed), folder_megabytes(folder)))

    baseline = rows[0]
    print(f"{'backend':<22} {'seconds':>8} {'RTFx':>7} {'x baseline':>10} {'WER %':>7} {'differ':>7} {'MB':>6}")
    for row in rows:
        differ = len(differing_clips(references, baseline, row, normalizer))
        wer = compute_metrics(references, row.texts, normalizer)["wer"]
        print(f"{row.label:<22} {row.compute_seconds:8.2f} {row.rtfx:7.2f} {row.rtfx / baseline.rtfx:9.2f}x "
              f"{wer:7.2f} {differ:7d} {row.size_mb:6.0f}")
    print(machine_load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
