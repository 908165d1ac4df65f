"""The GPU check's small CPU form runs end to end, so the script cannot rot between GPU runs."""

from __future__ import annotations

import json


def test_gpu_check_cpu_form_measures_training_and_every_backend(tmp_path):
    from benchmarks.gpu_check import main

    out = tmp_path / "gpu_check.json"
    assert main(["--cpu", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    training = record["training"]["models/whisper-base"]
    assert [(r["batch"], r["gradient_checkpointing"]) for r in training] == [(2, False), (2, True)]
    assert all(not r["out_of_memory"] and r["samples_per_second"] > 0 for r in training)
    backends = [r["backend"] for r in record["evaluation"]["models/whisper-base"]]
    assert backends[0].startswith("transformers float32") and backends[1:] == ["ctranslate2 float32", "ctranslate2 int8"]
    assert all(r["rtfx"] > 0 for r in record["evaluation"]["models/whisper-base"])
    assert record["eval_clips"] == 4 and record["eval_audio_seconds"] > 0
