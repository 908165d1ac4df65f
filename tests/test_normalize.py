"""Normalisation rules, Whisper's evaluation normaliser, and the golden-rule checker."""

from __future__ import annotations

import json

import pytest

from helpers.golden_rule import char_label, golden_rule_violations, words
from helpers.normalize import (
    RuleSet,
    character_changes,
    eval_normalizer,
    eval_normalizer_from_name,
    eval_normalizer_name,
    format_steps,
    load_normalization,
    lowercase,
    save_normalization,
    showcase_sentence,
    steps_widget,
    take_sentences,
    training_transform,
)

# ----- golden examples: the recommended rules for each sample language -----
GOLDEN = {
    "en": [
        ("It's a fine-tuning test, isn't it?", "it's a fine tuning test isn't it"),
        ("We're sure they were \"there\".", "we're sure they were there"),
        ("He’ll ring the bell; it's its own sound.", "he'll ring the bell it's its own sound"),
        ("Only 50% of $5 — 3.5 km at 10:30.", "only 50% of $5 3.5 km at 10:30"),
    ],
    "es": [
        ("¿Qué tal? ¡Muy bien!", "qué tal muy bien"),
        ("Él dijo que sí, si quieres.", "él dijo que sí si quieres"),
        ("El pingüino «Tomás» llegó…", "el pingüino tomás llegó"),
    ],
    "de": [
        ("Die STRASSE heißt „Straße“.", "die strasse heißt straße"),
        ("GROẞE Füße", "große füße"),
        ("Schick mir eine E-Mail!", "schick mir eine e mail"),
    ],
    "fr": [
        ("Aujourd’hui, l'homme boit de l'eau.", "aujourd'hui l'homme boit de l'eau"),
        ("« Peut-être », dit-il\u00a0!", "peut être dit il"),
        ("Tu l'as vu ? Je suis las.", "tu l'as vu je suis las"),
        ("A-t-il\u202fvu l’été ?", "a t il vu l'été"),
    ],
    "tr": [
        ("İstanbul'da IRMAK ve Iğdır.", "istanbul'da ırmak ve ığdır"),
        ("ILIK, İLK ve İyi!", "ılık ilk ve iyi"),
    ],
    "hi": [
        ("मैं ठीक हूँ। आप कैसे हैं?", "मैं ठीक हूँ आप कैसे हैं"),
        ("यह किताब राम की है॥", "यह किताब राम की है"),
        ("क़लम, ज़मीन और फ़ोन।", "क़लम ज़मीन और फ़ोन"),
    ],
}


@pytest.mark.parametrize("language,text,expected",
                         [(lang, text, out) for lang, pairs in GOLDEN.items() for text, out in pairs])
def test_recommended_rules_golden_examples(language, text, expected):
    assert RuleSet.for_language(language).apply(text) == expected


def test_turkish_lowercase_differs_from_python_default():
    assert lowercase("IRMAK İLK", "tr") == "ırmak ilk"
    assert lowercase("IRMAK İLK", "en") == "irmak i\u0307lk"  # what a language-blind lower-case gets
    assert lowercase("IRMAK", "en") == "irmak"
    assert lowercase("ẞ Straße", "de") == "ß straße"  # German sharp s is kept, never "ss"


def test_decomposed_accents_are_composed_first():
    decomposed = "e\u0301te\u0301"  # "été" typed as e + combining acute
    assert RuleSet.for_language("fr").apply(decomposed) == "été"


def test_hindi_marks_are_never_removed():
    text = "हिंदी में क़लम"
    out = RuleSet.for_language("hi").apply(text)
    assert out == text  # vowel signs, anusvara, nukta, virama all survive


def test_catalan_middle_dot_between_letters_is_kept():
    assert RuleSet.for_language("ca").apply("La cel·la, l'Anna · punt.") == "la cel·la l'anna punt"
    assert RuleSet.for_language("es").apply("cel·la") == "cel la"


def test_apostrophe_and_hyphen_modes():
    text = "L'homme, fine-tuning."
    assert RuleSet("fr", apostrophes="remove", hyphens="keep").apply(text) == "lhomme fine-tuning"
    assert RuleSet("fr", apostrophes="space", hyphens="space").apply(text) == "l homme fine tuning"
    assert RuleSet("fr", apostrophes="keep", hyphens="remove").apply(text) == "l'homme finetuning"
    assert RuleSet.for_language("en").replace(hyphens="remove").apply("Fine-tuning") == "finetuning"
    assert RuleSet.for_language("en").apply("COVID-19 – not a hyphen") == "covid 19 not a hyphen"
    # a quotation mark at a word's edge is punctuation, not an apostrophe; a lone dash is punctuation too
    assert RuleSet.for_language("en").apply("'Hello' - she said") == "hello she said"


def test_rules_can_be_switched_off():
    text = "¿Qué  TAL?"
    nothing = RuleSet("es", unicode_nfc=False, lowercase=False, hyphens="keep", remove_punctuation=False,
                      collapse_whitespace=False)
    assert nothing.apply(text) == text
    assert nothing.apply("l’eau") == "l'eau"  # a kept apostrophe is always the straight one
    assert RuleSet("es", lowercase=False).apply(text) == "Qué TAL"
    assert RuleSet("es", remove_punctuation=False).apply(text) == "¿qué tal?"


def test_steps_show_each_rule_and_end_with_apply():
    rules = RuleSet.for_language("es")
    steps = rules.steps("¿Qué TAL?")
    names = [name for name, _ in steps]
    assert names[0] == "original" and names[-1] == "whitespace"
    assert "lower-case" in names and "punctuation and symbols → space" in names
    assert steps[-1][1] == rules.apply("¿Qué TAL?") == "qué tal"
    assert dict(steps)["lower-case"] == "¿qué tal?"
    table = format_steps(steps)
    assert "* lower-case" in table and "|qué tal|" in table
    assert "lower-case (I→ı, İ→i)" in [n for n, _ in RuleSet.for_language("tr").steps("I")]


def test_ruleset_json_round_trip_and_errors():
    rules = RuleSet.for_language("fr").replace(apostrophes="space")
    again = RuleSet.from_json(rules.to_json())
    assert again == rules and again.hyphens == "space" and again.apostrophes == "space"
    assert json.loads(rules.to_json())["language"] == "fr"
    with pytest.raises(ValueError, match="unknown rule"):
        RuleSet.from_dict({"language": "fr", "lowercas": True})
    with pytest.raises(ValueError, match="hyphens must be one of"):
        RuleSet("fr", hyphens="delete")
    with pytest.raises(ValueError, match="lowercase must be true or false"):
        RuleSet("fr", lowercase="yes")
    with pytest.raises(ValueError, match="locale"):
        RuleSet.for_language("")
    with pytest.raises(ValueError, match="not valid JSON"):
        RuleSet.from_json("{lowercase: true")


# ----- evaluation normaliser: Whisper's own, from transformers -----
def test_eval_normalizer_is_whispers_own():
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    assert eval_normalizer_name("en") == "EnglishTextNormalizer"
    assert eval_normalizer_name("es") == "BasicTextNormalizer" == eval_normalizer_name("zh-CN")
    english = eval_normalizer("en")
    assert isinstance(english, EnglishTextNormalizer)
    assert isinstance(eval_normalizer("tr"), BasicTextNormalizer)
    # the offline spelling map is in use: British -> American, and contractions/numbers spelled Whisper's way
    assert english("The colour of it's hat, Mr. Smith, twenty five.") == "the color of it is hat mister smith 25"
    assert eval_normalizer("es")("¿Qué tal?").strip() == "qué tal"
    with pytest.raises(ValueError, match="unknown evaluation normaliser"):
        eval_normalizer_from_name("FancyNormalizer")


# ----- the golden-rule checker -----
EN_CORPUS = [
    "It's raining again.",
    "The dog wagged its tail.",
    "We're late, the bus left.",
    "They were here; it's true.",
    "the end",
]


def test_checker_finds_apostrophe_merges_in_english():
    report = golden_rule_violations(EN_CORPUS, RuleSet("en", apostrophes="remove"))
    assert not report.ok
    groups = report.groups()
    assert set(groups) == {"its", "were"}
    assert set(groups["its"]) == {"It's", "its", "it's"}
    assert set(groups["were"]) == {"We're", "were"}
    assert report.merges["its"].removed_chars == "'"
    assert report.offending_chars == "'"
    counts = {v.word: (v.count, v.example) for v in report.merges["were"].variants}
    assert counts == {"We're": (1, "We're late, the bus left."), "were": (1, "They were here; it's true.")}
    assert "GOLDEN RULE VIOLATED" in report.summary() and "APOSTROPHE" in report.summary()
    # The/the is a case-only merge: reported apart, not a violation
    assert "the" in report.case_merges and "the" not in report.merges
    assert set(report.case_merges["the"].words) == {"The", "the"}


def test_checker_finds_french_elision_merges():
    corpus = ["Tu l'as vu hier.", "Je suis las.", "Il boit de l'eau.", "Leau est un nom propre."]
    report = golden_rule_violations(corpus, RuleSet("fr", apostrophes="remove"))
    assert set(report.groups()) == {"las", "leau"}
    assert set(report.groups()["leau"]) == {"l'eau", "Leau"}
    assert golden_rule_violations(corpus, RuleSet.for_language("fr")).ok


def test_recommended_rules_keep_the_golden_rule_on_the_traps():
    assert golden_rule_violations(EN_CORPUS, RuleSet.for_language("en")).ok
    corpus = ["Dijo que sí.", "¿Qué es?", "Si quieres, él viene.", "El perro."]
    assert golden_rule_violations(corpus, RuleSet.for_language("es")).ok


def test_lowercase_only_rule_set_finds_only_case_merges():
    lower_only = RuleSet("en", remove_punctuation=False, hyphens="keep")
    report = golden_rule_violations(EN_CORPUS + ["It's fine-tuning.", "IT'S"], lower_only)
    assert report.ok and report.merges == {}
    assert set(report.case_merges["it's"].words) == {"it's", "It's", "IT'S"}
    turkish = golden_rule_violations(["Irmak akar.", "ırmak akar.", "İlk gün", "ilk gün"], RuleSet("tr"))
    assert turkish.ok and set(turkish.case_merges) == {"ırmak", "ilk"}


def test_checker_flags_whisper_basic_normalizer_on_hindi_and_diacritics():
    """Whisper's BasicTextNormalizer turns Devanagari vowel signs into spaces: distinct words merge."""
    corpus = ["यह किताब राम की है।", "यह घर राम का है।"]
    report = golden_rule_violations(corpus, eval_normalizer("hi"))
    assert set(report.groups()["क"]) == {"की", "का"}
    assert "ी" in report.merges["क"].removed_chars
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    report = golden_rule_violations(["¿Qué es?", "Dijo que sí."], BasicTextNormalizer(remove_diacritics=True))
    assert report.groups() == {"que": ["Qué", "que"]} and report.merges["que"].removed_chars == "é"


def test_checker_words_and_input_errors():
    assert words("¿Qué «tal»? 50% — bien.") == ["Qué", "tal", "50%", "bien"]
    report = golden_rule_violations(["", "— ¿?"], RuleSet.for_language("es"))
    assert report.ok and report.words_checked == 0 and report.sentences == 2
    with pytest.raises(TypeError, match="sentence 1"):
        golden_rule_violations(["fine", None], RuleSet.for_language("en"))
    data = golden_rule_violations(EN_CORPUS, RuleSet("en", apostrophes="remove")).to_dict()
    assert data["merges"]["were"] == {"words": {"We're": 1, "were": 1}, "removed_chars": "'"}
    json.dumps(data)


# ----- naming characters -----
def test_char_label_names_invisible_and_combining_characters():
    assert char_label("'") == "' (APOSTROPHE)"
    assert char_label("ा") == "◌ा (DEVANAGARI VOWEL SIGN AA)"
    assert char_label("\u00a0") == "U+00A0 (NO-BREAK SPACE)"


def test_take_sentences_showcase_and_character_changes():
    rows = ({"sentence": f"Frase {i}."} for i in range(10))
    assert take_sentences(rows, 3) == ["Frase 0.", "Frase 1.", "Frase 2."]
    assert len(take_sentences([{"sentence": "a"}] * 5)) == 5
    with pytest.raises(ValueError, match="limit"):
        take_sentences([], -1)
    rules = RuleSet.for_language("fr")
    assert showcase_sentence(["le chat", "Le chat.", "« Peut-être », l’eau.", "Le-chat"], rules) == \
        "« Peut-être », l’eau."
    assert showcase_sentence([], rules) == ""
    assert showcase_sentence(["Hola.", "Sí.", "¿Qué tal?"], RuleSet.for_language("es")) == "¿Qué tal?"
    changes = character_changes(["¿Qué TAL?", "l'eau", "Ünal"], RuleSet.for_language("es"))
    assert changes == {"lower-cased": "QTALÜ", "removed": "¿?"}
    assert character_changes(["IRMAK"], RuleSet.for_language("tr"))["lower-cased"] == "IRMAK"


# ----- the saved choice, read by notebooks 03 and 04 -----
def test_save_and_load_normalization(tmp_path):
    rules = RuleSet.for_language("en")
    path = save_normalization(tmp_path / "run", rules, train_on="raw", extra={"golden_rule": {"merges": {}}})
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["eval_normalizer"] == "EnglishTextNormalizer" and data["train_on"] == "raw"
    norm = load_normalization(tmp_path / "run", "en")
    assert norm.rules == rules and norm.extra == {"golden_rule": {"merges": {}}}
    assert norm.train_text("It's OK.") == "It's OK."  # raw training text
    assert norm.eval_text("It's OK.") == "it is ok"
    save_normalization(tmp_path / "run", rules, train_on="normalized")
    assert load_normalization(tmp_path / "run", "en").train_text("It's OK.") == "it's ok"
    with pytest.raises(ValueError, match="written for language 'en', not 'tr'"):
        load_normalization(tmp_path / "run", "tr")
    with pytest.raises(ValueError, match="train_on must be one of"):
        save_normalization(tmp_path / "run", rules, train_on="both")


def test_load_normalization_falls_back_to_raw_training_text(tmp_path):
    norm = load_normalization(tmp_path / "missing", "tr")
    assert norm.train_on == "raw" and norm.eval_normalizer == "BasicTextNormalizer"
    assert norm.train_text("İyi, IRMAK!") == "İyi, IRMAK!"
    assert norm.rules == RuleSet.for_language("tr") and "default" in norm.source
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "normalization.json").write_text('{"language": "tr"}', encoding="utf-8")
    with pytest.raises(ValueError, match="lacks"):
        load_normalization(tmp_path / "bad", "tr")


# ----- "try it" widget -----
def test_steps_widget_headless_prints_and_live_updates(capsys):
    rules = RuleSet.for_language("de")
    assert steps_widget(rules, "Die Straße!", headless=True) is None
    assert "|die straße|" in capsys.readouterr().out
    widget = steps_widget(rules, "Die Straße!", headless=False)
    box, table = widget.children
    assert "|die straße|" in table.value
    box.value = "GROẞE Füße?"
    assert "|große füße|" in table.value


def test_training_transform_is_none_for_raw_text(tmp_path):
    assert training_transform(tmp_path / "nothing-here") is None
    save_normalization(tmp_path, RuleSet.for_language("de"), train_on="raw")
    assert training_transform(tmp_path) is None
    save_normalization(tmp_path, RuleSet.for_language("de"), train_on="normalized")
    assert training_transform(tmp_path)("Die Straße!") == "die straße"
    norm = load_normalization(tmp_path)  # language read from the file
    assert norm.language == "de" and norm("Die Straße!") == "die straße"
    fallback = load_normalization(tmp_path / "nothing-here")
    assert fallback.rules is None and fallback("Die Straße!") == "Die Straße!"
    assert fallback.eval_normalizer == "BasicTextNormalizer"
