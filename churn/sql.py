"""Portable SQL expressions: the few things SQLite, PostgreSQL and DuckDB spell differently.

Feature jobs are written once in SQLAlchemy Core; anything dialect-specific lives here, so running
them on another engine (a warehouse with a SQLAlchemy dialect) means teaching this module its spelling.
DuckDB (through ``duckdb-engine``) is taught here and proved by ``tests/test_warehouse.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Date, Double, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement


class utc_day(FunctionElement[Any]):
    """The UTC calendar day of a stored timestamp."""

    type = Date()
    inherit_cache = True


class epoch_seconds(FunctionElement[Any]):
    """Seconds since 1970-01-01 UTC of a stored timestamp, to the millisecond: differences are durations.

    Rounded to whole milliseconds on every engine: SQLite computes it through a Julian day number,
    which is off in the last bits, and identical inputs must give identical features everywhere.
    """

    type = Double()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # Timestamps are stored as naive UTC text ('YYYY-MM-DD HH:MM:SS'), which date() reads directly.
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_day, "duckdb")
def _utc_day_duckdb(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # A TIMESTAMPTZ casts to the day of the session's time zone, which DuckDB takes from the machine:
    # timezone('UTC', ...) makes it the plain UTC timestamp first, whatever the session says.
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(epoch_seconds)
def _epoch_default(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"
    return f"CAST(ROUND(CAST({seconds} AS NUMERIC), 3) AS DOUBLE PRECISION)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"round((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0, 3)"


def hours_between(start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
    """``end - start`` in hours."""
    return (epoch_seconds(end) - epoch_seconds(start)) / 3600.0


def temporary_table_options(connection: Connection) -> dict[str, Any]:
    """``Table`` keywords for a temporary table that the engine drops at commit, where it can.

    Only PostgreSQL gets ``ON COMMIT DROP``; callers drop the table themselves everywhere else.
    Asked of the connection, not left to the dialect: duckdb-engine compiles DDL the way PostgreSQL
    does and would pass the option on to DuckDB, whose parser has no ON COMMIT DROP.
    """
    return {"postgresql_on_commit": "DROP"} if connection.dialect.name == "postgresql" else {}


def use_work_mem(connection: Connection, megabytes: int) -> None:
    """Let this transaction's sorts and hashes use more memory on PostgreSQL (other engines: no-op).

    The server default (4 MB) makes the feature jobs' aggregations spill to disk; ``SET LOCAL`` ends
    with the transaction, so nothing else on the server is affected.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SET LOCAL work_mem = '{int(megabytes)}MB'"))
