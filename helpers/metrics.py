"""Word and character error rates, and the detectors behind the error analysis.

WER = (substitutions + deletions + insertions) / words in the reference, over the whole split (not an average
of per-clip WERs). Two flavours, always side by side:

- normalised WER: reference and prediction first pass through Whisper's evaluation normaliser (lower case, no
  punctuation; English also unifies spellings and numbers). This is the number the Whisper paper, the
  fine-tuning event and the Hub's leaderboards report.
- orthographic WER: the raw texts, so "Hola," vs "hola" is an error. It measures casing and punctuation too.

CER is computed on the normalised texts, character by character (spaces included).

Clips whose reference is empty (raw or after normalisation) have no defined WER: they are left out of every
metric and counted. All rates here are percentages (0-100, and above 100 when the model inserts a lot).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from helpers.normalize import base_language

Normalizer = Callable[[str], str]


# --------------------------------------------------------------------------------------------------------------
# Error rates
# --------------------------------------------------------------------------------------------------------------


def _clean(text: str | None) -> str:
    """None and non-strings (a CSV's NaN) count as empty; whitespace runs count as one space."""
    if not isinstance(text, str):
        return ""
    return " ".join(text.split())


def normalize_all(texts: Iterable[str], normalizer: Normalizer | None) -> list[str]:
    """Apply `normalizer` (or nothing) and tidy whitespace."""
    return [_clean(normalizer(_clean(t)) if normalizer else t) for t in texts]


@dataclass
class ErrorCounts:
    """Edit operations that turn the references into the predictions, summed over clips."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def reference_length(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference unit, in percent (nan when there is no reference)."""
        n = self.reference_length
        return 100.0 * self.errors / n if n else math.nan

    def as_dict(self) -> dict:
        return {"substitutions": self.substitutions, "deletions": self.deletions, "insertions": self.insertions,
                "hits": self.hits, "reference_words": self.reference_length}


def _counts(process, references: Sequence[str], predictions: Sequence[str]) -> ErrorCounts:
    _check_lengths(references, predictions)
    if not references:
        return ErrorCounts()
    out = process(list(references), list(predictions))
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, out.hits)


def word_counts(references: Sequence[str], predictions: Sequence[str]) -> ErrorCounts:
    """Substitutions, deletions, insertions and hits at word level (jiwer's alignment). References must not be
    empty; see `usable_pairs`."""
    import jiwer

    return _counts(jiwer.process_words, references, predictions)


def char_counts(references: Sequence[str], predictions: Sequence[str]) -> ErrorCounts:
    """The same at character level (spaces count as characters)."""
    import jiwer

    return _counts(jiwer.process_characters, references, predictions)


def wer(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus word error rate in percent over non-empty references (nan when none is left)."""
    refs, preds, _ = usable_pairs(references, predictions)
    return word_counts(refs, preds).rate


def clip_wer(reference: str, prediction: str) -> float:
    """One clip's WER in percent; nan for an empty reference."""
    return wer([reference], [prediction])


def usable_pairs(references: Sequence[str], predictions: Sequence[str]) -> tuple[list[str], list[str], list[int]]:
    """(references, predictions, dropped indices): pairs with an empty reference are dropped."""
    _check_lengths(references, predictions)
    refs, preds, dropped = [], [], []
    for i, (r, p) in enumerate(zip(references, predictions)):
        r = _clean(r)
        if r:
            refs.append(r)
            preds.append(_clean(p))
        else:
            dropped.append(i)
    return refs, preds, dropped


def _check_lengths(references: Sequence, predictions: Sequence) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions: they must pair up")


def compute_metrics(references: Sequence[str], predictions: Sequence[str], normalizer: Normalizer) -> dict:
    """Normalised WER, orthographic WER, CER and the WER with combining marks kept (percent) on the same clips,
    with the counts behind them.

    A clip is scored only if its reference is non-empty both raw and normalised, so both WERs cover exactly the
    same clips; the others are counted in `num_empty_references`.
    """
    _check_lengths(references, predictions)
    raw_refs = [_clean(r) for r in references]
    raw_preds = [_clean(p) for p in predictions]
    norm_refs = normalize_all(raw_refs, normalizer)
    norm_preds = normalize_all(raw_preds, normalizer)
    keep = [i for i in range(len(raw_refs)) if raw_refs[i] and norm_refs[i]]
    words = word_counts([norm_refs[i] for i in keep], [norm_preds[i] for i in keep])
    ortho = word_counts([raw_refs[i] for i in keep], [raw_preds[i] for i in keep])
    chars = char_counts([norm_refs[i] for i in keep], [norm_preds[i] for i in keep])
    return {
        "num_samples": len(keep),
        "num_empty_references": len(raw_refs) - len(keep),
        "wer": words.rate,
        "wer_orthographic": ortho.rate,
        "cer": chars.rate,
        "wer_keep_marks": wer(normalize_all([raw_refs[i] for i in keep], keep_marks),  # same clips, marks kept
                              normalize_all([raw_preds[i] for i in keep], keep_marks)),
        **words.as_dict(),
    }


def keep_marks(text: str) -> str:
    """Lower-case, punctuation removed, combining marks kept. Whisper's BasicTextNormalizer deletes combining
    marks, which splits Devanagari (Thai, Thaana, ...) words into fragments; this one keeps words whole, so a WER
    on it can be read for those scripts (and is close to Whisper's for Latin scripts)."""
    text = unicodedata.normalize("NFC", str(text)).casefold()
    return " ".join("".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text).split())


def relative_improvement(before: float, after: float) -> float:
    """How much of the error went away, in percent of `before`: 40 -> 30 is a 25% relative improvement.

    Negative when `after` is worse; nan when `before` is 0 or either value is missing. The one sign convention of
    the project (results.json `relative_wer_improvement`, summary.csv `relative_wer_improvement_pct`).
    """
    if before is None or after is None or not math.isfinite(before) or not math.isfinite(after) or before == 0:
        return math.nan
    return 100.0 * (before - after) / before


# --------------------------------------------------------------------------------------------------------------
# Alignment and confusions
# --------------------------------------------------------------------------------------------------------------


def align_words(reference: str, prediction: str) -> list[tuple[str, str, str]]:
    """Word alignment as (operation, reference word, predicted word) triples.

    operation is "=" (correct), "S" (substitution), "D" (deletion: the reference word is missing) or
    "I" (insertion: a word the reference does not have); the missing side is "".
    """
    import jiwer

    ref, hyp = _clean(reference).split(), _clean(prediction).split()
    if not ref:
        return [("I", "", w) for w in hyp]
    if not hyp:
        return [("D", w, "") for w in ref]
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    triples: list[tuple[str, str, str]] = []
    codes = {"equal": "=", "substitute": "S", "delete": "D", "insert": "I"}
    for chunk in out.alignments[0]:
        r = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        op = codes[chunk.type]
        for k in range(max(len(r), len(h))):
            triples.append((op, r[k] if k < len(r) else "", h[k] if k < len(h) else ""))
    return triples


def _width(text: str) -> int:
    """Columns a string takes in a monospace font (East Asian wide characters take two, marks none)."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def format_alignment(reference: str, prediction: str, max_columns: int = 30) -> str:
    """Three aligned lines: REF, HYP, and under each column the operation (S, D, I; blank when correct).

    At most `max_columns` aligned words are shown (a looping prediction can be hundreds of words long); the rest
    is summarised on a fourth line.
    """
    triples = align_words(reference, prediction)
    shown, rest = triples[:max_columns], triples[max_columns:]
    ref_line, hyp_line, op_line = ["REF:"], ["HYP:"], ["    "]
    for op, r, h in shown:
        r_shown, h_shown = r or "*" * max(1, _width(h)), h or "*" * max(1, _width(r))
        width = max(_width(r_shown), _width(h_shown))
        ref_line.append(_pad(r_shown, width))
        hyp_line.append(_pad(h_shown, width))
        op_line.append(_pad("" if op == "=" else op, width))
    lines = [" ".join(line).rstrip() for line in (ref_line, hyp_line, op_line)]
    if rest:
        ops = Counter(op for op, _, _ in rest)
        counts = ", ".join(f"{ops[k]} {name}" for k, name in (("=", "correct"), ("S", "substituted"),
                                                                ("D", "deleted"), ("I", "inserted")) if ops[k])
        lines.append(f"… and {len(rest)} more aligned words ({counts})")
    return "\n".join(lines)


def confusions(references: Sequence[str], predictions: Sequence[str]) -> dict[str, Counter]:
    """Counters of substituted pairs ("ref -> hyp"), deleted words and inserted words over all clips."""
    _check_lengths(references, predictions)
    subs, dels, ins = Counter(), Counter(), Counter()
    for r, p in zip(references, predictions):
        for op, rw, hw in align_words(r, p):
            if op == "S":
                subs[(rw, hw)] += 1
            elif op == "D":
                dels[rw] += 1
            elif op == "I":
                ins[hw] += 1
    return {"substitutions": subs, "deletions": dels, "insertions": ins}


# --------------------------------------------------------------------------------------------------------------
# Detectors: empty output, hallucination, wrong language or script
# --------------------------------------------------------------------------------------------------------------


def split_words_ratio(texts: Iterable[str], normalizer: Normalizer) -> float:
    """Words after normalisation per word before (1.0 when the normaliser keeps words whole).

    Whisper's BasicTextNormalizer deletes every combining mark, and in scripts such as Devanagari the vowel signs
    and the virama are combining marks: "मिलाकर" becomes "म ल कर", one word turns into three, and normalised WER
    then counts fragments. A ratio well above 1 is the sign; CER and orthographic WER are the safer guides then.
    """
    texts = [_clean(t) for t in texts]
    before = sum(len(t.split()) for t in texts)
    after = sum(len(t.split()) for t in normalize_all(texts, normalizer))
    return after / before if before else 1.0


def combining_marks(text: str) -> int:
    """How many combining marks (Unicode categories Mn, Mc) a text holds once composed (NFC): accents that have
    a precomposed letter ("é") do not count, Devanagari vowel signs do."""
    return sum(unicodedata.category(ch) in ("Mn", "Mc") for ch in unicodedata.normalize("NFC", _clean(text)))


def is_empty_prediction(reference: str, prediction: str) -> bool:
    """The model wrote nothing (after normalisation, pass normalised texts) although the clip has speech."""
    return bool(_clean(reference)) and not _clean(prediction)


def _units(text: str) -> list[str]:
    """Words; for text written without spaces (Chinese, Japanese, Thai), characters."""
    words = _clean(text).split()
    if len(words) <= 2 and sum(len(w) for w in words) > 12:
        return [ch for ch in "".join(words)]
    return words


def longest_repeat(text: str, max_n: int = 4) -> tuple[str, int]:
    """The phrase of 1..max_n words repeated most times in a row, and that count ("", 0 on empty text).

    "no no no sé" -> ("no", 3). Loops such as "y luego y luego y luego" are the usual sign that the decoder got
    stuck (Whisper's best-known hallucination).
    """
    units = _units(text)
    best, best_count = "", 0
    for n in range(1, max_n + 1):
        for start in range(len(units) - n + 1):
            phrase = units[start:start + n]
            count = 1
            while units[start + count * n:start + (count + 1) * n] == phrase:
                count += 1
            if count > best_count or (count == best_count and count > 1 and n < len(best.split())):
                best, best_count = " ".join(phrase), count
    return best, best_count


def has_repetition(reference: str, prediction: str, min_repeats: int = 3, max_n: int = 4) -> bool:
    """The prediction repeats a phrase at least `min_repeats` times in a row, more often than the reference."""
    _, count = longest_repeat(prediction, max_n)
    _, ref_count = longest_repeat(reference, max_n)
    return count >= min_repeats and count > ref_count


def is_too_long(reference: str, prediction: str, ratio: float = 2.0, min_extra: int = 10) -> bool:
    """The prediction has at least `ratio` times as many characters (spaces aside) as the reference, and
    `min_extra` more: text the speaker never said. Characters, not words, so it works for every script."""
    n_ref = len(_clean(reference).replace(" ", ""))
    n_pred = len(_clean(prediction).replace(" ", ""))
    return n_pred >= ratio * max(n_ref, 1) and n_pred - n_ref >= min_extra


def char_script(ch: str) -> str | None:
    """The writing system of a letter ("LATIN", "DEVANAGARI", "ARABIC", "CJK", ...); None for non-letters.

    Taken from the Unicode character name, so no table is needed. Hiragana, katakana and CJK ideographs count as
    one script ("CJK"), since Japanese mixes them. Vowel signs (combining marks) belong to their letter's script.
    """
    category = unicodedata.category(ch)
    if not (category.startswith("L") or category in ("Mn", "Mc")):
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return None
    words = name.split()
    for prefix in ("FULLWIDTH", "HALFWIDTH", "MATHEMATICAL", "MODIFIER", "SMALL", "CAPITAL"):
        if words and words[0] == prefix:
            words = words[1:]
    if not words or category in ("Mn", "Mc") and words[0] == "COMBINING":
        return None
    first = words[0]
    if first in ("HIRAGANA", "KATAKANA", "CJK", "IDEOGRAPHIC"):
        return "CJK"
    if first == "LETTER":  # e.g. "LATIN LETTER SMALL CAPITAL" variants are covered above; rare leftovers
        return None
    return first


def script_counts(text: str) -> Counter:
    """How many letters of each script a text has."""
    return Counter(s for s in map(char_script, _clean(text)) if s)


def dominant_script(text: str) -> str | None:
    """The script most letters of the text are written in (None for text without letters)."""
    counts = script_counts(text)
    return min(counts, key=lambda script: (-counts[script], script), default=None)


def expected_scripts(references: Iterable[str], min_share: float = 0.05) -> set[str]:
    """The scripts that make up at least `min_share` of the letters of a language's references."""
    total = sum((script_counts(r) for r in references), Counter())
    n = sum(total.values())
    return {s for s, c in total.items() if n and c / n >= min_share}


def is_wrong_script(prediction: str, scripts: set[str]) -> bool:
    """The prediction is mostly written in a script the references do not use (Hindi written in Urdu's Arabic
    script, Russian transliterated into Latin letters, ...)."""
    script = dominant_script(prediction)
    return script is not None and bool(scripts) and script not in scripts


# Some of the most frequent words of languages Whisper often drifts into. Only the words found in exactly one of
# these lists count (DISTINCTIVE_WORDS): "de" or "que" say nothing about Spanish versus Portuguese or French. Enough
# to tell, on a sentence, which of these languages it is written in; nothing about a language missing here.
FUNCTION_WORDS: dict[str, set[str]] = {
    "en": set("the and of to is that it with was for you this are have be on not they what we i he she his her at "
              "by from but or an will would there their been has had do does were".split()),
    "es": set("el la los las de que y en un una del por con no se es para como pero más su está muy también hay "
              "al lo le ya yo este esta son fue ha me mi".split()),
    "fr": set("le la les des de du et est un une pas que qui dans pour sur au aux avec ce il je vous nous ne se en "
              "sont cette mais ou plus".split()),
    "de": set("der die das und ist nicht ein eine zu den mit sich auf es ich auch dem sie wir von im für war hat "
              "werden noch wie aber oder".split()),
    "it": set("il di che e la non per un una sono della con del è gli questo anche come ma mi lo le si ho ha al "
              "nel alla più io".split()),
    "pt": set("o os de que e não um uma para com da do em é se mais por mas na no ao dos das como ele ela isso "
              "está foi eu".split()),
    "tr": set("ve bir bu için da de ile çok ne mi gibi daha ama olarak var değil ben sen her şey o kadar sonra "
              "çünkü".split()),
    "nl": set("de het een en van is niet dat op te zijn met voor ik je maar ook wat er hij die dit aan om naar "
              "bij".split()),
}
_WORD_LANGUAGES = Counter(word for vocab in FUNCTION_WORDS.values() for word in vocab)
DISTINCTIVE_WORDS: dict[str, set[str]] = {
    lang: {w for w in vocab if _WORD_LANGUAGES[w] == 1} for lang, vocab in FUNCTION_WORDS.items()
}


def function_word_language(text: str, min_hits: int = 2) -> str | None:
    """The language of FUNCTION_WORDS whose distinctive words the text uses most (at least `min_hits` of them,
    and strictly more than any other language), else None. Lower-cases and splits on spaces; pass normalised
    text."""
    words = _clean(text).lower().split()
    hits = {lang: sum(w in vocab for w in words) for lang, vocab in DISTINCTIVE_WORDS.items()}
    ranked = sorted(hits.items(), key=lambda kv: -kv[1])
    (best, n_best), (_, n_next) = ranked[0], ranked[1]
    if n_best >= min_hits and n_best > n_next:
        return best
    return None


def is_wrong_language(reference: str, prediction: str, language: str) -> bool:
    """The prediction reads as another language (most often Whisper translating into English).

    True when the prediction's function words point to a language other than `language` (a Common Voice
    locale; only its base "pt" of "pt-BR" counts) while the reference's do not point there too.
    """
    base = base_language(language)
    guess = function_word_language(prediction)
    return guess is not None and guess != base and function_word_language(reference) != guess
