"""Run one feature-job stage in a fresh process and report its time and peak memory as JSON.

    python -m benchmarks.features_child URL floor
    python -m benchmarks.features_child URL rollup [--full]
    python -m benchmarks.features_child URL snapshots DAY [DAY ...]

A fresh process per stage makes the peak memory (VmHWM, see ``benchmarks.ingest_child``) that
stage's own; the seconds exclude starting Python and importing the libraries.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, date, datetime

from sqlalchemy import Connection

from benchmarks.ingest_child import peak_memory_mb
from churn.config import FeaturesConfig
from churn.db import make_engine
from features.rollup import refresh_usage_rollup
from features.snapshot import build_snapshots

# The engine's floor for what the feature jobs do: one pass over every event, grouped the way the
# features need it, every result row fetched by the client.
FLOOR_QUERY = "SELECT customer_id, event_type, count(*) FROM usage_events GROUP BY customer_id, event_type"


def floor(url: str) -> dict[str, object]:
    """The floor query once to warm the cache, then twice at the server's work_mem and twice at the
    feature jobs' own (they SET LOCAL it): the faster of each pair."""
    work_mem_mb = getattr(FeaturesConfig(), "work_mem_mb", None)  # older code had no such setting
    engine = make_engine(url)
    with engine.connect() as connection:
        server_work_mem = connection.exec_driver_sql("SHOW work_mem").scalar_one()
        warm_up, groups = _timed_floor(connection)
        server = [_timed_floor(connection)[0] for _ in range(2)]
        if work_mem_mb is not None:  # for this session, which ends below
            connection.exec_driver_sql(f"SET work_mem = '{int(work_mem_mb)}MB'")
        jobs = [_timed_floor(connection)[0] for _ in range(2)]
    engine.dispose()
    return {
        "seconds": min(jobs),
        "work_mem": server_work_mem if work_mem_mb is None else f"{work_mem_mb}MB",
        "server_work_mem": server_work_mem,
        "server_seconds": min(server),
        "warm_up_seconds": warm_up,
        "timings": [warm_up, *server, *jobs],
        "groups": groups,
    }


def _timed_floor(connection: Connection) -> tuple[float, int]:
    started = time.perf_counter()
    groups = len(connection.exec_driver_sql(FLOOR_QUERY).all())
    return time.perf_counter() - started, groups


def rollup(url: str, *, full: bool) -> dict[str, object]:
    engine = make_engine(url)
    summary = refresh_usage_rollup(engine, full=full)
    engine.dispose()
    return {
        "seconds": summary.seconds,
        "full_rebuild": summary.full_rebuild,
        "changed_days": summary.changed_days,
    }


def snapshots(url: str, days: list[date]) -> dict[str, object]:
    engine = make_engine(url)
    started = time.perf_counter()
    summary = build_snapshots(engine, days, FeaturesConfig(), now=datetime.now(UTC), rebuild=True)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "seconds": seconds,
        "run_seconds": [run.seconds for run in summary.runs],
        "customers": [run.customers for run in summary.runs],
        "features": max(run.features for run in summary.runs),
        "rollup_seconds": summary.rollup.seconds,
        "rollup_changed_days": summary.rollup.changed_days,
    }


def main() -> None:
    url, stage, *rest = sys.argv[1:]
    match stage:
        case "floor":
            report = floor(url)
        case "rollup":
            report = rollup(url, full=rest == ["--full"])
        case "snapshots":
            report = snapshots(url, [date.fromisoformat(d) for d in rest])
        case _:
            raise SystemExit(f"unknown stage {stage!r} (expected floor, rollup or snapshots)")
    print(json.dumps({**report, "peak_mb": peak_memory_mb()}))


if __name__ == "__main__":
    main()
