"""The feature jobs, unchanged, on DuckDB through duckdb-engine: the snapshots and labels of SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, event, select

from churn.config import FeaturesConfig, LabelsConfig
from churn.db import make_engine
from churn.demo import generate_demo_company
from churn.demo_pipeline import ingest_demo
from churn.ingest import IngestOptions, ingest_file
from churn.tables import usage_daily, usage_daily_users
from churn.warehouse import WarehouseError, copy_company
from features.labels import label_snapshots
from features.rollup import FULL_REBUILD_PAIRS, refresh_usage_rollup
from features.snapshot import build_snapshots, load_snapshots

END = date(2025, 6, 1)
HELD_BACK = END - timedelta(days=3)  # the events of the last three days arrive after the first copy
NOW = datetime(2025, 6, 2, tzinfo=UTC)
# Labels are known for the first two (as_of + 90 days + the 7-day grace is before the data ends).
DAYS = [date(2025, 1, 6), date(2025, 2, 3), date(2025, 3, 3)]
FEATURES = FeaturesConfig()
LABELS = LabelsConfig()
# UTC+14: a session zone that moves every evening event to the next day unless the SQL says UTC.
SESSION_ZONE = "Pacific/Kiritimati"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A demo company whose last three days of events are kept apart, with one earlier event moved a day."""
    first = tmp_path_factory.mktemp("demo")
    generate_demo_company(out_dir=first, customers=80, months=8, seed=3, end=END)
    events = pd.read_csv(first / "events.csv", dtype=str, keep_default_na=False)
    day = pd.to_datetime(events["occurred_at"], utc=True).dt.date
    later = events[day >= HELD_BACK]
    assert len(later) > 50
    moved = events[day < HELD_BACK].iloc[[100]].copy()
    moved["occurred_at"] = (pd.to_datetime(moved["occurred_at"], utc=True) + timedelta(days=1)).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    events[day < HELD_BACK].to_csv(first / "events.csv", index=False)
    later_file = first.parent / f"{first.name}-later.csv"
    pd.concat([later, moved]).to_csv(later_file, index=False)
    return {"first": first, "later": later_file}


def _warehouse(path: Path) -> Engine:
    """A DuckDB warehouse whose sessions are not in UTC, as a server's local zone may not be."""
    engine = create_engine(f"duckdb:///{path}")
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute(f"SET TimeZone = '{SESSION_ZONE}'"))
    return engine


def _snapshots_and_labels(engine: Engine, days: list[date]) -> tuple[pd.DataFrame, pd.DataFrame]:
    build_snapshots(engine, days, FEATURES, now=NOW)
    with engine.connect() as connection:
        snapshots = load_snapshots(connection, days)
        labels = label_snapshots(connection, snapshots[["customer_id", "as_of"]], LABELS)
    return snapshots, labels


def _rollup(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {
            table.name: sorted(tuple(row) for row in connection.execute(select(table)))
            for table in (usage_daily, usage_daily_users)
        }


def test_snapshots_and_labels_on_duckdb_equal_those_of_sqlite_and_postgresql(both_databases, demo, tmp_path):
    results = {}
    for backend, url in both_databases.items():
        source = make_engine(url)
        ingest_demo(source, demo["first"], options=IngestOptions(), now=NOW)
        results[backend] = _snapshots_and_labels(source, DAYS)
        # Each operational database loads a warehouse of its own.
        warehouse = _warehouse(tmp_path / f"from-{backend}.duckdb")
        copy_company(source, warehouse, now=NOW)
        results[f"duckdb from {backend}"] = _snapshots_and_labels(warehouse, DAYS)
        source.dispose()
        warehouse.dispose()

    snapshots, labels = results["sqlite"]
    assert snapshots["as_of"].nunique() == len(DAYS) and len(snapshots) > 100 and snapshots.shape[1] > 100
    assert set(labels["label_status"]) == {"labelled", "censored"} and (labels["churned"] == 1).sum() > 0
    for backend in ("postgresql", "duckdb from sqlite", "duckdb from postgresql"):
        other_snapshots, other_labels = results[backend]
        pd.testing.assert_frame_equal(other_snapshots, snapshots, check_exact=False, rtol=1e-9, obj=backend)
        pd.testing.assert_frame_equal(other_labels, labels, obj=backend)


def test_a_later_copy_loads_what_changed_and_the_rollup_recomputes_only_those_days(engine, demo, tmp_path):
    ingest_demo(engine, demo["first"], options=IngestOptions(), now=NOW)
    warehouse = _warehouse(tmp_path / "warehouse.duckdb")
    first = copy_company(engine, warehouse, now=NOW)
    assert first.merged["usage_events"].inserted > 20_000 and first.changed_days > 0
    assert refresh_usage_rollup(warehouse).full_rebuild

    again = copy_company(engine, warehouse, now=NOW)
    assert all(counts.inserted == counts.updated == 0 for counts in again.merged.values())
    assert again.changed_days == 0
    assert refresh_usage_rollup(warehouse).changed_days == 0

    arrived = ingest_file(engine, "events", demo["later"], options=IngestOptions(), now=NOW)
    assert arrived.updated == 1  # the moved event
    later = copy_company(engine, warehouse, now=NOW)
    assert later.merged["usage_events"].inserted == arrived.inserted
    assert later.merged["usage_events"].updated == 1
    assert later.merged["customers"].unchanged == 80
    # The new days' (customer, day) pairs, plus the day the moved event left and the day it moved to.
    assert 0 < later.changed_days < FULL_REBUILD_PAIRS
    refresh = refresh_usage_rollup(warehouse)
    assert not refresh.full_rebuild and refresh.changed_days == later.changed_days

    refresh_usage_rollup(engine, full=True)
    assert _rollup(warehouse) == _rollup(engine)
    expected = _snapshots_and_labels(engine, [END])
    got = _snapshots_and_labels(warehouse, [END])
    assert len(got[0]) > 50
    pd.testing.assert_frame_equal(got[0], expected[0], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(got[1], expected[1])
    warehouse.dispose()


def test_copy_refuses_a_warehouse_that_is_not_duckdb(engine):
    with pytest.raises(
        WarehouseError, match=r"^the warehouse must be DuckDB \(duckdb:///path/to/file.duckdb\), not"
    ):
        copy_company(engine, engine, now=NOW)
