"""The evaluation pipeline: which model to evaluate, the per-clip table and its flags, results.json,
predictions.csv, the model card, and one real end-to-end run with the small English model."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re

import pandas as pd
import pytest
import yaml

from helpers import evaluation as E
from helpers import metrics as M
from helpers import playground as PG
from helpers.card import SECTION_START, update_model_card, write_model_card
from helpers.normalize import eval_normalizer


def simple_norm(text: str) -> str:
    return re.sub(r"[^\w\s]", "", text.lower())


def make_run(label, predictions, references, model_name="models/whisper-base", language="es", rtfx=10.0):
    """An EvalRun built by hand (what evaluate_model returns, without running a model)."""
    clips = [{"index": i, "path": f"clip{i}.mp3", "client_id": "", "duration": 2.0, "reference": r}
             for i, r in enumerate(references)]
    return E.EvalRun(label=label, model_name=model_name, language=language, clips=clips, predictions=predictions,
                     metrics=M.compute_metrics(references, predictions, simple_norm),
                     speed={"rtfx": rtfx, "audio_seconds": 2.0 * len(references), "compute_seconds": 0.2 * len(references),
                            "batch_size": 4, "device": "cpu", "dtype": "float32", "num_clips": len(references)},
                     normalizer=simple_norm)


REFS = [
    "El perro come en la casa.",          # 0: correct
    "Hola, ¿qué tal?",                    # 1: empty prediction
    "y luego fuimos al mercado",          # 2: looping
    "Buenos días",                        # 3: far too long
    "el perro de los vecinos está en el jardín",  # 4: English instead of Spanish
    "¿?",                                 # 5: empty once normalised: not scored
    "gracias",                            # 6: written in another script
]
BASELINE = [
    "el perro come en la casa",
    "",
    "y luego y luego y luego y luego y luego",
    "buenos días gracias por ver el vídeo y suscríbete al canal",
    "the neighbours dog is in the garden",
    "algo",
    "грасиас",
]
TUNED = [
    "El perro come en la casa.",
    "Hola, ¿qué tal?",
    "y luego fuimos al mercado",
    "Buenos días",
    "el perro de los vecinos está en el jardín",
    "",
    "gracias",
]


def test_clip_table_flags_each_detector_on_its_clip():
    run = make_run("baseline", BASELINE, REFS)
    table = run.table()
    assert list(table["index"]) == list(range(7))
    flagged = {flag: [int(i) for i in table.loc[table[flag], "index"]] for flag in E.FLAGS}
    assert flagged == {"empty_prediction": [1], "repetition": [2], "too_long": [3], "wrong_language": [4],
                       "wrong_script": [6]}
    assert table.loc[0, "wer"] == 0.0
    assert math.isnan(table.loc[5, "wer"])  # empty reference: no WER
    assert table.loc[1, "reference_normalized"] == "hola qué tal"
    assert table.loc[1, "wer"] == pytest.approx(100.0)
    summary = E.error_summary(run)
    assert {k: summary[k] for k in E.FLAGS} == {k: 1 for k in E.FLAGS}
    assert summary["reference_words"] == 6 + 3 + 5 + 2 + 9 + 1  # clip 5 is not scored


def test_confusions_worst_clips_and_flag_listing(capsys):
    run = make_run("baseline", BASELINE, REFS)
    table = run.table()
    found = E.top_confusions(table, k=50)
    assert {("hola", 1), ("qué", 1), ("tal", 1)} <= set(found["deletions"])  # clip 1 came out empty
    assert ("gracias", "грасиас", 1) in found["substitutions"]
    summary = E.error_summary(run)
    assert sum(n for _, _, n in found["substitutions"]) == summary["substitutions"]
    assert sum(n for _, n in found["insertions"]) == summary["insertions"]
    assert [n for _, n in found["insertions"]] == sorted((n for _, n in found["insertions"]), reverse=True)
    assert len(E.top_confusions(table, k=2)["insertions"]) == 2
    text = E.format_confusions(found)
    assert text.startswith("Substitutions (reference -> prediction):")
    worst = E.worst_clips(table, k=2)
    assert list(worst["index"]) == [3, 2]  # 3: 9 words inserted after 2 = 450%; 2: 3 S + 5 I over 5 = 160%
    assert E.flagged_clips(table, "wrong_script") == ["#6    'gracias' => 'грасиас'"]
    with pytest.raises(ValueError, match="unknown flag"):
        E.flagged_clips(table, "typo")
    blocks = E.show_worst_clips(table, k=1, headless=True)
    out = capsys.readouterr().out
    assert out.startswith("clip #3 (clip3.mp3), WER 450%") and "REF: buenos días" in out and blocks


def test_flagged_lines_are_cut_and_normaliser_note():
    table = make_run("baseline", ["hola " * 100], ["hola"]).table()
    (line,) = E.flagged_clips(table, "repetition", max_chars=20)
    assert line == "#0    'hola' => 'hola hola hola hola…'"
    hindi = E.normalizer_note(["दूध में हल्दी मिलाकर पीने से सर्दी ठीक होती है।"], eval_normalizer("hi"), "Basic")
    assert hindi.startswith("Warning: Basic deletes the combining marks") and "1.8 words" in hindi
    assert E.normalizer_note(["¡Hola, Mundo!"], eval_normalizer("es"), "Basic") == (
        "Basic: 1.00 words after normalising for each word before (words stay whole).")


def test_comparison_rows_and_relative_improvement():
    base, tuned = make_run("baseline", BASELINE, REFS), make_run("fine-tuned", TUNED, REFS, "runs/es/model")
    rows = E.comparison_rows([base, tuned])
    assert rows[0]["relative WER improvement %"] == ""
    assert tuned.metrics["wer"] == 0.0
    assert rows[1]["relative WER improvement %"] == "+100.0"
    assert rows[1]["WER %"] == "0.00" and rows[1]["clips"] == 6
    speed = E.speed_rows([base, tuned])
    assert speed[0]["RTFx"] == "10.00" and speed[0]["device"] == "cpu"


def test_results_json_and_predictions_csv(tmp_path):
    base, tuned = make_run("baseline", BASELINE, REFS), make_run("fine-tuned", TUNED, REFS, "elsewhere/model")
    results = E.write_outputs(tmp_path, base, tuned, language="es", dataset="sample", split="test",
                              normalizer_name="BasicTextNormalizer", num_skipped=2)
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(results))
    assert saved["language"] == "es" and saved["whisper_language"] == "spanish"
    assert saved["dataset"] == "sample" and saved["split"] == "test" and saved["finetuned"] is True
    assert saved["model"] == "elsewhere/model" and saved["baseline"]["model"] == "models/whisper-base"
    assert saved["num_samples"] == 6 and saved["num_empty_references"] == 1 and saved["num_skipped"] == 2
    assert saved["wer"] == 0.0 and saved["baseline"]["wer"] == pytest.approx(base.metrics["wer"], abs=0.005)
    assert 0 <= saved["cer"] <= 100 and saved["rtfx"] == 10.0 and saved["device"] == "cpu"
    assert saved["relative_wer_improvement"] == 100.0
    assert saved["baseline"]["errors"]["repetition"] == 1 and saved["errors"]["repetition"] == 0

    frame = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert len(frame) == 7
    for column in ("path", "reference", "prediction", "reference_normalized", "prediction_normalized", "wer",
                   "baseline_prediction", "baseline_wer", *E.FLAGS):
        assert column in frame.columns
    assert frame.loc[1, "baseline_prediction"] == "" and frame.loc[1, "prediction"] == "Hola, ¿qué tal?"
    assert frame.loc[5, "wer"] == ""  # not scored
    # each model's per-clip table is built once and shared; writing predictions.csv did not change it
    scripts = M.expected_scripts(base.references)
    assert tuned.table(scripts) is tuned.table(scripts) and "baseline_prediction" not in tuned.table(scripts)


def test_results_without_a_finetuned_model(tmp_path):
    base = make_run("baseline", BASELINE, REFS)
    results = E.write_outputs(tmp_path, base, None, language="es", dataset="sample", split="test",
                              normalizer_name="BasicTextNormalizer")
    assert results["finetuned"] is False and results["model"] == "models/whisper-base"
    assert results["wer"] == results["baseline"]["wer"] and results["relative_wer_improvement"] is None
    assert "baseline_prediction" not in pd.read_csv(tmp_path / "predictions.csv").columns


def _front_matter(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_model_card_gets_the_results(tmp_path):

    model_dir = tmp_path / "es" / "model"
    model_dir.mkdir(parents=True)
    write_model_card(model_dir, base_model="openai/whisper-base", dataset="sample", language="es",
                     metrics={"wer": 50.0, "wer_orthographic": 60.0}, eval_split="test")
    base, tuned = make_run("baseline", BASELINE, REFS), make_run("fine-tuned", TUNED, REFS, str(model_dir))
    for _ in range(2):  # a second evaluation replaces the first one's results instead of adding to them
        results = E.write_outputs(tmp_path / "es", base, tuned, language="es", dataset="sample", split="test",
                                  normalizer_name="BasicTextNormalizer")
    meta, text = _front_matter(model_dir / "README.md")
    entries = meta["model-index"][0]["results"]
    metrics = [m for entry in entries for m in entry["metrics"]]
    by_name = {m["name"]: m["value"] for m in metrics}
    assert by_name == {"WER (normalised, %)": results["wer"], "WER (orthographic, %)": results["wer_orthographic"],
                       "CER (normalised, %)": results["cer"]}
    assert entries[0]["dataset"]["config"] == "es" and entries[0]["dataset"]["split"] == "test"
    assert meta["language"] == "es" and meta["base_model"] == "openai/whisper-base"  # notebook 03's fields kept
    assert text.count(SECTION_START) == 1 and "Relative WER improvement over zero-shot: 100.0%" in text
    interval = results["confidence"]["finetuned"]["wer"]
    assert f"95% bootstrap interval of this model's WER: {interval['low']:.1f} to {interval['high']:.1f}%" in text
    assert "fine-tuning helped in 100% of the paired draws" in text  # every fine-tuned transcript is right
    assert "## Training" in text


def test_model_card_is_created_when_missing(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    results = {"language": "tr", "dataset": "/data/cv/tr", "split": "dev", "num_samples": 3, "wer": 12.5,
               "wer_orthographic": 20.0, "cer": 4.0, "finetuned": True, "normalizer": "BasicTextNormalizer",
               "relative_wer_improvement": None, "baseline": None}
    update_model_card(model_dir, results)
    meta, _ = _front_matter(model_dir / "README.md")
    entry = meta["model-index"][0]["results"][0]
    assert entry["dataset"]["name"] == "tr" and entry["dataset"]["split"] == "dev"
    assert {m["type"] for m in entry["metrics"]} == {"wer", "cer"}


def test_resolve_finetuned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert E.resolve_finetuned("", "runs/es")[0] is None
    assert "does not exist yet" in E.resolve_finetuned("", "runs/es")[1]
    (tmp_path / "runs/es/model").mkdir(parents=True)
    (tmp_path / "runs/es/model/config.json").write_text("{}")
    assert E.resolve_finetuned("", "runs/es")[0] == "runs/es/model"
    assert E.resolve_finetuned("none", "runs/es")[0] is None
    assert E.resolve_finetuned("openai/whisper-small", "runs/es")[0] == "openai/whisper-small"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        E.resolve_finetuned("runs/tr/model", "runs/es")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="without config.json"):
        E.resolve_finetuned("empty", "runs/es")


def test_first_clips():
    import datasets

    ds = datasets.Dataset.from_dict({"sentence": list("abcde")})
    assert list(E.first_clips(ds, 2)["sentence"]) == ["a", "b"]
    assert len(E.first_clips(ds, None)) == 5 and len(E.first_clips(ds, 0)) == 5 and len(E.first_clips(ds, 50)) == 5
    assert [r["sentence"] for r in E.first_clips(ds.to_iterable_dataset(), 3)] == ["a", "b", "c"]
    stream = ds.to_iterable_dataset()
    assert E.first_clips(stream, None) is stream
    assert E.first_clips(iter([1, 2, 3]), 2) == [1, 2]
    with pytest.raises(ValueError, match="max_eval_samples"):
        E.first_clips(ds, -1)


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_run(tiny_en_dir, sample_root):
    from helpers.data import load_split

    clips = E.first_clips(load_split("sample", "en", "test"), 2)
    run = E.evaluate_model(str(tiny_en_dir), clips, "en", eval_normalizer("en"), batch_size=2, label="baseline")
    return run, clips


def test_evaluate_model_end_to_end(tiny_run):
    run, clips = tiny_run
    assert run.references == list(clips["sentence"]) and len(run.predictions) == 2
    assert all(run.predictions)
    assert run.metrics["num_samples"] == 2 and 0 <= run.metrics["wer"] < 80
    assert run.metrics["wer_orthographic"] >= run.metrics["wer"]
    assert run.speed["rtfx"] > 0 and run.speed["batch_size"] == 2 and run.speed["num_clips"] == 2
    assert [c["duration"] for c in run.clips] == pytest.approx([float(d) for d in clips["duration"]])
    assert [c["path"] for c in run.clips] == list(clips["path"])


def test_transcriber_headless_prints_one_transcription(tiny_run, capsys):
    run, clips = tiny_run
    tuned = dataclasses.replace(run, label="fine-tuned")  # same model under another name
    texts = PG.transcriber([run, tuned], clips, "en", headless=True)
    out = capsys.readouterr().out
    # one transcription: the first clip by the evaluated (last) model, as in the batched evaluation
    assert out.splitlines() == [f"clip #0 reference: {clips[0]['sentence']}", f" fine-tuned: {run.predictions[0]}"]
    assert texts == {"fine-tuned": run.predictions[0]}


STAMP = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def test_transcriber_widget_clip_and_upload(tiny_run, capsys, sample_root):
    run, clips = tiny_run
    box = PG._transcriber_widget([run], clips, "en")
    (pick, upload), which, button, _ = box.children[0].children, *box.children[1:]
    assert pick.options[1] == (f"#1: {clips[1]['sentence']}", 1) and which.value == "baseline"
    capsys.readouterr()
    pick.value = 1
    button.click()
    shown = capsys.readouterr().out
    assert "test clip #1" in shown and f"reference: {clips[1]['sentence']}" in shown
    assert f"baseline: {run.predictions[1]}" in shown  # same text as in the batched evaluation
    mp3 = (sample_root / "en" / "clips" / clips[0]["path"]).read_bytes()
    upload.value = ({"name": "mine.mp3", "type": "audio/mpeg", "size": len(mp3), "content": memoryview(mp3),
                     "last_modified": STAMP},)
    button.click()
    shown = capsys.readouterr().out
    assert "uploaded mine.mp3" in shown and f"baseline: {run.predictions[0]}" in shown
    upload.value = ({"name": "broken.mp3", "type": "audio/mpeg", "size": 3, "content": memoryview(b"abc"),
                     "last_modified": STAMP},)
    button.click()
    shown = capsys.readouterr().out  # a clear message, not a traceback, and nothing transcribed
    assert "broken.mp3: corrupt or unsupported audio" in shown and "uploaded" not in shown


def test_worst_clips_with_players(tiny_run, capsys):
    run, clips = tiny_run
    blocks = E.show_worst_clips(run.table(), clips, k=2, headless=False)
    out = capsys.readouterr().out
    assert len(blocks) == 2 and "REF:" in out and "VBox" in out  # the players' box was displayed


def test_transcripts_are_written_window_by_window(tiny_en_dir, tmp_path, monkeypatch):
    from helpers.data import load_split

    stream = load_split("sample", "en", "test", streaming=True)  # a whole split is read as a stream
    seen = []
    original = E.transcribe

    def spy(*args, **kwargs):  # what is on disk each time a window is done
        inner = kwargs["on_window"]
        kwargs["on_window"] = lambda texts: (inner(texts), seen.append(len(path.read_text().splitlines())))
        return original(*args, **kwargs)

    monkeypatch.setattr(E, "transcribe", spy)
    path = tmp_path / "transcripts" / "baseline.csv"
    run = E.evaluate_model(str(tiny_en_dir), E.first_clips(stream, 3), "en", eval_normalizer("en"), batch_size=1,
                           transcripts=path, warmup=False)
    assert seen == [4]  # one window of three clips (16 batches to a window), header included, written at once
    rows = pd.read_csv(path, keep_default_na=False)
    assert list(rows["prediction"]) == run.predictions and list(rows["reference"]) == run.references
    assert list(rows["index"]) == [0, 1, 2]


def test_command_line(tiny_en_dir, tmp_path, capsys):
    from tools.evaluate import main

    code = main(["--language", "en", "--model", str(tiny_en_dir), "--run-dir", str(tmp_path), "--finetuned",
                   "none", "--max-eval-samples", "1", "--batch-size", "1"])
    assert code == 0
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["num_samples"] == 1 and saved["finetuned"] is False and saved["normalizer"] == "EnglishTextNormalizer"
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 1
    assert "none asked for" in capsys.readouterr().out
