"""Create or upgrade the database schema with Alembic; safe to run any number of times."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: concurrent upgrades on PostgreSQL (two services starting at once) take turns.
_UPGRADE_LOCK = 72_177_001


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    script = ScriptDirectory(str(_MIGRATIONS))
    head = script.get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``revision``; returns (revision before, revision after)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(_alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    assert after is not None
    return before, after


def make_revision(engine: Engine, message: str) -> None:
    """Draft a new migration from the difference between tables.py and the database (developers only)."""
    with engine.begin() as connection:
        command.revision(_alembic_config(connection), message=message, autogenerate=True)
