"""Text normalisation for training and evaluation.

The fine-tuning event's rules: lower-casing and removing punctuation and symbols are allowed, but never remove a
character whose removal turns a word into another word ("it's" must not become "its"; helpers.golden_rule checks
it). The later advice: train on un-normalised text, evaluate on normalised text, and report both.

`RuleSet` holds the training-text rules of one language as plain data; `eval_normalizer` is Whisper's own
evaluation normaliser from transformers; `save_normalization` / `load_normalization` carry notebook 02's choice
to notebooks 03 and 04 through `<run_dir>/normalization.json`.
"""

from __future__ import annotations

import html
import json
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from helpers.files import write_json

NORMALIZATION_FILE = "normalization.json"

# Characters that stand for an apostrophe inside a word: straight, curly (right and left single quotation
# marks, often typed for it), modifier letter apostrophe, and the acute and grave accents typed by mistake.
APOSTROPHES = "'\u2019\u2018\u02bc\u00b4`"
# Hyphen-minus, hyphen, non-breaking hyphen. En and em dashes are punctuation, not hyphens.
HYPHENS = "-\u2010\u2011"
SOFT_HYPHEN = "\u00ad"
# Punctuation and symbols that carry meaning ("50%" is not "50", "$5" is not "5", "AT&T", "20°"): kept.
DEFAULT_KEEP_CHARS = "%‰&@#§°$€£¥₹₺+=<>±×÷"
# Between two digits these are part of a number: "3.5", "3,5", "10:30", "1,000".
NUMBER_SEPARATORS = ".,:"
# Whitespace that str.split() does not treat as such, plus the byte-order mark.
EXTRA_SPACES = "\u200b\ufeff"

HYPHEN_MODES = ("remove", "space", "keep")
APOSTROPHE_MODES = ("keep", "remove", "space")
TRAIN_ON = ("raw", "normalized")

# Languages written in the Latin alphabet with dotted and dotless i: I -> ı and İ -> i.
TURKIC_CASING = {"tr", "az", "crh", "gag"}
# Characters that are part of a word when they sit between two letters (Catalan "col·legi", "cel·la").
INNER_CHARS = {"ca": "·"}


def base_language(locale: str) -> str:
    """The language part of a Common Voice locale: "sv-SE" -> "sv", "zh-CN" -> "zh", "tr" -> "tr"."""
    if not isinstance(locale, str) or not locale.strip():
        raise ValueError(f"language must be a Common Voice locale code such as 'es' or 'zh-CN', got {locale!r}")
    return locale.strip().replace("_", "-").split("-")[0].lower()


def lowercase(text: str, language: str) -> str:
    """Lower-case `text` the way `language` spells it: Turkic "I" -> "ı", "İ" -> "i" (str.lower gives "i" and
    "i̇"). German "ß" stays "ß" (str.casefold would make it "ss"), and capital "ẞ" becomes "ß"."""
    if base_language(language) in TURKIC_CASING:
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def _is_letter(ch: str) -> bool:
    """A letter or a combining mark (accents, Devanagari vowel signs), i.e. part of a word."""
    return unicodedata.category(ch)[0] in "LM"


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN"


def _between(text: str, i: int, test: Callable[[str], bool]) -> bool:
    return 0 < i < len(text) - 1 and test(text[i - 1]) and test(text[i + 1])


@dataclass
class RuleSet:
    """Training-text rules for one language, applied in this order (see `steps`).

    - `unicode_nfc`: compose characters (e + combining acute -> é) so that one letter has one spelling.
    - `lowercase`: language-aware lower-casing (see `lowercase`).
    - `apostrophes`: what happens to an apostrophe between two letters (it's, l'homme, aujourd'hui):
      "keep" (written as a straight '), "remove" (it's -> its: breaks the golden rule in English and French),
      "space" (l'homme -> l homme). Apostrophes at a word's edge are quotation marks: punctuation.
    - `hyphens`: a hyphen between two letters or digits: "space" (est-ce -> est ce, fine-tuning -> fine tuning),
      "remove" (fine-tuning -> finetuning), "keep".
    - `remove_punctuation`: punctuation and symbols become spaces (¿ ¡ « » „ “ . , ; : ! ? । ॥ – — ...), except
      `keep_chars` (meaning-bearing symbols such as % $ €), `inner_chars` between two letters, and, with
      `keep_number_separators`, "." "," ":" between two digits (3.5, 10:30).
    - `collapse_whitespace`: any run of spaces (including no-break and zero-width ones) becomes one space.

    Letters, digits and combining marks (accents, Devanagari vowel signs and nukta) are never removed.
    """

    language: str
    unicode_nfc: bool = True
    lowercase: bool = True
    apostrophes: str = "keep"
    hyphens: str = "space"
    remove_punctuation: bool = True
    keep_chars: str = DEFAULT_KEEP_CHARS
    inner_chars: str = ""
    keep_number_separators: bool = True
    collapse_whitespace: bool = True

    def __post_init__(self) -> None:
        base_language(self.language)  # validates
        for name, modes in (("apostrophes", APOSTROPHE_MODES), ("hyphens", HYPHEN_MODES)):
            if getattr(self, name) not in modes:
                raise ValueError(f"RuleSet.{name} must be one of {modes}, got {getattr(self, name)!r}")
        for name in ("unicode_nfc", "lowercase", "remove_punctuation", "keep_number_separators",
                     "collapse_whitespace"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"RuleSet.{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("keep_chars", "inner_chars"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"RuleSet.{name} must be a string of characters, got {getattr(self, name)!r}")

    # ----- construction and storage -----
    @classmethod
    def for_language(cls, locale: str) -> "RuleSet":
        """The recommended rules for a Common Voice locale: the defaults, plus the language's `INNER_CHARS`.
        Hyphens become spaces rather than vanishing (which the event allows) because Whisper's evaluation
        normalisers do the same, and words joined by a hyphen ("est-ce") stay apart."""
        return cls(language=locale, inner_chars=INNER_CHARS.get(base_language(locale), ""))

    def replace(self, **changes) -> "RuleSet":
        """A copy with some rules changed: `rules.replace(apostrophes="remove")`."""
        return RuleSet.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RuleSet":
        if not isinstance(data, dict):
            raise ValueError(f"a rule set must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; known rules: {sorted(known)}")
        if "language" not in data:
            raise ValueError("a rule set needs a 'language' (a Common Voice locale code)")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "RuleSet":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"rule set is not valid JSON: {err}") from None
        return cls.from_dict(data)

    # ----- the rules -----
    @staticmethod
    def _inside_words(text: str, chars: str, inside: Callable[[str], bool], mode: str, kept: str) -> str:
        """Each of `chars` between two characters that pass `inside`: written as `kept`, removed or a space."""
        replacement = {"keep": kept, "remove": "", "space": " "}[mode]
        return "".join(replacement if ch in chars and _between(text, i, inside) else ch for i, ch in enumerate(text))

    def _punctuation(self, text: str) -> str:
        def kept(i: int, ch: str) -> bool:
            return (unicodedata.category(ch)[0] not in "PS" or ch in self.keep_chars
                    or self.apostrophes == "keep" and ch == "'" and _between(text, i, _is_letter)
                    or self.hyphens == "keep" and ch == "-" and _between(text, i, _is_word_char)
                    or ch in self.inner_chars and _between(text, i, _is_letter)
                    or self.keep_number_separators and ch in NUMBER_SEPARATORS and _between(text, i, str.isdigit))

        return "".join(ch if kept(i, ch) else " " for i, ch in enumerate(text))

    def steps(self, text: str) -> list[tuple[str, str]]:
        """Each rule in turn: [("original", text), (rule name, text after it), ...]. The last is `apply(text)`."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        result = [("original", text)]
        if self.unicode_nfc:
            text = unicodedata.normalize("NFC", text)
            result.append(("unicode NFC", text))
        if self.lowercase:
            turkic = base_language(self.language) in TURKIC_CASING
            text = lowercase(text, self.language)
            result.append(("lower-case (I→ı, İ→i)" if turkic else "lower-case", text))
        text = self._inside_words(text, APOSTROPHES, _is_letter, self.apostrophes, "'")
        result.append((f"inner apostrophes: {self.apostrophes}", text))
        text = self._inside_words(text.replace(SOFT_HYPHEN, ""), HYPHENS, _is_word_char, self.hyphens, "-")
        result.append((f"hyphens: {self.hyphens}", text))
        if self.remove_punctuation:
            text = self._punctuation(text)
            result.append(("punctuation and symbols → space", text))
        if self.collapse_whitespace:
            for ch in EXTRA_SPACES:
                text = text.replace(ch, " ")
            text = " ".join(text.split())
            result.append(("whitespace", text))
        return result

    def apply(self, text: str) -> str:
        """The text after every rule."""
        return self.steps(text)[-1][1]

    __call__ = apply


def format_steps(steps: list[tuple[str, str]]) -> str:
    """Plain-text table of `RuleSet.steps`: one line per rule, marked with * where the rule changed the text."""
    width = max(len(name) for name, _ in steps)
    texts = [text for _, text in steps]
    marks = [" "] + [" " if after == before else "*" for before, after in zip(texts, texts[1:])]
    return "\n".join(f"{mark} {name.ljust(width)}  |{text}|" for mark, (name, text) in zip(marks, steps))


def steps_widget(rules: RuleSet, text: str, headless: bool | None = None):
    """"Try it": print the step-by-step effect of `rules` on `text`; in a front end, also show a text box that
    updates the table as one types. Returns the widget, or None when headless."""
    from helpers.widgets import is_headless

    print(format_steps(rules.steps(text)))
    if is_headless(headless):
        return None
    import ipywidgets as widgets
    from IPython.display import display

    box = widgets.Textarea(value=text, description="Sentence", layout=widgets.Layout(width="95%"))
    table = widgets.HTML()

    def refresh(_change=None) -> None:
        table.value = "<pre>" + html.escape(format_steps(rules.steps(box.value))) + "</pre>"

    box.observe(refresh, names="value")
    refresh()
    widget = widgets.VBox([box, table])
    display(widget)
    return widget


# ----- evaluation normaliser (Whisper's own) -----
def eval_normalizer_name(language: str) -> str:
    """The name of Whisper's evaluation normaliser for a locale: English has its own, the rest the basic one."""
    return "EnglishTextNormalizer" if base_language(language) == "en" else "BasicTextNormalizer"


def eval_normalizer_from_name(name: str) -> Callable[[str], str]:
    """Whisper's normaliser by name ("BasicTextNormalizer" or "EnglishTextNormalizer") from transformers. The
    English one needs Whisper's British-to-American spelling map; `helpers/english_spelling.json` is a copy of
    the Hub's `normalizer.json` (source and licence beside it), so this works offline."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

    if name == "BasicTextNormalizer":
        return BasicTextNormalizer()
    if name == "EnglishTextNormalizer":
        spelling = json.loads((Path(__file__).parent / "english_spelling.json").read_text(encoding="utf-8"))
        return EnglishTextNormalizer(spelling)
    raise ValueError(f"unknown evaluation normaliser {name!r}: use 'BasicTextNormalizer' or 'EnglishTextNormalizer'")


def eval_normalizer(language: str) -> Callable[[str], str]:
    """Whisper's evaluation normaliser for `language` (a callable: text -> normalised text)."""
    return eval_normalizer_from_name(eval_normalizer_name(language))


# ----- corpus helpers for the notebook -----
def take_sentences(rows: Iterable, limit: int = 0) -> list[str]:
    """The `sentence` of the first `limit` rows (all rows when limit is 0) of a dataset or a stream of rows."""
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a whole number >= 0 (0 = all), got {limit!r}")
    return [str(row["sentence"]) for row in islice(rows, limit or None)]


def showcase_sentence(sentences: Iterable[str], rules: RuleSet, limit: int = 200) -> str:
    """Among the first `limit` sentences, the one that the most rules change; ties go to the one that loses the
    most characters, then to the earliest."""
    def score(sentence: str) -> tuple[int, int]:
        steps = rules.steps(sentence)
        changed = sum(after != before for (_, before), (_, after) in zip(steps, steps[1:]))
        return changed, len(sentence) - len(steps[-1][1])

    return max(islice(sentences, limit), key=score, default="")


def character_changes(sentences: Iterable[str], rules: RuleSet) -> dict[str, str]:
    """Characters of `sentences` that no longer occur after `rules`, in order of first appearance, split into
    "lower-cased" (capitals whose lower-case form remains) and "removed" (everything else)."""
    sentences = list(sentences)
    after = set("".join(rules.apply(s) for s in sentences))
    changes = {"lower-cased": "", "removed": ""}
    for ch in dict.fromkeys("".join(sentences)):
        if ch not in after:
            lower = lowercase(ch, rules.language)
            changes["lower-cased" if lower != ch and all(c in after for c in lower) else "removed"] += ch
    return changes


# ----- the choice, saved for notebooks 03 and 04 -----
@dataclass
class Normalization:
    """What notebook 02 decided: training text (raw or normalised with `rules`) and the evaluation normaliser.
    `language` and `rules` are None only when `load_normalization` finds no file and is given no language."""

    language: str | None
    rules: RuleSet | None
    train_on: str = "raw"
    eval_normalizer: str = ""
    extra: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {TRAIN_ON}, got {self.train_on!r}")
        if self.train_on == "normalized" and self.rules is None:
            raise ValueError("train_on='normalized' needs a rule set")
        if not self.eval_normalizer:
            self.eval_normalizer = eval_normalizer_name(self.language) if self.language else "BasicTextNormalizer"
        self._eval: Callable[[str], str] | None = None

    def train_text(self, sentence: str) -> str:
        return self.rules.apply(sentence) if self.train_on == "normalized" else sentence

    __call__ = train_text

    def eval_text(self, sentence: str) -> str:
        """Whisper's normaliser applied to `sentence`, outer spaces stripped (WER is the same either way)."""
        if self._eval is None:
            self._eval = eval_normalizer_from_name(self.eval_normalizer)
        return self._eval(sentence).strip()

    def to_dict(self) -> dict:
        return {"language": self.language, "train_on": self.train_on,
                "rules": self.rules.to_dict() if self.rules else None, "eval_normalizer": self.eval_normalizer,
                **self.extra}


def save_normalization(run_dir: str | Path, rules: RuleSet, train_on: str = "raw", extra: dict | None = None
                       ) -> Path:
    """Write `<run_dir>/normalization.json`: the rules, what to train on, the evaluation normaliser's name and
    any `extra` results (e.g. the golden-rule report)."""
    norm = Normalization(rules.language, rules, train_on, extra=dict(extra or {}))
    return write_json(norm.to_dict(), Path(run_dir) / NORMALIZATION_FILE)


def load_normalization(run_dir: str | Path, language: str | None = None) -> Normalization:
    """Read `<run_dir>/normalization.json` (written by notebook 02). Without it: train on un-normalised text
    (the event's advice) and evaluate with Whisper's normaliser for `language`. With `language`, a file written
    for another language is an error (one run folder, one language)."""
    path = Path(run_dir) / NORMALIZATION_FILE
    if not path.exists():
        rules = RuleSet.for_language(language) if language else None
        return Normalization(language, rules, "raw", source=f"default (no {NORMALIZATION_FILE} in {run_dir})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    missing = [k for k in ("language", "rules", "train_on", "eval_normalizer") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks {missing}; write it with helpers.normalize.save_normalization")
    if language and base_language(data["language"]) != base_language(language):
        raise ValueError(f"{path} was written for language {data['language']!r}, not {language!r}: "
                         f"use a run_dir per language or re-run notebook 02 for {language!r}")
    eval_normalizer_from_name(data["eval_normalizer"])  # validates the name
    extra = {k: v for k, v in data.items() if k not in ("language", "rules", "train_on", "eval_normalizer")}
    return Normalization(data["language"], RuleSet.from_dict(data["rules"]), data["train_on"],
                         data["eval_normalizer"], extra, source=str(path))


def training_transform(run_dir: str | Path) -> Callable[[str], str] | None:
    """The function to apply to training sentences, or None to train on them as written (the default)."""
    norm = load_normalization(run_dir)
    return norm.rules.apply if norm.train_on == "normalized" else None
