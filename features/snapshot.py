"""Feature snapshots: one row of features per active customer per as_of, built in the database.

A snapshot is written once and kept: facts that arrive later only change snapshots built after they
arrive (``rebuild`` replaces one on purpose). Each as_of is written in one transaction, so a crash
leaves either the whole snapshot or none of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import ModuleType

import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select

from churn.config import FeaturesConfig
from churn.db import WRITES
from churn.errors import UserFacingError
from churn.sql import use_work_mem
from churn.tables import customers, feature_snapshots, snapshot_runs, subscriptions
from features import account, engagement, satisfaction, tickets
from features.catalogue import Feature, Unit, event_label
from features.rollup import RollupSummary, refresh_usage_rollup
from features.scope import Scope, Signals, active_customers, as_of_instant

FAMILIES: dict[str, ModuleType] = {
    "engagement": engagement,
    "tickets": tickets,
    "satisfaction": satisfaction,
    "account": account,
}
# Rows per INSERT batch: bounds memory for large customer bases.
_WRITE_BATCH = 10_000


class FeatureError(UserFacingError):
    """A feature job that cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class SnapshotRun:
    """What building one as_of did."""

    as_of: date
    customers: int
    features: int
    seconds: float
    skipped: bool = False


@dataclass(frozen=True)
class BuildSummary:
    rollup: RollupSummary
    runs: list[SnapshotRun]


def catalogue(config: FeaturesConfig) -> list[Feature]:
    """Every feature the configured families produce (engagement per event type as patterns)."""
    return [f for name in config.families for f in FAMILIES[name].catalogue(config)]


def check_as_of(connection: Connection, day: date, *, today: date) -> None:
    """Refuse an as_of the data cannot answer for: in the future, or before any customer was active."""
    if day > today:
        raise FeatureError(f"--as-of {day}: is in the future (today is {today} UTC)")
    has_customers = connection.execute(select(customers.c.customer_id).limit(1)).first()
    if has_customers is None:
        raise FeatureError("the database has no customers yet: import data first (churn ingest, churn demo)")
    first = connection.execute(select(func.min(subscriptions.c.started_at))).scalar_one()
    if first is None:
        raise FeatureError("no subscriptions imported yet, so no customer is active: import them first")
    if as_of_instant(day) <= first:
        raise FeatureError(
            f"--as-of {day}: is before any data (the first subscription starts on {first.date()})"
        )


def check_days(engine: Engine, days: Sequence[date], *, today: date) -> None:
    """Refuse the whole request if any day cannot be built, before any work starts."""
    with engine.connect() as connection:
        for day in days:
            check_as_of(connection, day, today=today)


def compute_features(
    connection: Connection, day: date, config: FeaturesConfig, customer_ids: Sequence[str] | None = None
) -> Signals:
    """Every configured family's features for the customers active at the start of ``day``."""
    as_of = as_of_instant(day)
    ids = tuple(customer_ids) if customer_ids is not None else None
    scope = Scope(as_of=as_of, population=active_customers(connection, as_of, ids), customer_ids=ids)
    frames, features = [], []
    for name in config.families:
        signals = FAMILIES[name].compute(connection, scope, config)
        frames.append(signals.frame)
        features.extend(signals.features)
    return Signals(pd.concat(frames, axis=1), features)


def build_snapshots(
    engine: Engine,
    days: Sequence[date],
    config: FeaturesConfig,
    *,
    now: datetime,
    rebuild: bool = False,
    on_progress: Callable[[SnapshotRun], None] | None = None,
) -> BuildSummary:
    """Bring the usage rollup up to date, then build each as_of not built yet (or all, to ``rebuild``)."""
    check_days(engine, days, today=now.date())
    rollup = refresh_usage_rollup(engine, work_mem_mb=config.work_mem_mb)
    built = set() if rebuild else set(built_days(engine))
    runs = []
    for day in days:
        if day in built:
            run = SnapshotRun(as_of=day, customers=0, features=0, seconds=0.0, skipped=True)
        else:
            run = _build_one(engine, day, config, now=now)
        runs.append(run)
        if on_progress:
            on_progress(run)
    return BuildSummary(rollup=rollup, runs=runs)


def _build_one(engine: Engine, day: date, config: FeaturesConfig, *, now: datetime) -> SnapshotRun:
    started = time.perf_counter()
    with engine.connect() as connection, connection.begin():
        use_work_mem(connection, config.work_mem_mb)
        signals = compute_features(connection, day, config)
    if signals.frame.empty:
        raise FeatureError(f"--as-of {day}: no customer was active that day (no subscription covers it)")
    rows = _value_rows(signals.frame)
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        connection.execute(delete(feature_snapshots).where(feature_snapshots.c.as_of == day))
        connection.execute(delete(snapshot_runs).where(snapshot_runs.c.as_of == day))
        for start in range(0, len(rows), _WRITE_BATCH):
            batch = rows[start : start + _WRITE_BATCH]
            connection.execute(
                insert(feature_snapshots), [{"as_of": day, "customer_id": c, "features": f} for c, f in batch]
            )
        connection.execute(
            insert(snapshot_runs).values(
                as_of=day,
                built_at=now,
                customers=len(rows),
                feature_names=[f.name for f in signals.features],
                config_digest=config_digest(config),
                seconds=time.perf_counter() - started,
            )
        )
    seconds = time.perf_counter() - started
    return SnapshotRun(as_of=day, customers=len(rows), features=len(signals.features), seconds=seconds)


def _value_rows(frame: pd.DataFrame) -> list[tuple[str, list[object]]]:
    """One JSON array of values per customer, in the order of the snapshot's feature names.

    The names are stored once per snapshot (``snapshot_runs``) instead of in every row, which keeps
    each row a few hundred bytes rather than kilobytes; unknown values are null.
    """
    values = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return list(zip(frame.index.tolist(), values, strict=True))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: object) -> object:
    """JSON-friendly Python values: whole numbers as int, for display."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if hasattr(value, "item") else value


def config_digest(config: FeaturesConfig) -> str:
    """A fingerprint of the feature settings a snapshot was built with."""
    return hashlib.sha256(json.dumps(config.model_dump(), sort_keys=True).encode()).hexdigest()


def built_days(engine: Engine) -> list[date]:
    """The as_of days that have a snapshot, oldest first."""
    with engine.connect() as connection:
        return built_days_in(connection)


def built_days_in(connection: Connection) -> list[date]:
    """The as_of days that have a snapshot, oldest first, read on an open connection."""
    query = select(snapshot_runs.c.as_of).order_by(snapshot_runs.c.as_of)
    return list(connection.execute(query).scalars())


def snapshot_runs_frame(connection: Connection) -> pd.DataFrame:
    """One row per built snapshot: as_of, built_at, customers, features, seconds."""
    rows = connection.execute(select(snapshot_runs).order_by(snapshot_runs.c.as_of)).mappings().all()
    frame = pd.DataFrame(rows, columns=[c.name for c in snapshot_runs.columns])
    frame["features"] = frame.pop("feature_names").map(len)
    return frame


def load_snapshots(
    connection: Connection, days: Sequence[date], customer_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Stored features for the given as_of days: columns customer_id, as_of, then every feature.

    Days built with different feature sets (a new event type appeared) line up by name; a feature a
    day does not have is unknown (NaN) there.
    """
    runs = connection.execute(
        select(snapshot_runs.c.as_of, snapshot_runs.c.feature_names)
        .where(snapshot_runs.c.as_of.in_(list(days)))
        .order_by(snapshot_runs.c.as_of)
    ).all()
    frames = []
    for as_of, names in runs:
        query = select(feature_snapshots.c.customer_id, feature_snapshots.c.features).where(
            feature_snapshots.c.as_of == as_of
        )
        if customer_ids is not None:
            query = query.where(feature_snapshots.c.customer_id.in_(list(customer_ids)))
        rows = connection.execute(query.order_by(feature_snapshots.c.customer_id)).all()
        values = pd.DataFrame([row.features for row in rows], columns=names)
        keys = pd.DataFrame({"customer_id": [row.customer_id for row in rows], "as_of": as_of})
        frames.append(pd.concat([keys, values], axis=1))
    if not frames:
        return pd.DataFrame(columns=["customer_id", "as_of"])
    return pd.concat(frames, ignore_index=True)


def snapshot_days(start: date, end: date, step_days: int) -> list[date]:
    """as_of days from ``start`` to ``end`` inclusive, every ``step_days``."""
    if step_days < 1:
        raise FeatureError(f"--step {step_days}: must be at least 1 day")
    if end < start:
        raise FeatureError(f"--to {end}: is before --from {start}")
    count = (end - start).days // step_days + 1
    return [start + timedelta(days=i * step_days) for i in range(count)]


@dataclass(frozen=True)
class CustomerFeatures:
    """One customer's features at one as_of, and whether they came from a stored snapshot."""

    customer_id: str
    as_of: date
    values: dict[str, object]
    features: list[Feature]
    stored: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "as_of": self.as_of.isoformat(),
            "source": "snapshot" if self.stored else "computed",
            "features": [
                {
                    "name": f.name,
                    "family": f.family,
                    "value": self.values.get(f.name),
                    "unit": str(f.unit),
                    "sentence": f.say(self.values.get(f.name)),
                }
                for f in self.features
            ],
        }


def customer_features(
    engine: Engine, customer_id: str, day: date, config: FeaturesConfig, *, today: date
) -> CustomerFeatures:
    """One customer's features: from the stored snapshot when there is one, else computed now."""
    refresh_usage_rollup(engine, work_mem_mb=config.work_mem_mb)  # computing must see every event
    with engine.connect() as connection:
        known = connection.execute(
            select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
        ).first()
        if known is None:
            raise FeatureError(f"unknown customer {customer_id!r}: no such customer_id has been imported")
        check_as_of(connection, day, today=today)
        names = connection.execute(
            select(snapshot_runs.c.feature_names).where(snapshot_runs.c.as_of == day)
        ).scalar_one_or_none()
        if names is not None:
            stored = load_snapshots(connection, [day], [customer_id])
            if stored.empty:
                raise _not_active(customer_id, day)
            row = stored.iloc[0]
            values = {n: _plain(row[n]) for n in names if not _missing(row[n])}
            return CustomerFeatures(customer_id, day, values, describe(names, config), stored=True)
        signals = compute_features(connection, day, config, [customer_id])
    if signals.frame.empty:
        raise _not_active(customer_id, day)
    values = {k: _plain(v) for k, v in signals.frame.iloc[0].items() if not _missing(v)}
    return CustomerFeatures(customer_id, day, values, signals.features, stored=False)


def _not_active(customer_id: str, day: date) -> FeatureError:
    return FeatureError(f"customer {customer_id!r} was not active on {day} (no subscription covered it)")


def describe(names: Sequence[str], config: FeaturesConfig) -> list[Feature]:
    """The catalogue entries for stored feature names, per-event-type patterns filled in."""
    exact = {f.name: f for f in catalogue(config)}
    patterns = [
        (re.compile("^" + re.escape(f.name).replace(re.escape("{event}"), "(?P<event>.+)") + "$"), f)
        for f in exact.values()
        if "{event}" in f.name
    ]
    described = []
    for name in names:
        if name in exact and "{event}" not in name:
            described.append(exact[name])
            continue
        for pattern, feature in patterns:
            if match := pattern.match(name):
                event = match["event"]
                described.append(feature.expand(event=event, event_label=event_label(event)))
                break
        else:  # built with another configuration: still show the value, with a neutral sentence
            described.append(Feature(name, "other", name.replace("_", " "), Unit.SCORE, f"{name}: {{value}}"))
    return described
