"""Set-up shared by every notebook (run from the repository root, quiet logs, fixed seeds), and showing a helper's
code on the page."""

from __future__ import annotations

import logging
import os
import random
import warnings
from pathlib import Path

from helpers import ROOT


# Headless runs (papermill, nbval, CI) must print the same thing every time: no progress bars, no chatter.
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}


def setup(seed: int = 42) -> Path:
    """Make a notebook behave the same in JupyterLab, papermill and nbval.

    Changes the working directory to the repository root (so `models/...`, `runs/...` and `data/...`
    parameters mean the same thing everywhere), silences progress bars and library warnings, and seeds
    Python, NumPy and PyTorch. Returns the repository root.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.chdir(ROOT)
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("datasets").setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        transformers.set_seed(seed)
    except ImportError:
        random.seed(seed)
    return ROOT


def show_source(obj) -> None:
    """Show a helper's code on the page: highlighted in JupyterLab, plain text in headless runs (what a committed
    notebook keeps). The learner reads the recipe where it is taught, and the code still has one copy."""
    import inspect

    from helpers.widgets import is_headless

    source = inspect.getsource(obj)
    if is_headless():
        print(source, end="")
        return
    from IPython.display import Code, display

    display(Code(source, language="python"))
