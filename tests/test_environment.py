"""Tests for helpers/environment.py: the checks behind notebook 00."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from helpers import environment as env
from helpers import settings as ST


# ----------------------------------------------------------------------------------------------- versions
def test_parse_requirements_reads_pins_and_skips_comments(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\n\ntorch==2.13.0  # CPU here\nmatplotlib\n-r other.txt\n"
                   "pandas>=2.0\nfoo==1.0 ; python_version < '3.8'\n", encoding="utf-8")
    assert env.parse_requirements(req) == {"torch": "2.13.0", "matplotlib": None, "pandas": None, "foo": "1.0"}


def test_check_versions_names_mismatches_and_missing_packages(tmp_path, monkeypatch):
    """Installed versions faked: a pin met by a local build ("+cpu"), one not met, one missing, one unpinned."""
    installed = {"torch": "2.13.0+cpu", "transformers": "4.40.0", "jiwer": "4.0.0"}
    monkeypatch.setattr(env, "installed_version", installed.get)
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.13.0\ntransformers==5.0.0\nnot-installed==1.0\njiwer\n", encoding="utf-8")
    by_name = {r["package"]: r for r in env.check_versions(req)}
    assert by_name["torch"]["status"] == "ok"
    assert by_name["transformers"]["status"] == "warn"
    assert "transformers==5.0.0" in by_name["transformers"]["advice"] and "4.40.0" in by_name["transformers"]["advice"]
    assert by_name["not-installed"]["status"] == "fail" and by_name["not-installed"]["installed"] == "missing"
    assert by_name["jiwer"]["status"] == "ok" and by_name["jiwer"]["pinned"] == "any"


def test_same_version_ignores_local_build_tag_only():
    assert env.same_version("2.13.0+cu126", "2.13.0")
    assert not env.same_version("2.13.1", "2.13.0")


def test_check_python():
    assert env.check_python(sys.version_info[:2])["status"] == "ok"  # the boundary: exactly the minimum
    assert env.check_python((sys.version_info.major, sys.version_info.minor + 1))["status"] == "fail"


# -------------------------------------------------------------------------------------------- accelerator
@pytest.mark.parametrize("cuda, mps, expected, inference", [
    (True, False, "cuda", "cuda"), (False, True, "mps", "cpu"), (False, False, "cpu", "cpu")])
def test_one_device_probe_behind_training_and_inference(cuda, mps, expected, inference, monkeypatch):
    import torch

    from helpers.inference import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert env.torch_device() == expected
    assert pick_device("auto") == inference and pick_device("cpu") == "cpu"


@pytest.mark.parametrize("cuda", [False, True])
def test_accelerator_info_reads_what_torch_sees(cuda, monkeypatch):
    """Both branches with the device faked: a machine without a GPU, and one with a T4 (no bf16, 15 GiB)."""
    import types

    import torch

    t4 = types.SimpleNamespace(name="Tesla T4", major=7, minor=5, total_memory=15 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: t4)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(env, "_nvidia_smi", lambda: {})
    info = env.accelerator_info()
    if cuda:
        assert (info["device"], info["name"], info["memory_gib"], info["compute_capability"]) == (
            "cuda", "Tesla T4", 15.0, "7.5")
        assert info["fp16"] and not info["bf16"] and info["gpu_count"] == 1
    else:
        assert (info["device"], info["memory_gib"], info["bf16"], info["gpu_count"]) == ("cpu", None, False, 0)
        assert info["cpu_cores"] >= 1


@pytest.mark.parametrize("memory, bf16, expected_precision, expected_plans", [
    (15.8, False, "fp16", [("tiny", 32, 1), ("base", 32, 1), ("small", 16, 2), ("medium", 2, 16)]),  # V100 16 GB
    (39.4, True, "bf16", [("tiny", 64, 1), ("base", 64, 1), ("small", 64, 1), ("medium", 32, 1),
                          ("large", 8, 4)]),                                                    # A100 40 GB
    (11.0, False, "fp16", [("tiny", 32, 1), ("base", 32, 1)]),  # small would need memory tricks: not offered
])
def test_recommend_for_gpus(memory, bf16, expected_precision, expected_plans):
    rec = ST.recommend({"device": "cuda", "memory_gib": memory, "bf16": bf16, "fp16": True})
    assert rec["precision"] == expected_precision
    assert [(p["checkpoint"], p["batch_size"], p["grad_accum"]) for p in rec["plans"]] == expected_plans
    assert all(p["batch_size"] * p["grad_accum"] >= 32 for p in rec["plans"])


def test_recommend_for_cpu_is_tiny_or_base_in_fp32():
    rec = ST.recommend({"device": "cpu"})
    assert rec["precision"] == "fp32"
    assert {p["checkpoint"] for p in rec["plans"]} == {"tiny", "base"}
    assert "CPU only" in rec["advice"]


# -------------------------------------------------------------------------------------------------- audio
def test_check_audio_round_trips_wav_and_mp3(tmp_path):
    rows = env.check_audio(work_dir=tmp_path)
    assert [r["item"] for r in rows] == ["decode wav", "decode mp3"]
    assert all(r["status"] == "ok" for r in rows), rows
    assert "pitch 440 Hz" in rows[1]["detail"]


def test_check_audio_reports_a_broken_clip(tmp_path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"this is not audio" * 10)
    rows = env.check_audio(bad, work_dir=tmp_path)
    assert rows[-1]["status"] == "fail" and "broken.mp3" in rows[-1]["detail"]


# --------------------------------------------------------------------------------------------------- disk
def test_free_space_walks_up_to_an_existing_folder(tmp_path):
    rows = env.free_space({"run folder": tmp_path / "not" / "made" / "yet"}, min_free_gb=0.0)
    assert rows[0]["free_gb"] > 0 and rows[0]["status"] == "ok"
    assert env.free_space({"x": tmp_path}, min_free_gb=1e12)[0]["status"] == "warn"


def test_display_path_hides_the_machine(repo_root):
    assert env.display_path(repo_root / "runs" / "es") == "runs/es"
    assert env.display_path(os.path.expanduser("~/.cache/huggingface")) == "~/.cache/huggingface"


# ---------------------------------------------------------------------------------------------------- hub
def test_hub_status_offline_never_exposes_the_token(monkeypatch):
    secret = "hf_" + "x" * 30
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", secret)
    status = env.hub_status()
    assert status["offline_mode"] and not status["reachable"]
    assert status["logged_in"] is True
    assert secret not in json.dumps(status)
    assert "Mozilla" in status["common_voice"]


def test_hub_status_unreachable_endpoint(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # discard port: refused
    status = env.hub_status(timeout=2)
    assert status["reachable"] is False and not status["offline_mode"]
    assert "not reachable" in status["detail"]


# ------------------------------------------------------------------------------------------ sanity check
@pytest.fixture(scope="module")
def english_clips(sample_root):
    """Test clips of the English sample (decoded to 16 kHz), their transcripts and paths."""
    import csv

    from helpers.audio import decode

    folder = sample_root / "en"
    with open(folder / "test.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:2]
    clips = []
    for row in rows:
        array, _ = decode(folder / "clips" / row["path"])
        clips.append(({"array": array, "sampling_rate": 16000}, row["sentence"], folder / "clips" / row["path"]))
    return clips


def test_sanity_check_passes_with_a_real_model(tiny_en_dir, english_clips):
    audios, sentences, _ = zip(*english_clips[:2])
    result = env.sanity_check(tiny_en_dir, audios, sentences, "en", max_wer=60)
    assert result["status"] == "ok", result
    assert result["wer"] < 60 and result["wrong_script"] == 0 and len(result["clips"]) == 2
    assert result["clips"][0]["script"] == result["script_reference"] == "LATIN"
    assert min(clip["wer"] for clip in result["clips"]) == 0.0  # some clips come out word for word
    assert result["model"] == "models/whisper-tiny.en"  # shown relative to the repository, never absolute


def test_sanity_check_fails_loudly_on_wrong_audio_and_warns_when_weak(tiny_en_dir, english_clips):
    from helpers.inference import load_model

    loaded = load_model(tiny_en_dir, dtype="float32")
    _, sentences, _ = zip(*english_clips[:1])
    silence = [{"array": np.zeros(16000, dtype=np.float32), "sampling_rate": 16000}]
    broken = env.sanity_check(tiny_en_dir, silence, sentences, "en", max_wer=60, loaded=loaded)
    assert broken["status"] == "fail" and broken["wer"] >= 90, broken
    weak = env.sanity_check(tiny_en_dir, silence, sentences, "en", weak_wer=50, loaded=loaded, label="zero-shot")
    assert weak["status"] == "warn" and weak["notes"] and weak["label"] == "zero-shot"


def test_check_audio_decodes_a_sample_clip(english_clips, tmp_path):
    clip = english_clips[0][2]
    rows = env.check_audio(clip, work_dir=tmp_path)
    assert rows[-1]["item"] == "decode mp3 clip" and rows[-1]["status"] == "ok"


# ---------------------------------------------------------------------------------------------- checklist
def _report(**overrides):
    report = {
        "python": env.check_python(),
        "versions": [{"package": "torch", "pinned": "2.13.0", "installed": "2.13.0", "status": "ok", "advice": ""}],
        "accelerator": {"device": "cpu", "name": "x86_64"},
        "recommendation": ST.recommend({"device": "cpu"}),
        "audio": [{"item": "decode wav", "status": "ok", "detail": ""}],
        "disk": [{"item": "run folder", "free_gb": 50.0, "status": "ok", "advice": ""}],
        "hub": {"reachable": True, "logged_in": True},
        "sanity": [{"label": "install check", "status": "ok", "wer": 10.0, "problems": [], "notes": []}],
    }
    report.update(overrides)
    return report


def test_checklist_and_verdict_ready_on_cpu_with_a_note():
    rows = env.checklist(_report())
    assert {"item", "status", "advice"} <= set(rows[0])
    result = env.verdict(rows)
    assert result["ready"] and result["warnings"] == ["accelerator: CPU only"]
    assert "01_data_exploration" in result["text"]


def test_checklist_names_mismatched_packages_and_failed_sanity():
    versions = [{"package": "transformers", "pinned": "5.24.0", "installed": "4.40.0", "status": "warn",
                 "advice": ""}]
    sanity = [{"label": "install check", "status": "fail", "wer": 100.0, "problems": ["empty transcript"],
               "notes": []}]
    rows = env.checklist(_report(versions=versions, sanity=sanity))
    libs = next(r for r in rows if r["item"] == "pinned libraries")
    assert libs["status"] == "warn" and "transformers (4.40.0 vs 5.24.0)" in libs["advice"]
    result = env.verdict(rows)
    assert not result["ready"] and result["text"].startswith("NOT READY")
    assert result["failed"] == ["install check (WER 100%)"]


# --------------------------------------------------------------------------------------- notebook plumbing
def test_ensure_local_model_passes_hub_ids_and_converted_folders(base_dir, tmp_path):
    assert env.ensure_local_model("openai/whisper-small") == "openai/whisper-small"  # nothing downloaded here
    assert env.ensure_local_model("models/whisper-base") == "models/whisper-base"
    other = tmp_path / "models" / "my-finetune"
    assert env.ensure_local_model(other) == str(other) and not other.exists()


def test_clip_file_finds_sample_and_folder_clips(sample_root):
    name = (sample_root / "es" / "test.tsv").read_text(encoding="utf-8").splitlines()[1].split("\t")[1]
    assert env.clip_file("sample", "es", name) == sample_root / "es" / "clips" / name
    assert env.clip_file(str(sample_root / "es"), "es", name) == sample_root / "es" / "clips" / name
    assert env.clip_file(str(sample_root), "es", name) == sample_root / "es" / "clips" / name  # release folder
    assert env.clip_file("org/some-hub-dataset", "es", name) is None


def test_sanity_lines_show_each_clip_and_the_bound():
    result = {"label": "install check", "model": "models/whisper-base", "language": "en", "max_wer": 60.0,
              "wer": 25.0, "status": "ok", "problems": [], "notes": [],
              "script_reference": "LATIN",
              "clips": [{"reference": "Hello there.", "hypothesis": "Hello, there!", "wer": 0.0, "script": "LATIN"},
                        {"reference": "Good night.", "hypothesis": "Гуд найт.", "wer": 100.0, "script": "CYRILLIC"}]}
    text = env.sanity_lines(result)
    assert "1. reference: Hello there." in text and "model:     Hello, there!   (WER 0%)\n" in text
    assert "model:     Гуд найт.   (WER 100%, CYRILLIC script)" in text
    assert text.endswith("WER over 2 clips: 25.0% (must be under 60%); status ok")
