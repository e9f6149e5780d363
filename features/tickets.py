"""Support-ticket signals as of a cutoff: how many tickets, how many still open, how support responded.

Point in time: only what happened strictly before ``as_of`` counts. A ticket opened before ``as_of`` and
resolved at or after it is open at ``as_of``; a first response at or after ``as_of`` has not happened yet.
The ``status`` column is the ticket's status today, so it is never read. ``replies``, ``reopened``,
``escalated`` and ``csat`` are outcomes without a timestamp of their own: they are read only for tickets
resolved before ``as_of``, when the outcome is (as near as the data can tell) settled and known. A
rating usually comes days after the resolution, so ``csat`` waits a week longer: a ticket resolved the
day before ``as_of`` could carry a rating given after it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Double, and_, case, cast, func, or_, select

from churn.config import FeaturesConfig
from churn.sql import epoch_seconds, hours_between
from churn.tables import tickets
from features.aggregate import count_where, per_customer, ratio
from features.catalogue import Direction, Feature, Unit
from features.scope import Scope, Signals

FAMILY = "tickets"
# Ticket ratings are read only for tickets resolved at least this long before as_of (see above).
RATING_SETTLE_DAYS = 7

_OPENED = Feature(
    "tickets_opened_{window}d",
    FAMILY,
    "Support tickets opened in the last {window} days",
    Unit.COUNT,
    "Support tickets opened in the last {window} days: {value}",
)
_OPEN = Feature(
    "open_tickets",
    FAMILY,
    "Support tickets opened and not yet resolved",
    Unit.COUNT,
    "Support tickets still open: {value}",
    direction=Direction.RAISES,
)
_OLDEST_OPEN = Feature(
    "oldest_open_ticket_age_days",
    FAMILY,
    "Days the oldest open support ticket has been open",
    Unit.DAYS,
    "The oldest open support ticket has been open for {value}",
    "No support ticket is open",
    direction=Direction.RAISES,
)
_AWAITING = Feature(
    "tickets_awaiting_first_response",
    FAMILY,
    "Open support tickets that have had no reply yet",
    Unit.COUNT,
    "Open support tickets still waiting for a first reply: {value}",
    direction=Direction.RAISES,
)
_MEDIAN_FIRST_RESPONSE = Feature(
    "median_first_response_h_{window}d",
    FAMILY,
    "Median hours to the first reply on tickets opened in the last {window} days",
    Unit.HOURS,
    "Tickets opened in the last {window} days got a first reply after {value} hours (median)",
    "No ticket opened in the last {window} days has had a reply yet",
    direction=Direction.RAISES,
)
_AVG_RESOLUTION = Feature(
    "avg_resolution_h_{window}d",
    FAMILY,
    "Average hours from opening to resolution of tickets resolved in the last {window} days",
    Unit.HOURS,
    "Tickets resolved in the last {window} days took {value} hours on average",
    "No ticket was resolved in the last {window} days",
    direction=Direction.RAISES,
)
_FIRST_CONTACT = Feature(
    "first_contact_resolution_{window}d",
    FAMILY,
    "Share of tickets resolved in the last {window} days with at most one reply",
    Unit.SHARE,
    "{value} of tickets resolved in the last {window} days were solved with a single reply",
    "No resolved ticket with a reply count in the last {window} days",
)
_REOPEN = Feature(
    "reopen_rate_{window}d",
    FAMILY,
    "Share of tickets resolved in the last {window} days that were reopened",
    Unit.SHARE,
    "{value} of tickets resolved in the last {window} days were reopened",
    "No resolved ticket in the last {window} days says whether it was reopened",
    direction=Direction.RAISES,
)
_ESCALATION = Feature(
    "escalation_rate_{window}d",
    FAMILY,
    "Share of tickets resolved in the last {window} days that were escalated",
    Unit.SHARE,
    "{value} of tickets resolved in the last {window} days were escalated",
    "No resolved ticket in the last {window} days says whether it was escalated",
    direction=Direction.RAISES,
)
_HIGH_PRIORITY = Feature(
    "high_priority_share_{window}d",
    FAMILY,
    "Share of tickets opened in the last {window} days with priority {priorities}",
    Unit.SHARE,
    "{value} of tickets opened in the last {window} days were high priority",
    "No ticket opened in the last {window} days",
)
_CSAT = Feature(
    "ticket_csat_{window}d",
    FAMILY,
    "Average rating (1-5) of tickets resolved in the last {window} days, at least a week before",
    Unit.SCORE,
    "Tickets resolved in the last {window} days were rated {value} out of 5 on average",
    "No rated ticket was resolved in the last {window} days",
    direction=Direction.LOWERS,
)
_OPENED_CHANGE = Feature(
    "tickets_opened_{window}d_vs_prev_{window}d",
    FAMILY,
    "Relative change in tickets opened in the last {window} days against the {window} days before",
    Unit.CHANGE,
    "New support tickets {change} in the last {window} days compared with the {window} days before",
    "No ticket in the {window} days before to compare with",
)


def catalogue(config: FeaturesConfig) -> list[Feature]:
    """Every ticket feature for these windows, in the order ``compute`` returns them."""
    longest = max(config.windows_days)
    priorities = ", ".join(config.high_priorities) or "(none configured)"
    # Tickets are sparse (a handful a month), so rates and the trend use the longest window only:
    # over 7 days most rates would rest on one ticket, and a 1 -> 2 ticket "rise of 100%" is noise.
    over_longest = [
        _MEDIAN_FIRST_RESPONSE,
        _AVG_RESOLUTION,
        _FIRST_CONTACT,
        _REOPEN,
        _ESCALATION,
        _HIGH_PRIORITY,
        _CSAT,
        _OPENED_CHANGE,
    ]
    return [
        *(_OPENED.expand(window=w) for w in config.windows_days),
        _OPEN,
        _OLDEST_OPEN,
        _AWAITING,
        *(f.expand(window=longest, priorities=priorities) for f in over_longest),
    ]


def compute(connection: Connection, scope: Scope, config: FeaturesConfig) -> Signals:
    """Ticket features for every customer in scope, as of ``scope.as_of``."""
    features = catalogue(config)
    totals = _totals(connection, scope, config)
    hours = _first_response_hours(connection, scope, max(config.windows_days))
    values = _values(totals, hours, scope, config)
    index = scope.population.index
    frame = pd.DataFrame({f.name: _per_customer(values[f.name], f, index) for f in features}, index=index)
    return Signals(frame, features)


def _values(
    totals: pd.DataFrame, first_response_hours: pd.Series, scope: Scope, config: FeaturesConfig
) -> dict[str, pd.Series]:
    """Each feature per customer, from the SQL aggregates: rates are null when nothing was counted."""
    longest = max(config.windows_days)
    window = f"{longest}d"
    opened, previous = totals[f"opened_{longest}"], totals["opened_previous"]
    return {
        **{f"tickets_opened_{w}d": totals[f"opened_{w}"] for w in config.windows_days},
        "open_tickets": totals["open"],
        "oldest_open_ticket_age_days": (scope.as_of.timestamp() - totals["oldest_open_epoch"]) / 86400.0,
        "tickets_awaiting_first_response": totals["awaiting"],
        f"median_first_response_h_{window}": first_response_hours.groupby(level=0).median(),
        f"avg_resolution_h_{window}": totals["resolution_h"],
        f"first_contact_resolution_{window}": ratio(totals["one_reply"], totals["replies_known"]),
        f"reopen_rate_{window}": ratio(totals["reopened"], totals["reopened_known"]),
        f"escalation_rate_{window}": ratio(totals["escalated"], totals["escalated_known"]),
        f"high_priority_share_{window}": ratio(totals["high_priority"], opened),
        f"ticket_csat_{window}": totals["csat"],
        f"tickets_opened_{window}_vs_prev_{window}": ratio(opened - previous, previous),
    }


def _totals(connection: Connection, scope: Scope, config: FeaturesConfig) -> pd.DataFrame:
    """One row per customer with ticket counts, numerators and denominators, aggregated in SQL."""
    t = tickets.c
    as_of = scope.as_of
    longest = max(config.windows_days)
    window_start = scope.days_before(longest)
    previous_start = scope.days_before(2 * longest)

    resolved_before = and_(t.resolved_at.is_not(None), t.resolved_at < as_of)
    # Resolved at or after as_of is still open at as_of; every row has opened_at < as_of (see where).
    is_open = or_(t.resolved_at.is_(None), t.resolved_at >= as_of)
    resolved_in_window = and_(resolved_before, t.resolved_at >= window_start)
    opened_in_window = t.opened_at >= window_start
    rated = and_(resolved_in_window, t.resolved_at < scope.days_before(RATING_SETTLE_DAYS))
    no_response_yet = or_(t.first_response_at.is_(None), t.first_response_at >= as_of)
    high = func.lower(t.priority).in_([p.lower() for p in config.high_priorities])

    columns: list[ColumnElement[Any]] = [
        count_where(t.opened_at >= scope.days_before(w)).label(f"opened_{w}") for w in config.windows_days
    ]
    columns += [
        count_where(and_(t.opened_at >= previous_start, t.opened_at < window_start)).label("opened_previous"),
        count_where(is_open).label("open"),
        func.min(case((is_open, epoch_seconds(t.opened_at)))).label("oldest_open_epoch"),
        count_where(and_(is_open, no_response_yet)).label("awaiting"),
        func.avg(case((resolved_in_window, hours_between(t.opened_at, t.resolved_at)))).label("resolution_h"),
        count_where(and_(resolved_in_window, t.replies <= 1)).label("one_reply"),
        count_where(and_(resolved_in_window, t.replies.is_not(None))).label("replies_known"),
        count_where(and_(resolved_in_window, t.reopened.is_(True))).label("reopened"),
        count_where(and_(resolved_in_window, t.reopened.is_not(None))).label("reopened_known"),
        count_where(and_(resolved_in_window, t.escalated.is_(True))).label("escalated"),
        count_where(and_(resolved_in_window, t.escalated.is_not(None))).label("escalated_known"),
        count_where(and_(opened_in_window, high)).label("high_priority"),
        # PostgreSQL averages integers as numeric (Decimal); a double is the same on both backends.
        func.avg(case((rated, cast(t.csat, Double)))).label("csat"),
    ]
    relevant = or_(
        t.opened_at >= previous_start,  # counted in a window
        t.resolved_at.is_(None),  # still open
        t.resolved_at >= window_start,  # open at as_of, or resolved in the window
    )
    query = (
        select(t.customer_id, *columns)
        .where(scope.only(t.customer_id), t.opened_at < as_of, relevant)
        .group_by(t.customer_id)
    )
    return per_customer(connection, query)


def _first_response_hours(connection: Connection, scope: Scope, window_days: int) -> pd.Series:
    """Hours to first reply per ticket opened in the window and answered before ``as_of``.

    Median is not portable SQL (PostgreSQL has percentile_cont, SQLite has nothing), so this one
    feature reads per-ticket rows for one window and takes the median in pandas.
    """
    t = tickets.c
    query = select(t.customer_id, hours_between(t.opened_at, t.first_response_at).label("hours")).where(
        scope.only(t.customer_id),
        t.opened_at >= scope.days_before(window_days),
        t.opened_at < scope.as_of,
        t.first_response_at < scope.as_of,
    )
    return per_customer(connection, query)["hours"]


def _per_customer(values: pd.Series, feature: Feature, index: pd.Index) -> pd.Series:
    """One column of the result: every customer in the population, counts 0 where nothing was found."""
    # Rounded so the float noise of SQLite's julianday and PostgreSQL's epoch agree to the digit.
    series = values.reindex(index).astype("float64").round(6)
    return series.fillna(0.0) if feature.unit is Unit.COUNT else series
