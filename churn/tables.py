"""The operational database schema: the six contract entities and the import log.

Every timestamp is stored in UTC. Each contract row also records when we first saw it
(``ingested_at``) and when it last changed (``updated_at``), so feature jobs can tell what was
known at a given time and late-arriving rows only affect snapshots built after they arrived.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Unicode,
)
from sqlalchemy.dialects.postgresql import JSONB


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in and comes out as aware UTC on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as naive UTC
    text and the zone is put back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC timestamps only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Attributes are compared for idempotent re-imports, so PostgreSQL gets JSONB (which has equality).
Attributes = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(128)


def _bookkeeping() -> list[Column[Any]]:
    return [
        Column("ingested_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    ]


def _customer_ref() -> Column[Any]:
    return Column("customer_id", ID, ForeignKey("customers.customer_id"), nullable=False)


customers = Table(
    "customers",
    metadata,
    Column("customer_id", ID, primary_key=True),
    Column("name", String(255)),
    Column("segment", String(64)),
    Column("plan", String(64)),
    Column("region", String(64)),
    Column("owner_email", String(255)),
    Column("created_at", UtcDateTime),
    Column("seats", Integer),
    Column("attributes", Attributes, nullable=False, default=dict),
    *_bookkeeping(),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", ID, primary_key=True),
    _customer_ref(),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("mrr", Double, nullable=False),
    Column("plan", String(64)),
    Column("seats", Integer),
    Column("billing_period", String(16)),
    *_bookkeeping(),
    Index(None, "customer_id", "started_at"),
)

usage_events = Table(
    "usage_events",
    metadata,
    # Without a source id this is a digest of the whole row (see churn.ingest), so re-imports match.
    Column("event_id", ID, primary_key=True),
    # No foreign key here, unlike the small tables: the importer checks every customer reference
    # set-wise in the same transaction (customers are never deleted), and a per-row FK trigger
    # made loading events 60% slower on PostgreSQL.
    Column("customer_id", ID, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("user_id", ID),
    Column("quantity", Double, nullable=False, default=1.0),
    *_bookkeeping(),
    # Feature jobs scan one customer's events over a time window.
    Index(None, "customer_id", "occurred_at"),
    # Incremental daily rollups pick up only rows that arrived since the last run. ingested_at grows
    # with insertion order, which is what a BRIN index (tiny, nearly free to maintain) is made for.
    Index(None, "ingested_at", postgresql_using="brin"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", ID, primary_key=True),
    _customer_ref(),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("first_response_at", UtcDateTime),
    Column("resolved_at", UtcDateTime),
    Column("status", String(32)),
    Column("priority", String(32)),
    Column("channel", String(32)),
    Column("replies", Integer),
    Column("reopened", Boolean),
    Column("escalated", Boolean),
    Column("csat", Integer),
    *_bookkeeping(),
    Index(None, "customer_id", "opened_at"),
)

survey_responses = Table(
    "survey_responses",
    metadata,
    Column("response_id", ID, primary_key=True),
    _customer_ref(),
    Column("survey", String(8), nullable=False),
    Column("score", Integer, nullable=False),
    Column("responded_at", UtcDateTime, nullable=False),
    Column("comment", Text),
    Column("touchpoint", String(64)),
    *_bookkeeping(),
    Index(None, "customer_id", "responded_at"),
)

cancellations = Table(
    "cancellations",
    metadata,
    Column("cancellation_id", ID, primary_key=True),
    _customer_ref(),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("requested_at", UtcDateTime),
    Column("reason_code", String(64)),
    Column("reason_text", Text),
    Column("voluntary", Boolean),
    Column("source", String(64)),
    *_bookkeeping(),
    Index(None, "customer_id", "effective_at"),
)

ingest_runs = Table(
    "ingest_runs",
    metadata,
    Column("run_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("entity", String(32), nullable=False),
    Column("source", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("rows_read", BigInteger, nullable=False),
    Column("inserted", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("unchanged", BigInteger, nullable=False),
)

# --- Derived data: rebuilt from the contract tables, never imported directly. ---

# Days whose usage changed since the daily rollup last ran: the import writes them in its own
# transaction, so the rollup never misses an import that commits while it runs, and an updated
# event marks both the day it left and the day it moved to.
usage_changes = Table(
    "usage_changes",
    metadata,
    Column("change_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("customer_id", ID, nullable=False),
    Column("day", Date, nullable=False),
)

# One row per customer, UTC day and event type: what feature windows add up instead of raw events.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("customer_id", ID, primary_key=True),
    Column("event_type", String(64), primary_key=True),
    # 32-bit on purpose: PostgreSQL sums int4 in a bigint, but int8 in a (much slower) numeric.
    Column("events", Integer, nullable=False),
    Column("quantity", Double, nullable=False),
)

# Who was active on a day, and doing what: distinct users over a window cannot be added up from daily
# counts, and people seen only in event types left out of engagement (billing, internal) must not count.
usage_daily_users = Table(
    "usage_daily_users",
    metadata,
    Column("day", Date, primary_key=True),
    Column("customer_id", ID, primary_key=True),
    Column("user_id", ID, primary_key=True),
    Column("event_type", String(64), primary_key=True),
    Column("events", Integer, nullable=False),
)

# One row of features per active customer per as_of. Event types are data, so the set of feature
# names varies by company (and may grow over time): the row is a JSON array of values, in the order
# of the names its snapshot_runs row lists once, not fixed columns.
feature_snapshots = Table(
    "feature_snapshots",
    metadata,
    Column("as_of", Date, primary_key=True),
    Column("customer_id", ID, primary_key=True),
    Column("features", Attributes, nullable=False),
)

snapshot_runs = Table(
    "snapshot_runs",
    metadata,
    Column("as_of", Date, primary_key=True),
    Column("built_at", UtcDateTime, nullable=False),
    Column("customers", Integer, nullable=False),
    Column("feature_names", Attributes, nullable=False),
    Column("config_digest", String(64), nullable=False),
    Column("seconds", Double, nullable=False),
)

# --- Serving: scores, alerts and the jobs that make them. ---

SERIAL = BigInteger().with_variant(Integer, "sqlite")

# One row per scoring of a day: which model scored which snapshot, and what came of it.
scoring_runs = Table(
    "scoring_runs",
    metadata,
    Column("as_of", Date, primary_key=True),
    Column("model_version", String(32), nullable=False),
    Column("model_run_id", String(64), nullable=False),
    Column("snapshot_built_at", UtcDateTime, nullable=False),
    Column("scored_at", UtcDateTime, nullable=False),
    Column("customers", Integer, nullable=False),
    Column("alerts", Integer, nullable=False),
    Column("held", Integer, nullable=False),
    Column("seconds", Double, nullable=False),
    # Each source's freshness when the day was scored (serving.freshness), read back by the API:
    # finding it again scans every event. Empty for runs scored before schema 0006.
    Column("source_freshness", JSON, nullable=True),
)

# The risk history: one row per customer and scored day. ``updated_at`` moves only when a value
# changes, so a re-run of the same scoring changes nothing and CRM syncs see real changes only.
risk_scores = Table(
    "risk_scores",
    metadata,
    Column("as_of", Date, primary_key=True),
    Column("customer_id", ID, primary_key=True),
    Column("risk", Double, nullable=False),
    Column("tier", String(16), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("snapshot_built_at", UtcDateTime, nullable=False),
    Column("scored_at", UtcDateTime, nullable=False),
    # Top drivers each way (training.explain), kept for high-tier and alerted customers only.
    Column("drivers", Attributes),
    Column("updated_at", UtcDateTime, nullable=False),
    # Grows with every insert or change, in commit order (scorings are serialised): a CRM sync that
    # pages by it sees each change once, even while a scoring runs.
    Column("change_id", BigInteger, nullable=False),
    Index(None, "customer_id", "as_of"),
    Index(None, "updated_at", "customer_id", "as_of"),
    Index(None, "change_id", unique=True),
)

# Where each customer stands with the alert policy: re-armed or not, when it last alerted, and the
# last scored day the policy has seen (a re-run of that day is not a new crossing).
alert_state = Table(
    "alert_state",
    metadata,
    Column("customer_id", ID, primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("last_alert_as_of", Date),
    Column("evaluated_as_of", Date, nullable=False),
)

# The outbox. A row is written in the scoring transaction and sent later by the dispatcher, so an
# alert is never lost with a crash and, keyed by ``dedupe_key``, never queued twice.
# States: pending -> sending -> sent; failed after too many attempts (retried on request);
# held while a source is stale; digested when the owner's daily cap moved it into a digest;
# suppressed when it is not for CS reps (failed payments) and no channel is configured.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", SERIAL, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # threshold | jump | digest | notice
    Column("customer_id", ID),
    Column("as_of", Date, nullable=False),
    Column("owner_email", String(255)),
    Column("channel", String(64), nullable=False),  # a name from alerts.channels
    Column("risk", Double),
    Column("previous_risk", Double),
    Column("model_version", String(32)),
    # Everything the message says (account, MRR, renewal, drivers of the change, links), so that
    # Slack and the console render the same facts, and a later config change does not rewrite history.
    Column("message", Attributes, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", Text),
    Column("digest_id", SERIAL, ForeignKey("alerts.alert_id")),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_until", UtcDateTime),
    Column("last_error", Text),
    Column("slack_channel", String(64)),
    Column("slack_ts", String(32)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Index(None, "state", "next_attempt_at"),
    Index(None, "customer_id", "as_of"),
)

# Owner e-mail -> Slack user, cached so a dispatch pass does not look up every owner every time.
slack_users = Table(
    "slack_users",
    metadata,
    Column("email", String(255), primary_key=True),
    Column("slack_user_id", String(32)),  # null: Slack has no user with this e-mail
    Column("looked_up_at", UtcDateTime, nullable=False),
)

# Every run of a scheduled (or manually started) job: what ran, where, and how it ended.
job_runs = Table(
    "job_runs",
    metadata,
    Column("run_id", SERIAL, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("outcome", String(16), nullable=False),  # running | ok | failed | interrupted
    Column("detail", Text),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Index(None, "job", "started_at"),
)

# API keys: only a SHA-256 of the key is kept (keys are long random tokens, so a fast hash is
# enough); the prefix lets people tell keys apart in listings.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", SERIAL, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", Attributes, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
)

# What reps and CRMs did about an alert: acknowledged, outreach logged, saved, churning (with a
# reason). ``request_key`` makes a retried request (Slack resends, a CRM retries) land once.
alert_outcomes = Table(
    "alert_outcomes",
    metadata,
    Column("outcome_id", SERIAL, primary_key=True, autoincrement=True),
    Column("alert_id", SERIAL, ForeignKey("alerts.alert_id"), nullable=False),
    Column("customer_id", ID),
    Column("outcome", String(32), nullable=False),
    Column("reason_code", String(64)),
    Column("note", Text),
    Column("actor", String(255), nullable=False),
    Column("source", String(16), nullable=False),  # slack | api
    Column("request_key", String(255), unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "alert_id", "created_at"),
)

# Reason codes the text classifier filled in for cancellations that gave text but no code (or "other").
# Kept apart from the imported rows: a re-import never loses them and a retrained classifier replaces them.
reason_predictions = Table(
    "reason_predictions",
    metadata,
    Column("cancellation_id", ID, ForeignKey("cancellations.cancellation_id"), primary_key=True),
    Column("reason_code", String(64), nullable=False),
    Column("confidence", Double, nullable=False),
    Column("classifier", String(64), nullable=False),  # "vocabulary" or the trained model's version
    Column("classified_at", UtcDateTime, nullable=False),
)

# APScheduler 3's job store table, declared here so migrations own the whole schema (the
# definition is APScheduler's SQLAlchemyJobStore's own).
apscheduler_jobs = Table(
    "apscheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)

CONTRACT_TABLES: dict[str, Table] = {
    "customers": customers,
    "subscriptions": subscriptions,
    "events": usage_events,
    "tickets": tickets,
    "surveys": survey_responses,
    "cancellations": cancellations,
}
