"""The jobs the scheduler runs: score daily, dispatch alerts every few minutes, retrain weekly.

Jobs persist in the database (APScheduler's job store), so each is named by text
(``"serving.scheduled_jobs:run_score"``) with picklable arguments only. Each run reads the settings
and config afresh, opens its own engine, records itself in ``job_runs`` and never raises: one bad
run must not take the scheduler down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, func, select

from churn.clock import utc_now
from churn.config import ConfigError, ProductConfig, ScheduleConfig, load_config
from churn.crontab import crontab_trigger
from churn.db import engine_for
from churn.errors import UserFacingError
from churn.settings import Settings, get_settings
from churn.tables import alert_outcomes, cancellations, job_runs
from serving.job_runs import Run, record_run

log = logging.getLogger("churn.scheduler")


@dataclass(frozen=True)
class JobSpec:
    """A job the scheduler keeps: a stable id, the function (by text), when it fires, in words."""

    id: str
    func: str  # "module:function", importable by every scheduler replica
    trigger: BaseTrigger
    schedule: str  # the trigger in words, for `churn jobs`
    args: tuple[Any, ...] = field(default=())
    what: str = ""


def configured_jobs(schedule: ScheduleConfig) -> list[JobSpec]:
    """The product's jobs as the config's ``schedule`` section times them."""
    zone = schedule.timezone
    return [
        JobSpec(
            id="score",
            func="serving.scheduled_jobs:run_score",
            trigger=crontab_trigger(schedule.score, zone),
            schedule=f"cron {schedule.score} ({zone})",
            what="refresh today's features and score every active customer",
        ),
        JobSpec(
            id="dispatch",
            func="serving.scheduled_jobs:run_dispatch",
            trigger=IntervalTrigger(minutes=schedule.dispatch_minutes, timezone=zone),
            schedule=f"every {schedule.dispatch_minutes} min",
            what="send queued alerts to Slack",
        ),
        JobSpec(
            id="retrain",
            func="serving.scheduled_jobs:run_retrain",
            trigger=crontab_trigger(schedule.retrain, zone),
            schedule=f"cron {schedule.retrain} ({zone})",
            what="retrain the model and promote it if it passes the gate",
        ),
    ]


def run_score() -> Run | None:
    """Refresh today's features, score every active customer and queue their alerts."""
    return _run_job("score", _score)


def run_dispatch() -> Run | None:
    """Send the alerts waiting in the outbox."""
    return _run_job("dispatch", _dispatch)


def run_retrain() -> Run | None:
    """Train on the latest labelled snapshots and promote the model if it is at least as good."""
    return _run_job("retrain", _retrain)


def _score(run: Run, engine: Engine, settings: Settings, config: ProductConfig) -> None:
    from serving.scoring import refresh_and_score

    summary = refresh_and_score(engine, settings, config, now=utc_now())
    alerts = ", ".join(f"{count:,} {kind}" for kind, count in summary.alerts.items() if count) or "none"
    stale = f"; stale: {', '.join(f.source for f in summary.stale)}" if summary.stale else ""
    run.detail = (
        f"scored {summary.customers:,} customers as of {summary.as_of} with model {summary.model_version}; "
        f"alerts: {alerts}{stale}"
    )


def _dispatch(run: Run, engine: Engine, settings: Settings, config: ProductConfig) -> None:
    from serving.dispatch import dispatch_pending

    run.detail = str(dispatch_pending(engine, settings, config, now=utc_now()))


def _retrain(run: Run, engine: Engine, settings: Settings, config: ProductConfig) -> None:
    from training.job import run_training

    # The reasons first: a cancellation that arrived with only words trains as a classified reason.
    classified = _refresh_reason_fills(engine, settings, config)
    fed = _feedback_counts(engine, config, since=_last_retrain(engine, before=run.started_at))
    outcome = run_training(settings, config, promote_if_better=True)
    promotion = outcome.promotion
    verdict = "promoted" if promotion and promotion.promoted else "not promoted"
    reason = f" ({promotion.reason})" if promotion and promotion.reason else ""
    likely = _retrain_likely_reason(engine, settings, config)
    run.detail = f"version {outcome.run.version} {verdict}{reason}; {classified}; {fed}; {likely}"


def _retrain_likely_reason(engine: Engine, settings: Settings, config: ProductConfig) -> str:
    """Relearn which reason customers at risk would give, from the churns and reasons known now."""
    from training.likely_reason import train_likely_reason

    try:
        trained = train_likely_reason(settings, config, engine)
    except UserFacingError as exc:  # too few churners with a reason yet: alerts keep the last model, or none
        return f"likely reason not retrained: {exc}"
    figures = trained.model.evaluation
    return (
        f"likely reason version {trained.version} "
        f"({figures['accuracy']:.0%} accurate, the commonest reason {figures['majority_accuracy']:.0%})"
    )


def _refresh_reason_fills(engine: Engine, settings: Settings, config: ProductConfig) -> str:
    """Classify every cancellation text without a specific code, with the trained classifier if any."""
    from training.reasons.refresh import refresh_with_best_classifier

    fills = refresh_with_best_classifier(engine, settings, config, now=utc_now())
    return f"reasons: {fills.placed:,} of {fills.classified:,} uncoded texts classified by {fills.classifier}"


def _last_retrain(engine: Engine, *, before: datetime) -> datetime | None:
    """When the previous successful retrain started: what came in after it is new to this one."""
    query = select(func.max(job_runs.c.started_at)).where(
        job_runs.c.job == "retrain", job_runs.c.outcome == "ok", job_runs.c.started_at < before
    )
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def _feedback_counts(engine: Engine, config: ProductConfig, *, since: datetime | None) -> str:
    """The churns the labels know and their reasons, and how many cancellations and outcomes are new."""
    from features.labels import churn_events

    with engine.connect() as connection:
        churns = churn_events(connection, config.labels)
        new_cancellations = select(func.count()).select_from(cancellations)
        new_outcomes = (
            select(func.count()).select_from(alert_outcomes).where(alert_outcomes.c.outcome == "churning")
        )
        if since is not None:
            new_cancellations = new_cancellations.where(cancellations.c.ingested_at > since)
            new_outcomes = new_outcomes.where(alert_outcomes.c.created_at > since)
        fresh = connection.execute(new_cancellations).scalar_one()
        told = connection.execute(new_outcomes).scalar_one()
    with_reason = int(churns["reason_code"].notna().sum())
    when = "since the last retrain" if since is not None else "in all"
    return (
        f"labels: {len(churns):,} churns, {with_reason:,} with a reason; {fresh:,} new cancellations and "
        f"{told:,} 'customer is leaving' outcomes {when}"
    )


JOB_FUNCTIONS: dict[str, Callable[[], Run | None]] = {
    "score": run_score,
    "dispatch": run_dispatch,
    "retrain": run_retrain,
}


def _run_job(name: str, body: Callable[[Run, Engine, Settings, ProductConfig], None]) -> Run | None:
    """One recorded run with its own engine and freshly read config; a failure is logged, never raised.

    Returns the finished run, or None when not even the run log could be written.
    """
    run: Run | None = None
    try:
        settings = get_settings()
        engine = engine_for(settings)
    except Exception:
        log.exception("%s: cannot open the database", name)
        return None
    try:
        with record_run(engine, name) as run:
            # Read per run: a changed threshold or channel applies without restarting the scheduler.
            body(run, engine, settings, load_config(settings.config_path))
    except (UserFacingError, ConfigError):
        pass  # recorded and logged as one line: a mistake to fix, not a bug
    except Exception:
        log.exception("%s: the run failed unexpectedly", name)
    finally:
        engine.dispose()
    return run
