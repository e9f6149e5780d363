"""The scoring job: score every active customer with the champion, keep the risk history, queue alerts.

Everything a scoring writes (scores, policy state, alerts, the run record) commits as one
transaction, so a crash leaves either the whole scoring or none of it, and re-running the same day
with the same model changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select, text

from churn.config import ProductConfig
from churn.db import WRITES
from churn.errors import UserFacingError
from churn.settings import Settings
from churn.tables import alert_state, alerts, risk_scores, scoring_runs, snapshot_runs
from features.snapshot import build_snapshots, load_snapshots
from serving.alert_facts import gather_facts
from serving.alerting import AlertPlan, CustomerFacts, plan_alerts
from serving.freshness import SourceFreshness, source_freshness
from serving.outbox import AlertKind, AlertState
from serving.policy import CustomerState, decide_day, lowest_recent_risk
from serving.score_store import queue_plan, write_scores, write_states
from training.explain import explain
from training.likely_reason import LikelyReasonModel, load_likely_reason
from training.model import ChurnModel
from training.registry import load_model

# Serialises scorings of the same database on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
_SCORING_LOCK = 0x5C0E1


class ScoringError(UserFacingError):
    """A scoring that cannot run as asked."""


@dataclass(frozen=True)
class ScoringSummary:
    """What one scoring did, in the numbers a CS lead and an operator look at."""

    as_of: date
    model_version: str
    customers: int
    tiers: dict[str, int]
    changed: int
    alerts: dict[str, int]
    alerted: list[dict[str, Any]]
    stale: list[SourceFreshness]
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "model_version": self.model_version,
            "customers": self.customers,
            "tiers": self.tiers,
            "scores_changed": self.changed,
            "alerts": self.alerts,
            "alerted": self.alerted,
            "stale_sources": [f.as_dict() for f in self.stale],
            "seconds": round(self.seconds, 2),
        }


def refresh_and_score(
    engine: Engine,
    settings: Settings,
    config: ProductConfig,
    *,
    now: datetime,
    as_of: date | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScoringSummary:
    """Build the day's feature snapshot if it is not built yet, then score it (the daily job)."""
    day = as_of or now.date()
    say = on_progress or (lambda _message: None)
    say(f"building the feature snapshot of {day}")
    build_snapshots(engine, [day], config.features, now=now)
    return score_day(engine, settings, config, as_of=day, now=now, on_progress=say)


def score_day(
    engine: Engine,
    settings: Settings,
    config: ProductConfig,
    *,
    as_of: date,
    now: datetime,
    model: tuple[ChurnModel, str, str] | None = None,
    likely_reason: LikelyReasonModel | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScoringSummary:
    """Score the snapshot of ``as_of`` with the champion (or ``model``), store it and queue its alerts."""
    say = on_progress or (lambda _message: None)
    started = time.perf_counter()
    stages: dict[str, float] = {}
    say("loading the champion model")
    churn_model, version, run_id = model or load_model(settings)
    # Which reason an alerted customer would give, once that model is trained; a caller that brings its
    # own churn model brings this one too (or none).
    likely = likely_reason if model is not None else load_likely_reason(settings)

    clock = time.perf_counter()
    say(f"reading the features of {as_of}")
    with engine.connect() as connection:
        built_at = _snapshot_built_at(connection, as_of)
        features = load_snapshots(connection, [as_of])
        history = _risk_history(connection, as_of, _history_days(config), version)
        freshness = source_freshness(connection, as_of, config.alerts.stale_after_days)
        alerted_before = _alerted_on(connection, as_of)
    stages["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say(f"scoring {len(features):,} customers with model version {version}")
    scores = features[["customer_id"]].copy()
    scores["risk"] = churn_model.predict_risk(features) if len(features) else np.array([])
    scores["tier"] = _tiers(scores["risk"].to_numpy(), config)
    stages["predict"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with engine.connect() as connection:
        states = _states(connection)
    risk = dict(zip(scores["customer_id"], scores["risk"], strict=True))
    lows = lowest_recent_risk(history, as_of, config.alerts.jump.within_days) if config.alerts.jump else None
    decisions, new_states = decide_day(as_of, risk, states, config.alerts, lows)
    # Drivers for the high tier and for everyone alerted this day, by this run or an earlier one (so a
    # re-run keeps the drivers the alert was sent with).
    explained = set(scores.loc[scores["tier"] == "high", "customer_id"]) | alerted_before
    explained |= {d.customer_id for d in decisions}
    say(f"explaining {len(explained):,} high-risk and alerted customers")
    drivers = _drivers(churn_model, features, explained, config.scoring.top_drivers)
    stages["explain"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with engine.connect() as connection:
        facts = gather_facts(
            connection, churn_model, features, scores, history, drivers, decisions, as_of, config, likely
        )
    stages["facts"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say("saving scores and queuing alerts")
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCORING_LOCK})
        # Another scoring of the same day may have committed since the states were read: its
        # decisions stand, and this run decides only for customers whose state is unchanged.
        fresh = _states(connection)
        decisions = [d for d in decisions if fresh.get(d.customer_id) == states.get(d.customer_id)]
        new_states = {c: s for c, s in new_states.items() if fresh.get(c) == states.get(c)}
        plan = plan_alerts(
            decisions,
            facts,
            as_of=as_of,
            model_version=version,
            policy=config.alerts,
            freshness=freshness,
            already_sent=_sent_today(connection, as_of),
        )
        changed = write_scores(
            connection,
            scores,
            as_of=as_of,
            model_version=version,
            built_at=built_at,
            now=now,
            drivers=drivers,
        )
        write_states(connection, new_states)
        queue_plan(connection, plan, now=now)
        _record_run(
            connection,
            as_of,
            version,
            run_id,
            built_at,
            now,
            len(scores),
            plan,
            freshness,
            time.perf_counter() - started,
        )
    stages["write"] = time.perf_counter() - clock
    return _summary(
        as_of, version, scores, changed, plan, facts, freshness, time.perf_counter() - started, stages
    )


def _history_days(config: ProductConfig) -> int:
    jump = config.alerts.jump.within_days if config.alerts.jump else 0
    return 2 * max(config.alerts.change_window_days, jump)


def _snapshot_built_at(connection: Connection, as_of: date) -> datetime:
    built_at = connection.execute(
        select(snapshot_runs.c.built_at).where(snapshot_runs.c.as_of == as_of)
    ).scalar()
    if built_at is None:
        raise ScoringError(
            f"no feature snapshot as of {as_of}: run `churn features build --as-of {as_of}` first "
            "(`churn score` builds today's itself)"
        )
    return built_at


def _risk_history(connection: Connection, as_of: date, days: int, model_version: str) -> pd.DataFrame:
    """Earlier risks by the same model: a jump or a change across a retrain would be the model's, not
    the customer's (after a promotion the history starts again)."""
    query = select(risk_scores.c.customer_id, risk_scores.c.as_of, risk_scores.c.risk).where(
        risk_scores.c.as_of >= as_of - timedelta(days=days),
        risk_scores.c.as_of < as_of,
        risk_scores.c.model_version == model_version,
    )
    return pd.DataFrame(connection.execute(query).all(), columns=["customer_id", "as_of", "risk"])


def _alerted_on(connection: Connection, as_of: date) -> set[str]:
    query = select(alerts.c.customer_id).where(alerts.c.as_of == as_of, alerts.c.customer_id.is_not(None))
    return set(connection.execute(query).scalars())


def _states(connection: Connection) -> dict[str, CustomerState]:
    rows = connection.execute(select(alert_state)).all()
    return {
        row.customer_id: CustomerState(row.armed, row.last_alert_as_of, row.evaluated_as_of) for row in rows
    }


def _tiers(risk: np.ndarray, config: ProductConfig) -> np.ndarray:
    tiers = np.full(len(risk), "low", dtype=object)
    tiers[risk >= config.scoring.medium_risk] = "medium"
    tiers[risk >= config.scoring.high_risk] = "high"
    return tiers


def _drivers(
    model: ChurnModel, features: pd.DataFrame, wanted: set[str], top: int
) -> dict[str, dict[str, Any]]:
    rows = features[features["customer_id"].isin(wanted)]
    return {
        customer_id: explanation.as_dict()
        for customer_id, explanation in zip(rows["customer_id"], explain(model, rows, top=top), strict=True)
    }


def _sent_today(connection: Connection, as_of: date) -> dict[str, int]:
    """Per owner, the alerts of this day already queued on their own (they count against the cap)."""
    query = (
        select(alerts.c.owner_email, func.count())
        .where(
            alerts.c.as_of == as_of,
            alerts.c.kind.in_([AlertKind.THRESHOLD.value, AlertKind.JUMP.value]),
            # What the owner was (or will be) sent: not digested, suppressed, held or discarded ones.
            alerts.c.state.in_(
                [
                    AlertState.PENDING.value,
                    AlertState.SENDING.value,
                    AlertState.SENT.value,
                    AlertState.FAILED.value,
                ]
            ),
        )
        .group_by(alerts.c.owner_email)
    )
    return {owner or "": count for owner, count in connection.execute(query)}


def _record_run(
    connection: Connection,
    as_of: date,
    version: str,
    run_id: str,
    built_at: datetime,
    now: datetime,
    customers_scored: int,
    plan: AlertPlan,
    freshness: list[SourceFreshness],
    seconds: float,
) -> None:
    existing = connection.execute(select(scoring_runs).where(scoring_runs.c.as_of == as_of)).first()
    values = {
        "source_freshness": [f.as_dict() for f in freshness],
        "model_version": version,
        "model_run_id": run_id,
        "snapshot_built_at": built_at,
        "scored_at": now,
        "customers": customers_scored,
        "alerts": plan.count,
        "held": plan.held,
        "seconds": seconds,
    }
    if existing is None:
        connection.execute(scoring_runs.insert().values(as_of=as_of, **values))
    elif (
        (existing.model_version, existing.snapshot_built_at) != (version, built_at)
        or plan.count
        or existing.source_freshness is None  # scored before the runs kept it: fill it in
    ):
        connection.execute(scoring_runs.update().where(scoring_runs.c.as_of == as_of).values(**values))


def _summary(
    as_of: date,
    version: str,
    scores: pd.DataFrame,
    changed: int,
    plan: AlertPlan,
    facts: dict[str, CustomerFacts],
    freshness: list[SourceFreshness],
    seconds: float,
    stages: dict[str, float],
) -> ScoringSummary:
    rows = [*plan.individual, *(row for _, carried in plan.digests for row in carried)]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    alerted = [
        {
            "customer_id": row["customer_id"],
            "name": facts[row["customer_id"]].name,
            "kind": row["kind"],
            "risk": round(row["risk"], 4),
            "previous_risk": row["previous_risk"],
            "owner_email": row["owner_email"],
            "channel": row["channel"],
            "state": row["state"],
        }
        for row in sorted(rows, key=lambda r: -r["risk"])
    ]
    tiers = {tier: int((scores["tier"] == tier).sum()) for tier in ("high", "medium", "low")}
    stale = [f for f in freshness if f.stale]
    return ScoringSummary(
        as_of, version, len(scores), tiers, changed, counts, alerted, stale, seconds, stages
    )
