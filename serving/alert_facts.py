"""What an alert says besides the risk: the account, and what changed since the comparison scoring."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from churn.config import ProductConfig
from churn.tables import customers
from features.snapshot import load_snapshots
from serving.alerting import CustomerFacts
from serving.policy import Decision
from training.explain import explain_change
from training.likely_reason import LikelyReasonModel, describe_reason
from training.model import ChurnModel


def gather_facts(
    connection: Connection,
    model: ChurnModel,
    features: pd.DataFrame,
    scores: pd.DataFrame,
    history: pd.DataFrame,
    drivers: dict[str, dict[str, Any]],
    decisions: list[Decision],
    as_of: date,
    config: ProductConfig,
    likely_reason: LikelyReasonModel | None = None,
) -> dict[str, CustomerFacts]:
    """The account facts, the change since the comparison scoring and (with a model) the likely reason,
    for the customers who alert."""
    wanted = [d.customer_id for d in decisions]
    if not wanted:
        return {}
    accounts = {
        row.customer_id: row
        for row in connection.execute(
            select(
                customers.c.customer_id, customers.c.name, customers.c.segment, customers.c.owner_email
            ).where(customers.c.customer_id.in_(wanted))
        )
    }
    compared = _comparison_points(history, wanted, as_of, config.alerts.change_window_days)
    current = features.set_index("customer_id", drop=False)
    tier = dict(zip(scores["customer_id"], scores["tier"], strict=True))
    change = _change_drivers(connection, model, current, compared, config.scoring.top_drivers)
    reasons = _likely_reasons(likely_reason, current.loc[wanted].reset_index(drop=True), config)
    facts = {}
    for customer_id in wanted:
        account = accounts.get(customer_id)
        row = current.loc[customer_id]
        previous = compared.get(customer_id)
        facts[customer_id] = CustomerFacts(
            customer_id=customer_id,
            name=account.name if account else None,
            segment=account.segment if account else None,
            owner_email=account.owner_email if account else None,
            tier=str(tier[customer_id]),
            mrr=_number(row.get("mrr")),
            days_to_renewal=_number(row.get("days_to_renewal")),
            previous_risk=previous[1] if previous else None,
            previous_as_of=previous[0] if previous else None,
            drivers=drivers.get(customer_id, {}),
            change_drivers=change.get(customer_id, []),
            likely_reason=reasons.get(customer_id),
        )
    return facts


def _comparison_points(
    history: pd.DataFrame, wanted: list[str], as_of: date, window_days: int
) -> dict[str, tuple[date, float]]:
    """Per customer, the scoring to compare with: the latest ``window_days`` or more before, else the last."""
    if history.empty:
        return {}
    rows = history[history["customer_id"].isin(wanted)].sort_values(["customer_id", "as_of"])
    cutoff = as_of - timedelta(days=window_days)
    points = {}
    for customer_id, group in rows.groupby("customer_id", sort=False):
        old_enough = group[group["as_of"] <= cutoff]
        pick = old_enough.iloc[-1] if len(old_enough) else group.iloc[-1]
        points[str(customer_id)] = (pick["as_of"], float(pick["risk"]))
    return points


def _change_drivers(
    connection: Connection,
    model: ChurnModel,
    current: pd.DataFrame,
    compared: dict[str, tuple[date, float]],
    top: int,
) -> dict[str, list[dict[str, Any]]]:
    by_day: dict[date, list[str]] = {}
    for customer_id, (day, _risk) in compared.items():
        by_day.setdefault(day, []).append(customer_id)
    found: dict[str, list[dict[str, Any]]] = {}
    for day, ids in by_day.items():
        before = load_snapshots(connection, [day], ids)
        if before.empty:
            continue
        after = current.loc[before["customer_id"]].reset_index(drop=True)
        for customer_id, drivers in zip(
            before["customer_id"], explain_change(model, after, before, top), strict=True
        ):
            found[customer_id] = [d.as_dict() for d in drivers]
    return found


def _likely_reasons(
    model: LikelyReasonModel | None, rows: pd.DataFrame, config: ProductConfig
) -> dict[str, dict[str, Any]]:
    """The likely reason of each alerted customer (only theirs: a handful of rows, not the whole day)."""
    if model is None or rows.empty:
        return {}
    found = model.predict(rows)
    return {
        row.customer_id: describe_reason(row.code, row.probability, model, config)
        for row in found.itertuples(index=False)
    }


def _number(value: object) -> float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value):
        return None
    return float(value)
