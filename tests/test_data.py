"""helpers.data: every kind of source, built here as tiny fixtures (no sample, no espeak, no network)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

from helpers.data import decode_clip, load_split, text_rows, write_skipped
from helpers.sources import resolve_dataset

CV11_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale",
               "segment"]
# Newer releases add sentence_id, sentence_domain and variant (and move columns around).
NEW_HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
              "gender", "accents", "variant", "locale", "segment"]


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    return np.stack([mono, 0.5 * mono], axis=1) if channels == 2 else mono


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cv11_row(client: str, clip: str, sentence: str) -> list[str]:
    return [client, clip, sentence, "2", "0", "", "", "", "es", ""]


def make_locale(folder: Path, header: list[str] = CV11_HEADER) -> Path:
    """A Common Voice locale folder with one good clip of each kind and one bad row of each kind in train."""
    clips = folder / "clips"
    clips.mkdir(parents=True)
    sf.write(clips / "mono48k.mp3", tone(1.0, 48000), 48000)
    sf.write(clips / "stereo44k.wav", tone(0.5, 44100, channels=2), 44100)
    sf.write(clips / "dev.mp3", tone(0.8, 48000), 48000)
    sf.write(clips / "test.wav", tone(0.4, 16000), 16000)
    (clips / "corrupt.mp3").write_bytes(b"not an mp3 at all" * 20)
    train = [
        ["spk1", "mono48k.mp3", '"Hola", dijo "adiós".'],  # quotes stay as written (QUOTE_NONE)
        ["spk2", "stereo44k.wav", "Dos canales."],
        ["spk3", "corrupt.mp3", "Archivo roto."],
        ["spk4", "missing.mp3", "No existe."],
        ["spk5", "mono48k.mp3", "   "],
    ]
    if header == CV11_HEADER:
        rows = [cv11_row(*r) for r in train] + [["spk6", "mono48k.mp3", "Sin campos."]]
    else:  # place values by column name
        rows = [[{"client_id": c, "path": p, "sentence": s}.get(h, "x") for h in header] for c, p, s in train]
        rows.append(["spk6", "mono48k.mp3"])
    write_tsv(folder / "train.tsv", header, rows)
    dev_rows = [["spk7", "dev.mp3", "Validación."]]
    write_tsv(folder / "dev.tsv", header,
              [[{"client_id": c, "path": p, "sentence": s}.get(h, "") for h in header] for c, p, s in dev_rows])
    write_tsv(folder / "test.tsv", CV11_HEADER, [cv11_row("spk8", "test.wav", "Prueba.")])
    write_tsv(folder / "validated_sentences.tsv", ["sentence_id", "sentence"], [["1", "No es un clip."]])
    return folder


@pytest.fixture(scope="module")
def locale(tmp_path_factory) -> Path:
    return make_locale(tmp_path_factory.mktemp("cv") / "es")


# ------------------------------------------------------------------------------------------ Common Voice


def test_common_voice_rows(locale):
    ds = load_split(str(locale), "es", "train")
    assert isinstance(ds, datasets.Dataset)
    assert ds.num_rows == 2
    first, second = ds[0], ds[1]
    assert first["sentence"] == '"Hola", dijo "adiós".'
    assert (first["client_id"], first["path"]) == ("spk1", "mono48k.mp3")
    audio = first["audio"]
    assert isinstance(audio["array"], np.ndarray) and audio["array"].dtype == np.float32 and audio["array"].ndim == 1
    assert audio["sampling_rate"] == 16000
    assert first["duration"] == pytest.approx(1.0, abs=0.03)
    assert len(audio["array"]) == pytest.approx(16000, abs=500)
    # The stereo 44.1 kHz clip is averaged to mono and resampled, not skipped.
    assert second["path"] == "stereo44k.wav"
    assert second["audio"]["array"].shape == (8000,) and second["duration"] == pytest.approx(0.5)
    assert np.abs(second["audio"]["array"]).max() == pytest.approx(0.75 * 0.3, abs=0.01)


def test_bad_rows_are_skipped_and_recorded(locale, tmp_path, caplog):
    mine: list[dict] = [{"split": "earlier", "path": "x", "row": 0, "reason": "kept"}]
    with caplog.at_level(logging.INFO, logger="helpers.data"):
        ds = load_split(str(locale), "es", "train", skipped=mine)
    expected = [
        (4, "corrupt.mp3", "bad audio: corrupt or unsupported audio"),
        (5, "missing.mp3", "missing clip: missing.mp3 not found"),
        (6, "mono48k.mp3", "empty sentence"),
        (7, "mono48k.mp3", "missing field: expected 10 tab-separated fields, found 3"),
    ]
    assert [(s["row"], s["path"]) for s in ds.skipped] == [(row, path) for row, path, _ in expected]
    for record, (_, _, reason) in zip(ds.skipped, expected):
        assert record["split"] == "train" and record["reason"].startswith(reason)
    assert mine[0]["reason"] == "kept" and mine[1:] == ds.skipped  # appended to the caller's list
    summary = [r.getMessage() for r in caplog.records if r.name == "helpers.data"]
    assert len(summary) == 1 and "2 rows, 4 skipped" in summary[0] and "1 missing clip" in summary[0]

    written = write_skipped(ds.skipped, tmp_path / "out" / "skipped.csv")
    with written.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["reason"].split(":")[0] for r in rows] == ["bad audio", "missing clip", "empty sentence", "missing field"]
    assert rows[0].keys() == {"split", "path", "row", "reason"} and rows[0]["row"] == "4"


def test_text_rows_read_no_audio(locale):
    rows = text_rows(str(locale), "es", "train")
    # the corrupt and the missing clip are listed (no audio is read); the empty sentence and the short row are not
    assert [(r["client_id"], r["path"]) for r in rows] == [
        ("spk1", "mono48k.mp3"), ("spk2", "stereo44k.wav"), ("spk3", "corrupt.mp3"), ("spk4", "missing.mp3")]
    assert rows[0]["sentence"] == '"Hola", dijo "adiós".'
    assert text_rows(str(locale), "es", "train", max_rows=1) == rows[:1]
    assert text_rows(str(locale), "es", "validation") == [{"sentence": "Validación.", "client_id": "spk7",
                                                           "path": "dev.mp3"}]
    with pytest.raises(ValueError, match="No split 'validated'"):
        text_rows(str(locale), "es", "validated")


def test_newer_release_header(tmp_path):
    folder = make_locale(tmp_path / "es", header=NEW_HEADER)
    ds = load_split(str(folder), "es", "train+dev")
    assert ds["sentence"] == ['"Hola", dijo "adiós".', "Dos canales.", "Validación."]
    assert ds["client_id"] == ["spk1", "spk2", "spk7"]
    assert ds.skipped[-1]["reason"] == "missing field: expected 13 tab-separated fields, found 2"


def test_splits_aliases_and_errors(locale):
    description = resolve_dataset(str(locale), "es")
    assert description.startswith("Common Voice locale folder") and description.endswith("splits: dev, test, train")
    dev = load_split(str(locale), "es", "validation")  # Hub name for Common Voice's dev.tsv
    assert dev["sentence"] == ["Validación."]
    both = load_split(str(locale), "es", "train+dev+test")
    assert both.num_rows == 4 and both["sentence"][-2:] == ["Validación.", "Prueba."]
    assert {s["split"] for s in both.skipped} == {"train"}
    assert isinstance(both[3]["audio"]["array"], np.ndarray)  # numpy format survives concatenation
    with pytest.raises(ValueError, match=r"No split 'valid_set'.*available: dev, test, train"):
        load_split(str(locale), "es", "valid_set")
    with pytest.raises(ValueError, match=r"sample \('sample'\) has no language 'xx'.*languages there: de, en, es"):
        load_split("sample", "xx", "train")


def test_release_folder_picks_the_locale(tmp_path):
    release = tmp_path / "cv-corpus-23.0"
    make_locale(release / "es")
    fr = release / "fr"
    (fr / "clips").mkdir(parents=True)
    sf.write(fr / "clips" / "un.mp3", tone(0.6, 48000), 48000)
    write_tsv(fr / "train.tsv", CV11_HEADER, [["spk9", "un.mp3", "Bonjour.", "2", "0", "", "", "", "fr", ""]])
    ds = load_split(str(release), "fr", "train")
    assert ds["sentence"] == ["Bonjour."] and ds.skipped == []
    assert resolve_dataset(str(release), "fr").startswith(f"Common Voice locale folder {release}/fr")
    with pytest.raises(ValueError, match=r"No locale folder 'de'.*locales found: es, fr"):
        load_split(str(release), "de", "train")


def test_folders_that_are_not_datasets(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"not a Common Voice locale folder \(expected train\.tsv.*Found: notes\.txt"):
        load_split(str(tmp_path), "es", "train")
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        load_split(str(tmp_path / "no-such-folder"), "es", "train")
    # a folder of unrelated files somewhere deep (here: mixed JSON and audio) is named, not a datasets traceback
    mixed = tmp_path / "home"
    (mixed / "train").mkdir(parents=True)
    (mixed / "train" / "a.json").write_text("{}")
    (mixed / "validation").mkdir()
    (mixed / "validation" / "b.wav").write_bytes(b"")
    (mixed / "cache" / "x").mkdir(parents=True)
    (mixed / "cache" / "x" / "c.arrow").write_bytes(b"")
    with pytest.raises(ValueError, match=r"home is not a Common Voice locale or release folder nor an audiofolder"):
        load_split(str(mixed), "es", "train")
    no_clips = tmp_path / "tsv_only"
    no_clips.mkdir()
    write_tsv(no_clips / "train.tsv", CV11_HEADER, [cv11_row("spk1", "a.mp3", "Hola.")])
    with pytest.raises(FileNotFoundError, match=r"tsv_only: no clips/ folder"):
        load_split(str(no_clips), "es", "train")
    write_tsv(no_clips / "train.tsv", ["client_id", "path", "text"], [["spk1", "a.mp3", "Hola."]])
    with pytest.raises(ValueError, match=r"no TSV file with 'path' and 'sentence' columns"):
        load_split(str(no_clips), "es", "train")


# ------------------------------------------------------------------------------------------ streaming


def test_streaming_gives_the_same_rows(locale):
    eager = load_split(str(locale), "es", "train")
    mine: list[dict] = []
    stream = load_split(str(locale), "es", "train", streaming=True, skipped=mine)
    assert isinstance(stream, datasets.IterableDataset)
    assert stream.skipped == []  # nothing read yet
    first = next(iter(stream))
    expected = eager[0]
    np.testing.assert_array_equal(first["audio"]["array"], expected["audio"]["array"])
    assert first["audio"]["array"].dtype == np.float32 and first["audio"]["sampling_rate"] == 16000
    for key in ("sentence", "client_id", "path", "duration"):
        assert first[key] == expected[key]
    rows = list(stream)
    rows_again = list(stream)  # a second pass must not record the skips twice
    assert len(rows) == len(rows_again) == 2
    assert stream.skipped == eager.skipped and mine == eager.skipped


def test_streaming_concatenates_and_checks_the_split_early(locale):
    stream = load_split(str(locale), "es", "train+dev", streaming=True)
    assert [row["sentence"] for row in stream][-1] == "Validación."
    with pytest.raises(ValueError, match="No split 'bogus'"):
        load_split(str(locale), "es", "train+bogus", streaming=True)


# ------------------------------------------------------------------------------------------ audiofolder


def test_audiofolder_with_split_folders(tmp_path):
    root = tmp_path / "my_audio"
    for split in ("train", "dev"):
        (root / split).mkdir(parents=True)
        sf.write(root / split / "a.wav", tone(0.5, 22050), 22050)
        sf.write(root / split / "b.flac", tone(0.25, 16000, channels=2), 16000)
    (root / "train" / "metadata.csv").write_text(
        'file_name,transcription,speaker_id\na.wav,"Hola, ""amigo"".",s1\nb.flac,Adiós.,s2\ngone.wav,Nada.,s3\n'
        "b.flac\n", encoding="utf-8")
    records = [{"file_name": "a.wav", "text": "Uno."}, {"file_name": "b.flac", "text": ""}]
    (root / "dev" / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    assert resolve_dataset(str(root), "es") == f"audiofolder {root}, splits: dev, train"

    train = load_split(str(root), "es", "train")
    assert train["sentence"] == ['Hola, "amigo".', "Adiós."] and train["client_id"] == ["s1", "s2"]
    assert train[1]["audio"]["array"].shape == (4000,)
    assert [(s["row"], s["reason"]) for s in train.skipped] == [
        (4, "missing clip: gone.wav not found"), (5, "missing field: no transcription")]

    dev = load_split(str(root), "es", "validation")
    assert dev["sentence"] == ["Uno."] and dev["client_id"] == [""]
    assert [s["reason"].split(" (")[0] for s in dev.skipped] == ["empty sentence",
                                                                 "missing field: line is not valid JSON"]


def test_audiofolder_needs_a_transcript_column(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.2, 16000), 16000)
    (tmp_path / "metadata.csv").write_text("file_name,label\na.wav,3\n")
    with pytest.raises(ValueError, match=r"metadata\.csv needs a file_name column and a transcript column"):
        load_split(str(tmp_path), "es", "train")


# ------------------------------------------------------------------------------- dataset repository (Hub)


def wav_bytes(seconds: float, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds, rate, channels), rate, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def repository(tmp_path, monkeypatch) -> Path:
    """A folder laid out like a Hub dataset repo: <config>/<split>-00000-of-00001.parquet + README configs."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # keep the user's cache clean
    root = tmp_path / "my_org" / "my_ds"
    readme = ["---", "configs:"]
    for config in ("es", "fr"):
        (root / config).mkdir(parents=True)
        readme += [f"- config_name: {config}", "  data_files:"]
        for split in ("train", "validation"):
            table = datasets.Dataset.from_dict({
                "audio": [{"bytes": wav_bytes(0.5, 44100, channels=2), "path": f"{config}_{split}_0.wav"},
                          {"bytes": b"junk" * 10, "path": "junk.wav"},
                          {"bytes": wav_bytes(0.25, 16000), "path": f"{config}_{split}_2.wav"}],
                "transcription": ["uno", "dos", "tres"],
                "raw_transcription": ["Uno.", "Dos.", "Tres."],
                "speaker_id": [7, 8, 9],
            }).cast_column("audio", datasets.Audio(decode=False))
            table.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
            readme += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join(readme + ["---", ""]))
    return root


def test_repository_folder_through_load_dataset(repository):
    assert resolve_dataset(str(repository), "es") == (
        f"dataset repository {repository} (configuration 'es'), splits: train, validation")
    ds = load_split(str(repository), "es", "dev")  # "dev" maps to the repository's "validation"
    assert ds["sentence"] == ["Uno.", "Tres."]  # raw_transcription is preferred over the normalised column
    assert ds["client_id"] == ["7", "9"] and ds["path"] == ["es_validation_0.wav", "es_validation_2.wav"]
    assert ds[0]["audio"]["array"].dtype == np.float32 and ds[0]["audio"]["array"].shape == (8000,)
    assert ds["duration"] == pytest.approx([0.5, 0.25])
    assert [(s["split"], s["row"], s["path"]) for s in ds.skipped] == [("dev", 1, "junk.wav")]
    assert ds.skipped[0]["reason"].startswith("bad audio: corrupt or unsupported audio")

    stream = load_split(str(repository), "fr", "train", streaming=True)
    rows = list(stream)
    assert [r["sentence"] for r in rows] == ["Uno.", "Tres."] and rows[0]["path"] == "fr_train_0.wav"
    eager = load_split(str(repository), "fr", "train")
    np.testing.assert_array_equal(rows[0]["audio"]["array"], eager[0]["audio"]["array"])
    assert [(s["split"], s["row"]) for s in stream.skipped] == [("train", 1)]

    listed = [(r["sentence"], r["client_id"], r["path"]) for r in text_rows(str(repository), "es", "dev")]
    assert listed == [("Uno.", "7", "es_validation_0.wav"), ("Dos.", "8", "junk.wav"),  # audio is not read
                      ("Tres.", "9", "es_validation_2.wav")]

    with pytest.raises(ValueError, match=r"no configuration 'de'; available: es, fr"):
        load_split(str(repository), "de", "train")
    with pytest.raises(ValueError, match=r"No split 'test'.*available: train, validation"):
        load_split(str(repository), "es", "test")


# ------------------------------------------------------------------------------------------ embedded sample


def test_embedded_sample_loads_cleanly(sample_root):
    assert (sample_root / "es" / "dev.tsv").is_file()
    dev = load_split("sample", "es", "dev")
    assert dev.num_rows >= 10 and dev.skipped == []
    assert all(d > 0.5 for d in dev["duration"]) and all(s.strip() for s in dev["sentence"])
    assert resolve_dataset("sample", "es").startswith("Common Voice locale folder data/sample/es")
    with pytest.raises(ValueError, match=r"no language 'it'.*languages there: .*es"):
        load_split("sample", "it", "train")


# ------------------------------------------------------------------------------ light rows (decode=False)


def test_light_rows_hold_a_reference_not_the_audio_and_skip_what_the_text_and_files_show(locale):
    skipped: list = []
    ds = load_split(str(locale), "es", "train+dev", decode=False, skipped=skipped)
    assert ds.column_names == ["audio", "sentence", "client_id", "path", "duration", "age", "gender", "accents",
                               "variant", "split", "row"]
    # the corrupt clip is kept: only decoding finds it out (the collator does, and records it)
    assert ds["path"] == ["mono48k.mp3", "stereo44k.wav", "corrupt.mp3", "dev.mp3"]
    assert ds["split"] == ["train", "train", "train", "dev"] and ds["row"] == [2, 3, 4, 2]
    assert ds["duration"] == [None] * 4  # no clip_durations.tsv in this folder
    assert ds[0]["audio"] == {"bytes": None, "path": str(locale / "clips" / "mono48k.mp3")}
    assert {(s["path"], s["reason"].split(":")[0]) for s in skipped} == {
        ("missing.mp3", "missing clip"), ("mono48k.mp3", "empty sentence"), ("mono48k.mp3", "missing field")}
    assert ds.data.nbytes < 2000  # a few hundred bytes a row, whatever the length of the clips

    array, reason = decode_clip(ds[1])
    assert reason == "" and array.dtype == np.float32 and len(array) == 8000  # 0.5 s of stereo 44.1 kHz -> 16 kHz mono
    array, reason = decode_clip(ds[2])
    assert array is None and reason.startswith("bad audio")


def test_light_rows_take_durations_from_clip_durations_tsv(locale, tmp_path):
    import shutil

    folder = tmp_path / "es"
    shutil.copytree(locale, folder)
    write_tsv(folder / "clip_durations.tsv", ["clip", "duration[ms]"], [["mono48k.mp3", "1000"], ["dev.mp3", "oops"]])
    ds = load_split(str(folder), "es", "train+dev", decode=False)
    assert dict(zip(ds["path"], ds["duration"])) == {"mono48k.mp3": 1.0, "stereo44k.wav": None, "corrupt.mp3": None,
                                                     "dev.mp3": None}  # a malformed line: learnt when decoded


def test_light_rows_of_a_stream_and_of_an_audiofolder(locale, tmp_path):
    stream = load_split(str(locale), "es", "train", streaming=True, decode=False)
    assert [r["path"] for r in stream] == ["mono48k.mp3", "stereo44k.wav", "corrupt.mp3"]
    folder = tmp_path / "af"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(0.5, 8000), 8000)
    (folder / "metadata.csv").write_text("file_name,transcription\na.wav,hola\nb.wav,falta\n", encoding="utf-8")
    skipped: list = []
    ds = load_split(str(folder), "es", "train", decode=False, skipped=skipped)
    assert ds["path"] == ["a.wav"] and [s["path"] for s in skipped] == ["b.wav"]
    assert len(decode_clip(ds[0])[0]) == 8000


def test_light_rows_of_a_repository_keep_the_audio_bytes_undecoded(repository):
    ds = load_split(str(repository), "es", "dev", decode=False)
    assert ds["sentence"] == ["Uno.", "Dos.", "Tres."] and ds["client_id"] == ["7", "8", "9"]
    assert ds["row"] == [0, 1, 2] and ds["split"] == ["dev"] * 3
    assert ds["path"] == ["es_validation_0.wav", "junk.wav", "es_validation_2.wav"]  # from the audio's own path
    assert isinstance(ds[0]["audio"]["bytes"], bytes)
    assert len(decode_clip(ds[0])[0]) == 8000 and decode_clip(ds[1])[1].startswith("bad audio")


def test_who_is_speaking_comes_with_every_row(tmp_path):
    """Common Voice's age, gender and accents (accent on the Hub, variant in newer releases) are read as given,
    empty where the speaker left them out."""
    folder = tmp_path / "es"
    (folder / "clips").mkdir(parents=True)
    sf.write(folder / "clips" / "a.wav", tone(0.5, 16000), 16000)
    sf.write(folder / "clips" / "b.wav", tone(0.5, 16000), 16000)
    write_tsv(folder / "train.tsv", NEW_HEADER, [
        ["s1", "a.wav", "1", "Hola.", "", "2", "0", "thirties", "female", "España", "peninsular", "es", ""],
        ["s2", "b.wav", "2", "Adiós.", "", "2", "0", "", "", "", "", "es", ""]])
    for decode in (True, False):
        ds = load_split(str(folder), "es", "train", decode=decode)
        assert [(r["age"], r["gender"], r["accents"], r["variant"]) for r in ds] == [
            ("thirties", "female", "España", "peninsular"), ("", "", "", "")]
    stream = load_split(str(folder), "es", "train", streaming=True)
    assert [r["gender"] for r in stream] == ["female", ""]
