"""`churn reasons train|classify`: learning from stored cancellations, filling missing reasons, clear lines for bad input."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import typer
from click.testing import Result
from sqlalchemy import Engine
from typer.testing import CliRunner

from churn.cli.reasons import reasons_app
from churn.settings import get_settings
from churn.tables import cancellations, customers, reason_predictions
from tests.factories import customer_rows, insert_rows

# A company's own labelled texts (not the demo's), a few per reason, in both languages.
LABELLED = {
    "price": [
        "the quote from the reseller was way over what we planned",
        "our CFO says it costs too much for a team of five",
        "عرض الاسعار من الموزع أعلى مما خططنا",
        "التكلفة كبيرة على فريق صغير",
    ],
    "support": [
        "the helpline kept us on hold for hours",
        "nobody on the helpline could sort out the sync problem",
        "خط المساعدة تركنا على الانتظار لساعات",
        "لا أحد في خط الدعم حل مشكلة المزامنة",
    ],
    "competitor": [
        "we signed with a rival vendor last month",
        "switching to another provider that bundles it",
        "وقعنا مع مزود منافس الشهر الماضي",
        "انتقلنا إلى بديل يقدم كل شيء",
    ],
}
UNLABELLED = {
    "U1": "our credit card was declined again",
    "U2": "الدعم الفني بطيء جداً ولم يرد أحد",
    "U3": "weather is nice",
}


def _runner(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    app = typer.Typer()
    app.add_typer(reasons_app, name="reasons")
    runner = CliRunner()

    def run(*args: str) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return runner.invoke(app, ["reasons", *args], catch_exceptions=False)

    return run


@pytest.fixture
def reasons(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, database_url: str):
    env["CHURN_DATABASE_URL"] = database_url
    return _runner(env, monkeypatch)


def _store(engine: Engine, *, orphan: bool = False) -> None:
    insert_rows(engine, customers, customer_rows(1))
    rows = []
    for code, texts in LABELLED.items():
        for i, text in enumerate(texts):
            rows.append({"cancellation_id": f"L-{code}-{i}", "reason_code": code, "reason_text": text})
    for cancellation_id, text in UNLABELLED.items():
        rows.append({"cancellation_id": cancellation_id, "reason_code": None, "reason_text": text})
    rows.append({"cancellation_id": "O1", "reason_code": "other", "reason_text": "the invoice is too high"})
    rows.append({"cancellation_id": "B1", "reason_code": None, "reason_text": "   "})
    rows.append({"cancellation_id": "N1", "reason_code": None, "reason_text": None})
    if orphan:
        rows.append({"cancellation_id": "R1", "reason_code": "too_pricey", "reason_text": "we pay too much"})
    insert_rows(
        engine,
        cancellations,
        [{**row, "customer_id": "C001", "effective_at": "2026-01-31T00:00:00Z"} for row in rows],
    )


def _predictions(engine: Engine) -> dict[str, tuple[str, float, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(reason_predictions).order_by(reason_predictions.c.cancellation_id)
        )
        return {r.cancellation_id: (r.reason_code, r.confidence, r.classifier) for r in rows}


def test_train_fills_missing_reasons_and_reports_orphaned_codes(reasons, engine: Engine) -> None:
    _store(engine, orphan=True)
    result = reasons("train", "--json")
    assert result.exit_code == 0, result.output
    assert "too_pricey (1)" in result.stderr and "not used for training" in result.stderr
    document = json.loads(result.stdout)
    assert document["labelled_rows"] == 12
    assert document["orphaned"] == {"too_pricey": 1}
    assert set(document["evaluation"]["macro_f1"]) == {"combined", "char_ngram", "vocabulary"}
    filled = _predictions(engine)
    # Texts with no code or "other" are filled; blank texts, labelled rows and the orphan are not.
    assert set(filled) == {"U1", "U2", "U3", "O1"}
    assert filled["U1"][0] == "payment_failed"
    assert filled["U2"][0] == "support"
    assert 0.0 <= filled["U3"][1] <= 1.0  # an unclear text is filled too, with its confidence
    assert filled["O1"][0] == "price"
    assert {classifier for _, _, classifier in filled.values()} == {f"churn-reasons/{document['version']}"}
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(cancellations.c.reason_code).where(cancellations.c.cancellation_id == "R1")
        ).scalar_one()
    assert stored == "too_pricey"  # nothing lost


def test_training_again_replaces_the_earlier_fills(reasons, engine: Engine) -> None:
    _store(engine)
    assert reasons("train").exit_code == 0
    with engine.begin() as connection:
        # The company labels U1 itself: the next fill leaves it out.
        connection.execute(
            cancellations.update()
            .where(cancellations.c.cancellation_id == "U1")
            .values(reason_code="payment_failed")
        )
    result = reasons("train")
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.stdout and "plain char n-grams" in result.stdout
    assert "version 2" in result.stdout
    filled = _predictions(engine)
    assert set(filled) == {"U2", "U3", "O1"}
    assert {classifier for _, _, classifier in filled.values()} == {"churn-reasons/2"}


def test_train_with_nothing_labelled_says_so_and_writes_nothing(reasons, engine: Engine) -> None:
    insert_rows(engine, customers, customer_rows(1))
    insert_rows(
        engine,
        cancellations,
        [{"cancellation_id": "U1", "customer_id": "C001", "effective_at": "2026-01-31T00:00:00Z",
          "reason_text": "too expensive"}],
    )  # fmt: skip
    result = reasons("train")
    assert result.exit_code == 2
    assert "no stored cancellation has both a reason code and a reason text" in result.stderr
    assert _predictions(engine) == {}


def test_classify_uses_the_vocabulary_before_training_then_the_model(reasons, engine: Engine) -> None:
    texts = ["It costs more than we can afford", "خدمة العملاء سيئة والرد متأخر", "hello"]
    before = reasons("classify", *texts, "--json")
    assert before.exit_code == 0, before.output
    answers = [json.loads(line) for line in before.stdout.splitlines()]
    assert [a["code"] for a in answers] == ["price", "support", "other"]
    assert {a["classifier"] for a in answers} == {"vocabulary"}
    assert answers[0]["label"] == "Price" and 0.5 <= answers[0]["confidence"] <= 1.0

    _store(engine)
    assert reasons("train").exit_code == 0
    after = reasons("classify", "the helpline kept us waiting", "price غالي جدا and the cost")
    assert after.exit_code == 0, after.output
    lines = after.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[0] == "support"
    assert lines[1].split("\t")[0] == "price"  # mixed scripts


def test_classify_refuses_an_empty_text_and_notes_a_long_one(reasons) -> None:
    empty = reasons("classify", "too expensive", "  ...  ")
    assert empty.exit_code == 2
    assert "text 2 is empty" in empty.stderr
    assert empty.stdout == ""

    long = reasons("classify", "our credit card was declined " + "blah " * 1000)
    assert long.exit_code == 0
    assert "classified on its first 2,000" in long.stderr
    assert long.stdout.split("\t")[0] == "payment_failed"
