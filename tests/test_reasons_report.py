"""The reasons report: each churn's reason before and after the fills, and a page that reads on its own."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from churn.cli.reasons_report import register
from churn.config import ProductConfig
from churn.db import make_engine
from churn.migrate import upgrade_database
from churn.settings import get_settings
from churn.tables import cancellations, customers, reason_predictions, subscriptions
from tests.factories import insert_rows
from training.reasons_report import NO_REASON, reason_churns, render_reasons_report

CLASSIFIED_AT = datetime(2030, 1, 1, tzinfo=UTC)


def _reasons_cli() -> typer.Typer:
    app = typer.Typer()
    reasons = typer.Typer()
    register(reasons)
    app.add_typer(reasons, name="reasons")
    return app


def _run(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return CliRunner().invoke(_reasons_cli(), ["reasons", *args], catch_exceptions=False)


def _four_churns(engine: Engine) -> None:
    """A coded churn, an 'other' with words, words without a code, and a churn nobody explained."""
    insert_rows(
        engine,
        customers,
        [{"customer_id": f"C{i}", "segment": "SMB" if i % 2 else "Enterprise"} for i in range(1, 6)],
    )
    ends = {"C1": "2024-03-10", "C2": "2024-03-20", "C3": "2024-04-05", "C4": "2024-04-25"}
    insert_rows(
        engine,
        subscriptions,
        [
            {"subscription_id": f"S{c}", "customer_id": c, "started_at": "2023-01-01T00:00:00Z",
             "ended_at": f"{day}T00:00:00Z", "mrr": 100}
            for c, day in ends.items()
        ]
        + [{"subscription_id": "SC5", "customer_id": "C5", "started_at": "2023-01-01T00:00:00Z", "mrr": 100}],
    )  # fmt: skip
    insert_rows(
        engine,
        cancellations,
        [
            {"cancellation_id": "X1", "customer_id": "C1", "effective_at": "2024-03-10T00:00:00Z",
             "reason_code": "price", "voluntary": True},
            {"cancellation_id": "X2", "customer_id": "C2", "effective_at": "2024-03-20T00:00:00Z",
             "reason_code": "other", "reason_text": "the helpdesk never answered us"},
            {"cancellation_id": "X3", "customer_id": "C3", "effective_at": "2024-04-05T00:00:00Z",
             "reason_text": "the company shut down"},
        ],
    )  # fmt: skip
    insert_rows(
        engine,
        reason_predictions,
        [
            {"cancellation_id": "X2", "reason_code": "support", "confidence": 0.8, "classifier": "vocabulary",
             "classified_at": CLASSIFIED_AT},
            {"cancellation_id": "X3", "reason_code": "business_closed", "confidence": 0.9,
             "classifier": "vocabulary", "classified_at": CLASSIFIED_AT},
        ],
    )  # fmt: skip


def test_each_churn_takes_the_code_then_the_classifiers_fill_then_no_reason(engine: Engine) -> None:
    _four_churns(engine)
    with engine.connect() as connection:
        churns = reason_churns(connection, ProductConfig()).set_index("customer_id")
    assert churns["stated"].to_dict() == {"C1": "price", "C2": "other", "C3": NO_REASON, "C4": NO_REASON}
    assert churns["reason"].to_dict() == {
        "C1": "price",
        "C2": "support",
        "C3": "business_closed",
        "C4": NO_REASON,
    }
    assert churns["source"].to_dict() == {
        "C1": "customer",
        "C2": "classifier",
        "C3": "classifier",
        "C4": "none",
    }
    assert churns["month"].to_dict() == {"C1": "2024-03", "C2": "2024-03", "C3": "2024-04", "C4": "2024-04"}
    # Without the cancellation's own flag the taxonomy says; with no reason at all nobody knows.
    assert churns["kind"].to_dict() == {
        "C1": "Voluntary",
        "C2": "Voluntary",
        "C3": "Voluntary",
        "C4": "Not known",
    }


def test_a_fill_below_the_confidence_floor_stays_other(engine: Engine) -> None:
    _four_churns(engine)
    config = ProductConfig.model_validate({"reasons": {"min_confidence": 0.85}})
    with engine.connect() as connection:
        churns = reason_churns(connection, config).set_index("customer_id")
    assert churns.loc["C2", "reason"] == "other"
    assert churns.loc["C3", "reason"] == "business_closed"


def test_the_page_says_what_the_classifier_recovered_and_embeds_everything(engine: Engine) -> None:
    _four_churns(engine)
    config = ProductConfig()
    with engine.connect() as connection:
        churns = reason_churns(connection, config)
    import pandas as pd

    page = render_reasons_report(churns, pd.DataFrame(), config, champion=None, missing=[])
    assert "4 customers churned from 2024-03 to 2024-04" in page
    assert "The classifier read a reason in 2 of the 2 churns" in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 4
    assert not re.search(r'(src|href)="https?://', page)  # opens from an email attachment as it is


def test_an_empty_database_gives_a_page_that_says_what_is_missing(
    database_url: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "mix.html"
    result = _run(monkeypatch, "report", "--out", str(out), CHURN_DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "No customer has churned yet" in page
    assert "No cancellations are stored" in page
    assert "No champion model" in page
    assert "No champion model" in result.output


def test_an_unmigrated_database_is_one_line(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(monkeypatch, "report", CHURN_DATABASE_URL=f"sqlite:///{tmp_path / 'blank.db'}")
    assert result.exit_code == 2
    assert "churn db upgrade" in result.output


def test_the_demo_companys_report_shows_its_mix_and_failed_payments_behind_payment_failed(
    demo_history: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "demo.db"
    shutil.copy(make_engine(demo_history).url.database, copy)
    url = f"sqlite:///{copy}"
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()
    result = _run(monkeypatch, "report", "--json", CHURN_DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "reports" / "reasons.html").read_text(encoding="utf-8")
    assert "The most common reason was" in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 4
    drivers = page[page.index("The drivers behind each reason") :]
    payment_rows = [row for row in drivers.split("<tr>") if row.startswith("<td>Failed payment")]
    assert payment_rows and any("Failed payments" in row for row in payment_rows)
