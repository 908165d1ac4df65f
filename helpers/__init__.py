"""Helpers behind the Whisper fine-tuning notebooks: the notebooks explain, these modules do the work."""
