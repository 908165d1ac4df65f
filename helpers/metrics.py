"""Word and character error rates, and the detectors behind the error analysis.

WER = (substitutions + deletions + insertions) / reference words, over the whole split (not a mean of per-clip
WERs), in percent (above 100 when the model inserts a lot). Normalised WER scores texts passed through Whisper's
evaluation normaliser (what the Whisper paper and the Hub's leaderboards report); orthographic WER scores the raw
texts, so casing and punctuation count. Clips with an empty reference have no WER: left out, and counted.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass
from itertools import zip_longest
from typing import Callable, Iterable, Sequence

from helpers.normalize import base_language

Normalizer = Callable[[str], str]


# -------------------------------------------------------------------------------------------------------- error rates
def _clean(text: str | None) -> str:
    """None and non-strings (a CSV's NaN) count as empty; whitespace runs count as one space."""
    return " ".join(text.split()) if isinstance(text, str) else ""


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


def _counts(unit: str, references: Sequence[str], predictions: Sequence[str]) -> ErrorCounts:
    import jiwer

    _check_lengths(references, predictions)
    if not references:
        return ErrorCounts()
    out = getattr(jiwer, f"process_{unit}")(list(references), list(predictions))
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, out.hits)


def word_counts(references: Sequence[str], predictions: Sequence[str]) -> ErrorCounts:
    """Edit operations at word level (jiwer's alignment). References must not be empty; see `usable_pairs`."""
    return _counts("words", references, predictions)


def char_counts(references: Sequence[str], predictions: Sequence[str]) -> ErrorCounts:
    """The same at character level (spaces count as characters)."""
    return _counts("characters", references, predictions)


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
    refs, preds = normalize_all(references, None), normalize_all(predictions, None)
    kept = [i for i, r in enumerate(refs) if r]
    return [refs[i] for i in kept], [preds[i] for i in kept], [i for i, r in enumerate(refs) if not r]


def _check_lengths(references: Sequence, predictions: Sequence) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions: they must pair up")


def compute_metrics(references: Sequence[str], predictions: Sequence[str], normalizer: Normalizer) -> dict:
    """Normalised WER, orthographic WER, CER (on normalised text, spaces included) and the WER with combining
    marks kept, with the counts; all over the clips whose reference is non-empty both raw and normalised."""
    _check_lengths(references, predictions)
    raw_refs, raw_preds = normalize_all(references, None), normalize_all(predictions, None)
    norm_refs, norm_preds = normalize_all(raw_refs, normalizer), normalize_all(raw_preds, normalizer)
    keep = [i for i in range(len(raw_refs)) if raw_refs[i] and norm_refs[i]]
    refs, preds, nrefs, npreds = ([t[i] for i in keep] for t in (raw_refs, raw_preds, norm_refs, norm_preds))
    words = word_counts(nrefs, npreds)
    return {
        "num_samples": len(keep),
        "num_empty_references": len(raw_refs) - len(keep),
        "wer": words.rate,
        "wer_orthographic": word_counts(refs, preds).rate,
        "cer": char_counts(nrefs, npreds).rate,
        "wer_keep_marks": wer(normalize_all(refs, keep_marks), normalize_all(preds, keep_marks)),
        **words.as_dict(),
    }


def keep_marks(text: str) -> str:
    """Lower-case, punctuation removed, combining marks kept. Whisper's BasicTextNormalizer deletes combining
    marks, which splits Devanagari (Thai, Thaana, ...) words into fragments; this one keeps words whole, so a WER
    on it can be read for those scripts (and is close to Whisper's for Latin scripts)."""
    text = unicodedata.normalize("NFC", str(text)).casefold()
    return " ".join("".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text).split())


def relative_improvement(before: float, after: float) -> float:
    """How much of the error went away, in percent of `before`: 40 -> 30 is 25. Negative when `after` is worse;
    nan when `before` is 0 or either is missing. The project's one sign convention for this number."""
    if before is None or after is None or not math.isfinite(before) or not math.isfinite(after) or before == 0:
        return math.nan
    return 100.0 * (before - after) / before


def rounded(value: float | None, digits: int = 2) -> float | None:
    """`value` rounded for a results file; None when it is missing or not finite (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# ------------------------------------------------------------------------------------------- alignment and confusions
def align_words(reference: str, prediction: str) -> list[tuple[str, str, str]]:
    """Word alignment as (operation, reference word, predicted word) triples; operation is "=" (correct), "S"
    (substitution), "D" (deletion) or "I" (insertion), and the missing side is ""."""
    import jiwer

    ref, hyp = _clean(reference).split(), _clean(prediction).split()
    if not ref:
        return [("I", "", w) for w in hyp]
    if not hyp:
        return [("D", w, "") for w in ref]
    codes = {"equal": "=", "substitute": "S", "delete": "D", "insert": "I"}
    triples = []
    for chunk in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        pairs = zip_longest(ref[chunk.ref_start_idx:chunk.ref_end_idx], hyp[chunk.hyp_start_idx:chunk.hyp_end_idx],
                            fillvalue="")
        triples += [(codes[chunk.type], r, h) for r, h in pairs]
    return triples


def _width(text: str) -> int:
    """Columns a string takes in a monospace font (East Asian wide characters take two, marks none)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text
               if not (unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf")))


def format_alignment(reference: str, prediction: str, max_columns: int = 30) -> str:
    """Three aligned lines: REF, HYP, and under each column the operation (S, D, I; blank when correct). Past
    `max_columns` words (a looping prediction can be hundreds long), a fourth line sums up the rest."""
    triples = align_words(reference, prediction)
    rest = triples[max_columns:]
    rows = [["REF:"], ["HYP:"], ["    "]]
    for op, r, h in triples[:max_columns]:
        r, h = r or "*" * max(1, _width(h)), h or "*" * max(1, _width(r))  # a missing word shows as stars
        width = max(_width(r), _width(h))
        for row, cell in zip(rows, (r, h, "" if op == "=" else op)):
            row.append(cell + " " * (width - _width(cell)))
    lines = [" ".join(row).rstrip() for row in rows]
    if rest:
        ops = Counter(op for op, _, _ in rest)
        counts = ", ".join(f"{ops[k]} {name}" for k, name in (("=", "correct"), ("S", "substituted"),
                                                                ("D", "deleted"), ("I", "inserted")) if ops[k])
        lines.append(f"… and {len(rest)} more aligned words ({counts})")
    return "\n".join(lines)


def confusions(references: Sequence[str], predictions: Sequence[str]) -> dict[str, Counter]:
    """Counters of substituted pairs ("ref -> hyp"), deleted words and inserted words over all clips."""
    _check_lengths(references, predictions)
    ops = [triple for r, p in zip(references, predictions) for triple in align_words(r, p)]
    return {"substitutions": Counter((r, h) for op, r, h in ops if op == "S"),
            "deletions": Counter(r for op, r, _ in ops if op == "D"),
            "insertions": Counter(h for op, _, h in ops if op == "I")}


# --------------------------------------------------- detectors: empty output, hallucination, wrong language or script
def split_words_ratio(texts: Iterable[str], normalizer: Normalizer) -> float:
    """Words after normalisation per word before (1.0 when the normaliser keeps words whole).

    Whisper's BasicTextNormalizer deletes combining marks, such as Devanagari vowel signs: "मिलाकर" becomes
    "म ल कर", and normalised WER counts fragments. Above 1, trust CER and orthographic WER more."""
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
    return list("".join(words)) if len(words) <= 2 and sum(len(w) for w in words) > 12 else words


def longest_repeat(text: str) -> tuple[str, int]:
    """The phrase of 1 to 4 words repeated most times in a row, and that count: "no no no sé" -> ("no", 3). Such
    loops are the usual sign that the decoder got stuck (Whisper's best-known hallucination)."""
    units = _units(text)
    best, best_count = "", 0
    for n in range(1, 5):
        for start in range(len(units) - n + 1):
            phrase = units[start:start + n]
            count = 1
            while units[start + count * n:start + (count + 1) * n] == phrase:
                count += 1
            if count > best_count or (count == best_count and count > 1 and n < len(best.split())):
                best, best_count = " ".join(phrase), count
    return best, best_count


def has_repetition(reference: str, prediction: str) -> bool:
    """The prediction repeats a phrase at least 3 times in a row, and more often than the reference does."""
    count = longest_repeat(prediction)[1]
    return count >= 3 and count > longest_repeat(reference)[1]


def is_too_long(reference: str, prediction: str) -> bool:
    """The prediction has at least twice as many characters (spaces aside) as the reference, and 10 more: text
    the speaker never said. Characters, not words, so it works for every script."""
    n_ref = len(_clean(reference).replace(" ", ""))
    n_pred = len(_clean(prediction).replace(" ", ""))
    return n_pred >= 2 * max(n_ref, 1) and n_pred - n_ref >= 10


def char_script(ch: str) -> str | None:
    """The writing system of a letter ("LATIN", "DEVANAGARI", "CJK", ...) from its Unicode name; None for
    non-letters. Kana and ideographs are one script, "CJK" (Japanese mixes them); vowel signs are their letter's."""
    category = unicodedata.category(ch)
    if not (category.startswith("L") or category in ("Mn", "Mc")):
        return None
    words = unicodedata.name(ch, "").split()
    for prefix in ("FULLWIDTH", "HALFWIDTH", "MATHEMATICAL", "MODIFIER", "SMALL", "CAPITAL"):
        if words and words[0] == prefix:
            words = words[1:]
    if not words or category in ("Mn", "Mc") and words[0] == "COMBINING" or words[0] == "LETTER":
        return None  # a name such as "LETTER SMALL CAPITAL ..." names no script
    return "CJK" if words[0] in ("HIRAGANA", "KATAKANA", "CJK", "IDEOGRAPHIC") else words[0]


def script_counts(text: str) -> Counter:
    """How many letters of each script a text has."""
    return Counter(s for s in map(char_script, _clean(text)) if s)


def dominant_script(text: str) -> str | None:
    """The script most letters of the text are written in (None for text without letters)."""
    counts = script_counts(text)
    return min(counts, key=lambda script: (-counts[script], script), default=None)


def expected_scripts(references: Iterable[str]) -> set[str]:
    """The scripts that make up at least 5% of the letters of a language's references."""
    total = sum((script_counts(r) for r in references), Counter())
    n = sum(total.values())
    return {s for s, c in total.items() if n and c / n >= 0.05}


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


def function_word_language(text: str) -> str | None:
    """The language of FUNCTION_WORDS whose distinctive words the text uses most (at least 2 of them, and strictly
    more than any other language), else None. Lower-cases and splits on spaces; pass normalised text."""
    words = _clean(text).lower().split()
    hits = Counter({lang: sum(w in vocab for w in words) for lang, vocab in DISTINCTIVE_WORDS.items()})
    (best, n_best), (_, n_next) = hits.most_common(2)
    return best if n_best >= 2 and n_best > n_next else None


def is_wrong_language(reference: str, prediction: str, language: str) -> bool:
    """The prediction reads as another language (most often Whisper translating into English): its function
    words point to a language other than `language` (only the base "pt" of "pt-BR" counts) while the reference's
    do not point there too."""
    base, guess = base_language(language), function_word_language(prediction)
    return guess is not None and guess != base and function_word_language(reference) != guess
