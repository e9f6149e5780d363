"""Who and when a feature job covers: the as_of cutoff and the customers active at it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, true

from churn.tables import customers, subscriptions
from features.aggregate import read_frame
from features.catalogue import Feature


@dataclass(frozen=True)
class Scope:
    """A feature job's cutoff and population.

    ``as_of`` is midnight UTC of a day: a fact counts only if it happened before it. ``population`` is
    indexed by customer_id with the columns of ``active_customers``. ``customer_ids`` narrows every
    query (one customer's features on demand).
    """

    as_of: datetime
    population: pd.DataFrame
    customer_ids: tuple[str, ...] | None = None

    @property
    def day(self) -> date:
        return self.as_of.date()

    def days_before(self, days: int) -> datetime:
        return self.as_of - timedelta(days=days)

    def only(self, column: ColumnElement[Any]) -> ColumnElement[bool]:
        """The filter that keeps a query to the customers in scope."""
        return true() if self.customer_ids is None else column.in_(self.customer_ids)


@dataclass(frozen=True)
class Signals:
    """What a family computed: one row per customer (index customer_id) and the features it holds."""

    frame: pd.DataFrame
    features: list[Feature]


def as_of_instant(day: date) -> datetime:
    """The cutoff for a day: its first instant, midnight UTC."""
    return datetime.combine(day, time(), tzinfo=UTC)


def active_customers(
    connection: Connection, as_of: datetime, customer_ids: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Customers a subscription covers at ``as_of``, with what the account looks like then.

    Only subscriptions that started before ``as_of`` are read, and an end date after ``as_of`` is
    ignored: a subscription change after the cutoff is invisible. Columns: segment, plan, seats, mrr,
    billing_period, period_started_at (the running subscription's start), first_started_at, tenure_days.
    """
    started = subscriptions.c.started_at < as_of
    running = and_(started, or_(subscriptions.c.ended_at.is_(None), subscriptions.c.ended_at > as_of))
    scope = true() if customer_ids is None else subscriptions.c.customer_id.in_(customer_ids)
    # Several running subscriptions (add-ons) add up; the newest one gives plan and billing period.
    newest = (
        select(
            subscriptions.c.customer_id,
            subscriptions.c.plan,
            subscriptions.c.billing_period,
            subscriptions.c.started_at,
            func.row_number()
            .over(
                partition_by=subscriptions.c.customer_id,
                order_by=(subscriptions.c.started_at.desc(), subscriptions.c.subscription_id.desc()),
            )
            .label("rank"),
        )
        .where(running, scope)
        .subquery()
    )
    totals = (
        select(
            subscriptions.c.customer_id,
            func.sum(subscriptions.c.mrr).label("mrr"),
            func.sum(subscriptions.c.seats).label("seats"),
        )
        .where(running, scope)
        .group_by(subscriptions.c.customer_id)
        .subquery()
    )
    first = (
        select(subscriptions.c.customer_id, func.min(subscriptions.c.started_at).label("first_started_at"))
        .where(started, scope)
        .group_by(subscriptions.c.customer_id)
        .subquery()
    )
    query = (
        select(
            customers.c.customer_id,
            customers.c.segment,
            func.coalesce(newest.c.plan, customers.c.plan).label("plan"),
            func.coalesce(totals.c.seats, customers.c.seats).label("seats"),
            totals.c.mrr,
            newest.c.billing_period,
            newest.c.started_at.label("period_started_at"),
            first.c.first_started_at,
            customers.c.created_at,
        )
        .join(totals, totals.c.customer_id == customers.c.customer_id)
        .join(newest, and_(newest.c.customer_id == customers.c.customer_id, newest.c.rank == 1))
        .join(first, first.c.customer_id == customers.c.customer_id)
        .order_by(customers.c.customer_id)
    )
    frame = read_frame(connection, query)
    if frame.empty:
        return pd.DataFrame(
            columns=[c.name for c in query.selected_columns if c.name != "customer_id"] + ["tenure_days"],
            index=pd.Index([], name="customer_id"),
        )
    frame = frame.set_index("customer_id")
    # A customer record created after its first subscription started is a CRM artefact: the
    # relationship began with the first paid period.
    started_at = pd.to_datetime(frame["first_started_at"], utc=True)
    created_at = pd.to_datetime(frame["created_at"], utc=True)
    # created_at in the future of as_of is a fact not yet known: fall back to the first subscription.
    created_at = created_at.where(created_at < as_of)
    since = pd.concat([started_at, created_at], axis=1).min(axis=1)
    frame["tenure_days"] = ((as_of - since).dt.total_seconds() / 86400.0).astype("float64")
    return frame.drop(columns=["created_at"])
