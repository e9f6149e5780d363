"""Reason codes the text classifier filled in for cancellations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.String(length=128)


def upgrade() -> None:
    op.create_table(
        "reason_predictions",
        sa.Column("cancellation_id", ID, nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("classifier", sa.String(length=64), nullable=False),
        sa.Column("classified_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["cancellation_id"],
            ["cancellations.cancellation_id"],
            name=op.f("fk_reason_predictions_cancellation_id"),
        ),
        sa.PrimaryKeyConstraint("cancellation_id", name=op.f("pk_reason_predictions")),
    )


def downgrade() -> None:
    op.drop_table("reason_predictions")
