"""Batched inference on real clips with the small English model, the RTFx arithmetic, batching plans, and the
generation settings for English-only and multilingual checkpoints."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from helpers import inference as I
from helpers import metrics as M
from helpers.normalize import eval_normalizer


# ------------------------------------------------------------------------------------------------ arithmetic


def test_rtfx_arithmetic():
    assert I.rtfx(60.0, 2.0) == pytest.approx(30.0)  # a minute of audio in two seconds
    assert I.rtfx(10.0, 20.0) == pytest.approx(0.5)  # slower than real time
    assert I.rtfx(5.0, 0.0) == math.inf
    assert I.rtfx(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        I.rtfx(-1.0, 1.0)
    result = I.Transcription(texts=["a", "b"], audio_seconds=12.0, compute_seconds=3.0, batch_size=2,
                             device="cpu", dtype="float32")
    assert result.rtfx == pytest.approx(4.0)
    assert result.speed() == {"rtfx": 4.0, "audio_seconds": 12.0, "compute_seconds": 3.0, "batch_size": 2,
                              "device": "cpu", "dtype": "float32", "num_clips": 2}


def test_token_budget(base_dir):
    model = _ConfigOnly(base_dir)
    assert I.token_budget(model, 5.0) == 5 * I.TOKENS_PER_SECOND + I.TOKEN_MARGIN  # 170
    assert I.token_budget(model, 0.0) == I.TOKEN_MARGIN
    assert I.token_budget(model, 29.9) == 448 - 4  # never past the decoder's 448 positions


def test_plan_batches_groups_similar_lengths_and_keeps_every_clip():
    durations = [1.0, 9.0, 2.0, 8.0, 3.0]
    plan = I.plan_batches(durations, batch_size=2)
    assert plan == [[1, 3], [4, 2], [0]]  # longest first, so a batch's clips end at about the same time
    assert sorted(i for batch in plan for i in batch) == list(range(5))
    # sorting happens only inside windows: clips 0-1 and 2-3 are planned apart
    assert I.plan_batches(durations[:4], batch_size=2, window=2) == [[1, 0], [3, 2]]
    with pytest.raises(ValueError, match="batch_size"):
        I.plan_batches(durations, batch_size=0)


def test_clip_array_accepts_rows_dicts_and_arrays_and_resamples():
    tone = np.sin(np.arange(8000) / 10).astype(np.float32)
    assert I.clip_array(tone).shape == (8000,)
    assert I.clip_array({"audio": {"array": tone, "sampling_rate": np.int64(16000)}}).shape == (8000,)
    resampled = I.clip_array({"array": tone, "sampling_rate": 8000})  # one second at 8 kHz
    assert resampled.dtype == np.float32 and abs(len(resampled) - 16000) <= 2
    stereo = np.stack([tone, tone], axis=1)
    assert np.allclose(I.clip_array(stereo), tone)
    with pytest.raises(ValueError, match="decode the audio first"):
        I.clip_array({"path": "x.mp3", "bytes": None})


def test_pick_dtype():
    import torch

    assert I.pick_dtype("cpu") == torch.float32
    assert I.pick_dtype("cuda") == torch.float16
    assert I.pick_dtype("cuda", "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="float32"):
        I.pick_dtype("cpu", "float16")
    with pytest.raises(ValueError, match="dtype must be"):
        I.pick_dtype("cpu", "int3")


def test_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        I.load_model(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        I.load_model("models/whisper-bsae")  # a typo under a local folder must not be looked up on the Hub


def test_a_hub_model_out_of_reach_says_what_to_pass_instead(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as with no network: the id is not in this machine's cache
    with pytest.raises(OSError, match="'openai/whisper-nonexistent-size' is not in this machine's Hugging Face "
                                      "cache.*models/whisper-base"):
        I.load_model("openai/whisper-nonexistent-size")


class _ConfigOnly:
    """A model stand-in carrying a checkpoint's real configs (generation_kwargs only reads those)."""

    def __init__(self, folder):
        from transformers import GenerationConfig, WhisperConfig

        self.config = WhisperConfig.from_pretrained(folder)
        self.generation_config = GenerationConfig.from_pretrained(folder)


def test_generation_kwargs_multilingual(base_dir):
    model = _ConfigOnly(base_dir)
    assert I.is_multilingual(model)
    assert I.generation_kwargs(model, "es") == {"num_beams": 1, "do_sample": False, "language": "spanish",
                                                "task": "transcribe"}
    assert I.generation_kwargs(model, "zh-CN", num_beams=4, max_new_tokens=50)["language"] == "chinese"
    assert "language" not in I.generation_kwargs(model, None)  # let the model detect it


def test_generation_kwargs_english_only(tiny_en_dir):
    model = _ConfigOnly(tiny_en_dir)
    assert not I.is_multilingual(model)
    assert I.generation_kwargs(model, "en") == {"num_beams": 1, "do_sample": False}
    with pytest.warns(UserWarning, match="English-only"):
        assert "language" not in I.generation_kwargs(model, "es")


# -------------------------------------------------------------------------------------- real transcription


@pytest.fixture(scope="module")
def tiny(tiny_en_dir):
    return I.load_model(tiny_en_dir, device="cpu")


@pytest.fixture(scope="module")
def en_clips(sample_root):
    from helpers.data import load_split

    return load_split("sample", "en", "test").select(range(3))


def test_batched_equals_one_by_one_and_is_accurate(tiny, en_clips):
    model, processor = tiny
    batched = I.transcribe(model, processor, en_clips, language="en", batch_size=3)
    single = I.transcribe(model, processor, en_clips, language="en", batch_size=1)
    assert batched.batch_sizes == [3] and single.batch_sizes == [1, 1, 1]
    # padding and the attention mask must not change any transcript, and the order is the input order
    assert batched.texts == single.texts
    scores = M.compute_metrics(list(en_clips["sentence"]), batched.texts, eval_normalizer("en"))
    assert scores["wer"] < 60  # tiny.en on synthetic speech: about 40%
    durations = [float(d) for d in en_clips["duration"]]
    assert batched.audio_seconds == pytest.approx(sum(durations), abs=0.01)
    assert batched.clip_seconds == pytest.approx(durations, abs=0.01)
    assert batched.compute_seconds > 0
    assert batched.device == "cpu" and batched.dtype == "float32"


def test_max_new_tokens_caps_the_transcript(tiny, en_clips):
    model, processor = tiny
    two = en_clips.select(range(2))
    full = I.transcribe(model, processor, two, language="en", batch_size=2, max_new_tokens=None)
    capped = I.transcribe(model, processor, two, language="en", batch_size=2, max_new_tokens=3)
    assert all(len(processor.tokenizer(t, add_special_tokens=False).input_ids) <= 3 for t in capped.texts)
    assert all(f.startswith(c.rstrip(".,")) for f, c in zip(full.texts, capped.texts))


def test_streamed_clips_and_long_clips(tiny, en_clips):
    """An iterator (as a streamed split gives) is read window by window; a clip over 30 s is decoded long-form
    instead of being cut at 30 s."""
    model, processor = tiny
    arrays = [I.clip_array(row) for row in en_clips]
    gap = np.zeros(16000 * 12, dtype=np.float32)
    long_clip = np.concatenate([arrays[0], gap, gap, arrays[1], gap])  # over 30 s, the second sentence after 24 s
    assert len(long_clip) > 30 * 16000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "only the first 30 seconds" warning: tiny.en has timestamp tokens
        windows: list = []
        result = I.transcribe(model, processor, iter([arrays[2], long_clip]), language="en", batch_size=2, window=1,
                              on_window=windows.append)
    assert result.batch_sizes == [1, 1] and windows == [[result.texts[0]], [result.texts[1]]]  # each as it came
    first, second = list(en_clips["sentence"])[:2]
    assert M.compute_metrics([first + " " + second], [result.texts[1]], eval_normalizer("en"))["wer"] < 70
    assert result.audio_seconds == pytest.approx((len(arrays[2]) + len(long_clip)) / 16000)
