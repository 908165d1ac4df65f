"""What fine-tuning cost: language identification and another language's WER, with real whisper-base."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from helpers import forgetting as F
from helpers.data import load_split
from helpers.evaluation import first_clips
from helpers.inference import clip_array, load_model
from helpers.normalize import eval_normalizer


@pytest.fixture(scope="module")
def base_run(base_dir):
    model, processor = load_model(base_dir, device="cpu")  # the expected languages are the CPU float32 ones
    return SimpleNamespace(label="baseline", model=model, processor=processor)


def test_whisper_detects_the_language_of_english_and_spanish_clips(base_run):
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    english = [clip_array(row) for row in first_clips(load_split("sample", "en", "test"), 2)]
    assert F.language_id(base_run, english, "en") == {"clips": 2, "accuracy": 1.0, "detected": {"en": 2}}
    spanish = [clip_array(row) for row in first_clips(load_split("sample", "es", "test"), 2)]
    codes = F.detected_languages(base_run.model, base_run.processor, spanish, batch_size=1)  # clip by clip
    assert len(codes) == 2 and all(code in LANGUAGES for code in codes) and "es" in codes
    result = F.language_id(base_run, spanish, "es")  # batched: the same languages
    assert result["detected"] == dict(Counter(codes)) and result["accuracy"] == codes.count("es") / 2


def test_cost_record_scores_each_model_on_the_other_language(base_run):
    spanish = [clip_array(row) for row in first_clips(load_split("sample", "es", "test"), 1)]
    english = first_clips(load_split("sample", "en", "test"), 2)
    record = F.cost_record([base_run], spanish, "es", english, "en", eval_normalizer("en"))
    assert record["other_language"] == "en" and record["other_clips"] == 2
    item = record["baseline"]
    assert item["language_id_target"]["clips"] == 1 and item["language_id_other"]["clips"] == 2
    assert 0 <= item["other_language_wer"] < 100  # whisper-base transcribes the English sample fairly well
    rows = F.cost_rows(record, "es")
    assert rows[0]["model"] == "baseline" and "en WER %" in rows[0]
