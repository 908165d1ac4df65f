"""The CTranslate2 -> Hugging Face conversion: the reader, the checkpoints it writes, and that they transcribe."""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from tools import convert
from tools.convert import ensure_model, read_ct2_model

DATA = Path(__file__).parent / "data"
ENGLISH = ("en_weather.mp3", "The weather today is sunny and warm, so we will walk to the park.")
SPANISH = ("es_library.mp3", "El niño lee un libro en la biblioteca de la escuela.")
ENGLISH_MAX_WER = 0.15  # both models get this clip right here; 0.15 allows two slips in 14 words
SPANISH_MAX_WER = 0.70  # base reaches about 40 % on espeak Spanish (30 % on this clip)


# ---------------------------------------------------------------- the model.bin reader


def _string(text: str) -> bytes:
    data = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(data)) + data


def _ct2_bytes(variables: dict[str, tuple[int, np.ndarray]], aliases: dict[str, str]) -> bytes:
    """A model.bin laid out as CTranslate2 writes it: {name: (dtype id, array)}."""
    out = struct.pack("<I", 6) + _string("TestSpec") + struct.pack("<I", 2) + struct.pack("<I", len(variables))
    for name, (dtype_id, array) in variables.items():
        raw = array.tobytes()
        out += _string(name) + struct.pack("<B", array.ndim) + b"".join(struct.pack("<I", d) for d in array.shape)
        out += struct.pack("<BI", dtype_id, len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    return out


WEIGHT = np.arange(6, dtype=np.float16).reshape(2, 3) / 4
BIAS = np.array([0.5, -1.25, 3.0], dtype=np.float32)
BF16_BITS = (np.array([1.5, -2.0], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
TINY = _ct2_bytes(
    {"layer/weight": (4, WEIGHT), "layer/bias": (0, BIAS), "num_heads": (2, np.array(8, dtype=np.int16)),
     "scale": (5, BF16_BITS), "ñame/ütf8": (1, np.array([-3, 7], dtype=np.int8))},
    {"projection/weight": "layer/weight"},
)


def _check_tiny(spec, revision, variables):
    assert (spec, revision) == ("TestSpec", 2)
    assert set(variables) == {"layer/weight", "layer/bias", "num_heads", "scale", "ñame/ütf8", "projection/weight"}
    assert variables["layer/weight"].dtype == np.float16 and variables["layer/weight"].shape == (2, 3)
    np.testing.assert_array_equal(variables["layer/weight"], WEIGHT)
    np.testing.assert_array_equal(variables["layer/bias"], BIAS)
    assert variables["num_heads"].shape == () and int(variables["num_heads"]) == 8
    np.testing.assert_array_equal(variables["scale"], np.array([1.5, -2.0], dtype=np.float32))
    np.testing.assert_array_equal(variables["ñame/ütf8"], [-3, 7])
    assert variables["projection/weight"] is variables["layer/weight"]  # an alias shares its target


def test_reader_on_a_hand_built_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(TINY)
    _check_tiny(*read_ct2_model(path))
    _check_tiny(*read_ct2_model(io.BytesIO(TINY)))


def test_reader_joins_a_file_split_in_parts(tmp_path):
    cut = len(TINY) // 2 + 3  # splits some variable's data in two
    (tmp_path / "part1").write_bytes(TINY[:cut])
    (tmp_path / "part2").write_bytes(TINY[cut:])
    _check_tiny(*read_ct2_model([tmp_path / "part1", tmp_path / "part2"]))


def test_reader_rejects_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(TINY[:-40])
    with pytest.raises(ValueError, match=r"model\.bin: truncated CTranslate2 model: needed .* for the data of"):
        read_ct2_model(path)
    path.write_bytes(TINY[:3])
    with pytest.raises(ValueError, match="truncated.*format version"):
        read_ct2_model(path)
    path.write_bytes(struct.pack("<I", 3) + TINY[4:])
    with pytest.raises(ValueError, match="format version 3, only 6 is supported"):
        read_ct2_model(path)


# ---------------------------------------------------------------- ensure_model and the command line


def test_unknown_model_and_missing_package(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="whisper-base, whisper-tiny.en"):
        ensure_model("whisper-large", tmp_path)
    monkeypatch.setitem(convert.SOURCES, "whisper-none", (["no-such-whisper-package==1.0"],
                                                          [("no_such_whisper_package", "model.bin")],
                                                          ("no_such_whisper_package", "")))
    with pytest.raises(FileNotFoundError, match="pip install no-such-whisper-package==1.0"):
        ensure_model("whisper-none", tmp_path)
    assert not (tmp_path / "whisper-none").exists() and list(tmp_path.iterdir()) == []


def test_ensure_model_skips_a_finished_conversion(tiny_en_dir, base_dir):
    for path in (tiny_en_dir, base_dir):
        before = {f.name: f.stat().st_mtime_ns for f in path.iterdir()}
        start = time.perf_counter()
        assert ensure_model(path.name, path.parent) == path
        assert time.perf_counter() - start < 0.5
        assert {f.name: f.stat().st_mtime_ns for f in path.iterdir()} == before


def test_unfinished_folder_is_replaced_atomically(tmp_path):
    stale = tmp_path / "whisper-tiny.en"
    stale.mkdir()
    (stale / "config.json").write_text("{}")  # what an interrupted copy might leave
    assert not convert.is_converted(stale)
    out = ensure_model("whisper-tiny.en", tmp_path)
    assert out == stale and convert.is_converted(out)
    assert json.loads((out / "config.json").read_text())["model_type"] == "whisper"
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-tiny.en"]  # no temporary folder left behind


def test_command_line(tiny_en_dir, base_dir, capsys):
    convert.main(["--models-dir", str(tiny_en_dir.parent)])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"whisper-base: {base_dir} (already converted)",
                     f"whisper-tiny.en: {tiny_en_dir} (already converted)"]
    with pytest.raises(SystemExit):
        convert.main(["whisper-huge"])


# ---------------------------------------------------------------- the converted checkpoints


@pytest.mark.parametrize("fixture", ["tiny_en_dir", "base_dir"])
def test_plain_from_pretrained_loads_every_weight_in_float32(fixture, request):
    path = request.getfixturevalue(fixture)
    model, info = WhisperForConditionalGeneration.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    assert model.dtype == torch.float32
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()  # tied
    expected = {"tiny_en_dir": (4, 384, 6, 51864), "base_dir": (6, 512, 8, 51865)}[fixture]
    config = model.config
    assert (config.encoder_layers, config.d_model, config.encoder_attention_heads, config.vocab_size) == expected
    processor = WhisperProcessor.from_pretrained(path)
    assert processor.feature_extractor.feature_size == 80 and processor.feature_extractor.sampling_rate == 16000
    assert len(processor.tokenizer) == config.vocab_size
    assert processor.tokenizer.pad_token == processor.tokenizer.eos_token == "<|endoftext|>"


def test_generation_config_multilingual(base_dir):
    generation = WhisperForConditionalGeneration.from_pretrained(base_dir).generation_config
    tokenizer = WhisperProcessor.from_pretrained(base_dir).tokenizer
    assert generation.is_multilingual is True
    assert len(generation.lang_to_id) == 99
    assert generation.lang_to_id["<|es|>"] == tokenizer.convert_tokens_to_ids("<|es|>") == 50262
    assert all(tokenizer.convert_tokens_to_ids(token) == i for token, i in generation.lang_to_id.items())
    assert generation.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert (generation.decoder_start_token_id, generation.eos_token_id, generation.no_timestamps_token_id) == (
        50258, 50257, 50363)
    assert generation.begin_suppress_tokens == [220, 50257] and 50362 in generation.suppress_tokens
    assert generation.alignment_heads[0] == [3, 1] and generation.max_length == 448
    tokenizer.set_prefix_tokens(language="spanish", task="transcribe")
    assert tokenizer("hola").input_ids[:4] == [50258, 50262, 50359, 50363]
    assert tokenizer.decode(tokenizer("hola").input_ids, skip_special_tokens=True) == "hola"


def test_generation_config_english_only(tiny_en_dir):
    generation = WhisperForConditionalGeneration.from_pretrained(tiny_en_dir).generation_config
    tokenizer = WhisperProcessor.from_pretrained(tiny_en_dir).tokenizer
    assert generation.is_multilingual is False and not hasattr(generation, "lang_to_id")
    assert (generation.decoder_start_token_id, generation.eos_token_id, generation.no_timestamps_token_id) == (
        50257, 50256, 50362)
    assert tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>", "<|30.00|>"]) == [
        50257, 50362, 51863]
    tokenizer.set_prefix_tokens(predict_timestamps=False)
    assert tokenizer("hello").input_ids[:2] == [50257, 50362]


# ---------------------------------------------------------------- they transcribe


@pytest.fixture(scope="module")
def tiny_en(tiny_en_dir):
    return WhisperForConditionalGeneration.from_pretrained(tiny_en_dir), WhisperProcessor.from_pretrained(tiny_en_dir)


@pytest.fixture(scope="module")
def base(base_dir):
    return WhisperForConditionalGeneration.from_pretrained(base_dir), WhisperProcessor.from_pretrained(base_dir)


def transcribe(model_and_processor, clip: str, **generate_kwargs) -> str:
    model, processor = model_and_processor
    audio, rate = sf.read(DATA / clip, dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    features = processor(audio, sampling_rate=rate, return_tensors="pt").input_features
    with torch.inference_mode():
        tokens = model.generate(features, max_new_tokens=60, **generate_kwargs)
    return processor.batch_decode(tokens, skip_special_tokens=True)[0]


def wer(reference: str, hypothesis: str) -> float:
    normalise = BasicTextNormalizer()
    return jiwer.wer(normalise(reference), normalise(hypothesis))


def test_tiny_en_transcribes_english(tiny_en):
    clip, text = ENGLISH
    assert wer(text, transcribe(tiny_en, clip)) <= ENGLISH_MAX_WER


def test_base_transcribes_english(base):
    clip, text = ENGLISH
    assert wer(text, transcribe(base, clip, language="en", task="transcribe")) <= ENGLISH_MAX_WER


def test_base_transcribes_spanish(base):
    clip, text = SPANISH
    hypothesis = transcribe(base, clip, language="es", task="transcribe")
    assert wer(text, hypothesis) < SPANISH_MAX_WER
    detected = transcribe(base, clip)  # no language: the model detects it, then transcribes
    assert detected.strip() and len(detected.split()) < 3 * len(text.split())
