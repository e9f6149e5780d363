"""The alert outbox: alerts are rows with a state, written with the scores and sent later.

Writing the alert in the same transaction as the scores that caused it means a crash can delay an
alert but never lose it; the unique ``dedupe_key`` (customer, day, rule) means a re-run or a retry
never queues it twice.

What an alert's ``message`` holds (plain JSON, rendered the same way for Slack and the console):

- threshold / jump: ``customer_id, name, segment, owner_email, as_of, kind, risk, previous_risk,
  previous_as_of, tier, mrr, renewal_date, days_to_renewal, model_version, involuntary,
  change_drivers`` (list of ``{feature, sentence, effect, value, previous_value}``: what moved the risk
  since the previous scoring), ``drivers`` (``{raising, lowering}`` as training.explain gives them),
  ``likely_reason``, ``suggested_play`` (null until reasons are known), ``crm_url``;
- digest: ``owner_email, as_of, cap, customers`` (each ``{alert_id, customer_id, name, risk,
  previous_risk, mrr, headline}``);
- notice: ``as_of, title, lines`` (what an operator must know, e.g. alerts held on stale data).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from churn.tables import alerts


class AlertState(StrEnum):
    PENDING = "pending"  # waiting to be sent (or retried at next_attempt_at)
    SENDING = "sending"  # claimed by a dispatcher until claimed_until
    SENT = "sent"
    FAILED = "failed"  # gave up after delivery.max_attempts; `churn alerts retry` re-queues it
    HELD = "held"  # a source was stale when it was raised; an operator releases or discards it
    DIGESTED = "digested"  # over the owner's daily cap: told in the digest ``digest_id``
    SUPPRESSED = "suppressed"  # not for CS reps (failed payments) and no channel configured
    DISCARDED = "discarded"  # a held alert an operator decided not to send


class AlertKind(StrEnum):
    THRESHOLD = "threshold"  # risk crossed alerts.threshold upward
    JUMP = "jump"  # risk rose by alerts.jump.rise within alerts.jump.within_days
    DIGEST = "digest"  # an owner's alerts over the daily cap, in one message
    NOTICE = "notice"  # for the operator, not about one customer


def dedupe_key(kind: AlertKind, as_of: object, subject: str) -> str:
    """The identity of an alert: one per rule, day and customer (or owner, for digests)."""
    return f"{kind.value}:{as_of}:{subject}"


def queue_alerts(connection: Connection, rows: Sequence[dict[str, Any]], *, now: datetime) -> dict[str, int]:
    """Insert alerts not queued yet (by dedupe_key); returns the alert_id of every key, old or new."""
    if not rows:
        return {}
    keys = [row["dedupe_key"] for row in rows]
    existing = _ids_of(connection, keys)
    fresh = [row for row in rows if row["dedupe_key"] not in existing]
    for row in fresh:
        connection.execute(
            alerts.insert().values(
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
                **row,
            )
        )
    return _ids_of(connection, keys)


def _ids_of(connection: Connection, keys: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    # Chunked: SQLite allows a limited number of bound parameters per statement.
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        query = select(alerts.c.dedupe_key, alerts.c.alert_id).where(alerts.c.dedupe_key.in_(chunk))
        found.update({key: alert_id for key, alert_id in connection.execute(query)})
    return found


# --- Delivery: claiming rows and recording what became of them (serving.dispatch drives these). ---


def claim_due(
    connection: Connection, *, now: datetime, claimed_until: datetime, limit: int
) -> list[dict[str, Any]]:
    """Claim alerts due for sending: pending ones whose time has come, and sends whose claim lapsed.

    A lapsed ``sending`` row is one whose dispatcher died; it is claimed again, and the caller checks
    Slack before re-sending it. On PostgreSQL the rows are locked with SKIP LOCKED so concurrent
    dispatchers claim different rows; on SQLite the caller's write transaction serialises claims.
    Returns the rows as they were before the claim (``state`` tells a lapsed send from a pending one).
    """
    due = or_(
        and_(alerts.c.state == AlertState.PENDING.value, alerts.c.next_attempt_at <= now),
        and_(alerts.c.state == AlertState.SENDING.value, alerts.c.claimed_until < now),
    )
    query = select(alerts).where(due).order_by(alerts.c.next_attempt_at, alerts.c.alert_id).limit(limit)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [dict(row._mapping) for row in connection.execute(query)]
    if rows:
        connection.execute(
            update(alerts)
            .where(alerts.c.alert_id.in_([row["alert_id"] for row in rows]))
            .values(
                state=AlertState.SENDING.value,
                claimed_until=claimed_until,
                attempts=alerts.c.attempts + 1,
                updated_at=now,
            )
        )
    return rows


def _claimed(alert_id: int, claimed_until: datetime) -> Any:
    return and_(
        alerts.c.alert_id == alert_id,
        alerts.c.state == AlertState.SENDING.value,
        alerts.c.claimed_until == claimed_until,
    )


def renew_claim(
    connection: Connection,
    alert_id: int,
    *,
    claimed_until: datetime,
    until: datetime,
    target: str,
    now: datetime,
) -> bool:
    """Extend this dispatcher's claim just before posting and note the target; False if the claim was lost."""
    result = connection.execute(
        update(alerts)
        .where(_claimed(alert_id, claimed_until))
        .values(claimed_until=until, slack_channel=target, updated_at=now)
    )
    return result.rowcount == 1


def mark_sent(connection: Connection, alert_id: int, *, channel: str, ts: str | None, now: datetime) -> None:
    """Record that Slack has the message (whoever holds the claim: a posted message is a fact)."""
    connection.execute(
        update(alerts)
        .where(alerts.c.alert_id == alert_id, alerts.c.state != AlertState.SENT.value)
        .values(
            state=AlertState.SENT.value,
            slack_channel=channel,
            slack_ts=ts,
            sent_at=now,
            claimed_until=None,
            last_error=None,
            updated_at=now,
        )
    )


def release_claim(
    connection: Connection,
    alert_id: int,
    *,
    claimed_until: datetime,
    state: AlertState,
    next_attempt_at: datetime,
    error: str | None,
    now: datetime,
    refund: bool = False,
) -> bool:
    """End this dispatcher's claim: back to pending (to retry at ``next_attempt_at``) or failed.

    ``refund`` gives the attempt back, for alerts the pass never tried (it stopped first).
    """
    values: dict[str, Any] = {
        "state": state.value,
        "next_attempt_at": next_attempt_at,
        "claimed_until": None,
        "updated_at": now,
    }
    if error is not None:
        values["last_error"] = error
    if refund:
        values["attempts"] = alerts.c.attempts - 1
    result = connection.execute(update(alerts).where(_claimed(alert_id, claimed_until)).values(**values))
    return result.rowcount == 1
