"""Notebook 04 as a learner runs it: JupyterLab in a real browser, Run All, then the transcriber widget.

The browser is the system's Chromium (which `make test` installs), driven by Playwright. The notebook file on disk
must not change: autosave is off and nothing is saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import ROOT

NOTEBOOK = "notebooks/04_evaluation.ipynb"
KERNEL_NAME = "Python (whisper-curriculum)"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTINGS = {  # JupyterLab user settings: no news toast, no autosave
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("no chromium on PATH: `make test` installs it (apt-get install chromium)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on the repository, with its config, runtime and settings in a temporary folder."""
    home = tmp_path_factory.mktemp("jupyterlab")
    for name, values in SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    port, token = _free_port(), secrets.token_hex(16)
    env = {key: value for key, value in os.environ.items() if key != "NOTEBOOK_HEADLESS"}
    # only this environment's kernels and settings: nothing of the user's own Jupyter folders
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{(home / 'server.log').read_text()}")
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_notebook_04_runs_in_jupyterlab_and_its_transcriber_answers_a_click(lab):
    from playwright.sync_api import expect, sync_playwright

    url, token = lab
    before = _digest(ROOT / NOTEBOOK)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}&reset")
            expect(page.get_by_text(f"{KERNEL_NAME} | Idle")).to_be_visible(timeout=120_000)

            # Start from no outputs, so that everything checked below comes from this run.
            page.get_by_role("menuitem", name="Edit").click()
            page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
            outputs = page.locator(".jp-OutputArea-output")  # (the code cells hold the same words)
            expect(outputs.filter(has_text="all checks passed")).to_have_count(0)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            # The last cell asserts the results files; its line appears only when every cell ran without error.
            # Wait for it or for the first error, whichever comes first.
            passed = outputs.filter(has_text="all checks passed")
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
                has_text=re.compile(r"Traceback|Error"))
            expect(passed.or_(errors).first).to_be_visible(timeout=600_000)
            expect(errors).to_have_count(0)
            expect(passed).to_be_visible()

            # In a front end the transcriber is a widget, not only the printed line of a headless run.
            transcribe = page.get_by_role("button", name="Transcribe")
            expect(transcribe).to_be_visible()
            expect(outputs.get_by_text("Test clip")).to_be_visible()
            players = page.locator("audio")
            expect(players).to_have_count(3)  # the three worst clips, each with its player
            transcribe.click()
            answer = page.locator("[data-mime-type='application/vnd.jupyter.stdout']").filter(has_text="test clip #0")
            expect(answer).to_be_visible(timeout=120_000)
            expect(answer).to_contain_text("reference:")
            expect(players).to_have_count(4)  # and the transcribed clip's
        finally:
            browser.close()
    assert _digest(ROOT / NOTEBOOK) == before, "JupyterLab changed the notebook file (autosave should be off)"
