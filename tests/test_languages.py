"""helpers.languages: dataset language codes -> Whisper languages, with warned fallbacks."""

from __future__ import annotations

import warnings

import pytest
from transformers.models.whisper import tokenization_whisper

from helpers.languages import (
    ALIASES,
    FALLBACKS,
    WHISPER_LANGUAGES,
    whisper_language,
    whisper_language_code,
)


@pytest.mark.parametrize(
    "code, name",
    [
        ("es", "spanish"),
        ("zh-CN", "chinese"),
        ("zh-TW", "chinese"),
        ("sv-SE", "swedish"),
        ("pt", "portuguese"),
        ("pa-IN", "punjabi"),
        ("hy-AM", "armenian"),
        ("nn-NO", "nynorsk"),
        ("ne-NP", "nepali"),
        ("es_419", "spanish"),  # FLEURS configuration
        ("cmn_hans_cn", "chinese"),  # FLEURS Mandarin
        ("jv", "javanese"),  # Whisper spells it "jw"
        ("spanish", "spanish"),  # Whisper names pass through
        ("Castilian", "spanish"),
        ("yue", "cantonese"),
    ],
)
def test_whisper_languages_need_no_fallback(code, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here would fail the test
        assert whisper_language(code) == name


@pytest.mark.parametrize(
    "code, expected", [("es", "es"), ("sv-SE", "sv"), ("spanish", "es"), ("jv", "jw"), ("nb_no", "no"), ("en", "en")]
)
def test_whisper_language_code(code, expected):
    assert whisper_language_code(code) == expected


def test_table_is_transformers_own():
    assert WHISPER_LANGUAGES is tokenization_whisper.LANGUAGES
    assert len(WHISPER_LANGUAGES) >= 99
    assert WHISPER_LANGUAGES["es"] == "spanish"


@pytest.mark.parametrize(
    "code, name",
    [
        ("dv", "sinhalese"),
        ("fy-NL", "dutch"),
        ("ga-IE", "welsh"),
        ("rm-sursilv", "italian"),
        ("rm-vallader", "italian"),
        ("cv", "tatar"),
        ("sah", "kazakh"),
        ("nan-tw", "chinese"),
    ],
)
def test_fallbacks_warn_and_say_why(code, name):
    with pytest.warns(UserWarning, match=rf"not trained on '{code}'; using '{name}'"):
        assert whisper_language(code) == name


def test_fallback_code_warns_too():
    with pytest.warns(UserWarning, match="Dhivehi"):
        assert whisper_language_code("dv") == "si"


def test_fallback_table_is_consistent():
    for code, (name, reason) in FALLBACKS.items():
        assert name in tokenization_whisper.TO_LANGUAGE_CODE, f"{code}: {name!r} is not a Whisper language"
        assert code not in WHISPER_LANGUAGES, f"{code} is a Whisper language, it needs no fallback"
        assert reason.strip(), f"{code} needs a reason"
    for code, target in ALIASES.items():
        assert target in WHISPER_LANGUAGES and code not in WHISPER_LANGUAGES


@pytest.mark.parametrize("code", ["xx", "zz-ZZ", "spansh", ""])
def test_unknown_codes_raise_and_name_the_code(code):
    with pytest.raises(ValueError, match=f"Unknown language code '{code}'"):
        whisper_language(code)
    with pytest.raises(ValueError):
        whisper_language_code(code)


def test_unknown_code_suggests_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'spanish'"):
        whisper_language("spansh")
