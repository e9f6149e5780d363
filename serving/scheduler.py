"""The scheduler process: wins the leader lock, then runs the jobs on APScheduler until told to stop.

Jobs live in the product database (APScheduler's SQLAlchemyJobStore on ``apscheduler_jobs``), so a
restart keeps each job's next run time and a run missed while no scheduler was up still happens once
on restart when it is less than ``misfire_grace_s`` late. Replicas stand by until the leader dies.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Engine, make_url, select

from churn.config import ScheduleConfig
from churn.db import WRITES, make_engine
from churn.tables import apscheduler_jobs
from serving.job_runs import interrupt_dead_runs, interrupt_own_runs, last_runs, this_host
from serving.leader import Leader, leader_for
from serving.scheduled_jobs import JobSpec

log = logging.getLogger("churn.scheduler")

CHECK_S = 5.0  # how often the leader checks its lock and a standby tries to take it
STEP_DOWN_CHECKS = 3  # a leader that lost its lock waits this many checks before competing again
STOP_TIMEOUT_S = 30.0  # how long a stop waits for a running job (systemd's default kill is at 90 s)


def build_scheduler(database_url: str, schedule: ScheduleConfig, *, workers: int = 3) -> BackgroundScheduler:
    """An APScheduler whose jobs are stored in the product database; not started."""
    engine = make_engine(database_url)
    if make_url(database_url).get_backend_name() == "sqlite":
        # Take SQLite's write lock at BEGIN: the store reads then writes, and must not fail on upgrade.
        engine = engine.execution_options(**WRITES)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=apscheduler_jobs.name)},
        executors={"default": ThreadPoolExecutor(max_workers=workers)},
        job_defaults={
            "coalesce": True,  # many missed runs of a job make one run, not a burst
            "max_instances": 1,
            "misfire_grace_time": schedule.misfire_grace_s,
        },
        timezone=schedule.timezone,
    )


def sync_jobs(scheduler: BackgroundScheduler, jobs: Sequence[JobSpec], schedule: ScheduleConfig) -> None:
    """Make the stored jobs match ``jobs``: add new ones, update changed ones, remove the rest.

    A job whose trigger is unchanged keeps its stored next run time, so a run missed while the
    scheduler was down is still due (and runs if within the misfire grace).
    """
    stored = {job.id: job for job in scheduler.get_jobs()}
    for spec in jobs:
        options = {
            "func": spec.func,
            "args": spec.args,
            "name": spec.id,
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": schedule.misfire_grace_s,
        }
        job = stored.pop(spec.id, None)
        if job is None:
            scheduler.add_job(id=spec.id, trigger=spec.trigger, replace_existing=True, **options)
            log.info("%s: added (%s)", spec.id, spec.schedule)
            continue
        scheduler.modify_job(spec.id, **options)
        if not _same_trigger(job.trigger, spec.trigger):
            scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            log.info("%s: rescheduled (%s)", spec.id, spec.schedule)
    for job_id in stored:
        scheduler.remove_job(job_id)
        log.info("%s: removed (no longer configured)", job_id)


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Stop starting runs and shut the scheduler down; runs in flight go on in their threads.

    APScheduler 3's loop looks for due jobs once more after shutdown and, finding its executor
    closed, moves a due job's next run time on without running it. Detaching the job store first
    leaves that last look nothing to consume, so the run stays due for the next scheduler.
    """
    scheduler.pause()
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=False)


def _same_trigger(stored: BaseTrigger, wanted: BaseTrigger) -> bool:
    # str() gives the fields (cron fields, interval length) without an interval's start date.
    same_zone = str(getattr(stored, "timezone", None)) == str(getattr(wanted, "timezone", None))
    return type(stored) is type(wanted) and str(stored) == str(wanted) and same_zone


def stored_next_run_times(engine: Engine) -> dict[str, datetime | None]:
    """Each stored job's next run time, read from the job store without loading the jobs."""
    with engine.connect() as connection:
        rows = connection.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)).all()
    return {
        row.id: None if row.next_run_time is None else datetime.fromtimestamp(row.next_run_time, UTC)
        for row in rows
    }


class _RunningJobs:
    """Counts the job runs in flight, from the scheduler's events, so a stop can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def listen(self, event: JobEvent) -> None:
        with self._idle:
            if event.code == EVENT_JOB_SUBMITTED:
                self._count += 1
                return
            # With coalescing each submission ends in exactly one of executed, error or missed.
            self._count -= 1
            self._idle.notify_all()
        if event.code == EVENT_JOB_MISSED and isinstance(event, JobExecutionEvent):
            log.warning(
                "%s: the run due at %s was missed by more than the misfire grace: skipped",
                event.job_id,
                _when(event.scheduled_run_time),
            )

    def wait_idle(self, timeout_s: float | None, give_up: threading.Event) -> bool:
        """Wait until no run is in flight; False if ``timeout_s`` passed or ``give_up`` was set first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._idle:
            while self._count > 0:
                if give_up.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    return False
                self._idle.wait(0.1)
        return True


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "never"


def _start(
    database_url: str, schedule: ScheduleConfig, jobs: Sequence[JobSpec], engine: Engine
) -> tuple[BackgroundScheduler, _RunningJobs]:
    running = _RunningJobs()
    scheduler = build_scheduler(database_url, schedule, workers=max(1, len(jobs)))
    scheduler.add_listener(
        running.listen, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
    )
    # Paused first: the stored jobs must match the config before anything due runs.
    scheduler.start(paused=True)
    sync_jobs(scheduler, jobs, schedule)
    _redo_interrupted(scheduler, engine, [spec.id for spec in jobs])
    specs = {spec.id: spec for spec in jobs}
    for job in sorted(scheduler.get_jobs(), key=_next_run_key):
        spec = specs[job.id]
        log.info("%-9s next run %s  (%s)", job.id, _when(job.next_run_time), spec.schedule)
    scheduler.resume()
    return scheduler, running


def _redo_interrupted(scheduler: BackgroundScheduler, engine: Engine, job_ids: list[str]) -> None:
    """Run again, now, each job whose last run was cut short (a killed leader, a stop that timed out).

    APScheduler moved the job's next run time on when it started that run, so without this a
    daily score cut short at 06:00 would not score that day at all. Every job is safe to repeat.
    """
    for job_id, record in last_runs(engine, job_ids).items():
        if record.outcome == "interrupted":
            log.warning("%s: its last run was interrupted; running it again now", job_id)
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))


def _next_run_key(job: Job) -> float:
    return job.next_run_time.timestamp() if job.next_run_time else float("inf")


def run_scheduler(
    database_url: str,
    schedule: ScheduleConfig,
    jobs: Sequence[JobSpec],
    *,
    stop: threading.Event,
    stop_now: threading.Event | None = None,
    check_s: float = CHECK_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> bool:
    """Lead or stand by until ``stop`` is set; True if a job was still running and was left behind.

    Only the holder of the leader lock starts APScheduler. A leader that loses its lock stops
    starting runs, waits for the one in flight, and competes for the lock again.
    """
    leader = leader_for(database_url)
    engine = make_engine(database_url)
    give_up = stop_now or threading.Event()
    try:
        return _lead_or_stand_by(
            leader, engine, database_url, schedule, jobs, stop, give_up, check_s, stop_timeout_s
        )
    finally:
        leader.close()
        engine.dispose()


def _lead_or_stand_by(
    leader: Leader,
    engine: Engine,
    database_url: str,
    schedule: ScheduleConfig,
    jobs: Sequence[JobSpec],
    stop: threading.Event,
    give_up: threading.Event,
    check_s: float,
    stop_timeout_s: float,
) -> bool:
    told: object = None
    while not stop.is_set():
        if not leader.acquire():
            holder = leader.holder()
            if holder != told:
                log.info("standing by: another scheduler (%s) is the leader", holder or "unknown")
                told = holder
            stop.wait(check_s)
            continue
        told = None
        log.info("leader: this scheduler (%s pid %s) runs the jobs", this_host(), os.getpid())
        if interrupted := interrupt_dead_runs(engine):
            log.warning("marked %s run(s) left running by a dead scheduler as interrupted", interrupted)
        scheduler, running = _start(database_url, schedule, jobs, engine)
        lost = False
        while not stop.wait(check_s):
            if not leader.held():
                lost = True
                break
        stop_scheduler(scheduler)
        if lost:
            log.warning("stepping down: no new runs until this scheduler holds the leader lock again")
            if running.wait_idle(None, stop):
                # Give a standby with a working link the first go at the lock.
                stop.wait(STEP_DOWN_CHECKS * check_s)
                continue
        if running.wait_idle(stop_timeout_s, give_up):
            return False
        marked = interrupt_own_runs(engine, "the scheduler stopped before the run finished")
        log.warning("stopping with %s run(s) unfinished, marked interrupted", marked)
        leader.release()
        return True
    return False


def serve(
    database_url: str,
    schedule: ScheduleConfig,
    jobs: Sequence[JobSpec],
    *,
    check_s: float = CHECK_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> None:
    """The scheduler process's main loop: SIGTERM or SIGINT stops it cleanly, a second one at once.

    A running job gets ``stop_timeout_s`` to finish; after that its run is marked interrupted, the
    leader lock released, and the process exits (its transaction rolls back with the connection).
    """
    stop, stop_now = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s received again: stopping now", name)
            stop_now.set()
        else:
            log.info("%s received: stopping after the running job, if any", name)
            stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        abandoned = run_scheduler(
            database_url,
            schedule,
            jobs,
            stop=stop,
            stop_now=stop_now,
            check_s=check_s,
            stop_timeout_s=stop_timeout_s,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("scheduler stopped")
    if abandoned:
        # The job's thread cannot be stopped from outside; leave without waiting for it.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped lines on stderr: our runs at ``level``, APScheduler's own only when it warns."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Missed runs are logged in our own words (see _RunningJobs).
    logging.getLogger("apscheduler.executors").setLevel(logging.ERROR)
