"""The learned reason classifier: it learns a company's own words and codes, mixes in the prior, and says 'other' when unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.config import ProductConfig
from training.reasons.classifier import ReasonModel, TrainingDataError, classify, clip, evaluate
from training.reasons.normalise import MAX_TEXT_CHARS

TAXONOMY = {code: reason.label for code, reason in ProductConfig().reasons.taxonomy.items()}

# A company's own way of saying things, in words the built-in vocabulary does not know.
ROWS = [
    ("price", "the quote from the reseller was way over what we planned"),
    ("price", "our CFO said the quote is too big this year"),
    ("price", "عرض الاسعار من الموزع أعلى مما خططنا"),
    ("price", "المدير المالي قال إن العرض كبير هذا العام"),
    ("support", "the helpline kept us on hold for hours"),
    ("support", "nobody on the helpline could sort out the sync problem"),
    ("support", "خط المساعدة تركنا على الانتظار لساعات"),
    ("support", "لا أحد في خط المساعدة حل مشكلة المزامنة"),
    ("security_review", "our infosec team rejected the vendor assessment"),
    ("security_review", "failed the infosec questionnaire again"),
    ("security_review", "فريق أمن المعلومات رفض تقييم المورد"),
    ("security_review", "لم نجتز استبيان أمن المعلومات"),
]


def _taxonomy_with_new_code() -> dict[str, str]:
    return {**TAXONOMY, "security_review": "Failed security review"}


def _fit(taxonomy: dict[str, str]) -> ReasonModel:
    return ReasonModel.fit([t for _, t in ROWS], [c for c, _ in ROWS], list(taxonomy))


def test_learns_a_code_the_company_added() -> None:
    taxonomy = _taxonomy_with_new_code()
    answers = classify(
        _fit(taxonomy), ["infosec said no", "اعترض فريق أمن المعلومات"], taxonomy, min_confidence=0.3
    )
    assert [a.code for a in answers] == ["security_review", "security_review"]
    assert answers[0].label == "Failed security review"


def test_keeps_the_vocabulary_for_reasons_it_saw_few_rows_of() -> None:
    taxonomy = _taxonomy_with_new_code()
    # No labelled row says "declined card": the prior still knows it is a failed payment.
    [answer] = classify(_fit(taxonomy), ["our credit card was declined"], taxonomy, min_confidence=0.3)
    assert answer.code == "payment_failed"


def test_low_confidence_becomes_other() -> None:
    taxonomy = _taxonomy_with_new_code()
    [answer] = classify(_fit(taxonomy), ["we have decided"], taxonomy, min_confidence=0.9)
    assert answer.code == "other"
    assert answer.confidence < 0.9


def test_a_code_dropped_from_the_taxonomy_is_never_answered() -> None:
    model = _fit(_taxonomy_with_new_code())
    [answer] = classify(model, ["infosec rejected the vendor assessment"], TAXONOMY, min_confidence=0.0)
    assert answer.code in TAXONOMY


def test_saved_model_answers_the_same(tmp_path: Path) -> None:
    taxonomy = _taxonomy_with_new_code()
    model = _fit(taxonomy)
    loaded = ReasonModel.load(model.save(tmp_path / "model"))
    texts = ["the helpline was useless", "عرض الاسعار كبير"]
    assert classify(loaded, texts, taxonomy, 0.5) == classify(model, texts, taxonomy, 0.5)


def test_one_reason_is_not_enough_to_learn_from() -> None:
    with pytest.raises(TrainingDataError, match="at least two reasons"):
        ReasonModel.fit(["too pricey", "way too pricey"], ["price", "price"], list(TAXONOMY))


def test_very_long_text_is_classified_on_its_start() -> None:
    text = "our credit card was declined " + "x" * (MAX_TEXT_CHARS * 3)
    assert len(clip(text)) == MAX_TEXT_CHARS
    taxonomy = _taxonomy_with_new_code()
    [answer] = classify(_fit(taxonomy), [text], taxonomy, min_confidence=0.3)
    assert answer.code == "payment_failed"


def test_evaluation_reports_each_language_beside_the_baseline() -> None:
    taxonomy = _taxonomy_with_new_code()
    rows = ROWS * 3
    evaluation = evaluate([t for _, t in rows], [c for c, _ in rows], taxonomy, 0.3, per_reason=4, repeats=2)
    assert set(evaluation.macro_f1) == {"combined", "char_ngram", "vocabulary"}
    for figures in evaluation.macro_f1.values():
        assert set(figures) == {"en", "ar"}
        assert all(0.0 <= value <= 1.0 for value in figures.values() if value is not None)
    assert evaluation.test_rows["en"] > 0 and evaluation.test_rows["ar"] > 0
