"""Build locale folders of real human speech, laid out like Common Voice, from Debian packages (`make real-data`).

Every number measured on the embedded sample comes from a speech synthesiser. Debian ships transcribed
recordings of people, and this module turns them into `data/real/<locale>/` folders that every notebook and the
batch runner read like any Common Voice download (`dataset="real"`):

    cs  Fish Fillets NG, Czech voice track (fillets-ng-data-cs, text in fillets-ng-data)   GPL-2+
        acted game dialogue: two main voice actors (the small fish "m", the big fish "v") and minor characters
    es  Asterisk core sounds, Mexican Spanish (asterisk-core-sounds-es{,-wav})              CC-BY-SA-3.0
    fr  Asterisk core sounds, Canadian French (asterisk-core-sounds-fr{,-wav})              CC-BY-SA-3.0
    it  Asterisk core sounds, Italian (asterisk-core-sounds-it{,-wav})                      CC-BY-3.0
        telephone prompts (recorded at 8 kHz), one voice actor per language

The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`: nothing is installed and no
root is needed where the package lists exist. Clips become 16 kHz mono FLAC. A line is left out, counted and
written to `left_out.tsv` when it has no recording, no text, only a scream, a laugh, a hum or a sound effect,
script markup (a `%1` placeholder, a bracketed or parenthesised remark), two different transcripts, or is over 30 s.

Splits. With two main voices there are too few speakers to hold one out, so the test and dev splits take whole
game levels (Czech) or whole prompt families (`conf-*`, `vm-*`, `digits/`, ...: one voice per language), chosen by
a fixed hash; a train or dev line whose sentence also occurs in test is left out. The test split therefore shares
no sentence and no scene with training, but it does share the voices: its WER measures new sentences by known
speakers. `build.json` in each folder says how many clips, minutes, speakers and levels each split has.

    python -m tools.make_real_data [cs es fr it] [--out data/real] [--debs FOLDER]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import soundfile as sf

from helpers.audio import SAMPLING_RATE, AudioError, decode
from helpers.data import CLIP_DURATIONS
from helpers.files import write_json
from helpers.prepare import sentence_key
from helpers.sources import REAL_DIR
from tools.make_sample import SPLITS, swapped_in, write_splits

OUT_DIR = REAL_DIR
MAX_SECONDS = 30.0                                 # Whisper's window: longer clips cannot be learnt from
HELD_OUT = {"test": 0.15, "dev": 0.10}             # share of clips, whole levels or prompt families at a time


class RealDataError(RuntimeError):
    """The packages cannot be fetched or unpacked: the message says what to do."""


@dataclass
class Line:
    """One transcribed recording of a package, before it is cleaned and split."""

    key: str            # the recording's id in the package
    audio: Path | None  # its file (None: the script has a line with no recording)
    text: str
    speaker: str        # client_id; "" when the package does not say
    gender: str
    group: str          # the level or prompt family: splits take whole groups
    listed: bool = True # False: a recording the script has no line for


@dataclass(frozen=True)
class Source:
    locale: str
    title: str
    packages: tuple[str, ...]
    licence: str
    read: Callable[[Path], list[Line]]  # unpacked package root -> lines
    group_name: str                     # what a group is, for build.json and README


# ------------------------------------------------------------------------------------------- Fish Fillets NG

FILLETS = Path("usr/share/games/fillets-ng")
_DIALOG = re.compile(r'dialogId\("([^"]+)"[^\n]*\)\s*dialogStr\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
FISH = {"m": ("cs-fish-small", "female"), "v": ("cs-fish-big", "male")}  # the two main voice actors


def fillets_speaker(level: str, key: str) -> tuple[str, str]:
    """(client_id, gender) from a dialogue id such as "let-m-divna" (level prefix, speaker code, line)."""
    parts = key.split("-")
    code = parts[1] if len(parts) >= 3 else next((p for p in parts if p in FISH), "")
    if code in FISH:
        return FISH[code]
    if code.isalpha():
        return f"cs-{level}-{code}", ""  # a minor character of this level
    return "", ""                        # ids such as "rand-3-2" do not say who speaks


def read_fillets(root: Path) -> list[Line]:
    lines = []
    for script in sorted((root / FILLETS / "script").glob("*/dialogs_cs.lua")):
        level = script.parent.name
        for key, text in _DIALOG.findall(script.read_text(encoding="utf-8")):
            audio = root / FILLETS / "sound" / level / "cs" / f"{key}.ogg"
            speaker, gender = fillets_speaker(level, key)
            text = text.replace('\\"', '"').replace("\\n", " ")
            lines.append(Line(f"{level}/{key}", audio if audio.is_file() else None, text, speaker, gender, level))
    listed = {line.key for line in lines}
    for audio in sorted((root / FILLETS / "sound").glob("*/cs/*.ogg")):
        if f"{audio.parts[-3]}/{audio.stem}" not in listed:
            lines.append(Line(f"{audio.parts[-3]}/{audio.stem}", audio, "", "", "", audio.parts[-3], listed=False))
    return lines


# ------------------------------------------------------------------------------------------ Asterisk prompts

ASTERISK = Path("usr/share/asterisk/sounds")


def read_asterisk(locale: str) -> Callable[[Path], list[Line]]:
    def read(root: Path) -> list[Line]:
        listing = root / f"usr/share/doc/asterisk-core-sounds-{locale}/core-sounds-{locale}.txt.gz"
        voices = sorted(p for p in (root / ASTERISK).glob(f"{locale}_*") if p.is_dir())
        if not listing.is_file() or len(voices) != 1:
            raise RealDataError(f"asterisk-core-sounds-{locale}: expected {listing.name} and one voice folder")
        voice = voices[0]  # e.g. es_MX_f_Allison: language, region, gender, name
        speaker = f"{locale}-{voice.name.split('_')[-1].lower()}"
        gender = {"f": "female", "m": "male"}.get(voice.name.split("_")[2], "")
        lines = []
        for raw in gzip.open(listing, "rt", encoding="utf-8", errors="replace"):
            key, colon, text = raw.strip().partition(":")
            if raw.startswith(";") or not colon or not key.strip():
                continue  # comments and blank lines
            key = key.strip()
            audio = voice / f"{key}.wav"
            group = key.split("/")[0] if "/" in key else key.split("-")[0]
            lines.append(Line(key, audio if audio.is_file() else None, text.strip(), speaker, gender, group))
        listed = {line.key for line in lines}
        for audio in sorted(voice.rglob("*.wav")):
            key = audio.relative_to(voice).with_suffix("").as_posix()
            if key not in listed:
                lines.append(Line(key, audio, "", speaker, gender, key.split("/")[0], listed=False))
        return lines

    return read


SOURCES = {
    "cs": Source("cs", "Fish Fillets NG, Czech voice track (acted game dialogue)",
                 ("fillets-ng-data-cs", "fillets-ng-data"), "GPL-2+", read_fillets, "level"),
    "es": Source("es", "Asterisk core sounds, Mexican Spanish (telephone prompts, 8 kHz)",
                 ("asterisk-core-sounds-es", "asterisk-core-sounds-es-wav"), "CC-BY-SA-3.0", read_asterisk("es"),
                 "prompt family"),
    "fr": Source("fr", "Asterisk core sounds, Canadian French (telephone prompts, 8 kHz)",
                 ("asterisk-core-sounds-fr", "asterisk-core-sounds-fr-wav"), "CC-BY-SA-3.0", read_asterisk("fr"),
                 "prompt family"),
    "it": Source("it", "Asterisk core sounds, Italian (telephone prompts, 8 kHz)",
                 ("asterisk-core-sounds-it", "asterisk-core-sounds-it-wav"), "CC-BY-3.0", read_asterisk("it"),
                 "prompt family"),
}

# ------------------------------------------------------------------------------------------------- cleaning

_VOWELS = "aáàâäeéèêëěiíìîïoóòôöuúùûüůyý"
# A scream, laugh or hum is not a word: vowels (held or run together), or vowels with h, m and c (as in "ch") where
# a letter is held three times or a short syllable repeats ("Ááááá", "Hmmm", "Ehmmm", "chechechech", "hahaha").
_SCREAM = re.compile(rf"^[{_VOWELS}]{{4,}}$|^(?=[{_VOWELS}hmc]+$)(?=.*(?:(.)\1\1|(.{{2,3}})\2\2)).*$")


def why_left_out(text: str) -> str | None:
    """The reason a transcript cannot teach Whisper, or None when it can."""
    words = re.findall(r"\w+", text)
    if not words:
        return "empty line"
    if "%" in text:
        return "script placeholder (%1)"
    if re.search(r"[\[\](){}<>]", text):
        return "bracketed remark or sound effect"
    if all(_SCREAM.match(w.casefold()) for w in words):
        return "scream, laugh or hum"
    return None


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def assign_groups(sizes: dict[str, int], shares: dict[str, float] = HELD_OUT) -> dict[str, str]:
    """group -> split: whole groups in a fixed hash order fill each held-out split up to its share of the clips."""
    total = sum(sizes.values())
    order = sorted(sizes, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
    out, filled = {}, Counter()
    for group in order:
        split = next((s for s, share in shares.items()
                      if filled[s] + sizes[group] <= share * total * 1.25 and filled[s] < share * total), "train")
        out[group] = split
        filled[split] += sizes[group]
    return out


# --------------------------------------------------------------------------------------------------- building


def fetch(packages: tuple[str, ...], debs: Path) -> None:
    """Download the packages' .deb files into `debs` (kept: a second build needs no network)."""
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if not missing:
        return
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise RealDataError(
            f"apt-get and dpkg-deb are needed to fetch {', '.join(missing)} (Debian or Ubuntu). Elsewhere, download "
            f"those .deb files from packages.debian.org by hand into {debs} and run this again."
        )
    debs.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
    if run.returncode != 0:
        raise RealDataError(
            f"apt-get download {' '.join(missing)} failed:\n{run.stderr.strip()}\n"
            "If the package lists are missing, run `sudo apt-get update` once and try again."
        )


def unpack(packages: tuple[str, ...], debs: Path, root: Path) -> None:
    for package in packages:
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        run = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
        if run.returncode != 0:
            raise RealDataError(f"dpkg-deb -x {deb.name} failed: {run.stderr.strip()}")


def build_locale(source: Source, root: Path, out_dir: Path) -> dict:
    """Write out_dir/<locale>/ from the unpacked packages under `root`; return what build.json holds."""
    lines = source.read(root)
    left_out: list[dict[str, str]] = []

    def leave_out(line: Line, reason: str) -> None:
        left_out.append({"id": line.key, "sentence": line.text, "reason": reason})

    texts: dict[str, set[str]] = {}
    for line in lines:
        line.text = clean(line.text)
        texts.setdefault(line.key, set()).add(line.text)
    kept: list[Line] = []
    seen: set[str] = set()
    for line in lines:
        reason = ("recording with no line in the script" if not line.listed
                  else "no recording" if line.audio is None
                  else "two different transcripts for one recording" if len(texts[line.key]) > 1
                  else why_left_out(line.text))
        if reason:
            leave_out(line, reason)
        elif line.key not in seen:  # a line listed twice with the same text counts once
            seen.add(line.key)
            kept.append(line)

    with swapped_in(out_dir / source.locale) as building:
        (building / "clips").mkdir()
        clips, durations = [], {}
        for line in kept:
            name = f"real_{source.locale}_{re.sub(r'[^A-Za-z0-9]+', '_', line.key)}.flac"
            try:
                audio, seconds = decode(line.audio, SAMPLING_RATE)
            except AudioError as err:
                leave_out(line, err.reason)
                continue
            if seconds > MAX_SECONDS:
                leave_out(line, f"over {MAX_SECONDS:.0f} s")
                continue
            sf.write(building / "clips" / name, audio, SAMPLING_RATE, format="FLAC")
            durations[name] = seconds
            clips.append((line, name))

        split_of = assign_groups(Counter(line.group for line, _ in clips))
        test_sentences = {sentence_key(line.text) for line, _ in clips if split_of[line.group] == "test"}
        rows: dict[str, list[dict[str, str]]] = {split: [] for split in SPLITS}
        for line, name in clips:
            split = split_of[line.group]
            if split != "test" and sentence_key(line.text) in test_sentences:
                leave_out(line, "sentence also in test")
                (building / "clips" / name).unlink()
                del durations[name]
                continue
            rows[split].append({"client_id": line.speaker, "path": name, "sentence": line.text,
                                "up_votes": "", "down_votes": "", "age": "", "gender": line.gender, "accents": "",
                                "locale": source.locale, "segment": line.group})
        write_splits(building, rows)
        with (building / CLIP_DURATIONS).open("w", encoding="utf-8") as handle:
            handle.write("clip\tduration[ms]\n")
            handle.writelines(f"{name}\t{round(seconds * 1000)}\n" for name, seconds in durations.items())
        with (building / "left_out.tsv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "sentence", "reason"], delimiter="\t",
                                    quoting=csv.QUOTE_NONE, escapechar="\\")
            writer.writeheader()
            writer.writerows(left_out)
        summary = {
            "locale": source.locale, "source": source.title, "packages": list(source.packages),
            "licence": source.licence, "split_by": source.group_name,
            "splits": {split: {"clips": len(rows[split]),
                               "minutes": round(sum(durations[r["path"]] for r in rows[split]) / 60, 1),
                               "speakers": len({r["client_id"] for r in rows[split]} - {""}),
                               "groups": len({r["segment"] for r in rows[split]})} for split in SPLITS},
            "left_out": dict(Counter(item["reason"] for item in left_out).most_common()),
        }
        write_json(summary, building / "build.json")
        copyrights = [root / "usr/share/doc" / package / "copyright" for package in source.packages]
        (building / "LICENSE.txt").write_text(
            f"{source.title}\nFrom the Debian packages {', '.join(source.packages)}; licence {source.licence}.\n"
            "The packages' copyright files, copied below, name the authors and the full terms.\n"
            + "".join(f"\n===== {path.parent.name} =====\n{path.read_text(encoding='utf-8')}"
                      for path in copyrights if path.is_file()), encoding="utf-8")
    return summary


def build(locales: list[str], out_dir: Path = OUT_DIR, debs: Path | None = None) -> list[dict]:
    debs = Path(debs) if debs else out_dir / ".debs"
    summaries = []
    for locale in locales:
        source = SOURCES[locale]
        fetch(source.packages, debs)
        with tempfile.TemporaryDirectory(prefix="real-data-") as unpacked:
            unpack(source.packages, debs, Path(unpacked))
            summaries.append(build_locale(source, Path(unpacked), out_dir))
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_real_data", description=__doc__.split("\n")[0])
    parser.add_argument("locales", nargs="*", default=list(SOURCES), metavar="LOCALE",
                        help=f"locales to build (default: {' '.join(SOURCES)})")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: data/real)")
    parser.add_argument("--debs", type=Path, default=None, help="where the .deb files are kept (default: OUT/.debs)")
    args = parser.parse_args(argv)
    unknown = [locale for locale in args.locales if locale not in SOURCES]
    if unknown:
        parser.error(f"no real speech for {', '.join(unknown)}; locales: {', '.join(SOURCES)}")
    try:
        for locale in args.locales:
            start = time.perf_counter()
            summary = build([locale], args.out, args.debs)[0]
            splits = ", ".join(f"{s} {v['clips']} clips {v['minutes']} min {v['speakers']} speakers"
                               for s, v in summary["splits"].items())
            left = sum(summary["left_out"].values())
            print(f"{locale}: {splits}; {left} lines left out (left_out.tsv) [{time.perf_counter() - start:.0f} s]")
    except RealDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
