"""Engines and sessions for the configured database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from churn.settings import Settings


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the per-backend settings the product relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        # pysqlite's own transaction handling starts transactions lazily and never for DDL; take
        # control so BEGIN covers everything (an import is all-or-nothing, temp tables included).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    # Sessions speak UTC so timestamps without an offset (e.g. bulk-loaded text) mean UTC.
    connect_args = {"options": "-c timezone=UTC"} if url.startswith("postgresql") else {}
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)


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
