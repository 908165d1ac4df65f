"""Build the embedded sample (data/sample/<locale>/) from hand-written sentences with espeak-ng.

Each locale folder is laid out exactly like a Common Voice 11 locale folder, so that every notebook can
run offline on it and then, unchanged, on a real Common Voice download:

    data/sample/es/
        train.tsv dev.tsv test.tsv validated.tsv invalidated.tsv other.tsv
        clips/common_voice_es_<number>.mp3      (48 kHz, mono)

The speech is synthetic. A "speaker" is one espeak-ng voice variant (``es+m3``, ``es-419+f2``, ...) with
its own speaking rate, pitch and loudness; its ``client_id`` is the SHA-512 hex digest of
``"<locale>:<voice>"``, shaped like a Common Voice client id. Train, dev and test use disjoint speakers and
disjoint sentences. Everything is derived from fixed seeds and the sentence files, so running the script
again gives the same TSVs.

The output is committed, so users never need espeak-ng. To regenerate (Debian: ``apt-get install espeak-ng``):

    python -m tools.make_sample [--out data/sample] [locales ...]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from helpers import ROOT

SENTENCES_DIR = ROOT / "data" / "sample_sentences"
OUT_DIR = ROOT / "data" / "sample"

LOCALES = ("en", "es", "de", "fr", "tr", "hi")

# The Common Voice 11 TSV header, in this order.
HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "locale", "segment")
SPLITS = ("train", "dev", "test")
EMPTY_TSVS = ("invalidated", "other")

SAMPLE_RATE = 48_000
# libsndfile's MP3 encoder: variable bitrate, quality 0 (best) .. 1 (smallest). 0.9 gives about 48 kbit/s,
# the same order as Common Voice clips, and keeps the whole sample well under 12 MB.
MP3_COMPRESSION = 0.9
MP3_BITRATE_MODE = "VARIABLE"

# Held-out share of each locale's sentences (the rest is train).
DEV_SIZE = 12
TEST_SIZE = 12

# espeak-ng voice variants: 7 male, 5 female. Each locale shuffles them (fixed seed) and gives 8 to train,
# 2 to dev and 2 to test, so no speaker appears in two splits.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPEAKERS_PER_SPLIT = {"train": 8, "dev": 2, "test": 2}

# Base espeak-ng voices per locale, with the Common Voice style accent label they stand for.
BASE_VOICES: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("en-us", "United States English"), ("en-gb", "England English")),
    "es": (("es", "España"), ("es-419", "América Latina")),
    "de": (("de", "Deutschland Deutsch"),),
    "fr": (("fr-fr", "Français de France"), ("fr-be", "Français de Belgique")),
    "tr": (("tr", ""),),
    "hi": (("hi", ""),),
}
AGES = ("", "teens", "twenties", "twenties", "thirties", "fourties", "fifties", "sixties")
SEED = 2022


class SampleError(RuntimeError):
    """The sample cannot be built (missing tool, bad sentence file, failed synthesis)."""


@dataclass(frozen=True)
class Speaker:
    voice: str  # espeak-ng voice, e.g. "es-419+f2"
    client_id: str
    speed: int  # words per minute
    pitch: int  # 0..99
    gain: float  # peak level of the clip
    age: str
    gender: str
    accent: str


def client_id(locale: str, voice: str) -> str:
    """A stable Common Voice style client id (128 hex characters) for one synthetic speaker."""
    return hashlib.sha512(f"{locale}:{voice}".encode("utf-8")).hexdigest()


def read_sentences(path: Path) -> list[str]:
    """One sentence per line, UTF-8. Blank lines, tabs and duplicates are refused with the line number."""
    if not path.is_file():
        raise SampleError(f"sentence file not found: {path}")
    sentences: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        sentence = line.strip()
        if not sentence:
            raise SampleError(f"{path}:{number}: empty line")
        if "\t" in sentence:
            raise SampleError(f"{path}:{number}: a sentence must not contain a tab (TSV separator)")
        if sentence in seen:
            raise SampleError(f"{path}:{number}: duplicate of line {seen[sentence]}: {sentence!r}")
        seen[sentence] = number
        sentences.append(sentence)
    needed = DEV_SIZE + TEST_SIZE + 40
    if len(sentences) < needed:
        raise SampleError(f"{path}: {len(sentences)} sentences, at least {needed} needed")
    return sentences


def make_speakers(locale: str) -> dict[str, list[Speaker]]:
    """The synthetic speakers of one locale, split into disjoint train/dev/test groups."""
    rng = random.Random(f"{SEED}:{locale}:speakers")
    variants = list(VARIANTS)
    rng.shuffle(variants)
    bases = BASE_VOICES[locale]
    speakers = []
    for index, variant in enumerate(variants):
        base, accent = bases[index % len(bases)]
        voice = f"{base}+{variant}"
        speakers.append(
            Speaker(
                voice=voice,
                client_id=client_id(locale, voice),
                speed=rng.randint(135, 175),
                pitch=rng.randint(30, 70),
                gain=round(rng.uniform(0.45, 0.9), 3),
                age=rng.choice(AGES),
                gender="male" if variant.startswith("m") else "female",
                accent=accent,
            )
        )
    groups: dict[str, list[Speaker]] = {}
    start = 0
    for split in SPLITS:
        groups[split] = speakers[start : start + SPEAKERS_PER_SPLIT[split]]
        start += SPEAKERS_PER_SPLIT[split]
    return groups


def split_sentences(locale: str, sentences: list[str]) -> dict[str, list[str]]:
    """Shuffle with a fixed seed, then cut into test, dev and train: no sentence is in two splits."""
    order = list(sentences)
    random.Random(f"{SEED}:{locale}:sentences").shuffle(order)
    return {
        "test": order[:TEST_SIZE],
        "dev": order[TEST_SIZE : TEST_SIZE + DEV_SIZE],
        "train": order[TEST_SIZE + DEV_SIZE :],
    }


def clip_number(locale: str, sentence: str, taken: set[int]) -> int:
    """An 8-digit clip number derived from the sentence (like Common Voice's), unique within the locale."""
    digest = hashlib.sha256(f"{locale}:{sentence}".encode("utf-8")).hexdigest()
    number = 10_000_000 + int(digest[:12], 16) % 30_000_000
    while number in taken:
        number += 1
    taken.add(number)
    return number


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SampleError(
            "espeak-ng is not installed, so the sample cannot be regenerated. It is a system package "
            "(Debian/Ubuntu: `sudo apt-get install espeak-ng`). You only need it to rebuild data/sample; "
            "the generated sample is committed."
        )
    return binary


def synthesize(binary: str, text: str, speaker: Speaker, speed: int, pitch: int, wav_path: Path) -> tuple[np.ndarray, int]:
    """Speak one sentence with espeak-ng into a WAV file and return (float32 mono samples, sample rate)."""
    command = [binary, "-v", speaker.voice, "-s", str(speed), "-p", str(pitch), "-b", "1", "--stdin", "-w", str(wav_path)]
    result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True)
    if result.returncode != 0 or not wav_path.is_file():
        message = result.stderr.decode("utf-8", "replace").strip()
        raise SampleError(f"espeak-ng failed for voice {speaker.voice} on {text!r}: {message}")
    audio, rate = sf.read(wav_path, dtype="float32", always_2d=False)
    if audio.ndim != 1 or audio.size == 0:
        raise SampleError(f"espeak-ng gave no mono audio for voice {speaker.voice} on {text!r}")
    return audio, rate


def to_clip(audio: np.ndarray, rate: int, gain: float) -> np.ndarray:
    """Resample to 48 kHz and set the peak level to the speaker's gain."""
    audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio *= gain / peak
    return audio


@contextmanager
def swapped_in(target: Path) -> Iterator[Path]:
    """A fresh folder beside `target` to build in; when the block ends without an error it replaces `target`, so
    the target never holds a mix of old and new files (and an error leaves the old one as it was)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield building
        if target.exists():
            shutil.rmtree(target)
        building.rename(target)
    finally:
        if building.exists():
            shutil.rmtree(building)


def write_splits(folder: Path, rows: dict[str, list[dict[str, str]]]) -> None:
    """train/dev/test.tsv, validated.tsv (all of them) and the empty invalidated/other.tsv of a locale folder."""
    for split in SPLITS:
        write_tsv(folder / f"{split}.tsv", rows[split])
    write_tsv(folder / "validated.tsv", [row for split in SPLITS for row in rows[split]])
    for name in EMPTY_TSVS:
        write_tsv(folder / f"{name}.tsv", [])


def write_tsv(path: Path, rows: list[dict[str, str]]) -> None:
    """Common Voice TSVs are plain tab-separated text with no quoting (sentences may contain quotes)."""
    lines = ["\t".join(HEADER)]
    lines += ["\t".join(row[column] for column in HEADER) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate_locale(locale: str, out_dir: Path = OUT_DIR, sentences_dir: Path = SENTENCES_DIR) -> dict[str, int]:
    """Build out_dir/<locale>/ from sentences_dir/<locale>.txt. Returns the number of clips per split."""
    if locale not in BASE_VOICES:
        raise SampleError(f"unknown locale {locale!r}; this sample has {', '.join(LOCALES)}")
    binary = espeak_binary()
    sentences = read_sentences(Path(sentences_dir) / f"{locale}.txt")
    speakers = make_speakers(locale)
    splits = split_sentences(locale, sentences)
    rng = random.Random(f"{SEED}:{locale}:prosody")
    taken: set[int] = set()

    rows: dict[str, list[dict[str, str]]] = {}
    with swapped_in(Path(out_dir) / locale) as building:
        clips = building / "clips"
        clips.mkdir()
        for split in SPLITS:
            rows[split] = []
            group = speakers[split]
            for index, sentence in enumerate(splits[split]):
                speaker = group[index % len(group)]
                speed = speaker.speed + rng.randint(-8, 8)
                pitch = speaker.pitch + rng.randint(-4, 4)
                audio, rate = synthesize(binary, sentence, speaker, speed, pitch, building / "tmp.wav")
                name = f"common_voice_{locale}_{clip_number(locale, sentence, taken)}.mp3"
                sf.write(
                    clips / name,
                    to_clip(audio, rate, speaker.gain),
                    SAMPLE_RATE,
                    format="MP3",
                    subtype="MPEG_LAYER_III",
                    compression_level=MP3_COMPRESSION,
                    bitrate_mode=MP3_BITRATE_MODE,
                )
                rows[split].append(
                    {
                        "client_id": speaker.client_id,
                        "path": name,
                        "sentence": sentence,
                        "up_votes": str(2 + rng.randint(0, 2)),
                        "down_votes": str(rng.choice((0, 0, 0, 1))),
                        "age": speaker.age,
                        "gender": speaker.gender,
                        "accents": speaker.accent,
                        "locale": locale,
                        "segment": "",
                    }
                )
        (building / "tmp.wav").unlink()
        write_splits(building, rows)
    return {split: len(rows[split]) for split in SPLITS}


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_sample",
        description="Generate the embedded Common Voice style sample with espeak-ng.",
    )
    parser.add_argument("locales", nargs="*", default=list(LOCALES), help=f"locales to build (default: {' '.join(LOCALES)})")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: data/sample)")
    parser.add_argument("--sentences", type=Path, default=SENTENCES_DIR, help="folder of <locale>.txt sentence files")
    args = parser.parse_args(argv)
    try:
        espeak_binary()
        for locale in args.locales:
            start = time.perf_counter()
            counts = generate_locale(locale, args.out, args.sentences)
            elapsed = time.perf_counter() - start
            summary = ", ".join(f"{split} {count}" for split, count in counts.items())
            print(f"{locale}: {summary} ({elapsed:.1f} s, {folder_size(args.out / locale) / 1e6:.2f} MB)")
    except SampleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"total: {folder_size(args.out) / 1e6:.2f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
