"""Each scoring run keeps its sources' freshness, so the API need not scan the sources to show it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scoring_runs") as batch_op:
        batch_op.add_column(sa.Column("source_freshness", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scoring_runs") as batch_op:
        batch_op.drop_column("source_freshness")
