"""Committed notebooks are clean, and the cleaner does what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.clean_notebooks import clean, main, problems

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _notebook(output_text: str) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": 7, "id": "abc", "metadata": {"tags": ["parameters"], "papermill": {}},
             "outputs": [{"output_type": "stream", "name": "stdout", "text": [output_text]}], "source": ["x = 1"]},
        ],
        "metadata": {"papermill": {"duration": 3.2}, "widgets": {"state": {}}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def test_clean_removes_execution_noise_and_keeps_tags_and_outputs():
    nb = clean(_notebook("hello\n"))
    cell = nb["cells"][0]
    assert cell["execution_count"] == 1
    assert cell["metadata"] == {"tags": ["parameters"]}
    assert cell["outputs"][0]["text"] == ["hello\n"]
    assert "papermill" not in nb["metadata"] and "widgets" not in nb["metadata"]
    assert nb["metadata"]["kernelspec"]["name"] == "whisper-curriculum"


def test_check_flags_uncleaned_notebook_and_machine_paths(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_notebook("saved to /home/alice/runs/es\n")))
    found = problems(path)
    assert any("not cleaned" in p for p in found)
    assert any("machine path" in p for p in found)
    assert main(["--check", str(path)]) == 1
    main([str(path)])  # cleaning fixes the metadata but not the leaked path
    assert [p for p in problems(path) if "not cleaned" in p] == []
    assert any("machine path" in p for p in problems(path))


def test_the_six_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["00_environment_check", "01_data_exploration", "02_normalization_rules",
                     "03_fine_tuning", "04_evaluation", "05_export_and_deploy"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    assert problems(path) == []
    nb = json.loads(path.read_text(encoding="utf-8"))
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "commit the default run's outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_parameter_contract(path):
    import papermill

    params = papermill.inspect_notebook(str(path))
    assert list(params)[:4] == ["language", "dataset", "model", "run_dir"]
    assert params["language"]["default"] == '"es"'
    assert params["dataset"]["default"] == '"sample"'
    assert params["model"]["default"] == '"models/whisper-base"'
    assert params["run_dir"]["default"] == '"runs/es"'
    assert not [name for name in params if "token" in name.lower()], "secrets never go in parameters"
