"""Where a dataset is and what it holds: the five kinds of `dataset` that helpers.data reads, found from the name.

    "sample"                       the embedded sample, data/sample/<language> (laid out like Common Voice)
    "real"                         real human speech from Debian packages, data/real/<language> (`make real-data`)
    a Common Voice locale folder   train.tsv, dev.tsv, test.tsv, validated.tsv, ... and clips/
    a Common Voice release folder  one locale folder per language, e.g. cv-corpus-23.0-2025-09-05/es
    an audiofolder                 metadata.csv or metadata.jsonl (file_name + sentence/transcription/text),
                                   in split folders train/, dev/ (or validation/), test/, or in one folder (= train)
    a dataset repository           a Hub id such as "google/fleurs" (the language is the configuration), or a
                                   local folder laid out like one (parquet files, README.md listing configurations)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets

from helpers import ROOT
from helpers.files import display_path, hub_id

SAMPLE_DIR = ROOT / "data" / "sample"
REAL_DIR = ROOT / "data" / "real"
# Short dataset names for folders of Common Voice-style locale folders this project makes: name -> (folder, its
# title in model cards and messages, how to make it when it is missing).
NAMED_DATASETS = {
    "sample": (SAMPLE_DIR, "embedded Common Voice-style sample", "it ships with the repository: restore it from git"),
    "real": (REAL_DIR, "real speech from Debian packages", "build it with `make real-data`"),
}
CV_SPLIT_FILES = ("train.tsv", "dev.tsv", "test.tsv", "validated.tsv")  # any of these marks a locale folder
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
SPLIT_ALIASES = (("dev", "validation", "valid", "val"), ("train", "training"), ("test", "testing"))


@dataclass
class Source:
    kind: str  # "common_voice", "audiofolder" or "repository"
    location: Path | str
    shown: str  # how messages name it (relative to the repository root when inside it)
    splits: dict = field(default_factory=dict)  # split name -> TSV file / folder (repository: name -> name)
    config: str | None = None  # repository configuration

    @property
    def label(self) -> str:
        kinds = {"common_voice": "Common Voice locale folder", "audiofolder": "audiofolder",
                 "repository": "dataset repository"}
        config = f" (configuration {self.config!r})" if self.config else ""
        return f"{kinds[self.kind]} {self.shown}{config}"

    def __str__(self) -> str:
        return f"{self.label}, splits: {', '.join(sorted(self.splits))}"


def dataset_folder(dataset: str, language: str) -> Path:
    """The folder a dataset name stands for: data/<name>/<language> for "sample" and "real", else the path given."""
    if str(dataset) in NAMED_DATASETS:
        return NAMED_DATASETS[str(dataset)][0] / language
    return Path(str(dataset)).expanduser()


def dataset_title(dataset: str) -> str:
    """How model cards name a dataset: the title of a named one, else the folder's or Hub repository's name."""
    if str(dataset) in NAMED_DATASETS:
        return NAMED_DATASETS[str(dataset)][1]
    return Path(str(dataset)).name or str(dataset)


def resolve_dataset(dataset: str, language: str) -> str:
    """Say what `dataset` is for `language`: which kind of source, where, and its splits."""
    return str(resolve(dataset, language))


def resolve(dataset: str, language: str) -> Source:
    # The language is not checked against Whisper's list here: reading data needs only its folder or config,
    # and a Common Voice locale that Whisper lacks must still load (the model side applies the fallbacks).
    dataset = str(dataset)
    if dataset in NAMED_DATASETS:
        return _named_source(dataset, language)
    path = Path(dataset).expanduser()
    if path.is_dir():
        return _local_source(path, display_path(path), language)
    if hub := hub_id(dataset):
        return _repository_source(hub, hub, language)
    raise FileNotFoundError(f"Dataset folder {dataset!r} not found (a Hub id looks like 'org/name').")


def _named_source(name: str, language: str) -> Source:
    root, title, how = NAMED_DATASETS[name]
    folder = dataset_folder(name, language)
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and _is_cv_folder(p)) if root.is_dir() else []
        raise ValueError(
            f"The {title} ({name!r}) has no language {language!r} (expected folder {display_path(folder)}); "
            f"languages there: {', '.join(found) or f'none ({display_path(root)} is missing: {how})'}."
        )
    return _common_voice_source(folder, display_path(folder))


def _local_source(path: Path, shown: str, language: str) -> Source:
    if _is_cv_folder(path):
        return _common_voice_source(path, shown)
    locales = sorted(p.name for p in path.iterdir() if p.is_dir() and _is_cv_folder(p))
    if locales:  # a release folder
        match = [name for name in locales if name == language] or [n for n in locales if n.lower() == language.lower()]
        if not match:
            raise ValueError(
                f"No locale folder {language!r} in Common Voice release folder {shown}; locales found: "
                f"{', '.join(locales)}."
            )
        return _common_voice_source(path / match[0], f"{shown}/{match[0]}")
    splits = {p.name: p for p in sorted(path.iterdir()) if p.is_dir() and metadata_file(p)}
    if splits or metadata_file(path):  # one folder alone is the train split, as in datasets' audiofolder
        return Source("audiofolder", path, shown, splits or {"train": path})
    if any(path.rglob("*.parquet")) or any(path.rglob("*.arrow")) or (path / "README.md").is_file():
        return _repository_source(str(path), shown, language)
    entries = sorted(p.name for p in path.iterdir())[:10]
    raise ValueError(
        f"{shown} is not a Common Voice locale folder (expected {', '.join(CV_SPLIT_FILES)} and clips/), nor a "
        f"release folder of locale folders, nor an audiofolder ({' or '.join(METADATA_FILES)} with file_name and a "
        f"transcript column), nor a dataset repository (parquet files). Found: {', '.join(entries) or 'nothing'}."
    )


def _is_cv_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in CV_SPLIT_FILES)


def _common_voice_source(folder: Path, shown: str) -> Source:
    splits = {}
    for tsv in sorted(folder.glob("*.tsv")):  # also reported.tsv, clip_durations.tsv, ...: keep clip lists only
        with tsv.open(encoding="utf-8-sig", newline="") as handle:  # -sig: a byte-order mark is not part of a name
            header = handle.readline().rstrip("\r\n").split("\t")
        if "path" in header and "sentence" in header:
            splits[tsv.stem] = tsv
    if not splits:
        raise ValueError(f"{shown}: no TSV file with 'path' and 'sentence' columns (Common Voice clip lists).")
    if not (folder / "clips").is_dir():
        raise FileNotFoundError(f"{shown}: no clips/ folder (Common Voice keeps the audio in clips/ next to the TSVs).")
    return Source("common_voice", folder, shown, splits)


def metadata_file(folder: Path) -> Path | None:
    return next((folder / name for name in METADATA_FILES if (folder / name).is_file()), None)


def _repository_source(dataset_id: str, shown: str, language: str) -> Source:
    try:
        configs = datasets.get_dataset_config_names(dataset_id)
    except Exception as err:
        if not Path(dataset_id).is_dir():
            raise
        raise ValueError(
            f"{shown} is not a Common Voice locale or release folder nor an audiofolder, and datasets cannot read it "
            f"as a dataset repository (a README.md or parquet files under data/): {type(err).__name__}: {err}"
        ) from None
    if language in configs:
        config = language
    elif configs == ["default"]:
        config = None  # one configuration: the language only tells Whisper what it hears
    else:
        raise ValueError(
            f"Dataset repository {shown} has no configuration {language!r}; available: {', '.join(configs)}."
        )
    names = datasets.get_dataset_split_names(dataset_id, config)
    return Source("repository", dataset_id, shown, {name: name for name in names}, config)


def pick_split(source: Source, requested: str) -> str:
    aliases = next((group for group in SPLIT_ALIASES if requested in group), ())
    for name in (requested, *aliases):
        if name in source.splits:
            return name
    raise ValueError(f"No split {requested!r} in {source.label}; available: {', '.join(sorted(source.splits))}.")
