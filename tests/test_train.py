"""Training helpers: device-aware defaults, memory switches, metrics, resume, saving, model card, script."""

from __future__ import annotations

import itertools
import json
import shutil
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch

from helpers import card as K
from helpers import checkpoints as C
from helpers import prepare as P
from helpers import settings as ST
from helpers import train as T
from helpers.normalize import eval_normalizer, training_transform
from helpers.settings import CPU_ACCUMULATION, CPU_BATCH, suggest_defaults
from tools import train as S

RATE = 16_000
SENTENCES = ["the cat sat on the mat", "a red boat on the lake", "we walk to school", "open the window please",
             "it is cold today", "she reads a book"]


@pytest.fixture(autouse=True)
def two_core_cpu(monkeypatch):
    """Every run here trains on a 2-core CPU, whatever this machine has: settings come from the faked probe."""
    monkeypatch.setattr(ST, "accelerator_info",
                        lambda: {"device": "cpu", "cpu_cores": 2, "memory_gib": None, "bf16": False})


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Short tone-and-noise clips with English sentences (no real speech needed to exercise the machinery)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        seconds = 1.0 + 0.25 * i
        t = np.arange(int(seconds * RATE)) / RATE
        audio = (0.2 * np.sin(2 * np.pi * (150 + 30 * i) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        out.append({"audio": {"array": audio, "sampling_rate": RATE}, "sentence": SENTENCES[i % len(SENTENCES)],
                    "client_id": f"speaker{i % 2}", "path": f"clip{seed}_{i}.mp3", "duration": seconds,
                    "split": "train", "row": i})
    return out


def prepared(processor, n: int, seed: int = 0):
    """Rows as the Trainer gets them (here with their audio already decoded, which the collator accepts)."""
    ds = datasets.Dataset.from_list(synthetic_rows(n, seed))
    return ds.with_format("numpy", columns=["audio"], output_all_columns=True)


@pytest.fixture(scope="module")
def tiny_data(tiny_en_dir):
    from transformers import WhisperProcessor

    processor = WhisperProcessor.from_pretrained(tiny_en_dir)
    return processor, prepared(processor, 4, seed=0), prepared(processor, 2, seed=1)


@pytest.fixture(scope="module")
def mini_dir(tiny_en_dir, tmp_path_factory):
    """A very small randomly initialised Whisper with tiny.en's tokenizer, processor and generation config: real
    transformers classes, fast enough to train, checkpoint, interrupt and resume in seconds."""
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    config = WhisperConfig.from_pretrained(tiny_en_dir)
    config.update({"d_model": 64, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                   "decoder_attention_heads": 2, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128})
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("mini-whisper")
    WhisperForConditionalGeneration(config).save_pretrained(out)
    GenerationConfig.from_pretrained(tiny_en_dir).save_pretrained(out)
    WhisperProcessor.from_pretrained(tiny_en_dir).save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------- device defaults

V100 = 16_945_512_448 / 2**30  # what torch reports for a 16 GB V100 (15.8 GiB)
A100 = 42_505_273_344 / 2**30  # A100 40 GB (39.6 GiB)


@pytest.mark.parametrize(
    "d_model, memory, bf16, expected",
    [
        (768, V100, False, ("fp16", 16, 2)),  # small on a V100: the event's 16 x 2
        (1024, V100, False, ("fp16", 2, 16)),  # medium on a V100: 2 x 16
        (768, A100, True, ("bf16", 64, 1)),  # small on an A100 40 GB: 64
        (1024, A100, True, ("bf16", 32, 1)),  # medium on an A100 40 GB: 32
        (512, 11.8, True, ("bf16", 32, 1)),  # base on a 12 GB card (11.8 GiB reported)
        (384, 4.0, False, ("fp16", 16, 2)),  # tiny on a 4 GB card
    ],
)
def test_gpu_suggestions_follow_the_table(d_model, memory, bf16, expected):
    d = suggest_defaults(d_model, "cuda", memory, bf16_supported=bf16, device_name="GPU")
    assert (d.precision, d.batch_size, d.gradient_accumulation_steps) == expected
    assert d.gradient_checkpointing is True


def test_small_gpu_for_a_big_model_suggests_memory_tricks():
    d = suggest_defaults(1024, "cuda", 8.0, bf16_supported=False)
    assert (d.batch_size, d.gradient_accumulation_steps) == (1, 32)
    assert "adafactor" in d.reason and "lora" in d.reason


def test_cpu_trains_in_fp32_without_gradient_checkpointing():
    d = suggest_defaults(512, "cpu")
    assert (d.device, d.precision, d.gradient_checkpointing) == ("cpu", "fp32", False)
    assert (d.batch_size, d.gradient_accumulation_steps) == (CPU_BATCH, CPU_ACCUMULATION)


@pytest.mark.parametrize("info, expected", [
    ({"device": "cpu", "cpu_cores": 2, "memory_gib": None, "bf16": False}, ("cpu", "CPU, 2 cores", "fp32", False, 4)),
    ({"device": "cuda", "name": "Tesla T4", "memory_gib": 14.6, "bf16": False}, ("cuda", "Tesla T4", "fp16", True, 32)),
    ({"device": "cuda", "name": "A100", "memory_gib": 39.4, "bf16": True}, ("cuda", "A100", "bf16", True, 64)),
])
def test_device_defaults_follow_the_probe(info, expected, tiny_en_dir, monkeypatch):
    """Both branches, with the device faked: what notebook 03 trains with on a CPU, a T4 and an A100 (tiny)."""
    from transformers import WhisperConfig

    monkeypatch.setattr(ST, "accelerator_info", lambda: info)
    d = ST.device_defaults(WhisperConfig.from_pretrained(tiny_en_dir))
    assert (d.device, d.device_name, d.precision, d.gradient_checkpointing, d.batch_size) == expected


def test_explicit_parameters_win_over_suggestions():
    d = suggest_defaults(512, "cpu")
    cfg = T.TrainConfig(batch_size=2, gradient_accumulation_steps=3, gradient_checkpointing=True, num_workers=3)
    assert ST.resolve_settings(cfg, d) == {"device": "cpu", "precision": "fp32", "batch_size": 2,
                                          "gradient_accumulation_steps": 3, "gradient_checkpointing": True,
                                          "num_workers": 3}
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        ST.resolve_settings(T.TrainConfig(precision="fp16"), d)


# ----------------------------------------------------------------------------------------- memory tricks


@pytest.mark.parametrize("bitsandbytes, cuda, error", [
    (True, True, None), (False, True, "bitsandbytes package"), (True, False, "a CUDA GPU"),
    (False, False, r"bitsandbytes package .* and a CUDA GPU"),
])
def test_optimizer_switches(bitsandbytes, cuda, error, monkeypatch):
    """8-bit Adam needs bitsandbytes and a GPU: each faked present or absent, not read from this machine."""
    monkeypatch.setattr(ST, "installed", lambda package: bitsandbytes if package == "bitsandbytes" else True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert ST.check_optimizer("adamw") == "adamw_torch"
    assert ST.check_optimizer("adafactor") == "adafactor"
    with pytest.raises(ValueError, match="optimizer must be one of"):
        ST.check_optimizer("sgd")
    if error is None:
        assert ST.check_optimizer("adamw_8bit") == "adamw_bnb_8bit"
    else:
        with pytest.raises(RuntimeError, match=error):
            ST.check_optimizer("adamw_8bit")


def test_adafactor_is_what_the_trainer_builds(tiny_data, tiny_en_dir, tmp_path):
    model, processor, _ = T.load_model(str(tiny_en_dir), "en")
    cfg = T.TrainConfig(language="en", model=str(tiny_en_dir), run_dir=str(tmp_path), optimizer="adafactor",
                        max_steps=1, batch_size=2)
    args = T.training_arguments(cfg, ST.resolve_settings(cfg, ST.device_defaults(model)))
    trainer = T.build_trainer(model, processor, args, tiny_data[1], tiny_data[2], None, tmp_path, progress=False)
    from transformers.optimization import Adafactor

    assert isinstance(trainer.create_optimizer(), Adafactor)


def test_lora_without_peft_says_how_to_get_it(tiny_en_dir, monkeypatch):
    monkeypatch.setattr(T, "installed", lambda package: package != "peft")  # as where peft is not installed
    with pytest.raises(RuntimeError, match="pip install peft"):
        T.load_model(str(tiny_en_dir), "en", lora=True)


def test_lora_trains_adapters_and_saves_a_plain_merged_model(mini_dir, tmp_path):
    from transformers import WhisperForConditionalGeneration

    model, _, _ = T.load_model(str(mini_dir), "en", lora=True)
    trainable, total = T.trainable_parameters(model)
    assert 0 < trainable < total / 10  # only the adapters train

    folder = tmp_path / "cv" / "en"
    write_cv_folder(folder, {"train": [(s, 1.0 + 0.2 * i, "a") for i, s in enumerate(SENTENCES[:4])],
                             "dev": [("the sun is bright", 1.1, "b")], "test": [("good night", 0.9, "c")]})
    run_dir = tmp_path / "run"
    argv = ["--language", "en", "--dataset", str(folder), "--model", str(mini_dir), "--run-dir", str(run_dir),
            "--max-steps", "2", "--eval-steps", "2", "--batch-size", "2", "--generation-max-length", "8",
            "--learning-rate", "0.01", "--lora", "true"]
    assert S.main(argv) == 0
    assert json.loads((run_dir / "training.json").read_text())["hyperparameters"]["lora"] is True

    saved = WhisperForConditionalGeneration.from_pretrained(run_dir / "model").state_dict()  # no peft needed
    base = WhisperForConditionalGeneration.from_pretrained(mini_dir).state_dict()
    assert saved.keys() == base.keys()  # the adapters are merged in: no lora_A / lora_B weights left
    changed = {name for name in base if not torch.equal(saved[name], base[name])}
    assert changed and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in changed), changed

    shutil.rmtree(run_dir / "model")  # as if stopped after the last checkpoint, before the model was saved
    assert S.main(argv) == 0
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["status"] == "resumed" and summary["steps"] == 2  # no step beyond max_steps
    again = WhisperForConditionalGeneration.from_pretrained(run_dir / "model").state_dict()
    assert all(torch.equal(again[name], saved[name]) for name in saved)


def test_freeze_encoder_trains_the_decoder_only(tiny_en_dir):
    model, _, _ = T.load_model(str(tiny_en_dir), "en", freeze_encoder=True)
    assert not any(p.requires_grad for p in model.model.encoder.parameters())
    assert all(p.requires_grad for p in model.model.decoder.parameters())


# --------------------------------------------------------------------------------------------- metrics


def test_looping_is_flagged():
    assert T.looks_looped("y luego y luego y luego y luego", "y luego se fue")
    assert T.looks_looped("fine", "fine", hit_length_cap=True)
    assert T.looks_looped("a b c d e f g h i j k l m n o p q r s t u v w x y z", "a b")
    assert not T.looks_looped("the cat sat on the mat", "the cat sat on a mat")


def test_metrics_report_normalised_and_orthographic_wer_and_loops(tiny_data):
    from transformers import EvalPrediction

    tok = tiny_data[0].tokenizer
    refs = ["Hello, world.", "The cat sat."]
    preds = ["hello world", "the dog sat sat sat sat sat sat"]
    label_ids = tok(refs, padding=True).input_ids
    label_ids = [[t if t != tok.pad_token_id else -100 for t in row] for row in label_ids]
    pred_ids = tok(preds, padding=True).input_ids
    width = max(len(r) for r in label_ids + pred_ids)
    pad = lambda rows, v: np.array([r + [v] * (width - len(r)) for r in rows])  # noqa: E731
    metrics = T.WhisperMetrics(tok, eval_normalizer("en"))
    out = metrics(EvalPrediction(predictions=pad(pred_ids, tok.pad_token_id), label_ids=pad(label_ids, -100)))
    # normalised: 0 errors in 2 words + (dog for cat, 5 inserted sat) in 3 words = 6 / 5
    assert out["wer"] == pytest.approx(100 * 6 / 5)
    assert out["wer_orthographic"] > out["wer"]
    assert out["looping"] == pytest.approx(0.5)
    assert metrics.last["references"] == refs and metrics.last["looped"] == [False, True]

    # A transcript that fills the generation cap is counted as looping even when its words look fine.
    plain = tok(["hello world", "the cat sat"]).input_ids
    cap = min(len(ids) - 1 for ids in plain) + T.WhisperMetrics.PROMPT_ALLOWANCE  # the end token is the pad
    capped = T.WhisperMetrics(tok, eval_normalizer("en"), generation_cap=cap)
    out = capped(EvalPrediction(predictions=pad(plain, tok.pad_token_id), label_ids=pad(label_ids, -100)))
    assert capped.last["looped"] == [True, True] and out["looping"] == 1.0
    roomy = T.WhisperMetrics(tok, eval_normalizer("en"), generation_cap=cap + 1)
    assert roomy(EvalPrediction(predictions=pad(plain, tok.pad_token_id), label_ids=pad(label_ids, -100)))["looping"] < 1


# ----------------------------------------------------------------------------------- resume and saving


class Interrupt(Exception):
    pass


def interrupt_after_save(step: int):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):  # stops the run as Ctrl-C would: in the step after the checkpoint
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise Interrupt(f"stopped after saving step {step}")

    return Stop()


def make_trainer(model_dir, run_dir, data, callbacks=(), max_steps=2):
    processor, train_ds, eval_ds = data
    model, processor, _ = T.load_model(str(model_dir), "en")
    cfg = T.TrainConfig(language="en", model=str(model_dir), run_dir=str(run_dir), max_steps=max_steps,
                        batch_size=2, eval_steps=1, learning_rate=1e-5, generation_max_length=8)
    args = T.training_arguments(cfg, ST.resolve_settings(cfg, ST.device_defaults(model)), eval_batch_size=2)
    metrics = T.WhisperMetrics(processor.tokenizer, eval_normalizer("en"))
    return T.build_trainer(model, processor, args, train_ds, eval_ds, metrics, run_dir, callbacks=callbacks,
                           progress=False), processor


@pytest.fixture
def ticking_clock(monkeypatch):
    """The training clock reads a clock that moves one second a reading: its totals never round to zero."""
    monkeypatch.setattr(C, "time", SimpleNamespace(time=itertools.count(1000.0, 1.0).__next__))


def test_interrupted_training_resumes_and_a_finished_run_is_not_retrained(mini_dir, tiny_data, tmp_path, capsys,
                                                                          ticking_clock):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    run_dir = tmp_path / "run"
    trainer, _ = make_trainer(mini_dir, run_dir, tiny_data, callbacks=[interrupt_after_save(1)])
    with pytest.raises(Interrupt):
        C.train_or_resume(trainer, run_dir)
    assert C.last_checkpoint(run_dir).name == "checkpoint-1"
    assert C.finished_state(run_dir) is None
    state = json.loads((run_dir / C.CHECKPOINTS / "checkpoint-1" / C.STATE_FILE).read_text())
    clock = state["stateful_callbacks"][C.CLOCK]["attributes"]  # the training time travels with the checkpoint
    assert clock["seconds"] > 0

    # A half-written checkpoint (no trainer state yet) is not picked.
    (run_dir / C.CHECKPOINTS / "checkpoint-7").mkdir()
    assert C.last_checkpoint(run_dir).name == "checkpoint-1"

    trainer, processor = make_trainer(mini_dir, run_dir, tiny_data)
    outcome = C.train_or_resume(trainer, run_dir)
    assert (outcome.status, outcome.resumed_from, outcome.global_step) == ("resumed", "checkpoint-1", 2)
    assert "Resuming from checkpoint-1 (step 1 of 2)" in capsys.readouterr().out
    # the training time counts the session before the interruption too
    assert outcome.train_seconds > clock["seconds"]
    assert 0 <= outcome.data_wait_seconds < outcome.train_seconds
    steps = [h["step"] for h in outcome.log_history if "eval_wer" in h]
    assert steps == [1, 2]  # the history of the interrupted part is kept
    assert outcome.final_eval()["step"] == 2

    model_dir = C.save_final_model(trainer, processor, run_dir)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    reloaded = WhisperForConditionalGeneration.from_pretrained(model_dir)
    WhisperProcessor.from_pretrained(model_dir)
    trained = trainer.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())

    trainer, _ = make_trainer(mini_dir, run_dir, tiny_data)
    outcome = C.train_or_resume(trainer, run_dir)
    assert outcome.status == "already finished" and trainer.state.global_step == 0  # nothing was trained
    saved = json.loads((model_dir / C.STATE_FILE).read_text())["stateful_callbacks"][C.CLOCK]["attributes"]
    assert (outcome.train_seconds, outcome.data_wait_seconds) == (saved["seconds"], saved["data_wait_seconds"])
    assert saved["seconds"] > clock["seconds"]  # both sessions
    assert outcome.final_eval()["step"] == 2
    assert torch.equal(trainer.model.model.decoder.embed_tokens.weight, reloaded.model.decoder.embed_tokens.weight)

    trainer, _ = make_trainer(mini_dir, run_dir, tiny_data, max_steps=3)
    with pytest.raises(RuntimeError, match="retrain=True"):
        C.train_or_resume(trainer, run_dir)


def test_retrain_starts_over(mini_dir, tiny_data, tmp_path, ticking_clock):
    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / C.STATE_FILE).write_text(json.dumps({"global_step": 1, "log_history": []}))
    trainer, _ = make_trainer(mini_dir, run_dir, tiny_data, max_steps=1)
    outcome = C.train_or_resume(trainer, run_dir, retrain=True)
    assert (outcome.status, outcome.global_step, outcome.resumed_from) == ("trained", 1, None)
    assert outcome.train_seconds > 0


def test_training_arguments_use_current_names_and_log_under_run_dir(tmp_path):
    cfg = T.TrainConfig(run_dir=str(tmp_path / "r"), max_steps=4, eval_steps=2)
    args = T.training_arguments(cfg, ST.resolve_settings(cfg, suggest_defaults(512, "cpu")))
    assert args.output_dir == str(tmp_path / "r" / "checkpoints")
    assert args.report_to == ["tensorboard"] and args.disable_tqdm
    assert args.eval_strategy == "steps" and args.save_steps == 2 and args.predict_with_generate
    assert args.activation_checkpointing is False and args.use_cpu is True  # the CPU settings, on any machine
    assert args.generation_max_length == 128 and not args.push_to_hub
    assert T.training_arguments(cfg, ST.resolve_settings(cfg, suggest_defaults(512, "cpu")),
                                generation_max_length=200).generation_max_length == 200


def test_generation_cap_leaves_room_for_the_longest_reference():
    assert T.generation_cap([20, 30]) == 128
    assert T.generation_cap([100]) == 200
    assert T.generation_cap([400]) == 444
    assert T.generation_cap([]) == 128


@pytest.mark.parametrize("device, streaming, cores, processes, expected", [
    ("cpu", False, 2, 1, 1),  # the model's threads use the cores; one worker prepares the next batch
    ("cuda", False, 16, 1, 8),  # a GPU needs several, at most 8
    ("cuda", False, 16, 4, 3),  # 4 GPUs share 16 cores: 4 each, one for the training process
    ("cuda", False, 2, 1, 1),
    ("cuda", True, 16, 1, 0),  # a stream is read where its drop counts are kept
])
def test_data_loading_workers_follow_the_machine(device, streaming, cores, processes, expected, monkeypatch):
    monkeypatch.setattr(ST.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
    assert ST.default_num_workers(device, streaming) == expected


# ------------------------------------------------------------------------------------ model card and hub


def test_model_card_names_openai_as_the_base_of_a_local_conversion(base_dir, tmp_path):
    from huggingface_hub import ModelCard

    path = K.write_model_card(tmp_path, base_model=str(base_dir), dataset="sample", language="tr",
                              metrics={"wer": 30.0})
    assert ModelCard.load(path).data.base_model == "openai/whisper-base"


def test_model_card_has_model_index_metadata(tmp_path):
    from huggingface_hub import ModelCard

    model_dir = tmp_path / "es" / "model"
    model_dir.mkdir(parents=True)
    path = K.write_model_card(model_dir, base_model="openai/whisper-small", dataset="sample", language="es",
                              metrics={"wer": 25.04, "wer_orthographic": 40.0}, zero_shot_metrics={"wer": 55.0},
                              hyperparameters={"max_steps": 10})
    card = ModelCard.load(path)
    assert card.data.language == "es" and card.data.base_model == "openai/whisper-small"
    result = card.data.eval_results[0]
    assert (result.metric_type, result.metric_value, result.dataset_split) == ("wer", 25.04, "test")
    assert result.task_type == "automatic-speech-recognition"
    assert "before fine-tuning: 55.0%" in card.text and "Spanish (es)" in card.text
    assert card.data.model_name == "whisper-small-es"


def test_push_to_hub_needs_a_token_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login there
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    with pytest.raises(RuntimeError, match="hf auth login"):
        K.push_model(tmp_path, "someone/whisper-test")


# --------------------------------------------------------------------------------------------- script


def test_script_arguments_map_to_the_config():
    cfg = S.parse_args(["--language", "tr", "--model", "openai/whisper-small", "--run-dir", "runs/tr",
                        "--max-steps", "4000", "--batch-size", "auto", "--freeze-encoder", "true"])
    assert (cfg.language, cfg.model, cfg.run_dir, cfg.max_steps) == ("tr", "openai/whisper-small", "runs/tr", 4000)
    assert cfg.batch_size is None and cfg.freeze_encoder is True and cfg.train_split == "train+dev"
    with pytest.raises(ValueError, match="test split is never used for training"):
        S.parse_args(["--train-split", "train+test"])


def write_cv_folder(root, splits: dict, durations: bool = True) -> None:
    """A Common Voice style locale folder (TSVs + mp3 clips, and clip_durations.tsv unless `durations` is False)
    from {split: [(sentence, seconds, speaker)]}; seconds None writes a corrupt clip."""
    import soundfile as sf

    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
    (root / "clips").mkdir(parents=True)
    n, listed = 0, ["clip\tduration[ms]\n"]
    for split, items in splits.items():
        lines = [header]
        for sentence, seconds, speaker in items:
            n += 1
            name = f"common_voice_en_{n}.mp3"
            if seconds is None:
                (root / "clips" / name).write_bytes(b"\xff\xfb broken" * 50)
            else:
                t = np.arange(int(seconds * 48_000)) / 48_000
                sf.write(root / "clips" / name, (0.2 * np.sin(2 * np.pi * (140 + 10 * n) * t)).astype(np.float32),
                         48_000)
                listed.append(f"{name}\t{round(seconds * 1000)}\n")
            lines.append(f"{speaker}\t{name}\t{sentence}\t2\t0\t\t\t\ten\t\n")
        (root / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    if durations:
        (root / "clip_durations.tsv").write_text("".join(listed), encoding="utf-8")


def test_script_runs_the_whole_pipeline_and_does_not_retrain(mini_dir, tmp_path, capsys):
    folder = tmp_path / "cv" / "en"
    write_cv_folder(folder, {
        "train": [(s, 1.0 + 0.2 * i, "a") for i, s in enumerate(SENTENCES[:4])]
        + [("it is cold today", 1.2, "a"),  # also a test sentence: dropped
           ("a very long recording", 30.5, "a")],  # over 30 s: filtered
        "dev": [("the sun is bright", 1.1, "b")],
        "test": [("It is cold today!", 1.3, "c"), ("good night", 0.9, "c")],
    })
    run_dir = tmp_path / "run"
    argv = ["--language", "en", "--dataset", str(folder), "--model", str(mini_dir), "--run-dir", str(run_dir),
            "--max-steps", "2", "--eval-steps", "2", "--batch-size", "2", "--generation-max-length", "8"]
    assert S.main(argv) == 0
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["status"] == "trained" and summary["steps"] == 2 and summary["train_rows"] == 5
    assert summary["dropped"]["overlap with evaluation split"]["by_reason"] == {P.REASON_SENTENCE: 1}
    assert summary["dropped"]["filters (training)"]["by_reason"] == {P.REASON_AUDIO: 1}
    assert summary["zero_shot"]["wer"] is not None and summary["final"]["wer"] is not None
    assert (summary["device"], summary["precision"], summary["dataloader_workers"]) == ("cpu", "fp32", 1)
    for name in ("model/config.json", "model/generation_config.json", "model/README.md", "model/tokenizer.json",
                 "model/preprocessor_config.json", "dropped_rows.csv", "examples.csv", "zero_shot.json"):
        assert (run_dir / name).is_file(), name
    assert "a very long recording" in (run_dir / "dropped_rows.csv").read_text()
    examples = T.read_examples(run_dir / "examples.csv")
    assert [row["reference"] for row in examples] == ["It is cold today!", "good night"]

    card = run_dir / "model" / "README.md"
    card.write_text(card.read_text() + "\nAdded by notebook 04.\n")
    capsys.readouterr()
    assert S.main(argv) == 0  # again: finished, so nothing is trained and the saved files stay as they are
    assert "loaded it instead of training again" in capsys.readouterr().out
    again = json.loads((run_dir / "training.json").read_text())
    assert again["status"] == "already finished" and again["final"] == summary["final"]
    assert again["train_seconds"] == summary["train_seconds"]  # one clock: the run's and the re-run's
    assert card.read_text().endswith("Added by notebook 04.\n")

    shutil.rmtree(run_dir / "model")  # stopped after the last checkpoint, before the model was saved
    assert S.main(argv) == 0
    resumed = json.loads((run_dir / "training.json").read_text())
    assert resumed["status"] == "resumed" and resumed["steps"] == 2  # the checkpoint's weights, no extra step
    assert resumed["final"]["wer"] == summary["final"]["wer"]
    assert T.read_examples(run_dir / "examples.csv") == examples  # the fine-tuned transcripts, made again

    shutil.rmtree(run_dir / "model")
    with pytest.raises(RuntimeError, match=r"further than max_steps \(1\)"):  # a checkpoint past max_steps
        S.main([*argv, "--max-steps", "1"])


def test_training_text_follows_notebook_02(tmp_path):
    from helpers.normalize import RuleSet, save_normalization

    assert training_transform(tmp_path) is None  # no normalization.json: train on the text as written
    save_normalization(tmp_path, RuleSet.for_language("es"), train_on="normalized")
    transform = training_transform(tmp_path)
    assert transform("¡Hola, Mundo!") == "hola mundo"


def test_clips_found_unusable_while_training_are_counted_alike_in_a_run_and_its_resumed_twin(mini_dir, tmp_path,
                                                                                              monkeypatch):
    """No clip_durations.tsv: a corrupt clip and a 31 s clip are found when their batch is read. Six training rows,
    batch 2, 3 steps: one epoch, so every clip is read. The resumed twin reads the same batches in the same order
    (the final weights agree) and counts the same two clips."""
    from transformers import WhisperForConditionalGeneration

    folder = tmp_path / "cv" / "en"
    write_cv_folder(folder, {"train": [(s, 1.0 + 0.2 * i, "a") for i, s in enumerate(SENTENCES[:4])]
                             + [("a broken clip", None, "a"), ("a very long recording", 31.0, "a")],
                             "test": [("good night", 0.9, "c")]}, durations=False)

    def argv(run_dir):
        return ["--language", "en", "--dataset", str(folder), "--model", str(mini_dir), "--run-dir", str(run_dir),
                "--max-steps", "3", "--eval-steps", "1", "--batch-size", "2", "--generation-max-length", "8",
                "--learning-rate", "0.01", "--train-split", "train"]

    assert S.main(argv(tmp_path / "once")) == 0
    once = json.loads((tmp_path / "once" / "training.json").read_text())
    assert once["train_rows"] == 6 and once["dataloader_workers"] == 1
    assert once["dropped"]["while reading audio"]["by_reason"] == {P.REASON_AUDIO: 1, "bad audio": 1}
    dropped = (tmp_path / "once" / "dropped_rows.csv").read_text()
    assert "a broken clip" in dropped and "a very long recording" in dropped

    twin = tmp_path / "twin"
    with monkeypatch.context() as patch:  # stopped as Ctrl-C would, after the checkpoint of step 1
        patch.setattr(T, "_progress_callback", lambda: interrupt_after_save(1))
        with pytest.raises(Interrupt):
            S.main(argv(twin))
    assert S.main(argv(twin)) == 0
    resumed = json.loads((twin / "training.json").read_text())
    assert resumed["status"] == "resumed" and resumed["steps"] == 3
    assert resumed["dropped"] == once["dropped"]
    a = WhisperForConditionalGeneration.from_pretrained(tmp_path / "once" / "model").state_dict()
    b = WhisperForConditionalGeneration.from_pretrained(twin / "model").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # same batches, same order, same weights


def test_several_processes_train_on_their_own_shares_and_save_one_model(mini_dir, tmp_path, repo_root):
    """torchrun on the CPU (gloo): two processes, two steps of batch 2, each reading its own rows."""
    import subprocess
    import sys

    folder = tmp_path / "cv" / "en"
    write_cv_folder(folder, {"train": [(s, 1.0 + 0.1 * i, "a") for i, s in enumerate(SENTENCES)] * 2,
                             "test": [("good night", 0.9, "c")]})
    run_dir, trace = tmp_path / "run", tmp_path / "trace"
    trace.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tests.trace_rows",
               "--language", "en", "--dataset", str(folder), "--model", str(mini_dir), "--run-dir", str(run_dir),
               "--max-steps", "2", "--eval-steps", "2", "--batch-size", "2", "--generation-max-length", "8",
               "--train-split", "train"]
    # the child processes do not see this test's faked probe: hide any GPU so that both train on the CPU (gloo)
    env = {**__import__("os").environ, "TRACE_DIR": str(trace), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["status"] == "trained"
    assert (run_dir / "model" / "model.safetensors").is_file() and not list(run_dir.glob("model?*"))
    read = {}
    for path in trace.glob("*.jsonl"):
        rank = path.name.split("-")[0]
        for line in path.read_text().splitlines():
            read.setdefault(rank, []).extend(tuple(r) for r in json.loads(line) if r[0] == "train")
    assert sorted(read) == ["0", "1"]
    assert all(len(rows) >= 4 for rows in read.values())  # 2 steps x batch 2 per process (and prefetched batches)
    assert not set(read["0"]) & set(read["1"])  # each process its own share of the rows


def test_prepared_training_data_holds_no_features_per_clip(tiny_en_dir, tmp_path):
    """3,000 training rows: the prepared data allocates and writes well under 1 KB a row. The blog recipe's
    stored features take about 1 MB a row (80 x 3000 float32), so it could not pass."""
    import pyarrow as pa
    from transformers import WhisperProcessor

    from benchmarks.bench_scale import make_folder

    folder = make_folder(tmp_path, 3000)
    processor = WhisperProcessor.from_pretrained(tiny_en_dir)
    cfg = T.TrainConfig(language="en", dataset=str(folder), model=str(tiny_en_dir), run_dir=str(tmp_path / "run"),
                        train_split="train")
    allocated = pa.total_allocated_bytes()
    data = S.prepare_data(cfg, processor)
    assert len(data.train) == 3000 and len(data.eval) == 12
    assert pa.total_allocated_bytes() - allocated < 3000 * 1024
    assert data.train.data.nbytes < 3000 * 1024 and not data.train.cache_files
    assert not (tmp_path / "run").exists() or sum(f.stat().st_size for f in (tmp_path / "run").rglob("*")) < 3000
    batch = P.SpeechCollator(processor)([data.train[i] for i in (0, 1, 2)])  # and the rows make real batches
    assert batch["input_features"].shape == (3, 80, 3000)


def test_gradient_accumulation_averages_like_one_batch_of_the_same_rows(mini_dir, tmp_path):
    """Batch 4 x accumulation 1 and batch 2 x accumulation 2 over the same four rows (same sentence, so the same
    number of label tokens) log the same loss and gradient norm. Without telling the Trainer that Whisper's loss is
    a per-micro-batch mean, transformers 5 sums the micro-batches: twice the loss and the gradient."""
    rows = synthetic_rows(4)
    for row in rows:
        row["sentence"] = SENTENCES[0]
    ds = datasets.Dataset.from_list(rows).with_format("numpy", columns=["audio"], output_all_columns=True)
    logged = []
    for batch, accumulation in ((4, 1), (2, 2)):
        model, processor, _ = T.load_model(str(mini_dir), "en")
        cfg = T.TrainConfig(language="en", model=str(mini_dir), run_dir=str(tmp_path / f"b{batch}"), max_steps=1,
                            batch_size=batch, gradient_accumulation_steps=accumulation, eval_steps=10,
                            num_workers=0)
        args = T.training_arguments(cfg, ST.resolve_settings(cfg, ST.device_defaults(model)))
        trainer = T.build_trainer(model, processor, args, ds, ds, None, tmp_path, progress=False)
        trainer.train()
        logged.append(next(h for h in trainer.state.log_history if "loss" in h))
    assert logged[1]["loss"] == pytest.approx(logged[0]["loss"], rel=1e-4)
    assert logged[1]["grad_norm"] == pytest.approx(logged[0]["grad_norm"], rel=1e-3)


def test_a_streamed_training_split_trains_and_counts_its_drops_as_it_is_read(mini_dir, tmp_path):
    folder = tmp_path / "cv" / "en"
    write_cv_folder(folder, {"train": [(s, 1.0 + 0.1 * i, "a") for i, s in enumerate(SENTENCES[:4])]
                             + [("good night", 1.0, "a")],  # also a test sentence: dropped while streamed
                             "test": [("Good night!", 0.9, "c")]})
    run_dir = tmp_path / "run"
    assert S.main(["--language", "en", "--dataset", str(folder), "--model", str(mini_dir), "--run-dir", str(run_dir),
                   "--max-steps", "2", "--eval-steps", "2", "--batch-size", "2", "--generation-max-length", "8",
                   "--train-split", "train", "--streaming", "true"]) == 0
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["status"] == "trained" and summary["steps"] == 2 and summary["dataloader_workers"] == 0
    assert summary["train_rows"] is None  # a stream is not counted ahead
    overlap = summary["dropped"]["overlap with evaluation split"]
    assert overlap["by_reason"] == {P.REASON_SENTENCE: 1} and overlap["rows_in"] == 5  # counted as it was read
