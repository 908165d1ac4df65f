"""Fine-tune Whisper with Seq2SeqTrainer: the model, the metric, the training arguments, the trainer, the report.

Notebook 03 calls these functions one step at a time; `python -m tools.train` runs the same steps as a script.
"""

from __future__ import annotations

import csv
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from helpers.card import write_model_card
from helpers.checkpoints import CHECKPOINTS, MODEL, TrainingOutcome, save_final_model
from helpers.files import read_json, write_json
from helpers.metrics import compute_metrics, has_repetition, is_too_long, relative_improvement, rounded
from helpers.prepare import (DROPPED_ROWS, DropReport, READ_SKIPS, SpeechCollator, check_training_split,
                             configure_language, read_skips, reasons_for, write_drops)
from helpers.settings import DeviceDefaults, check_optimizer, installed


# ------------------------------------------------------------------------------------------ parameters
@dataclass
class TrainConfig:
    """Every knob of a run; the notebook's parameters and the script's options have the same names."""

    language: str = "es"
    dataset: str = "sample"
    model: str = "models/whisper-base"
    run_dir: str = "runs/es"
    train_split: str = "train+dev"
    eval_split: str = "test"
    max_steps: int = 4
    batch_size: int | None = None  # None: suggested from the device and model size
    gradient_accumulation_steps: int | None = None  # None: suggested
    learning_rate: float = 3e-5
    lr_scheduler_type: str = "constant_with_warmup"
    warmup_steps: int = 0
    eval_steps: int = 2
    save_steps: int | None = None  # None: same as eval_steps
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    freeze_encoder: bool = False
    optimizer: str = "adamw"  # "adamw", "adafactor" or "adamw_8bit"
    lora: bool = False
    precision: str | None = None  # None: suggested ("fp32", "bf16", "fp16")
    gradient_checkpointing: bool | None = None  # None: suggested
    generation_max_length: int | None = None  # None: twice the longest evaluation label, at least 128 tokens
    streaming: bool = False
    num_workers: int | None = None  # DataLoader processes that decode audio for the batches; None: from the machine
    push_to_hub: bool = False
    hub_model_id: str | None = None
    retrain: bool = False
    seed: int = 42
    deepspeed: str | None = None

    def __post_init__(self) -> None:
        check_training_split(self.train_split)
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be a positive number of optimiser steps, not {self.max_steps}.")
        if self.eval_steps <= 0:
            raise ValueError(f"eval_steps must be positive, not {self.eval_steps}.")
        check_optimizer(self.optimizer)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


# ------------------------------------------------------------------------------------ model + processor
def load_model(model: str, language: str | None, *, freeze_encoder: bool = False, lora: bool = False):
    """Load a Whisper checkpoint (local path or Hub id) in float32 with the language/task prefix set; with `lora`,
    wrap it in LoRA adapters on the attention projections. Returns (model, processor, whisper_language_name)."""
    from helpers.inference import load_model as load_for_inference

    # float32 weights on the CPU; the Trainer moves them to the GPU and handles mixed precision itself
    whisper, processor = load_for_inference(model, device="cpu", dtype="float32")
    whisper.train()
    name = configure_language(processor, whisper, language)
    whisper.config.use_cache = False  # the cache only helps generation; training with it wastes memory
    # Whisper's loss is the mean over the micro-batch's tokens: it does not use the Trainer's `num_items_in_batch`,
    # though its forward takes **kwargs. Said so, the Trainer divides the loss by the gradient accumulation steps;
    # otherwise it would sum the micro-batches' gradients (and log that many times the loss).
    whisper.accepts_loss_kwargs = False
    if freeze_encoder:
        whisper.freeze_encoder()
    if lora:
        if not installed("peft"):
            raise RuntimeError(
                "lora=True needs the peft package, which is not installed: `pip install peft` (and pin it in "
                "requirements.txt), or set lora=False to fine-tune all weights."
            )
        from peft import LoraConfig, get_peft_model

        whisper = get_peft_model(whisper, LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05,
                                                     target_modules=["q_proj", "v_proj"], bias="none"))
    return whisper, processor, name


# --------------------------------------------------------------------------------------------- metrics
def looks_looped(prediction: str, reference: str, hit_length_cap: bool = False) -> bool:
    """Flag a transcript that shows the decoder looping: it ran into the generation length cap, repeats a phrase
    where the reference does not, or is far longer than the reference (detectors shared with notebook 04)."""
    return bool(hit_length_cap or has_repetition(reference, prediction) or is_too_long(reference, prediction))


class WhisperMetrics:
    """compute_metrics for Seq2SeqTrainer: normalised WER (the headline) and orthographic WER (both in percent, as
    in notebook 04), and the fraction of transcripts that look looped; keeps the last predictions as examples.
    A transcript that used all of `generation_cap` (set by build_trainer from generation_max_length), up to the 4
    prompt tokens, ran into the cap: that counts as looping.
    """

    PROMPT_ALLOWANCE = 4  # <|startoftranscript|><|xx|><|transcribe|><|notimestamps|>

    def __init__(self, tokenizer, normalizer: Callable[[str], str], generation_cap: int | None = None):
        self.tokenizer = tokenizer
        self.normalizer = normalizer
        self.generation_cap = generation_cap
        self.last: dict[str, list] = {}

    def __call__(self, eval_pred) -> dict:
        tok, pad = self.tokenizer, self.tokenizer.pad_token_id
        pred_ids = np.where(np.asarray(eval_pred.predictions) == -100, pad, eval_pred.predictions)
        label_ids = np.where(np.asarray(eval_pred.label_ids) == -100, pad, eval_pred.label_ids)
        predictions = tok.batch_decode(pred_ids, skip_special_tokens=True)
        references = tok.batch_decode(label_ids, skip_special_tokens=True)
        # Generated sequences come back padded (with the end token, which is also Whisper's pad token).
        lengths = (pred_ids != pad).sum(axis=-1) if pred_ids.ndim == 2 else np.zeros(len(predictions))
        cap = self.generation_cap
        hit_cap = [bool(cap) and int(n) >= cap - self.PROMPT_ALLOWANCE for n in lengths]
        looped = [looks_looped(p, r, c) for p, r, c in zip(predictions, references, hit_cap)]
        self.last = {"references": references, "predictions": predictions, "looped": looped}
        scores = compute_metrics(references, predictions, self.normalizer)
        return {"wer": scores["wer"], "wer_orthographic": scores["wer_orthographic"],
                "looping": float(np.mean(looped)) if looped else 0.0}


# ------------------------------------------------------------------------------------------- callbacks
def _progress_callback():
    from transformers import TrainerCallback

    class CompactProgress(TrainerCallback):
        """One short line per logged step and per evaluation instead of progress bars."""

        start, first_step = None, 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.first_step = time.time(), state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            elapsed = time.time() - (self.start or time.time())
            done = max(state.global_step - self.first_step, 1)
            if "loss" in logs:
                print(f"step {state.global_step:>4}/{state.max_steps}  loss {logs['loss']:.3f}  "
                      f"lr {logs.get('learning_rate', 0):.1e}  {elapsed / done:.1f} s/step", flush=True)
            if "eval_wer" in logs:
                print(f"eval @ {state.global_step:>4}: WER {logs['eval_wer']:.1f}% (orthographic "
                      f"{logs.get('eval_wer_orthographic', float('nan')):.1f}%), looping "
                      f"{100 * logs.get('eval_looping', 0):.0f}% of clips, eval loss "
                      f"{logs.get('eval_loss', float('nan')):.3f}", flush=True)

    return CompactProgress()


@contextmanager
def _env(name: str, value: str):
    """One environment variable set for the block only (mock.patch.dict would also undo the variables the block
    sets, such as accelerate's ACCELERATE_USE_DEEPSPEED)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


# --------------------------------------------------------------------------------------------- trainer
def generation_cap(lengths: Iterable[int]) -> int:
    """Generation length cap from the evaluation labels' token counts (`label_lengths`): twice the longest (at
    least 128 tokens), so that a correct transcript always fits and a looping decoder is stopped early. At most
    448 minus the 4 prompt tokens."""
    return int(min(444, max(128, 2 * max(lengths, default=0))))


def training_arguments(cfg: TrainConfig, settings: dict, eval_batch_size: int | None = None,
                       generation_max_length: int | None = None):
    """Seq2SeqTrainingArguments for a run (transformers 5 names: eval_strategy, use_cpu, no logging_dir);
    `generation_max_length` caps evaluation by generation (default: cfg's, else 128; see generation_cap)."""
    from transformers import Seq2SeqTrainingArguments

    checkpointing = settings["gradient_checkpointing"]
    return Seq2SeqTrainingArguments(
        output_dir=str(Path(cfg.run_dir) / CHECKPOINTS), max_steps=cfg.max_steps, seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=settings["batch_size"],
        per_device_eval_batch_size=eval_batch_size or max(settings["batch_size"], 16),
        gradient_accumulation_steps=settings["gradient_accumulation_steps"],
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps,
        optim=check_optimizer(cfg.optimizer),
        # "gradient checkpointing" in older tutorials: transformers 5 calls it activation checkpointing
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        bf16=settings["precision"] == "bf16", fp16=settings["precision"] == "fp16",
        use_cpu=settings["device"] == "cpu",
        eval_strategy="steps", eval_steps=cfg.eval_steps, load_best_model_at_end=False,
        save_strategy="steps", save_steps=cfg.save_steps or cfg.eval_steps, save_total_limit=1,
        logging_steps=1, report_to=["tensorboard"], disable_tqdm=True,
        predict_with_generate=True, generation_max_length=generation_max_length or cfg.generation_max_length or 128,
        remove_unused_columns=False, label_names=["labels"],
        dataloader_num_workers=settings["num_workers"],  # batches are built (audio decoded) in these
        push_to_hub=False,  # pushing is done once, at the end, by push_model (token from the environment only)
        deepspeed=cfg.deepspeed,
    )


def build_trainer(model, processor, args, train_ds, eval_ds, metrics: WhisperMetrics | None, run_dir: str | Path,
                  callbacks: Iterable = (), progress: bool = True, text_transform: Callable[[str], str] | None = None):
    """A Seq2SeqTrainer with the batch-building collator (clips left out are recorded in run_dir), generation-based
    evaluation and TensorBoard under run_dir."""
    from transformers import Seq2SeqTrainer
    from transformers.trainer_callback import PrinterCallback

    collator = SpeechCollator(processor, text_transform=text_transform, skip_dir=Path(run_dir) / READ_SKIPS)
    if metrics is not None and getattr(metrics, "generation_cap", 0) is None:
        metrics.generation_cap = args.generation_max_length
    all_callbacks = ([_progress_callback()] if progress else []) + list(callbacks)
    # The TensorBoard callback reads its folder from this variable when the Trainer creates it.
    with _env("TENSORBOARD_LOGGING_DIR", str(Path(run_dir) / "tensorboard")):
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                                 data_collator=collator, processing_class=processor, compute_metrics=metrics,
                                 callbacks=all_callbacks)
    trainer.remove_callback(PrinterCallback)  # raw log dicts; CompactProgress prints a readable line instead
    return trainer


def zero_shot(trainer, cfg: TrainConfig) -> tuple[dict, dict]:
    """Evaluate the model before training: (metrics, examples). Cached in run_dir/zero_shot.json for the same
    model, data, evaluation split and generation cap, so that re-running a finished notebook does not redo it."""
    key = {"model": cfg.model, "dataset": cfg.dataset, "language": cfg.language, "split": cfg.eval_split,
           "rows": len(trainer.eval_dataset), "generation_max_length": trainer.args.generation_max_length}
    path = Path(cfg.run_dir) / "zero_shot.json"
    cached = read_json(path) or {}
    if cached.get("key") == key:
        return cached["metrics"], cached.get("examples", {})
    metrics = {k.removeprefix("zero_shot_"): v for k, v in trainer.evaluate(metric_key_prefix="zero_shot").items()}
    examples = dict(getattr(trainer.compute_metrics, "last", {}) or {})
    if trainer.is_world_process_zero():
        write_json({"key": key, "metrics": metrics, "examples": examples}, path)
    return metrics, examples


# ---------------------------------------------------------------------------------------- report + plot
def plot_history(log_history: list, zero_shot_metrics: dict | None = None):
    """Training loss and evaluation WER against steps (zero-shot WER drawn at step 0)."""
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_wer"], h.get("eval_wer_orthographic")) for h in log_history if "eval_wer" in h]
    if zero_shot_metrics and zero_shot_metrics.get("wer") is not None:
        evals.insert(0, (0, zero_shot_metrics["wer"], zero_shot_metrics.get("wer_orthographic")))
    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot([step for step, _ in losses], [loss for _, loss in losses], marker=".")
    ax_loss.set(xlabel="step", ylabel="training loss", title="Training loss")
    steps = [step for step, _, _ in evals]
    ax_wer.plot(steps, [wer for _, wer, _ in evals], marker="o", label="normalised")
    ax_wer.plot(steps, [orth for _, _, orth in evals], marker="s", linestyle="--", label="orthographic")
    ax_wer.set(xlabel="step", ylabel="WER %", title="Evaluation WER (step 0 = zero-shot)")
    ax_wer.set_ylim(bottom=0)
    ax_wer.legend()
    fig.tight_layout()
    return fig


def write_examples(path: str | Path, zero_shot_examples: dict, final_examples: dict) -> Path:
    """A CSV of reference, zero-shot and fine-tuned transcripts of the evaluation clips."""
    refs = final_examples.get("references") or zero_shot_examples.get("references") or []
    blank = [""] * len(refs)
    rows = zip(refs, zero_shot_examples.get("predictions") or blank, final_examples.get("predictions") or blank,
               final_examples.get("looped") or [False] * len(refs))
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "zero_shot", "fine_tuned", "fine_tuned_looped"])
        writer.writerows(rows)
    return Path(path)


def read_examples(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------------- whole pipeline
@dataclass
class PreparedData:
    """The training and evaluation rows (light: a clip reference and a sentence each) and what was dropped."""

    train: Any
    eval: Any
    reports: list
    text_transform: Callable[[str], str] | None
    eval_label_lengths: list = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join(r.summary(reasons_for(r)) for r in self.reports)

    def add_read_skips(self, run_dir: str | Path) -> DropReport:
        """Add the clips left out while batches were read (corrupt, or over 30 s when no duration was known up
        front) to the reports, and write run_dir/dropped_rows.csv again with them."""
        report = read_skips(Path(run_dir) / READ_SKIPS)
        self.reports = [r for r in self.reports if r.step != report.step] + [report]
        write_drops(self.reports, Path(run_dir) / DROPPED_ROWS)
        return report


def finish_run(trainer, processor, cfg: TrainConfig, settings: dict, outcome: TrainingOutcome, before: dict,
               before_examples: dict) -> tuple[dict, dict]:
    """The fine-tuned model's scores and transcripts: (metrics, examples), from the evaluation at the last step
    when this process ran it (eval_steps divides max_steps), else evaluated now. A run trained now is saved to
    run_dir/model with its model card and run_dir/examples.csv; a finished run keeps its files and scores
    (notebook 04 adds its results to the card, which must not be written over)."""
    run_dir = Path(cfg.run_dir)
    final = outcome.final_eval()
    if outcome.status == "already finished":
        rows = read_examples(run_dir / "examples.csv")
        return final, {"references": [row["reference"] for row in rows],
                       "predictions": [row["fine_tuned"] for row in rows],
                       "looped": [row["fine_tuned_looped"] == "True" for row in rows]}
    if final.get("step") != outcome.global_step or not getattr(trainer.compute_metrics, "last", None):
        final = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()} | {"step": outcome.global_step}
    final_examples = dict(getattr(trainer.compute_metrics, "last", {}) or {})
    save_final_model(trainer, processor, run_dir)
    if trainer.is_world_process_zero():
        write_examples(run_dir / "examples.csv", before_examples, final_examples)
        write_model_card(run_dir / MODEL, base_model=cfg.model, dataset=cfg.dataset, language=cfg.language,
                         metrics=final, zero_shot_metrics=before, eval_split=cfg.eval_split,
                         hyperparameters=hyperparameters(cfg, settings))
    return final, final_examples


def hyperparameters(cfg: TrainConfig, settings: dict) -> dict:
    return {
        "max_steps": cfg.max_steps, "learning_rate": cfg.learning_rate, "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_steps, "batch_size": settings["batch_size"],
        "gradient_accumulation_steps": settings["gradient_accumulation_steps"], "precision": settings["precision"],
        "optimizer": cfg.optimizer, "freeze_encoder": cfg.freeze_encoder, "lora": cfg.lora,
        "train_split": cfg.train_split, "seed": cfg.seed,
    }


def _rounded(metrics: dict) -> dict:
    return {key: rounded(metrics.get(key), 3) for key in ("wer", "wer_orthographic", "looping", "loss")}


def training_summary(cfg: TrainConfig, data: PreparedData, settings: dict, defaults: DeviceDefaults,
                     outcome: TrainingOutcome, before: dict, final: dict, language_name: str | None) -> dict:
    """The content of run_dir/training.json (WER in percent, looping as a fraction of the evaluation clips)."""
    import torch

    return {
        "language": cfg.language, "whisper_language": language_name, "dataset": cfg.dataset, "model": cfg.model,
        "train_split": cfg.train_split, "eval_split": cfg.eval_split,
        "train_rows": None if cfg.streaming else len(data.train), "eval_rows": len(data.eval),
        "training_text": "normalised (notebook 02 rules)" if data.text_transform else "as written (un-normalised)",
        "dropped": {r.step: r.as_dict() for r in data.reports},
        "status": outcome.status, "resumed_from": outcome.resumed_from, "steps": outcome.global_step,
        "train_seconds": None if outcome.train_seconds is None else round(outcome.train_seconds, 1),
        "samples_per_second": outcome.samples_per_second,
        "data_wait_seconds": outcome.data_wait_seconds,  # of train_seconds: steps waiting for their batches
        "device": defaults.device, "device_name": defaults.device_name,
        "processes": int(os.environ.get("WORLD_SIZE", "1")), "torch_threads": torch.get_num_threads(),
        "precision": settings["precision"], "batch_size": settings["batch_size"],
        "gradient_accumulation_steps": settings["gradient_accumulation_steps"],
        "gradient_checkpointing": settings["gradient_checkpointing"], "dataloader_workers": settings["num_workers"],
        "hyperparameters": hyperparameters(cfg, settings),
        "wer_unit": "percent", "zero_shot": _rounded(before), "final": _rounded(final),
        # the project's one sign convention: positive = fewer errors than zero-shot (NaN is written as null)
        "relative_wer_improvement": rounded(relative_improvement(before.get("wer"), final.get("wer"))),
    }
