"""The job run log: running, then ok / failed / interrupted; runs of dead processes end interrupted."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import insert

from churn.clock import utc_now
from churn.errors import UserFacingError
from churn.tables import job_runs
from serving.job_runs import (
    interrupt_dead_runs,
    interrupt_own_runs,
    last_runs,
    record_run,
    runs_of,
    this_host,
)


def test_a_run_is_running_while_it_runs_then_ok_with_its_detail(engine):
    with record_run(engine, "score") as run:
        (during,) = runs_of(engine, "score")
        run.detail = "scored 2,000 customers, 3 alerts"
    (after,) = runs_of(engine, "score")
    assert during.outcome == "running" and during.finished_at is None
    assert after.outcome == "ok" and after.detail == "scored 2,000 customers, 3 alerts"
    assert (after.host, after.pid) == (this_host(), os.getpid())
    assert after.finished_at >= after.started_at


def test_a_failed_run_records_the_error_on_one_line_and_reraises(engine):
    with pytest.raises(RuntimeError), record_run(engine, "dispatch"):
        raise RuntimeError("Slack said no\nsecond line of a traceback")
    with pytest.raises(UserFacingError), record_run(engine, "retrain"):
        raise UserFacingError("no feature snapshots yet")
    assert runs_of(engine, "dispatch")[0].detail == "RuntimeError: Slack said no"
    assert [(r.outcome, r.detail) for r in runs_of(engine, "retrain")] == [
        ("failed", "no feature snapshots yet")
    ]


def test_an_interrupted_run_says_so(engine):
    with pytest.raises(KeyboardInterrupt), record_run(engine, "score"):
        raise KeyboardInterrupt
    assert runs_of(engine, "score")[0].outcome == "interrupted"


def _running_row(engine, *, host: str, pid: int, started_hours_ago: float = 0) -> None:
    started_at = utc_now() - timedelta(hours=started_hours_ago)
    with engine.begin() as connection:
        connection.execute(
            insert(job_runs).values(job="score", started_at=started_at, outcome="running", host=host, pid=pid)
        )


def test_runs_left_running_by_dead_processes_become_interrupted(engine):
    gone = subprocess.Popen(["true"])
    gone.wait()
    _running_row(engine, host=this_host(), pid=gone.pid)  # this host, process gone
    _running_row(engine, host=this_host(), pid=os.getppid())  # this host, alive
    _running_row(engine, host="elsewhere", pid=1, started_hours_ago=30)  # another host, far too old
    _running_row(engine, host="elsewhere", pid=2, started_hours_ago=1)  # another host, plausible

    assert interrupt_dead_runs(engine) == 2

    outcomes = {(r.host, r.pid): r.outcome for r in runs_of(engine, "score")}
    assert outcomes == {
        (this_host(), gone.pid): "interrupted",
        (this_host(), os.getppid()): "running",
        ("elsewhere", 1): "interrupted",
        ("elsewhere", 2): "running",
    }


def test_a_stopping_scheduler_marks_its_own_unfinished_runs_and_a_late_finish_keeps_that(engine):
    with record_run(engine, "retrain") as run:
        assert interrupt_own_runs(engine, "the scheduler stopped before the run finished") == 1
        run.detail = "version 3 promoted"
    (record,) = runs_of(engine, "retrain")
    assert record.outcome == "interrupted" and run.outcome == "interrupted"
    assert record.detail == "the scheduler stopped before the run finished"


def test_last_runs_gives_each_jobs_latest_run(engine):
    for detail in ("first", "second"):
        with record_run(engine, "dispatch") as run:
            run.detail = detail
    latest = last_runs(engine, ["dispatch", "score"])
    assert list(latest) == ["dispatch"] and latest["dispatch"].detail == "second"
