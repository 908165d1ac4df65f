"""The real curriculum, headless: notebooks 00 -> 05 through the batch runner with configs/smoke.yaml.

Slow (minutes on 2 CPU cores): every notebook runs end to end on the registered whisper-curriculum kernel,
with one training step on a few clips per language.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE_CONFIG = ROOT / "configs" / "smoke.yaml"


def test_smoke_batch_over_the_real_notebooks(tmp_path):
    import yaml

    languages = [str(code) for code in yaml.safe_load(SMOKE_CONFIG.read_text())["languages"]]
    runs = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tools.batch", "--config", str(SMOKE_CONFIG), "--runs", str(runs)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    with open(runs / "summary.csv", newline="") as handle:
        rows = {row["language"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == sorted(languages)
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for language, row in rows.items():
        assert row["status"] == "ok", row
        for key in ("zero_shot_wer", "fine_tuned_wer", "wer_orthographic", "cer"):
            assert 0 <= float(row[key]) < 150, (language, key, row[key])  # percent; far above 100 = looping
        assert float(row["rtfx"]) > 0, row
        assert float(row["clips"]) > 0 and float(row["hours"]) > 0, row
        status = json.loads((runs / language / "status.json").read_text())
        assert {name: entry["state"] for name, entry in status["notebooks"].items()} == dict.fromkeys(notebooks, "ok")
        for name in notebooks:
            assert (runs / language / f"{name}.ipynb").exists()
    assert (runs / "summary.md").exists() and (runs / "summary.png").exists()

    # Running it again does nothing: every language finished with the same parameters.
    again = subprocess.run(
        [sys.executable, "-m", "tools.batch", "--config", str(SMOKE_CONFIG), "--runs", str(runs)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert again.stdout.count("finished earlier with the same parameters; skipped") == len(languages)
