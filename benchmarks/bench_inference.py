"""Evaluation throughput: the helpers' batched inference against a one-clip-at-a-time generate loop.

The loop is the way evaluation is often first written (and how the event's brief showed it): features for one
clip, `model.generate` on it, decode, next clip. The helpers instead group clips of similar length and decode a
whole batch per `generate` call. Both run on the same clips, with the same model, precision, language and greedy
decoding, after the same warm-up; each is timed over feature extraction, generation and decoding. The script
prints both RTFx values (seconds of audio per second of compute), their ratio, and whether the transcripts
agree. On a CPU it also times the helpers with the encoder run over the whole batch at once
(`inference.CPU_ENCODER_CLIP_BY_CLIP = False`) against their default, the encoder one clip at a time inside each
batch. It also times the encoder alone on the same batches: Whisper's encoder always reads a 30-second window,
whatever the clip's length, and batching does not make that work smaller. Loop time over encoder time is the
most any batching could gain on this machine, even if decoding cost nothing.

    .venv/bin/python benchmarks/bench_inference.py                     # whisper-base, Spanish sample, test split
    .venv/bin/python benchmarks/bench_inference.py --model models/whisper-tiny.en --language en --batch-size 12
    python benchmarks/bench_inference.py --model openai/whisper-small --dataset /data/cv/es --max-samples 256 \\
        --batch-size 32                                                  # on a GPU (float16)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine_load  # noqa: E402
from helpers.audio import SAMPLING_RATE  # noqa: E402


def one_by_one(model, processor, arrays, language):
    """The baseline: one clip per generate call, texts in order. Returns (texts, seconds)."""
    import torch

    from helpers.inference import _sync, generation_kwargs

    kwargs = generation_kwargs(model, language)
    texts = []
    _sync(model.device.type)
    start = time.perf_counter()
    for array in arrays:
        features = processor(array, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            ids = model.generate(features.to(model.device, dtype=model.dtype), **kwargs)
        texts.append(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
    _sync(model.device.type)
    return texts, time.perf_counter() - start


def encoder_only(model, processor, arrays, batch_size):
    """Seconds for the features and the encoder pass of every clip, in batches of `batch_size`."""
    import torch

    from helpers.inference import _sync

    encoder = model.get_encoder()
    _sync(model.device.type)
    start = time.perf_counter()
    for i in range(0, len(arrays), batch_size):
        features = processor(arrays[i:i + batch_size], sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            encoder(features.to(model.device, dtype=model.dtype))
    _sync(model.device.type)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/whisper-base")
    parser.add_argument("--language", default="es")
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--max-samples", type=int, default=0, help="0 = the whole split")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=1, help="time each way this many times, keep the fastest")
    args = parser.parse_args(argv)

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.chdir(ROOT)
    import torch

    from helpers.data import load_split
    from helpers.environment import ensure_local_model
    from helpers.evaluation import first_clips
    from helpers import inference
    from helpers.inference import clip_array, load_model, rtfx, transcribe, warm_up

    ensure_local_model(args.model)  # converts models/whisper-base or whisper-tiny.en when missing
    clips = first_clips(load_split(args.dataset, args.language, args.split), args.max_samples)
    arrays = [clip_array(row) for row in clips]
    audio_seconds = sum(len(a) for a in arrays) / SAMPLING_RATE
    model, processor = load_model(args.model, device=args.device)
    print(f"model {args.model} on {model.device} ({str(model.dtype).replace('torch.', '')}), "
          f"{torch.get_num_threads()} CPU threads; {len(arrays)} clips, {audio_seconds:.1f} s of audio, "
          f"{args.dataset}/{args.language}/{args.split}")

    warm_up(model, processor, arrays[0], args.language)
    loop_seconds, batch_seconds, encoder_seconds, whole_batch_seconds = [], [], [], []
    on_cpu = model.device.type == "cpu"
    for _ in range(args.repeats):
        loop_texts, seconds = one_by_one(model, processor, arrays, args.language)
        loop_seconds.append(seconds)
        result = transcribe(model, processor, arrays, language=args.language, batch_size=args.batch_size)
        batch_seconds.append(result.compute_seconds)
        if on_cpu:
            with mock.patch.object(inference, "CPU_ENCODER_CLIP_BY_CLIP", False):
                whole = transcribe(model, processor, arrays, language=args.language, batch_size=args.batch_size)
            whole_batch_seconds.append(whole.compute_seconds)
        # the encoder's share at one clip and at a whole batch per call, whichever is faster per clip here
        encoder_seconds.append(min(encoder_only(model, processor, arrays, size) for size in (1, args.batch_size)))
    loop_rtfx, batch_rtfx = rtfx(audio_seconds, min(loop_seconds)), rtfx(audio_seconds, min(batch_seconds))
    same = sum(a == b for a, b in zip(loop_texts, result.texts))

    print(f"one clip at a time : {min(loop_seconds):7.2f} s   RTFx {loop_rtfx:7.2f}")
    print(f"batched (size {args.batch_size:>3}) : {min(batch_seconds):7.2f} s   RTFx {batch_rtfx:7.2f}   "
          f"batches {result.batch_sizes}")
    print(f"speed-up           : {batch_rtfx / loop_rtfx:.2f}x")
    if on_cpu:
        print(f"encoder over the whole batch instead of clip by clip: {min(whole_batch_seconds):7.2f} s, "
              f"{min(whole_batch_seconds) / min(batch_seconds):.2f}x the time of the default "
              f"(same transcripts: {whole.texts == result.texts})")
    encoder = min(encoder_seconds)
    share, bound = encoder / min(batch_seconds), min(loop_seconds) / encoder
    print(f"encoder alone      : {encoder:7.2f} s   (its best batch size; {share:.0%} of the batched time): "
          f"the most any batching could gain here is {bound:.2f}x")
    print(f"identical transcripts: {same} of {len(arrays)}")
    print(machine_load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
