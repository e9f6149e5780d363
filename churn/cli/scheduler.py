"""`churn scheduler` and `churn jobs`: the operator's process that runs every job on time, and its log."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.text import Text

from churn.cli.common import console, load_context, open_engine, user_errors

if TYPE_CHECKING:
    from serving.job_runs import RunRecord
    from serving.scheduled_jobs import JobSpec

JobName = Literal["score", "dispatch", "retrain"]


def register(app: typer.Typer) -> None:
    """Add the scheduler commands to the root CLI."""
    app.command("scheduler")(scheduler)
    app.command("jobs")(jobs)


def scheduler(
    once: Annotated[
        JobName | None,
        typer.Option("--once", help="Run this one job now, recorded like a scheduled run, then exit."),
    ] = None,
) -> None:
    """Run the scheduled jobs in the foreground: score daily, send alerts every few minutes, retrain weekly.

    Run it as a process of its own (a systemd service, a container), never inside the API's workers:
    every worker would run every job. Times come from the config's `schedule` section; the jobs and
    their next run times are kept in the database, so a restart misses nothing a run within
    `misfire_grace_s` can make up. Several replicas may run against one database: one leads, the
    others stand by and take over when it dies. SIGTERM or Ctrl-C stops it cleanly (exit 0) after
    the running job, waiting up to 30 seconds; a second signal stops it at once.

    `--once JOB` runs score, dispatch or retrain now and exits with code 1 if it failed.
    """
    from serving.scheduled_jobs import JOB_FUNCTIONS, configured_jobs
    from serving.scheduler import configure_logging, serve

    with user_errors():
        settings, config = load_context()
        open_engine(settings).dispose()  # a clear line if the schema is missing, before anything runs
        jobs = configured_jobs(config.schedule)
        configure_logging()
        if once is not None:
            run = JOB_FUNCTIONS[once]()  # its start and outcome are logged like a scheduled run's
            if run is None or run.outcome != "ok":
                raise typer.Exit(1)
            return
        serve(settings.resolved_database_url, config.schedule, jobs)


def jobs(
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON for scripts.")] = False,
) -> None:
    """Show each scheduled job: when it runs, how its last run went, and when it runs next.

    The next run time is the one the scheduler stored; a job no scheduler has stored yet shows
    "not scheduled" until `churn scheduler` starts.
    """
    from serving.job_runs import last_runs
    from serving.scheduled_jobs import configured_jobs
    from serving.scheduler import stored_next_run_times

    with user_errors():
        settings, config = load_context()
        specs = configured_jobs(config.schedule)
        engine = open_engine(settings)
        try:
            runs = last_runs(engine, [spec.id for spec in specs])
            next_runs = stored_next_run_times(engine)
        finally:
            engine.dispose()
        zone = ZoneInfo(config.schedule.timezone)
        if as_json:
            payload = [_job_dict(spec, runs.get(spec.id), next_runs.get(spec.id)) for spec in specs]
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
            return
        console.print(_jobs_table(specs, runs, next_runs, zone))
        for line in _details(specs, runs):
            console.print(line, highlight=False)


def _job_dict(spec: JobSpec, run: RunRecord | None, next_run: datetime | None) -> dict[str, Any]:
    return {
        "job": spec.id,
        "what": spec.what,
        "schedule": spec.schedule,
        "next_run_at": next_run.isoformat() if next_run else None,
        "last_run": run.as_dict() if run else None,
    }


def _jobs_table(
    specs: list[JobSpec], runs: dict[str, RunRecord], next_runs: dict[str, datetime | None], zone: ZoneInfo
) -> Table:
    table = Table(title=f"Scheduled jobs (times in {zone.key})")
    table.add_column("job", no_wrap=True)
    table.add_column("schedule")
    table.add_column("next run", no_wrap=True)
    table.add_column("last run", no_wrap=True)
    table.add_column("outcome")
    for spec in specs:
        run = runs.get(spec.id)
        upcoming = "not scheduled"
        if spec.id in next_runs:
            upcoming = _local(next_runs[spec.id], zone) or "paused"
        if run is None:
            table.add_row(spec.id, spec.schedule, upcoming, "never", "")
            continue
        outcome = _outcome(run.outcome)
        if run.seconds is not None:
            outcome.append(f" in {run.seconds:.1f} s")
        table.add_row(spec.id, spec.schedule, upcoming, _local(run.started_at, zone), outcome)
    return table


def _details(specs: list[JobSpec], runs: dict[str, RunRecord]) -> list[Text]:
    """What each job's last run said, one line each, below the table where it has room."""
    return [
        Text.assemble((f"{spec.id}: ", "bold"), run.detail)
        for spec in specs
        if (run := runs.get(spec.id)) is not None and run.detail
    ]


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _outcome(outcome: str) -> Text:
    colour = {"ok": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}.get(outcome, "")
    return Text(outcome, style=colour)
