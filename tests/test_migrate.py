"""Schema creation and upgrades with Alembic (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from churn.db import make_engine
from churn.migrate import current_revision, head_revision, upgrade_database
from churn.tables import metadata


def test_upgrade_creates_every_table_and_is_safe_to_repeat(empty_database_url):
    engine = make_engine(empty_database_url)

    first = upgrade_database(engine)
    second = upgrade_database(engine)

    assert first == (None, head_revision())
    assert second == (head_revision(), head_revision())
    assert set(inspect(engine).get_table_names()) >= {t.name for t in metadata.sorted_tables}
    engine.dispose()


def test_migrations_build_exactly_the_schema_the_code_declares(empty_database_url):
    engine = make_engine(empty_database_url)
    upgrade_database(engine)

    with engine.connect() as connection:
        drift = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata
        )

    assert drift == [], "tables.py and the migrations disagree: write a migration"
    engine.dispose()


def test_the_indexes_feature_jobs_rely_on_exist(empty_database_url):
    engine = make_engine(empty_database_url)
    upgrade_database(engine)

    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("usage_events")}

    assert indexes["ix_usage_events_customer_id_occurred_at"] == ["customer_id", "occurred_at"]
    assert current_revision(engine) == head_revision()
    engine.dispose()
