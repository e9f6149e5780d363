"""Policy replay: what the alert policy would have sent over the backtest, and how much of it was right.

The model's out-of-time backtest scores go through the same policy the live scoring applies
(:mod:`serving.policy`), day by day, with each owner's daily cap. Every figure is then judged
against what really happened: an alert is right when the customer churned within the horizon
after it, and a churner was caught when an alert came within the horizon before the churn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from churn.config import AlertsConfig
from churn.errors import UserFacingError
from churn.settings import Settings
from churn.tables import customers
from serving.policy import Decision, apply_daily_cap, replay_policy
from training.registry import run_of
from training.tracking import read_evaluation, read_predictions


class ReplayError(UserFacingError):
    """A replay that cannot run on the given model or period."""


@dataclass(frozen=True)
class Replay:
    """The policy's alerts over a period: overall, per week and per owner."""

    overall: dict[str, Any]
    by_week: list[dict[str, Any]]
    by_owner: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "by_week": self.by_week, "by_owner": self.by_owner}


def replay_alerts(
    predictions: pd.DataFrame,
    owners: Mapping[str, str | None],
    policy: AlertsConfig,
    *,
    horizon_days: int,
    start: date | None = None,
    end: date | None = None,
    risk_column: str = "lightgbm",
) -> Replay:
    """Run ``policy`` over out-of-time ``predictions`` (customer_id, as_of, churned, churned_at, risk)."""
    if "as_of" not in predictions.columns or "customer_id" not in predictions.columns:
        raise ReplayError(
            "this model was trained on a table without customer ids and dates: nothing to replay"
        )
    rows = predictions[["customer_id", "as_of", "churned", "churned_at", risk_column]].rename(
        columns={risk_column: "risk"}
    )
    first, last = min(rows["as_of"]), max(rows["as_of"])
    start, end = start or first, end or last
    if start > end:
        raise ReplayError(f"--from {start} is after --to {end}")
    rows = rows[(rows["as_of"] >= start) & (rows["as_of"] <= end)]
    if rows["as_of"].nunique() < 2:
        raise ReplayError(
            f"the backtest has {rows['as_of'].nunique()} scored day(s) between {start} and {end} "
            f"(it covers {first} to {last}): a replay needs at least two"
        )
    decisions = replay_policy(rows, policy)
    alerts = _capped(decisions, owners, policy.daily_cap_per_owner)
    alerts = alerts.merge(rows[["customer_id", "as_of", "churned"]], on=["customer_id", "as_of"], how="left")
    alerts["owner"] = alerts["customer_id"].map(lambda c: owners.get(c) or "no owner")
    days = sorted(rows["as_of"].unique())
    weeks = max((days[-1] - days[0]).days / 7, 1.0)
    caught, churners = _caught(rows, alerts, horizon_days)
    lead = caught["lead_days"].to_numpy(dtype="float64")
    overall = {
        "from": days[0].isoformat(),
        "to": days[-1].isoformat(),
        "scored_days": len(days),
        # The cadence the rules ran at: the daily cap and jumps mean less on a fortnightly backtest.
        "days_between_scorings": float(np.median(np.diff([d.toordinal() for d in days]))),
        "customers": int(rows["customer_id"].nunique()),
        "threshold": policy.threshold,
        "alerts": len(alerts),
        "in_digests": int((~alerts["individual"]).sum()) if len(alerts) else 0,
        "alerts_per_week": round(len(alerts) / weeks, 2),
        "precision": _share(alerts["churned"].sum(), len(alerts)),
        # The baseline beside precision: alerting on customers at random would be right this often.
        "base_rate": _share(rows["churned"].sum(), len(rows)),
        "churners": churners,
        "churners_alerted": len(caught),
        "recall": _share(len(caught), churners),
        "median_lead_days": round(float(np.median(lead)), 1) if len(lead) else None,
        "horizon_days": horizon_days,
    }
    return Replay(overall=overall, by_week=_by_week(alerts, days), by_owner=_by_owner(alerts, weeks))


def replay_model(
    settings: Settings,
    engine: Engine,
    policy: AlertsConfig,
    *,
    version: str | None = None,
    run_id: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> tuple[Replay, str | None]:
    """Replay ``policy`` over a model's backtest (a version, a run, or the champion); with its version."""
    if run_id is None:
        run_id, version = run_of(settings, version)
    evaluation = read_evaluation(settings, run_id)
    with engine.connect() as connection:
        owners = dict(connection.execute(select(customers.c.customer_id, customers.c.owner_email)).all())
    replay = replay_alerts(
        read_predictions(settings, run_id),
        owners,
        policy,
        horizon_days=int(evaluation.dataset["horizon_days"]),
        start=start,
        end=end,
    )
    return replay, version


def _capped(decisions: list[Decision], owners: Mapping[str, str | None], cap: int) -> pd.DataFrame:
    """Every alert the policy raised, marked whether it went out on its own or in the owner's digest."""
    rows = []
    by_day: dict[date, list[Decision]] = {}
    for decision in decisions:
        by_day.setdefault(decision.as_of, []).append(decision)
    for day, made in sorted(by_day.items()):
        capped = apply_daily_cap(made, owners, cap)
        rows += [(d.customer_id, day, d.kind.value, d.risk, True) for d in capped.individual]
        rows += [
            (d.customer_id, day, d.kind.value, d.risk, False) for ds in capped.digests.values() for d in ds
        ]
    return pd.DataFrame(rows, columns=["customer_id", "as_of", "kind", "risk", "individual"])


def _caught(rows: pd.DataFrame, alerts: pd.DataFrame, horizon_days: int) -> tuple[pd.DataFrame, int]:
    """Churns in the period, and for those alerted within the horizon before, the lead time in days."""
    churns = rows[(rows["churned"] == 1) & rows["churned_at"].notna()].drop_duplicates(
        ["customer_id", "churned_at"]
    )
    churns = churns[["customer_id", "churned_at"]]
    if alerts.empty or churns.empty:
        return pd.DataFrame(columns=["customer_id", "churned_at", "lead_days"]), len(churns)
    pairs = churns.merge(alerts[["customer_id", "as_of"]], on="customer_id")
    alerted_at = pd.to_datetime(pairs["as_of"]).dt.tz_localize("UTC")
    pairs["lead_days"] = (pairs["churned_at"] - alerted_at) / pd.Timedelta(days=1)
    within = pairs[(pairs["lead_days"] > 0) & (pairs["lead_days"] <= horizon_days)]
    first = within.groupby(["customer_id", "churned_at"], as_index=False)["lead_days"].max()
    return first, len(churns)


def _by_week(alerts: pd.DataFrame, days: list[date]) -> list[dict[str, Any]]:
    starts = sorted({day - timedelta(days=day.weekday()) for day in days})
    week_of = alerts["as_of"].map(lambda d: d - timedelta(days=d.weekday())) if len(alerts) else pd.Series([])
    out = []
    for week in starts:
        chosen = alerts[week_of == week] if len(alerts) else alerts
        out.append(
            {
                "week": week.isoformat(),
                "alerts": len(chosen),
                "churned": int(chosen["churned"].sum()) if len(chosen) else 0,
                "precision": _share(chosen["churned"].sum() if len(chosen) else 0, len(chosen)),
            }
        )
    return out


def _by_owner(alerts: pd.DataFrame, weeks: float) -> list[dict[str, Any]]:
    if alerts.empty:
        return []
    grouped = alerts.groupby("owner").agg(alerts=("customer_id", "size"), churned=("churned", "sum"))
    grouped = grouped.sort_values(["alerts", "churned"], ascending=False)
    return [
        {
            "owner": owner,
            "alerts": int(row.alerts),
            "alerts_per_week": round(row.alerts / weeks, 2),
            "churned": int(row.churned),
            "precision": _share(row.churned, row.alerts),
        }
        for owner, row in grouped.iterrows()
    ]


def percent(value: float | None) -> str:
    """A share as people read it, or a dash when it could not be measured (no alerts, no churners)."""
    return "—" if value is None else f"{value:.0%}"


def _share(part: float, whole: float) -> float | None:
    return None if not whole else round(float(part) / float(whole), 4)
