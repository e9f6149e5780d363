"""Engagement: how much, how widely and how recently a customer uses the product.

Built from whatever event types the company sends, read from the daily usage rollup: counts per
event type and in total over each window, their change versus the window before, active days,
distinct active users and seat utilisation, breadth of use, recency, and tenure-scaled rates so a
20-day-old account is not "low usage" for having fewer 90-day events than an old one.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, case, func, select

from churn.config import FeaturesConfig
from churn.tables import usage_daily, usage_daily_users
from features.aggregate import count_where, per_customer, ratio, read_frame
from features.catalogue import Direction, Feature, Unit, event_label, feature_slug
from features.scope import Scope, Signals

FAMILY = "engagement"


def _f(
    name: str,
    description: str,
    unit: Unit,
    sentence: str,
    missing: str = "",
    direction: Direction = Direction.LOWERS,
) -> Feature:
    # Engagement is "more use, less risk" unless said otherwise; per-event-type features learn it.
    return Feature(name, FAMILY, description, unit, sentence, missing, direction)


PER_EVENT_TYPE = [
    _f(
        "{event}_events_{window}d",
        "{event_label} events in the last {window} days",
        Unit.COUNT,
        "{value} {event_label} events in the last {window} days",
        direction=Direction.LEARNED,
    ),
    _f(
        "{event}_events_{window}d_vs_prev_{window}d",
        "Change in {event_label} events versus the {window} days before",
        Unit.CHANGE,
        "{event_label} events {change} versus the previous {window} days",
        "No {event_label} events in the {window} days before to compare with",
        direction=Direction.LEARNED,
    ),
]
PER_EVENT_TYPE_ONCE = [
    _f(
        "days_since_last_{event}",
        "Days since the last {event_label} event",
        Unit.DAYS,
        "The last {event_label} event was {value} ago",
        "No {event_label} event in the last {lookback} days",
        direction=Direction.LEARNED,
    ),
]
PER_WINDOW = [
    _f(
        "events_{window}d",
        "Product events in the last {window} days",
        Unit.COUNT,
        "{value} product events in the last {window} days",
    ),
    _f(
        "events_{window}d_vs_prev_{window}d",
        "Change in product events versus the {window} days before",
        Unit.CHANGE,
        "Product usage {change} versus the previous {window} days",
        "Too new, or no usage in the {window} days before, to compare with",
    ),
    _f(
        "events_per_30d_{window}d",
        "Events per 30 days over the last {window} days, counting only days the account existed",
        Unit.COUNT,
        "{value} events per 30 days over the last {window} days (allowing for the account's age)",
    ),
    _f(
        "active_days_{window}d",
        "Days with any product activity in the last {window} days",
        Unit.DAYS,
        "Active on {value} of the last {window} days",
    ),
    _f(
        "active_users_{window}d",
        "Distinct people active in the last {window} days",
        Unit.COUNT,
        "{value} people used the product in the last {window} days",
    ),
    _f(
        "active_users_{window}d_vs_prev_{window}d",
        "Change in active people versus the {window} days before",
        Unit.CHANGE,
        "Active users {change} versus the previous {window} days",
        "Too new, or nobody active in the {window} days before, to compare with",
    ),
    _f(
        "seat_utilization_{window}d",
        "Active people in the last {window} days per paid seat",
        Unit.SHARE,
        "{value} of paid seats were used in the last {window} days",
        "Seat count not known",
    ),
    _f(
        "event_types_used_{window}d",
        "Distinct event types used in the last {window} days",
        Unit.COUNT,
        "Used {value} different kinds of activity in the last {window} days",
    ),
]
ONCE = [
    _f(
        "days_since_last_event",
        "Days since the last product activity",
        Unit.DAYS,
        "The last product activity was {value} ago",
        "No product activity in the last {lookback} days",
        direction=Direction.RAISES,
    ),
]


def catalogue(config: FeaturesConfig, event_types: list[str] | None = None) -> list[Feature]:
    """Engagement features; per-event-type ones as ``{event}`` patterns unless types are given."""
    lookback = config.lookback_days
    features = [f.expand(window=w) for f in PER_WINDOW for w in config.windows_days]
    features += [f.expand(lookback=lookback) for f in ONCE]
    if event_types is None:
        features += [_pattern(f, window=w) for f in PER_EVENT_TYPE for w in config.windows_days]
        features += [_pattern(f, lookback=lookback) for f in PER_EVENT_TYPE_ONCE]
        return features
    slugs = _slugs(event_types)
    for event in event_types:
        named = {"event": slugs[event], "event_label": event_label(event)}
        features += [f.expand(window=w, **named) for f in PER_EVENT_TYPE for w in config.windows_days]
        features += [f.expand(lookback=lookback, **named) for f in PER_EVENT_TYPE_ONCE]
    return features


def compute(connection: Connection, scope: Scope, config: FeaturesConfig) -> Signals:
    """Engagement features for every customer in scope at ``scope.as_of``."""
    excluded = {*config.exclude_event_types, *config.failed_payment_event_types}
    per_type = _per_event_type(connection, scope, config, excluded)
    event_types = _top_event_types(per_type, config)
    features = catalogue(config, event_types)
    index = scope.population.index
    columns: dict[str, pd.Series] = {}  # assembled at the end: one frame, not ~150 inserts
    tenure = scope.population["tenure_days"]
    slugs = _slugs(event_types)
    for event in event_types:
        rows = per_type[per_type["event_type"] == event].set_index("customer_id").reindex(index)
        for window in config.windows_days:
            current = rows[f"w{window}"].fillna(0.0)
            columns[f"{slugs[event]}_events_{window}d"] = current
            columns[f"{slugs[event]}_events_{window}d_vs_prev_{window}d"] = _change(
                current, rows[f"p{window}"].fillna(0.0), tenure, window
            )
        columns[f"days_since_last_{slugs[event]}"] = _days_since(scope, rows["last_day"])
    totals = per_type.groupby("customer_id").sum(numeric_only=True).reindex(index)
    last_day = per_type.groupby("customer_id")["last_day"].max().reindex(index)
    used = per_type.assign(**{f"u{w}": per_type[f"w{w}"] > 0 for w in config.windows_days})
    breadth = used.groupby("customer_id")[[f"u{w}" for w in config.windows_days]].sum().reindex(index)
    days = _active_days(connection, scope, config, excluded).reindex(index)
    users = _active_users(connection, scope, config, excluded).reindex(index)
    seats = pd.to_numeric(scope.population["seats"], errors="coerce").astype("float64")
    for window in config.windows_days:
        current = totals[f"w{window}"].fillna(0.0)
        active_users = users[f"w{window}"].fillna(0.0)
        columns[f"events_{window}d"] = current
        columns[f"events_{window}d_vs_prev_{window}d"] = _change(
            current, totals[f"p{window}"].fillna(0.0), tenure, window
        )
        columns[f"events_per_30d_{window}d"] = current / tenure.clip(lower=1.0, upper=float(window)) * 30.0
        columns[f"active_days_{window}d"] = days[f"w{window}"].fillna(0.0)
        columns[f"active_users_{window}d"] = active_users
        columns[f"active_users_{window}d_vs_prev_{window}d"] = _change(
            active_users, users[f"p{window}"].fillna(0.0), tenure, window
        )
        columns[f"seat_utilization_{window}d"] = ratio(active_users, seats)
        columns[f"event_types_used_{window}d"] = breadth[f"u{window}"].fillna(0.0)
    columns["days_since_last_event"] = _days_since(scope, last_day)
    frame = pd.DataFrame(columns, index=index)[[f.name for f in features]]
    return Signals(frame.astype("float64").round(6), features)


def _windows(scope: Scope, config: FeaturesConfig, day: object, measure: object) -> list[object]:
    """Sums of ``measure`` over each window (w7, w30, ...) and the window before it (p7, p30, ...)."""
    columns = []
    for window in config.windows_days:
        start, before = scope.day - timedelta(days=window), scope.day - timedelta(days=2 * window)
        columns.append(func.sum(case((day >= start, measure), else_=0)).label(f"w{window}"))
        columns.append(
            func.sum(case((and_(day >= before, day < start), measure), else_=0)).label(f"p{window}")
        )
    return columns


def _in_lookback(scope: Scope, config: FeaturesConfig, day: object) -> object:
    return and_(day >= scope.day - timedelta(days=config.lookback_days), day < scope.day)


def _per_event_type(
    connection: Connection, scope: Scope, config: FeaturesConfig, excluded: set[str]
) -> pd.DataFrame:
    """One row per customer and event type: window sums and the last active day."""
    daily = usage_daily
    query = (
        select(
            daily.c.customer_id,
            daily.c.event_type,
            *_windows(scope, config, daily.c.day, daily.c.events),
            func.max(daily.c.day).label("last_day"),
        )
        .where(_in_lookback(scope, config, daily.c.day), scope.only(daily.c.customer_id))
        .group_by(daily.c.customer_id, daily.c.event_type)
    )
    if excluded:
        query = query.where(daily.c.event_type.not_in(sorted(excluded)))
    frame = read_frame(connection, query)
    window_columns = [f"{p}{w}" for w in config.windows_days for p in ("w", "p")]
    if frame.empty:  # typed, so the sums below still have their columns
        sums = {c: pd.Series(dtype="float64") for c in window_columns}
        return pd.DataFrame(
            {"customer_id": [], "event_type": [], **sums, "last_day": pd.Series(dtype="datetime64[ns]")}
        )
    frame[window_columns] = frame[window_columns].astype("float64")
    frame["last_day"] = pd.to_datetime(frame["last_day"].astype(str))
    return frame[frame["customer_id"].isin(scope.population.index)]


def _top_event_types(per_type: pd.DataFrame, config: FeaturesConfig) -> list[str]:
    """The most used event types before as_of (never a fixed list), most used first."""
    if config.max_event_types == 0 or per_type.empty:
        return []
    volume = per_type.groupby("event_type")[f"w{max(config.windows_days)}"].sum()
    volume = volume.add(per_type.groupby("event_type")[f"p{max(config.windows_days)}"].sum())
    volume = volume[volume > 0]
    # Most used first; ties by name, so the same data always gives the same feature set.
    ranked = volume.iloc[np.lexsort((volume.index.to_numpy(dtype=str), -volume.to_numpy()))]
    return list(ranked.index[: config.max_event_types])


def _active_days(
    connection: Connection, scope: Scope, config: FeaturesConfig, excluded: set[str]
) -> pd.DataFrame:
    """Days with any activity per window. Distinct (customer, day) pairs first, then plain counts:
    engines hash a GROUP BY but sort for COUNT(DISTINCT), which is several times slower."""
    daily = usage_daily
    longest = max(config.windows_days)
    days = (
        select(daily.c.customer_id, daily.c.day)
        .where(
            daily.c.day >= scope.day - timedelta(days=longest),
            daily.c.day < scope.day,
            scope.only(daily.c.customer_id),
        )
        .group_by(daily.c.customer_id, daily.c.day)
    )
    if excluded:
        days = days.where(daily.c.event_type.not_in(sorted(excluded)))
    active = days.subquery()
    columns = [
        count_where(active.c.day >= scope.day - timedelta(days=w)).label(f"w{w}") for w in config.windows_days
    ]
    return per_customer(connection, select(active.c.customer_id, *columns).group_by(active.c.customer_id))


def _active_users(
    connection: Connection, scope: Scope, config: FeaturesConfig, excluded: set[str]
) -> pd.DataFrame:
    """Distinct people per window and the window before. Each person's last active day, and last
    active day before each window, come first; counting people is then a plain sum (see above)."""
    users = usage_daily_users
    starts = {w: scope.day - timedelta(days=w) for w in config.windows_days}
    people = (
        select(
            users.c.customer_id,
            func.max(users.c.day).label("last_day"),
            *(func.max(case((users.c.day < starts[w], users.c.day))).label(f"before_{w}") for w in starts),
        )
        .where(_in_lookback(scope, config, users.c.day), scope.only(users.c.customer_id))
        .group_by(users.c.customer_id, users.c.user_id)
    )
    if excluded:
        people = people.where(users.c.event_type.not_in(sorted(excluded)))
    person = people.subquery()
    columns = []
    for w, start in starts.items():
        columns.append(count_where(person.c.last_day >= start).label(f"w{w}"))
        columns.append(
            count_where(person.c[f"before_{w}"] >= scope.day - timedelta(days=2 * w)).label(f"p{w}")
        )
    return per_customer(connection, select(person.c.customer_id, *columns).group_by(person.c.customer_id))


def _change(current: pd.Series, previous: pd.Series, tenure: pd.Series, window: int) -> pd.Series:
    """Relative change versus the window before; unknown when that window predates the account
    (a young account did not "grow" from nothing) or had no activity to compare with."""
    change = ratio(current - previous, previous)
    return change.where(tenure >= 2 * window)


def _days_since(scope: Scope, last_day: pd.Series) -> pd.Series:
    as_of = pd.Timestamp(scope.day)
    return (as_of - pd.to_datetime(last_day)).dt.days.astype("float64")


def _slugs(event_types: list[str]) -> dict[str, str]:
    """Feature-name parts per event type; two types that spell the same get a numbered suffix.

    Suffixes go in name order, not usage order, so a type keeps its feature names from one snapshot
    to the next.
    """
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for event in sorted(event_types):
        slug, n = feature_slug(event), 2
        while slug in taken:
            slug, n = f"{feature_slug(event)}_{n}", n + 1
        taken.add(slug)
        slugs[event] = slug
    return slugs


def _pattern(feature: Feature, **names: object) -> Feature:
    return feature.expand(event="{event}", event_label="{event_label}", **names)
