"""Tests for helpers/explore.py (notebook 01) and helpers/widgets.py (shared display helpers)."""

from __future__ import annotations

import unicodedata
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Dataset

from helpers import explore as ex
from helpers.data import load_capped
from helpers import widgets


def _rows(sentences, speakers=None, seconds=1.0):
    speakers = speakers or [f"spk{i}" for i in range(len(sentences))]
    return [{"audio": {"array": np.zeros(int(16000 * seconds), dtype=np.float32), "sampling_rate": 16000},
             "sentence": s, "client_id": c, "path": f"clip{i}.mp3", "duration": seconds}
            for i, (s, c) in enumerate(zip(sentences, speakers))]


@pytest.fixture(scope="module")
def tokenizer(base_dir):
    from transformers import WhisperTokenizerFast

    tok = WhisperTokenizerFast.from_pretrained(str(base_dir))
    tok.set_prefix_tokens(language="spanish", task="transcribe")
    return tok


# ----------------------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("seconds, text", [(4.25, "4.2 s"), (119.9, "119.9 s"), (750, "12.5 min"),
                                           (7200, "2.00 h"), (36000, "10.00 h")])
def test_format_duration(seconds, text):
    assert ex.format_duration(seconds) == text


def test_split_summary_and_durations_without_a_duration_column():
    rows = _rows(["a", "b", "c"], speakers=["x", "x", "y"], seconds=2.0)
    for row in rows:
        del row["duration"]
    summary = ex.split_summary(Dataset.from_list(rows))
    assert summary["clips"] == 3 and summary["speakers"] == 2
    assert summary["seconds"] == pytest.approx(6.0) and summary["hours"] == pytest.approx(6 / 3600, abs=1e-4)


def test_split_summary_unknown_speakers_is_none():
    rows = [{"sentence": "a", "duration": 31.0}, {"sentence": "b", "duration": 5.0}]
    summary = ex.split_summary(rows)
    assert summary["speakers"] is None and summary["max_seconds"] == 31.0
    assert ex.count_over(ex.durations(rows), ex.MAX_SECONDS) == 1


def test_token_lengths_count_special_tokens(tokenizer):
    lengths = ex.token_lengths(["", "hola", "hola " * 500], tokenizer)
    # an empty transcript still costs <|startoftranscript|><|es|><|transcribe|><|notimestamps|> ... <|endoftext|>
    assert lengths[0] == 5 and lengths[1] > lengths[0]
    assert lengths[2] > ex.MAX_LABEL_TOKENS and ex.count_over(lengths, ex.MAX_LABEL_TOKENS) == 1
    assert len(ex.token_lengths([], tokenizer)) == 0


def test_histogram_draws_the_limit_even_when_all_values_are_below_it():
    import matplotlib

    matplotlib.use("Agg")
    ax = ex.histogram({"train": [3.0, 4.0], "test": [5.0]}, 30.0, "seconds", "durations")
    assert ax.get_xlim()[1] > 30.0
    assert any(line.get_xdata()[0] == 30.0 for line in ax.get_lines())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train (2)", "test (1)", "limit 30"]


# ---------------------------------------------------------------------------------------------- characters
def test_character_inventory_groups_by_unicode_category():
    inv = ex.character_inventory(["¿Qué tal?", "Café\u00a0con leche, 2 €"])
    assert inv["Lu"] == {"Q": 1, "C": 1}
    assert inv["Po"] == {"?": 1, "¿": 1, ",": 1}
    assert inv["Zs"] == {" ": 4, "\u00a0": 1}
    assert inv["Nd"] == {"2": 1} and inv["Sc"] == {"€": 1}
    assert list(inv) == sorted(inv)


def test_inventory_rows_show_invisible_characters_and_questions():
    inv = ex.character_inventory(["Cafe\u0301\u00a0ok."])
    rows = {r["category"]: r for r in ex.inventory_rows(inv)}
    assert "U+00A0" in rows["Zs"]["characters"] and rows["Zs"]["question"]
    assert "\u25cc\u0301" in rows["Mn"]["characters"] and "NFC" in rows["Mn"]["question"]
    assert rows["Ll"]["question"] == ""
    plain = {r["category"]: r for r in ex.inventory_rows(ex.character_inventory(["a b"]))}
    assert plain["Zs"]["question"] == ""  # ordinary spaces raise no question
    assert rows["Mn"]["meaning"] == "combining mark" and rows["Po"]["meaning"] == "other punctuation"


def test_the_category_table_names_every_unicode_category():
    categories = {unicodedata.category(chr(i)) for i in range(0x110000)}
    assert set(ex.CATEGORIES) == categories - {"Cs"}  # surrogates never occur in text
    assert all(len(fields) == 2 and fields[0] for fields in ex.CATEGORIES.values())


# ------------------------------------------------------------------------------------------------ leaks
def test_overlap_finds_shared_speakers_and_sentences():
    train = _rows(["Hola, mundo.", "Buenos días.", "Adiós."], speakers=["a", "b", "c"])
    test = _rows(["hola mundo", "Otra frase."], speakers=["c", "d"])
    result = ex.overlaps_with_test({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})
    assert result["train"]["speakers"] == 1 and result["train"]["speaker_examples"] == ["c"]
    assert result["train"]["sentences"] == 1 and result["train"]["sentence_examples"] == ["Hola, mundo."]
    assert "test" not in result


def test_leaks_are_reported_with_what_notebook_03_does_not_raised():
    train = _rows(["Hola, mundo.", "Buenos días."], speakers=["ana", "ben"])
    test = _rows(["hola mundo", "Otra frase."], speakers=["ben", "dan"])
    notes = ex.leak_notes(ex.overlaps_with_test({"train": Dataset.from_list(train), "test": Dataset.from_list(test)}))
    assert len(notes) == 2
    assert "1 shared sentences" in notes[0] and "drops these train rows" in notes[0]
    assert "1 shared speakers (e.g. ben)" in notes[1] and "optimistic" in notes[1]
    clean = ex.overlaps_with_test({"train": Dataset.from_list(train[:1]), "test": Dataset.from_list(test[1:])})
    assert ex.leak_notes(clean) == []


def test_overlap_without_speaker_ids_says_unknown():
    result = ex.overlap([{"sentence": "a"}], _rows(["b"]))
    assert result["speakers"] is None and result["sentences"] == 0


def test_sample_keeps_test_speakers_and_sentences_out_of_training(repo_root):
    from helpers.data import load_split

    splits = {name: load_split("sample", "es", name) for name in ("train", "dev", "test")}
    for name, result in ex.overlaps_with_test(splits).items():
        assert result["speakers"] == 0 and result["sentences"] == 0, name


# ------------------------------------------------------------------------------------------ streaming, mixing
def test_first_example_of_a_generator(monkeypatch):
    monkeypatch.setattr(ex, "time", SimpleNamespace(perf_counter=iter([10.0, 12.5]).__next__))  # this module only
    row, seconds = ex.first_example(iter([{"sentence": "x"}, {"sentence": "y"}]))
    assert row == {"sentence": "x"} and seconds == 2.5


def test_restyle_and_bad_casing():
    assert ex.restyle("¿Qué TAL?", "lower") == "¿qué tal?"
    assert ex.restyle("¿Qué TAL?", "plain") == "qué tal"
    assert ex.restyle("¿Qué TAL?", "keep") == "¿Qué TAL?"
    with pytest.raises(ValueError, match="casing must be one of"):
        ex.restyle("x", "upper")


def test_text_column_error_names_what_was_expected():
    with pytest.raises(ValueError, match="no transcript column.*has audio, words"):
        ex.text_column(Dataset.from_list([{"audio": 1, "words": "x"}]))


def test_mix_aligns_schema_and_casing():
    cv = Dataset.from_list(_rows(["Hola, mundo.", "Buenos días.", "Adiós."]))
    other = ex.fleurs_style(Dataset.from_list(_rows(["¿Qué tal?", "Muy bien."])))
    assert other.column_names == ["audio", "transcription"] and other[0]["transcription"] == "qué tal"
    assert ex.casing_profile(other["transcription"])["with_uppercase"] == 0.0

    mixed = ex.mix({"cv": cv, "fleurs": other})
    assert mixed.column_names == ["audio", "sentence", "source"]
    assert list(mixed["source"]) == ["cv", "fleurs", "cv", "fleurs"]  # turns; stops when one runs out
    assert mixed[0]["sentence"] == "Hola, mundo."
    assert isinstance(mixed[0]["audio"]["array"], np.ndarray)

    plain = ex.mix({"cv": cv, "fleurs": other}, casing="plain")
    assert ex.casing_profile(plain["sentence"]) == {"sentences": 4, "with_uppercase": 0.0, "with_punctuation": 0.0}


# ----------------------------------------------------------------------------------------------- skipped
def test_skipped_summary_counts_per_split_and_reason():
    skipped = [{"split": "train", "reason": "empty sentence"}, {"split": "train", "reason": "empty sentence"},
               {"split": "test", "reason": "clip not found"}]
    assert ex.skipped_summary(skipped) == {"train": {"empty sentence": 2}, "test": {"clip not found": 1}}


def test_damaged_copy_makes_the_loader_skip_rows_with_reasons(sample_root, tmp_path):
    from helpers.data import load_split

    folder = ex.damaged_copy(sample_root / "es", tmp_path / "es")
    skipped = []
    ds = load_split(str(folder), "es", "test", skipped=skipped)
    reasons = [item["reason"] for item in skipped]
    assert len(reasons) == 4 and ds.skipped == skipped, reasons
    assert reasons[0] == "bad audio: empty file (0 bytes)" and reasons[1].startswith("missing clip")
    assert reasons[2] == "empty sentence" and reasons[3].startswith("missing field")
    assert [item["row"] for item in skipped] == [2, 3, 4, 5]  # TSV line numbers, header = 1
    assert ds.num_rows == len((sample_root / "es" / "test.tsv").read_text(encoding="utf-8").splitlines()) - 1 - 4


def test_split_report_holds_what_data_report_json_needs(tokenizer):
    rows = _rows(["hola", "adiós"], seconds=31.0)
    report = ex.split_report(Dataset.from_list(rows), tokenizer, [{"split": "train", "reason": "empty sentence"}])
    assert report["clips"] == 2 and report["over_30s"] == 2 and report["over_448_tokens"] == 0
    assert report["skipped"] == 1 and report["skipped_reasons"] == {"empty sentence": 1}


# ----------------------------------------------------------------------------------------------- widgets
def test_is_headless_outside_a_kernel_and_override(monkeypatch):
    monkeypatch.delenv("NOTEBOOK_HEADLESS", raising=False)
    assert widgets.is_headless()  # plain Python, no Jupyter kernel
    monkeypatch.setenv("NOTEBOOK_HEADLESS", "0")
    assert not widgets.is_headless()


def test_show_clips_prints_plain_lines_headless(capsys):
    rows = _rows(["uno", "dos", "tres"], seconds=2.5)
    lines = widgets.show_clips(rows, max_n=2, headless=True)
    assert lines == [" 1. [ 2.5 s, speaker spk0] uno", " 2. [ 2.5 s, speaker spk1] dos"]
    assert capsys.readouterr().out.splitlines() == lines


def test_show_clips_builds_audio_players_when_watched(capsys):
    rows = _rows(["uno"], seconds=0.5)
    lines = widgets.show_clips(rows, max_n=3, headless=False)
    out = capsys.readouterr().out
    assert lines[0] in out and "VBox" in out  # outside a notebook, display() prints the widget's repr


def test_wav_bytes_round_trip():
    import io

    import soundfile as sf

    data = widgets.wav_bytes(np.full(800, 0.5, dtype=np.float32), 16000)
    array, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == 16000 and len(array) == 800 and abs(array.mean() - 0.5) < 1e-3


def test_format_table_aligns_and_cuts():
    text = widgets.format_table([{"a": "x", "b": 1}, {"a": "long" * 30, "b": None}], max_width=10)
    lines = text.splitlines()
    assert lines[0] == "a           b" and lines[1] == "----------  -"
    assert lines[3] == "longlongl…"
    assert widgets.format_table([], ["a"]) == "a\n-"


def test_headless_from_parents_nearest_runner_or_front_end_wins():
    papermill = ".venv/bin/python .venv/bin/papermill notebooks/00.ipynb out.ipynb"
    lab = ".venv/bin/python .venv/bin/jupyter-lab --no-browser"
    assert widgets.headless_from_parents([papermill, "bash", "init"])
    assert widgets.headless_from_parents(["python -m pytest --nbval notebooks/"])
    assert not widgets.headless_from_parents([lab, "python -m pytest tests/test_ui.py"])  # a browser test
    assert not widgets.headless_from_parents(["bash", "init"])


def test_format_mapping():
    assert widgets.format_mapping({"device": "cpu", "memory_gib": None}) == "device      cpu\nmemory_gib  None"
    assert widgets.format_mapping({"a": 1, "bb": 2}, keys=["bb"]) == "bb  2"


# ------------------------------------------------------------------------------------ notebook 01 plumbing
def test_load_capped_streams_only_the_first_rows():
    skipped = []
    full = load_capped("sample", "es", "dev", 0, skipped)
    capped = load_capped("sample", "es", "dev", 3, skipped)
    assert not full.capped and capped.capped and capped.num_rows == 3
    assert list(capped["sentence"]) == list(full["sentence"])[:3]
    assert isinstance(capped[0]["audio"]["array"], np.ndarray) and capped[0]["duration"] == full[0]["duration"]
    roomy = load_capped("sample", "es", "dev", 1000)
    assert not roomy.capped and roomy.num_rows == full.num_rows and skipped == []


def test_load_capped_records_skips_before_the_cap(sample_root, tmp_path):
    folder = ex.damaged_copy(sample_root / "es", tmp_path / "es")
    skipped = []
    ds = load_capped(str(folder), "es", "test", 2, skipped)
    assert ds.num_rows == 2 and len(skipped) == 4 and ds.skipped == skipped  # rows 2-5 broken, then 2 good ones


def test_summary_and_token_rows_use_readable_units():
    rows = ex.summary_rows({"train": {"clips": 10, "seconds": 750.0, "mean_seconds": 75.0, "max_seconds": 80.0,
                                      "speakers": 4},
                            "x": {"clips": 2, "seconds": 5.0, "mean_seconds": 2.5, "max_seconds": 3.0,
                                  "speakers": None}})
    assert rows[0] == {"split": "train", "clips": 10, "audio": "12.5 min", "mean clip": "75.0 s",
                       "longest": "80.0 s", "speakers": 4, "clips per speaker": "2.5"}
    assert rows[1]["speakers"] == "unknown" and rows[1]["clips per speaker"] == "-"
    tokens = ex.token_rows({"train": [10, 500]}, {"train": ["abcde", "fghij"]})
    assert tokens == [{"split": "train", "mean tokens": "255.0", "longest": 500, "tokens per character": "51.00",
                       "over 448": 1}]
    assert ex.longest_sentence(["ab", "abc", "xyz"]) == "abc" and ex.longest_sentence([]) == ""


def test_label_tokenizer_prefix_tokens(base_dir, tiny_en_dir):
    multilingual = ex.token_pieces("hola", ex.label_tokenizer(str(base_dir), "es"))
    assert multilingual[:4] == ["<|startoftranscript|>", "<|es|>", "<|transcribe|>", "<|notimestamps|>"]
    assert multilingual[-1] == "<|endoftext|>" and "".join(multilingual[4:-1]) == "hola"
    english_only = ex.token_pieces("hello", ex.label_tokenizer(str(tiny_en_dir), "en"))
    assert english_only[0] == "<|startoftranscript|>" and "<|en|>" not in english_only


def test_label_tokenizer_knows_english_only_models_by_config_not_name(tiny_en_dir, tmp_path):
    import shutil

    renamed = tmp_path / "my-finetuned-model"  # a fine-tuned English-only model has no ".en" in its name
    shutil.copytree(tiny_en_dir, renamed, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    pieces = ex.token_pieces("hello", ex.label_tokenizer(str(renamed), "en"))
    assert pieces[0] == "<|startoftranscript|>" and "<|en|>" not in pieces and "<|transcribe|>" not in pieces


def test_validated_list_contains_the_test_split_and_missing_list_is_none(sample_root, tmp_path):
    from helpers.data import load_split

    test = load_split("sample", "es", "test")
    leak = ex.validated_leak("sample", "es")
    assert leak["sentences"] == leak["test_clips"] == test.num_rows and leak["speakers"] >= 1
    rows = ex.overlap_rows({"validated": leak}, against="test")
    assert rows[0]["splits"] == "validated / test" and rows[0]["shared sentences"] == test.num_rows
    folder = ex.damaged_copy(sample_root / "es", tmp_path / "es")  # test.tsv only: no validated list
    assert ex.validated_leak(str(folder), "es") is None


def test_sample_folder_falls_back_to_english(sample_root):
    assert ex.sample_folder("tr") == sample_root / "tr"
    assert ex.sample_folder("sv-SE") == sample_root / "en"


def test_data_report_has_what_the_summary_reads(tokenizer, tmp_path):
    import json

    from helpers.files import write_json
    from tools.summary import data_totals

    splits = {"train": Dataset.from_list(_rows(["hola", "adiós"], seconds=2.0)),
              "test": Dataset.from_list(_rows(["qué tal"], speakers=["z"], seconds=1.0))}
    skipped = [{"split": "train", "path": "x.mp3", "row": 3, "reason": "empty sentence"}]
    inventory = ex.character_inventory(["hola"])
    report = ex.data_report("es", "sample", "m", splits, tokenizer, skipped, ex.overlaps_with_test(splits),
                            inventory, max_clips=10)
    saved = json.loads(write_json(report, tmp_path / "data_report.json").read_text(encoding="utf-8"))
    assert saved["splits"]["train"]["skipped_reasons"] == {"empty sentence": 1}
    assert saved["splits"]["test"]["skipped"] == 0 and saved["capped"] == {"train": False, "test": False}
    assert saved["overlaps_with_test"]["train"]["sentences"] == 0 and saved["characters"]["Ll"]["o"] == 1
    clips, hours = data_totals(saved)
    assert clips == 3 and hours == pytest.approx(5 / 3600, abs=1e-3)
