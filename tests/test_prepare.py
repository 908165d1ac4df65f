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
        ("¿...?", 1.0, "punctuation.mp3"),
        ("Too long to listen to.", 31.0, "long_audio.mp3"),
        (long_sentence, 2.0, "long_labels.mp3"),
        ("Exactly thirty seconds.", 30.0, "thirty.mp3"),
    ))
    kept, report = P.filter_rows(ds, tiny_processor.tokenizer)
    assert list(kept["path"]) == ["ok.mp3", "thirty.mp3"]
    assert report.counts == {P.REASON_EMPTY: 2, P.REASON_AUDIO: 1, P.REASON_LABELS: 1}
    assert report.as_dict() == {"rows_in": 6, "rows_out": 2, "dropped": 4,
                                "by_reason": {P.REASON_AUDIO: 1, P.REASON_EMPTY: 2, P.REASON_LABELS: 1}}
    text = report.summary(P.FILTER_REASONS)
    assert all(reason in text for reason in P.FILTER_REASONS)

    written = P.write_drops([report], tmp_path / "dropped.csv")
    with written.open(newline="", encoding="utf-8") as handle:
        dropped = list(csv.DictReader(handle))
    assert {(d["path"], d["reason"]) for d in dropped} == {
        ("empty.mp3", P.REASON_EMPTY), ("punctuation.mp3", P.REASON_EMPTY), ("long_audio.mp3", P.REASON_AUDIO),
        ("long_labels.mp3", P.REASON_LABELS)}


def test_filters_leave_clips_of_unknown_duration_to_the_collator(tiny_processor):
    ds = as_dataset(rows(("short", 1.0, "a.mp3"), ("long", 30.5, "b.mp3"))).remove_columns(["duration"])
    kept, report = P.filter_rows(ds, tiny_processor.tokenizer)  # decided from the text alone: nothing decoded
    assert list(kept["path"]) == ["a.mp3", "b.mp3"] and report.total == 0


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


# ------------------------------------------------------------------------------------- features, collator


def blog_recipe(processor):
    """The original blog recipe's per-example function: feature extractor and tokenizer, one clip at a time."""

    def fn(row: dict) -> dict:
        audio = row["audio"]
        row["input_features"] = processor.feature_extractor(audio["array"], sampling_rate=RATE).input_features[0]
        row["labels"] = processor.tokenizer(row["sentence"]).input_ids
        return row

    return fn


def test_the_collator_builds_the_blog_recipes_features_and_labels(tiny_processor):
    items = rows(("One.", 1.0, "a.mp3"), ("Two words.", 2.5, "b.mp3"), ("Three more words.", 4.0, "c.mp3"))
    batch = P.SpeechCollator(tiny_processor)(items)
    assert batch["input_features"].shape == (3, 80, 3000) and batch["input_features"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long
    one = blog_recipe(tiny_processor)
    sot = tiny_processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    for i, item in enumerate(items):
        expected = one(dict(item))
        np.testing.assert_allclose(batch["input_features"][i].numpy(), expected["input_features"], atol=1e-5)
        labels = [t for t in batch["labels"][i].tolist() if t != -100]
        assert expected["labels"][0] == sot and labels == expected["labels"][1:]  # the model adds the start token
    assert batch["labels"][0].tolist()[-1] == -100  # the shortest sentence is padded with -100


def test_the_collator_applies_the_training_text_transform(tiny_processor):
    batch = P.SpeechCollator(tiny_processor, text_transform=str.upper)(rows(("shout", 1.0, "a.mp3")))
    assert tiny_processor.tokenizer.decode(batch["labels"][0], skip_special_tokens=True) == "SHOUT"


def write_wav(path, seconds: float, rate: int = RATE):
    import soundfile as sf

    sf.write(path, tone(seconds), rate)
    return {"bytes": None, "path": str(path)}


def light(audio: dict, sentence: str, row: int, split: str = "train") -> dict:
    """A row as helpers.data.load_split(decode=False) gives it."""
    return {"audio": audio, "sentence": sentence, "client_id": "s", "path": audio["path"].rsplit("/", 1)[-1],
            "duration": None, "split": split, "row": row}


def test_the_collator_decodes_files_and_records_clips_it_cannot_use(tiny_processor, tmp_path):
    (tmp_path / "corrupt.mp3").write_bytes(b"not audio at all" * 100)
    batch_rows = [light(write_wav(tmp_path / "ok.wav", 1.5, 48_000), "fine", 2),
                  light({"bytes": None, "path": str(tmp_path / "corrupt.mp3")}, "broken", 3),
                  light(write_wav(tmp_path / "long.wav", 31.0), "too long", 4),
                  light(write_wav(tmp_path / "ok2.wav", 0.5), "also fine", 5)]
    collator = P.SpeechCollator(tiny_processor, skip_dir=tmp_path / "skips")
    batch = collator(batch_rows)
    assert batch["input_features"].shape[0] == 2 and batch["labels"].shape[0] == 2
    collator(batch_rows)  # read again (a second epoch, or a resumed run): each clip is counted once
    report = P.read_skips(tmp_path / "skips")
    assert report.counts == {P.REASON_AUDIO: 1, "bad audio": 1}
    assert {(d["path"], d["reason"].split(":")[0]) for d in report.dropped} == {
        ("corrupt.mp3", "bad audio"), ("long.wav", P.REASON_AUDIO)}
    assert len(next(d["reason"] for d in report.dropped if d["path"] == "corrupt.mp3")) > len("bad audio: ")
    assert "only clips read so far" in report.summary(P.FILTER_REASONS)
    with pytest.raises(RuntimeError, match="Every clip of a batch was unusable"):
        collator(batch_rows[1:3])


def test_no_skips_read_from_a_folder_that_does_not_exist(tmp_path):
    assert P.read_skips(tmp_path / "none").total == 0


def test_label_lengths_count_prefix_and_end_tokens(tiny_processor):
    tok = tiny_processor.tokenizer
    assert P.label_lengths(tok, ["one", "two words"], chunk=1) == [len(tok(s).input_ids) for s in ("one", "two words")]


@pytest.mark.parametrize("samples", [1, 160, 161, 80_037, 479_840, 480_000, 500_000])
def test_log_mel_equals_the_feature_extractor_at_every_length(tiny_processor, samples):
    fe = tiny_processor.feature_extractor
    rng = np.random.default_rng(samples)
    clips = [(0.1 * rng.standard_normal(samples)).astype(np.float32), np.zeros(samples, np.float32)]
    expected = fe(clips, sampling_rate=RATE, return_tensors="np").input_features
    np.testing.assert_array_equal(P.log_mel(clips, fe), expected)
