"""Load one split of a speech dataset as rows Whisper can learn from: `load_split(dataset, language, split)` reads
any kind of `dataset` that helpers.sources finds.

Every row has `audio` = {"array": float32 samples at 16 kHz mono, "sampling_rate": 16000}, `sentence`,
`client_id` (the speaker; "" when the source has none), `path` (the clip's name in the source), `duration` in
seconds and who is speaking (DEMOGRAPHICS). helpers.audio decodes the audio (soundfile + soxr): datasets' own
decoding needs torchcodec and FFmpeg, so the source's audio column is read with `Audio(decode=False)`.

Non-streaming, the split is decoded up front (`Dataset.map`; a local folder in memory, about 4 MB a minute of audio)
with numpy format on the audio column: `row["audio"]["sampling_rate"]` is then a 0-d int64 array (datasets 5.2
formats nested scalars that way). streaming=True gives an IterableDataset that decodes clip by clip, with
`features` None on purpose: with features set, datasets 5.2 turns every sample into a Python float and back,
which made streaming the sample 60 times slower (45 s instead of 0.8 s).

decode=False (what training uses) decodes nothing: each row is light (about 200 bytes), its `audio` a reference
{"bytes": None or the encoded file, "path": the file} that `decode_clip` decodes when a batch needs it, its
`duration` from Common Voice's clip_durations.tsv (None when unknown), plus `split` and `row` (where it came
from). A million-row split stays a few hundred MB, and nothing per clip is written to disk.

Rows that cannot be used (missing or corrupt clip, empty sentence, a row with a missing field) are skipped; with
decode=False a corrupt clip is found only when it is decoded. Each skip is a dict {"split", "path", "row", "reason"}
(row: the line in the TSV/metadata file, header = 1, or the index in a repository's split), kept in `ds.skipped`
and appended to the `skipped` list if given.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc

from helpers.audio import SAMPLING_RATE, AudioError, decode
from helpers.files import display_path
from helpers.sources import Source, metadata_file, pick_split, resolve

# Transcript columns, best first: Common Voice; FLEURS and VoxPopuli keep casing and punctuation in their "raw"
# column; Multilingual LibriSpeech; generic.
TEXT_COLUMNS = ("sentence", "raw_transcription", "transcription", "raw_text", "normalized_text", "transcript", "text")
SPEAKER_COLUMNS = ("client_id", "speaker_id")
# Who is speaking, as Common Voice records it (empty where the speaker did not say): read with every row so that
# evaluation can say whom a model fails. Source column names, best first, for each of ours.
DEMOGRAPHICS = {"age": ("age",), "gender": ("gender",), "accents": ("accents", "accent"), "variant": ("variant",)}

FEATURES = datasets.Features(
    {
        "audio": {"array": datasets.List(datasets.Value("float32")), "sampling_rate": datasets.Value("int64")},
        "sentence": datasets.Value("string"),
        "client_id": datasets.Value("string"),
        "path": datasets.Value("string"),
        "duration": datasets.Value("float64"),
        **{name: datasets.Value("string") for name in DEMOGRAPHICS},
    }
)
# decode=False: the audio as a reference to decode later, where the row came from (split, line)
LIGHT_FEATURES = datasets.Features({**FEATURES, "audio": {"bytes": datasets.Value("binary"),
                                                           "path": datasets.Value("string")},
                                    "split": datasets.Value("string"), "row": datasets.Value("int64")})
_DECODING = datasets.Features({**FEATURES, "split": datasets.Value("string"), "row": datasets.Value("int64"),
                               "skip": datasets.Value("string")})  # while decoding: a light row's origin, a skip
# Skip reasons found by reading a clip (each record's reason starts with one of them, then ": " and the details)
SKIP_MISSING = "missing clip"
SKIP_BAD_AUDIO = "bad audio"
CLIP_DURATIONS = "clip_durations.tsv"  # Common Voice releases since 2023: clip name -> duration in ms

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- public API


def load_split(dataset: str, language: str, split: str, streaming: bool = False, skipped: list | None = None,
               decode: bool = True):
    """Load `split` ("train", "dev"/"validation", "test", or several joined by "+") of `dataset` in `language`.

    Returns a datasets.Dataset (or an IterableDataset with streaming=True) with the columns described in the
    module docstring, and the skipped rows in its `skipped` attribute (also appended to `skipped` if given).
    decode=False gives light rows whose audio is decoded later (`decode_clip`), for data of any size.
    Raises ValueError for an unknown language, split or dataset layout, FileNotFoundError for a missing folder.
    """
    source = resolve(dataset, language)
    names = [part.strip() for part in split.split("+")]
    own: list[dict] = []
    sink = _SkipSink(own, skipped)
    ds = _stream(source, names, sink, decode) if streaming else _eager(source, names, sink, decode)
    if decode and not streaming:
        ds.set_format("numpy", columns=["audio"], output_all_columns=True)
    ds.skipped = own
    return ds


def load_capped(dataset: str, language: str, split: str, max_clips: int = 0, skipped: list | None = None):
    """`helpers.data.load_split`, reading at most `max_clips` usable rows (0 = the whole split).

    A full Common Voice split can hold hundreds of thousands of clips; decoding them all just to look at them
    takes hours. With a cap the split is streamed and only its first rows are decoded. The result is a
    `datasets.Dataset` either way, with `skipped` (the rows skipped before the cap) and `capped` (True when the
    cap was reached, so the numbers describe the first `max_clips` rows only).
    """
    if not max_clips:
        ds = load_split(dataset, language, split, skipped=skipped)
        ds.capped = False
        return ds
    own: list = []
    stream = load_split(dataset, language, split, streaming=True, skipped=own)
    rows = list(itertools.islice(stream, max_clips))
    ds = datasets.Dataset.from_list(rows, features=FEATURES)
    ds.set_format("numpy", columns=["audio"], output_all_columns=True)
    ds.skipped, ds.capped = own, len(rows) == max_clips
    if skipped is not None:
        skipped.extend(own)
    return ds


def text_rows(dataset: str, language: str, split: str, max_rows: int = 0) -> list[dict]:
    """The `sentence`, `client_id` and `path` of a split's rows, without reading any audio.

    For questions about the text and the speakers (leaks between splits, how big a split is), where decoding
    every clip would cost minutes on a full Common Voice split. Rows with an empty sentence or a malformed line
    are left out (`load_split` reports those); `max_rows` > 0 stops after that many rows. Common Voice folders
    and audiofolders are read from their TSV, CSV or JSON lines alone; a dataset repository is streamed, which
    still downloads its audio (without decoding it).
    """
    source = resolve(dataset, language)
    out = []
    for row in _rows(source, pick_split(source, split)):
        sentence = (row["sentence"] or "").strip()
        if sentence and not row["skip"]:
            out.append({"sentence": sentence, "client_id": str(row["client_id"] or ""), "path": _name(row)})
            if len(out) == max_rows:
                break
    return out


def decode_clip(row: dict) -> tuple[np.ndarray | None, str]:
    """The 16 kHz mono samples of a row of `load_split` (decoded or light), and "" ; or (None, the reason) when the
    clip cannot be used (missing, corrupt). Safe to call in DataLoader worker processes."""
    audio = row.get("audio") or {}
    if isinstance(audio, dict) and audio.get("array") is not None:
        return np.asarray(audio["array"], dtype=np.float32), ""
    array, _, reason = _read_audio(audio, row.get("path") or "")
    return array, reason


def write_skipped(skipped: list[dict], path: str | Path) -> Path:
    """Write skip records as CSV (columns split, path, row, reason); returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["split", "path", "row", "reason"])
        writer.writeheader()
        writer.writerows(skipped)
    return path


# ----------------------------------------------------------------------------------------------- reading rows


def _rows(source: Source, split: str):
    """Yield rows in our shape {"row", "audio": {"bytes", "path"}, "sentence", "client_id", "path", "skip", ...}
    as the source holds them, nothing decoded (a repository is streamed); "skip" holds the reason when the row
    itself is unusable."""
    if source.kind == "common_voice":
        yield from _cv_rows(source.location, source.splits[split])
    elif source.kind == "audiofolder":
        yield from _audiofolder_rows(source.splits[split])
    else:
        raw, columns = _load_repository(source, split, streaming=True)
        for index, example in enumerate(raw):
            yield {**{ours: example[theirs] if theirs else None for ours, theirs in columns.items()}, "row": index,
                   "skip": ""}


def _name(row: dict) -> str:
    """The clip's name: the row's path, else the file name its audio was stored under."""
    return row["path"] or Path(str(_as_reference(row["audio"]).get("path") or "")).name


def _cv_rows(folder: Path, tsv: Path):
    clips = folder / "clips"
    with tsv.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)  # sentences contain quotes
        header = next(reader)
        for fields in reader:
            if not fields:
                continue
            row = dict(zip(header, fields))
            clip = row.get("path", "")
            skip = ""
            if len(fields) != len(header):
                skip = f"missing field: expected {len(header)} tab-separated fields, found {len(fields)}"
            yield _row(reader.line_num, clips / clip if clip else None, row.get("sentence", ""),
                       row.get("client_id", ""), clip, skip, _who(row))


def _audiofolder_rows(folder: Path):
    metadata = metadata_file(folder)
    with metadata.open(encoding="utf-8-sig", newline="") as handle:
        if metadata.suffix == ".csv":
            reader = csv.DictReader(handle)
            records = [(reader.line_num, record) for record in reader]
            columns = reader.fieldnames or []
        else:
            records = [(number, _json_record(line)) for number, line in enumerate(handle, start=1) if line.strip()]
            columns = list(dict.fromkeys(key for _, record in records for key in record))
    text = next((c for c in TEXT_COLUMNS if c in columns), None)
    speaker = next((c for c in SPEAKER_COLUMNS if c in columns), None)
    if "file_name" not in columns or text is None:
        raise ValueError(
            f"{display_path(metadata)} needs a file_name column and a transcript column ({', '.join(TEXT_COLUMNS)}); "
            f"found: {', '.join(c for c in columns if c) or 'none'}."
        )
    for number, record in records:
        missing = [c for c in ("file_name", text) if record.get(c) is None]
        skip = record.get("_error") or (f"missing field: no {' or '.join(missing)}" if missing else "")
        name = record.get("file_name") or ""
        yield _row(number, folder / name if name else None, record.get(text) or "",
                   record.get(speaker) if speaker else "", name, skip, _who(record))


def _json_record(line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return {"_error": f"missing field: line is not valid JSON ({err.msg})"}
    return record if isinstance(record, dict) else {"_error": "missing field: line is not a JSON object"}


def _who(record: dict) -> dict[str, str]:
    """The demographic columns of a source row (empty strings where absent)."""
    return {ours: next((str(record[c]) for c in theirs if record.get(c) not in (None, "")), "")
            for ours, theirs in DEMOGRAPHICS.items()}


def _row(number: int, file: Path | None, sentence: str, client_id, path: str, skip: str, who: dict) -> dict:
    audio = {"bytes": None, "path": str(file) if file else None}
    return {"row": number, "audio": audio, "sentence": sentence, "client_id": str(client_id or ""), "path": path,
            "skip": skip, **who}


# ----------------------------------------------------------------------------------------------- decoding


def _as_reference(audio) -> dict:
    """An audio value as {"bytes", "path"}: a bare path becomes one."""
    return {"bytes": None, "path": audio} if isinstance(audio, str) else dict(audio or {})


def _missing(audio: dict, path: str) -> str:
    """Why the clip of an audio reference is not there ("" when it is), found without decoding it."""
    if audio.get("bytes") or (audio.get("path") and Path(audio["path"]).is_file()):
        return ""
    return f"{SKIP_MISSING}: {path or '(no path)'} not found"


def _read_audio(audio, path: str) -> tuple[np.ndarray | None, float, str]:
    """(16 kHz samples, seconds, "") for an audio reference, or (None, 0.0, the reason) when it cannot be used."""
    audio = _as_reference(audio)
    path = path or audio.get("path") or ""
    problem = _missing(audio, path)
    if problem:
        return None, 0.0, problem
    try:
        array, duration = decode(audio.get("bytes") or audio["path"], SAMPLING_RATE, name=path)
    except AudioError as err:
        return None, 0.0, f"{SKIP_BAD_AUDIO}: {err.reason}"
    return array, duration, ""


def _decoded(row: dict) -> dict:
    """A light row with its audio decoded ({"array", "sampling_rate"}, the real duration), or the reason it cannot
    be used in "skip"."""
    sentence = (row["sentence"] or "").strip()
    array, duration, reason = _read_audio(row["audio"], row["path"]) if sentence else (None, 0.0, "empty sentence")
    audio = {"array": np.zeros(0, np.float32) if array is None else array, "sampling_rate": SAMPLING_RATE}
    return {**row, "audio": audio, "sentence": sentence, "duration": duration, "skip": reason}


def _repository_columns(features: dict, shown: str) -> dict:
    names = list(features)
    audio = next((n for n, f in features.items() if isinstance(f, datasets.Audio)), None)
    audio = audio or ("audio" if "audio" in names else None)
    text = next((c for c in TEXT_COLUMNS if c in names), None)
    if audio is None or text is None:
        raise ValueError(
            f"Dataset repository {shown} needs an audio column and a transcript column ({', '.join(TEXT_COLUMNS)}); "
            f"found: {', '.join(names)}."
        )
    return {"audio": audio, "sentence": text, "client_id": next((c for c in SPEAKER_COLUMNS if c in names), None),
            "path": "path" if "path" in names else None,
            **{ours: next((c for c in theirs if c in names), None) for ours, theirs in DEMOGRAPHICS.items()}}


def _load_repository(source: Source, split: str, streaming: bool):
    ds = datasets.load_dataset(str(source.location), source.config, split=split, streaming=streaming)
    columns = _repository_columns(ds.features, source.shown)
    return ds.cast_column(columns["audio"], datasets.Audio(decode=False)), columns


def _light_row(row: dict, requested: str, durations: dict) -> dict:
    """A row of decode=False, or its skip reason in "skip" (checked without decoding: sentence, field, file)."""
    sentence = (row["sentence"] or "").strip()
    audio = _as_reference(row["audio"])
    skip = row.get("skip") or ("" if sentence else "empty sentence") or _missing(audio, row["path"])
    name = _name(row)
    return {"audio": {"bytes": audio.get("bytes"), "path": audio.get("path")}, "sentence": sentence,
            "client_id": str(row["client_id"] or ""), "path": name, "duration": durations.get(Path(name).name),
            **{k: str(row.get(k) or "") for k in DEMOGRAPHICS}, "split": requested, "row": row["row"], "skip": skip}


def _clip_durations(source: Source) -> dict[str, float]:
    """Clip name -> seconds from Common Voice's clip_durations.tsv (header `clip`, `duration[ms]`), if present."""
    if source.kind != "common_voice" or not (Path(source.location) / CLIP_DURATIONS).is_file():
        return {}
    out = {}
    with (Path(source.location) / CLIP_DURATIONS).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        for fields in reader:
            try:
                out[fields[0]] = float(fields[1]) / 1000.0
            except (IndexError, ValueError):
                continue  # a malformed line only means that clip's duration is learnt when it is decoded
    return out


def _light_part(source: Source, requested: str, durations: dict) -> tuple[datasets.Dataset, list[dict]]:
    """The light rows of one requested split, nothing decoded, and the skip records of the rows left out."""
    split = pick_split(source, requested)
    if source.kind == "repository":  # the audio stays in the repository's own (memory-mapped) files
        raw, columns = _load_repository(source, split, streaming=False)
        part = raw.select_columns([c for c in dict.fromkeys(columns.values()) if c])
        part = part.rename_columns({theirs: ours for ours, theirs in columns.items() if theirs and theirs != ours})
        n = part.num_rows
        stored = pc.struct_field(part.data.column("audio"), "path").to_pylist()  # the clips' names, bytes not read
        for name, values in (("client_id", [""] * n), ("path", [Path(p or "").name for p in stored]),
                             ("duration", [None] * n),
                             *((k, [""] * n) for k in DEMOGRAPHICS), ("split", [requested] * n),
                             ("row", list(range(n)))):
            if name not in part.column_names:
                part = part.add_column(name, values)
        return part.select_columns(list(LIGHT_FEATURES)).cast(LIGHT_FEATURES), []
    columns: dict[str, list] = {name: [] for name in LIGHT_FEATURES}
    found = []
    for row in _rows(source, split):
        light = _light_row(row, requested, durations)
        reason = light.pop("skip")
        if reason:
            found.append({"split": requested, "path": light["path"], "row": row["row"], "reason": reason})
            continue
        for name, value in light.items():
            columns[name].append(value)
    return datasets.Dataset.from_dict(columns, features=LIGHT_FEATURES), found


def _decode_part(part: datasets.Dataset, requested: str) -> tuple[datasets.Dataset, list[dict]]:
    """A split's light rows decoded, and the skip records of the clips that cannot be used."""
    if part.num_rows == 0:  # map() would not create our columns
        decoded = datasets.Dataset.from_dict({name: [] for name in _DECODING}, features=_DECODING)
    else:
        decoded = part.map(_decoded, remove_columns=part.column_names, features=_DECODING,
                           writer_batch_size=64, desc=f"Decoding {requested}")
    reasons = list(decoded["skip"])
    found = []
    if any(reasons):
        paths, numbers = list(decoded["path"]), list(decoded["row"])
        found = [{"split": requested, "path": paths[i], "row": numbers[i], "reason": reason}
                 for i, reason in enumerate(reasons) if reason]
        decoded = decoded.select([i for i, reason in enumerate(reasons) if not reason])
    return decoded.remove_columns(["split", "row", "skip"]), found


def _eager(source: Source, names: list[str], sink: "_SkipSink", decode: bool) -> datasets.Dataset:
    """The requested splits as one Dataset: light rows, or decoded ones."""
    durations = {} if decode else _clip_durations(source)
    parts = []
    for requested in names:
        part, found = _light_part(source, requested, durations)
        if decode:
            part, more = _decode_part(part, requested)
            found = sorted(found + more, key=lambda record: record["row"])
        for record in found:
            sink.add(record)
        _log_summary(source, requested, part.num_rows, found)
        parts.append(part)
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _stream(source: Source, names: list[str], sink: "_SkipSink", decode: bool) -> datasets.IterableDataset:
    splits = [(requested, pick_split(source, requested)) for requested in names]  # unknown splits fail now
    durations = {} if decode else _clip_durations(source)

    def generate():
        for requested, split in splits:
            count = 0
            for row in _rows(source, split):
                result = _light_row(row, requested, durations)
                if decode and not result["skip"]:
                    result = _decoded(result)
                reason = result.pop("skip")
                if reason:
                    sink.add({"split": requested, "path": result["path"], "row": row["row"], "reason": reason})
                    continue
                if decode:
                    del result["split"], result["row"]
                count += 1
                yield result
            _log_summary(source, requested, count, [s for s in sink.own if s["split"] == requested])

    # No `features`: datasets would turn every sample into a Python float; rows pass through as decoded.
    return datasets.IterableDataset.from_generator(generate)


class _SkipSink:
    """Collects skip records once each (a stream may be iterated several times)."""

    def __init__(self, own: list, extra: list | None):
        self.own, self.extra, self.seen = own, extra, set()

    def add(self, record: dict) -> None:
        key = (record["split"], record["row"])
        if key in self.seen:
            return
        self.seen.add(key)
        self.own.append(record)
        if self.extra is not None:
            self.extra.append(record)


def _log_summary(source: Source, split: str, count: int, skipped: list[dict]) -> None:
    if skipped:
        kinds = Counter(record["reason"].split(":")[0] for record in skipped)
        details = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        logger.warning("%s split %r: %d rows, %d skipped (%s); see ds.skipped", source.shown, split, count,
                       len(skipped), details)
    else:
        logger.info("%s split %r: %d rows, none skipped", source.shown, split, count)
