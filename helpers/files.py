"""Writing run outputs (environment.json, data_report.json, training.json, results.json, ...)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping


def json_ready(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and NaN/infinity as None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return json_ready(value.item())
    return value


def write_json(data: Mapping, path: str | Path) -> Path:
    """Write `data` as indented UTF-8 JSON, creating the folder; returns the path. Paths and other objects
    JSON does not know are written as text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(data), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path
