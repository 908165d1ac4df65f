"""Display helpers that work in JupyterLab (widgets) and headless (papermill, nbval, CI: plain text).

Headless runs must not store widgets: their state would bloat the notebook and their output differs between
runs. So every helper here prints a plain-text result always, and adds the widget only when a person is
looking at the notebook in a front end that can render it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from typing import Iterable, Mapping

import numpy as np

# Processes that run notebooks without a person watching. A kernel started by one of these is headless...
HEADLESS_PARENTS = ("papermill", "pytest", "nbconvert", "nbclient", "jupyter-execute", "jupyter_execute")
# ...unless a front end a person uses sits between them (a browser test may start JupyterLab from pytest).
FRONTEND_PARENTS = ("jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter_server", "jupyterlab",
                    "jupyter lab", "jupyter notebook", "voila", "vscode", "code-server", "pycharm")


def _parent_command_lines() -> list[str]:
    """Command lines of this process's ancestors, nearest first (empty list where they cannot be read)."""
    try:
        import psutil
    except ImportError:
        return []
    lines = []
    try:
        for proc in psutil.Process().parents():
            with contextlib.suppress(psutil.Error, OSError):
                lines.append(" ".join(proc.cmdline()))
    except (psutil.Error, OSError):
        pass
    return lines


def headless_from_parents(command_lines: Iterable[str]) -> bool:
    """Decide from ancestor command lines (nearest first): the nearest runner or front end wins."""
    for line in command_lines:
        lowered = line.lower()
        if any(name in lowered for name in FRONTEND_PARENTS):
            return False
        if any(name in lowered for name in HEADLESS_PARENTS):
            return True
    return False


def is_headless(headless: bool | None = None) -> bool:
    """True when no person is watching: not inside a Jupyter kernel, or a kernel run by papermill, nbval
    (pytest) or nbconvert. False in JupyterLab, Notebook, VS Code and other front ends.

    `headless` (a caller's own parameter) answers when given; else `NOTEBOOK_HEADLESS=1` (or `0`) overrides the
    guess, e.g. in CI or to test the widget path.
    """
    if headless is not None:
        return headless
    forced = os.environ.get("NOTEBOOK_HEADLESS", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return True
    return headless_from_parents(_parent_command_lines())


def wav_bytes(array: np.ndarray, sampling_rate: int) -> bytes:
    """Encode a mono float array as 16-bit WAV bytes (what an audio player widget plays)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(array, dtype=np.float32), int(sampling_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def clip_line(index: int, row: Mapping) -> str:
    """One plain-text line for a clip: number, duration, speaker (shortened) and transcript."""
    audio = row.get("audio") or {}
    if row.get("duration") is not None:
        seconds = float(row["duration"])
    elif audio.get("array") is not None and audio.get("sampling_rate"):
        seconds = len(audio["array"]) / float(audio["sampling_rate"])
    else:
        seconds = float("nan")
    speaker = str(row.get("client_id") or "?")[:8]
    return f"{index:>2}. [{seconds:4.1f} s, speaker {speaker}] {row.get('sentence', '')}"


def show_clips(rows: Iterable[Mapping], max_n: int = 5, headless: bool | None = None) -> list[str]:
    """Show up to `max_n` clips: an audio player next to each transcript, or plain lines headless.

    Rows are dataset rows with `audio` ({"array", "sampling_rate"}) and `sentence`. The plain lines are always
    printed (and returned), so a headless run records what would have been played.
    """
    chosen = list(itertools.islice(rows, max_n))
    lines = [clip_line(i + 1, row) for i, row in enumerate(chosen)]
    for line in lines:
        print(line)
    if chosen and not is_headless(headless):
        import ipywidgets as widgets
        from IPython.display import display

        players = []
        for line, row in zip(lines, chosen):
            audio = row["audio"]
            player = widgets.Audio(value=wav_bytes(audio["array"], audio["sampling_rate"]), format="wav",
                                   autoplay=False, loop=False)
            players.append(widgets.HBox([player, widgets.Label(line)]))
        display(widgets.VBox(players))
    return lines


def shorten(text: str, max_chars: int) -> str:
    """`text`, cut to `max_chars` characters with "…" as the last one when it is longer."""
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def format_table(rows: Iterable[Mapping], columns: Iterable[str] | None = None, max_width: int = 100) -> str:
    """A plain-text table (same bytes every run, unlike a styled DataFrame); long cells are cut at `max_width`."""
    rows = list(rows)
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])

    def cell(value) -> str:
        return shorten("" if value is None else str(value), max_width)

    body = [[cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(line[i]) for line in body]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(val.ljust(w) for val, w in zip(line, widths)).rstrip() for line in body]
    return "\n".join(lines)


def format_mapping(mapping: Mapping, keys: Iterable[str] | None = None) -> str:
    """A dict as two aligned columns (key, value), one line per key: for short reports of facts."""
    keys = list(keys) if keys is not None else list(mapping)
    width = max((len(str(k)) for k in keys), default=0)
    return "\n".join(f"{str(k).ljust(width)}  {mapping.get(k)}" for k in keys)
