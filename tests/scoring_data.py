"""Data for scoring tests: the demo history's accounts and snapshots copied into a test database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select

from churn.db import make_engine
from churn.tables import customers, feature_snapshots, snapshot_runs, subscriptions, usage_events


def copy_demo_snapshots(
    source_url: str, target_url: str, days: Sequence[date], *, events: bool = True
) -> None:
    """Copy accounts, subscriptions and the given days' feature snapshots (and the last events) into a database."""
    source, target = make_engine(source_url), make_engine(target_url)
    with source.connect() as reading, target.begin() as writing:
        for table in (customers, subscriptions):
            writing.execute(table.insert(), [dict(row) for row in reading.execute(select(table)).mappings()])
        for table in (snapshot_runs, feature_snapshots):
            rows = reading.execute(select(table).where(table.c.as_of.in_(list(days)))).mappings()
            writing.execute(table.insert(), [dict(row) for row in rows])
        if events:
            latest = select(usage_events).order_by(usage_events.c.occurred_at.desc()).limit(50)
            writing.execute(usage_events.insert(), [dict(row) for row in reading.execute(latest).mappings()])
    source.dispose()
    target.dispose()


def snapshot_days_of(url: str) -> list[date]:
    engine = make_engine(url)
    with engine.connect() as connection:
        days = [
            row.as_of
            for row in connection.execute(select(snapshot_runs.c.as_of).order_by(snapshot_runs.c.as_of))
        ]
    engine.dispose()
    return days
