"""The feature jobs on DuckDB beside PostgreSQL, on the same company, each beside its own engine's floor.

    python -m benchmarks.warehouse [--customers 5000] [--months 12] [--snapshots 4] [--keep-data DIR]

The company is imported into PostgreSQL (the last day of events held back), then copied into a DuckDB
file with ``churn.warehouse.copy_company``, the ELT load. The same stages run on both, unchanged,
each in a fresh process (``benchmarks.features_child``): the full rollup build, one snapshot, a weekly
history. The held-back day is then imported into PostgreSQL and copied on, and the incremental
rollup and the next day's snapshot run on both. The floor is ``benchmarks.features``' one pass over the
events grouped the way the features need them (warm, best of two) on each engine. The one snapshot is
read back from both and compared for every customer and feature.

The run uses a copy of the code taken at its start, as ``benchmarks.features`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from benchmarks.features import (
    HISTORY_STEP_DAYS,
    _cells,
    _ratio,
    child,
    count,
    demo_data,
    import_company,
    ingest_in_child,
    scratch_database,
    server_settings,
    size_mb,
    split_last_day,
    vacuum_analyze,
)
from benchmarks.provenance import run_frozen
from churn.db import make_engine
from churn.migrate import upgrade_database
from features.snapshot import load_snapshots, snapshot_days

ENGINES = ("PostgreSQL", "DuckDB")


@dataclass
class Pair:
    """One stage on both engines: seconds and peak MB each, and the baseline each is read against."""

    stage: str
    rows: int
    seconds: dict[str, float]
    peak_mb: dict[str, float]
    baseline: str = ""
    baseline_seconds: dict[str, float] | None = None

    def ratio(self, engine: str) -> float | None:
        return None if self.baseline_seconds is None else self.seconds[engine] / self.baseline_seconds[engine]


@dataclass
class Results:
    table: list[Pair]
    record: list[tuple[str, str]]
    sizes: dict[str, str]
    notes: list[str]


def warehouse_child(stage: str, *urls: str) -> dict:
    """Run one DuckDB stage in a fresh process (benchmarks.warehouse_child) and return its report."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.warehouse_child", stage, *urls],
        check=True,
        stdout=subprocess.PIPE,  # the report; errors and warnings pass through to our stderr
        text=True,
    )
    return json.loads(result.stdout)


def compare_snapshots(postgres_url: str, duckdb_url: str, day: date) -> str:
    """Whether the stored snapshot of ``day`` is the same on both engines, in words."""
    frames = []
    for url in (postgres_url, duckdb_url):
        engine = make_engine(url)
        with engine.connect() as connection:
            frames.append(load_snapshots(connection, [day]))
        engine.dispose()  # DuckDB: one process at a time may open the file
    try:
        pd.testing.assert_frame_equal(frames[1], frames[0], check_exact=False, rtol=1e-9)
    except AssertionError as exc:
        return f"DIFFERENT: {str(exc).splitlines()[0]}"
    rows, columns = frames[0].shape
    return f"equal on both engines ({rows:,} customers x {columns - 2} features, rtol 1e-9)"


def run(customers: int, months: int, snapshots: int, data_dir: Path, scratch: Path) -> Results:
    data = demo_data(data_dir, customers, months)
    last_day = data.end - timedelta(days=1)
    split = split_last_day(data.directory / "events.csv", last_day)
    as_of, next_as_of = last_day, data.end
    history = snapshot_days(
        as_of - timedelta(days=HISTORY_STEP_DAYS * (snapshots - 1)), as_of, HISTORY_STEP_DAYS
    )
    duckdb_path = scratch / "warehouse.duckdb"
    duckdb_url = f"duckdb:///{duckdb_path}"
    record: list[tuple[str, str]] = []
    notes: list[str] = []
    with scratch_database(keep=False) as postgres_url:
        engine = make_engine(postgres_url)
        try:
            upgrade_database(engine)
            print(f"Importing into PostgreSQL (events before {last_day}) ...", file=sys.stderr)
            imported = import_company(engine, postgres_url, data.directory, split.earlier)
            record.append(
                (f"PostgreSQL: import the six files, events before {last_day}", f"{imported.seconds:.2f}")
            )
            record.append(
                ("PostgreSQL: VACUUM ANALYZE after the import", f"{vacuum_analyze(postgres_url):.2f}")
            )
            events = imported.rows

            print("Copying into DuckDB ...", file=sys.stderr)
            copied = warehouse_child("copy", postgres_url, duckdb_url)
            record.append(
                (
                    f"copy_company PostgreSQL -> DuckDB: {copied['events_inserted']:,} events,"
                    f" {copied['changed_days']:,} customer-days logged (peak {copied['peak_mb']:,.0f} MB)",
                    f"{copied['seconds']:.2f}",
                )
            )
            urls = {"PostgreSQL": postgres_url, "DuckDB": duckdb_url}

            print("Floors ...", file=sys.stderr)
            floors = {
                "PostgreSQL": child(postgres_url, "floor"),
                "DuckDB": warehouse_child("floor", duckdb_url),
            }
            notes.append(
                f"floor: PostgreSQL at work_mem {floors['PostgreSQL']['work_mem']},"
                f" DuckDB with {floors['DuckDB']['threads']} threads;"
                f" {floors['PostgreSQL']['groups']:,} and {floors['DuckDB']['groups']:,} rows fetched"
            )
            floor_seconds = {e: floors[e]["seconds"] for e in ENGINES}

            def pair(stage: str, reports: dict[str, dict], rows: int = events, **kwargs: object) -> Pair:
                return Pair(
                    stage,
                    rows,
                    {e: reports[e]["seconds"] for e in ENGINES},
                    {e: reports[e]["peak_mb"] for e in ENGINES},
                    **kwargs,  # type: ignore[arg-type]
                )

            floor_row = pair("floor: GROUP BY customer_id, event_type (warm, best of 2)", floors)

            print("Usage rollup, full build ...", file=sys.stderr)
            full = {}
            for name, url in urls.items():
                full[name] = child(url, "rollup", "--full")
                assert full[name]["full_rebuild"], (name, full[name])
            record.append(
                ("PostgreSQL: VACUUM ANALYZE after the rollup build", f"{vacuum_analyze(postgres_url):.2f}")
            )
            full_row = pair(
                "usage rollup, full build", full, baseline="floor", baseline_seconds=floor_seconds
            )

            print(f"One snapshot at {as_of} ...", file=sys.stderr)
            one = {name: child(url, "snapshots", as_of.isoformat()) for name, url in urls.items()}
            one_row = pair(
                f"one snapshot, as_of {as_of} ({one['DuckDB']['customers'][0]:,} customers,"
                f" {one['DuckDB']['features']} features)",
                one,
                baseline="floor",
                baseline_seconds=floor_seconds,
            )
            notes.append(f"snapshot of {as_of}: {compare_snapshots(postgres_url, duckdb_url, as_of)}")

            print(f"{len(history)} weekly snapshots ...", file=sys.stderr)
            weekly = {
                name: child(url, "snapshots", *(d.isoformat() for d in history)) for name, url in urls.items()
            }
            history_row = pair(
                f"{len(history)}-snapshot history, weekly to {as_of}",
                weekly,
                baseline="floor",
                baseline_seconds=floor_seconds,
            )
            per_snapshot = Pair(
                "  per snapshot of the history",
                events,
                {e: weekly[e]["seconds"] / len(history) for e in ENGINES},
                {e: weekly[e]["peak_mb"] for e in ENGINES},
                "floor",
                floor_seconds,
            )

            print(f"The events of {last_day}: import, copy, incremental rollup ...", file=sys.stderr)
            day_import = ingest_in_child(postgres_url, "events", split.held_back)
            record.append(
                (
                    f"PostgreSQL: import the events of {last_day} ({split.held_back_rows:,} rows)",
                    f"{day_import['seconds']:.2f}",
                )
            )
            day_copy = warehouse_child("copy", postgres_url, duckdb_url)
            record.append(
                (
                    f"copy_company again: {day_copy['events_inserted']:,} new events,"
                    f" {day_copy['changed_days']:,} customer-days logged",
                    f"{day_copy['seconds']:.2f}",
                )
            )
            events_after = count(engine, "usage_events")
            incremental = {name: child(url, "rollup") for name, url in urls.items()}
            for name, report in incremental.items():
                if report["full_rebuild"]:
                    notes.append(f"WARNING: the daily refresh on {name} rebuilt the whole rollup")
            incremental_row = pair(
                f"incremental rollup: {split.held_back_rows:,} new events,"
                f" {incremental['DuckDB']['changed_days']:,} customer-days",
                incremental,
                events_after,
                baseline="full build",
                baseline_seconds=full_row.seconds,
            )
            after = {name: child(url, "snapshots", next_as_of.isoformat()) for name, url in urls.items()}
            next_row = pair(
                f"next day's snapshot, as_of {next_as_of}",
                after,
                events_after,
                baseline="floor",
                baseline_seconds=floor_seconds,
            )
            notes.append(
                f"snapshot of {next_as_of}: {compare_snapshots(postgres_url, duckdb_url, next_as_of)}"
            )
            events_mb = size_mb(engine, "usage_events")
            duckdb_mb = duckdb_path.stat().st_size / 2**20
            sizes = {
                "server": server_settings(engine),
                "customers": f"{count(engine, 'customers'):,}",
                "events": f"{events_after:,} ({events_mb:,.0f} MB in PostgreSQL, indexed)",
                "usage_daily": f"{count(engine, 'usage_daily'):,} rows",
                "usage_daily_users": f"{count(engine, 'usage_daily_users'):,} rows",
                "DuckDB file": f"{duckdb_mb:,.0f} MB (copied tables, rollup, snapshots)",
            }
        finally:
            engine.dispose()
    if data.generated_seconds is not None:
        record.insert(0, ("demo-data: generate all six files", f"{data.generated_seconds:.2f}"))
    table = [floor_row, full_row, one_row, history_row, per_snapshot, incremental_row, next_row]
    return Results(table, record, sizes, notes)


def print_results(results: Results, customers: int, months: int, version: str) -> None:
    import duckdb
    import duckdb_engine

    print(f"\nData: demo company, {customers:,} customers x {months} months (seed 1).")
    print(f"Code: {version}. DuckDB {duckdb.__version__}, duckdb-engine {duckdb_engine.__version__}.")
    print(f"Load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}.")
    for name, value in results.sizes.items():
        print(f"- {name}: {value}")
    print()

    def seconds(engine: str):
        return lambda p: f"{p.seconds[engine]:.2f}"

    def ratio(engine: str):
        return lambda p: _ratio(p.ratio(engine))

    def peak(engine: str):
        return lambda p: f"{p.peak_mb[engine]:,.0f}"

    for line in _cells(
        results.table,
        [
            ("stage", lambda p: p.stage, False),
            ("rows", lambda p: f"{p.rows:,}", True),
            ("baseline", lambda p: p.baseline, False),
            ("PostgreSQL s", seconds("PostgreSQL"), True),
            ("ratio", ratio("PostgreSQL"), True),
            ("peak MB", peak("PostgreSQL"), True),
            ("DuckDB s", seconds("DuckDB"), True),
            ("ratio", ratio("DuckDB"), True),
            ("peak MB", peak("DuckDB"), True),
            ("DuckDB / PostgreSQL", lambda p: _ratio(p.seconds["DuckDB"] / p.seconds["PostgreSQL"]), True),
        ],
    ):
        print(line)
    print("\nFor the record (no baseline):\n")
    width = max(len(step) for step, _ in results.record)
    print(f"| {'step'.ljust(width)} | seconds |")
    print(f"| {'-' * width} | ------: |")
    for step, value in results.record:
        print(f"| {step.ljust(width)} | {value.rjust(7)} |")
    print("\nNotes:")
    for note in results.notes:
        print(f"- {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.warehouse", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--snapshots", type=int, default=4, help="weekly snapshots in the history")
    parser.add_argument(
        "--keep-data",
        type=Path,
        metavar="DIR",
        help="generate the demo files here, or reuse them if they match",
    )
    args = parser.parse_args(argv)
    version = os.environ.get(_FROZEN)
    if version is None:
        return _run_frozen(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="churn-bench-warehouse-") as scratch:
        data_dir = args.keep_data or Path(scratch) / "data"
        results = run(args.customers, args.months, args.snapshots, data_dir, Path(scratch))
    print_results(results, args.customers, args.months, version)
    print(f"\nWhole run: {time.perf_counter() - started:,.0f} s.")
    return 0


# Set in the process that runs from the frozen copy: the code version it measures.
_FROZEN = "CHURN_BENCH_WAREHOUSE_CODE"
_PACKAGES = ("benchmarks", "churn", "features")


def _run_frozen(args: argparse.Namespace) -> int:
    """Run from a copy of the code taken now, so every stage's fresh Python measures the same code."""
    argv = ["--customers", str(args.customers), "--months", str(args.months)]
    argv += ["--snapshots", str(args.snapshots)]
    if args.keep_data:
        argv += ["--keep-data", str(args.keep_data.resolve())]
    return run_frozen(
        "benchmarks.warehouse", argv, packages=_PACKAGES, product=("churn", "features"), marker=_FROZEN
    )


if __name__ == "__main__":
    raise SystemExit(main())
