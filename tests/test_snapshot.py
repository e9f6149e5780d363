"""Feature snapshots on a small demo company: same values on every engine, and no look into the future."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, select, update

from churn.config import FeaturesConfig
from churn.db import make_engine
from churn.demo import generate_demo_company
from churn.demo_pipeline import ingest_demo
from churn.ingest import IngestOptions, ingest_file
from churn.tables import (
    cancellations,
    customers,
    subscriptions,
    survey_responses,
    tickets,
    usage_daily,
)
from features.rollup import refresh_usage_rollup
from features.snapshot import build_snapshots, compute_features, load_snapshots
from tests.factories import insert_rows, write_csv

END = date(2025, 6, 1)
AS_OF = date(2025, 3, 3)
NOW = datetime(2025, 6, 2, tzinfo=UTC)
CONFIG = FeaturesConfig()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_company(out_dir=out, customers=80, months=8, seed=3, end=END)
    return out


def _load_demo(engine: Engine, demo_dir: Path) -> None:
    ingest_demo(engine, demo_dir, options=IngestOptions(), now=NOW)


def _features(engine: Engine, day: date = AS_OF) -> pd.DataFrame:
    refresh_usage_rollup(engine)
    with engine.connect() as connection:
        return compute_features(connection, day, CONFIG).frame


def test_snapshots_hold_the_same_values_on_sqlite_and_postgresql(both_databases, demo_dir):
    stored = {}
    for backend, url in both_databases.items():
        engine = make_engine(url)
        _load_demo(engine, demo_dir)
        build_snapshots(engine, [AS_OF, AS_OF + timedelta(days=28)], CONFIG, now=NOW)
        with engine.connect() as connection:
            stored[backend] = load_snapshots(connection, [AS_OF, AS_OF + timedelta(days=28)])
        engine.dispose()

    sqlite, postgresql = stored["sqlite"], stored["postgresql"]
    assert len(sqlite) > 100 and sqlite.shape[1] > 100
    pd.testing.assert_frame_equal(sqlite, postgresql, check_exact=False, rtol=1e-9)


def test_no_feature_changes_when_facts_dated_after_as_of_arrive(engine, demo_dir, tmp_path):
    _load_demo(engine, demo_dir)
    cutoff = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC)
    customer = "C000002"
    # A ticket open at as_of, not yet answered: everything that happens to it later is the future.
    insert_rows(
        engine,
        tickets,
        [
            {
                "ticket_id": "PIT-OPEN",
                "customer_id": customer,
                "opened_at": cutoff - timedelta(days=3),
                "priority": "low",
            }
        ],
    )
    before = _features(engine)
    assert customer in before.index

    later = [cutoff, cutoff + timedelta(hours=1), cutoff + timedelta(days=20)]
    events = [
        {
            "event_id": f"PIT-E{i}-{kind}",
            "customer_id": customer,
            "event_type": kind,
            "occurred_at": at.isoformat(),
            "user_id": "PIT-user",
        }
        for i, at in enumerate(later)
        for kind in ("login", "never_seen_before_type", "payment_failed")
    ]
    ingest_file(engine, "events", write_csv(tmp_path / "late.csv", events), options=IngestOptions(), now=NOW)
    with engine.begin() as connection:
        connection.execute(
            update(tickets)
            .where(tickets.c.ticket_id == "PIT-OPEN")
            .values(
                first_response_at=cutoff + timedelta(hours=2),
                resolved_at=cutoff + timedelta(days=1),
                reopened=True,
                escalated=True,
                csat=1,
                replies=9,
                status="closed",
            )
        )
        # Running subscriptions end after as_of (a cancellation that has not happened yet).
        connection.execute(
            update(subscriptions)
            .where(subscriptions.c.started_at < cutoff, subscriptions.c.ended_at.is_(None))
            .values(ended_at=cutoff + timedelta(days=5))
        )
    insert_rows(
        engine,
        tickets,
        [
            {
                "ticket_id": f"PIT-T{i}",
                "customer_id": customer,
                "opened_at": at,
                "priority": "urgent",
                "resolved_at": at + timedelta(hours=1),
                "csat": 1,
            }
            for i, at in enumerate(later)
        ],
    )
    insert_rows(
        engine,
        survey_responses,
        [
            {
                "response_id": f"PIT-S{i}-{kind}",
                "customer_id": customer,
                "survey": kind,
                "score": 1,
                "responded_at": at,
            }
            for i, at in enumerate(later)
            for kind in ("nps", "csat", "ces")
        ],
    )
    insert_rows(
        engine,
        subscriptions,
        [
            {
                "subscription_id": "PIT-SUB-AT",
                "customer_id": customer,
                "started_at": cutoff,
                "mrr": 99_999.0,
                "seats": 999,
                "plan": "Future",
            },
            {
                "subscription_id": "PIT-SUB-LATER",
                "customer_id": customer,
                "started_at": later[2],
                "mrr": 88_888.0,
                "seats": 888,
            },
        ],
    )
    insert_rows(engine, customers, [{"customer_id": "PIT-NEW", "created_at": later[1], "segment": "SMB"}])
    insert_rows(
        engine,
        subscriptions,
        [{"subscription_id": "PIT-NEW-SUB", "customer_id": "PIT-NEW", "started_at": later[1], "mrr": 10.0}],
    )
    insert_rows(
        engine,
        cancellations,
        [
            {
                "cancellation_id": "PIT-X",
                "customer_id": customer,
                "effective_at": later[2],
                "requested_at": cutoff,
                "reason_code": "price",
            }
        ],
    )
    after = _features(engine)

    with engine.connect() as connection:  # the future facts really are there, for later snapshots
        assert connection.execute(select(usage_daily).where(usage_daily.c.day >= AS_OF)).first() is not None
    assert "PIT-NEW" not in after.index
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def test_late_rows_change_only_snapshots_built_after_they_arrive(engine, demo_dir, tmp_path):
    _load_demo(engine, demo_dir)
    build_snapshots(engine, [AS_OF], CONFIG, now=NOW)
    first = _stored_logins(engine, AS_OF)
    late = [
        {
            "event_id": f"LATE-{i}",
            "customer_id": "C000002",
            "event_type": "login",
            "occurred_at": f"2025-03-01T0{i}:00:00Z",
        }
        for i in range(5)
    ]
    ingest_file(engine, "events", write_csv(tmp_path / "late.csv", late), options=IngestOptions(), now=NOW)

    kept = build_snapshots(engine, [AS_OF, AS_OF + timedelta(days=1)], CONFIG, now=NOW)
    assert [run.skipped for run in kept.runs] == [True, False]
    assert kept.rollup.changed_days == 1 and not kept.rollup.full_rebuild
    assert _stored_logins(engine, AS_OF) == first
    assert _stored_logins(engine, AS_OF + timedelta(days=1)) >= 5

    build_snapshots(engine, [AS_OF], CONFIG, now=NOW, rebuild=True)
    assert _stored_logins(engine, AS_OF) == first + 5


def _stored_logins(engine: Engine, day: date) -> float:
    with engine.connect() as connection:
        stored = load_snapshots(connection, [day], ["C000002"])
    return float(stored["login_events_7d"].fillna(0).iloc[0])


def test_a_snapshot_is_one_row_per_active_customer(engine, demo_dir):
    _load_demo(engine, demo_dir)
    summary = build_snapshots(engine, [AS_OF], CONFIG, now=NOW)

    with engine.connect() as connection:
        stored = load_snapshots(connection, [AS_OF])
        active = compute_features(connection, AS_OF, CONFIG).frame.index
    assert summary.runs[0].customers == len(stored) == len(active)
    assert stored["customer_id"].is_unique
    assert json.loads(stored.drop(columns="as_of").iloc[0].to_json())  # plain JSON values
