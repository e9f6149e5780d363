"""Alert rows as the scoring job queues them, for delivery tests: plain functions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select

from churn.tables import alerts
from serving.outbox import AlertKind, dedupe_key, queue_alerts

AS_OF = date(2024, 12, 1)
NOW = datetime(2024, 12, 1, 7, 0, tzinfo=UTC)


def customer_facts(customer_id: str = "C001", **overrides: Any) -> dict[str, Any]:
    """A threshold alert's ``message``: the facts the scoring job writes."""
    facts: dict[str, Any] = {
        "customer_id": customer_id,
        "name": f"Company {customer_id}",
        "segment": "SMB",
        "owner_email": "csm@example.com",
        "as_of": AS_OF.isoformat(),
        "kind": "threshold",
        "risk": 0.61,
        "previous_risk": 0.22,
        "previous_as_of": "2024-11-24",
        "tier": "high",
        "mrr": 1_250.0,
        "renewal_date": "2025-01-15",
        "days_to_renewal": 45,
        "model_version": "3",
        "involuntary": False,
        "change_drivers": [
            {
                "feature": "logins_30d",
                "sentence": "12 logins in the last 30 days",
                "previous_sentence": "41 logins in the last 30 days",
                "effect": 0.8,
                "value": 12,
                "previous_value": 41,
            },
            {
                "feature": "last_nps",
                "sentence": "last NPS answer 9",
                "previous_sentence": "last NPS answer 6",
                "effect": -0.2,
                "value": 9,
                "previous_value": 6,
            },
        ],
        "drivers": {"raising": [{"feature": "open_tickets", "sentence": "4 open tickets", "effect": 0.5}]},
        "likely_reason": None,
        "suggested_play": None,
        "crm_url": None,
    }
    facts.update(overrides)
    return facts


def alert_row(
    customer_id: str = "C001",
    *,
    kind: AlertKind = AlertKind.THRESHOLD,
    channel: str = "cs-alerts",
    state: str = "pending",
    owner_email: str | None = "csm@example.com",
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    facts = message or customer_facts(customer_id, owner_email=owner_email)
    return {
        "dedupe_key": dedupe_key(kind, AS_OF, customer_id),
        "kind": kind.value,
        "customer_id": customer_id if kind in (AlertKind.THRESHOLD, AlertKind.JUMP) else None,
        "as_of": AS_OF,
        "owner_email": owner_email,
        "channel": channel,
        "risk": facts.get("risk"),
        "previous_risk": facts.get("previous_risk"),
        "model_version": facts.get("model_version"),
        "message": facts,
        "state": state,
    }


def queue(engine: Engine, rows: list[dict[str, Any]], *, now: datetime = NOW) -> list[int]:
    """Queue the rows; returns their alert ids in order."""
    with engine.begin() as connection:
        ids = queue_alerts(connection, rows, now=now)
    return [ids[row["dedupe_key"]] for row in rows]


def states(engine: Engine) -> dict[int, dict[str, Any]]:
    """Every alert row by id."""
    with engine.connect() as connection:
        return {row.alert_id: dict(row._mapping) for row in connection.execute(select(alerts))}
