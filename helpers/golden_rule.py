"""The golden rule of the fine-tuning event, checked: normalisation may lower-case and remove punctuation, but
must never turn one word into another (English "it's" must not become "its")."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

from helpers.normalize import APOSTROPHES, HYPHENS, lowercase


# Punctuation stripped from the edges of a whitespace token before it counts as a word ("¿Qué?" -> "Qué"),
# except signs that carry meaning ("50%").
_EDGE_KEEP = "%‰#@&§"
# Apostrophe and hyphen look-alikes, written the one plain way.
_PLAIN_MARKS = str.maketrans({**dict.fromkeys(APOSTROPHES, "'"), **dict.fromkeys(HYPHENS, "-")})


def words(sentence: str) -> list[str]:
    """The words of a sentence as the checker sees them: whitespace-separated, edge punctuation stripped."""
    edges = "".join({ch for ch in sentence if unicodedata.category(ch)[0] == "P" and ch not in _EDGE_KEEP})
    return [w for w in (token.strip(edges) for token in sentence.split()) if w]


def _spelling_keys(word: str) -> tuple[str, str]:
    """Two keys that are equal for words that differ only by letter case or typographic form (Unicode
    compatibility form, which apostrophe or hyphen character): a case-folded one and a Turkish lower-cased one."""
    text = unicodedata.normalize("NFKC", word).translate(_PLAIN_MARKS)
    return text.casefold(), lowercase(text, "tr")


@dataclass(frozen=True)
class WordVariant:
    word: str
    count: int
    example: str  # the first sentence of the corpus that contains the word


@dataclass
class Merge:
    """Distinct original words that normalise to the same word."""

    normalized: str
    variants: list[WordVariant]
    removed_chars: str  # characters of the (lower-cased) originals that the normalised word lacks
    case_only: bool  # the words differ only by letter case or typographic form (The/the, it’s/it's)

    @property
    def words(self) -> list[str]:
        return [v.word for v in self.variants]

    def line(self) -> str:
        variants = ", ".join(f"{v.word} ({v.count}×)" for v in self.variants)
        removed = f"   lost: {' '.join(show_char(c) for c in self.removed_chars)}" if self.removed_chars else ""
        return f"'{self.normalized}' <- {variants}{removed}"


@dataclass
class GoldenRuleReport:
    """What `golden_rule_violations` found. `merges` break the golden rule; `case_merges` are allowed."""

    merges: dict[str, Merge]
    case_merges: dict[str, Merge]
    words_checked: int
    distinct_words: int
    sentences: int

    @property
    def ok(self) -> bool:
        return not self.merges

    @property
    def offending_chars(self) -> str:
        """Every character whose loss took part in a real merge, in order of first appearance."""
        return "".join(dict.fromkeys(ch for m in self.merges.values() for ch in m.removed_chars))

    def groups(self) -> dict[str, list[str]]:
        """The real merges as {normalised word: [original words]}, e.g. {"its": ["it's", "its"]}."""
        return {key: merge.words for key, merge in self.merges.items()}

    def summary(self, limit: int = 15, examples: bool = True) -> str:
        """Plain text: a loud banner when the rule set merges distinct words, then each merge."""
        lines = [f"checked {self.words_checked} words ({self.distinct_words} distinct) in {self.sentences} sentences"]
        if self.merges:
            chars = ", ".join(char_label(c) for c in self.offending_chars) or "none (characters were replaced)"
            lines += [
                "!" * 78,
                f"!! GOLDEN RULE VIOLATED: {len(self.merges)} group(s) of distinct words become the same word.",
                f"!! Characters whose removal merges words: {chars}",
                "!" * 78,
            ]
            for merge in list(self.merges.values())[:limit]:
                lines.append("  " + merge.line())
                lines += [f"      {v.word}: {v.example}" for v in merge.variants if examples]
            if len(self.merges) > limit:
                lines.append(f"  ... and {len(self.merges) - limit} more")
        else:
            lines.append("golden rule kept: no two distinct words become the same word")
        lines.append(f"case-only merges (allowed, lower-casing): {len(self.case_merges)}"
                     + (" e.g. " + "; ".join(" / ".join(m.words) for m in list(self.case_merges.values())[:3])
                        if self.case_merges else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "sentences": self.sentences,
            "words_checked": self.words_checked,
            "distinct_words": self.distinct_words,
            "merges": {k: {"words": {v.word: v.count for v in m.variants}, "removed_chars": m.removed_chars}
                       for k, m in self.merges.items()},
            "case_merges": len(self.case_merges),
            "offending_chars": self.offending_chars,
        }


def golden_rule_violations(sentences: Iterable[str], normalize: Callable[[str], str]) -> GoldenRuleReport:
    """Every group of distinct words of `sentences` (see `words`) that `normalize` (a RuleSet, Whisper's
    normaliser, any function) maps to the same word, e.g. {"its": ["it's", "its"]}.

    Groups whose words differ only by letter case or typographic form (The/the, it’s/it's) go to `case_merges`,
    since lower-casing is allowed; all others to `merges`, with the characters that were lost. Words that
    normalise to nothing are ignored. Sorted by normalised word, variants by count (most frequent first).
    """
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    n_sentences = 0
    for sentence in sentences:
        if not isinstance(sentence, str):
            raise TypeError(f"sentence {n_sentences} is a {type(sentence).__name__}, not a string: {sentence!r}")
        n_sentences += 1
        for word in words(sentence):
            counts[word] += 1
            examples.setdefault(word, sentence)
    groups: dict[str, list[str]] = {}
    for word in counts:
        key = " ".join(str(normalize(word)).split())
        if key:
            groups.setdefault(key, []).append(word)
    merges: dict[str, Merge] = {}
    case_merges: dict[str, Merge] = {}
    for key in sorted(groups):
        group = groups[key]
        if len(group) < 2:
            continue
        group.sort(key=lambda w: (-counts[w], w))
        case_only = any(len(set(keys)) == 1 for keys in zip(*map(_spelling_keys, group)))
        lowered = [unicodedata.normalize("NFC", w).lower() for w in group]
        lost = dict.fromkeys(ch for w in lowered for ch in Counter(w) - Counter(key))
        merge = Merge(key, [WordVariant(w, counts[w], examples[w]) for w in group], "".join(lost), case_only)
        (case_merges if case_only else merges)[key] = merge
    return GoldenRuleReport(merges, case_merges, sum(counts.values()), len(counts), n_sentences)


def show_char(ch: str) -> str:
    """A character as it can be read in a table: marks on a dotted circle, invisible ones by code point."""
    cat = unicodedata.category(ch)
    if cat[0] == "M":
        return "◌" + ch
    if cat[0] in "ZC":
        return f"U+{ord(ch):04X}"
    return ch


def char_label(ch: str) -> str:
    """A character with its Unicode name, e.g. "' (APOSTROPHE)", "◌ा (DEVANAGARI VOWEL SIGN AA)"."""
    return f"{show_char(ch)} ({unicodedata.name(ch, f'U+{ord(ch):04X}')})"
