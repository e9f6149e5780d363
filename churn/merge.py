"""Moving checked rows into a table: a staging table, set-based checks, and an idempotent upsert.

Rows are bulk-loaded into a temporary staging table inside the caller's transaction, checked there
with SQL (duplicate keys in the file, unknown customers), then merged: changed rows are updated,
new rows inserted, identical rows left alone. Nothing is visible to others until the caller commits.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    Select,
    Table,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)

from churn.sql import utc_day
from churn.tables import UtcDateTime, customers, usage_changes

ROW = "_row"  # staging column: the row's place in the source file


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class Conflict:
    """A staged row that cannot be merged: ``row`` and the other row or value it clashes with."""

    row: int
    value: str
    first_row: int | None = None


def create_staging(connection: Connection, target: Table, columns: list[str]) -> Table:
    """A temporary table shaped like ``target``'s ``columns`` plus the source row number."""
    name = f"staging_{target.name}"
    connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
    staging = Table(
        name,
        MetaData(),
        *(Column(c, target.c[c].type) for c in columns),
        Column(ROW, BigInteger, nullable=False),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    staging.create(connection)
    return staging


def drop_staging(connection: Connection, staging: Table) -> None:
    # PostgreSQL drops it at commit; SQLite keeps temp tables for the life of the pooled connection.
    if connection.dialect.name != "postgresql":
        staging.drop(connection)


@contextmanager
def staging_loader(connection: Connection, staging: Table) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function that bulk-loads typed rows (index = source row number) into ``staging``.

    PostgreSQL gets one ``COPY`` for the whole file, fed from a queue by a writer thread, so the
    server parses and stores one chunk while we read and check the next. Other engines get
    ``executemany`` per chunk. No other statement may run on the connection until the block ends.
    """
    columns = [c.name for c in staging.columns]

    def ordered(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.reset_index(names=ROW)[columns]

    if connection.dialect.name != "postgresql":
        yield lambda rows: None if rows.empty else _insert_many(connection, staging, ordered(rows))
        return
    driver = connection.connection.driver_connection
    sql = f"COPY {staging.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with driver.cursor() as cursor, cursor.copy(sql, writer=QueuedLibpqWriter(cursor)) as copy:  # type: ignore[union-attr]
        yield lambda rows: None if rows.empty else copy.write(_csv_bytes(ordered(rows)))


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


def _insert_many(connection: Connection, staging: Table, frame: pd.DataFrame) -> None:
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    columns: dict[str, list[object]] = {}
    for name in frame.columns:
        if isinstance(staging.c[name].type, UtcDateTime):
            # The text form SQLAlchemy itself writes for SQLite datetimes, so stored values compare equal.
            columns[name] = pc.strftime(arrow[name], format="%Y-%m-%d %H:%M:%S").to_pylist()
        else:
            columns[name] = arrow[name].to_pylist()
    values = list(zip(*columns.values(), strict=True))
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {staging.name} ({', '.join(columns)}) VALUES ({placeholders})"
    connection.connection.driver_connection.executemany(sql, values)  # type: ignore[union-attr]


def find_duplicate_keys(
    connection: Connection, staging: Table, key: str, limit: int
) -> tuple[list[Conflict], int]:
    """Rows whose key already appeared earlier in the same file, and how many there are."""
    distinct = select(func.count() - func.count(staging.c[key].distinct())).select_from(staging)
    if not connection.execute(distinct).scalar_one():  # one aggregate settles the usual, clean file
        return [], 0
    firsts = (
        select(staging.c[key].label("key"), func.min(staging.c[ROW]).label("first_row"))
        .group_by(staging.c[key])
        .having(func.count() > 1)
        .subquery()
    )
    repeats = (
        select(staging.c[ROW], staging.c[key], firsts.c.first_row)
        .join(firsts, staging.c[key] == firsts.c.key)
        .where(staging.c[ROW] > firsts.c.first_row)
    )
    return _first_and_count(connection, repeats, limit)


def find_unknown_customers(connection: Connection, staging: Table, limit: int) -> tuple[list[Conflict], int]:
    """Rows that refer to a customer the database does not know."""
    unknown = select(staging.c[ROW], staging.c.customer_id).where(
        ~exists().where(customers.c.customer_id == staging.c.customer_id)
    )
    return _first_and_count(connection, unknown, limit)


def _first_and_count(connection: Connection, query: Select[Any], limit: int) -> tuple[list[Conflict], int]:
    total = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    if not total:  # the usual case: skip the sorted look-up of examples
        return [], 0
    found = connection.execute(query.order_by(query.selected_columns[0]).limit(limit)).all()
    return [Conflict(row, str(value), *rest) for row, value, *rest in found], total


def lock_for_merge(connection: Connection, target: Table) -> None:
    """Hold the table against other writers until commit (PostgreSQL; SQLite writers already queue)."""
    if connection.dialect.name == "postgresql":
        # One import per table at a time: two concurrent imports of the same new key would otherwise
        # both try to insert it. Readers are not blocked; the usage rollup waits for the import.
        connection.execute(text(f"LOCK TABLE {target.name} IN SHARE ROW EXCLUSIVE MODE"))


def merge_staging(
    connection: Connection,
    staging: Table,
    target: Table,
    key: str,
    *,
    now: datetime,
    update_columns: list[str] | None = None,
) -> MergeCounts:
    """Update changed rows, insert new ones, leave identical ones alone; count each.

    ``update_columns`` limits what an existing row may have changed (the columns the file has), so a
    file with fewer columns does not erase what another file stored. New rows get every column.
    """
    lock_for_merge(connection, target)
    values = [c.name for c in staging.columns if c.name not in (key, ROW)]
    updatable = [c for c in values if update_columns is None or c in update_columns]
    staged = connection.execute(select(func.count()).select_from(staging)).scalar_one()
    stamp = literal(now, UtcDateTime)
    updated = 0
    if updatable:
        changed = or_(*(target.c[c].is_distinct_from(staging.c[c]) for c in updatable))
        updated = connection.execute(
            update(target)
            .where(and_(target.c[key] == staging.c[key], changed))
            .values({**{c: staging.c[c] for c in updatable}, "updated_at": stamp})
        ).rowcount
    inserted = connection.execute(
        insert(target).from_select(
            [key, *values, "ingested_at", "updated_at"],
            select(staging.c[key], *(staging.c[c] for c in values), stamp, stamp).where(
                ~exists().where(target.c[key] == staging.c[key])
            ),
        ),
        # SQLAlchemy only promises rowcount for UPDATE/DELETE unless asked to keep it.
        execution_options={"preserve_rowcount": True},
    ).rowcount
    return MergeCounts(inserted=inserted, updated=updated, unchanged=staged - inserted - updated)


def record_changed_days(
    connection: Connection, staging: Table, target: Table, key: str, *, compared: list[str]
) -> None:
    """Log the (customer, UTC day) of every staged event that is new or will change, before merging.

    An event that moves (another customer or day) marks its old day too, so the rollup recomputes both.
    ``compared`` are the columns the merge will update. Unchanged rows mark nothing: re-importing a
    file costs the rollup nothing.
    """
    lock_for_merge(connection, target)
    matched = target.join(staging, target.c[key] == staging.c[key])
    changed = or_(*(target.c[c].is_distinct_from(staging.c[c]) for c in compared if c != key))
    new_rows = select(staging.c.customer_id, utc_day(staging.c.occurred_at)).where(
        ~exists().where(target.c[key] == staging.c[key])
    )
    days = new_rows.distinct()
    if compared:
        moved_to = select(staging.c.customer_id, utc_day(staging.c.occurred_at))
        moved_from = select(target.c.customer_id, utc_day(target.c.occurred_at))
        days = new_rows.union(
            moved_to.select_from(matched).where(changed), moved_from.select_from(matched).where(changed)
        )
    connection.execute(insert(usage_changes).from_select(["customer_id", "day"], days))
