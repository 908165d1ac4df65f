"""Preparation for training: the test-split rule, eval overlap, filters, language prefix, features, collator."""

from __future__ import annotations

import csv

import datasets
import numpy as np
import pytest
import torch

from helpers import prepare as P

RATE = 16_000


def tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A synthetic clip: a tone plus a little noise (float32, 16 kHz)."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def rows(*specs) -> list[dict]:
    """Rows shaped like helpers.data.load_split's: (sentence, seconds, path)."""
    out = []
    for i, (sentence, seconds, path) in enumerate(specs):
        audio = tone(seconds, 200 + 40 * i, seed=i)
        out.append({"audio": {"array": audio, "sampling_rate": RATE}, "sentence": sentence, "client_id": f"s{i}",
                    "path": path, "duration": len(audio) / RATE})
    return out


def as_dataset(items: list[dict]) -> datasets.Dataset:
    ds = datasets.Dataset.from_list(items)
    ds.set_format("numpy", columns=["audio"], output_all_columns=True)  # as load_split returns it
    return ds


@pytest.fixture(scope="module")
def tiny_processor(tiny_en_dir):
    from transformers import WhisperProcessor

    return WhisperProcessor.from_pretrained(tiny_en_dir)


@pytest.fixture(scope="module")
def base_parts(base_dir):
    from transformers import GenerationConfig, WhisperConfig, WhisperProcessor

    class Stub:  # the two attributes configure_language reads from a model, without loading 290 MB of weights
        pass

    model = Stub()
    model.config = WhisperConfig.from_pretrained(base_dir)
    model.generation_config = GenerationConfig.from_pretrained(base_dir)
    return WhisperProcessor.from_pretrained(base_dir), model


# ------------------------------------------------------------------------------------------------ splits


@pytest.mark.parametrize("split", ["test", "train+test", " Test ", "dev+test"])
def test_training_on_test_split_is_refused_with_the_rule(split):
    with pytest.raises(ValueError, match="test split is never used for training"):
        P.check_training_split(split)


@pytest.mark.parametrize("split", ["train", "train+dev", "validation", "train+validation"])
def test_training_splits_without_test_are_accepted(split):
    assert P.check_training_split(split) == split


# ----------------------------------------------------------------------------------------------- overlap


def test_rows_sharing_a_sentence_or_clip_with_the_eval_split_are_dropped_and_counted():
    train = as_dataset(rows(
        ("¡Hola, mundo!", 1.0, "cv11/clips/a.mp3"),  # same sentence up to case and punctuation
        ("Una frase nueva.", 1.0, "cv11/clips/shared.mp3"),  # same clip file under another folder
        ("Otra frase distinta.", 1.0, "cv11/clips/c.mp3"),
    ))
    evaluation = as_dataset(rows(("hola mundo", 1.0, "cv15/clips/x.mp3"), ("Algo más.", 1.0, "cv15/clips/shared.mp3")))
    kept, report = P.drop_eval_overlap(train, evaluation)
    assert list(kept["sentence"]) == ["Otra frase distinta."]
    assert report.counts == {P.REASON_SENTENCE: 1, P.REASON_CLIP: 1}
    assert (report.rows_in, report.rows_out) == (3, 1)
    assert {d["path"] for d in report.dropped} == {"a.mp3", "shared.mp3"}
    assert "kept" in report.summary(P.OVERLAP_REASONS) and "1 of 3" in report.summary()


def test_sentence_key_ignores_case_punctuation_spacing_and_unicode_form_only():
    same = [("¿Qué  tal?", "qué tal"), ("Que\u0301 tal", "qué tal"),  # decomposed accent
            ("ＡＢＣ，５", "abc 5"),  # full-width forms
            ("你好，世界。", "你好世界"),  # no spaces in the script: punctuation must not add one
            ("می\u200cخواهم", "میخواهم"), ("co\u00adoperate", "cooperate")]  # zero-width non-joiner, soft hyphen
    for a, b in same:
        assert P.sentence_key(a) == P.sentence_key(b), (a, b)
    different = [("qué tal", "que tal"),  # accents change words
                 ("tal 5", "tal 6"), ("50 $", "50 €"), ("c++", "c"),  # digits and symbols count
                 ("नमस्ते", "नमसत")]  # so do combining marks (a virama, a vowel sign)
    for a, b in different:
        assert P.sentence_key(a) != P.sentence_key(b), (a, b)
    assert P.sentence_key("¡…!") == ""  # only punctuation: callers skip empty keys


# ----------------------------------------------------------------------------------------------- filters


def test_filters_drop_long_audio_long_labels_and_empty_transcripts(tiny_processor, tmp_path):
    long_sentence = " ".join(["word"] * 500)  # well over 448 tokens
    ds = as_dataset(rows(
        ("A short sentence.", 1.5, "ok.mp3"),
        ("   ", 1.0, "empty.mp3"),
        ("Too long to listen to.", 31.0, "long_audio.mp3"),
        (long_sentence, 2.0, "long_labels.mp3"),
        ("Exactly thirty seconds.", 30.0, "thirty.mp3"),
    ))
    kept, report = P.filter_rows(ds, tiny_processor.tokenizer)
    assert list(kept["path"]) == ["ok.mp3", "thirty.mp3"]
    assert report.counts == {P.REASON_EMPTY: 1, P.REASON_AUDIO: 1, P.REASON_LABELS: 1}
    assert report.as_dict() == {"rows_in": 5, "rows_out": 2, "dropped": 3,
                                "by_reason": {P.REASON_AUDIO: 1, P.REASON_EMPTY: 1, P.REASON_LABELS: 1}}
    text = report.summary(P.FILTER_REASONS)
    assert all(reason in text for reason in P.FILTER_REASONS)

    written = P.write_drops([report], tmp_path / "dropped.csv")
    with written.open(newline="", encoding="utf-8") as handle:
        dropped = list(csv.DictReader(handle))
    assert {(d["path"], d["reason"]) for d in dropped} == {
        ("empty.mp3", P.REASON_EMPTY), ("long_audio.mp3", P.REASON_AUDIO), ("long_labels.mp3", P.REASON_LABELS)}


def test_filters_measure_the_audio_when_there_is_no_duration_column(tiny_processor):
    ds = as_dataset(rows(("short", 1.0, "a.mp3"), ("long", 30.5, "b.mp3"))).remove_columns(["duration"])
    kept, report = P.filter_rows(ds, tiny_processor.tokenizer)
    assert list(kept["path"]) == ["a.mp3"] and report.counts == {P.REASON_AUDIO: 1}


def test_filters_on_a_stream_count_while_the_data_is_read(tiny_processor):
    items = rows(("fine", 1.0, "a.mp3"), ("", 1.0, "b.mp3"), ("fine too", 31.0, "c.mp3"))
    stream = datasets.IterableDataset.from_generator(lambda: iter(items))
    kept, report = P.filter_rows(stream, tiny_processor.tokenizer)
    assert report.rows_in is None and "streamed" in report.summary()
    assert [r["path"] for r in kept] == ["a.mp3"]
    assert [r["path"] for r in kept] == ["a.mp3"]  # a second pass (epoch) does not count the rows again
    assert report.counts == {P.REASON_EMPTY: 1, P.REASON_AUDIO: 1} and report.rows_in == 3


def test_the_training_text_transform_applies_before_the_empty_check(tiny_processor):
    ds = as_dataset(rows(("...", 1.0, "dots.mp3"), ("Words.", 1.0, "words.mp3")))
    strip_punctuation = lambda s: "".join(ch for ch in s if ch.isalnum() or ch.isspace())  # noqa: E731
    kept, report = P.filter_rows(ds, tiny_processor.tokenizer, text_transform=strip_punctuation)
    assert list(kept["path"]) == ["words.mp3"] and report.counts == {P.REASON_EMPTY: 1}


# ---------------------------------------------------------------------------------------------- language


def test_language_prefix_goes_into_labels_and_generation_config(base_parts):
    processor, model = base_parts
    name = P.configure_language(processor, model, "es")
    assert name == "spanish"
    ids = processor.tokenizer("Hola.").input_ids
    assert processor.tokenizer.convert_ids_to_tokens(ids[:4]) == [
        "<|startoftranscript|>", "<|es|>", "<|transcribe|>", "<|notimestamps|>"]
    assert ids[-1] == processor.tokenizer.eos_token_id
    gen = model.generation_config
    assert (gen.language, gen.task, gen.forced_decoder_ids) == ("spanish", "transcribe", None)
    assert P.configure_language(processor, model, "tr") == "turkish"
    assert processor.tokenizer.convert_ids_to_tokens(processor.tokenizer("Merhaba").input_ids[1]) == "<|tr|>"


def test_english_only_model_refuses_another_language(tiny_en_dir):
    from transformers import GenerationConfig, WhisperConfig, WhisperProcessor

    class Stub:
        config = WhisperConfig.from_pretrained(tiny_en_dir)
        generation_config = GenerationConfig.from_pretrained(tiny_en_dir)

    processor = WhisperProcessor.from_pretrained(tiny_en_dir)
    with pytest.raises(ValueError, match="English-only"):
        P.configure_language(processor, Stub(), "es")
    assert P.configure_language(processor, Stub(), "en") == "english"
    tokens = processor.tokenizer.convert_ids_to_tokens(processor.tokenizer("Hello").input_ids)
    assert tokens[:2] == ["<|startoftranscript|>", "<|notimestamps|>"]


# ---------------------------------------------------------------------------------------------- features


def test_batched_features_match_the_one_at_a_time_recipe(tiny_processor):
    items = rows(("One.", 1.0, "a.mp3"), ("Two words.", 2.5, "b.mp3"), ("Three more words.", 4.0, "c.mp3"))
    ds = as_dataset(items)
    prepared = P.prepare_features(ds, tiny_processor, batch_size=2).with_format("numpy")
    assert prepared.column_names == ["sentence", "input_features", "labels"]
    one = P.one_at_a_time_fn(tiny_processor)
    for i, item in enumerate(items):
        expected = one(dict(item))
        assert prepared[i]["input_features"].shape == (80, 3000)
        assert prepared[i]["input_features"].dtype == np.float32
        np.testing.assert_allclose(prepared[i]["input_features"], expected["input_features"], atol=1e-5)
        assert prepared[i]["labels"].tolist() == expected["labels"]


@pytest.mark.parametrize("samples", [1, 160, 161, 80_037, 479_840, 480_000, 500_000])
def test_log_mel_equals_the_feature_extractor_at_every_length(tiny_processor, samples):
    fe = tiny_processor.feature_extractor
    rng = np.random.default_rng(samples)
    clips = [(0.1 * rng.standard_normal(samples)).astype(np.float32), np.zeros(samples, np.float32)]
    expected = fe(clips, sampling_rate=RATE, return_tensors="np").input_features
    np.testing.assert_array_equal(P.log_mel(clips, fe), expected)


def test_parallel_preparation_gives_the_same_rows(tiny_processor):
    torch.stft(torch.randn(2, 4000), 400, 160, window=torch.hann_window(400), return_complex=True)  # the parent has used PyTorch before forking
    ds = as_dataset(rows(("One.", 1.0, "a.mp3"), ("Two.", 2.0, "b.mp3"), ("Three.", 0.5, "c.mp3"), ("Four.", 1.5, "d.mp3")))
    parallel = P.prepare_features(ds, tiny_processor, batch_size=1, num_proc=2).with_format("numpy")
    single = P.prepare_features(ds, tiny_processor).with_format("numpy")
    np.testing.assert_array_equal(parallel["input_features"], single["input_features"])
    assert list(parallel["sentence"]) == ["One.", "Two.", "Three.", "Four."]


def test_streamed_features_are_the_same_as_in_memory(tiny_processor):
    items = rows(("One.", 1.0, "a.mp3"), ("Two words.", 2.0, "b.mp3"))
    stream = datasets.IterableDataset.from_generator(lambda: iter(items))
    streamed = list(P.prepare_features(stream, tiny_processor, batch_size=2))
    in_memory = P.prepare_features(as_dataset(items), tiny_processor).with_format("numpy")
    assert sorted(streamed[0]) == ["input_features", "labels", "sentence"]
    for got, want in zip(streamed, in_memory):
        np.testing.assert_allclose(np.asarray(got["input_features"]), want["input_features"], atol=1e-6)
        assert list(got["labels"]) == want["labels"].tolist()


def test_audio_at_the_wrong_rate_is_refused(tiny_processor):
    item = rows(("One.", 1.0, "a.mp3"))[0]
    item["audio"]["sampling_rate"] = 48_000
    with pytest.raises(ValueError, match="48000 Hz"):
        P.prepare_features(datasets.Dataset.from_list([item]), tiny_processor)


def test_parallel_preparation_only_for_large_data():
    assert P.default_num_proc(60) is None
    assert P.default_num_proc(100_000) >= 1


# ---------------------------------------------------------------------------------------------- collator


def test_collator_stacks_features_pads_labels_and_drops_the_start_token():
    sot = 50258
    batch = P.SpeechCollator(decoder_start_token_id=sot)([
        {"input_features": np.ones((80, 3000), np.float32), "labels": np.array([sot, 1, 2, 3, 50257])},
        {"input_features": np.zeros((80, 3000), np.float32), "labels": [sot, 7, 50257]},
        {"input_features": torch.full((80, 3000), 2.0), "labels": [9, 50257]},  # no start token: kept as is
    ])
    assert batch["input_features"].shape == (3, 80, 3000) and batch["input_features"].dtype == torch.float32
    assert batch["input_features"][2, 0, 0] == 2.0
    assert batch["labels"].tolist() == [[1, 2, 3, 50257], [7, 50257, -100, -100], [9, 50257, -100, -100]]
    assert batch["labels"].dtype == torch.long
