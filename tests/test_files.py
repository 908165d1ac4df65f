import json
from pathlib import Path

import numpy as np

from helpers.files import hub_id, write_json


def test_write_json_round_trips_and_creates_the_folder(tmp_path):
    path = write_json({"a": "ñ", "b": [1, 2]}, tmp_path / "deep" / "environment.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "ñ", "b": [1, 2]}
    assert "ñ" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes


def test_numpy_numbers_nan_and_paths_become_plain_json(tmp_path):
    data = {"wer": np.float32(12.5), "clips": np.int64(3), "rtfx": float("nan"), "scores": (np.float64(1.0), float("inf")),
            "run_dir": Path("runs") / "es"}
    saved = json.loads(write_json(data, tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved == {"wer": 12.5, "clips": 3, "rtfx": None, "scores": [1.0, None], "run_dir": str(Path("runs") / "es")}


def test_hub_id_or_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "data" / "cv").mkdir(parents=True)
    assert hub_id("openai/whisper-small") == "openai/whisper-small"
    assert hub_id(" mozilla-foundation/common_voice_17_0 ") == "mozilla-foundation/common_voice_17_0"
    assert hub_id("mine/whisper-bas") is None  # "mine" is a local folder: a typo in a path, not a Hub id
    assert hub_id("data/cv") is None  # exists here
    assert hub_id("models/whisper-base") is None  # the converted models' folder, even before conversion
    for local in ("./x/y", "/abs/path", "~/x", "a/b/c", "sample", "whisper-base", "bad name/x"):
        assert hub_id(local) is None, local
