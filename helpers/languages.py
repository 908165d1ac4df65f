"""Which Whisper language goes with a dataset's language code.

Datasets name languages their own way (Common Voice "zh-CN", FLEURS "es_419", Multilingual LibriSpeech
"spanish"). A Whisper name or code is used as it is; otherwise the base code before "-" or "_", through ALIASES
(other spellings of a Whisper language). A language Whisper was not trained on gets a related one from FALLBACKS,
with a warning: fine-tuning teaches the rest. Anything else raises ValueError with close matches; to support a
new code, add one line to FALLBACKS. Whisper's table comes from transformers (99 languages, plus Cantonese
"yue", which only large-v3 knows).
"""

from __future__ import annotations

import difflib
import re
import warnings

from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES  # "es" -> "spanish"
from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE  # "spanish" -> "es", also aliases

# Other codes for a language Whisper has (the same language, so no warning).
ALIASES = {
    "jv": "jw",  # Javanese: Whisper uses the old code
    "nb": "no",  # Norwegian Bokmål (FLEURS "nb_no")
    "cmn": "zh",  # Mandarin (FLEURS "cmn_hans_cn")
    "fil": "tl",  # Filipino (FLEURS "fil_ph")
}

_BANTU = "Bantu language in Latin script; Swahili is the Bantu language Whisper knows best"
_CYRILLIC_RU = "written in Cyrillic with many Russian loanwords; Whisper has no close relative"

# Languages Whisper lacks -> (Whisper language name, why that one). Used with a warning.
FALLBACKS = {
    "dv": ("sinhalese", "Dhivehi is Indo-Aryan, closest to Sinhala; the Hugging Face audio course uses it too"),
    "fy": ("dutch", "West Frisian's closest West Germanic relative in Whisper, same Latin script"),
    "ga": ("welsh", "Irish: Whisper has no Goidelic language; Welsh is the nearest Celtic one"),
    "rm": ("italian", "Romansh (every idiom) is a Romance language, closest to Italian"),
    "lij": ("italian", "Ligurian is a Romance language of Italy"),
    "sc": ("italian", "Sardinian is a Romance language of Italy"),
    "ia": ("italian", "Interlingua: Romance vocabulary, regular Latin spelling"),
    "ast": ("spanish", "Asturian is Iberian Romance, close to Spanish"),
    "an": ("spanish", "Aragonese is Iberian Romance, close to Spanish"),
    "eo": ("spanish", "Esperanto: mostly Romance vocabulary, phonetic Latin spelling"),
    "gn": ("spanish", "Guarani: Latin spelling and many loanwords from Spanish (Paraguay)"),
    "quy": ("spanish", "Quechua: spelling based on Spanish, many Spanish loanwords"),
    "nhi": ("spanish", "Nahuatl: spelling based on Spanish (Mexico)"),
    "kea": ("portuguese", "Cape Verdean Creole is Portuguese-based"),
    "hsb": ("czech", "Upper Sorbian is West Slavic, closest to Czech"),
    "ltg": ("latvian", "Latgalian is Baltic, close to Latvian"),
    "vot": ("estonian", "Votic is Finnic, close to Estonian"),
    "cv": ("tatar", "Chuvash is Turkic in Cyrillic script, spoken next to Tatar"),
    "sah": ("kazakh", "Sakha is Turkic in Cyrillic script, like Kazakh"),
    "ky": ("kazakh", "Kyrgyz is Kipchak Turkic in Cyrillic script, close to Kazakh"),
    "ug": ("uzbek", "Uyghur is Karluk Turkic, closest to Uzbek (different script)"),
    "bxr": ("mongolian", "Buryat is Mongolic in Cyrillic script, close to Mongolian"),
    "ab": ("russian", "Abkhaz: " + _CYRILLIC_RU),
    "ady": ("russian", "Adyghe: " + _CYRILLIC_RU),
    "kbd": ("russian", "Kabardian: " + _CYRILLIC_RU),
    "os": ("russian", "Ossetian: " + _CYRILLIC_RU),
    "mdf": ("russian", "Moksha: " + _CYRILLIC_RU),
    "myv": ("russian", "Erzya: " + _CYRILLIC_RU),
    "mhr": ("russian", "Meadow Mari: " + _CYRILLIC_RU),
    "mrj": ("russian", "Hill Mari: " + _CYRILLIC_RU),
    "udm": ("russian", "Udmurt: " + _CYRILLIC_RU),
    "kv": ("russian", "Komi: " + _CYRILLIC_RU),
    "ckb": ("persian", "Central Kurdish is Iranian, written in Perso-Arabic script like Persian"),
    "kmr": ("turkish", "Kurmanji Kurdish: Latin alphabet modelled on Turkish's, spoken mostly in Turkey"),
    "zza": ("turkish", "Zazaki: Latin script, spoken in Turkey"),
    "skr": ("urdu", "Saraiki is Indo-Aryan in Perso-Arabic script, like Urdu"),
    "or": ("bengali", "Odia is Eastern Indo-Aryan, close to Bengali"),
    "sat": ("hindi", "Santali: spoken in India; Whisper has no Munda language"),
    "nan": ("chinese", "Taiwanese Hokkien (nan-tw) is Sinitic, written with Han characters"),
    "cnh": ("english", "Hakha Chin is written in Latin script; Whisper's Tibeto-Burman languages use other scripts"),
    "ceb": ("tagalog", "Cebuano is a Philippine language, close to Tagalog"),
    "ti": ("amharic", "Tigrinya is Ethio-Semitic in Ge'ez script, like Amharic"),
    "tig": ("amharic", "Tigre is Ethio-Semitic in Ge'ez script, like Amharic"),
    "om": ("somali", "Oromo is Cushitic in Latin script, like Somali"),
    "ig": ("yoruba", "Igbo: tonal Nigerian language in Latin script with diacritics, like Yoruba"),
    "tw": ("yoruba", "Twi: tonal West African language in Latin script; Yoruba is the closest Whisper knows"),
    "dyu": ("yoruba", "Dyula: West African language in Latin script; Yoruba is the closest Whisper knows"),
    "ff": ("hausa", "Fula: West African language in Latin script, shares region and loanwords with Hausa"),
    "wo": ("french", "Wolof: Latin script, many French loanwords (Senegal)"),
    "kab": ("french", "Kabyle: Latin script, many French loanwords; Whisper has no Berber language"),
    "zgh": ("arabic", "Tamazight (Morocco): Berber, spoken alongside Arabic; Whisper has no Berber language"),
    "luo": ("swahili", "Dholuo: Nilotic, spoken in Kenya alongside Swahili"),
    "lg": ("swahili", "Luganda: " + _BANTU),
    "rw": ("swahili", "Kinyarwanda: " + _BANTU),
    "bas": ("swahili", "Basaa: " + _BANTU),
    "ny": ("swahili", "Chichewa: " + _BANTU),
    "kam": ("swahili", "Kamba: " + _BANTU),
    "umb": ("swahili", "Umbundu: " + _BANTU),
    "nso": ("swahili", "Northern Sotho: " + _BANTU),
    "tn": ("swahili", "Tswana: " + _BANTU),
    "xh": ("swahili", "Xhosa: " + _BANTU),
    "zu": ("swahili", "Zulu: " + _BANTU),
}


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
                     f"fallback table (FALLBACKS in helpers/languages.py).{hint} Pass a Whisper language name or "
                     f"code (e.g. 'spanish' or 'es'), or add a fallback for it.")


def whisper_language(locale: str) -> str:
    """Whisper language name for a dataset language code: "es" -> "spanish", "zh-CN" -> "chinese". Warns
    (UserWarning) when a related language stands in for one Whisper lacks."""
    return _resolve(locale)


def whisper_language_code(locale: str) -> str:
    """Whisper language code for a dataset language code: "es" -> "es", "sv-SE" -> "sv", "dv" -> "si"."""
    return TO_LANGUAGE_CODE[_resolve(locale)]
