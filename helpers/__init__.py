"""Helpers behind the Whisper fine-tuning notebooks: the notebooks explain, these modules do the work."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root: models/, data/, runs/ and notebooks/ are here
