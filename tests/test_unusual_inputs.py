"""A catalogue of unusual inputs a user may bring, each with its outcome, run through the real helpers.

Each case is a row: what the input is, and what must happen: a clear message that names the problem and where, a
skip that is counted and recorded, or it simply works. README's "When your data is unusual" lists the same rows.
The ones that stop a whole run are also run through the batch runner end to end (at the bottom).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

from helpers import prepare as P
from tools.batch import BatchError, parse_config
from helpers.data import decode_clip, load_split, text_rows
from helpers.explore import leak_notes, overlaps_with_test
from helpers.languages import whisper_language

HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale", "segment"]


def tone(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.stack([mono, mono], axis=1) if channels == 2 else mono


def locale(root: Path, train: list, test: list | None = None, header: list[str] = HEADER, newline: str = "\n",
           bom: str = "", clips: dict | None = None) -> Path:
    """A Common Voice locale folder: rows (speaker, clip, sentence); clips written as 1 s tones unless `clips`
    gives {name: bytes or (seconds, rate, channels)}; test defaults to one clip of its own."""
    folder = root / "es"
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    test = test if test is not None else [("t1", "test.wav", "Una frase de prueba.")]
    clips = clips or {}
    for split, rows in (("train", train), ("test", test)):
        lines = [bom + "\t".join(header)]
        for speaker, clip, sentence in rows:
            spec = clips.get(clip, (1.0, 16000, 1))
            if isinstance(spec, bytes):
                (folder / "clips" / clip).write_bytes(spec)
            elif spec is not None and not (folder / "clips" / clip).exists():
                sf.write(folder / "clips" / clip, tone(spec[0], spec[1], spec[2]), spec[1])
            values = {"client_id": speaker, "path": clip, "sentence": sentence, "locale": "es"}
            lines.append("\t".join(values.get(h, "") for h in header))
        (folder / f"{split}.tsv").write_text(newline.join(lines) + newline, encoding="utf-8")
    return folder


def reasons(skipped: list[dict]) -> list[str]:
    return [s["reason"].split(":")[0] for s in skipped]


# --------------------------------------------------------------------------------------------------- the cases


def shared_speakers(tmp):
    folder = locale(tmp, [("t1", "a.wav", "Otra frase distinta.")])
    data = {name: load_split(str(folder), "es", name) for name in ("train", "test")}
    notes = leak_notes(overlaps_with_test(data))
    assert len(notes) == 1 and "1 shared speakers" in notes[0] and "optimistic" in notes[0]


def shared_sentences(tmp):
    folder = locale(tmp, [("s1", "a.wav", "una frase de prueba"), ("s2", "b.wav", "Algo nuevo.")])
    train = load_split(str(folder), "es", "train", decode=False)
    kept, report = P.drop_eval_overlap(train, load_split(str(folder), "es", "test", decode=False))
    assert kept["path"] == ["b.wav"] and report.counts == {P.REASON_SENTENCE: 1}


def corrupt_empty_and_missing_clips(tmp):
    folder = locale(tmp, [("s1", "ok.wav", "Bien."), ("s2", "corrupt.mp3", "Roto."), ("s3", "empty.wav", "Vacío."),
                          ("s4", "missing.mp3", "Falta.")],
                    clips={"corrupt.mp3": b"\xff\xfb not audio" * 30, "empty.wav": b"", "missing.mp3": None})
    skipped: list = []
    assert load_split(str(folder), "es", "train", skipped=skipped)["path"] == ["ok.wav"]
    assert sorted(reasons(skipped)) == ["bad audio", "bad audio", "missing clip"]
    light_skips: list = []  # without decoding, the missing clip is found up front, the others when read
    light = load_split(str(folder), "es", "train", decode=False, skipped=light_skips)
    assert reasons(light_skips) == ["missing clip"] and light["path"] == ["ok.wav", "corrupt.mp3", "empty.wav"]
    assert [decode_clip(row)[1].split(":")[0] for row in light] == ["", "bad audio", "bad audio"]


def missing_column(tmp):
    folder = locale(tmp, [("s1", "a.wav", "Hola.")], header=[h for h in HEADER if h != "sentence"])
    with pytest.raises(ValueError, match="no TSV file with 'path' and 'sentence' columns"):
        load_split(str(folder), "es", "train")


def extra_unknown_columns(tmp):
    folder = locale(tmp, [("s1", "a.wav", "Hola.")], header=HEADER + ["sentence_domain", "my_own_note"])
    assert load_split(str(folder), "es", "train")["sentence"] == ["Hola."]


def empty_and_punctuation_only_sentences(tmp, tokenizer):
    folder = locale(tmp, [("s1", "a.wav", ""), ("s2", "b.wav", "¿...?"), ("s3", "c.wav", "Hola.")])
    skipped: list = []
    rows = load_split(str(folder), "es", "train", decode=False, skipped=skipped)
    assert reasons(skipped) == ["empty sentence"]
    kept, report = P.filter_rows(rows, tokenizer)
    assert kept["path"] == ["c.wav"] and report.counts == {P.REASON_EMPTY: 1}


def clip_of_35_seconds(tmp, processor):
    folder = locale(tmp, [("s1", "long.wav", "Muy largo."), ("s2", "a.wav", "Corto.")],
                    clips={"long.wav": (35.0, 16000, 1)})
    rows = load_split(str(folder), "es", "train", decode=False)  # no clip_durations.tsv: found when read
    kept, report = P.filter_rows(rows, processor.tokenizer)
    assert report.total == 0
    collator = P.SpeechCollator(processor, skip_dir=tmp / "skips")
    assert collator(list(kept))["input_features"].shape[0] == 1
    assert P.read_skips(tmp / "skips").counts == {P.REASON_AUDIO: 1}
    (folder / "clip_durations.tsv").write_text("clip\tduration[ms]\nlong.wav\t35000\na.wav\t1000\n")
    kept, report = P.filter_rows(load_split(str(folder), "es", "train", decode=False), processor.tokenizer)
    assert kept["path"] == ["a.wav"] and report.counts == {P.REASON_AUDIO: 1}  # listed: dropped up front


def rates_and_channels(tmp):
    clips = {"stereo44k.wav": (1.0, 44100, 2), "phone8k.wav": (1.0, 8000, 1), "cv48k.wav": (1.0, 48000, 1)}
    folder = locale(tmp, [("s", name, "Hola.") for name in clips], clips=clips)
    ds = load_split(str(folder), "es", "train")
    assert [len(row["audio"]["array"]) for row in ds] == [16000] * 3 and ds[0]["audio"]["array"].ndim == 1


def audio_formats(tmp):
    names = ["a.wav", "a.flac", "a.ogg", "a.mp3"]
    folder = locale(tmp, [("s", name, "Hola.") for name in names], clips={n: (1.0, 48000, 1) for n in names})
    ds = load_split(str(folder), "es", "train")
    assert ds["path"] == names and all(abs(d - 1.0) < 0.06 for d in ds["duration"])


def byte_order_mark_and_windows_line_endings(tmp):
    folder = locale(tmp, [("s1", "a.wav", "Hola."), ("s2", "b.wav", "Adiós.")], bom="\ufeff", newline="\r\n")
    ds = load_split(str(folder), "es", "train")
    assert ds["client_id"] == ["s1", "s2"] and ds["sentence"] == ["Hola.", "Adiós."]


def quoted_field_holding_a_tab(tmp):
    folder = locale(tmp, [("s1", "a.wav", '"Dijo\tadiós"'), ("s2", "b.wav", "Bien.")])
    skipped: list = []
    assert load_split(str(folder), "es", "train", skipped=skipped)["path"] == ["b.wav"]
    assert skipped[0]["row"] == 2 and "expected 10 tab-separated fields, found 11" in skipped[0]["reason"]


def path_with_spaces_and_accents(tmp):
    folder = locale(tmp / "Mis grabaciones ñandú", [("s1", "canción número 1.wav", "Hola.")])
    assert load_split(str(folder), "es", "train")["path"] == ["canción número 1.wav"]
    assert text_rows(str(folder), "es", "train")[0]["path"] == "canción número 1.wav"


def language_whisper_lacks(tmp):
    with pytest.warns(UserWarning, match="Whisper was not trained on 'dv'"):
        assert whisper_language("dv") == "sinhalese"


def unknown_language(tmp):
    with pytest.raises(ValueError, match="Unknown language code 'xx-nope'"):
        whisper_language("xx-nope")


def locale_with_a_region(tmp):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: both are Whisper languages
        assert (whisper_language("zh-CN"), whisper_language("sv-SE")) == ("chinese", "swedish")


def yaml_config_with_an_unquoted_no(tmp):
    import yaml

    with pytest.raises(BatchError, match="read as the boolean False.*Quote every language code"):
        parse_config(yaml.safe_load("languages:\n  no: {}\n"), "config.yaml")


def checkpoint_cut_off_while_written(tmp):
    from helpers.checkpoints import last_checkpoint

    (tmp / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (tmp / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp / "checkpoints" / "checkpoint-4").mkdir()  # killed before its trainer state was written
    assert last_checkpoint(tmp).name == "checkpoint-2"  # resuming starts from the last complete one


def model_folder_without_its_tokenizer(tmp, tiny_en_dir):
    import shutil

    from helpers.inference import load_model

    shutil.copytree(tiny_en_dir, tmp / "model")
    (tmp / "model" / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="tokenizer.json .* is missing"):
        load_model(tmp / "model")


def hub_model_out_of_reach(tmp):
    from helpers.inference import load_model

    with pytest.raises(OSError, match="not in this machine's Hugging Face cache.*models/whisper-base"):
        load_model("openai/whisper-small-not-cached")


def metadata_csv_with_a_byte_order_mark(tmp):
    folder = tmp / "audiofolder"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(0.5), 16000)
    (folder / "metadata.csv").write_text("\ufefffile_name,transcription\r\na.wav,hola\r\n", encoding="utf-8")
    assert load_split(str(folder), "es", "train")["sentence"] == ["hola"]


def run_dir_that_cannot_be_written(tmp):
    from tools.batch import main
    from helpers.files import writable_folder

    (tmp / "a-file").write_text("not a folder")
    with pytest.raises(OSError, match="run_dir '.*/a-file/run' cannot be written .*choose another run_dir"):
        writable_folder(tmp / "a-file" / "run")
    assert main(["--languages", "es", "--runs", str(tmp / "a-file" / "runs"), "--notebooks", "00"]) == 2


CASES = [
    ("train and test share a speaker", "reported by notebook 01 with what it means; training goes on",
     shared_speakers),
    ("train and test share a sentence", "training rows dropped and counted (dropped_rows.csv)", shared_sentences),
    ("corrupt, empty (0 bytes) and missing clips", "skipped, counted and recorded with the reason",
     corrupt_empty_and_missing_clips),
    ("a TSV without the sentence column", "a clear error naming the folder and the columns", missing_column),
    ("extra, unknown TSV columns", "works (ignored)", extra_unknown_columns),
    ("an empty or punctuation-only sentence", "skipped or filtered, counted", empty_and_punctuation_only_sentences),
    ("a 35 s clip", "dropped up front (clip_durations.tsv) or when read, counted", clip_of_35_seconds),
    ("stereo 44.1 kHz, 8 kHz and 48 kHz clips", "works: 16 kHz mono", rates_and_channels),
    ("wav, flac, ogg and mp3 clips", "works", audio_formats),
    ("a TSV with a byte-order mark and Windows line endings", "works", byte_order_mark_and_windows_line_endings),
    ("a quoted field holding a tab", "the row skipped and counted, with its line and the field count",
     quoted_field_holding_a_tab),
    ("folder and clip names with spaces and non-ASCII letters", "works", path_with_spaces_and_accents),
    ("a language Whisper lacks (dv)", "a related language stands in, with a warning", language_whisper_lacks),
    ("an unknown language code", "a clear error with close matches", unknown_language),
    ("a locale with a region (zh-CN, sv-SE)", "works", locale_with_a_region),
    ("a YAML config with an unquoted no", "a clear error: quote the codes", yaml_config_with_an_unquoted_no),
    ("a run killed while writing a checkpoint", "resumes from the last complete checkpoint",
     checkpoint_cut_off_while_written),
    ("a model folder without its tokenizer", "a clear error naming the missing files",
     model_folder_without_its_tokenizer),
    ("a Hub model with the Hub out of reach", "a clear error saying what to pass instead", hub_model_out_of_reach),
    ("an audiofolder metadata.csv with a byte-order mark", "works", metadata_csv_with_a_byte_order_mark),
    ("a run_dir that cannot be written (read-only, full, or not a folder)",
     "a clear error naming the folder, before any work", run_dir_that_cannot_be_written),
]


@pytest.fixture(scope="module")
def processor(tiny_en_dir):
    from transformers import WhisperProcessor

    return WhisperProcessor.from_pretrained(tiny_en_dir)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_unusual_input(case, tmp_path, processor, tiny_en_dir, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    check = case[2]
    extra = {"tokenizer": processor.tokenizer, "processor": processor, "tiny_en_dir": tiny_en_dir}
    names = check.__code__.co_varnames[1:check.__code__.co_argcount]
    check(tmp_path, **{name: extra[name] for name in names})


def test_the_catalogue_is_the_readme_table(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    for situation, outcome, _ in CASES:
        assert f"| {situation} | {outcome} |" in readme, situation


def test_shared_speakers_do_not_stop_the_batch_runner(tmp_path, repo_root):
    """End to end: notebook 01 on a folder whose train and test share speakers reports it and finishes."""
    folder = locale(tmp_path, [("t1", f"a{i}.wav", f"Frase número {i}.") for i in range(3)])
    (folder / "dev.tsv").write_text((folder / "train.tsv").read_text())
    command = [sys.executable, "-m", "tools.batch", "--languages", "es", "--dataset", str(folder),
               "--runs", str(tmp_path / "runs"), "--notebooks", "01", "--set", "listen_clips=1"]
    done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = (tmp_path / "runs" / "es" / "01_data_exploration.ipynb").read_text(encoding="utf-8")
    assert "shared speakers" in out and "optimistic" in out
