"""The daily usage rollup: events per customer, UTC day and event type, and who was active each day.

Feature windows add these up instead of scanning raw events. Imports log the (customer, day) pairs
they touch in ``usage_changes``; a refresh recomputes exactly those days from the events and clears
the log in the same transaction, so a daily run after one new day of data reads one day of events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    FromClause,
    MetaData,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    text,
)

from churn.db import WRITES
from churn.sql import temporary_table_options, use_work_mem, utc_day
from churn.tables import ID, UtcDateTime, usage_changes, usage_daily, usage_daily_users, usage_events
from features.scope import as_of_instant

# Past this many changed (customer, day) pairs, one pass over all events beats looking days up one
# by one (a first build, a large back-fill).
FULL_REBUILD_PAIRS = 500_000
# Any fixed number: two refreshes at once on PostgreSQL take turns instead of both rewriting days.
_ROLLUP_LOCK = 72_177_002


@dataclass(frozen=True)
class RollupSummary:
    """What a refresh did."""

    changed_days: int
    full_rebuild: bool
    seconds: float


def refresh_usage_rollup(engine: Engine, *, full: bool = False, work_mem_mb: int = 256) -> RollupSummary:
    """Bring the rollup up to date with the events table; ``full`` recomputes everything."""
    started = time.perf_counter()
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROLLUP_LOCK})
            use_work_mem(connection, work_mem_mb)
            # Waits for running event imports and holds new ones until commit, so the change log
            # cannot grow between reading it and clearing it. Readers are not blocked.
            connection.execute(text(f"LOCK TABLE {usage_events.name} IN SHARE MODE"))
        last_change, pairs = connection.execute(
            select(func.max(usage_changes.c.change_id), func.count())
        ).one()
        if last_change is None and not full:
            return RollupSummary(changed_days=0, full_rebuild=False, seconds=time.perf_counter() - started)
        empty = connection.execute(select(usage_daily.c.day).limit(1)).first() is None
        rebuild = full or empty or pairs > FULL_REBUILD_PAIRS
        if rebuild:
            _rebuild_all(connection)
            # Event imports wait for this transaction (see the lock above), so every logged change
            # is covered by the rebuild.
            _clear(connection, usage_changes)
        else:
            _recompute_days(connection, last_change)
            connection.execute(delete(usage_changes).where(usage_changes.c.change_id <= last_change))
    return RollupSummary(changed_days=pairs, full_rebuild=rebuild, seconds=time.perf_counter() - started)


def pending_changes(connection: Connection) -> int:
    """How many (customer, day) pairs wait for the next refresh."""
    return connection.execute(select(func.count()).select_from(usage_changes)).scalar_one()


def _daily_totals(source: FromClause | None = None) -> tuple[Select[Any], Select[Any]]:
    """The two rollup queries over all events, or over the events of ``source`` (a join)."""
    events = usage_events
    day = utc_day(events.c.occurred_at)
    per_type = select(
        day, events.c.customer_id, events.c.event_type, func.count(), func.sum(events.c.quantity)
    )
    per_user = select(day, events.c.customer_id, events.c.user_id, events.c.event_type, func.count()).where(
        events.c.user_id.is_not(None)
    )
    if source is not None:
        per_type = per_type.select_from(source)
        per_user = per_user.select_from(source)
    # Sorted like the primary key, so the index is appended to rather than written all over.
    per_type_key = (day, events.c.customer_id, events.c.event_type)
    per_user_key = (day, events.c.customer_id, events.c.user_id, events.c.event_type)
    per_type = per_type.group_by(*per_type_key).order_by(*per_type_key)
    per_user = per_user.group_by(*per_user_key).order_by(*per_user_key)
    return per_type, per_user


def _store(connection: Connection, per_type: Select[Any], per_user: Select[Any]) -> None:
    connection.execute(
        insert(usage_daily).from_select(["day", "customer_id", "event_type", "events", "quantity"], per_type)
    )
    connection.execute(
        insert(usage_daily_users).from_select(
            ["day", "customer_id", "user_id", "event_type", "events"], per_user
        )
    )


def _rebuild_all(connection: Connection) -> None:
    _clear(connection, usage_daily)
    _clear(connection, usage_daily_users)
    _store(connection, *_daily_totals())


def _clear(connection: Connection, table: Table) -> None:
    # TRUNCATE is transactional on PostgreSQL and leaves no dead rows behind; SQLite empties a table
    # on an unqualified DELETE just as fast.
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"TRUNCATE {table.name}"))
    else:
        connection.execute(delete(table))


def _recompute_days(connection: Connection, last_change: int) -> None:
    """Replace the rollup rows of every logged (customer, day) with fresh sums over its events."""
    pairs = pd.DataFrame(
        connection.execute(
            select(usage_changes.c.customer_id, usage_changes.c.day)
            .where(usage_changes.c.change_id <= last_change)
            .distinct()
        ).all(),
        columns=["customer_id", "day"],
    )
    batch = _batch_table(connection)
    # Each day as a [start, end) time range, so the events index (customer_id, occurred_at) finds
    # its events without reading the customer's whole history.
    starts = [as_of_instant(d) for d in pairs["day"]]
    connection.execute(
        insert(batch),
        [
            {"customer_id": c, "day": d, "day_start": s, "day_end": s + timedelta(days=1)}
            for c, d, s in zip(pairs["customer_id"], pairs["day"], starts, strict=True)
        ],
    )
    for table in (usage_daily, usage_daily_users):
        connection.execute(
            delete(table).where(
                exists().where(and_(batch.c.customer_id == table.c.customer_id, batch.c.day == table.c.day))
            )
        )
    in_batch = usage_events.join(
        batch,
        and_(
            usage_events.c.customer_id == batch.c.customer_id,
            usage_events.c.occurred_at >= batch.c.day_start,
            usage_events.c.occurred_at < batch.c.day_end,
        ),
    )
    _store(connection, *_daily_totals(in_batch))
    if connection.dialect.name != "postgresql":  # PostgreSQL drops it at commit
        batch.drop(connection)


def _batch_table(connection: Connection) -> Table:
    connection.execute(text("DROP TABLE IF EXISTS rollup_batch"))
    batch = Table(
        "rollup_batch",
        MetaData(),
        Column("customer_id", ID, nullable=False),
        Column("day", usage_daily.c.day.type, nullable=False),
        Column("day_start", UtcDateTime, nullable=False),
        Column("day_end", UtcDateTime, nullable=False),
        prefixes=["TEMPORARY"],
        **temporary_table_options(connection),
    )
    batch.create(connection)
    return batch
