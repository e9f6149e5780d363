"""Run one DuckDB stage in a fresh process and report its time and peak memory as JSON.

    python -m benchmarks.warehouse_child copy SOURCE_URL DUCKDB_URL
    python -m benchmarks.warehouse_child floor DUCKDB_URL

The rollup and snapshot stages are ``benchmarks.features_child``'s, which take any database URL.
DuckDB runs inside the process, so the peak memory (VmHWM) includes the engine's own, where
PostgreSQL's stages count only the client.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from benchmarks.features_child import _timed_floor
from benchmarks.ingest_child import peak_memory_mb
from churn.db import make_engine
from churn.warehouse import copy_company


def copy(source_url: str, target_url: str) -> dict[str, object]:
    source, target = make_engine(source_url), make_engine(target_url)
    summary = copy_company(source, target, now=datetime.now(UTC))
    source.dispose()
    target.dispose()
    events = summary.merged["usage_events"]
    return {
        "seconds": summary.seconds,
        "events_inserted": events.inserted,
        "events_updated": events.updated,
        "changed_days": summary.changed_days,
    }


def floor(url: str) -> dict[str, object]:
    """The floor query once to warm the cache, then the faster of two runs (as on PostgreSQL)."""
    engine = make_engine(url)
    with engine.connect() as connection:
        threads = connection.exec_driver_sql("SELECT current_setting('threads')").scalar_one()
        warm_up, groups = _timed_floor(connection)
        runs = [_timed_floor(connection)[0] for _ in range(2)]
    engine.dispose()
    return {"seconds": min(runs), "warm_up_seconds": warm_up, "groups": groups, "threads": threads}


def main() -> None:
    stage, *urls = sys.argv[1:]
    match stage:
        case "copy":
            report = copy(*urls)
        case "floor":
            report = floor(*urls)
        case _:
            raise SystemExit(f"unknown stage {stage!r} (expected copy or floor)")
    print(json.dumps({**report, "peak_mb": peak_memory_mb()}))


if __name__ == "__main__":
    main()
