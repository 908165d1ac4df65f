import json
from pathlib import Path

import numpy as np

from helpers.files import write_json


def test_write_json_round_trips_and_creates_the_folder(tmp_path):
    path = write_json({"a": "ñ", "b": [1, 2]}, tmp_path / "deep" / "environment.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "ñ", "b": [1, 2]}
    assert "ñ" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes


def test_numpy_numbers_nan_and_paths_become_plain_json(tmp_path):
    data = {"wer": np.float32(12.5), "clips": np.int64(3), "rtfx": float("nan"), "scores": (np.float64(1.0), float("inf")),
            "run_dir": Path("runs") / "es"}
    saved = json.loads(write_json(data, tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved == {"wer": 12.5, "clips": 3, "rtfx": None, "scores": [1.0, None], "run_dir": str(Path("runs") / "es")}
