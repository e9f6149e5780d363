"""API keys, alert outcomes, and a change sequence on risk scores for incremental CRM syncs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.String(length=128)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "alert_outcomes",
        sa.Column("outcome_id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("alert_id", SERIAL, nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_outcomes_alert_id")),
        sa.PrimaryKeyConstraint("outcome_id", name=op.f("pk_alert_outcomes")),
        sa.UniqueConstraint("request_key", name=op.f("uq_alert_outcomes_request_key")),
    )
    with op.batch_alter_table("alert_outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_outcomes_alert_id_created_at"), ["alert_id", "created_at"])

    # Scores stored before this revision get change ids in the order they last changed.
    with op.batch_alter_table("risk_scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change_id", sa.BigInteger(), nullable=True))
    scores = sa.table(
        "risk_scores",
        sa.column("as_of"),
        sa.column("customer_id"),
        sa.column("updated_at"),
        sa.column("change_id"),
    )
    connection = op.get_bind()
    keys = connection.execute(
        sa.select(scores.c.as_of, scores.c.customer_id).order_by(
            scores.c.updated_at, scores.c.as_of, scores.c.customer_id
        )
    ).all()
    update = (
        scores.update()
        .where(
            scores.c.as_of == sa.bindparam("key_as_of"), scores.c.customer_id == sa.bindparam("key_customer")
        )
        .values(change_id=sa.bindparam("new_change_id"))
    )
    rows = [{"key_as_of": a, "key_customer": c, "new_change_id": n} for n, (a, c) in enumerate(keys, start=1)]
    if rows:
        connection.execute(update, rows)
    with op.batch_alter_table("risk_scores", schema=None) as batch_op:
        batch_op.alter_column("change_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index(batch_op.f("ix_risk_scores_change_id"), ["change_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("risk_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_scores_change_id"))
        batch_op.drop_column("change_id")
    with op.batch_alter_table("alert_outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_outcomes_alert_id_created_at"))
    op.drop_table("alert_outcomes")
    op.drop_table("api_keys")
