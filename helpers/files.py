"""Names and files: is a name a Hub id or a local path; reading and writing run outputs (environment.json, ...)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from helpers import ROOT


def hub_id(name: str | Path) -> str | None:
    """`name` when it names a Hugging Face Hub repository ("org/name"), None when it is a local path.

    A local path wins: anything that exists here, starts with ".", "/" or "~", has more than one "/", or whose
    first part is a local folder ("models/whisper-bas", a typo, must not be looked up online)."""
    name = str(name).strip()
    if name.startswith((".", "/", "~")) or not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return None
    if Path(name).exists() or Path(name.split("/")[0]).is_dir() or name.startswith("models/"):
        return None
    return name


def display_path(path: str | Path) -> str:
    """A path as it may be shown or stored: relative to the repository when inside it, '~/...' under the home
    folder, otherwise unchanged (machine-specific absolute paths never reach a committed notebook)."""
    path = Path(path).expanduser().absolute()
    for base, prefix in ((ROOT, ""), (Path.home(), "~/")):
        if path.is_relative_to(base):
            rel = path.relative_to(base).as_posix()
            return prefix + rel if rel != "." else (prefix.rstrip("/") or ".")
    return str(path)


def read_table(name: str) -> dict[str, list[str]]:
    """A tab-separated table that ships in helpers/ (`name`), keyed by its first column; the header is skipped."""
    lines = (Path(__file__).parent / name).read_text(encoding="utf-8").splitlines()[1:]
    return {fields[0]: fields[1:] for fields in (line.split("\t") for line in lines if line)}


def writable_folder(path: str | Path, name: str = "run_dir") -> Path:
    """`path`, created if needed and tried with a small file; an OSError that says which folder and why when it
    cannot be written (read-only, full, not a folder), before any work that would be lost."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"  # one per process: several training processes try the same folder
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"{name} {path.as_posix()!r} cannot be written ({err.strerror or err}): choose another "
                      f"{name}, or free space or fix permissions there.") from None
    return path


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


def read_json(path: str | Path) -> Any:
    """The JSON in `path`, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_json(data: Mapping, path: str | Path) -> Path:
    """Write `data` as indented UTF-8 JSON, creating the folder; returns the path. Paths and other objects
    JSON does not know are written as text. The file is written beside and then renamed over the old one, so a
    reader (or a crash) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(json_ready(data), indent=2, ensure_ascii=False, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path
