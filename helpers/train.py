"""Fine-tune Whisper with Seq2SeqTrainer: device-aware settings, evaluation by generation, resume, saving.

Notebook 03 calls these functions one step at a time; the same steps run as a script, on one GPU or several
(run from the repository root; options have the notebook's parameter names, e.g. --max-steps, --batch-size):

    python -m helpers.train --language es --dataset sample --model models/whisper-base --run-dir runs/es
    torchrun --nproc_per_node 4 -m helpers.train --language es --dataset /data/cv-corpus-11.0/es \\
        --model openai/whisper-small --run-dir runs/es-small --max-steps 4000 --warmup-steps 500 \\
        --learning-rate 1e-5 --lr-scheduler-type linear --eval-steps 1000
    accelerate launch --num_processes 4 -m helpers.train ...   # same options; --deepspeed ds_config.json for ZeRO

The defaults are those of the short CPU run on the embedded sample (4 steps at 3e-5, constant rate); a real run
sets --max-steps, --learning-rate, --warmup-steps and usually --lr-scheduler-type linear. Re-running the same command after an interruption resumes from
the last checkpoint; a finished run is not trained again unless --retrain true.

Everything lands in run_dir: checkpoints/ (for resuming), tensorboard/, model/ (final model, processor,
generation config, README.md model card), training.json, train_seconds.json, zero_shot.json, dropped_rows.csv,
examples.csv.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from helpers.data import dataset_title
from helpers.environment import DeviceDefaults, accelerator_info, suggest_defaults
from helpers.files import hub_id, writable_folder, write_json
from helpers.metrics import relative_improvement
from helpers.normalize import base_language, eval_normalizer, training_transform
from helpers.prepare import (
    DropReport,
    READ_REASONS,
    READ_SKIPS,
    READ_STEP,
    SpeechCollator,
    check_training_split,
    configure_language,
    drop_eval_overlap,
    filter_rows,
    label_lengths,
    read_skips,
    reasons_for,
    training_subset,
    write_drops,
)

CHECKPOINTS = "checkpoints"
MODEL = "model"
TENSORBOARD = "tensorboard"
FINISHED_MARKER = "trainer_state.json"  # written into run_dir/model once training has completed
CLOCK_FILE = "train_seconds.json"  # training time so far, summed over the sessions of an interrupted run


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


# ------------------------------------------------------------------------------------ device defaults

def default_num_workers(device: str, streaming: bool = False) -> int:
    """DataLoader worker processes that decode clips and compute features while the model trains.

    On a CPU the model's own threads use every core: one worker prepares the next batch meanwhile (preparing a
    batch of 8 takes a small fraction of a step). On a GPU the workers must keep up with the GPU: all cores but one
    per training process, at most 8 (README: how many a GPU needs, from the measured loader throughput). A stream
    is read in the training process (0), where its drop counts are kept."""
    if streaming:
        return 0
    if device != "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, per_process - 1))


def device_defaults(model_or_config) -> DeviceDefaults:
    """The one place that turns 'this machine + this model' into training settings."""
    config = getattr(model_or_config, "config", model_or_config)
    info = accelerator_info()  # the same probe notebook 00 reports
    name = f"CPU, {info['cpu_cores']} cores" if info["device"] == "cpu" else info["name"]
    return suggest_defaults(int(config.d_model), info["device"], info["memory_gib"], info["bf16"], name)


def resolve_settings(cfg: TrainConfig, defaults: DeviceDefaults) -> dict:
    """Explicit parameters win over the suggestions; returns the values the run will use."""
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


# ---------------------------------------------------------------------------------------- memory tricks

OPTIMIZERS = {"adamw": "adamw_torch", "adafactor": "adafactor", "adamw_8bit": "adamw_bnb_8bit"}


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_optimizer(name: str) -> str:
    """The Trainer's `optim` value for one of our optimiser names; a clear error when it cannot run here."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, not {name!r}.")
    if name == "adamw_8bit":
        import torch

        missing = []
        if not _installed("bitsandbytes"):
            missing.append("the bitsandbytes package (pip install bitsandbytes)")
        if not torch.cuda.is_available():
            missing.append("a CUDA GPU")
        if missing:
            raise RuntimeError(
                "optimizer='adamw_8bit' (8-bit Adam, optimiser state in 8 bits: about 75% less optimiser memory) "
                f"needs {' and '.join(missing)}, which this machine lacks. Use optimizer='adamw' or 'adafactor'."
            )
    return OPTIMIZERS[name]


def apply_lora(model, r: int = 32, alpha: int = 64, dropout: float = 0.05):
    """Wrap the model with LoRA adapters on the attention projections (needs the peft package)."""
    if not _installed("peft"):
        raise RuntimeError(
            "lora=True needs the peft package, which is not installed: `pip install peft` (and pin it in "
            "requirements.txt), or set lora=False to fine-tune all weights."
        )
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=["q_proj", "v_proj"], bias="none")
    return get_peft_model(model, config)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


# ------------------------------------------------------------------------------------ model + processor


def load_model(model: str, language: str | None, *, freeze_encoder: bool = False, lora: bool = False):
    """Load a Whisper checkpoint (local path or Hub id) in float32 with the language/task prefix set.

    Returns (model, processor, whisper_language_name).
    """
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
        whisper = apply_lora(whisper)
    return whisper, processor, name


# --------------------------------------------------------------------------------------------- metrics


def looks_looped(prediction: str, reference: str, hit_length_cap: bool = False) -> bool:
    """Flag a transcript that shows the decoder looping: it ran into the generation length cap, repeats a phrase
    where the reference does not, or is far longer than the reference (detectors shared with notebook 04)."""
    from helpers.metrics import has_repetition, is_too_long

    return bool(hit_length_cap or has_repetition(reference, prediction) or is_too_long(reference, prediction))


class WhisperMetrics:
    """compute_metrics for Seq2SeqTrainer: normalised WER (the headline), orthographic WER beside it (both in
    percent, from helpers.metrics as in notebook 04), and the fraction of transcripts that look looped.
    Keeps the last predictions so that examples can be shown.

    `generation_cap` (set by build_trainer from the arguments' generation_max_length): a transcript that used
    all of it (up to the 4 prompt tokens) ran into the cap, which the looping flag counts.
    """

    PROMPT_ALLOWANCE = 4  # <|startoftranscript|><|xx|><|transcribe|><|notimestamps|>

    def __init__(self, tokenizer, normalizer: Callable[[str], str], generation_cap: int | None = None):
        self.tokenizer = tokenizer
        self.normalizer = normalizer
        self.generation_cap = generation_cap
        self.last: dict[str, list] = {}

    def __call__(self, eval_pred) -> dict:
        from helpers.metrics import compute_metrics

        tok = self.tokenizer
        pad = tok.pad_token_id
        predictions_ids = np.asarray(eval_pred.predictions)
        pred_ids = np.where(predictions_ids == -100, pad, predictions_ids)
        label_ids = np.where(np.asarray(eval_pred.label_ids) == -100, pad, np.asarray(eval_pred.label_ids))
        predictions = tok.batch_decode(pred_ids, skip_special_tokens=True)
        references = tok.batch_decode(label_ids, skip_special_tokens=True)
        # Generated sequences come back padded (with the end token, which is also Whisper's pad token).
        lengths = (pred_ids != pad).sum(axis=-1) if pred_ids.ndim == 2 else np.zeros(len(predictions))
        cap = self.generation_cap
        hit_cap = [bool(cap) and int(n) >= cap - self.PROMPT_ALLOWANCE for n in lengths]
        looped = [looks_looped(p, r, c) for p, r, c in zip(predictions, references, hit_cap)]
        self.last = {"references": references, "predictions": predictions, "looped": looped}
        scores = compute_metrics(references, predictions, self.normalizer)
        return {
            "wer": scores["wer"],
            "wer_orthographic": scores["wer_orthographic"],
            "looping": float(np.mean(looped)) if looped else 0.0,
        }


# ------------------------------------------------------------------------------------------- callbacks


def _progress_callback():
    from transformers import TrainerCallback

    class CompactProgress(TrainerCallback):
        """One short line per logged step and per evaluation instead of progress bars."""

        def __init__(self):
            self.start = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.time()
            self.first_step = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            elapsed = time.time() - (self.start or time.time())
            done = max(state.global_step - getattr(self, "first_step", 0), 1)
            if "loss" in logs:
                print(
                    f"step {state.global_step:>4}/{state.max_steps}  loss {logs['loss']:.3f}  "
                    f"lr {logs.get('learning_rate', 0):.1e}  {elapsed / done:.1f} s/step",
                    flush=True,
                )
            if "eval_wer" in logs:
                print(
                    f"eval @ {state.global_step:>4}: WER {logs['eval_wer']:.1f}% (orthographic "
                    f"{logs.get('eval_wer_orthographic', float('nan')):.1f}%), looping "
                    f"{100 * logs.get('eval_looping', 0):.0f}% of clips, eval loss {logs.get('eval_loss', float('nan')):.3f}",
                    flush=True,
                )

    return CompactProgress()


@contextmanager
def _env(name: str, value: str):
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


def generation_cap(lengths: Iterable[int], minimum: int = 128, maximum: int = 444) -> int:
    """Generation length cap from the evaluation labels' token counts (`label_lengths`): twice the longest (at
    least `minimum` tokens), so that a correct transcript always fits and a looping decoder is stopped early. At
    most 448 minus the 4 prompt tokens."""
    longest = max(lengths, default=0)
    return int(min(maximum, max(minimum, 2 * longest)))


def training_arguments(cfg: TrainConfig, settings: dict, eval_batch_size: int | None = None,
                       generation_max_length: int | None = None):
    """Seq2SeqTrainingArguments for a run (current transformers 5 names: eval_strategy, use_cpu, no logging_dir).

    `generation_max_length`: the cap for evaluation by generation (default: cfg's, else 128; see generation_cap).
    """
    from transformers import Seq2SeqTrainingArguments

    run_dir = Path(cfg.run_dir)
    precision = settings["precision"]
    return Seq2SeqTrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=settings["batch_size"],
        per_device_eval_batch_size=eval_batch_size or max(settings["batch_size"], 16),
        gradient_accumulation_steps=settings["gradient_accumulation_steps"],
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        optim=check_optimizer(cfg.optimizer),
        # "gradient checkpointing" in older tutorials: transformers 5 calls it activation checkpointing
        activation_checkpointing=settings["gradient_checkpointing"],
        activation_checkpointing_kwargs={"use_reentrant": False} if settings["gradient_checkpointing"] else None,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=settings.get("device", "cpu") == "cpu",
        eval_strategy="steps",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps or cfg.eval_steps,
        save_total_limit=1,
        logging_steps=1,
        report_to=["tensorboard"],
        disable_tqdm=True,
        predict_with_generate=True,
        generation_max_length=generation_max_length or cfg.generation_max_length or 128,
        remove_unused_columns=False,
        label_names=["labels"],
        load_best_model_at_end=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=settings.get("num_workers", 0),  # batches are built (audio decoded) in these
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
    with _env("TENSORBOARD_LOGGING_DIR", str(Path(run_dir) / TENSORBOARD)):
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            data_collator=collator,
            processing_class=processor,
            compute_metrics=metrics,
            callbacks=all_callbacks,
        )
    trainer.remove_callback(PrinterCallback)  # raw log dicts; CompactProgress prints a readable line instead
    return trainer


# ---------------------------------------------------------------------------------------------- resume


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in run_dir/checkpoints (one whose trainer state was written last)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = []
    for path in folder.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir() and (path / "trainer_state.json").is_file():
            done.append((int(match.group(1)), path))
    return max(done)[1] if done else None


def finished_state(run_dir: str | Path) -> dict | None:
    """The trainer state of a completed run in run_dir/model, or None."""
    path = Path(run_dir) / MODEL / FINISHED_MARKER
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class TrainingOutcome:
    status: str  # "trained", "resumed" or "already finished"
    global_step: int
    resumed_from: str | None = None
    train_seconds: float | None = None  # the run's training time, the part before an interruption included
    samples_per_second: float | None = None
    log_history: list = field(default_factory=list)
    data_wait_seconds: float | None = None  # of train_seconds, how long the steps waited for their batches

    def final_eval(self) -> dict:
        """The last evaluation logged, without the "eval_" prefix ({} when there was none)."""
        evals = [h for h in self.log_history if "eval_wer" in h]
        return {k.removeprefix("eval_"): v for k, v in evals[-1].items()} if evals else {}


def _train_numbers(log_history: list) -> tuple[float | None, float | None]:
    done = [h for h in log_history if "train_runtime" in h]
    return (done[-1]["train_runtime"], done[-1].get("train_samples_per_second")) if done else (None, None)


def _clock(path: Path) -> dict:
    """The clock file's {"seconds", "data_wait_seconds", "step"} ({} when there is none)."""
    try:
        clock = json.loads(path.read_text(encoding="utf-8"))
        return clock if isinstance(clock, dict) and isinstance(clock.get("seconds"), (int, float)) else {}
    except (OSError, ValueError):
        return {}


def _run_seconds(run_dir: Path, history: list) -> float | None:
    """Training time of a run read back from disk: the clock file (all sessions), else the trainer's own log."""
    return _clock(run_dir / CLOCK_FILE).get("seconds") or _train_numbers(history)[0]


def _clock_callback(path: Path, before: dict):
    """Keeps run_dir/train_seconds.json at `before` + this session's time, written at every checkpoint and at the
    end, so that a resumed run reports the time of all its sessions. It also adds up how long the steps waited for
    their batches: from the end of a step (or of its logging, evaluation and checkpoint) to the start of the next,
    the Trainer does nothing but fetch the next batches from the DataLoader."""
    from transformers import TrainerCallback

    class TrainingClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = self.mark = time.time()
            self.waited = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if self.mark is not None:
                self.waited += time.time() - self.mark
            self.mark = None

        def on_step_end(self, args, state, control, **kwargs):
            self.mark = time.time()

        on_log = on_evaluate = on_step_end  # the next batch is fetched after these

        def _write(self, state):
            if state.is_world_process_zero:
                write_json({"seconds": round(before.get("seconds", 0.0) + time.time() - self.start, 1),
                            "data_wait_seconds": round(before.get("data_wait_seconds", 0.0) + self.waited, 2),
                            "step": state.global_step}, path)

        def on_save(self, args, state, control, **kwargs):
            self._write(state)
            self.mark = time.time()

        def on_train_end(self, args, state, control, **kwargs):
            self._write(state)

    return TrainingClock()


def train_or_resume(trainer, run_dir: str | Path, *, retrain: bool = False) -> TrainingOutcome:
    """Train, continue an interrupted run from its last checkpoint, or load a finished run without retraining.

    - run_dir/model holds a finished run of max_steps steps: load it (no training) unless `retrain`.
    - run_dir/checkpoints holds a checkpoint: continue from the newest complete one (model, optimiser, scheduler,
      data order and random state restored by the Trainer) and say so.
    - otherwise: train from the pretrained model.
    `retrain=True` deletes run_dir/checkpoints and run_dir/model first.
    """
    from transformers import WhisperForConditionalGeneration

    run_dir = Path(run_dir)
    max_steps = trainer.args.max_steps
    if retrain:
        for sub in (CHECKPOINTS, MODEL, READ_SKIPS):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
    state = finished_state(run_dir)
    if state is not None:
        if state.get("global_step") != max_steps:
            raise RuntimeError(
                f"{run_dir / MODEL} holds a finished run of {state.get('global_step')} steps but max_steps is "
                f"{max_steps}. Set retrain=True to train again from the start, or choose another run_dir."
            )
        trained = WhisperForConditionalGeneration.from_pretrained(run_dir / MODEL)
        trained.config.use_cache = False
        trainer.model = trainer.model_wrapped = trained.to(trainer.args.device)
        message = (
            f"{run_dir / MODEL} holds a finished run of {max_steps} steps: loaded it instead of training again "
            "(retrain=True trains from the start)."
        )
        if trainer.is_world_process_zero():
            print(message, flush=True)
        history = state.get("log_history", [])
        return TrainingOutcome("already finished", max_steps, None, _run_seconds(run_dir, history),
                               _train_numbers(history)[1], history, _clock(run_dir / CLOCK_FILE).get("data_wait_seconds"))
    checkpoint = last_checkpoint(run_dir)
    step = int(checkpoint.name.split("-")[1]) if checkpoint is not None else 0
    if step > max_steps:
        raise RuntimeError(
            f"{checkpoint} is further than max_steps ({max_steps}). Set max_steps={step} to finish that run, "
            "retrain=True to train again from the start, or choose another run_dir."
        )
    if step == max_steps and not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        # The run stopped after its last checkpoint but before the model was saved. Trainer.train would resume
        # and then take one step too many (it checks max_steps only after a step), so load the checkpoint.
        # (Under DeepSpeed or FSDP the weights load only inside Trainer.train: there it resumes as usual.)
        from transformers import TrainerState

        trainer._load_from_checkpoint(str(checkpoint))  # full weights, or LoRA adapters
        trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        trainer.state.is_world_process_zero = trainer.is_world_process_zero()  # saved by process 0
        trainer.state.is_local_process_zero = trainer.is_local_process_zero()
        if hasattr(trainer.compute_metrics, "last"):
            trainer.compute_metrics.last = {}  # no transcripts of this model yet: final_metrics evaluates it
        if trainer.is_world_process_zero():
            print(f"{checkpoint.name} holds all {max_steps} steps: loaded it (the run stopped before saving the "
                  "model).", flush=True)
        history = list(trainer.state.log_history)
        return TrainingOutcome("resumed", trainer.state.global_step, checkpoint.name, _run_seconds(run_dir, history),
                               None, history, _clock(run_dir / CLOCK_FILE).get("data_wait_seconds"))
    if checkpoint is not None:
        message = f"Resuming from {checkpoint.name} (step {step} of {max_steps}) instead of starting over."
        status = "resumed"
    else:
        message = f"Training from the pretrained model for {max_steps} steps."
        status = "trained"
    if trainer.is_world_process_zero():
        print(message, flush=True)
    before = _clock(run_dir / CLOCK_FILE) if checkpoint else {}
    clock = _clock_callback(run_dir / CLOCK_FILE, before)
    trainer.add_callback(clock)
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        trainer.remove_callback(clock)
    return TrainingOutcome(
        status,
        trainer.state.global_step,
        resumed_from=checkpoint.name if checkpoint else None,
        # one clock: what the clock file says, as a re-run of a finished run reads it back (the trainer's own
        # train_runtime is measured over a slightly different span)
        train_seconds=_clock(run_dir / CLOCK_FILE).get("seconds") or result.metrics.get("train_runtime", 0.0),
        samples_per_second=result.metrics.get("train_samples_per_second"),
        log_history=list(trainer.state.log_history),
        data_wait_seconds=_clock(run_dir / CLOCK_FILE).get("data_wait_seconds"),
    )


def zero_shot(trainer, cfg: TrainConfig) -> tuple[dict, dict]:
    """Evaluate the model before training: (metrics, examples). Cached in run_dir/zero_shot.json for the same
    model, data, evaluation split and generation cap, so that re-running a finished notebook does not redo it."""
    key = {"model": cfg.model, "dataset": cfg.dataset, "language": cfg.language, "split": cfg.eval_split,
           "rows": len(trainer.eval_dataset), "generation_max_length": trainer.args.generation_max_length}
    path = Path(cfg.run_dir) / "zero_shot.json"
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached["metrics"], cached.get("examples", {})
    raw = trainer.evaluate(metric_key_prefix="zero_shot")
    metrics = {k.removeprefix("zero_shot_"): v for k, v in raw.items()}
    examples = dict(getattr(trainer.compute_metrics, "last", {}) or {})
    if trainer.is_world_process_zero():
        write_json({"key": key, "metrics": metrics, "examples": examples}, path)
    return metrics, examples


def final_metrics(trainer, outcome: TrainingOutcome, run_dir: str | Path) -> tuple[dict, dict]:
    """The fine-tuned model's scores on the evaluation split and its transcripts: (metrics, examples).

    Taken from the evaluation at the last step when this process ran it (eval_steps divides max_steps), from the
    saved run when it had finished before, else evaluated now."""
    final = outcome.final_eval()
    if outcome.status == "already finished":
        examples = {"references": [], "predictions": [], "looped": []}
        for row in read_examples(Path(run_dir) / "examples.csv"):
            examples["references"].append(row["reference"])
            examples["predictions"].append(row["fine_tuned"])
            examples["looped"].append(row["fine_tuned_looped"] == "True")
        return final, examples
    if final.get("step") != outcome.global_step or not getattr(trainer.compute_metrics, "last", None):
        final = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()} | {"step": outcome.global_step}
    return final, dict(getattr(trainer.compute_metrics, "last", {}) or {})


# ------------------------------------------------------------------------------------------------ save


def save_final_model(trainer, processor, run_dir: str | Path) -> Path:
    """Write the final model, processor and generation config (language and task set) to run_dir/model.

    Plain `WhisperForConditionalGeneration.from_pretrained(run_dir/model)` loads it; LoRA adapters are merged in
    first. The trainer state written last marks the run as finished (see `train_or_resume`)."""
    out = Path(run_dir) / MODEL
    model = trainer.model
    model.config.use_cache = True  # for whoever generates with the saved model
    if hasattr(model, "merge_and_unload"):  # LoRA: fold the adapters into the weights
        merged = model.merge_and_unload()
        if trainer.is_world_process_zero():
            merged.save_pretrained(out)
    else:
        trainer.save_model(str(out))  # also right under DeepSpeed/FSDP, where weights are spread over processes
    if trainer.is_world_process_zero():
        processor.save_pretrained(out)  # processor_config.json (transformers 5), tokenizer files
        # preprocessor_config.json too: CTranslate2's converter and faster-whisper read the mel bins from it
        processor.feature_extractor.save_pretrained(out)
        trainer.state.save_to_json(str(out / FINISHED_MARKER))
    model.config.use_cache = False
    return out


def _base_model_id(model: str) -> str | None:
    """The Hub id of the base model: `model` itself, or OpenAI's id for a local conversion (models/whisper-base)."""
    name = Path(model.rstrip("/")).name
    if Path(model).exists() and re.fullmatch(r"whisper-(tiny|base|small|medium|large(-v[23])?)(\.en)?", name):
        return f"openai/{name}"
    return hub_id(model)


def write_model_card(model_dir: str | Path, *, base_model: str, dataset: str, language: str, metrics: dict,
                     zero_shot_metrics: dict | None = None, eval_split: str = "test",
                     hyperparameters: dict | None = None) -> Path:
    """README.md with model-index metadata (model, dataset, language, WER) next to the saved model."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_dir = Path(model_dir)
    name = f"{Path(base_model.rstrip('/')).name}-{language}"  # e.g. whisper-small-es
    lang = base_language(language)
    try:
        from helpers.languages import whisper_language

        spoken = f"{whisper_language(language).title()} ({language})"
    except ValueError:
        spoken = language
    hub_dataset = hub_id(dataset)
    dataset_name = dataset_title(dataset)
    results = [
        EvalResult(
            task_type="automatic-speech-recognition", task_name="Automatic Speech Recognition",
            dataset_type=hub_dataset or "common_voice", dataset_name=dataset_name, dataset_config=language,
            dataset_split=eval_split, metric_type="wer", metric_value=round(float(metrics["wer"]), 2),
            metric_name="WER (normalised, %)",
        )
    ]
    if metrics.get("wer_orthographic") is not None:
        results.append(EvalResult(
            task_type="automatic-speech-recognition", task_name="Automatic Speech Recognition",
            dataset_type=hub_dataset or "common_voice", dataset_name=dataset_name, dataset_config=language,
            dataset_split=eval_split, metric_type="wer", metric_value=round(float(metrics["wer_orthographic"]), 2),
            metric_name="WER (orthographic, %)",
        ))
    data = ModelCardData(
        language=lang, license="mit", library_name="transformers", pipeline_tag="automatic-speech-recognition",
        base_model=_base_model_id(base_model), datasets=[hub_dataset] if hub_dataset else None, metrics=["wer"],
        tags=["whisper", "automatic-speech-recognition", "fine-tuned"], model_name=name, eval_results=results,
    )
    before = ""
    if zero_shot_metrics and zero_shot_metrics.get("wer") is not None:
        before = f" (before fine-tuning: {float(zero_shot_metrics['wer']):.1f}%)"
    params = "\n".join(f"- {k}: {v}" for k, v in (hyperparameters or {}).items())
    body = f"""
# {name}

Whisper fine-tuned for {spoken} speech recognition from `{base_model}` on {dataset_name} ({dataset}).

## Results on the {eval_split} split

- WER, normalised text: {float(metrics['wer']):.1f}%{before}
- WER, text as written: {float(metrics.get('wer_orthographic', float('nan'))):.1f}%

## Use

```python
from transformers import WhisperForConditionalGeneration, WhisperProcessor
processor = WhisperProcessor.from_pretrained("path/to/this/folder")
model = WhisperForConditionalGeneration.from_pretrained("path/to/this/folder")
# language and task are in the generation config: model.generate(input_features) transcribes {spoken}
```

## Training

{params}
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    path = model_dir / "README.md"
    card.save(path)
    return path


def hub_token() -> str | None:
    """A token from the environment (HF_TOKEN) or the Hub login; never from a parameter."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def push_model(model_dir: str | Path, repo_id: str, private: bool = True) -> str:
    """Upload run_dir/model to the Hub (token from the environment or `hf auth login` only)."""
    token = hub_token()
    if not token:
        raise RuntimeError(
            "push_to_hub=True but no Hugging Face token was found: run `hf auth login` in a terminal or set the "
            "HF_TOKEN environment variable (never put a token in a notebook parameter)."
        )
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, commit_message="Fine-tuned Whisper")
    return f"https://huggingface.co/{repo_id}"


# ---------------------------------------------------------------------------------------- report + plot


def history_frame(log_history: list) -> dict[str, list]:
    """Steps and values of the training loss and the evaluation WERs, for plotting and tables."""
    out = {"loss_step": [], "loss": [], "eval_step": [], "wer": [], "wer_orthographic": []}
    for h in log_history:
        if "loss" in h:
            out["loss_step"].append(h["step"])
            out["loss"].append(h["loss"])
        if "eval_wer" in h:
            out["eval_step"].append(h["step"])
            out["wer"].append(h["eval_wer"])
            out["wer_orthographic"].append(h.get("eval_wer_orthographic"))
    return out


def plot_history(log_history: list, zero_shot_metrics: dict | None = None):
    """Training loss and evaluation WER against steps (zero-shot WER drawn at step 0)."""
    import matplotlib.pyplot as plt

    h = history_frame(log_history)
    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(h["loss_step"], h["loss"], marker=".")
    ax_loss.set(xlabel="step", ylabel="training loss", title="Training loss")
    steps, wer, orth = list(h["eval_step"]), list(h["wer"]), list(h["wer_orthographic"])
    if zero_shot_metrics and zero_shot_metrics.get("wer") is not None:
        steps, wer = [0] + steps, [zero_shot_metrics["wer"]] + wer
        orth = [zero_shot_metrics.get("wer_orthographic")] + orth
    ax_wer.plot(steps, wer, marker="o", label="normalised")
    ax_wer.plot(steps, orth, marker="s", linestyle="--", label="orthographic")
    ax_wer.set(xlabel="step", ylabel="WER %", title="Evaluation WER (step 0 = zero-shot)")
    ax_wer.set_ylim(bottom=0)
    ax_wer.legend()
    fig.tight_layout()
    return fig


def write_examples(path: str | Path, zero_shot_examples: dict, final_examples: dict) -> Path:
    """A CSV of reference, zero-shot and fine-tuned transcripts of the evaluation clips."""
    path = Path(path)
    refs = final_examples.get("references") or zero_shot_examples.get("references") or []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "zero_shot", "fine_tuned", "fine_tuned_looped"])
        for i, ref in enumerate(refs):
            zs = (zero_shot_examples.get("predictions") or [""] * len(refs))[i] if zero_shot_examples else ""
            ft = (final_examples.get("predictions") or [""] * len(refs))[i] if final_examples else ""
            looped = (final_examples.get("looped") or [False] * len(refs))[i] if final_examples else False
            writer.writerow([ref, zs, ft, looped])
    return path


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

    def report_dict(self) -> dict:
        return {r.step: r.as_dict() for r in self.reports}

    def summary(self) -> str:
        return "\n".join(r.summary(reasons_for(r)) for r in self.reports)

    def add_read_skips(self, run_dir: str | Path) -> DropReport:
        """Add the clips left out while batches were read (corrupt, or over 30 s when no duration was known up
        front) to the reports, and write run_dir/dropped_rows.csv again with them."""
        report = read_skips(Path(run_dir) / READ_SKIPS, READ_STEP)
        self.reports = [r for r in self.reports if r.step != report.step] + [report]
        write_drops(self.reports, Path(run_dir) / "dropped_rows.csv")
        return report


def prepare_data(cfg: TrainConfig, processor, max_label_tokens: int = 448) -> PreparedData:
    """Load train and eval splits as light rows, drop eval overlap and filter (the steps of notebook 03)."""
    from helpers.data import load_split

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
        write_drops(data.reports, run_dir / "dropped_rows.csv")
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


def finish_run(trainer, processor, cfg: TrainConfig, settings: dict, outcome: TrainingOutcome, before: dict,
               before_examples: dict) -> tuple[dict, dict]:
    """The fine-tuned model's scores and transcripts: (metrics, examples). A run trained now is saved to
    run_dir/model with its model card and run_dir/examples.csv; a finished run keeps its files (notebook 04 adds
    its results to the card, which must not be written over)."""
    run_dir = Path(cfg.run_dir)
    final, final_examples = final_metrics(trainer, outcome, run_dir)
    if outcome.status != "already finished":
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
    out = {}
    for key in ("wer", "wer_orthographic", "looping", "loss"):
        value = metrics.get(key)
        out[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 3)
    return out


def training_summary(cfg: TrainConfig, data: PreparedData, settings: dict, defaults: DeviceDefaults,
                     outcome: TrainingOutcome, before: dict, final: dict, language_name: str | None) -> dict:
    """The content of run_dir/training.json (WER in percent, looping as a fraction of the evaluation clips)."""
    import torch

    return {
        "language": cfg.language,
        "whisper_language": language_name,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "train_split": cfg.train_split,
        "eval_split": cfg.eval_split,
        "train_rows": None if cfg.streaming else len(data.train),
        "eval_rows": len(data.eval),
        "training_text": "normalised (notebook 02 rules)" if data.text_transform else "as written (un-normalised)",
        "dropped": data.report_dict(),
        "status": outcome.status,
        "resumed_from": outcome.resumed_from,
        "steps": outcome.global_step,
        "train_seconds": None if outcome.train_seconds is None else round(outcome.train_seconds, 1),
        "samples_per_second": outcome.samples_per_second,
        "data_wait_seconds": outcome.data_wait_seconds,  # of train_seconds: steps waiting for their batches
        "device": defaults.device,
        "device_name": defaults.device_name,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "torch_threads": torch.get_num_threads(),
        "precision": settings["precision"],
        "batch_size": settings["batch_size"],
        "gradient_accumulation_steps": settings["gradient_accumulation_steps"],
        "gradient_checkpointing": settings["gradient_checkpointing"],
        "dataloader_workers": settings["num_workers"],
        "hyperparameters": hyperparameters(cfg, settings),
        "wer_unit": "percent",
        "zero_shot": _rounded(before),
        "final": _rounded(final),
        # the project's one sign convention: positive = fewer errors than zero-shot (NaN is written as null)
        "relative_wer_improvement": round(relative_improvement(before.get("wer"), final.get("wer")), 2),
    }


# ---------------------------------------------------------------------------------------------- script


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m helpers.train",
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

    for name, value in asdict(defaults).items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(option, type=flag, default=value, metavar="true|false")
        elif name in ("batch_size", "gradient_accumulation_steps", "save_steps", "max_train_samples",
                      "max_eval_samples", "num_workers", "generation_max_length"):
            parser.add_argument(option, type=optional_int, default=value)
        elif name == "gradient_checkpointing":
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
