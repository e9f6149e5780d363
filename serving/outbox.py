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

from sqlalchemy import Connection, select

from churn.tables import alerts


class AlertState(StrEnum):
    PENDING = "pending"  # waiting to be sent (or retried at next_attempt_at)
    SENDING = "sending"  # claimed by a dispatcher until claimed_until
    SENT = "sent"
    FAILED = "failed"  # gave up after delivery.max_attempts; `churn alerts retry` re-queues it
    HELD = "held"  # a source was stale when it was raised; an operator releases or discards it
    DIGESTED = "digested"  # over the owner's daily cap: told in the digest ``digest_id``
    SUPPRESSED = "suppressed"  # not for CS reps (failed payments) and no channel configured


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
