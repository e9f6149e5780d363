"""The daily usage rollup: equal to summing raw events, and kept up to date one changed day at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from churn.ingest import IngestError, IngestOptions, ingest_file
from churn.tables import customers, usage_changes, usage_daily, usage_daily_users, usage_events
from features.rollup import pending_changes, refresh_usage_rollup
from tests.factories import insert_rows, write_csv

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _event(event_id: str, customer: str, kind: str, at: str, user: str | None = "U1", quantity: float = 1):
    return {
        "event_id": event_id,
        "customer_id": customer,
        "event_type": kind,
        "occurred_at": at,
        "user_id": user,
        "quantity": quantity,
    }


def _import(engine: Engine, tmp_path, name: str, rows: list[dict]) -> None:
    ingest_file(engine, "events", write_csv(tmp_path / name, rows), options=IngestOptions(), now=NOW)


def _table(engine: Engine, table) -> list[tuple]:
    with engine.connect() as connection:
        rows = connection.execute(select(table)).all()
    return sorted(tuple(str(v) for v in row) for row in rows)


def _customers(engine: Engine) -> None:
    insert_rows(engine, customers, [{"customer_id": "C1"}, {"customer_id": "C2"}])


def test_the_rollup_sums_events_per_customer_day_and_type(engine, tmp_path):
    _customers(engine)
    _import(
        engine,
        tmp_path,
        "events.csv",
        [
            _event("E1", "C1", "login", "2024-03-01T08:00:00Z"),
            _event("E2", "C1", "login", "2024-03-01T23:59:59Z", user="U2"),
            _event("E3", "C1", "api_call", "2024-03-01T12:00:00Z", user=None, quantity=250),
            _event("E4", "C1", "login", "2024-03-02T00:00:00Z"),
            _event("E5", "C2", "login", "2024-03-01T09:30:00+03:00"),  # 06:30 UTC
        ],
    )

    summary = refresh_usage_rollup(engine)

    assert summary.full_rebuild  # the first refresh reads everything once
    assert _table(engine, usage_daily) == sorted(
        [
            ("2024-03-01", "C1", "api_call", "1", "250.0"),
            ("2024-03-01", "C1", "login", "2", "2.0"),
            ("2024-03-02", "C1", "login", "1", "1.0"),
            ("2024-03-01", "C2", "login", "1", "1.0"),
        ]
    )
    assert _table(engine, usage_daily_users) == sorted(
        [
            ("2024-03-01", "C1", "U1", "login", "1"),
            ("2024-03-01", "C1", "U2", "login", "1"),
            ("2024-03-02", "C1", "U1", "login", "1"),
            ("2024-03-01", "C2", "U1", "login", "1"),
        ]
    )
    with engine.connect() as connection:
        assert pending_changes(connection) == 0


def test_a_refresh_recomputes_only_the_days_an_import_touched(engine, tmp_path):
    _customers(engine)
    history = [_event(f"E{d}", "C1", "login", f"2024-03-{d:02d}T10:00:00Z") for d in range(1, 29)]
    _import(engine, tmp_path, "history.csv", history)
    refresh_usage_rollup(engine)

    _import(
        engine,
        tmp_path,
        "next-day.csv",
        [
            _event("N1", "C1", "login", "2024-03-29T10:00:00Z"),
            _event("N2", "C2", "report_created", "2024-03-29T11:00:00Z"),
        ],
    )
    with engine.connect() as connection:
        assert pending_changes(connection) == 2
    summary = refresh_usage_rollup(engine)

    assert not summary.full_rebuild and summary.changed_days == 2
    incremental = _table(engine, usage_daily), _table(engine, usage_daily_users)
    refresh_usage_rollup(engine, full=True)
    assert (_table(engine, usage_daily), _table(engine, usage_daily_users)) == incremental
    assert ("2024-03-29", "C2", "report_created", "1", "1.0") in incremental[0]


def test_an_event_that_moves_updates_the_day_it_left_and_the_day_it_joined(engine, tmp_path):
    _customers(engine)
    _import(
        engine,
        tmp_path,
        "a.csv",
        [
            _event("E1", "C1", "login", "2024-03-01T10:00:00Z"),
            _event("E2", "C1", "login", "2024-03-01T11:00:00Z"),
        ],
    )
    refresh_usage_rollup(engine)

    # The source corrected E2: another customer, another day.
    _import(engine, tmp_path, "b.csv", [_event("E2", "C2", "login", "2024-03-05T11:00:00Z")])
    refresh_usage_rollup(engine)

    assert _table(engine, usage_daily) == sorted(
        [
            ("2024-03-01", "C1", "login", "1", "1.0"),
            ("2024-03-05", "C2", "login", "1", "1.0"),
        ]
    )


def test_reimporting_the_same_file_leaves_nothing_to_refresh(engine, tmp_path):
    _customers(engine)
    rows = [_event(f"E{d}", "C1", "login", f"2024-03-{d:02d}T10:00:00Z") for d in range(1, 11)]
    _import(engine, tmp_path, "events.csv", rows)
    refresh_usage_rollup(engine)

    _import(engine, tmp_path, "events.csv", rows)

    with engine.connect() as connection:
        assert pending_changes(connection) == 0
    assert refresh_usage_rollup(engine).changed_days == 0


def test_a_failed_import_logs_no_changed_days(engine, tmp_path):
    _customers(engine)
    bad = [_event("E1", "C1", "login", "2024-03-01T10:00:00Z"), _event("E2", "NOPE", "login", "2024-03-02")]

    with pytest.raises(IngestError, match="not a known customer"):
        _import(engine, tmp_path, "bad.csv", bad)

    with engine.connect() as connection:
        assert connection.execute(select(usage_changes)).first() is None


def test_events_imported_before_the_rollup_existed_are_rolled_up(engine):
    # Rows stored without the import (as an older schema would have left them) reach the rollup
    # through a full refresh.
    insert_rows(engine, customers, [{"customer_id": "C1"}])
    insert_rows(
        engine,
        usage_events,
        [
            {
                "event_id": "E1",
                "customer_id": "C1",
                "event_type": "login",
                "occurred_at": "2024-03-01T10:00:00Z",
                "quantity": 1.0,
            }
        ],
    )
    refresh_usage_rollup(engine, full=True)

    assert _table(engine, usage_daily) == [("2024-03-01", "C1", "login", "1", "1.0")]
