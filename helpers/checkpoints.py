"""Checkpoints of a training run: resume an interrupted run, recognise a finished one, save the final model.

Everything lives in run_dir: checkpoints/ (the newest complete one is kept, for resuming) and model/ (the final
model; its trainer_state.json marks the run as finished). The run's training time, over all the sessions of an
interrupted run, travels in the trainer state of each checkpoint (the Trainer's `stateful_callbacks`).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.files import read_json
from helpers.prepare import READ_SKIPS

CHECKPOINTS = "checkpoints"
MODEL = "model"
STATE_FILE = "trainer_state.json"  # the Trainer's state in each checkpoint; in run_dir/model it marks a finished run
CLOCK = "TrainingClock"  # the clock callback's class name: its entry in a trainer state's stateful_callbacks


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in run_dir/checkpoints (one whose trainer state was written last)."""
    done = [(int(path.name.split("-")[1]), path) for path in (Path(run_dir) / CHECKPOINTS).glob("checkpoint-*")
            if re.fullmatch(r"checkpoint-\d+", path.name) and (path / STATE_FILE).is_file()]
    return max(done)[1] if done else None


def finished_state(run_dir: str | Path) -> dict | None:
    """The trainer state of a completed run in run_dir/model, or None."""
    return read_json(Path(run_dir) / MODEL / STATE_FILE)


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


def _saved_clock(state: dict | None) -> dict:
    """{"seconds", "data_wait_seconds"} of the training clock kept in a trainer state ({} when it has none)."""
    return (((state or {}).get("stateful_callbacks") or {}).get(CLOCK) or {}).get("attributes") or {}


def _clock_callback(before: dict):
    """Times the run: `before` (the sessions before an interruption) + this session. The Trainer keeps its totals in
    every checkpoint's trainer state (it is an ExportableState), so a resumed run reports the time of all its
    sessions. It also adds up how long the steps waited for their batches: from the end of a step (or of its
    logging, evaluation and checkpoint) to the start of the next, the Trainer only fetches the next batches."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class TrainingClock(TrainerCallback, ExportableState):
        start = mark = None
        waited = 0.0

        def totals(self) -> dict:
            seconds = time.time() - self.start if self.start else 0.0
            return {"seconds": round(before.get("seconds", 0.0) + seconds, 1),
                    "data_wait_seconds": round(before.get("data_wait_seconds", 0.0) + self.waited, 2)}

        def state(self) -> dict:
            return {"args": {}, "attributes": self.totals()}

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = self.mark = time.time()
            state.stateful_callbacks.setdefault(CLOCK, self.state())  # resumed from a checkpoint without a clock

        def on_step_begin(self, args, state, control, **kwargs):
            if self.mark is not None:
                self.waited += time.time() - self.mark
            self.mark = None

        def on_step_end(self, args, state, control, **kwargs):
            self.mark = time.time()

        on_log = on_evaluate = on_save = on_step_end  # the next batch is fetched after these

    assert TrainingClock.__name__ == CLOCK  # the Trainer files a callback's state under its class name
    return TrainingClock()


def train_or_resume(trainer, run_dir: str | Path, *, retrain: bool = False) -> TrainingOutcome:
    """Train, continue an interrupted run from its last checkpoint, or load a finished run without retraining.

    - run_dir/model holds a finished run of max_steps steps: load it (no training) unless `retrain`.
    - run_dir/checkpoints holds a checkpoint: continue from the newest complete one (model, optimiser, scheduler,
      data order and random state restored by the Trainer) and say so.
    - otherwise: train from the pretrained model.
    `retrain=True` deletes run_dir/checkpoints and run_dir/model first.
    """
    from transformers import TrainerState, WhisperForConditionalGeneration

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
        trained = WhisperForConditionalGeneration.from_pretrained(run_dir / MODEL)  # LoRA adapters merged in
        trained.config.use_cache = False
        trainer.model = trainer.model_wrapped = trained.to(trainer.args.device)
        if trainer.is_world_process_zero():
            print(f"{run_dir / MODEL} holds a finished run of {max_steps} steps: loaded it instead of training again "
                  "(retrain=True trains from the start).", flush=True)
        history, clock = state.get("log_history", []), _saved_clock(state)
        end = ([h for h in history if "train_runtime" in h] or [{}])[-1]
        return TrainingOutcome("already finished", max_steps, None, clock.get("seconds") or end.get("train_runtime"),
                               end.get("train_samples_per_second"), history, clock.get("data_wait_seconds"))
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
        if hasattr(trainer.model, "merge_and_unload"):  # a peft model: the checkpoint holds its adapters
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(trainer.model, load_file(checkpoint / "adapter_model.safetensors"))
        else:
            trainer.model.load_state_dict(WhisperForConditionalGeneration.from_pretrained(checkpoint).state_dict())
        trainer.state = TrainerState.load_from_json(str(checkpoint / STATE_FILE))
        trainer.state.is_world_process_zero = trainer.is_world_process_zero()  # saved by process 0
        trainer.state.is_local_process_zero = trainer.is_local_process_zero()
        if hasattr(trainer.compute_metrics, "last"):
            trainer.compute_metrics.last = {}  # no transcripts of this model yet: finish_run evaluates it
        if trainer.is_world_process_zero():
            print(f"{checkpoint.name} holds all {max_steps} steps: loaded it (the run stopped before saving the "
                  "model).", flush=True)
        clock = _saved_clock({"stateful_callbacks": trainer.state.stateful_callbacks})
        return TrainingOutcome("resumed", trainer.state.global_step, checkpoint.name, clock.get("seconds"), None,
                               list(trainer.state.log_history), clock.get("data_wait_seconds"))
    if trainer.is_world_process_zero():
        print(f"Resuming from {checkpoint.name} (step {step} of {max_steps}) instead of starting over." if checkpoint
              else f"Training from the pretrained model for {max_steps} steps.", flush=True)
    clock = _clock_callback(_saved_clock(read_json(checkpoint / STATE_FILE)) if checkpoint else {})
    trainer.add_callback(clock)
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        trainer.remove_callback(clock)
    totals = clock.totals()
    trainer.state.stateful_callbacks[CLOCK] = {"args": {}, "attributes": totals}  # saved with the model
    # one clock: the trainer's own train_runtime covers this session only, over a slightly different span
    return TrainingOutcome("resumed" if checkpoint else "trained", trainer.state.global_step,
                           checkpoint.name if checkpoint else None, totals["seconds"],
                           result.metrics.get("train_samples_per_second"), list(trainer.state.log_history),
                           totals["data_wait_seconds"])


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
        trainer.state.save_to_json(str(out / STATE_FILE))
    model.config.use_cache = False
    return out
