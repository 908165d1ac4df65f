"""The embedded sample (data/sample/<locale>/) is a faithful, usable Common Voice 11 style folder.

Fast and needs no espeak-ng: it checks the committed files, and the pure parts of tools.make_sample.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import soundfile as sf

from tools import make_sample
from tools.make_sample import HEADER, LOCALES, SampleError

SPLITS = ("train", "dev", "test")
MIN_ROWS = {"train": 40, "dev": 10, "test": 10}


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Read a Common Voice TSV the way Common Voice must be read: tabs only, no quote handling."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        rows = [dict(zip(header, line, strict=True)) for line in reader]
    return header, rows


@pytest.fixture(scope="module")
def tables(sample_root: Path) -> dict[str, dict[str, tuple[list[str], list[dict[str, str]]]]]:
    names = SPLITS + ("validated", "invalidated", "other")
    return {loc: {name: read_tsv(sample_root / loc / f"{name}.tsv") for name in names} for loc in LOCALES}


def test_six_locales_and_size(sample_root: Path) -> None:
    assert sorted(p.name for p in sample_root.iterdir()) == sorted(LOCALES)
    total = sum(f.stat().st_size for f in sample_root.rglob("*") if f.is_file())
    assert total <= 12 * 1024 * 1024, f"sample is {total / 1e6:.1f} MB, over the 12 MB budget"


@pytest.mark.parametrize("locale", LOCALES)
def test_folder_layout(sample_root: Path, locale: str) -> None:
    folder = sample_root / locale
    expected = {"clips", "train.tsv", "dev.tsv", "test.tsv", "validated.tsv", "invalidated.tsv", "other.tsv"}
    assert {p.name for p in folder.iterdir()} == expected
    assert all(p.suffix == ".mp3" and p.is_file() for p in (folder / "clips").iterdir())


@pytest.mark.parametrize("locale", LOCALES)
def test_headers_and_counts(tables, locale: str) -> None:
    for name, (header, rows) in tables[locale].items():
        assert header == list(HEADER), f"{locale}/{name}.tsv header"
        for row in rows:
            assert row["locale"] == locale
            assert row["sentence"].strip() == row["sentence"] and row["sentence"]
            assert re.fullmatch(r"[0-9a-f]{128}", row["client_id"])
            assert re.fullmatch(rf"common_voice_{re.escape(locale)}_\d+\.mp3", row["path"])
            assert row["up_votes"].isdigit() and row["down_votes"].isdigit()
            assert row["segment"] == ""
    for split in SPLITS:
        assert len(tables[locale][split][1]) >= MIN_ROWS[split], f"{locale}/{split}.tsv too small"
    assert tables[locale]["invalidated"][1] == []
    assert tables[locale]["other"][1] == []


@pytest.mark.parametrize("locale", LOCALES)
def test_splits_are_disjoint(tables, locale: str) -> None:
    sentences = {split: [r["sentence"] for r in tables[locale][split][1]] for split in SPLITS}
    speakers = {split: {r["client_id"] for r in tables[locale][split][1]} for split in SPLITS}
    paths = [r["path"] for split in SPLITS for r in tables[locale][split][1]]
    for split in SPLITS:
        assert len(set(sentences[split])) == len(sentences[split]), f"{locale}/{split}: repeated sentence"
    assert not set(sentences["train"]) & set(sentences["dev"])
    assert not set(sentences["train"]) & set(sentences["test"])
    assert not set(sentences["dev"]) & set(sentences["test"])
    assert not speakers["train"] & speakers["test"], f"{locale}: a test speaker is also in train"
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["dev"] & speakers["test"]
    assert len(speakers["train"]) >= 4 and len(speakers["test"]) >= 2
    assert len(set(paths)) == len(paths)


@pytest.mark.parametrize("locale", LOCALES)
def test_validated_is_the_union(tables, locale: str) -> None:
    union = [tuple(r.values()) for split in SPLITS for r in tables[locale][split][1]]
    validated = [tuple(r.values()) for r in tables[locale]["validated"][1]]
    assert sorted(validated) == sorted(union)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_clip_exists_and_decodes(sample_root: Path, tables, locale: str) -> None:
    clips = sample_root / locale / "clips"
    listed = {r["path"] for r in tables[locale]["validated"][1]}
    assert {p.name for p in clips.iterdir()} == listed, f"{locale}: clips/ and validated.tsv disagree"
    for name in sorted(listed):
        audio, rate = sf.read(clips / name, dtype="float32")
        assert rate == 48_000, name
        assert audio.ndim == 1, f"{name} is not mono"
        assert 0.5 <= len(audio) / rate <= 15.0, f"{name} lasts {len(audio) / rate:.2f} s"
        peak = float(abs(audio).max())
        assert 0.1 < peak <= 1.0, f"{name} peak {peak}"


@pytest.mark.parametrize("locale", LOCALES)
def test_sample_matches_sentence_files(repo_root: Path, tables, locale: str) -> None:
    """The committed sample was generated from the committed sentence files and speaker design."""
    written = make_sample.read_sentences(repo_root / "data" / "sample_sentences" / f"{locale}.txt")
    rows = tables[locale]["validated"][1]
    assert sorted(r["sentence"] for r in rows) == sorted(written)
    expected_split = make_sample.split_sentences(locale, written)
    speakers = make_sample.make_speakers(locale)
    for split in SPLITS:
        split_rows = tables[locale][split][1]
        assert [r["sentence"] for r in split_rows] == expected_split[split]
        assert {r["client_id"] for r in split_rows} == {s.client_id for s in speakers[split]}


def _has_word(sentences: list[str], word: str) -> bool:
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)")
    return any(pattern.search(s) for s in sentences)


def test_normalisation_traps_are_present(tables) -> None:
    text = {loc: [r["sentence"] for r in tables[loc]["validated"][1]] for loc in LOCALES}
    # English: apostrophes that change meaning must not be merged by a careless normaliser.
    lowered = [s.lower() for s in text["en"]]
    for word in ("it's", "its", "we're", "were", "don't"):
        assert _has_word(lowered, word), f"en lacks {word!r}"
    assert any("cat's" in s for s in lowered)
    assert any("-" in s for s in text["en"]) and any(re.search(r"\d", s) for s in text["en"])
    # Spanish: inverted marks and accents.
    es = "".join(text["es"])
    assert all(ch in es for ch in "¿¡ñáé")
    # German: sharp s, umlauts, hyphenated compounds.
    de = "".join(text["de"])
    assert all(ch in de for ch in "ßäöü") and "24-Stunden" in de
    # French: elision apostrophes and hyphenated names.
    fr_lower = [s.lower() for s in text["fr"]]
    assert any("l'" in s for s in fr_lower) and any("aujourd'hui" in s for s in fr_lower)
    assert any("qu'il" in s for s in fr_lower) and any("jean-pierre" in s for s in fr_lower)
    # Turkish: dotted and dotless i, in both cases.
    tr = "".join(text["tr"])
    assert all(ch in tr for ch in "İıIi")
    # Hindi: Devanagari with the danda and some numerals.
    hi = "".join(text["hi"])
    assert "।" in hi and re.search(r"[\u0900-\u097F]", hi)
    assert re.search(r"[0-9]", hi) and re.search(r"[\u0966-\u096F]", hi)


def test_client_id_is_stable_hex() -> None:
    first = make_sample.client_id("es", "es+m3")
    assert first == make_sample.client_id("es", "es+m3")
    assert re.fullmatch(r"[0-9a-f]{128}", first)
    assert first != make_sample.client_id("es", "es+m4")
    assert first != make_sample.client_id("fr", "es+m3")


def test_read_sentences_refuses_bad_files(tmp_path: Path) -> None:
    lines = [f"Sentence number {i} is here." for i in range(70)]
    good = tmp_path / "good.txt"
    good.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert make_sample.read_sentences(good) == lines

    duplicate = tmp_path / "dup.txt"
    duplicate.write_text("\n".join(lines + [lines[3]]) + "\n", encoding="utf-8")
    with pytest.raises(SampleError, match=r"dup\.txt:71: duplicate of line 4"):
        make_sample.read_sentences(duplicate)

    tabbed = tmp_path / "tab.txt"
    tabbed.write_text("\n".join(lines[:5] + ["one\ttwo"] + lines[5:]) + "\n", encoding="utf-8")
    with pytest.raises(SampleError, match=r"tab\.txt:6: .*tab"):
        make_sample.read_sentences(tabbed)

    short = tmp_path / "short.txt"
    short.write_text("\n".join(lines[:10]) + "\n", encoding="utf-8")
    with pytest.raises(SampleError, match="10 sentences"):
        make_sample.read_sentences(short)


def test_refuses_clearly_without_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no espeak-ng can be found
    assert make_sample.main(["--out", str(tmp_path / "out"), "es"]) == 1
    assert "espeak-ng is not installed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
