"""Evaluate a Whisper model, and the fine-tuned one, on a split: notebook 04's scores as one script.

Run from the repository root, e.g. on a GPU machine for a whole Common Voice test split:

    python -m tools.evaluate --language es --dataset /data/cv-corpus-11.0/es --run-dir runs/es \\
        --model openai/whisper-small --max-eval-samples 0

Writes run_dir/predictions.csv, results.json and transcripts/, and the results into the fine-tuned model's card.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from helpers.data import load_split
from helpers.evaluation import (PREDICTIONS_FILE, RESULTS_FILE, TRANSCRIPTS_DIR, comparison_rows, evaluate_model,
                                first_clips, resolve_finetuned, speed_rows, write_outputs)
from helpers.normalize import eval_normalizer, eval_normalizer_name
from helpers.widgets import format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a Whisper model (and a fine-tuned one) on a split.")
    parser.add_argument("--language", default="es")
    parser.add_argument("--dataset", default="sample")
    parser.add_argument("--model", default="models/whisper-base")
    parser.add_argument("--run-dir", default="runs/es")
    parser.add_argument("--split", default="test")
    parser.add_argument("--finetuned", default="", help="'' = <run-dir>/model if present, 'none' = skip")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-eval-samples", type=int, default=0, help="0 = the whole split")
    args = parser.parse_args(argv)

    normalizer = eval_normalizer(args.language)
    tuned_name, why = resolve_finetuned(args.finetuned, args.run_dir)
    print(why)
    skipped: list = []  # streamed: the split is read clip by clip, never held in memory whole
    clips = first_clips(load_split(args.dataset, args.language, args.split, streaming=True, skipped=skipped),
                        args.max_eval_samples)
    transcripts = Path(args.run_dir) / TRANSCRIPTS_DIR
    baseline = evaluate_model(args.model, clips, args.language, normalizer, args.batch_size, label="baseline",
                              keep_model=False, transcripts=transcripts / "baseline.csv")
    tuned = (evaluate_model(tuned_name, clips, args.language, normalizer, args.batch_size, label="fine-tuned",
                            keep_model=False, transcripts=transcripts / "fine-tuned.csv") if tuned_name else None)
    runs = [baseline] + ([tuned] if tuned else [])
    print(format_table(comparison_rows(runs)))
    print(format_table(speed_rows(runs)))
    write_outputs(args.run_dir, baseline, tuned, language=args.language, dataset=args.dataset, split=args.split,
                  normalizer_name=eval_normalizer_name(args.language), num_skipped=len(skipped))
    print(f"wrote {Path(args.run_dir) / RESULTS_FILE} and {Path(args.run_dir) / PREDICTIONS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
