"""The likely reason: which reason an at-risk customer would give, learned from past churners' features."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from churn.cli.likely_reason import register
from churn.config import ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from churn.tables import (
    cancellations,
    customers,
    feature_snapshots,
    reason_predictions,
    snapshot_runs,
    subscriptions,
)
from features.scope import as_of_instant
from training.likely_reason import (
    LikelyReasonError,
    churner_examples,
    load_likely_reason,
    train_likely_reason,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def churner_history(tmp_path_factory):
    """A demo company big enough to have a few hundred churners, with a four-weekly snapshot history."""
    from tests.training_data import build_demo_history

    folder = tmp_path_factory.mktemp("likely-reason")
    url = f"sqlite:///{folder / 'churn.db'}"
    build_demo_history(
        url, folder / "demo-data", customers=1500, months=15, step_days=28, first=date(2025, 6, 2)
    )
    return url


@pytest.fixture
def churners(database_url, churner_history):
    """That company's accounts, subscriptions, cancellations and snapshots in a fresh database."""
    source, target = make_engine(churner_history), make_engine(database_url)
    with source.connect() as reading, target.begin() as writing:
        for table in (customers, subscriptions, cancellations, snapshot_runs, feature_snapshots):
            rows = [dict(row) for row in reading.execute(select(table)).mappings()]
            for start in range(0, len(rows), 2_000):
                writing.execute(table.insert(), rows[start : start + 2_000])
    source.dispose()
    yield target
    target.dispose()


def test_each_voluntary_churn_with_a_reason_is_its_features_from_the_last_snapshot_before_it_left(churners):
    config = ProductConfig()
    with churners.connect() as connection:
        examples = churner_examples(connection, config)
        coded = connection.execute(
            select(cancellations.c.reason_code).where(
                cancellations.c.reason_code.is_not(None), cancellations.c.voluntary.is_(True)
            )
        ).scalars()
        coded = list(coded)

    assert len(examples) > 50
    churned_at = examples["churned_at"]
    starts = examples["as_of"].map(as_of_instant)
    assert (starts < churned_at).all()
    assert ((churned_at - starts).dt.days <= config.labels.horizon_days).all()
    # Failed payments are not a reason a rep can answer, and "other" is no answer at all.
    assert not examples["reason_code"].isin(["payment_failed", "other"]).any()
    assert set(examples["reason_code"]) <= set(coded)
    assert "logins_30d" in examples.columns or any(c.endswith("_30d") for c in examples.columns)
    assert examples["churned_at"].is_monotonic_increasing


def test_a_cancellation_without_a_code_takes_the_text_classifiers_reading(churners):
    config = ProductConfig()
    with churners.connect() as connection:
        before = churner_examples(connection, config)
    with churners.begin() as connection:
        uncoded = connection.execute(
            select(cancellations.c.cancellation_id, cancellations.c.customer_id).where(
                cancellations.c.reason_code.is_(None), cancellations.c.voluntary.is_(True)
            )
        ).all()
        connection.execute(
            reason_predictions.insert(),
            [
                {
                    "cancellation_id": row.cancellation_id,
                    "reason_code": "competitor",
                    "confidence": 0.9,
                    "classifier": "vocabulary",
                    "classified_at": NOW,
                }
                for row in uncoded
            ],
        )
    with churners.connect() as connection:
        after = churner_examples(connection, config)

    assert len(uncoded) > 5 and len(after) > len(before)
    gained = (after["reason_code"] == "competitor").sum() - (before["reason_code"] == "competitor").sum()
    assert gained == len(after) - len(before)


@pytest.mark.slow
def test_trained_model_is_registered_measured_beside_the_majority_guess_and_loads_back(
    churners, env, tmp_path
):
    settings = Settings()
    config = ProductConfig()
    assert load_likely_reason(settings) is None

    trained = train_likely_reason(settings, config, churners)
    loaded = load_likely_reason(settings)

    evaluation = trained.as_dict()
    assert trained.version == "1" and loaded is not None and loaded.version == "1"
    assert 0 <= evaluation["accuracy"] <= 1 and 0 <= evaluation["majority_accuracy"] <= 1
    assert evaluation["majority_reason"] in evaluation["classes"]
    assert evaluation["beats_majority"] == (evaluation["accuracy"] > evaluation["majority_accuracy"])
    assert loaded.low_confidence == (not evaluation["beats_majority"])
    assert evaluation["test_from"] >= evaluation["train_until"]
    with churners.connect() as connection:
        examples = churner_examples(connection, config)
    ours, theirs = trained.model.predict(examples.head(20)), loaded.predict(examples.head(20))
    assert list(ours["code"]) == list(theirs["code"])
    assert ours["probability"].tolist() == pytest.approx(theirs["probability"].tolist())
    assert set(ours["code"]) <= set(evaluation["classes"])
    assert ((ours["probability"] > 0) & (ours["probability"] <= 1)).all()
    assert train_likely_reason(settings, config, churners).version == "2"


def test_without_enough_churners_training_says_so_and_registers_nothing(engine, env, tmp_path):
    settings = Settings()

    with pytest.raises(LikelyReasonError, match="too few past churners with a reason"):
        train_likely_reason(settings, ProductConfig(), engine)
    assert load_likely_reason(settings) is None


def test_the_cli_command_shows_the_model_beside_the_majority_guess(run_cli, env, database_url, monkeypatch):
    from churn.settings import get_settings

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a group of one command would run it without its name
    monkeypatch.setenv("CHURN_DATABASE_URL", database_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    result = CliRunner().invoke(app, ["likely-train"])

    assert result.exit_code == 2
    assert "too few past churners with a reason" in result.output
    assert "Traceback" not in result.output
