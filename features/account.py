"""Account: who the customer is and what it pays — tenure, plan, segment, seats, MRR and its change,
days to renewal, and failed payments where the company sends them.

Everything is as of the cutoff: the plan and MRR of the subscriptions running then, and the
renewal date that follows from the running period's start and billing period.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, case, func, or_, select

from churn.config import FeaturesConfig
from churn.tables import subscriptions, usage_daily
from features.aggregate import per_customer, ratio
from features.catalogue import Feature, Unit
from features.scope import Scope, Signals

FAMILY = "account"
PERIOD_MONTHS = {"monthly": 1, "quarterly": 3, "annual": 12}


def _f(name: str, description: str, unit: Unit, sentence: str, missing: str = "") -> Feature:
    return Feature(name, FAMILY, description, unit, sentence, missing)


STATIC = [
    _f("tenure_days", "Days since the customer started", Unit.DAYS, "Customer for {value}"),
    _f("segment", "Customer segment", Unit.CATEGORY, "Segment: {value}", "Segment not known"),
    _f("plan", "Plan of the running subscription", Unit.CATEGORY, "On the {value} plan", "Plan not known"),
    _f("seats", "Paid seats", Unit.COUNT, "{value} paid seats", "Seat count not known"),
    _f("mrr", "Monthly recurring revenue", Unit.MONEY, "Pays {value} a month"),
    _f(
        "billing_period",
        "How often the subscription renews",
        Unit.CATEGORY,
        "Billed {value}",
        "Billing period not known",
    ),
    _f(
        "days_to_renewal",
        "Days until the running subscription renews",
        Unit.DAYS,
        "Renews in {value}",
        "Renewal date not known",
    ),
]
PER_LONGEST_WINDOW = [
    _f(
        "mrr_change_{window}d",
        "Change in monthly recurring revenue versus {window} days ago",
        Unit.CHANGE,
        "Monthly revenue {change} versus {window} days ago",
        "Not a paying customer {window} days ago",
    ),
]
PER_WINDOW_PAYMENTS = [
    _f(
        "failed_payments_{window}d",
        "Failed payments in the last {window} days",
        Unit.COUNT,
        "{value} failed payments in the last {window} days",
        "Failed payments are not reported",
    ),
]


def catalogue(config: FeaturesConfig) -> list[Feature]:
    """Account features for this configuration."""
    longest = max(config.windows_days)
    features = list(STATIC) + [f.expand(window=longest) for f in PER_LONGEST_WINDOW]
    if config.failed_payment_event_types:
        features += [f.expand(window=w) for f in PER_WINDOW_PAYMENTS for w in config.windows_days]
    return features


def compute(connection: Connection, scope: Scope, config: FeaturesConfig) -> Signals:
    """Account features for every customer in scope at ``scope.as_of``."""
    features = catalogue(config)
    population = scope.population
    frame = pd.DataFrame(index=population.index)
    frame["tenure_days"] = population["tenure_days"].astype("float64").round(6)
    for column in ("segment", "plan", "billing_period"):
        frame[column] = population[column].astype(object).where(population[column].notna(), None)
    frame["seats"] = pd.to_numeric(population["seats"], errors="coerce").astype("float64")
    frame["mrr"] = population["mrr"].astype("float64").round(6)
    longest = max(config.windows_days)
    earlier = _mrr_at(connection, scope, scope.days_before(longest)).reindex(frame.index)
    frame[f"mrr_change_{longest}d"] = ratio(frame["mrr"] - earlier, earlier).round(6)
    frame["days_to_renewal"] = _days_to_renewal(scope, population)
    if config.failed_payment_event_types:
        failed = _failed_payments(connection, scope, config)
        for window in config.windows_days:
            counts = np.nan if failed is None else failed[f"w{window}"].reindex(frame.index).fillna(0.0)
            frame[f"failed_payments_{window}d"] = counts
    return Signals(frame[[f.name for f in features]], features)


def _mrr_at(connection: Connection, scope: Scope, moment: object) -> pd.Series:
    """Monthly revenue of the subscriptions running at an earlier moment (as known at as_of)."""
    running = and_(
        subscriptions.c.started_at < moment,
        or_(subscriptions.c.ended_at.is_(None), subscriptions.c.ended_at > moment),
    )
    query = (
        select(subscriptions.c.customer_id, func.sum(subscriptions.c.mrr))
        .where(running, scope.only(subscriptions.c.customer_id))
        .group_by(subscriptions.c.customer_id)
    )
    rows = connection.execute(query).all()
    return pd.Series(dict(rows), dtype="float64")


def _days_to_renewal(scope: Scope, population: pd.DataFrame) -> pd.Series:
    """Days from as_of to the next anniversary of the running period, by its billing period."""
    started = pd.to_datetime(population["period_started_at"], utc=True)
    months = population["billing_period"].map(PERIOD_MONTHS).astype("float64")
    as_of = pd.Timestamp(scope.as_of)

    def months_after_start(count: pd.Series) -> pd.Series:
        # Calendar months (31 Jan + 1 month = 28/29 Feb): one offset per distinct count.
        moments = pd.Series(pd.NaT, index=population.index, dtype="datetime64[ns, UTC]")
        for n in count.dropna().unique():
            mask = count == n
            moments[mask] = started[mask] + pd.DateOffset(months=int(n))
        return moments

    elapsed = (as_of.year - started.dt.year) * 12 + (as_of.month - started.dt.month)
    periods = (elapsed // months) * months  # the anniversary in or before as_of's month
    renewal = months_after_start(periods)
    renewal = renewal.where(renewal > as_of, months_after_start(periods + months))
    return ((renewal - as_of).dt.total_seconds() / 86400.0).round(6)


def _failed_payments(connection: Connection, scope: Scope, config: FeaturesConfig) -> pd.DataFrame | None:
    """Failed payments per window; None when the company has never sent such events ("not known")."""
    types = sorted(config.failed_payment_event_types)
    daily = usage_daily
    sent = connection.execute(
        select(daily.c.day).where(daily.c.event_type.in_(types), daily.c.day < scope.day).limit(1)
    ).first()
    if sent is None:
        return None
    longest = max(config.windows_days)
    columns = [
        func.sum(case((daily.c.day >= scope.day - timedelta(days=w), daily.c.events), else_=0)).label(f"w{w}")
        for w in config.windows_days
    ]
    query = (
        select(daily.c.customer_id, *columns)
        .where(
            daily.c.event_type.in_(types),
            daily.c.day >= scope.day - timedelta(days=longest),
            daily.c.day < scope.day,
            scope.only(daily.c.customer_id),
        )
        .group_by(daily.c.customer_id)
    )
    return per_customer(connection, query)
