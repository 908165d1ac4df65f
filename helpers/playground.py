"""Try an evaluated model by ear: what it writes for silence and noise, and a widget to transcribe a test clip or
your own recording with each model (notebook 04's last sections)."""

from __future__ import annotations

from itertools import islice
from typing import Any, Sequence

import numpy as np

from helpers.audio import SAMPLING_RATE, decode
from helpers.evaluation import EvalRun, row_at, as_text
from helpers.inference import clip_array, transcribe
from helpers.widgets import is_headless, shorten, wav_bytes


def silence_and_noise(run: EvalRun) -> dict[str, str]:
    """What the model writes for audio without speech: digital silence and white noise, 5 seconds each. A sound
    model writes nothing; fine-tuned models often write a stock phrase from their training data (the best-known
    Whisper hallucination)."""
    n = 5 * SAMPLING_RATE
    clips = {"silence": np.zeros(n, np.float32),
             "noise": (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)}
    result = transcribe(run.model, run.processor, list(clips.values()), language=run.language, batch_size=2)
    return dict(zip(clips, result.texts))


def transcribe_with(runs: Sequence[EvalRun], audio: Any, language: str) -> dict[str, str]:
    """Transcribe one clip (a row, an audio dict or a 16 kHz array) with each evaluated model."""
    return {run.label: transcribe(run.model, run.processor, [audio], language=language, batch_size=1).texts[0]
            for run in runs}


def transcriber(runs: Sequence[EvalRun], clips, language: str, headless: bool | None = None) -> dict[str, str]:
    """The notebook's demo: pick a test clip or upload a file, pick a model (or both), read the transcripts.

    Always transcribes the first clip with the last model of `runs` (the fine-tuned one when there is one) and
    prints it, so a headless run shows one transcription; in a front end it also shows the widget.
    Returns {model label: transcript} for that clip.
    """
    first = row_at(clips, 0)
    texts = transcribe_with(runs[-1:], first, language)
    print(f"clip #0 reference: {as_text(first.get('sentence'))}")
    for label, text in texts.items():
        print(f"{label:>11}: {text}")
    if not is_headless(headless):
        _transcriber_widget(runs, clips, language)
    return texts


def _transcriber_widget(runs: Sequence[EvalRun], clips, language: str):
    import ipywidgets as widgets
    from IPython.display import display

    sentences = [as_text(row.get("sentence")) for row in islice(iter(clips), 50)]  # the first 50 clips to pick from
    choices = [(f"#{i}: {shorten(s, 61)}", i) for i, s in enumerate(sentences)]
    pick = widgets.Dropdown(options=choices, description="Test clip")
    upload = widgets.FileUpload(accept="audio/*,.mp3,.wav,.flac,.ogg", multiple=False, description="Upload")
    which = widgets.ToggleButtons(options=[r.label for r in runs] + (["both"] if len(runs) > 1 else []),
                                  value="both" if len(runs) > 1 else runs[0].label, description="Model")
    button = widgets.Button(description="Transcribe", button_style="primary")
    out = widgets.Output()

    def run(_=None):
        out.clear_output()
        with out:
            if upload.value:
                item = upload.value[0]
                try:
                    audio, _ = decode(bytes(item["content"]), name=item["name"])
                except ValueError as error:
                    print(error)
                    return
                source, reference = f"uploaded {item['name']}", None
            else:
                row = row_at(clips, pick.value)
                audio, source, reference = clip_array(row), f"test clip #{pick.value}", as_text(row.get("sentence"))
            display(widgets.Audio(value=wav_bytes(audio, SAMPLING_RATE), format="wav", autoplay=False))
            print(source)
            if reference is not None:
                print(f"  reference: {reference}")
            chosen = runs if which.value == "both" else [r for r in runs if r.label == which.value]
            for label, text in transcribe_with(chosen, audio, language).items():
                print(f"{label:>11}: {text}")

    def clear_upload(_change):
        upload.value = ()

    button.on_click(run)
    pick.observe(clear_upload, names="value")
    box = widgets.VBox([widgets.HBox([pick, upload]), which, button, out])
    display(box)
    return box
