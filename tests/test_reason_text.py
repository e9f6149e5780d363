"""Reason text normalisation and the built-in vocabulary: one spelling per word, and a classifier out of the box."""

from __future__ import annotations

import pytest

from churn.config import ProductConfig
from training.reasons.classifier import VocabularyClassifier, classify
from training.reasons.normalise import language, normalise, script, stem, stems
from training.reasons.vocabulary import WORDS, vocabulary_for

TAXONOMY = {code: reason.label for code, reason in ProductConfig().reasons.taxonomy.items()}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("أسعار", "اسعار"),
        ("إلغاء", "الغاء"),
        ("آخر", "اخر"),
        ("ٱلسعر", "السعر"),
        ("مسؤول", "مسوول"),
        ("بطيئة", "بطييه"),
        ("ميزانية", "ميزانيه"),
        ("مستشفى", "مستشفي"),
        ("السِّعْرُ", "السعر"),  # harakat, shadda, sukun
        ("غالٍ جداً", "غال جدا"),  # tanween
        ("غـــالـي", "غالي"),  # tatweel
        ("٢٠٢٥ و ۳", "2025 و 3"),  # Arabic-Indic and extended digits
        ("ﻻ", "لا"),  # presentation form
    ],
)
def test_arabic_spellings_of_one_word_become_one(written: str, expected: str) -> None:
    assert normalise(written) == expected


def test_english_is_lower_cased_and_punctuation_dropped() -> None:
    assert normalise("Too EXPENSIVE!!! (for our budget)...") == "too expensive for our budget"
    assert normalise("السعر، مرتفع؛ لماذا؟") == "السعر مرتفع لماذا"


def test_arabic_clitics_and_suffixes_are_stripped_but_short_roots_kept() -> None:
    assert stem("الاسعار") == "اسعار"
    assert stem("والتكلفه") == "تكلف"
    assert stem("بالدعم") == "دعم"
    assert stem("للشركه") == "شرك"
    assert stem("بطيء") == "بطيء"  # a lone ب is part of the root here
    assert stem("ال") == "ال"
    assert stems("Support tickets") == ["support", "ticket"]


def test_spelling_variants_share_stems() -> None:
    assert stems("الأسعار مرتفعة") == stems("الاسعار مرتفعه") == stems("الأَسْعَار مرتفعـة")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("too expensive", "en"),
        ("الدعم بطيء", "ar"),
        ("الدعم الفني بطيء في Salesforce", "ar"),  # a product name does not make it mixed
        ("support بطيء جدا", "mixed"),
        ("!!! 123", "none"),
    ],
)
def test_script_of_a_text(text: str, expected: str) -> None:
    assert script(text) == expected


def test_language_is_the_majority_script() -> None:
    assert language("too slow الدعم") == "en"
    assert language("الدعم الفني بطيء support") == "ar"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("It costs more than we can afford.", "price"),
        ("كانت التكلفة فوق ميزانيتنا", "price"),
        ("The helpdesk never answered our tickets, waiting for weeks", "support"),
        ("خدمة العملاء سيئة والرد متأخر دائماً", "support"),
        ("We are switching to a competitor", "competitor"),
        ("انتقلنا إلى منافس يقدم بديلاً", "competitor"),
        ("The company went out of business", "business_closed"),
        ("تم إغلاق الشركة بعد الإفلاس", "business_closed"),
        ("Our credit card was declined", "payment_failed"),
        ("رُفضت البطاقة الائتمانية", "payment_failed"),
    ],
)
def test_vocabulary_classifies_before_anything_is_labelled(text: str, code: str) -> None:
    [answer] = classify(VocabularyClassifier(list(TAXONOMY)), [text], TAXONOMY, 0.5)
    assert answer.code == code
    assert answer.confidence >= 0.5
    assert answer.label == TAXONOMY[code]
    assert answer.classifier == "vocabulary"


def test_mixed_script_text_uses_both_vocabularies() -> None:
    [answer] = classify(
        VocabularyClassifier(list(TAXONOMY)), ["price غالي and تكلفة too high"], TAXONOMY, 0.5
    )
    assert answer.code == "price"


def test_unclear_text_is_other() -> None:
    answers = classify(VocabularyClassifier(list(TAXONOMY)), ["hello there", "مرحبا"], TAXONOMY, 0.5)
    assert [a.code for a in answers] == ["other", "other"]


def test_a_new_code_has_no_prior_and_is_never_guessed_by_the_vocabulary() -> None:
    taxonomy = {**TAXONOMY, "security_review": "Failed security review"}
    vocabulary = vocabulary_for(list(taxonomy))
    assert vocabulary.phrases["security_review"] == ()
    [answer] = classify(VocabularyClassifier(list(taxonomy)), ["too expensive"], taxonomy, 0.5)
    assert answer.code == "price"


def test_every_default_reason_has_words_in_both_languages() -> None:
    for code in TAXONOMY:
        assert set(WORDS[code]) == {"en", "ar"}, code
        assert all(WORDS[code][lang] for lang in ("en", "ar")), code
