"""Shared fixtures: the converted offline Whisper checkpoints and the embedded sample."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `pytest` alone does not put the repository root on sys.path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    """OpenAI Whisper tiny.en in Hugging Face format (converted at set-up, or here if missing)."""
    from tools.convert import ensure_model

    return ensure_model("whisper-tiny.en", ROOT / "models")


@pytest.fixture(scope="session")
def base_dir() -> Path:
    """OpenAI Whisper base (multilingual) in Hugging Face format."""
    from tools.convert import ensure_model

    return ensure_model("whisper-base", ROOT / "models")


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The embedded sample: one Common Voice style folder per language."""
    return ROOT / "data" / "sample"
