"""Error rates on hand-made cases (worked out by hand in the comments) and each error-analysis detector on an
example built to trigger it, next to one that must not."""

from __future__ import annotations

import math
import re

import pytest

from helpers import metrics as M


def simple_norm(text: str) -> str:
    """Lower case, punctuation removed: enough to test the normalised/orthographic split by hand."""
    return re.sub(r"[^\w\s]", "", text.lower())


# ---------------------------------------------------------------------------------------------- error rates


def test_wer_by_hand():
    # "the cat sat on the mat" -> "cat sit on the mat today":
    # first "the" missing (1 deletion), sat->sit (1 substitution), "today" added (1 insertion) = 3 errors / 6 words
    assert M.wer(["the cat sat on the mat"], ["cat sit on the mat today"]) == pytest.approx(50.0)
    counts = M.word_counts(["the cat sat on the mat"], ["cat sit on the mat today"])
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.hits) == (1, 1, 1, 4)


def test_corpus_wer_weights_by_words_not_by_clips():
    # 3 errors in 6 words + 0 errors in 2 words = 3/8 = 37.5% (the mean of per-clip WERs would be 25%)
    refs = ["the cat sat on the mat", "hello world"]
    preds = ["cat sit on the mat today", "hello world"]
    assert M.wer(refs, preds) == pytest.approx(37.5)
    assert [M.clip_wer(r, p) for r, p in zip(refs, preds)] == pytest.approx([50.0, 0.0])


def test_wer_can_exceed_100_and_empty_prediction_is_all_deletions():
    assert M.wer(["hola"], ["hola hola hola"]) == pytest.approx(200.0)
    assert M.wer(["uno dos tres"], [""]) == pytest.approx(100.0)
    assert M.clip_wer("uno dos", "   ") == pytest.approx(100.0)


def test_cer_by_hand():
    # "abcd" -> "abxd": one substituted character out of 4; "ab" -> "abc": one inserted out of 2. (1+1)/(4+2)
    assert M.char_counts(["abcd"], ["abxd"]).rate == pytest.approx(25.0)
    assert M.char_counts(["abcd", "ab"], ["abxd", "abc"]).rate == pytest.approx(100 * 2 / 6)


def test_empty_references_are_excluded_and_counted():
    refs = ["uno dos", "", "   ", "¿?", "tres"]
    preds = ["uno dos", "algo", "otra cosa", "eh", "cuatro"]
    result = M.compute_metrics(refs, preds, simple_norm)
    # "", "   " are empty raw; "¿?" is empty once punctuation is removed: 3 excluded; left: 1 error in 3 words
    assert result["num_empty_references"] == 3
    assert result["num_samples"] == 2
    assert result["wer"] == pytest.approx(100 / 3)
    assert result["reference_words"] == 3
    refs_kept, preds_kept, dropped = M.usable_pairs(refs, preds)
    assert dropped == [1, 2] and refs_kept == ["uno dos", "¿?", "tres"]


def test_normalised_and_orthographic_wer_differ_on_case_and_punctuation():
    refs = ["Hola, ¿qué tal?", "Buenos días."]
    preds = ["hola que tal", "Buenos días."]
    result = M.compute_metrics(refs, preds, simple_norm)
    # normalised: "hola qué tal" vs "hola que tal" -> 1 error; "buenos días" exact; 1/5 = 20%
    assert result["wer"] == pytest.approx(20.0)
    # orthographic: "Hola," "¿qué" "tal?" all differ from "hola" "que" "tal" -> 3 errors out of 5 words = 60%
    assert result["wer_orthographic"] == pytest.approx(60.0)
    # CER on normalised text: "hola qué tal" (12 chars) vs "hola que tal": 1; "buenos días" (11): 0 -> 1/23
    assert result["cer"] == pytest.approx(100 / 23)
    assert (result["substitutions"], result["deletions"], result["insertions"]) == (1, 0, 0)


def test_whisper_normaliser_for_spanish():
    from helpers.normalize import eval_normalizer

    result = M.compute_metrics(["¡Hola, Mundo!"], ["hola mundo"], eval_normalizer("es"))
    assert result["wer"] == 0.0
    assert result["wer_orthographic"] == pytest.approx(100.0)


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        M.compute_metrics(["a", "b"], ["a"], simple_norm)


def test_relative_improvement():
    assert M.relative_improvement(40.0, 30.0) == pytest.approx(25.0)
    assert M.relative_improvement(20.0, 30.0) == pytest.approx(-50.0)
    assert math.isnan(M.relative_improvement(0.0, 10.0))
    assert math.isnan(M.relative_improvement(float("nan"), 10.0))


# ----------------------------------------------------------------------------------- alignment, confusions


def test_alignment_and_its_three_lines():
    triples = M.align_words("the cat sat on the mat", "cat sit on the mat today")
    assert triples == [("D", "the", ""), ("=", "cat", "cat"), ("S", "sat", "sit"), ("=", "on", "on"),
                       ("=", "the", "the"), ("=", "mat", "mat"), ("I", "", "today")]
    text = M.format_alignment("the cat sat on the mat", "cat sit on the mat today")
    assert text.splitlines() == [
        "REF: the cat sat on the mat *****",
        "HYP: *** cat sit on the mat today",
        "     D       S              I",
    ]
    assert M.align_words("", "hola") == [("I", "", "hola")]
    assert M.align_words("hola", "") == [("D", "hola", "")]


def test_long_alignments_are_cut():
    text = M.format_alignment("uno dos", "uno dos " + "y " * 40, max_columns=5)
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].split() == ["REF:", "uno", "dos", "*", "*", "*"]
    assert lines[3] == "… and 37 more aligned words (37 inserted)"


def test_combining_marks_and_words_split_by_the_normaliser():
    from helpers.normalize import eval_normalizer

    assert M.combining_marks("café") == 0  # é has a precomposed form
    assert M.combining_marks("मिलाकर") == 2  # two vowel signs
    hindi = eval_normalizer("hi")
    assert hindi("मिलाकर").split() == ["म", "ल", "कर"]  # why the ratio matters
    assert M.split_words_ratio(["दूध मिलाकर"], hindi) == pytest.approx(2.5)  # "द ध म ल कर": 5 words from 2
    assert M.split_words_ratio(["hola mundo"], eval_normalizer("es")) == 1.0


def test_confusions_are_counted_per_word():
    found = M.confusions(["el gato come", "el gato duerme mucho"], ["el pato come", "el pato duerme"])
    assert found["substitutions"] == {("gato", "pato"): 2}
    assert found["deletions"] == {"mucho": 1}
    assert not found["insertions"]


# ------------------------------------------------------------------------------------------------ detectors


def test_empty_prediction_detector():
    assert M.is_empty_prediction("hola", "")
    assert M.is_empty_prediction("hola", "   ")
    assert not M.is_empty_prediction("hola", "hola")
    assert not M.is_empty_prediction("", "")


def test_repetition_detector():
    assert M.longest_repeat("y luego y luego y luego fin") == ("y luego", 3)
    assert M.longest_repeat("no no no sé") == ("no", 3)
    assert M.has_repetition("y luego fuimos", "y luego y luego y luego y luego")
    assert not M.has_repetition("no no no", "no no no")  # the speaker said it: not a loop
    assert not M.has_repetition("el perro come", "el perro come")
    # text without spaces: characters are the units
    assert M.has_repetition("我们今天去公园", "我们我们我们我们我们我们我们")


def test_too_long_detector():
    assert M.is_too_long("hola", "hola gracias por ver el video y suscríbete al canal")
    assert not M.is_too_long("hola qué tal", "hola que tal estás")
    assert not M.is_too_long("sí", "sí sí")  # twice as long but only 2 characters more


def test_script_detection():
    assert M.char_script("a") == "LATIN"
    assert M.char_script("क") == "DEVANAGARI"
    assert M.char_script("ा") == "DEVANAGARI"  # a vowel sign belongs to its letter's script
    assert M.char_script("日") == "CJK" and M.char_script("あ") == "CJK"
    assert M.char_script("ب") == "ARABIC"
    assert M.char_script("1") is None and M.char_script(",") is None
    assert M.dominant_script("यह एक किताब है") == "DEVANAGARI"
    assert M.dominant_script("123 !") is None


def test_wrong_script_detector():
    scripts = M.expected_scripts(["यह एक किताब है", "मैं घर जा रहा हूँ"])
    assert scripts == {"DEVANAGARI"}
    assert M.is_wrong_script("یہ ایک کتاب ہے", scripts)  # Hindi audio written in Urdu's script
    assert M.is_wrong_script("yah ek kitaab hai", scripts)  # romanised
    assert not M.is_wrong_script("यह किताब है", scripts)
    assert not M.is_wrong_script("", scripts)


def test_wrong_language_detector():
    assert M.function_word_language("the dog is eating in the house") == "en"
    assert M.function_word_language("el perro de los vecinos está en el jardín") == "es"
    assert M.function_word_language("el perro come en la casa con los niños") == "es"  # el, los
    assert M.function_word_language("que de la en") is None  # words shared by several languages say nothing
    # a poor Spanish transcript is not another language ("que", "le", "me", "de" are not Portuguese or French)
    assert not M.is_wrong_language("qué alegría verte después de tantos años", "que ha le me arrete de su vez de "
                                   "tanto saños", "es")
    assert M.function_word_language("perro casa") is None
    assert M.is_wrong_language("el perro come en la casa", "the dog is eating in the house", "es")
    assert not M.is_wrong_language("el perro come en la casa", "el perro come en casa", "es")
    assert not M.is_wrong_language("the dog and the cat", "the dog and a cat", "en")
    assert M.is_wrong_language("o cachorro está em casa", "the puppy is in the house and it is happy", "pt-BR")
