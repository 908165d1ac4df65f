"""The model card (README.md beside a saved model) and the upload to the Hub.

Notebook 03 writes the card when it saves a model (`write_model_card`); notebook 04 puts its evaluation into it
(`update_model_card`, replaced on the next evaluation). Both write the model-index the Hub reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers.files import hub_id
from helpers.normalize import base_language
from helpers.sources import dataset_title

SECTION_START = "<!-- evaluation results: start -->"
SECTION_END = "<!-- evaluation results: end -->"
METRIC_NAMES = {"wer": "WER (normalised, %)", "wer_orthographic": "WER (orthographic, %)", "cer": "CER (normalised, %)"}


def eval_results(metrics: dict, dataset: str, language: str, split: str) -> list:
    """The model-index entries (huggingface_hub EvalResult) of the metrics in METRIC_NAMES that `metrics` has."""
    from huggingface_hub import EvalResult

    return [EvalResult(task_type="automatic-speech-recognition", task_name="Automatic Speech Recognition",
                       dataset_type=hub_id(dataset) or "common_voice", dataset_name=dataset_title(dataset),
                       dataset_config=language, dataset_split=split, metric_type=key.split("_")[0],
                       metric_value=round(float(metrics[key]), 2), metric_name=name)
            for key, name in METRIC_NAMES.items() if metrics.get(key) is not None]


def base_model_id(model: str) -> str | None:
    """The Hub id of the base model: `model` itself, or OpenAI's id for a local conversion (models/whisper-base)."""
    name = Path(model.rstrip("/")).name
    if Path(model).exists() and re.fullmatch(r"whisper-(tiny|base|small|medium|large(-v[23])?)(\.en)?", name):
        return f"openai/{name}"
    return hub_id(model)


def write_model_card(model_dir: str | Path, *, base_model: str, dataset: str, language: str, metrics: dict,
                     zero_shot_metrics: dict | None = None, eval_split: str = "test",
                     hyperparameters: dict | None = None) -> Path:
    """README.md with model-index metadata (model, dataset, language, WER) next to a model notebook 03 saved."""
    from huggingface_hub import ModelCard, ModelCardData

    from helpers.languages import whisper_language

    name = f"{Path(base_model.rstrip('/')).name}-{language}"  # e.g. whisper-small-es
    try:
        spoken = f"{whisper_language(language).title()} ({language})"
    except ValueError:
        spoken = language
    hub_dataset = hub_id(dataset)
    data = ModelCardData(
        language=base_language(language), license="mit", library_name="transformers",
        pipeline_tag="automatic-speech-recognition", base_model=base_model_id(base_model),
        datasets=[hub_dataset] if hub_dataset else None, metrics=["wer"],
        tags=["whisper", "automatic-speech-recognition", "fine-tuned"], model_name=name,
        eval_results=eval_results({k: metrics.get(k) for k in ("wer", "wer_orthographic")}, dataset, language,
                                  eval_split),
    )
    zero_shot_wer = (zero_shot_metrics or {}).get("wer")
    before = "" if zero_shot_wer is None else f" (before fine-tuning: {float(zero_shot_wer):.1f}%)"
    params = "\n".join(f"- {k}: {v}" for k, v in (hyperparameters or {}).items())
    body = f"""
# {name}

Whisper fine-tuned for {spoken} speech recognition from `{base_model}` on {dataset_title(dataset)} ({dataset}).

## Results on the {eval_split} split

- WER, normalised text: {float(metrics['wer']):.1f}%{before}
- WER, text as written: {float(metrics.get('wer_orthographic', float('nan'))):.1f}%

## Use

```python
from transformers import WhisperForConditionalGeneration, WhisperProcessor
processor = WhisperProcessor.from_pretrained("path/to/this/folder")
model = WhisperForConditionalGeneration.from_pretrained("path/to/this/folder")
# language and task are in the generation config: model.generate(input_features) transcribes {spoken}
```

## Training

{params}
"""
    path = Path(model_dir) / "README.md"
    ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").save(path)
    return path


def update_model_card(model_dir: str | Path, results: dict) -> Path:
    """Put notebook 04's results (results.json's record) into the model card of a saved model.

    The model-index gets normalised WER, orthographic WER and CER for this dataset, language and split (replacing
    earlier entries with the same name there, keeping all others), and the text an "Evaluation" section (replaced
    on the next run). A folder without README.md gets a minimal card.
    """
    from huggingface_hub import ModelCard, ModelCardData

    path = Path(model_dir) / "README.md"
    name = Path(model_dir).parent.name or "model"
    if path.is_file():
        card = ModelCard.load(path)
    else:
        card = ModelCard(f"---\n{ModelCardData(language=base_language(results['language'])).to_yaml()}\n---\n"
                         f"\n# {name}\n")
    new = eval_results(results, results["dataset"], results["language"], results["split"])
    keys = {(r.dataset_config, r.dataset_split, r.metric_name) for r in new}
    kept = [r for r in (card.data.eval_results or []) if (r.dataset_config, r.dataset_split, r.metric_name) not in keys]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or name
    section = _results_section(results)  # replaces the one of an earlier evaluation
    text, found = re.subn(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), lambda _: section, card.text,
                          flags=re.S)
    card.text = text if found else card.text.rstrip() + "\n\n" + section + "\n"
    card.save(path)
    return path


def _results_section(results: dict) -> str:
    def cells(record: dict) -> str:
        return " | ".join("" if record.get(k) is None else f"{record[k]:.2f}" for k in METRIC_NAMES)

    base = results.get("baseline") or {}
    lines = [SECTION_START, "", f"## Evaluation ({results['split']} split, {results['num_samples']} clips)", "",
             "| model | WER % (normalised) | WER % (orthographic) | CER % |", "|---|---|---|---|"]
    if results.get("finetuned") and base:
        lines.append(f"| zero-shot `{base['model']}` | {cells(base)} |")
    lines.append(f"| this model | {cells(results)} |")
    if results.get("relative_wer_improvement") is not None:
        lines += ["", f"Relative WER improvement over zero-shot: {results['relative_wer_improvement']:.1f}%."]
    confidence = results.get("confidence") or {}
    interval = (confidence.get("finetuned") or confidence.get("baseline") or {}).get("wer") or {}
    if interval.get("low") is not None:
        lines += ["", f"95% bootstrap interval of this model's WER: {interval['low']:.1f} to {interval['high']:.1f}% "
                  f"({interval['groups']} {interval['resampled']} drawn whole, {interval['resamples']} draws)."]
    difference = confidence.get("wer_difference_finetuned_minus_baseline") or {}
    if difference.get("low") is not None:
        lines += [f"Fine-tuned minus zero-shot WER: {difference['value']:+.1f} points (interval "
                  f"{difference['low']:+.1f} to {difference['high']:+.1f}); fine-tuning helped in "
                  f"{100 * difference['probability_improved']:.0f}% of the paired draws."]
    lines += ["", f"Normalised with Whisper's `{results['normalizer']}`; dataset `{results['dataset']}`, "
              f"language `{results['language']}`.", "", SECTION_END]
    return "\n".join(lines)


def push_model(model_dir: str | Path, repo_id: str) -> str:
    """Upload run_dir/model to a private Hub repository (token from the environment or `hf auth login`, never a
    parameter)."""
    from huggingface_hub import HfApi, get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise RuntimeError(
            "push_to_hub=True but no Hugging Face token was found: run `hf auth login` in a terminal or set the "
            "HF_TOKEN environment variable (never put a token in a notebook parameter)."
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=True, exist_ok=True)
    api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, commit_message="Fine-tuned Whisper")
    return f"https://huggingface.co/{repo_id}"
