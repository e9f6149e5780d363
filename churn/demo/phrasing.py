"""Turn topics into free text the way people type it: fillers, casual English, Arabic spelling variants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

_HAMZA_ALEFS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا"})
_TATWEEL = "ـ"
_MARKS = ("\u064e", "\u064f", "\u0650", "\u0651", "\u0652")  # fatha, damma, kasra, shadda, sukun
# Letters that do not join the next one: a tatweel after them would float, so it never goes there.
_NON_JOINING = set("اأإآدذرزوؤةى ")
_ARABIC_LETTERS = {chr(c) for c in range(0x0621, 0x064B)}
_DRAWS_PER_TEXT = 10


def write_texts(
    rng: np.random.Generator,
    topics: Sequence[str],
    arabic: np.ndarray,
    vocabulary: Mapping[str, Mapping[str, tuple[str, ...]]],
    *,
    openers: Mapping[str, tuple[str, ...]] | None = None,
    closers: Mapping[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """One text per row: a sentence on the row's topic in its language, varied like real typing."""
    draws = rng.random((len(topics), _DRAWS_PER_TEXT))
    texts = []
    for topic, in_arabic, u in zip(topics, arabic, draws, strict=True):
        language = "ar" if in_arabic else "en"
        choices = vocabulary[topic][language]
        core = choices[int(u[0] * len(choices))]
        opener = _pick(openers, language, u[1])
        closer = _pick(closers, language, u[2])
        if opener and language == "en" and not opener.endswith(": ") and not core.startswith("I "):
            core = core[0].lower() + core[1:]
        text = opener + core + closer
        texts.append(_vary_arabic(text, u[3:]) if in_arabic else _vary_english(text, u[3:]))
    return texts


def _pick(fillers: Mapping[str, tuple[str, ...]] | None, language: str, u: float) -> str:
    if not fillers:
        return ""
    options = fillers[language]
    return options[int(u * len(options))]


def _vary_english(text: str, u: np.ndarray) -> str:
    """Casual typing: a dropped final full stop, sometimes all lower case."""
    if u[0] < 0.25 and text.endswith("."):
        text = text[:-1]
    if u[1] < 0.08:
        text = text.lower()
    return text


def _vary_arabic(text: str, u: np.ndarray) -> str:
    """Common Arabic spelling variants: bare alef for hamza, ه for ة, ي for ى, tatweel, diacritics."""
    if u[0] < 0.35:
        text = text.translate(_HAMZA_ALEFS)
    if u[1] < 0.15:
        text = " ".join(w[:-1] + "ه" if w.endswith("ة") else w for w in text.split(" "))
    if u[2] < 0.15:
        text = text.replace("ى ", "ي ")
    if u[3] < 0.2:
        text = _stretch_word(text, u[4])
    if u[5] < 0.25:
        text = _add_marks(text, u[6])
    return text


def _stretch_word(text: str, u: float) -> str:
    """Insert a tatweel (kashida) inside one longer word, as people do for emphasis."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w[1] not in _NON_JOINING]
    if not long_words:
        return text
    i = long_words[int(u * len(long_words))]
    word = words[i]
    words[i] = word[:2] + _TATWEEL * (1 + int(u * 10) % 3) + word[2:]
    return " ".join(words)


def _add_marks(text: str, u: float) -> str:
    """Put a short vowel or shadda on one or two letters, as careful writers sometimes do."""
    positions = [
        i for i, ch in enumerate(text) if ch in _ARABIC_LETTERS and i + 1 < len(text) and text[i + 1] != " "
    ]
    if not positions:
        return text
    chosen = sorted({positions[int(u * len(positions))], positions[int(u * 7919) % len(positions)]})
    for offset, i in enumerate(chosen):
        mark = _MARKS[(i + offset) % len(_MARKS)]
        text = text[: i + 1 + offset] + mark + text[i + 1 + offset :]
    return text
