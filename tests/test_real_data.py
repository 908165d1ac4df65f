"""Real human speech from Debian packages (`make real-data`): how lines are cleaned and split, what the built folders
hold, and that the real Whisper transcribes real recordings within a WER bound.

The tests on the built folders need `make real-data` (make test runs it); without the data they fail and say so.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from helpers.data import load_split
from helpers.prepare import sentence_key
from helpers.sources import REAL_DIR
from tools import make_real_data as R


@pytest.fixture(scope="module")
def real_dir():
    missing = [locale for locale in R.SOURCES if not (REAL_DIR / locale / "build.json").is_file()]
    if missing:
        pytest.fail(f"data/real has no {', '.join(missing)}: run `make real-data` first (Debian packages, no root).")
    return REAL_DIR


# ------------------------------------------------------------------------------------------------- cleaning


@pytest.mark.parametrize("text, reason", [
    ("", "empty line"),
    (" ... ", "empty line"),
    ("Konkrétně %1 hodin!", "script placeholder (%1)"),
    ("[ascending tones]", "bracketed remark or sound effect"),
    ("(beep)", "bracketed remark or sound effect"),
    ("Sus saludos [temporales] estan en uso", "bracketed remark or sound effect"),
    ("ááááaa", "scream, laugh or hum"),
    ("Ááááá...", "scream, laugh or hum"),
    ("Chééééchechech... chéééchecheche...", "scream, laugh or hum"),   # a laugh
    ("Hmmm... Ehmmm... Hahmmm...", "scream, laugh or hum"),
    ("Hahaha!", "scream, laugh or hum"),
    ("Krrruci!", None),               # a word said with a rolled r
    ("Cha cha chá... vyhrál jsem!", None),
    ("Au!", None),                    # a short word is speech
    ("Hmmm... těžko.", None),
    ("Co je to za divnou loď?", None),
])
def test_which_lines_are_left_out(text, reason):
    assert R.why_left_out(text) == reason


@pytest.mark.parametrize("level, key, expected", [
    ("airplane", "let-m-divna", ("cs-fish-small", "female")),
    ("airplane", "let-v-oko", ("cs-fish-big", "male")),
    ("rush", "m-silou", ("cs-fish-small", "female")),       # two-part ids in some levels
    ("fdto", "vidis-v", ("cs-fish-big", "male")),
    ("cabin1", "k1-pap-kruci", ("cs-cabin1-pap", "")),      # a minor character belongs to its level
    ("keys", "rand-3-2", ("", "")),                          # the id does not say who speaks
])
def test_fillets_speakers(level, key, expected):
    assert R.fillets_speaker(level, key) == expected


def test_groups_fill_each_held_out_split_to_its_share():
    rng = np.random.default_rng(0)
    sizes = {f"level{i}": int(rng.integers(5, 40)) for i in range(80)}
    split_of = R.assign_groups(sizes)
    assert split_of == R.assign_groups(dict(reversed(list(sizes.items()))))  # the order given does not matter
    total = sum(sizes.values())
    for split, share in R.HELD_OUT.items():
        clips = sum(size for group, size in sizes.items() if split_of[group] == split)
        assert share <= clips / total <= share * 1.25, (split, clips / total)
    assert set(split_of.values()) == {"train", "dev", "test"}


# ------------------------------------------------------------------- a package tree made here, built end to end


def _tone(path, seconds, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def test_build_counts_every_line_it_leaves_out(tmp_path):
    root = tmp_path / "unpacked"
    voice = root / R.ASTERISK / "xx_YY_f_Ana"
    (voice / "digits").mkdir(parents=True)
    listing = root / "usr/share/doc/asterisk-core-sounds-xx/core-sounds-xx.txt.gz"
    listing.parent.mkdir(parents=True)
    lines = ["; Core sounds in a language made up here", ""]
    for family in ("agent", "conf", "vm", "queue", "dir", "call", "auth", "privacy"):
        for i in range(3):
            lines.append(f"{family}-{i}: frase {family} numero {i}")
            _tone(voice / f"{family}-{i}.wav", 1.0 + i)
    lines += ["beep: [tono simple]", "digits/0: cero", "digits/0: diez", "gone-1: nunca grabada", "long-1: muy larga",
              "blank-1: ..."]
    for name, seconds in (("beep", 0.5), ("digits/0", 0.5), ("long-1", 31.0), ("blank-1", 0.5), ("unlisted-1", 0.5)):
        _tone(voice / f"{name}.wav", seconds)
    with gzip.open(listing, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    source = R.Source("xx", "made-up prompts", ("asterisk-core-sounds-xx",), "CC0", R.read_asterisk("xx"),
                      "prompt family")

    summary = R.build_locale(source, root, tmp_path / "out")

    folder = tmp_path / "out" / "xx"
    assert summary["left_out"] == {"bracketed remark or sound effect": 1, "two different transcripts for one recording": 2,
                                   "no recording": 1, "over 30 s": 1, "empty line": 1,
                                   "recording with no line in the script": 1}
    with open(folder / "left_out.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert Counter(row["reason"] for row in rows) == Counter(summary["left_out"])
    assert sum(v["clips"] for v in summary["splits"].values()) == 24
    assert json.loads((folder / "build.json").read_text()) == summary
    assert "CC0" in (folder / "LICENSE.txt").read_text()

    test = load_split(str(folder), "xx", "test", decode=False)
    train = load_split(str(folder), "xx", "train+dev")
    assert test.num_rows > 0 and not test.skipped and not train.skipped
    assert set(test["client_id"]) == {"xx-ana"} and set(test["gender"]) == {"female"}
    assert all(d is not None for d in test["duration"])  # clip_durations.tsv is read
    clip = train[0]["audio"]
    assert clip["sampling_rate"] == 16000 and clip["array"].dtype == np.float32
    info = sf.info(str(next((folder / "clips").glob("*.flac"))))
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")


# ----------------------------------------------------------------------------------- the folders make real-data built


def _rows(folder, split):
    with open(folder / f"{split}.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("locale", list(R.SOURCES))
def test_built_test_split_shares_no_sentence_and_no_scene_with_training(real_dir, locale):
    folder = real_dir / locale
    test = _rows(folder, "test")
    training = _rows(folder, "train") + _rows(folder, "dev")
    assert len(test) >= 50 and len(training) >= 300
    assert not {sentence_key(r["sentence"]) for r in test} & {sentence_key(r["sentence"]) for r in training}
    assert not {r["segment"] for r in test} & {r["segment"] for r in training}  # whole levels / prompt families
    build = json.loads((folder / "build.json").read_text())
    assert {split: v["clips"] for split, v in build["splits"].items()} == {
        split: len(_rows(folder, split)) for split in ("train", "dev", "test")}
    assert all((folder / "clips" / r["path"]).is_file() for r in test + training)
    assert (folder / "LICENSE.txt").read_text().count(build["licence"]) >= 1


def test_czech_speakers_are_the_game_characters(real_dir):
    rows = _rows(real_dir / "cs", "train") + _rows(real_dir / "cs", "test")
    speakers = Counter(r["client_id"] for r in rows)
    assert speakers["cs-fish-small"] > 400 and speakers["cs-fish-big"] > 400
    assert {r["client_id"] for r in _rows(real_dir / "cs", "test")} >= {"cs-fish-small", "cs-fish-big"}


def test_the_real_whisper_transcribes_real_spanish_prompts(real_dir, base_dir):
    """whisper-base, zero-shot, on 8 real telephone prompts: a bound that a broken decoder, wrong language, wrong
    sampling rate or mismatched transcripts would all break (measured: 33 % on these 8 clips)."""
    from helpers.inference import load_model, transcribe
    from helpers.metrics import wer
    from helpers.normalize import eval_normalizer

    rows = load_split("real", "es", "test").select(range(8))
    model, processor = load_model(base_dir, device="cpu")
    texts = transcribe(model, processor, rows, language="es", batch_size=8).texts
    normalise = eval_normalizer("es")
    score = wer([normalise(s) for s in rows["sentence"]], [normalise(t) for t in texts])
    assert score < 45.0, list(zip(rows["sentence"], texts))
