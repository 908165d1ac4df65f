"""Run the curriculum notebooks headless, one language after another, with papermill.

    python -m tools.batch --languages es de fr --dataset sample --model models/whisper-base
    python -m tools.batch --config configs/sample.yaml --set max_steps=20

For every language, each notebook notebooks/NN_*.ipynb (or those chosen with --notebooks) runs in order on a
registered Jupyter kernel, with the notebooks folder as working directory (as in JupyterLab), and is saved as
<runs>/<language>/NN_name.ipynb. Each notebook receives language, dataset, model, run_dir (= <runs>/<language>)
and any extra parameter (--set, or the config file), but only the parameters it declares in its cell tagged
`parameters`: max_steps reaches the fine-tuning notebook and no other.

A language that fails does not stop the others: its failed notebook is kept, the error is summarised, and the
exit status is 1 at the end. <runs>/<language>/status.json records each notebook's state, parameters and timing;
running the same command again skips the notebooks that already finished with the same parameters and starts
again at the first one that failed, was interrupted, or whose parameters changed (notebook 03 resumes its own
training from the checkpoints in run_dir). --force runs everything again. At the end <runs>/summary.csv,
summary.md and summary.png compare the languages (see tools.summary).

Parameter values, lowest to highest priority: built-in defaults (dataset "sample", model "models/whisper-base"),
the config file's top level, the config file's entry for the language, then the command line (--dataset, --model,
--set). Tokens are never parameters: output notebooks store their parameters. Log in with `hf auth login` or set
HF_TOKEN in the environment; the kernel inherits the environment (HF_HUB_OFFLINE etc.) of this command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from helpers import ROOT
from helpers.files import writable_folder, write_json
from tools import summary

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
DEFAULT_NOTEBOOKS_DIR = ROOT / "notebooks"
DEFAULT_KERNEL = "whisper-curriculum"
DEFAULT_LANGUAGES = ("es",)
DEFAULTS: dict[str, Any] = {"dataset": "sample", "model": "models/whisper-base"}
BASE_PARAMETERS = ("language", "dataset", "model", "run_dir")
RESERVED = ("language", "run_dir")  # set by the runner for each language
PATH_PARAMETERS = ("dataset", "model")  # made relative to the repository root when they name an existing path
CONFIG_KEYS = ("languages", "kernel")  # top-level config keys that are not notebook parameters
STATUS_FILE = summary.SOURCES["status"]
RUN_LOG = "run.log"  # the kernel's own stderr and papermill's messages, per language

LANGUAGE_RE = re.compile(r"[A-Za-z]{2,8}([-_][A-Za-z0-9]+)*")
# "hf_token", "auth_token", "token" are refused; "max_new_tokens" and "tokenizer" are ordinary parameters.
TOKEN_NAME_RE = re.compile(r"token(?!s|iz)", re.IGNORECASE)
TOKEN_VALUE_RE = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
NUMBER_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
YAML_BOOLEAN_WORDS = "no/yes, off/on, false/true"


class BatchError(ValueError):
    """Bad input to the batch runner (config, parameters, notebooks, kernel): the message says what and where."""


# ---------------------------------------------------------------------------------------------- input checks


def check_language(code: Any, where: str) -> str:
    """A language code as given, or a BatchError (a YAML boolean such as an unquoted `no` gets its own message)."""
    if isinstance(code, bool):
        raise BatchError(
            f"{where}: a language code was read as the boolean {code}. YAML turns the unquoted words "
            f"{YAML_BOOLEAN_WORDS} into booleans, so Norwegian `no` becomes False. "
            f'Quote every language code, e.g. "no": {{}} or languages: ["es", "no"].'
        )
    if not isinstance(code, str):
        raise BatchError(
            f"{where}: language codes must be strings, got {code!r} ({type(code).__name__}); quote them."
        )
    if not LANGUAGE_RE.fullmatch(code):
        raise BatchError(f"{where}: {code!r} is not a language code (expected e.g. \"es\", \"tr\" or \"zh-CN\").")
    return code


def _check_value(value: Any, name: str, where: str) -> None:
    if isinstance(value, str):
        if TOKEN_VALUE_RE.search(value):
            raise BatchError(
                f"{where}: the value of '{name}' looks like a Hugging Face token. Tokens must never be notebook "
                "parameters (output notebooks store them); set HF_TOKEN in the environment or run `hf auth login`."
            )
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item, name, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BatchError(f"{where}: '{name}' has a non-string key {key!r}; quote it.")
            _check_value(item, name, where)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise BatchError(
            f"{where}: '{name}' = {value!r} is a {type(value).__name__}; parameters must be strings, numbers, "
            "booleans, null, lists or mappings (quote dates and other special values)."
        )


def check_parameters(params: dict, where: str) -> dict[str, Any]:
    """Refuse token-like names or values, runner-owned names and values papermill cannot pass on."""
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise BatchError(f"{where}: parameter name {name!r} is not a valid Python name.")
        if TOKEN_NAME_RE.search(name):
            raise BatchError(
                f"{where}: refusing parameter '{name}': tokens must never be notebook parameters (output "
                "notebooks store their parameters). Set HF_TOKEN in the environment or run `hf auth login`."
            )
        if name in RESERVED:
            raise BatchError(
                f"{where}: '{name}' is set by the runner (language from --languages or the config's "
                "`languages`, run_dir = <runs>/<language>); remove it."
            )
        _check_value(value, name, where)
    return dict(params)


def parse_value(text: str) -> Any:
    """A --set value: true/false/null, an int or float, a JSON list/object, or else the string itself.

    Unlike YAML, `no`, `yes`, `on` and `off` stay strings.
    """
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if NUMBER_RE.fullmatch(stripped):
        number = float(stripped)
        return int(stripped) if re.fullmatch(r"[-+]?\d+", stripped) else number
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise BatchError(f"--set: cannot read {text!r} as JSON: {exc}") from None
    return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """--set KEY=VALUE arguments as a checked parameter dict."""
    params: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BatchError(f"--set {item!r}: expected KEY=VALUE, e.g. --set max_steps=20")
        params[name.strip()] = parse_value(value)
    return check_parameters(params, "--set")


@dataclass
class Config:
    """Defaults for every language and per-language overrides, from a YAML file (or empty)."""

    defaults: dict[str, Any] = field(default_factory=dict)
    languages: dict[str, dict[str, Any]] = field(default_factory=dict)
    kernel: str | None = None
    source: str = "no config"


def parse_config(data: Any, source: str) -> Config:
    """Check a config already read from YAML (a mapping) and split it into defaults and languages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BatchError(f"{source}: expected a mapping at the top (dataset: ..., languages: ...).")
    for key in data:
        if not isinstance(key, str):
            raise BatchError(f"{source}: top-level key {key!r} is not a string; quote it.")
    config = Config(source=source)
    config.defaults = check_parameters({k: v for k, v in data.items() if k not in CONFIG_KEYS}, source)
    kernel = data.get("kernel")
    if kernel is not None and not isinstance(kernel, str):
        raise BatchError(f"{source}: kernel must be a kernel name, got {kernel!r}.")
    config.kernel = kernel
    languages = data.get("languages")
    if languages is None:
        return config
    if isinstance(languages, list) and not any(isinstance(code, (dict, list)) for code in languages):
        languages = {code: {} for code in languages}  # a plain list: no per-language overrides
    if not isinstance(languages, dict):
        raise BatchError(
            f'{source}: `languages` must be a list of quoted codes (["es", "de"]) or a mapping of quoted codes '
            'to parameter overrides ("tr": {max_steps: 12}).'
        )
    for code, overrides in languages.items():
        where = f"{source}: languages"
        code = check_language(code, where)
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise BatchError(f"{where}: \"{code}\" must map to parameter overrides (a mapping or {{}}), "
                             f"got {overrides!r}.")
        config.languages[code] = check_parameters(overrides, f"{where}: \"{code}\"")
    return config


def load_config(path: str | Path) -> Config:
    """Read and check a YAML config file (see configs/*.yaml)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BatchError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))


# ------------------------------------------------------------------------------------------------- notebooks


@dataclass(frozen=True)
class Notebook:
    path: Path
    parameters: tuple[str, ...]  # names declared in its cell tagged `parameters`

    @property
    def name(self) -> str:
        return self.path.stem


def find_notebooks(directory: str | Path = DEFAULT_NOTEBOOKS_DIR, select: list[str] | None = None) -> list[Notebook]:
    """The numbered notebooks in `directory`, in order, with the parameters each declares.

    `select` keeps some of them: "03", "3" or "03_fine_tuning" each pick one notebook.
    """
    directory = Path(directory)
    paths = sorted(directory.glob(NOTEBOOK_GLOB))
    if not paths:
        raise BatchError(f"no notebooks matching {NOTEBOOK_GLOB} in {directory}")
    if select:
        chosen = []
        for item in select:
            stem = item[:-6] if item.endswith(".ipynb") else item
            matches = [p for p in paths if p.stem == stem
                       or (stem.isdigit() and p.stem.startswith(f"{int(stem):02d}_"))]
            if not matches:
                raise BatchError(f"--notebooks {item!r}: no such notebook in {directory} "
                                 f"(have: {', '.join(p.stem for p in paths)})")
            chosen += matches
        paths = [p for p in paths if p in chosen]
    return [Notebook(path=path.resolve(), parameters=declared_parameters(path)) for path in paths]


def declared_parameters(path: str | Path) -> tuple[str, ...]:
    """The names assigned in a notebook's first cell tagged `parameters`, in order; () when it has none.

    Read with Python's own parser: papermill.inspect_notebook skips every line holding a second "=", even in
    a comment such as `max_sentences = 2000  # 0 = all`. papermill's reader is the fallback for cells that are
    not plain Python.
    """
    import ast

    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # a notebook that cannot be read is an input error, reported by name
        raise BatchError(f"{path}: cannot read the notebook: {type(exc).__name__}: {exc}") from None
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return ()
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError:
        import papermill

        return tuple(papermill.inspect_notebook(str(path)))
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            elements = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
            names += [t.id for t in elements if isinstance(t, ast.Name) and t.id not in names]
    return tuple(names)


def notebook_parameters(notebook: Notebook, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of `params` that `notebook` declares (papermill would inject any name it is given)."""
    return {name: value for name, value in params.items() if name in notebook.parameters}


def parameter_path(path: str | Path) -> str:
    """A path as notebooks see it after setup() moved them to the repository root: relative to it when inside."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(ROOT).as_posix()
    except ValueError:
        return str(absolute)


def language_parameters(language: str, runs: Path, config: Config, cli: dict[str, Any]) -> dict[str, Any]:
    """All parameters for one language, before filtering per notebook (see the module docstring for priority)."""
    params: dict[str, Any] = dict(DEFAULTS)
    params.update(config.defaults)
    params.update(config.languages.get(language, {}))
    params.update(cli)
    for name in PATH_PARAMETERS:
        value = params.get(name)
        if isinstance(value, str) and value and Path(value).exists():
            params[name] = parameter_path(value)
    ordered = {"language": language, **{k: params.pop(k) for k in ("dataset", "model") if k in params}}
    ordered["run_dir"] = parameter_path(Path(runs) / language)
    ordered.update(params)
    return ordered


# ---------------------------------------------------------------------------------------------- status files


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_status(run_dir: Path) -> dict[str, Any]:
    """A language's status.json, or {} when there is none (or it is unreadable)."""
    status = summary.read_json(Path(run_dir) / STATUS_FILE)
    if not isinstance(status.get("notebooks"), dict):
        status["notebooks"] = {}
    return status


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def plan(notebooks: list[Notebook], params: dict[str, Any], status: dict[str, Any], run_dir: Path,
         force: bool = False) -> list[tuple[Notebook, str | None]]:
    """For each notebook, why it must run, or None when it can be skipped.

    A notebook is skipped only when it finished before with the same parameters, its output notebook is still
    there, and every notebook before it was skipped too: once one notebook runs again, the later ones, which
    read its outputs, run again as well.
    """
    decisions: list[tuple[Notebook, str | None]] = []
    upstream: str | None = None  # set once a notebook runs: every later one runs too
    entries = status.get("notebooks") or {}
    for notebook in notebooks:
        entry = entries.get(notebook.name)
        state = entry.get("state") if isinstance(entry, dict) else None
        if force:
            reason = "forced"
        elif state is None or state == "pending":
            reason = "not run yet"
        elif state == "failed":
            reason = "failed last time"
        elif state in ("running", "interrupted"):
            reason = "interrupted last time: resuming"
        elif state != "ok":
            reason = f"state {state!r}"
        elif _normalised(entry.get("parameters")) != _normalised(notebook_parameters(notebook, params)):
            reason = "parameters changed"
        elif not (Path(run_dir) / f"{notebook.name}.ipynb").exists():
            reason = "output notebook missing"
        else:
            reason = upstream
        if reason is not None and upstream is None:
            upstream = f"after {notebook.name}"
        decisions.append((notebook, reason))
    return decisions


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong in a notebook run."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        lines = [line for line in str(exc.evalue).splitlines() if line.strip()]
        message = f"In [{exc.exec_count}]: {exc.ename}: {lines[0].strip() if lines else ''}".rstrip(": ")
    else:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        name = type(exc).__name__
        message = f"{name}: {lines[0].strip()}" if lines else name
        if name == "DeadKernelError":
            message += " (out of memory? see run.log)"
    return message if len(message) <= 300 else message[:297] + "..."


def _kernel_manager_class(log_path: Path) -> type:
    """A kernel manager whose kernel process writes its own stdout/stderr (start-up warnings, crashes) to a file."""
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            with open(log_path, "ab") as log:
                kw.setdefault("stdout", log)
                kw.setdefault("stderr", log)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager


def check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise BatchError(
            f"no Jupyter kernel named '{kernel}'. Register this environment once with\n"
            f"    python -m ipykernel install --user --name {DEFAULT_KERNEL} "
            '--display-name "Python (whisper-curriculum)"\n'
            "or pick an installed kernel with --kernel (`jupyter kernelspec list` shows them)."
        ) from None


# ------------------------------------------------------------------------------------------------ the runner


@dataclass
class Batch:
    """Everything one batch run needs; `run()` executes it and returns the exit status."""

    languages: list[str]
    notebooks: list[Notebook]
    runs: Path
    config: Config = field(default_factory=Config)
    cli: dict[str, Any] = field(default_factory=dict)
    kernel: str = DEFAULT_KERNEL
    force: bool = False
    write: Callable[..., None] = print
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str = "", end: str = "\n") -> None:
        self.write(text, end=end, flush=True)

    def unused_parameters(self) -> list[str]:
        declared = {name for notebook in self.notebooks for name in notebook.parameters}
        given = set(self.config.defaults) | set(self.cli)
        for overrides in self.config.languages.values():
            given |= set(overrides)
        return sorted(given - declared - set(BASE_PARAMETERS))

    def run(self) -> int:
        try:
            writable_folder(self.runs, "runs folder")
        except OSError as err:
            raise BatchError(str(err)) from None
        names = ", ".join(n.name for n in self.notebooks)
        self.say(f"batch: {len(self.languages)} language(s) [{' '.join(self.languages)}] x {len(self.notebooks)} "
                 f"notebook(s) [{names}], kernel {self.kernel}, outputs in {self.runs}/<language>/")
        for notebook in self.notebooks:
            if not notebook.parameters:
                self.say(f"note: {notebook.name} has no cell tagged 'parameters'; it runs with its own values")
        unused = self.unused_parameters()
        if unused:
            self.say(f"note: no selected notebook declares {', '.join(unused)}; not passed")
        failed = []
        for language in self.languages:
            if not self.run_language(language):
                failed.append(language)
        paths = summary.write_summary(self.runs, self.languages)
        self.say()
        self.say(paths["md"].read_text(encoding="utf-8"), end="")
        self.say(f"summary: {paths['csv']}, {paths['md']}, {paths['png']}")
        if failed:
            self.say(f"failed: {' '.join(failed)} (their notebooks are kept in {self.runs}/<language>/; "
                     "run the same command again to resume)")
            return 1
        return 0

    def run_language(self, language: str) -> bool:
        """Run (or skip) the notebooks of one language; False when one failed."""
        run_dir = self.runs / language
        try:
            writable_folder(run_dir)
        except OSError as err:  # this language fails with the reason; the others go on
            self.say(f"[{summary.clock(time.monotonic() - self.started)}] {language}: FAILED: {err}")
            return False
        params = language_parameters(language, self.runs, self.config, self.cli)
        status = read_status(run_dir)
        decisions = plan(self.notebooks, params, status, run_dir, self.force)
        total = len(self.notebooks)
        if all(reason is None for _, reason in decisions):
            self.say(f"[{summary.clock(time.monotonic() - self.started)}] {language}: all {total} notebook(s) finished "
                     "earlier with the same parameters; skipped (--force runs them again)")
            return True

        entries = status.get("notebooks", {})
        status = {"language": language, "state": "running", "error": None, "kernel": self.kernel,
                  "started": _now(), "notebooks": entries}
        write_json(status, run_dir / STATUS_FILE)
        ok = True
        for index, (notebook, reason) in enumerate(decisions, start=1):
            prefix = f"[{summary.clock(time.monotonic() - self.started)}] {language} {index}/{total} {notebook.name}"
            if not ok:
                entries[notebook.name] = {"state": "pending", "reason": "an earlier notebook failed"}
                continue
            if reason is None:
                self.say(f"{prefix}: skipped (finished earlier)")
                continue
            self.say(f"{prefix}{'' if reason == 'not run yet' else f' ({reason})'} ...", end="")
            entry = {"state": "running", "started": _now(), "parameters": notebook_parameters(notebook, params),
                     "output": f"{notebook.name}.ipynb"}
            entries[notebook.name] = entry
            write_json(status, run_dir / STATUS_FILE)
            began = time.monotonic()
            try:
                self.execute(notebook, run_dir, entry["parameters"])
            except KeyboardInterrupt:
                entry.update(state="interrupted", finished=_now(), seconds=round(time.monotonic() - began, 1))
                status.update(state="interrupted", error=f"{notebook.name}: interrupted")
                write_json(status, run_dir / STATUS_FILE)
                self.say(" interrupted")
                raise
            except Exception as exc:  # any failure of one language is recorded, and the batch goes on
                ok = False
                error = describe_error(exc)
                entry.update(state="failed", error=error)
                status["error"] = f"{notebook.name} {error} (see {run_dir / entry['output']})"
                self.say(f" FAILED after {time.monotonic() - began:.1f} s: {error}")
            else:
                entry["state"] = "ok"
                self.say(f" ok ({time.monotonic() - began:.1f} s)")
            entry.update(finished=_now(), seconds=round(time.monotonic() - began, 1))
            write_json(status, run_dir / STATUS_FILE)
        status.update(state="ok" if ok else "failed", finished=_now())
        status["seconds"] = round(sum(e.get("seconds", 0) for e in entries.values()
                                      if isinstance(e, dict) and e.get("state") in ("ok", "failed")), 1)
        status["notebooks"] = status.pop("notebooks")  # keep the per-notebook details last in the file
        write_json(status, run_dir / STATUS_FILE)
        return ok

    def execute(self, notebook: Notebook, run_dir: Path, params: dict[str, Any]) -> None:
        import papermill

        log = run_dir / RUN_LOG
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"--- {_now()} {notebook.name}\n")
        # papermill's and nbclient's own messages ("Kernel died ...") go to the log file, not between our lines
        logger = logging.getLogger("papermill")
        handler = logging.FileHandler(log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("[papermill] %(levelname)s | %(message)s"))
        saved = logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            papermill.execute_notebook(
                str(notebook.path),
                str(run_dir / f"{notebook.name}.ipynb"),
                parameters=params,
                kernel_name=self.kernel,
                cwd=str(notebook.path.parent),
                progress_bar=False,
                log_output=False,
                kernel_manager_class=_kernel_manager_class(log),
            )
        finally:
            logger.removeHandler(handler)
            handler.close()
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


def build_batch(args: argparse.Namespace, write: Callable[..., None] = print) -> Batch:
    """Check every input (config, languages, parameters, notebooks, kernel) before anything runs."""
    config = load_config(args.config) if args.config else Config()
    cli = parse_sets(args.set)
    for name in ("dataset", "model"):
        value = getattr(args, name)
        if value is not None:
            cli[name] = value
    check_parameters(cli, "command line")
    if args.languages:
        languages = [check_language(code, "--languages") for code in args.languages]
    elif config.languages:
        languages = list(config.languages)
    else:
        languages = list(DEFAULT_LANGUAGES)
    languages = list(dict.fromkeys(languages))
    notebooks = find_notebooks(args.notebooks_dir, args.notebooks)
    kernel = args.kernel or config.kernel or DEFAULT_KERNEL
    check_kernel(kernel)
    # absolute: papermill starts each kernel in the notebooks folder, where a relative path means something else
    return Batch(languages=languages, notebooks=notebooks, runs=Path(args.runs).resolve(), config=config, cli=cli,
                 kernel=kernel, force=args.force, write=write)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.batch",
        description="Run notebooks 00 -> 05 headless for several languages and compare them.",
        epilog="Example: python -m tools.batch --languages es de --set max_steps=20",
    )
    p.add_argument("--languages", nargs="+", metavar="CODE",
                   help='Common Voice locale codes, e.g. es de fr (default: the config\'s, else "es")')
    p.add_argument("--dataset", help='"sample", a Common Voice locale or release folder, or a Hub dataset id')
    p.add_argument("--model", help='a local model folder or a Hub id (default "models/whisper-base")')
    p.add_argument("--runs", default="runs", help="output folder, one sub-folder per language (default: runs)")
    p.add_argument("--config", help="YAML file with defaults and per-language parameters (see configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a notebook parameter for every language, e.g. --set max_steps=20 (repeatable)")
    p.add_argument("--force", action="store_true", help="run every notebook again, even those that finished")
    p.add_argument("--notebooks", nargs="+", metavar="NN", help="run only these notebooks, e.g. 00 01")
    p.add_argument("--notebooks-dir", default=str(DEFAULT_NOTEBOOKS_DIR),
                   help="folder holding the NN_*.ipynb notebooks (default: the repository's notebooks/)")
    p.add_argument("--kernel", help=f"Jupyter kernel name (default: the config's, else {DEFAULT_KERNEL})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        batch = build_batch(args)
        return batch.run()
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
