"""The batch runner (tools.batch) and its report (tools.summary).

Runs through the real papermill and a real kernel, on two tiny notebooks written to a temporary folder, so the
tests stay fast and do not depend on the curriculum notebooks.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.files import write_json
from tools import batch, summary
from tools.batch import BatchError, Config

KERNEL = "python3"  # the venv's own kernel: always present where the tests run

PREPARE = '''import json, pathlib
run = pathlib.Path(run_dir)
run.mkdir(parents=True, exist_ok=True)
clips = {"es": 40, "de": 30}.get(language, 10)
report = {"splits": {"train": {"clips": clips, "hours": 0.05}, "dev": {"clips": 10, "hours": 0.01},
                     "test": {"clips": 10, "hours": 0.01}}, "dataset": dataset}
(run / "data_report.json").write_text(json.dumps(report))
print("prepared", language)'''

TRAIN = '''import json, pathlib
if language == "de":
    raise RuntimeError(f"no training data for {language}")
run = pathlib.Path(run_dir)
(run / "training.json").write_text(json.dumps({"train_seconds": 12.5, "max_steps": max_steps}))
scores = {"wer_orthographic": 30.0, "cer": 8.0, "rtfx": 20.0, "device": "cpu"}
results = {"wer": 40.0 / max_steps, **scores, "baseline": {"wer": 40.0, **scores}}
(run / "results.json").write_text(json.dumps(results))
print("trained", language)'''

# A "=" inside a comment hides a parameter from papermill.inspect_notebook; the runner still sees it.
TRAIN_PARAMETERS = 'language = "es"  # locale\nrun_dir = "runs/es"  # outputs\nmax_steps = 1  # steps (0 = none)'
TRAIN_FIXED = TRAIN.replace('if language == "de":', 'if language == "xx":')


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebooks_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_prepare.ipynb",
                   'language = "es"  # locale\ndataset = "sample"  # data\nrun_dir = "runs/es"  # outputs', PREPARE)
    write_notebook(folder / "01_train.ipynb",
                   TRAIN_PARAMETERS,
                   TRAIN)
    (folder / "notes.ipynb").write_text("not a numbered notebook, never run")
    return folder


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("text", [
    "languages:\n  es: {}\n  no: {max_steps: 3}\n",
    "languages: [es, no]\n",
    "languages:\n  off: {}\n",
])
def test_unquoted_yaml_boolean_language_is_refused_clearly(tmp_path, text):
    path = write_yaml(tmp_path, text)
    with pytest.raises(BatchError) as info:
        batch.load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "boolean" in message and "Norwegian" in message and 'Quote' in message


def test_quoted_language_codes_and_defaults(tmp_path):
    path = write_yaml(tmp_path, 'dataset: cv11\nmax_steps: 5\nkernel: other\nlanguages:\n'
                                '  "no": {max_steps: 3}\n  "zh-CN":\n  "es": {}\n')
    config = batch.load_config(path)
    assert config.languages == {"no": {"max_steps": 3}, "zh-CN": {}, "es": {}}
    assert config.defaults == {"dataset": "cv11", "max_steps": 5}
    assert config.kernel == "other"
    assert list(batch.load_config(write_yaml(tmp_path, 'languages: ["no", "tr"]\n')).languages) == ["no", "tr"]


@pytest.mark.parametrize("text, expected", [
    ("- es\n- de\n", "expected a mapping"),
    ("languages: es de\n", "must be a list"),
    ('languages:\n  "es": 12\n', "parameter overrides"),
    ("run_dir: out\n", "set by the runner"),
    ('languages:\n  "es": {language: de}\n', "set by the runner"),
    ("hf_token: abc\n", "tokens must never be notebook parameters"),
    ('languages:\n  "es": {auth_token: abc}\n', "tokens must never be notebook parameters"),
    ("model: hf_abcdefghijklmnopqrstuvwxyz\n", "looks like a Hugging Face token"),
    ("seed: 2024-01-01\n", "is a date"),
    ("languages: [12]\n", "must be strings"),
    ('languages: ["e s"]\n', "not a language code"),
    ("languages: [es\n", "not valid YAML"),
])
def test_bad_config_says_what_and_where(tmp_path, text, expected):
    path = write_yaml(tmp_path, text)
    with pytest.raises(BatchError, match=expected) as info:
        batch.load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(BatchError, match="cannot read config file"):
        batch.load_config(tmp_path / "absent.yaml")


def test_set_values_are_typed_without_the_yaml_boolean_trap():
    values = batch.parse_sets(["max_steps=20", "learning_rate=1e-5", "fp16=true", "name=no", "tags=[1, 2]",
                               "seed=null", "max_new_tokens=128", "tokenizer=models/x", "note=a=b"])
    assert values == {"max_steps": 20, "learning_rate": 1e-5, "fp16": True, "name": "no", "tags": [1, 2],
                      "seed": None, "max_new_tokens": 128, "tokenizer": "models/x", "note": "a=b"}
    assert isinstance(values["max_steps"], int) and isinstance(values["learning_rate"], float)
    with pytest.raises(BatchError, match="KEY=VALUE"):
        batch.parse_sets(["max_steps"])
    with pytest.raises(BatchError, match="refusing parameter 'HF_TOKEN'"):
        batch.parse_sets(["HF_TOKEN=abc"])
    with pytest.raises(BatchError, match="set by the runner"):
        batch.parse_sets(["language=de"])


# ------------------------------------------------------------------------------------------------ parameters


def test_each_notebook_gets_only_the_parameters_it_declares(notebooks_dir, tmp_path):
    notebooks = batch.find_notebooks(notebooks_dir)
    assert [n.name for n in notebooks] == ["00_prepare", "01_train"]
    assert notebooks[0].parameters == ("language", "dataset", "run_dir")
    assert notebooks[1].parameters == ("language", "run_dir", "max_steps")

    params = batch.language_parameters("tr", tmp_path / "runs", Config(), {"max_steps": 7, "batch_size": 4})
    first = batch.notebook_parameters(notebooks[0], params)
    second = batch.notebook_parameters(notebooks[1], params)
    run_dir = str(tmp_path / "runs" / "tr")
    assert first == {"language": "tr", "dataset": "sample", "run_dir": run_dir}
    assert second == {"language": "tr", "run_dir": run_dir, "max_steps": 7}


def test_declared_parameters_are_read_with_the_python_parser(tmp_path):
    path = write_notebook(tmp_path / "00_x.ipynb", 'a = 1  # 0 = off\nb: int = 2\nc, d = 3, 4\n# e = 5\nf = {"k": 1}',
                          "print(a)")
    assert batch.declared_parameters(path) == ("a", "b", "c", "d", "f")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, path)
    assert batch.declared_parameters(path) == ()
    (tmp_path / "01_broken.ipynb").write_text("{not a notebook")
    with pytest.raises(BatchError, match="01_broken.ipynb: cannot read the notebook"):
        batch.find_notebooks(tmp_path)


def test_notebook_selection(notebooks_dir):
    assert [n.name for n in batch.find_notebooks(notebooks_dir, ["1"])] == ["01_train"]
    assert [n.name for n in batch.find_notebooks(notebooks_dir, ["01_train", "00"])] == ["00_prepare", "01_train"]
    with pytest.raises(BatchError, match="no such notebook.*00_prepare, 01_train"):
        batch.find_notebooks(notebooks_dir, ["07"])
    with pytest.raises(BatchError, match="no notebooks matching"):
        batch.find_notebooks(notebooks_dir / "missing")


def test_parameter_priority_and_paths(tmp_path, repo_root):
    config = Config(defaults={"model": "config-model", "max_steps": 5},
                    languages={"tr": {"max_steps": 12, "batch_size": 2}})
    tr = batch.language_parameters("tr", Path("runs"), config, {"batch_size": 8})
    es = batch.language_parameters("es", Path("runs"), config, {})
    assert (tr["max_steps"], tr["batch_size"], tr["model"], tr["dataset"]) == (12, 8, "config-model", "sample")
    assert (es["max_steps"], es["language"]) == (5, "es")
    # notebooks run from the repository root (setup()), so paths inside it are passed relative to it
    inside = batch.language_parameters("es", repo_root / "runs", Config(), {"dataset": str(repo_root / "helpers")})
    assert inside["run_dir"] == "runs/es" and inside["dataset"] == "helpers"
    outside = batch.language_parameters("es", tmp_path, Config(), {"dataset": "mozilla/cv"})
    assert outside["run_dir"] == str(tmp_path / "es") and outside["dataset"] == "mozilla/cv"


# --------------------------------------------------------------------------------------------- skip / resume


def test_plan_skips_finished_notebooks_and_resumes_the_rest(notebooks_dir, tmp_path):
    notebooks = batch.find_notebooks(notebooks_dir)
    run_dir = tmp_path / "runs" / "es"
    run_dir.mkdir(parents=True)
    params = batch.language_parameters("es", tmp_path / "runs", Config(), {"max_steps": 2})
    for n in notebooks:
        (run_dir / f"{n.name}.ipynb").write_text("{}")

    def status(*states, steps=2):
        entries = {}
        for n, state in zip(notebooks, states):
            p = batch.notebook_parameters(n, {**params, "max_steps": steps})
            entries[n.name] = {"state": state, "parameters": p}
        return {"notebooks": entries}

    def reasons(st, force=False):
        return [reason for _, reason in batch.plan(notebooks, params, st, run_dir, force)]

    assert reasons({}) == ["not run yet", "not run yet"]
    assert reasons(status("ok", "ok")) == [None, None]
    assert reasons(status("ok", "running")) == [None, "interrupted last time: resuming"]
    assert reasons(status("ok", "failed")) == [None, "failed last time"]
    assert reasons(status("ok", "ok", steps=3)) == [None, "parameters changed"]
    assert reasons(status("failed", "ok")) == ["failed last time", "after 00_prepare"]
    assert reasons(status("ok", "ok"), force=True) == ["forced", "forced"]
    (run_dir / "00_prepare.ipynb").unlink()
    assert reasons(status("ok", "ok")) == ["output notebook missing", "after 00_prepare"]


def test_status_is_written_atomically(tmp_path):
    path = tmp_path / "status.json"
    write_json({"state": "ok"}, path)
    write_json({"state": "failed"}, path)
    assert json.loads(path.read_text()) == {"state": "failed"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left behind
    assert batch.read_status(tmp_path / "nowhere") == {"notebooks": {}}


# --------------------------------------------------------------------------------------------------- summary


def test_summary_reads_what_exists_and_leaves_the_rest_empty(tmp_path):
    runs = tmp_path / "runs"
    for name in ("es", "de", "fr", "tr", "en"):
        (runs / name).mkdir(parents=True)
    (runs / "es" / "status.json").write_text(json.dumps({"language": "es", "state": "ok", "seconds": 61.0}))
    (runs / "es" / "data_report.json").write_text(json.dumps(
        {"splits": {"train": {"clips": 40, "hours": 0.05}, "validation": {"clips": 10, "seconds": 36.0},
                    "test": {"clips": 10, "hours": 0.01}, "train+dev": {"clips": 50, "hours": 0.06}}}))
    (runs / "es" / "training.json").write_text(json.dumps({"train_runtime": 3725.0}))
    (runs / "es" / "results.json").write_text(json.dumps(
        {"wer": 30.0, "wer_orthographic": 35.5, "cer": 9.25, "rtfx": 14.0, "device": "cuda",
         "confidence": {"finetuned": {"wer": {"low": 21.5, "high": 38.25}},
                        "wer_difference_finetuned_minus_baseline": {"probability_improved": 0.97}},
         "baseline": {"wer": 40.0, "wer_orthographic": 50.0, "cer": 12.0, "rtfx": 15.0, "device": "cuda"}}))
    (runs / "es" / "export.json").write_text(json.dumps({"int8": {"wer": 31.5, "cer": 9.5, "rtfx": 5.25}}))
    (runs / "de" / "status.json").write_text(json.dumps(
        {"state": "failed", "error": "03_fine_tuning In [7]: RuntimeError: out of memory",
         "notebooks": {"00_environment_check": {"state": "ok"}, "03_fine_tuning": {"state": "failed"}}}))
    (runs / "fr" / "status.json").write_text(json.dumps(
        {"state": "running", "notebooks": {"03_fine_tuning": {"state": "running"}}}))
    (runs / "fr" / "results.json").write_text("{not json")
    (runs / "fr" / "data_report.json").write_text(json.dumps({"train": {"clips": "many"}, "test": {"clips": 5}}))
    (runs / "tr" / "status.json").write_text("[1, 2]")
    (runs / "tr" / "results.json").write_text(json.dumps({"wer": True, "baseline": {"wer": 0}, "cer": "n/a"}))

    (runs / "en" / "status.json").write_text(json.dumps({"state": "ok"}))  # notebook 04 with finetuned="none"
    (runs / "en" / "results.json").write_text(json.dumps(
        {"finetuned": False, "wer": 14.0, "cer": 5.0, "baseline": {"wer": 14.0, "cer": 5.0}}))

    paths = summary.write_summary(runs, ["de", "hi"])
    with open(paths["csv"], newline="") as handle:
        rows = {row["language"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["de", "hi", "en", "es", "fr", "tr"]  # asked order first, then the others found
    es = rows["es"]
    assert es["status"] == "ok" and es["clips"] == "60" and float(es["hours"]) == pytest.approx(0.07)
    assert (float(es["zero_shot_wer"]), float(es["fine_tuned_wer"])) == (40.0, 30.0)
    assert float(es["relative_wer_improvement_pct"]) == pytest.approx(25.0)
    assert (es["wer_orthographic"], es["cer"], es["rtfx"], es["device"]) == ("35.5", "9.25", "14.0", "cuda")
    assert (es["train_seconds"], es["run_seconds"]) == ("3725.0", "61.0")
    assert (es["int8_wer"], es["int8_rtfx"], rows["en"]["int8_wer"]) == ("31.5", "5.25", "")
    assert (es["fine_tuned_wer_low"], es["fine_tuned_wer_high"], es["probability_fine_tuning_helped"]) \
        == ("21.5", "38.25", "0.97")
    assert rows["en"]["fine_tuned_wer_low"] == "" and rows["tr"]["probability_fine_tuning_helped"] == ""
    assert rows["de"]["status"] == "failed (03_fine_tuning)" and "out of memory" in rows["de"]["error"]
    assert rows["de"]["zero_shot_wer"] == "" and rows["de"]["clips"] == ""
    assert rows["hi"]["status"] == "not run"
    assert rows["fr"]["status"] == "interrupted (03_fine_tuning)" and rows["fr"]["clips"] == "5"
    assert rows["fr"]["fine_tuned_wer"] == ""
    en = rows["en"]
    assert (en["zero_shot_wer"], en["fine_tuned_wer"], en["relative_wer_improvement_pct"], en["cer"]) \
        == ("14.0", "", "", "5.0")
    tr = rows["tr"]  # unreadable status, a boolean WER, a zero baseline: empty cells, no division by zero
    assert (tr["status"], tr["fine_tuned_wer"], tr["zero_shot_wer"], tr["relative_wer_improvement_pct"], tr["cer"]) \
        == ("not run", "", "0", "", "")

    md = paths["md"].read_text()
    assert ("| es | ok | 60 | 0.070 | 40.0 | 30.0 | +25.0 | 21.5 | 38.2 | 0.97 | 35.5 | 9.2 | 14.0 | 31.5 | 5.2 | 1:02:05 "
            "| cuda |") in md
    assert "- **de**: 03_fine_tuning In [7]: RuntimeError: out of memory" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_an_empty_runs_folder(tmp_path):
    paths = summary.write_summary(tmp_path / "runs")
    assert paths["csv"].read_text().splitlines() == [",".join(summary.COLUMNS)]
    assert paths["png"].stat().st_size > 0


# ----------------------------------------------------------------------- real runs through papermill + kernel


def run_batch(notebooks_dir: Path, runs: Path, languages: list[str], **kwargs) -> tuple[int, list[str]]:
    lines: list[str] = []
    pending: list[str] = []

    def write(text="", end="\n", flush=True):
        pending.append(text)
        if end == "\n":
            lines.extend("".join(pending).splitlines() or [""])
            pending.clear()

    job = batch.Batch(languages=languages, notebooks=batch.find_notebooks(notebooks_dir), runs=runs,
                      kernel=KERNEL, write=write, **kwargs)
    return job.run(), lines


def progress(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("[")]


def test_a_failing_language_does_not_stop_the_others_and_resumes(notebooks_dir, tmp_path):
    runs = tmp_path / "runs"
    code, lines = run_batch(notebooks_dir, runs, ["de", "es"], cli={"max_steps": 4})
    assert code == 1
    steps = progress(lines)
    assert len(steps) == 4, lines  # one line per notebook, nothing else from the kernels or papermill
    assert steps[0].startswith("[0:00:") and "de 1/2 00_prepare ... ok (" in steps[0]
    assert "de 2/2 01_train ... FAILED" in steps[1] and "RuntimeError: no training data for de" in steps[1]
    assert steps[3].endswith("s)") and "es 2/2 01_train ... ok" in steps[3]
    assert lines[-1].startswith("failed: de")

    de = json.loads((runs / "de" / "status.json").read_text())
    assert de["state"] == "failed" and "no training data for de" in de["error"]
    assert de["notebooks"]["00_prepare"]["state"] == "ok"
    assert de["notebooks"]["01_train"]["state"] == "failed"
    assert de["notebooks"]["01_train"]["seconds"] > 0
    failed_nb = (runs / "de" / "01_train.ipynb").read_text()  # the failed notebook is kept
    assert "no training data for de" in failed_nb
    es = json.loads((runs / "es" / "status.json").read_text())
    assert es["state"] == "ok" and es["notebooks"]["01_train"]["parameters"]["max_steps"] == 4
    assert "max_steps" not in es["notebooks"]["00_prepare"]["parameters"]

    with open(runs / "summary.csv", newline="") as handle:
        rows = {row["language"]: row for row in csv.DictReader(handle)}
    assert rows["es"]["status"] == "ok" and float(rows["es"]["fine_tuned_wer"]) == 10.0  # 40 / max_steps
    assert rows["es"]["clips"] == "60" and rows["es"]["train_seconds"] == "12.5"
    assert rows["de"]["status"] == "failed (01_train)" and rows["de"]["clips"] == "50"
    assert (runs / "summary.md").exists() and (runs / "summary.png").exists()

    # Fix the notebook and run again: es is skipped, de starts again at the notebook that failed.
    write_notebook(notebooks_dir / "01_train.ipynb",
                   TRAIN_PARAMETERS,
                   TRAIN_FIXED)
    es_output = (runs / "es" / "01_train.ipynb").stat().st_mtime_ns
    code, lines = run_batch(notebooks_dir, runs, ["de", "es"], cli={"max_steps": 4})
    assert code == 0, lines
    steps = progress(lines)
    assert "de 1/2 00_prepare: skipped" in steps[0]
    assert "de 2/2 01_train (failed last time) ... ok" in steps[1]
    assert "es: all 2 notebook(s) finished earlier" in steps[2] and len(steps) == 3
    assert (runs / "es" / "01_train.ipynb").stat().st_mtime_ns == es_output
    assert json.loads((runs / "de" / "status.json").read_text())["state"] == "ok"

    # A run killed during a notebook leaves it "running": the next run resumes there.
    status = json.loads((runs / "es" / "status.json").read_text())
    status["state"] = "running"
    status["notebooks"]["01_train"]["state"] = "running"
    (runs / "es" / "status.json").write_text(json.dumps(status))
    assert summary.language_row(runs / "es")["status"] == "interrupted (01_train)"
    code, lines = run_batch(notebooks_dir, runs, ["es"], cli={"max_steps": 4})
    steps = progress(lines)
    assert code == 0 and len(steps) == 2
    assert "00_prepare: skipped" in steps[0] and "01_train (interrupted last time: resuming) ... ok" in steps[1]


def test_command_line(notebooks_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --runs relative to where the command runs, as `make demo` passes it
    runs = tmp_path / "runs"
    config = write_yaml(tmp_path, 'dataset: mine\nlanguages:\n  "tr": {}\n')
    code = batch.main(["--config", str(config), "--notebooks-dir", str(notebooks_dir), "--runs", "runs",
                       "--kernel", KERNEL, "--notebooks", "00", "--set", "batch_size=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "note: no selected notebook declares batch_size; not passed" in out
    assert "tr 1/1 00_prepare ... ok" in out
    assert json.loads((runs / "tr" / "data_report.json").read_text())["dataset"] == "mine"
    assert not (runs / "tr" / "01_train.ipynb").exists()

    code = batch.main(["--languages", "es", "--notebooks-dir", str(notebooks_dir), "--runs", str(runs),
                       "--kernel", "no-such-kernel"])
    assert code == 2
    assert "no Jupyter kernel named 'no-such-kernel'" in capsys.readouterr().err


def test_module_entry_point_reports_bad_config(tmp_path, repo_root):
    config = write_yaml(tmp_path, "languages:\n  es: {}\n  no: {}\n")
    result = subprocess.run([sys.executable, "-m", "tools.batch", "--config", str(config)],
                            cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {config}: languages: a language code was read as the boolean False")
    assert "Traceback" not in result.stderr
