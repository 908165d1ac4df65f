"""Which Whisper language goes with a dataset's language code.

Datasets name languages their own way (Common Voice "zh-CN", FLEURS "es_419", Multilingual LibriSpeech
"spanish"). A Whisper name or code is used as it is; otherwise the base code before "-" or "_", through ALIASES
(other spellings of a Whisper language). A language Whisper was not trained on gets a related one from FALLBACKS,
with a warning: fine-tuning teaches the rest. Anything else raises ValueError with close matches; to support a
new code, add one line to helpers/language_fallbacks.tsv. Whisper's table comes from transformers (99 languages,
plus Cantonese "yue", which only large-v3 knows).
"""

from __future__ import annotations

import difflib
import re
import warnings

from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES  # "es" -> "spanish"
from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE  # "spanish" -> "es", also aliases

from helpers.files import read_table

# Other codes for a language Whisper has (the same language, so no warning).
ALIASES = {
    "jv": "jw",  # Javanese: Whisper uses the old code
    "nb": "no",  # Norwegian Bokmål (FLEURS "nb_no")
    "cmn": "zh",  # Mandarin (FLEURS "cmn_hans_cn")
    "fil": "tl",  # Filipino (FLEURS "fil_ph")
}

# Languages Whisper lacks -> [Whisper language name, why that one]: one line each in language_fallbacks.tsv.
FALLBACKS = read_table("language_fallbacks.tsv")


def _resolve(locale: str) -> str:
    key = str(locale).strip().lower()
    if key in TO_LANGUAGE_CODE:  # a Whisper name such as "spanish" or "castilian"
        return WHISPER_LANGUAGES[TO_LANGUAGE_CODE[key]]
    for code in (key, re.split(r"[-_]", key)[0]):  # then the base code: "zh-CN" -> "zh", "es_419" -> "es"
        code = ALIASES.get(code, code)
        if code in WHISPER_LANGUAGES:
            return WHISPER_LANGUAGES[code]
        if code in FALLBACKS:
            name, reason = FALLBACKS[code]
            warnings.warn(f"Whisper was not trained on {locale!r}; using {name!r} instead ({reason}).", stacklevel=3)
            return name
    candidates = sorted(set(WHISPER_LANGUAGES) | set(TO_LANGUAGE_CODE) | set(ALIASES) | set(FALLBACKS))
    close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown language code {locale!r}: it is neither one of Whisper's languages nor in the "
                     f"fallback table (helpers/language_fallbacks.tsv).{hint} Pass a Whisper language name or "
                     f"code (e.g. 'spanish' or 'es'), or add a fallback for it.")


def whisper_language(locale: str) -> str:
    """Whisper language name for a dataset language code: "es" -> "spanish", "zh-CN" -> "chinese". Warns
    (UserWarning) when a related language stands in for one Whisper lacks."""
    return _resolve(locale)


def whisper_language_code(locale: str) -> str:
    """Whisper language code for a dataset language code: "es" -> "es", "sv-SE" -> "sv", "dv" -> "si"."""
    return TO_LANGUAGE_CODE[_resolve(locale)]
