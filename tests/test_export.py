"""Notebook 05's helpers: CTranslate2 conversion, faster-whisper decoding, long recordings made from clips."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmarks.common import convert
from helpers import export as E
from helpers.audio import SAMPLING_RATE
from helpers.metrics import compute_metrics
from helpers.normalize import eval_normalizer


def _row(seconds: float, sentence: str, value: float = 0.5) -> dict:
    return {"audio": {"array": np.full(int(seconds * SAMPLING_RATE), value, dtype=np.float32),
                      "sampling_rate": SAMPLING_RATE}, "sentence": sentence}


def test_long_recording_joins_clips_with_pauses_until_long_enough():
    rows = [_row(2.0, "uno"), _row(3.0, " dos "), _row(4.0, "tres"), _row(5.0, "cuatro")]
    rec = E.long_recording(iter(rows), seconds=6.5, pause_seconds=0.5)
    assert rec.clips == 3 and rec.reference == "uno dos tres"       # 2.5 + 3.5 = 6.0 s is not yet 6.5 s
    assert rec.seconds == pytest.approx(2.5 + 3.5 + 4.5)
    assert np.all(rec.audio[int(2.0 * SAMPLING_RATE):int(2.5 * SAMPLING_RATE)] == 0)  # the pause is silence
    assert rec.audio[int(2.5 * SAMPLING_RATE)] == 0.5                                 # then the next clip


def test_long_recording_takes_every_clip_when_they_run_out():
    rec = E.long_recording([_row(1.0, "a"), _row(1.0, "b")], seconds=600, pause_seconds=0)
    assert rec.clips == 2 and rec.seconds == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs", [{"seconds": 0}, {"seconds": 10, "pause_seconds": -1}])
def test_long_recording_refuses_bad_lengths(kwargs):
    with pytest.raises(ValueError, match="seconds"):
        E.long_recording([_row(1.0, "a")], **kwargs)


def test_long_recording_of_nothing_says_so():
    with pytest.raises(ValueError, match="no clips"):
        E.long_recording([], seconds=10)


def test_differing_clips_compares_normalised_text():
    first = E.Backend("a", ["Hola, mundo.", "uno dos"], 2.0, 1.0)
    second = E.Backend("b", ["hola mundo", "uno tres"], 2.0, 0.5)
    changed = E.differing_clips(["hola mundo", "uno dos"], first, second, eval_normalizer("es"))
    assert changed == [{"reference": "uno dos", "a": "uno dos", "b": "uno tres"}]
    assert second.rtfx == pytest.approx(4.0)


def test_converting_a_folder_without_the_feature_settings_says_what_to_save(tmp_path, base_dir):
    model = tmp_path / "model"
    shutil.copytree(base_dir, model)
    (model / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json.*save_pretrained"):
        convert(model, tmp_path / "out")


def test_transformers_long_form_needs_more_than_30_seconds(base_dir):
    from helpers.inference import load_model

    model, processor = load_model(base_dir)
    with pytest.raises(ValueError, match="more than 30 s"):
        E.transformers_long_form(model, processor, np.zeros(10 * SAMPLING_RATE, dtype=np.float32), "es")


@pytest.fixture(scope="module")
def es_clips():
    from helpers.data import load_split

    return list(load_split("sample", "es", "test").select(range(3)))


def test_faster_whisper_with_padded_clips_writes_what_transformers_writes(tmp_path, base_dir, es_clips):
    """The real whisper-base converted to CTranslate2 float32 and run by faster-whisper the transformers way, each
    clip padded with silence to 30 s, writes transformers' words clip for clip; int8 is a fraction of the size."""
    from faster_whisper import WhisperModel

    from helpers.inference import clip_array, load_model, transcribe

    float32 = convert(base_dir, tmp_path / "float32")
    assert {"model.bin", "tokenizer.json", "preprocessor_config.json"} <= {p.name for p in float32.iterdir()}
    int8 = convert(base_dir, tmp_path / "int8", quantization="int8")
    assert E.folder_megabytes(int8) < 0.4 * E.folder_megabytes(float32)

    model, processor = load_model(base_dir)
    reference = transcribe(model, processor, es_clips, language="es", batch_size=1, max_new_tokens=None)
    fw = WhisperModel(str(float32), device="cpu", compute_type="float32", cpu_threads=2)
    arrays = [clip_array(c) for c in es_clips]
    texts, seconds = E.faster_whisper_texts(fw, arrays, "es", pad=True, **E.SAME_AS_TRANSFORMERS)
    assert seconds > 0 and len(texts) == 3
    normalizer = eval_normalizer("es")
    ours, theirs = (E.Backend(label, t, 1.0, 1.0) for label, t in (("transformers", reference.texts), ("ct2", texts)))
    assert E.differing_clips([c["sentence"] for c in es_clips], ours, theirs, normalizer) == []


def test_long_form_of_the_zero_shot_model_writes_timestamps(base_dir, es_clips):
    """Three clips repeated into 40 s: the zero-shot model decodes past the first window with timestamps."""
    from helpers.inference import load_model

    model, processor = load_model(base_dir)
    rows = es_clips * 4
    rec = E.long_recording(rows, seconds=35, pause_seconds=1.0)
    out = E.transformers_long_form(model, processor, rec.audio, "es")
    assert len(out["segments"]) >= 2
    assert out["segments"][-1][1] > 30  # the last segment ends past the first 30-second window
    assert compute_metrics([rec.reference], [out["text"]], eval_normalizer("es"))["wer"] < 60
