"""A real scheduler process for tests: the product's leader election and APScheduler, with a fast job.

    python -m tests.scheduler_process DATABASE_URL --every-s 1 --hold-s 0.1 [--grace-s 60] [--stop-timeout-s 30]

The job, ``tick``, records a ``job_runs`` row per run (with this process's pid) and holds for
``--hold-s`` seconds, so tests can see who ran what, when, and whether runs overlapped.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from apscheduler.triggers.interval import IntervalTrigger

from churn.config import ScheduleConfig
from churn.db import make_engine
from serving.job_runs import record_run
from serving.scheduled_jobs import JobSpec
from serving.scheduler import configure_logging, serve

# Fires land on whole multiples of the interval, so a run's start second names the fire it serves.
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def tick(database_url: str, hold_s: float) -> None:
    """The test job: one recorded run that takes ``hold_s`` seconds."""
    engine = make_engine(database_url)
    try:
        with record_run(engine, "tick") as run:
            time.sleep(hold_s)
            run.detail = "ticked"
    finally:
        engine.dispose()


def tick_spec(database_url: str, *, every_s: float, hold_s: float) -> JobSpec:
    """The ``tick`` job firing every ``every_s`` seconds."""
    return JobSpec(
        id="tick",
        func="tests.scheduler_process:tick",
        trigger=IntervalTrigger(seconds=every_s, start_date=EPOCH, timezone="UTC"),
        schedule=f"every {every_s} s",
        args=(database_url, hold_s),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--every-s", type=float, default=1.0)
    parser.add_argument("--hold-s", type=float, default=0.1)
    parser.add_argument("--grace-s", type=int, default=60)
    parser.add_argument("--check-s", type=float, default=0.2)
    parser.add_argument("--stop-timeout-s", type=float, default=30.0)
    args = parser.parse_args()
    configure_logging()
    serve(
        args.database_url,
        ScheduleConfig(misfire_grace_s=args.grace_s),
        [tick_spec(args.database_url, every_s=args.every_s, hold_s=args.hold_s)],
        check_s=args.check_s,
        stop_timeout_s=args.stop_timeout_s,
    )


if __name__ == "__main__":
    main()
