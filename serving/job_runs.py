"""The job run log: one ``job_runs`` row per run of a scheduled or manually started job.

Each write is its own short transaction, so a run's row says ``running`` while it runs (visible to
`churn jobs` from another process) and a crash leaves evidence that the next scheduler turns into
``interrupted``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from churn.clock import utc_now
from churn.config import ConfigError
from churn.db import WRITES
from churn.errors import UserFacingError
from churn.tables import job_runs

log = logging.getLogger("churn.scheduler")

# A run on another host cannot be checked for life; one still "running" after this long is taken
# for dead (no job of ours runs for a day).
STALE_AFTER = timedelta(hours=24)
DETAIL_CHARS = 500


class Outcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class Run:
    """A run in progress; the job sets ``detail`` to say what it did."""

    run_id: int
    job: str
    started_at: datetime
    detail: str | None = None
    outcome: Outcome = Outcome.RUNNING


@dataclass(frozen=True)
class RunRecord:
    """A finished (or still running) run, as `churn jobs` shows it."""

    job: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None
    host: str
    pid: int

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "outcome": self.outcome,
            "detail": self.detail,
            "host": self.host,
            "pid": self.pid,
        }


def this_host() -> str:
    """The host name runs are recorded under."""
    return socket.gethostname()[:255]


def one_line(text: str) -> str:
    """A message cut to one line that fits the run log."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= DETAIL_CHARS else first[: DETAIL_CHARS - 1] + "…"


def start_run(engine: Engine, job: str, *, now: datetime | None = None) -> Run:
    """Record that ``job`` started in this process."""
    started_at = now or utc_now()
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        run_id = connection.execute(
            insert(job_runs)
            .values(
                job=job,
                started_at=started_at,
                outcome=Outcome.RUNNING.value,
                host=this_host(),
                pid=os.getpid(),
            )
            .returning(job_runs.c.run_id)
        ).scalar_one()
    return Run(run_id=run_id, job=job, started_at=started_at)


def finish_run(engine: Engine, run: Run, outcome: Outcome, detail: str | None) -> bool:
    """Record how a run ended; False if it was already marked (e.g. interrupted at shutdown)."""
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        result = connection.execute(
            update(job_runs)
            .where(job_runs.c.run_id == run.run_id, job_runs.c.outcome == Outcome.RUNNING.value)
            .values(outcome=outcome.value, finished_at=utc_now(), detail=detail and one_line(detail))
        )
    return result.rowcount == 1


@contextmanager
def record_run(engine: Engine, job: str) -> Iterator[Run]:
    """Record a run of ``job``: ``running``, then ``ok`` with ``run.detail`` or ``failed`` with the error.

    The error is re-raised; an interrupt (Ctrl-C, SystemExit) ends the run as ``interrupted``.
    """
    run = start_run(engine, job)
    log.info("%s: started", job)
    try:
        yield run
    except Exception as exc:
        # A mistake to fix speaks for itself; anything else is named by its type.
        said = str(exc) if isinstance(exc, UserFacingError | ConfigError) else f"{type(exc).__name__}: {exc}"
        run.outcome, run.detail = Outcome.FAILED, one_line(said)
        finish_run(engine, run, Outcome.FAILED, run.detail)
        log.error("%s: failed after %s: %s", job, _took(run), run.detail)
        raise
    except BaseException:
        run.outcome = Outcome.INTERRUPTED
        finish_run(engine, run, Outcome.INTERRUPTED, "stopped before it finished")
        log.warning("%s: interrupted after %s", job, _took(run))
        raise
    if finish_run(engine, run, Outcome.OK, run.detail):
        run.outcome = Outcome.OK
        log.info("%s: ok in %s%s", job, _took(run), f": {run.detail}" if run.detail else "")
    else:
        run.outcome = Outcome.INTERRUPTED
        log.warning("%s: finished after %s, but was already marked interrupted", job, _took(run))


def _took(run: Run) -> str:
    return f"{(utc_now() - run.started_at).total_seconds():.1f} s"


def interrupt_own_runs(engine: Engine, detail: str) -> int:
    """Mark this process's runs still ``running`` as ``interrupted`` (it is stopping without them)."""
    return _interrupt(engine, and_(job_runs.c.host == this_host(), job_runs.c.pid == os.getpid()), detail)


def interrupt_dead_runs(engine: Engine, *, now: datetime | None = None) -> int:
    """Mark runs left ``running`` by a process that died as ``interrupted``.

    A run on this host is dead when its process is gone; one on another host when it started more
    than STALE_AFTER ago.
    """
    now = now or utc_now()
    host = this_host()
    with engine.connect() as connection:
        rows = connection.execute(
            select(job_runs.c.run_id, job_runs.c.pid).where(
                job_runs.c.outcome == Outcome.RUNNING.value, job_runs.c.host == host
            )
        ).all()
    dead = [row.run_id for row in rows if row.pid != os.getpid() and not _alive(row.pid)]
    condition = or_(
        job_runs.c.run_id.in_(dead),
        and_(job_runs.c.host != host, job_runs.c.started_at < now - STALE_AFTER),
    )
    return _interrupt(engine, condition, "its process ended before it finished")


def _interrupt(engine: Engine, condition: Any, detail: str) -> int:
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        result = connection.execute(
            update(job_runs)
            .where(job_runs.c.outcome == Outcome.RUNNING.value, condition)
            .values(outcome=Outcome.INTERRUPTED.value, finished_at=utc_now(), detail=detail)
        )
    return result.rowcount


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def last_runs(engine: Engine, jobs: list[str]) -> dict[str, RunRecord]:
    """Each job's latest run, for the jobs that ever ran."""
    latest = (
        select(job_runs.c.job, func.max(job_runs.c.run_id).label("run_id"))
        .where(job_runs.c.job.in_(jobs))
        .group_by(job_runs.c.job)
        .subquery()
    )
    with engine.connect() as connection:
        rows = connection.execute(select(job_runs).join(latest, job_runs.c.run_id == latest.c.run_id)).all()
    return {row.job: _record(row) for row in rows}


def runs_of(engine: Engine, job: str) -> list[RunRecord]:
    """Every run of ``job``, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(job_runs).where(job_runs.c.job == job).order_by(job_runs.c.run_id)
        ).all()
    return [_record(row) for row in rows]


def _record(row: Any) -> RunRecord:
    return RunRecord(
        job=row.job,
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=row.outcome,
        detail=row.detail,
        host=row.host,
        pid=row.pid,
    )
