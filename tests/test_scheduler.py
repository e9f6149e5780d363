"""The scheduler: one leader across real processes, clean stops, stored jobs, misfires, `churn jobs`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from churn.clock import utc_now
from churn.config import ScheduleConfig
from churn.settings import get_settings
from serving.job_runs import last_runs, record_run, runs_of, this_host
from serving.leader import APPLICATION_PREFIX, leader_for
from serving.scheduled_jobs import JobSpec, configured_jobs
from serving.scheduler import (
    build_scheduler,
    run_scheduler,
    stop_scheduler,
    stored_next_run_times,
    sync_jobs,
)
from tests.scheduler_process import tick_spec

ROOT = Path(__file__).resolve().parents[1]
SCHEDULER_CLI = "import typer; from churn.cli.scheduler import scheduler; typer.run(scheduler)"


def _eventually(check: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Process:
    """A scheduler subprocess whose log goes to a file the test can read while it runs."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._handle = log.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.popen.pid

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        self.popen.send_signal(sig)
        return self.popen.wait(timeout_s)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._handle.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*args: str, name: str, env: dict[str, str] | None = None) -> Process:
        process = Process(list(args), tmp_path / f"{name}.log", env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def _tick_scheduler(start: Callable[..., Process], url: str, name: str, **options: float) -> Process:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    return start("-m", "tests.scheduler_process", url, *flags, name=name)


def _finished_by(engine, pid: int) -> int:
    return sum(1 for run in runs_of(engine, "tick") if run.pid == pid and run.outcome == "ok")


# --- one leader across real processes ---


def test_two_schedulers_run_each_fire_once_and_the_standby_takes_over_a_killed_leader(
    database_url, engine, processes
):
    first = _tick_scheduler(processes, database_url, "first", every_s=1, hold_s=0.3)
    _eventually(lambda: _finished_by(engine, first.pid) >= 1, what="the first scheduler to run the job")
    second = _tick_scheduler(processes, database_url, "second", every_s=1, hold_s=0.3)
    _eventually(lambda: "standing by" in second.text(), what="the second scheduler to stand by")
    assert "another scheduler (" in second.text() and f"pid {first.pid}) is the leader" in second.text()
    _eventually(lambda: _finished_by(engine, first.pid) >= 3, what="three runs")

    first.popen.kill()  # SIGKILL: no clean-up at all
    first.popen.wait()
    _eventually(lambda: _finished_by(engine, second.pid) >= 2, what="the standby to take over")
    assert second.stop() == 0

    runs = sorted(runs_of(engine, "tick"), key=lambda run: run.started_at)
    assert {run.pid for run in runs} == {first.pid, second.pid}
    assert [run.pid for run in runs] == sorted((run.pid for run in runs), key=lambda pid: pid != first.pid)
    for earlier, later in pairwise(runs):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, "runs overlapped"
    fires = [int(run.started_at.timestamp()) for run in runs]  # every_s=1: the fire a run served
    assert len(set(fires)) == len(fires), "a fire ran twice"
    assert {run.outcome for run in runs} <= {"ok", "interrupted"}


def test_a_run_cut_short_by_a_killed_leader_ends_interrupted_and_the_next_leader_runs_it_again(
    database_url, engine, processes
):
    first = _tick_scheduler(processes, database_url, "first", every_s=1, hold_s=60)
    _eventually(lambda: runs_of(engine, "tick"), what="a run to start")
    first.popen.kill()
    first.popen.wait()
    assert [run.outcome for run in runs_of(engine, "tick")] == ["running"]

    # Its next fire is an hour away: the run the dead leader owed is made up at once instead.
    second = _tick_scheduler(processes, database_url, "second", every_s=3600, hold_s=0)
    _eventually(lambda: _finished_by(engine, second.pid) >= 1, what="the interrupted run to be redone")
    assert second.stop() == 0

    cut, redone = runs_of(engine, "tick")
    assert (cut.pid, cut.outcome) == (first.pid, "interrupted")
    assert (redone.pid, redone.outcome) == (second.pid, "ok")
    assert "dead scheduler as interrupted" in second.text()
    assert "its last run was interrupted; running it again now" in second.text()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's lock has no link to lose
def test_a_postgres_leader_cut_off_from_its_lock_steps_down_and_the_standby_leads(
    database_url, engine, processes
):
    postgres_url = database_url
    first = _tick_scheduler(processes, postgres_url, "first", every_s=1, hold_s=0.3)
    _eventually(lambda: _finished_by(engine, first.pid) >= 1, what="the first scheduler to lead")
    second = _tick_scheduler(processes, postgres_url, "second", every_s=1, hold_s=0.3)
    _eventually(lambda: "standing by" in second.text(), what="the second scheduler to stand by")

    with engine.begin() as connection:  # what a dropped network link does to the lock's session
        connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": f"{APPLICATION_PREFIX} {this_host()} pid {first.pid}"[:63]},
        )
    _eventually(lambda: _finished_by(engine, second.pid) >= 2, what="the standby to take over")
    _eventually(lambda: "standing by" in first.text(), what="the old leader to stand by")
    assert "stepping down" in first.text()
    assert first.stop() == 0 and second.stop() == 0

    runs = sorted(runs_of(engine, "tick"), key=lambda run: run.started_at)
    for earlier, later in pairwise(runs):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, "runs overlapped"
    fires = [int(run.started_at.timestamp()) for run in runs]
    assert len(set(fires)) == len(fires), "a fire ran twice"


@pytest.mark.parametrize(
    ("hold_s", "stop_timeout_s", "outcome"),
    [(1.5, 30, "ok"), (60, 0.5, "interrupted")],
    ids=["job-finishes", "job-too-long"],
)
def test_sigterm_stops_cleanly_releases_the_lock_and_leaves_no_run_running(
    database_url, engine, processes, hold_s, stop_timeout_s, outcome
):
    process = _tick_scheduler(
        processes, database_url, "scheduler", every_s=1, hold_s=hold_s, stop_timeout_s=stop_timeout_s
    )
    _eventually(lambda: runs_of(engine, "tick"), what="a run to start")

    assert process.stop(signal.SIGTERM) == 0

    assert [run.outcome for run in runs_of(engine, "tick")] == [outcome]
    assert "scheduler stopped" in process.text()
    successor = leader_for(database_url)
    try:
        assert successor.acquire(), "the leader lock was not released"
    finally:
        successor.close()


def test_churn_scheduler_prints_its_jobs_and_stops_on_sigterm(database_url, engine, processes, tmp_path):
    env = {"CHURN_DATABASE_URL": database_url, "CHURN_HOME": str(tmp_path), "CHURN_CONFIG": ""}
    process = processes("-c", SCHEDULER_CLI, name="churn-scheduler", env=env)
    _eventually(lambda: "retrain   next run" in process.text(), what="the job list")

    assert process.stop(signal.SIGINT) == 0

    log = process.text()
    for job, schedule in [("score", "cron 0 6 * * * (UTC)"), ("dispatch", "every 5 min")]:
        assert job in log and f"({schedule})" in log
    assert set(stored_next_run_times(engine)) == {"score", "dispatch", "retrain"}
    assert "Traceback" not in log


# --- stored jobs and misfires ---


def _store(url: str, schedule: ScheduleConfig, jobs: list[JobSpec]) -> dict[str, datetime | None]:
    """Start a scheduler paused, bring its stored jobs in line with ``jobs``, and stop it."""
    scheduler = build_scheduler(url, schedule)
    scheduler.start(paused=True)
    try:
        sync_jobs(scheduler, jobs, schedule)
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}
    finally:
        stop_scheduler(scheduler)


def test_stored_jobs_survive_a_restart_and_follow_a_changed_config(database_url, engine):
    schedule = ScheduleConfig()
    first = _store(database_url, schedule, configured_jobs(schedule))
    time.sleep(0.01)  # a fresh 5-minute interval would now start later than the stored one
    again = _store(database_url, schedule, configured_jobs(schedule))
    assert again == first
    assert stored_next_run_times(engine) == first

    changed = ScheduleConfig(retrain="0 4 * * 2", dispatch_minutes=10, timezone="Europe/Berlin")
    updated = _store(database_url, changed, configured_jobs(changed))
    retrain = updated["retrain"].astimezone(ZoneInfo("Europe/Berlin"))
    assert (retrain.weekday(), retrain.hour, retrain.minute) == (1, 4, 0)
    assert updated["dispatch"] != first["dispatch"]

    only_score = _store(database_url, changed, configured_jobs(changed)[:1])
    assert list(only_score) == ["score"]
    assert list(stored_next_run_times(engine)) == ["score"]


@pytest.mark.parametrize(
    ("late", "grace_s", "runs"),
    [(timedelta(hours=3, seconds=5), 60, 1), (timedelta(minutes=10), 60, 0)],
    ids=["within-grace-coalesced", "beyond-grace-skipped"],
)
def test_a_run_missed_while_down_runs_once_within_the_grace_and_is_skipped_beyond(
    database_url, engine, late, grace_s, runs
):
    schedule = ScheduleConfig(misfire_grace_s=grace_s)
    hourly = [tick_spec(database_url, every_s=3600, hold_s=0)]
    _store(database_url, schedule, hourly)
    # The scheduler was down: the stored next run lies ``late`` in the past (hourly, so three
    # missed fires plus one in the first case).
    scheduler = build_scheduler(database_url, schedule)
    scheduler.start(paused=True)
    scheduler.modify_job("tick", next_run_time=utc_now() - late)
    stop_scheduler(scheduler)

    stop = threading.Event()
    restarted = threading.Thread(
        target=run_scheduler, args=(database_url, schedule, hourly), kwargs={"stop": stop, "check_s": 0.1}
    )
    restarted.start()
    try:
        _eventually(lambda: stored_next_run_times(engine)["tick"] > utc_now(), what="the job to be processed")
        if runs:
            _eventually(lambda: last_runs(engine, ["tick"]), what="the missed run")
    finally:
        stop.set()
        restarted.join(30)

    assert [run.outcome for run in runs_of(engine, "tick")] == ["ok"] * runs
    assert stored_next_run_times(engine)["tick"] > utc_now() + timedelta(minutes=40)


# --- churn scheduler --once and churn jobs ---


@pytest.fixture
def run_scheduler_cli(env, monkeypatch):
    """The scheduler commands, invoked in-process like `churn ...` with the test's environment."""
    from churn.cli.scheduler import register

    app = typer.Typer()
    register(app)

    def run(*args: str, **extra_env: str):
        for name, value in {**env, **extra_env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return run


def test_churn_jobs_shows_each_jobs_schedule_last_run_and_next_run(database_url, engine, run_scheduler_cli):
    schedule = ScheduleConfig()
    stored = _store(database_url, schedule, configured_jobs(schedule))
    with record_run(engine, "dispatch") as run:
        run.detail = "sent 3 alerts, 0 failed"

    table = run_scheduler_cli("jobs", CHURN_DATABASE_URL=database_url)
    assert table.exit_code == 0, table.output
    assert "dispatch" in table.stdout and "sent 3" in table.stdout and "never" in table.stdout
    assert stored["score"].strftime("%Y-%m-%d %H:%M") in table.stdout

    result = run_scheduler_cli("jobs", "--json", CHURN_DATABASE_URL=database_url)
    jobs = {job["job"]: job for job in json.loads(result.stdout)}
    assert list(jobs) == ["score", "dispatch", "retrain"]
    assert jobs["dispatch"]["last_run"]["outcome"] == "ok"
    assert jobs["dispatch"]["last_run"]["detail"] == "sent 3 alerts, 0 failed"
    assert jobs["score"]["last_run"] is None and jobs["score"]["schedule"] == "cron 0 6 * * * (UTC)"
    assert datetime.fromisoformat(jobs["retrain"]["next_run_at"]) == stored["retrain"]


def test_churn_jobs_before_any_scheduler_says_not_scheduled(database_url, run_scheduler_cli):
    result = run_scheduler_cli("jobs", CHURN_DATABASE_URL=database_url)
    assert result.exit_code == 0
    assert result.stdout.count("not scheduled") == 3


def test_scheduler_once_records_the_run_and_exits_1_when_it_fails(database_url, engine, run_scheduler_cli):
    result = run_scheduler_cli("scheduler", "--once", "retrain", CHURN_DATABASE_URL=database_url)
    assert result.exit_code == 1
    (run,) = runs_of(engine, "retrain")
    assert run.outcome == "failed" and "no feature snapshots" in run.detail


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("score: '61 6 * * *'", "schedule.score: '61 6 * * *' is not a crontab expression"),
        ("timezone: Mars/Olympus", "schedule.timezone: unknown time zone 'Mars/Olympus'"),
        ("retrain: every monday", "schedule.retrain: 'every monday' is not a crontab expression"),
    ],
)
@pytest.mark.parametrize("command", [["scheduler"], ["jobs"]])
def test_a_bad_schedule_is_one_clear_line_and_exit_2(
    database_url, engine, run_scheduler_cli, tmp_path, schedule, message, command
):
    config = tmp_path / "churn.yaml"
    config.write_text(f"schedule:\n  {schedule}\n")
    result = run_scheduler_cli(*command, CHURN_DATABASE_URL=database_url, CHURN_CONFIG=str(config))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}: {message}")
    assert result.stderr.count("\n") == 1
    assert runs_of(engine, "dispatch") == [] and stored_next_run_times(engine) == {}


def test_scheduler_on_an_empty_database_says_to_upgrade(empty_database_url, run_scheduler_cli):
    result = run_scheduler_cli("scheduler", CHURN_DATABASE_URL=empty_database_url)
    assert result.exit_code == 2
    assert "run `churn db upgrade`" in result.stderr


# --- crontab lines mean what cron means ---


@pytest.mark.parametrize(
    ("line", "fires"),
    [
        ("0 3 * * 1", ["Monday 03:00", "Monday 03:00"]),  # the default retrain: Mondays, as in cron
        ("0 3 * * 0", ["Sunday 03:00", "Sunday 03:00"]),
        ("0 3 * * 7", ["Sunday 03:00", "Sunday 03:00"]),
        ("30 6 * * 1-5", ["Tuesday 06:30", "Wednesday 06:30"]),
        ("0 9 * * 5-7", ["Friday 09:00", "Saturday 09:00"]),
        ("0 9 * * sat,sun", ["Saturday 09:00", "Sunday 09:00"]),
        ("0 0 * * */3", ["Wednesday 00:00", "Saturday 00:00"]),  # 0,3,6 = Sunday, Wednesday, Saturday
    ],
)
def test_crontab_weekdays_count_from_sunday_as_in_cron(line, fires):
    from churn.crontab import crontab_trigger

    trigger = crontab_trigger(line, "UTC")
    after = datetime(2026, 12, 1, 0, 0, 1, tzinfo=ZoneInfo("UTC"))  # a Tuesday
    seen = []
    for _ in fires:
        after = trigger.get_next_fire_time(None, after)
        seen.append(after.strftime("%A %H:%M"))
        after += timedelta(seconds=1)
    assert seen == fires


def test_scheduler_once_dispatch_on_an_empty_outbox_is_recorded_ok(database_url, engine, run_scheduler_cli):
    result = run_scheduler_cli("scheduler", "--once", "dispatch", CHURN_DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    (run,) = runs_of(engine, "dispatch")
    assert run.outcome == "ok" and run.detail.startswith("0 sent")
