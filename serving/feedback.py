"""What reps did about an alert (acknowledged, outreach logged, saved, churning), from Slack or the API.

Outcomes are facts for later training and for reviewing the alerts, so each is kept as its own row;
a retried request carries the same request key and lands once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from churn.errors import UserFacingError
from churn.tables import alert_outcomes, alerts


class Outcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    OUTREACH_LOGGED = "outreach_logged"
    SAVED = "saved"
    CHURNING = "churning"  # the customer is leaving; may say why (reason_code)


class OutcomeSource(StrEnum):
    SLACK = "slack"
    API = "api"


MAX_REASON_CODE = 64  # as cancellations.reason_code, so a churning reason can become a cancellation's
MAX_NOTE = 4000
MAX_ACTOR = 255
MAX_REQUEST_KEY = 255


class FeedbackError(UserFacingError):
    """An outcome that cannot be recorded as given."""


class UnknownAlertError(FeedbackError):
    """No alert has this id."""


class RequestKeyReusedError(FeedbackError):
    """A request key already recorded a different outcome."""


_COLUMNS = (
    alert_outcomes.c.outcome_id,
    alert_outcomes.c.alert_id,
    alert_outcomes.c.customer_id,
    alert_outcomes.c.outcome,
    alert_outcomes.c.reason_code,
    alert_outcomes.c.note,
    alert_outcomes.c.actor,
    alert_outcomes.c.source,
    alert_outcomes.c.created_at,
)
# What makes a retry the same request: the actor and time may differ between tries.
_SAME_REQUEST = ("alert_id", "outcome", "reason_code", "note")


def record_outcome(
    connection: Connection,
    *,
    alert_id: int,
    outcome: Outcome | str,
    actor: str,
    source: OutcomeSource | str,
    reason_code: str | None = None,
    note: str | None = None,
    request_key: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """Record what was done about an alert (once per request key); returns the stored outcome.

    The caller owns the transaction. Raises UnknownAlertError for an alert id that does not exist,
    RequestKeyReusedError when the key already recorded something else, FeedbackError for bad values.
    """
    wanted = {
        "alert_id": alert_id,
        "outcome": _choice(Outcome, outcome, "outcome"),
        "reason_code": _text(reason_code, "reason_code", MAX_REASON_CODE),
        "note": _text(note, "note", MAX_NOTE),
    }
    if wanted["reason_code"] is not None and wanted["outcome"] != Outcome.CHURNING:
        raise FeedbackError(f"reason_code: only a {Outcome.CHURNING.value} outcome carries a reason")
    who = _text(actor, "actor", MAX_ACTOR)
    if who is None:
        raise FeedbackError("actor: say who recorded the outcome")
    key = _text(request_key, "request key", MAX_REQUEST_KEY)
    if key is not None:
        earlier = _by_request_key(connection, key)
        if earlier is not None:
            return _same_or_refuse(earlier, wanted)
    alert = connection.execute(
        select(alerts.c.alert_id, alerts.c.customer_id).where(alerts.c.alert_id == alert_id)
    ).first()
    if alert is None:
        raise UnknownAlertError(f"alert {alert_id} does not exist")
    if alert.customer_id is None:
        raise FeedbackError(f"alert {alert_id} is not about one customer (a digest or notice)")
    values = {
        **wanted,
        "outcome": wanted["outcome"].value,
        "customer_id": alert.customer_id,
        "actor": who,
        "source": _choice(OutcomeSource, source, "source").value,
        "request_key": key,
        "created_at": now,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # A retry racing its first try: the unique request key lets one insert win; the other reads it.
    statement = (
        dialect.insert(alert_outcomes)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[alert_outcomes.c.request_key])
        .returning(*_COLUMNS)
    )
    stored = connection.execute(statement).first()
    if stored is None:
        earlier = _by_request_key(connection, key or "")
        assert earlier is not None  # the conflict was on this key
        return _same_or_refuse(earlier, wanted)
    return dict(stored._mapping)


def list_outcomes(connection: Connection, alert_id: int) -> list[dict[str, Any]]:
    """Every outcome recorded for an alert, oldest first."""
    exists = connection.execute(select(alerts.c.alert_id).where(alerts.c.alert_id == alert_id)).first()
    if exists is None:
        raise UnknownAlertError(f"alert {alert_id} does not exist")
    rows = connection.execute(
        select(*_COLUMNS)
        .where(alert_outcomes.c.alert_id == alert_id)
        .order_by(alert_outcomes.c.created_at, alert_outcomes.c.outcome_id)
    )
    return [dict(row._mapping) for row in rows]


def _by_request_key(connection: Connection, key: str) -> dict[str, Any] | None:
    row = connection.execute(select(*_COLUMNS).where(alert_outcomes.c.request_key == key)).first()
    return dict(row._mapping) if row else None


def _same_or_refuse(earlier: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    if any(earlier[name] != wanted[name] for name in _SAME_REQUEST):
        raise RequestKeyReusedError(
            f"this request key already recorded {earlier['outcome']} for alert {earlier['alert_id']}: "
            "use a new key for a different outcome"
        )
    return earlier


def _choice(kind: type[StrEnum], value: object, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise FeedbackError(f"{name}: {value!r} is not one of {', '.join(kind)}") from None


def _text(value: str | None, name: str, max_length: int) -> str | None:
    """Trimmed text, empty as missing; NUL refused on every backend alike (PostgreSQL cannot store it)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if "\x00" in value:
        raise FeedbackError(f"{name}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # half a character (a lone surrogate), which JSON can carry
        raise FeedbackError(f"{name}: is not valid Unicode text") from None
    if len(value) > max_length:
        raise FeedbackError(f"{name}: is longer than {max_length} characters")
    return value
