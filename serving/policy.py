"""The alert policy: which customers a scoring should tell a rep about, and which it should not.

Pure functions over scores and per-customer state, so the live scoring job and the backtest replay
apply exactly the same rules:

- **threshold**: risk crosses ``alerts.threshold`` upward;
- **hysteresis**: after alerting, a customer re-arms only once its risk falls below ``rearm_below``,
  so a risk wobbling around the threshold alerts once, not every day;
- **cooldown**: no second alert within ``cooldown_days`` of the last one;
- **jump**: risk rose by at least ``jump.rise`` within ``jump.within_days`` (a sharp change is news
  even below the threshold);
- **daily cap**: an owner gets at most ``daily_cap_per_owner`` alerts a day, the riskiest first; the
  rest go into one digest (:func:`apply_daily_cap`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta

import pandas as pd

from churn.config import AlertsConfig
from serving.outbox import AlertKind


@dataclass(frozen=True)
class CustomerState:
    """Where a customer stands with the policy after the last scored day it saw."""

    armed: bool = True
    last_alert_as_of: date | None = None
    evaluated_as_of: date | None = None


@dataclass(frozen=True)
class Decision:
    """The policy's verdict for one customer and day: alert, by which rule."""

    customer_id: str
    as_of: date
    kind: AlertKind
    risk: float
    baseline_risk: float | None  # the jump rule's reference: the lowest risk in its window


def decide_day(
    as_of: date,
    risk: Mapping[str, float],
    states: Mapping[str, CustomerState],
    policy: AlertsConfig,
    recent_low: Mapping[str, float] | None = None,
) -> tuple[list[Decision], dict[str, CustomerState]]:
    """Apply the rules to one day's scores; returns the alerts and every scored customer's new state.

    ``recent_low`` is each customer's lowest risk within the jump window before ``as_of``. A day the
    state has already seen (a re-run) or an earlier one (a backfill) decides nothing and changes no state.
    """
    decisions: list[Decision] = []
    updated: dict[str, CustomerState] = {}
    lows = recent_low or {}
    for customer_id, value in risk.items():
        state = states.get(customer_id, CustomerState())
        if state.evaluated_as_of is not None and state.evaluated_as_of >= as_of:
            continue
        decision, state = _decide(customer_id, as_of, float(value), state, policy, lows.get(customer_id))
        if decision is not None:
            decisions.append(decision)
        updated[customer_id] = state
    return decisions, updated


def _decide(
    customer_id: str,
    as_of: date,
    risk: float,
    state: CustomerState,
    policy: AlertsConfig,
    low: float | None,
) -> tuple[Decision | None, CustomerState]:
    armed = state.armed or risk < policy.rearm_below
    cooling = state.last_alert_as_of is not None and (as_of - state.last_alert_as_of) < timedelta(
        days=policy.cooldown_days
    )
    kind: AlertKind | None = None
    if not cooling and armed and risk >= policy.threshold:
        kind = AlertKind.THRESHOLD
    elif not cooling and policy.jump is not None and low is not None and risk - low >= policy.jump.rise:
        kind = AlertKind.JUMP
    if kind is None:
        return None, replace(state, armed=armed, evaluated_as_of=as_of)
    # Alerting disarms while the risk stays at or above the threshold; a jump below it keeps the
    # threshold crossing to come armed (it would be new information: the risk kept rising).
    disarm = risk >= policy.threshold
    return (
        Decision(customer_id, as_of, kind, risk, low if kind is AlertKind.JUMP else None),
        CustomerState(armed=armed and not disarm, last_alert_as_of=as_of, evaluated_as_of=as_of),
    )


def lowest_recent_risk(history: pd.DataFrame, as_of: date, within_days: int) -> dict[str, float]:
    """Each customer's lowest risk in ``[as_of - within_days, as_of)`` (rows: customer_id, as_of, risk)."""
    if history.empty:
        return {}
    start = as_of - timedelta(days=within_days)
    window = history[(history["as_of"] >= start) & (history["as_of"] < as_of)]
    return window.groupby("customer_id")["risk"].min().to_dict()


@dataclass(frozen=True)
class CappedDecisions:
    """One day's alerts split into those sent on their own and, per owner, those told in a digest."""

    individual: list[Decision]
    digests: dict[str, list[Decision]]


def apply_daily_cap(
    decisions: Iterable[Decision],
    owner_of: Mapping[str, str | None],
    cap: int,
    already_sent: Mapping[str, int] | None = None,
) -> CappedDecisions:
    """Keep each owner's riskiest ``cap`` alerts of the day (minus those already sent); digest the rest.

    Customers without an owner share one budget (the key ``""``), so an unowned book cannot flood
    the default channel either.
    """
    sent = dict(already_sent or {})
    by_owner: dict[str, list[Decision]] = {}
    for decision in decisions:
        by_owner.setdefault(owner_of.get(decision.customer_id) or "", []).append(decision)
    individual: list[Decision] = []
    digests: dict[str, list[Decision]] = {}
    for owner, owned in by_owner.items():
        owned.sort(key=lambda d: (-d.risk, d.customer_id))
        room = max(cap - sent.get(owner, 0), 0)
        individual.extend(owned[:room])
        if owned[room:]:
            digests[owner] = owned[room:]
    return CappedDecisions(individual=individual, digests=digests)


def replay_policy(scores: pd.DataFrame, policy: AlertsConfig, *, warm_start: bool = True) -> list[Decision]:
    """Run the policy day by day over a (customer_id, as_of, risk) frame; every decision, in order.

    With ``warm_start`` the first day only sets the state (customers already above the threshold
    count as already alerted), so the figures describe the policy in steady state rather than the
    burst of switching it on.
    """
    days = sorted(scores["as_of"].unique())
    states: dict[str, CustomerState] = {}
    decisions: list[Decision] = []
    history = scores[["customer_id", "as_of", "risk"]]
    for position, day in enumerate(days):
        today = scores[scores["as_of"] == day]
        risk = dict(zip(today["customer_id"], today["risk"], strict=True))
        if position == 0 and warm_start:
            states = {
                customer_id: CustomerState(
                    armed=value < policy.threshold,
                    last_alert_as_of=None if value < policy.threshold else day,
                    evaluated_as_of=day,
                )
                for customer_id, value in risk.items()
            }
            continue
        lows = lowest_recent_risk(history, day, policy.jump.within_days) if policy.jump else None
        made, changed = decide_day(day, risk, states, policy, lows)
        decisions.extend(made)
        states.update(changed)
    return decisions
