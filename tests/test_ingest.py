"""Importing contract files: all or nothing, idempotent, precise about bad rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from churn.ingest import IngestError, IngestOptions, ingest_file
from churn.tables import CONTRACT_TABLES, customers, ingest_runs, survey_responses, tickets, usage_events
from tests import factories

NOW = datetime(2024, 12, 1, tzinfo=UTC)


def ingest(engine: Engine, entity: str, path: Path, **options: object):
    return ingest_file(engine, entity, path, options=IngestOptions(**options), now=NOW)


def count(engine: Engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def rows(engine: Engine, table) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(select(table).order_by(*table.primary_key))]


@pytest.fixture
def with_customers(engine: Engine, tmp_path: Path) -> Engine:
    ingest(engine, "customers", factories.write_csv(tmp_path / "customers.csv", factories.customer_rows()))
    return engine


ALL_ENTITIES = {
    "subscriptions": factories.subscription_rows,
    "events": factories.event_rows,
    "tickets": factories.ticket_rows,
    "surveys": factories.survey_rows,
    "cancellations": factories.cancellation_rows,
}


@pytest.mark.parametrize("entity", list(ALL_ENTITIES))
def test_each_entity_imports_and_a_second_import_changes_nothing(with_customers, tmp_path, entity):
    path = factories.write_csv(tmp_path / f"{entity}.csv", ALL_ENTITIES[entity]())
    first = ingest(with_customers, entity, path)
    stored = rows(with_customers, CONTRACT_TABLES[entity])

    second = ingest(with_customers, entity, path)

    assert (first.inserted, first.updated, first.unchanged) == (len(stored), 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, len(stored))
    assert rows(with_customers, CONTRACT_TABLES[entity]) == stored  # not even updated_at moved


def test_values_are_typed_and_timestamps_stored_in_utc(with_customers, tmp_path):
    ingest(with_customers, "surveys", factories.write_csv(tmp_path / "s.csv", factories.survey_rows()))
    ingest(with_customers, "tickets", factories.write_csv(tmp_path / "t.csv", factories.ticket_rows()))

    surveys = {r["response_id"]: r for r in rows(with_customers, survey_responses)}
    assert surveys["S1"]["responded_at"] == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)  # +03:00 -> UTC
    assert surveys["S3"]["responded_at"] == datetime(2024, 3, 3, 12, 0, tzinfo=UTC)  # naive -> UTC default
    assert surveys["S1"]["comment"] == "الخدمة ممتازة"
    ticket = rows(with_customers, tickets)[0]
    assert (ticket["replies"], ticket["reopened"], ticket["escalated"], ticket["csat"]) == (3, False, True, 4)


def test_naive_timestamps_follow_the_timezone_option(with_customers, tmp_path):
    path = factories.write_csv(tmp_path / "s.csv", factories.survey_rows())
    ingest(with_customers, "surveys", path, timezone="America/New_York")

    naive = next(r for r in rows(with_customers, survey_responses) if r["response_id"] == "S3")
    assert naive["responded_at"] == datetime(2024, 3, 3, 17, 0, tzinfo=UTC)


def test_customer_extra_columns_are_kept_as_attributes(with_customers):
    stored = rows(with_customers, customers)[0]
    assert stored["attributes"] == {"industry": "Retail"}
    assert stored["seats"] == 11


def test_a_changed_row_updates_the_stored_one(with_customers, tmp_path):
    original = factories.ticket_rows()
    ingest(with_customers, "tickets", factories.write_csv(tmp_path / "t1.csv", original))
    original[1].update(status="solved", resolved_at="2024-03-06T10:00:00Z")

    summary = ingest(with_customers, "tickets", factories.write_csv(tmp_path / "t2.csv", original))

    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 1)
    t2 = next(r for r in rows(with_customers, tickets) if r["ticket_id"] == "T2")
    assert t2["status"] == "solved"
    assert t2["resolved_at"] == datetime(2024, 3, 6, 10, tzinfo=UTC)
    assert t2["ingested_at"] == NOW  # first seen stays; updated_at records the change


def test_dry_run_validates_and_counts_but_writes_nothing(engine, tmp_path):
    path = factories.write_csv(tmp_path / "c.csv", factories.customer_rows(4))

    summary = ingest(engine, "customers", path, dry_run=True)

    assert (summary.inserted, summary.dry_run) == (4, True)
    assert count(engine, customers) == 0
    assert count(engine, ingest_runs) == 0


def test_events_without_an_id_are_identified_by_their_content(with_customers, tmp_path):
    events = [{k: v for k, v in e.items() if k != "event_id"} for e in factories.event_rows(6)]
    path = factories.write_csv(tmp_path / "e.csv", events)

    first = ingest(with_customers, "events", path)
    second = ingest(with_customers, "events", path)

    assert (first.inserted, second.inserted, second.unchanged) == (6, 0, 6)
    assert count(with_customers, usage_events) == 6


def test_the_same_event_written_with_another_offset_is_the_same_event(with_customers, tmp_path):
    event = {"customer_id": "C001", "event_type": "login", "occurred_at": "2024-02-01T10:00:00+01:00"}
    ingest(with_customers, "events", factories.write_csv(tmp_path / "a.csv", [event]))
    event["occurred_at"] = "2024-02-01T09:00:00Z"

    again = ingest(with_customers, "events", factories.write_csv(tmp_path / "b.csv", [event]))

    assert (again.inserted, again.unchanged) == (0, 1)


def test_column_map_loads_a_foreign_export_without_editing_it(with_customers, tmp_path):
    export = [
        {"Account ID": "C001", "Action": "login", "Timestamp": "2024-02-01T10:00:00Z", "Browser": "Firefox"},
        {"Account ID": "C002", "Action": "export", "Timestamp": "2024-02-01T11:00:00Z", "Browser": "Safari"},
    ]
    path = factories.write_csv(tmp_path / "export.csv", export)

    summary = ingest(
        with_customers,
        "events",
        path,
        column_map={"Account ID": "customer_id", "Action": "event_type", "Timestamp": "occurred_at"},
    )

    assert summary.inserted == 2
    assert summary.ignored_columns == ["Browser"]
    assert {r["event_type"] for r in rows(with_customers, usage_events)} == {"login", "export"}


@pytest.mark.parametrize("suffix", [".csv.gz", ".parquet"])
def test_gzip_and_parquet_files_import_like_csv(with_customers, tmp_path, suffix):
    csv_path = factories.write_csv(tmp_path / "e.csv", factories.event_rows(20))
    if suffix == ".csv.gz":
        path = tmp_path / "e.csv.gz"
        with csv_path.open("rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        path = factories.write_parquet(tmp_path / "e.parquet", factories.event_rows(20))

    summary = ingest(with_customers, "events", path)

    assert summary.inserted == 20
    stored = rows(with_customers, usage_events)
    assert stored[0]["occurred_at"].tzinfo is not None


def test_typed_parquet_columns_are_checked_too(with_customers, tmp_path):
    events = factories.event_rows(3)
    for event in events:
        event["occurred_at"] = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    events[2]["quantity"] = -5
    path = factories.write_parquet(tmp_path / "e.parquet", events)

    with pytest.raises(IngestError) as rejected:
        ingest(with_customers, "events", path)

    assert rejected.value.problems == [
        f"{path}: row 3: column 'quantity': '-5' is not a number of at least 0"
    ]


def test_each_import_is_recorded(with_customers, tmp_path):
    path = factories.write_csv(tmp_path / "e.csv", factories.event_rows(4))
    ingest(with_customers, "events", path)

    runs = [r for r in rows(with_customers, ingest_runs) if r["entity"] == "events"]
    assert [(r["rows_read"], r["inserted"], r["source"]) for r in runs] == [(4, 4, str(path))]
    assert len(runs[0]["sha256"]) == 64


def test_a_large_file_is_read_in_chunks_with_progress(with_customers, tmp_path):
    many = factories.event_rows(30_000)
    path = factories.write_csv(tmp_path / "e.csv", many)
    seen: list[tuple[int, int]] = []

    summary = ingest_file(
        with_customers,
        "events",
        path,
        options=IngestOptions(chunk_mb=1),
        now=NOW,
        on_progress=lambda done, total: seen.append((done, total)),
    )

    assert summary.inserted == 30_000
    assert len(seen) > 1  # more than one chunk
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size


def test_numeric_ids_in_a_typed_parquet_file_are_read_as_text(engine, tmp_path):
    path = factories.write_parquet(tmp_path / "c.parquet", [{"customer_id": 1001, "name": "A"}])

    ingest(engine, "customers", path)

    assert [r["customer_id"] for r in rows(engine, customers)] == ["1001"]


def test_a_file_with_fewer_columns_does_not_erase_what_others_stored(with_customers, tmp_path):
    names_only = [{"customer_id": "C001", "name": "Renamed Ltd"}]

    summary = ingest(with_customers, "customers", factories.write_csv(tmp_path / "n.csv", names_only))

    stored = next(r for r in rows(with_customers, customers) if r["customer_id"] == "C001")
    assert summary.updated == 1
    assert (stored["name"], stored["segment"], stored["owner_email"]) == (
        "Renamed Ltd",
        "SMB",
        "csm@example.com",
    )
    assert stored["attributes"] == {"industry": "Retail"}


def test_typed_parquet_extras_and_nullable_integer_ids(engine, tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([101, 102], dtype="Int64"),
            "seats": pd.array([5, None], dtype="Int64"),
            "signed_on": pd.to_datetime(["2024-01-02", None]),
            "tags": [["a", "b"], []],
        }
    )
    path = tmp_path / "c.parquet"
    frame.to_parquet(path, index=False)

    ingest(engine, "customers", path)

    stored = rows(engine, customers)
    assert [r["customer_id"] for r in stored] == ["101", "102"]
    assert stored[0]["attributes"] == {"signed_on": "2024-01-02T00:00:00", "tags": ["a", "b"]}


def test_two_imports_at_once_both_succeed(database_url, engine, tmp_path):
    import threading

    from churn.db import make_engine

    ingest(engine, "customers", factories.write_csv(tmp_path / "c.csv", factories.customer_rows()))
    files = [
        factories.write_csv(tmp_path / f"e{i}.csv", factories.event_rows(20_000, customer_id=f"C00{i}"))
        for i in (1, 2)
    ]
    for i, path in enumerate(files):  # distinct ids per file
        path.write_text(path.read_text(encoding="utf-8").replace("E", f"F{i}-"), encoding="utf-8")
    outcomes: list[object] = []

    def run(path):
        own = make_engine(database_url)
        try:
            outcomes.append(ingest(own, "events", path).inserted)
        except Exception as exc:
            outcomes.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=run, args=(p,)) for p in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [20_000, 20_000]
    assert count(engine, usage_events) == 40_000
