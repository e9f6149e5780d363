"""Scores, the alert outbox and policy state, Slack user cache, job runs and the scheduler's job store.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.String(length=128)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("last_alert_as_of", sa.Date(), nullable=True),
        sa.Column("evaluated_as_of", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_alert_state")),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("owner_email", sa.String(length=255), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("risk", sa.Double(), nullable=True),
        sa.Column("previous_risk", sa.Double(), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("message", JSON_DOCUMENT, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("digest_id", SERIAL, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("slack_channel", sa.String(length=64), nullable=True),
        sa.Column("slack_ts", sa.String(length=32), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["digest_id"], ["alerts.alert_id"], name=op.f("fk_alerts_digest_id")),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_alerts_dedupe_key")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_customer_id_as_of"), ["customer_id", "as_of"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alerts_state_next_attempt_at"), ["state", "next_attempt_at"], unique=False
        )

    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_apscheduler_jobs_next_run_time"), ["next_run_time"], unique=False
        )

    op.create_table(
        "job_runs",
        sa.Column("run_id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_job_runs")),
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_runs_job_started_at"), ["job", "started_at"], unique=False)

    op.create_table(
        "risk_scores",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("risk", sa.Double(), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("snapshot_built_at", TIMESTAMP, nullable=False),
        sa.Column("scored_at", TIMESTAMP, nullable=False),
        sa.Column("drivers", JSON_DOCUMENT, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("as_of", "customer_id", name=op.f("pk_risk_scores")),
    )
    with op.batch_alter_table("risk_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_risk_scores_customer_id_as_of"), ["customer_id", "as_of"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_risk_scores_updated_at_customer_id_as_of"),
            ["updated_at", "customer_id", "as_of"],
            unique=False,
        )

    op.create_table(
        "scoring_runs",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("model_run_id", sa.String(length=64), nullable=False),
        sa.Column("snapshot_built_at", TIMESTAMP, nullable=False),
        sa.Column("scored_at", TIMESTAMP, nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", name=op.f("pk_scoring_runs")),
    )
    op.create_table(
        "slack_users",
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=True),
        sa.Column("looked_up_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_slack_users")),
    )


def downgrade() -> None:
    op.drop_table("slack_users")
    op.drop_table("scoring_runs")
    with op.batch_alter_table("risk_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_scores_updated_at_customer_id_as_of"))
        batch_op.drop_index(batch_op.f("ix_risk_scores_customer_id_as_of"))

    op.drop_table("risk_scores")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_runs_job_started_at"))

    op.drop_table("job_runs")
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apscheduler_jobs_next_run_time"))

    op.drop_table("apscheduler_jobs")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_state_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_alerts_customer_id_as_of"))

    op.drop_table("alerts")
    op.drop_table("alert_state")
