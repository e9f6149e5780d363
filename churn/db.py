"""Engines and sessions for the configured database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from churn.settings import Settings

# Execution option for transactions that will write: on SQLite they take the write lock up front.
WRITES = {"churn_writes": True}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the per-backend settings the product relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError(
                f"PostgreSQL driver {parsed.get_driver_name()!r} is not supported: "
                "use postgresql:// or postgresql+psycopg:// (psycopg 3)"
            )
        # Sessions speak UTC so timestamps without an offset (e.g. bulk-loaded text) mean UTC;
        # keep any options the URL already sets (a search_path, say).
        options = " ".join(filter(None, [parsed.query.get("options"), "-c timezone=UTC"]))
        return create_engine(
            parsed.difference_update_query(["options"]),
            connect_args={"options": options},
            pool_pre_ping=True,
            **kwargs,
        )
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _begin_sqlite(connection: Connection) -> None:
    # pysqlite's own transaction handling starts transactions lazily and never for DDL; take
    # control so BEGIN covers everything (an import is all-or-nothing, temp tables included).
    # A writer takes the lock at BEGIN: upgrading a read transaction later fails at once, without
    # waiting, when another writer got there first.
    writes = connection.get_execution_options().get("churn_writes", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # see make_engine: we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the API read while an import or scoring run writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def engine_for(settings: Settings) -> Engine:
    """The engine for the configured database."""
    return make_engine(settings.resolved_database_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose caller owns the transaction (``with sessions.begin() as session``)."""
    return sessionmaker(engine, expire_on_commit=False)
