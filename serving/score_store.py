"""Writing a scoring: risk history, policy state and planned alerts (the caller owns the transaction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, bindparam, func, or_, select

from churn.tables import alert_state, alerts, risk_scores
from serving.alerting import AlertPlan, digest_entry
from serving.outbox import AlertKind, AlertState, queue_alerts
from serving.policy import CustomerState

COMPARED = ("risk", "tier", "model_version", "snapshot_built_at", "drivers")


def write_scores(
    connection: Connection,
    scores: pd.DataFrame,
    *,
    as_of: date,
    model_version: str,
    built_at: datetime,
    now: datetime,
    drivers: Mapping[str, dict[str, Any]],
) -> int:
    """Insert new scores and update changed ones; identical rows are left alone. Returns rows written."""
    existing = {
        row.customer_id: row
        for row in connection.execute(
            select(risk_scores.c.customer_id, *(risk_scores.c[name] for name in COMPARED)).where(
                risk_scores.c.as_of == as_of
            )
        )
    }
    # Change ids are max + 1: scorings are serialised (see serving.scoring) and score rows are never
    # deleted, so ids grow in commit order and a sync reading "after change N" never skips one.
    next_change = (connection.execute(select(func.max(risk_scores.c.change_id))).scalar() or 0) + 1
    inserts, updates = [], []
    for customer_id, risk, tier in zip(scores["customer_id"], scores["risk"], scores["tier"], strict=True):
        row = {
            "risk": float(risk),
            "tier": str(tier),
            "model_version": model_version,
            "snapshot_built_at": built_at,
            "drivers": drivers.get(customer_id),
        }
        old = existing.get(customer_id)
        if old is not None and all(getattr(old, name) == row[name] for name in COMPARED):
            continue
        row.update(scored_at=now, updated_at=now, change_id=next_change)
        next_change += 1
        if old is None:
            inserts.append({"as_of": as_of, "customer_id": customer_id, **row})
        else:
            updates.append({"key_customer": customer_id, **row})
    if inserts:
        connection.execute(risk_scores.insert(), inserts)
    if updates:
        statement = (
            risk_scores.update()
            .where(risk_scores.c.as_of == as_of, risk_scores.c.customer_id == bindparam("key_customer"))
            .values({name: bindparam(name) for name in (*COMPARED, "scored_at", "updated_at", "change_id")})
        )
        connection.execute(statement, updates)
    return len(inserts) + len(updates)


def write_states(connection: Connection, states: Mapping[str, CustomerState]) -> None:
    """Store each customer's policy state after this scoring."""
    if not states:
        return
    known = {customer_id for (customer_id,) in connection.execute(select(alert_state.c.customer_id))}
    rows = [
        {
            "key_customer": customer_id,
            "armed": state.armed,
            "last_alert_as_of": state.last_alert_as_of,
            "evaluated_as_of": state.evaluated_as_of,
        }
        for customer_id, state in states.items()
    ]
    new = [row for row in rows if row["key_customer"] not in known]
    old = [row for row in rows if row["key_customer"] in known]
    if new:
        connection.execute(alert_state.insert(), [{"customer_id": r.pop("key_customer"), **r} for r in new])
    if old:
        connection.execute(
            alert_state.update()
            .where(alert_state.c.customer_id == bindparam("key_customer"))
            .values(
                armed=bindparam("armed"),
                last_alert_as_of=bindparam("last_alert_as_of"),
                evaluated_as_of=bindparam("evaluated_as_of"),
            ),
            old,
        )


def forget_discarded(connection: Connection, customer_ids: Sequence[str]) -> None:
    """Re-arm customers whose alerts were discarded unsent; their last alert is the last one not discarded."""
    for customer_id in customer_ids:
        last = connection.execute(
            select(func.max(alerts.c.as_of)).where(
                alerts.c.customer_id == customer_id,
                alerts.c.kind.in_([AlertKind.THRESHOLD.value, AlertKind.JUMP.value]),
                alerts.c.state != AlertState.DISCARDED.value,
            )
        ).scalar()
        connection.execute(
            alert_state.update()
            .where(alert_state.c.customer_id == customer_id)
            .values(armed=True, last_alert_as_of=last)
        )


def queue_plan(connection: Connection, plan: AlertPlan, *, now: datetime) -> None:
    """Queue the planned alerts; a digest first, so the alerts it carries can point to it."""
    queue_alerts(connection, plan.individual, now=now)
    queue_alerts(connection, plan.notices, now=now)
    for digest, carried in plan.digests:
        digest_id = _open_digest(connection, digest, now=now)
        queue_alerts(connection, [{**row, "digest_id": digest_id} for row in carried], now=now)
        # The digest lists everything it carries, including alerts an earlier run of the day put in it.
        rows = connection.execute(
            select(alerts.c.alert_id, alerts.c.message)
            .where(alerts.c.digest_id == digest_id)
            .order_by(alerts.c.risk.desc(), alerts.c.alert_id)
        ).all()
        message = {
            **digest["message"],
            "customers": [digest_entry(row.alert_id, row.message) for row in rows],
        }
        connection.execute(alerts.update().where(alerts.c.alert_id == digest_id).values(message=message))


def _open_digest(connection: Connection, digest: dict[str, Any], *, now: datetime) -> int:
    """The owner's digest of the day that has not gone out yet, or a new one after those that have."""
    key = digest["dedupe_key"]
    earlier = connection.execute(
        select(alerts.c.alert_id, alerts.c.state)
        .where(or_(alerts.c.dedupe_key == key, alerts.c.dedupe_key.like(f"{key}#%")))
        .order_by(alerts.c.alert_id)
    ).all()
    for row in earlier:
        if row.state in (AlertState.PENDING.value, AlertState.HELD.value):
            return row.alert_id
    fresh = {**digest, "dedupe_key": f"{key}#{len(earlier) + 1}" if earlier else key}
    return queue_alerts(connection, [fresh], now=now)[fresh["dedupe_key"]]
