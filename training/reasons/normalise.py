"""Text normalisation for reason texts: Arabic letter forms, diacritics, digits, case and light stemming.

Customers write the same word many ways: أسعار, اسعار and الأسعار are one word to a reader, and so are
"Expensive" and "expensive!". Everything that compares words (the vocabulary and the learned model)
goes through these pure functions first.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

MAX_TEXT_CHARS = 2000

# Harakat, tanween, shadda, sukun, superscript alef, Quranic marks: a reader ignores them, so do we.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = "\u0640"
_LETTERS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ؤ": "و",
        "ئ": "ي",
        "ة": "ه",
        "ى": "ي",
        "ک": "ك",  # Persian keheh, common on some keyboards
        "ی": "ي",  # Persian yeh
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Extended (Persian) digits
    }
)
# Anything that is not a letter or digit separates words (Arabic comma, semicolon and question mark too).
_SEPARATORS = re.compile(r"[^\w]+|_")
_ARABIC_LETTER = re.compile("[\u0621-\u064a]")
_LATIN_LETTER = re.compile("[a-zA-Z]")

# Light stemming: clitics and affixes that change a word's form but not the reason it names. Longest
# first, and only while a stem of at least three letters is left, so short roots survive.
# A lone ب, ل, ف or ك is too often part of the root (بطيء, لغة) to strip; with ال it is a clitic.
_AR_PREFIXES = ("وبال", "وال", "بال", "كال", "فال", "لل", "ال", "و")
_AR_SUFFIXES = ("هما", "كما", "ات", "ون", "ين", "ان", "ها", "هم", "كم", "نا", "يه", "ه", "ي")
_EN_SUFFIXES = (
    "ations",
    "ation",
    "ingly",
    "ness",
    "ments",
    "ment",
    "ing",
    "ies",
    "ied",
    "ed",
    "es",
    "ly",
    "s",
)

Script = Literal["ar", "en", "mixed", "none"]


def normalise(text: str) -> str:
    """The text with one spelling per word: unified Arabic letters, no diacritics, lower case, no marks."""
    # NFKC folds Arabic presentation forms (ﻻ, ﺍ ...) and full-width Latin to their plain letters.
    text = unicodedata.normalize("NFKC", text)
    text = _DIACRITICS.sub("", text).replace(_TATWEEL, "")
    text = text.translate(_LETTERS).casefold()
    return " ".join(_SEPARATORS.sub(" ", text).split())


def stem(word: str) -> str:
    """A light stem of one normalised word: Arabic clitics and affixes or English suffixes removed."""
    if _ARABIC_LETTER.match(word):
        for prefix in _AR_PREFIXES:
            if word.startswith(prefix) and len(word) - len(prefix) >= 3:
                word = word[len(prefix) :]
                break
        for suffix in _AR_SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                return word[: -len(suffix)]
        return word
    for suffix in _EN_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def stems(text: str) -> list[str]:
    """The light stems of a raw text's words, in order."""
    return [stem(word) for word in normalise(text).split()]


def script(text: str) -> Script:
    """Which script a text is written in: Arabic, English (Latin), both, or neither."""
    words = text.split()
    arabic = sum(bool(_ARABIC_LETTER.search(w)) for w in words)
    latin = sum(bool(_LATIN_LETTER.search(w)) for w in words)
    if not arabic and not latin:
        return "none"
    # Counted in words, so a stray product name in Latin letters does not make an Arabic sentence mixed.
    total = arabic + latin
    if arabic / total >= 0.8:
        return "ar"
    if latin / total >= 0.8:
        return "en"
    return "mixed"


def language(text: str) -> Literal["ar", "en"]:
    """The main language of a text, for per-language figures: Arabic if most letters are Arabic."""
    return "ar" if len(_ARABIC_LETTER.findall(text)) > len(_LATIN_LETTER.findall(text)) else "en"
