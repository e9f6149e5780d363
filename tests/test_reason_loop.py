"""The feedback loop: a reason given anywhere (the CRM API, a rep's "customer is leaving") reaches the labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from churn.config import ProductConfig
from churn.db import make_engine
from churn.migrate import upgrade_database
from churn.settings import Settings, get_settings
from churn.tables import customers, job_runs, reason_predictions, subscriptions
from features.labels import churn_events, label_snapshots
from serving.scheduled_jobs import run_retrain
from tests.alert_rows import alert_row, queue
from tests.api_support import open_api
from tests.factories import customer_rows, insert_rows
from training.dataset import snapshot_dataset
from training.reasons_report import reason_churns

LEAVER = "C000001"  # active to the end of the demo's history, with one subscription


@pytest.fixture
def demo_copy(demo_history: str, tmp_path: Path) -> str:
    """A private copy of the demo history at the head schema: the loop writes into it."""
    copy = tmp_path / "demo.db"
    shutil.copy(make_engine(demo_history).url.database, copy)
    url = f"sqlite:///{copy}"
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return url


def test_a_cancellation_posted_with_only_words_trains_as_a_classified_churn(
    demo_copy: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(CHURN_DATABASE_URL=demo_copy, CHURN_HOME=str(tmp_path))
    harness, client = open_api(settings)
    with client, harness.engine.connect() as connection:
        subscription = connection.execute(
            select(subscriptions).where(subscriptions.c.customer_id == LEAVER)
        ).one()
    writer = harness.key("write:ingest", name="crm")
    with client:
        ended = client.post(
            "/v1/ingest/subscriptions",
            json={"rows": [{"subscription_id": subscription.subscription_id, "customer_id": LEAVER,
                            "started_at": subscription.started_at.isoformat(), "mrr": float(subscription.mrr),
                            "ended_at": "2026-01-15T00:00:00Z"}]},
            headers=writer,
        )  # fmt: skip
        cancelled = client.post(
            "/v1/cancellations",
            json={"rows": [{"cancellation_id": "LOOP-1", "customer_id": LEAVER,
                            "effective_at": "2026-01-15T00:00:00Z",
                            "reason_text": "We moved to a competitor whose product suits us better"}]},
            headers=writer,
        )  # fmt: skip
    assert ended.status_code == 200, ended.text
    assert cancelled.status_code == 200, cancelled.text

    monkeypatch.setenv("CHURN_DATABASE_URL", demo_copy)
    get_settings.cache_clear()
    run = run_retrain()

    engine = make_engine(demo_copy)
    with engine.connect() as connection:
        outcome, detail = connection.execute(
            select(job_runs.c.outcome, job_runs.c.detail).where(job_runs.c.job == "retrain")
        ).one()
        filled = connection.execute(
            select(reason_predictions.c.reason_code).where(reason_predictions.c.cancellation_id == "LOOP-1")
        ).scalar_one()
        config = ProductConfig()
        dataset = snapshot_dataset(connection, config.features, config.labels)
        labels = label_snapshots(connection, dataset.keys[["customer_id", "as_of"]], config.labels)
    engine.dispose()
    assert run is not None and outcome == "ok", detail
    assert filled == "competitor"
    assert "uncoded texts classified" in detail and "new cancellations" in detail
    # The demo history has too few churners with a reason to learn which one a customer would give.
    assert "likely reason not retrained:" in detail or "likely reason version" in detail
    leaver = labels[(labels["customer_id"] == LEAVER) & (labels["churned"] == 1)]
    assert len(leaver) > 0  # the next training learns this churn
    assert set(leaver["reason_code"]) == {"competitor"}
    assert set(leaver["reason_source"]) == {"classifier"}
    rows = (dataset.keys["customer_id"] == LEAVER).to_numpy()
    assert dataset.label[rows].sum() == len(leaver)


def test_a_reps_customer_is_leaving_reason_becomes_the_churns_reason(api) -> None:
    insert_rows(api.engine, customers, customer_rows(1))
    # The customer leaves after the rep said so (the API records outcomes at the real clock's now).
    insert_rows(
        api.engine,
        subscriptions,
        [{"subscription_id": "S1", "customer_id": "C001", "started_at": "2024-01-01T00:00:00Z",
          "ended_at": "2099-01-10T00:00:00Z", "mrr": 100}],
    )  # fmt: skip
    (alert_id,) = queue(api.engine, [alert_row("C001")])
    leaving = api.client.post(
        f"/v1/alerts/{alert_id}/outcome",
        json={"outcome": "churning", "reason_code": "price"},
        headers=api.key("write:feedback"),
    )
    assert leaving.status_code == 201, leaving.text
    config = ProductConfig()
    with api.engine.connect() as connection:
        churns = churn_events(connection, config.labels)
        reported = reason_churns(connection, config)
    assert churns[["customer_id", "reason_code", "reason_source"]].to_dict("records") == [
        {"customer_id": "C001", "reason_code": "price", "reason_source": "alert_outcome"}
    ]
    assert reported[["reason", "source"]].to_dict("records") == [{"reason": "price", "source": "rep"}]
