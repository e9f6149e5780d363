"""Daily usage rollup, its change log, and feature snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.String(length=128)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_changes",
        sa.Column("change_id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("change_id", name="pk_usage_changes"),
    )
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("day", "customer_id", "event_type", name="pk_usage_daily"),
    )
    op.create_table(
        "usage_daily_users",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "customer_id", "user_id", "event_type", name="pk_usage_daily_users"),
    )
    op.create_table(
        "feature_snapshots",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("features", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("as_of", "customer_id", name="pk_feature_snapshots"),
    )
    op.create_table(
        "snapshot_runs",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("built_at", TIMESTAMP, nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("feature_names", JSON_DOCUMENT, nullable=False),
        sa.Column("config_digest", sa.String(length=64), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", name="pk_snapshot_runs"),
    )
    # Events imported before this revision have never been rolled up: mark every day of them.
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = "date(occurred_at)" if sqlite else "(occurred_at AT TIME ZONE 'UTC')::date"
    op.execute(
        f"INSERT INTO usage_changes (customer_id, day) SELECT DISTINCT customer_id, {day} FROM usage_events"
    )


def downgrade() -> None:
    for table in ("snapshot_runs", "feature_snapshots", "usage_daily_users", "usage_daily", "usage_changes"):
        op.drop_table(table)
