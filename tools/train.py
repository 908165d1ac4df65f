"""Fine-tune Whisper from the command line: the steps of notebook 03 as one script, on one GPU or several.

Run from the repository root; the options have the notebook's parameter names (--max-steps, --batch-size, ...):

    python -m tools.train --language es --dataset sample --model models/whisper-base --run-dir runs/es
    torchrun --nproc_per_node 4 -m tools.train --language es --dataset /data/cv-corpus-11.0/es \\
        --model openai/whisper-small --run-dir runs/es-small --max-steps 4000 --warmup-steps 500 \\
        --learning-rate 1e-5 --lr-scheduler-type linear --eval-steps 1000
    accelerate launch --num_processes 4 -m tools.train ...   # same options; --deepspeed ds_config.json for ZeRO

The defaults are those of the short CPU run on the embedded sample (4 steps at 3e-5, constant rate); a real run
sets --max-steps, --learning-rate, --warmup-steps and usually --lr-scheduler-type linear. Re-running the same
command after an interruption resumes from the last checkpoint; a finished run is not trained again unless
--retrain true.

Everything lands in run_dir: checkpoints/ (for resuming), tensorboard/, model/ (final model, processor,
generation config, README.md model card), training.json, zero_shot.json, dropped_rows.csv, examples.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, fields

from helpers.card import push_model
from helpers.checkpoints import MODEL, train_or_resume
from helpers.data import load_split
from helpers.files import writable_folder, write_json
from helpers.normalize import eval_normalizer, training_transform
from helpers.prepare import (DROPPED_ROWS, MAX_LABEL_TOKENS, READ_REASONS, check_training_split, drop_eval_overlap,
                             filter_rows, label_lengths, training_subset, write_drops)
from helpers.settings import device_defaults, resolve_settings
from helpers.train import (PreparedData, TrainConfig, WhisperMetrics, build_trainer, finish_run, generation_cap,
                           load_model, training_arguments, training_summary, zero_shot)


def prepare_data(cfg: TrainConfig, processor, max_label_tokens: int = MAX_LABEL_TOKENS) -> PreparedData:
    """Load train and eval splits as light rows, drop eval overlap and filter (the steps of notebook 03)."""
    check_training_split(cfg.train_split)
    transform = training_transform(cfg.run_dir)
    train = load_split(cfg.dataset, cfg.language, cfg.train_split, streaming=cfg.streaming, decode=False)
    evaluation = load_split(cfg.dataset, cfg.language, cfg.eval_split, decode=False)
    if cfg.max_eval_samples:
        evaluation = evaluation.select(range(min(cfg.max_eval_samples, len(evaluation))))
    train, overlap = drop_eval_overlap(train, evaluation)
    train, train_filters = filter_rows(train, processor.tokenizer, max_label_tokens=max_label_tokens,
                                       text_transform=transform, step="filters (training)")
    evaluation, eval_filters = filter_rows(evaluation, processor.tokenizer, max_label_tokens=max_label_tokens,
                                           step="filters (evaluation)")
    train = training_subset(train, cfg.max_train_samples, cfg.seed, cfg.streaming)
    return PreparedData(train, evaluation, [overlap, train_filters, eval_filters], transform,
                        label_lengths(processor.tokenizer, evaluation["sentence"]))


def run(cfg: TrainConfig) -> dict:
    """Every step of notebook 03, for scripts and multi-GPU launches. Returns the training.json content."""
    run_dir = writable_folder(cfg.run_dir)  # fails now rather than after training
    whisper, processor, language_name = load_model(cfg.model, cfg.language, freeze_encoder=cfg.freeze_encoder,
                                                   lora=cfg.lora)
    defaults = device_defaults(whisper)
    settings = resolve_settings(cfg, defaults)
    args = training_arguments(cfg, settings)
    main_process = args.process_index == 0
    with args.main_process_first(desc="data preparation"):
        data = prepare_data(cfg, processor, max_label_tokens=whisper.config.max_target_positions)
    if cfg.generation_max_length is None:
        args.generation_max_length = generation_cap(data.eval_label_lengths)
    if main_process:
        print(defaults)
        print(data.summary())
        write_drops(data.reports, run_dir / DROPPED_ROWS)
    metrics = WhisperMetrics(processor.tokenizer, eval_normalizer(cfg.language))
    trainer = build_trainer(whisper, processor, args, data.train, data.eval, metrics, run_dir,
                            text_transform=data.text_transform)
    before, before_examples = zero_shot(trainer, cfg)
    if main_process:
        print(f"zero-shot WER {before['wer']:.1f}% (orthographic {before['wer_orthographic']:.1f}%)")
    outcome = train_or_resume(trainer, run_dir, retrain=cfg.retrain)
    final, _ = finish_run(trainer, processor, cfg, settings, outcome, before, before_examples)
    if main_process:
        print(data.add_read_skips(run_dir).summary(READ_REASONS))
    summary = training_summary(cfg, data, settings, defaults, outcome, before, final, language_name)
    if main_process:
        write_json(summary, run_dir / "training.json")
        if cfg.push_to_hub:
            print("Pushed to", push_model(run_dir / MODEL, cfg.hub_model_id or f"whisper-{run_dir.name}"))
    return summary


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m tools.train",
        description="Fine-tune Whisper (the steps of notebook 03). Runs under torchrun / accelerate launch too.",
    )

    def optional_int(text: str) -> int | None:
        return None if text.lower() in ("", "none", "auto") else int(text)

    def flag(text: str) -> bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")

    types = {f.name: f.type for f in fields(TrainConfig)}  # as written: "int | None" means "None: suggested"
    for name, value in asdict(defaults).items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(option, type=flag, default=value, metavar="true|false")
        elif types[name] == "int | None":
            parser.add_argument(option, type=optional_int, default=value)
        elif types[name] == "bool | None":
            parser.add_argument(option, type=lambda t: None if t.lower() == "auto" else flag(t), default=value)
        elif isinstance(value, int):
            parser.add_argument(option, type=int, default=value)
        elif isinstance(value, float):
            parser.add_argument(option, type=float, default=value)
        else:
            parser.add_argument(option, type=str, default=value)
    ns = parser.parse_args(argv)
    return TrainConfig(**vars(ns))


def main(argv: list[str] | None = None) -> int:
    from helpers.notebook import QUIET_ENV

    cfg = parse_args(argv)
    for key, value in QUIET_ENV.items():  # relative paths stay relative to where the command runs
        os.environ.setdefault(key, value)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.set_seed(cfg.seed)
    summary = run(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("status", "steps", "zero_shot", "final", "train_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
