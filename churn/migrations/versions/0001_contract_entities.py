"""The six contract entities and the import log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations spell types out rather than import churn.tables, so they keep working as tables.py moves on.
TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.String(length=128)


def _bookkeeping() -> list[sa.Column]:
    return [
        sa.Column("ingested_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    ]


def _customer_ref(table: str) -> list[sa.Column | sa.ForeignKeyConstraint]:
    return [
        sa.Column("customer_id", ID, nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.customer_id"], name=f"fk_{table}_customer_id"),
    ]


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("segment", sa.String(64)),
        sa.Column("plan", sa.String(64)),
        sa.Column("region", sa.String(64)),
        sa.Column("owner_email", sa.String(255)),
        sa.Column("created_at", TIMESTAMP),
        sa.Column("seats", sa.Integer()),
        sa.Column("attributes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customers"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", ID, nullable=False),
        *_customer_ref("subscriptions"),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP),
        sa.Column("mrr", sa.Double(), nullable=False),
        sa.Column("plan", sa.String(64)),
        sa.Column("seats", sa.Integer()),
        sa.Column("billing_period", sa.String(16)),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("subscription_id", name="pk_subscriptions"),
    )
    op.create_index("ix_subscriptions_customer_id_started_at", "subscriptions", ["customer_id", "started_at"])
    op.create_table(
        "usage_events",
        sa.Column("event_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),  # checked by the importer, see tables.py
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("user_id", ID),
        sa.Column("quantity", sa.Double(), nullable=False),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("event_id", name="pk_usage_events"),
    )
    op.create_index("ix_usage_events_customer_id_occurred_at", "usage_events", ["customer_id", "occurred_at"])
    op.create_index("ix_usage_events_ingested_at", "usage_events", ["ingested_at"], postgresql_using="brin")
    op.create_table(
        "tickets",
        sa.Column("ticket_id", ID, nullable=False),
        *_customer_ref("tickets"),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("first_response_at", TIMESTAMP),
        sa.Column("resolved_at", TIMESTAMP),
        sa.Column("status", sa.String(32)),
        sa.Column("priority", sa.String(32)),
        sa.Column("channel", sa.String(32)),
        sa.Column("replies", sa.Integer()),
        sa.Column("reopened", sa.Boolean()),
        sa.Column("escalated", sa.Boolean()),
        sa.Column("csat", sa.Integer()),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_customer_id_opened_at", "tickets", ["customer_id", "opened_at"])
    op.create_table(
        "survey_responses",
        sa.Column("response_id", ID, nullable=False),
        *_customer_ref("survey_responses"),
        sa.Column("survey", sa.String(8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("responded_at", TIMESTAMP, nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("touchpoint", sa.String(64)),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("response_id", name="pk_survey_responses"),
    )
    op.create_index(
        "ix_survey_responses_customer_id_responded_at", "survey_responses", ["customer_id", "responded_at"]
    )
    op.create_table(
        "cancellations",
        sa.Column("cancellation_id", ID, nullable=False),
        *_customer_ref("cancellations"),
        sa.Column("effective_at", TIMESTAMP, nullable=False),
        sa.Column("requested_at", TIMESTAMP),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("reason_text", sa.Text()),
        sa.Column("voluntary", sa.Boolean()),
        sa.Column("source", sa.String(64)),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("cancellation_id", name="pk_cancellations"),
    )
    op.create_index(
        "ix_cancellations_customer_id_effective_at", "cancellations", ["customer_id", "effective_at"]
    )
    op.create_table(
        "ingest_runs",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("inserted", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("unchanged", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_ingest_runs"),
    )


def downgrade() -> None:
    for table in (
        "ingest_runs",
        "cancellations",
        "survey_responses",
        "tickets",
        "usage_events",
        "subscriptions",
    ):
        op.drop_table(table)
    op.drop_table("customers")
