"""Feature-job speed on PostgreSQL, each figure beside the engine's floor measured in the same run.

    python -m benchmarks.features [--customers 20000] [--months 12] [--keep-data DIR] [--keep-database]

The floor is one pass over the events grouped the way the features need them, every result row
fetched: ``SELECT customer_id, event_type, count(*) FROM usage_events GROUP BY customer_id,
event_type``, on a warm cache, the faster of two runs, at the ``work_mem`` the feature jobs set for
themselves. It is the baseline for the full rollup build and the snapshots. The last day of events is
held back from the first import and imported afterwards, so the daily update (incremental rollup,
next day's snapshot) is timed against the full build.

Every stage runs in a fresh process (``benchmarks.features_child``) so its peak memory is its own, and
the whole run uses a copy of the code taken at its start (the working tree may change during a run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.provenance import run_frozen
from churn.db import make_engine
from churn.demo import generate_demo_company
from churn.demo_pipeline import IMPORT_ORDER, demo_file, demo_files_match
from churn.ingest import IngestOptions, ingest_file
from churn.migrate import upgrade_database
from churn.settings import normalise_database_url
from features.snapshot import snapshot_days

POSTGRES_URL = normalise_database_url(
    os.environ.get("CHURN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
SEED = 1
DEMO_END = date(2026, 10, 31)
HISTORY_SNAPSHOTS = 26
HISTORY_STEP_DAYS = 7
SNAPSHOT_GOAL = 2.0  # one snapshot within 2x of the floor
INCREMENTAL_GOAL = 0.10  # the daily rollup under 10% of a full build


@dataclass
class Row:
    stage: str
    rows: int
    seconds: float
    baseline: str = ""
    baseline_seconds: float | None = None
    peak_mb: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.baseline_seconds is None else self.seconds / self.baseline_seconds


@dataclass(frozen=True)
class DemoData:
    directory: Path
    end: date  # the demo's end: the first as_of that sees every event
    generated_seconds: float | None  # None when reused from --keep-data


@dataclass(frozen=True)
class Split:
    earlier: Path  # every event before the held-back day
    held_back: Path  # the events of the last day
    earlier_rows: int
    held_back_rows: int


# --- data -------------------------------------------------------------------------------------------


def demo_data(directory: Path, customers: int, months: int) -> DemoData:
    """The demo company in ``directory``: reused when it matches, generated otherwise."""
    seconds = None
    manifest = directory / "demo.json"
    reusable = demo_files_match(directory, customers=customers, months=months, seed=SEED) and (
        json.loads(manifest.read_text(encoding="utf-8")).get("format") == "csv"
    )
    if not reusable:
        print(f"Generating {customers:,} customers x {months} months into {directory} ...", file=sys.stderr)
        started = time.perf_counter()
        generate_demo_company(out_dir=directory, customers=customers, months=months, seed=SEED, end=DEMO_END)
        seconds = time.perf_counter() - started
    end = date.fromisoformat(json.loads(manifest.read_text(encoding="utf-8"))["end"])
    return DemoData(directory, end, seconds)


def split_last_day(events: Path, last_day: date) -> Split:
    """Write the events before ``last_day`` and those on it (UTC) to two files, streaming with pyarrow."""
    earlier = events.with_name(f"events-before-{last_day}.csv")
    held_back = events.with_name(f"events-{last_day}.csv")
    counts = events.with_name(f"events-split-{last_day}.json")
    done = earlier.exists() and held_back.exists() and counts.exists()
    if done and counts.stat().st_mtime >= events.stat().st_mtime:
        rows = json.loads(counts.read_text(encoding="utf-8"))
        return Split(earlier, held_back, rows["earlier"], rows["held_back"])
    print(f"Holding back the events of {last_day} ...", file=sys.stderr)
    with events.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader([handle.readline()]))
    types = {name: pa.string() for name in header} | {"quantity": pa.float64()}
    reader = pacsv.open_csv(
        events,
        read_options=pacsv.ReadOptions(block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    day = pa.scalar(last_day, pa.date32())
    # Unquoted like the generator writes events; Arrow refuses a value that would need quotes.
    options = pacsv.WriteOptions(quoting_style="none")
    partial = [earlier.with_name(earlier.name + ".partial"), held_back.with_name(held_back.name + ".partial")]
    rows = {"earlier": 0, "held_back": 0}
    with (
        pacsv.CSVWriter(str(partial[0]), reader.schema, write_options=options) as before,
        pacsv.CSVWriter(str(partial[1]), reader.schema, write_options=options) as on_day,
    ):
        for batch in reader:
            days = pc.cast(pc.cast(batch["occurred_at"], pa.timestamp("us", tz="UTC")), pa.date32())
            if pc.any(pc.greater(days, day)).as_py():
                raise SystemExit(f"{events}: events after {last_day}, which should be the last day")
            mask = pc.equal(days, day)
            chosen = batch.filter(mask)
            before.write_batch(batch.filter(pc.invert(mask)))
            on_day.write_batch(chosen)
            rows["held_back"] += chosen.num_rows
            rows["earlier"] += batch.num_rows - chosen.num_rows
    if rows["held_back"] == 0:
        raise SystemExit(f"{events}: no events on {last_day} to hold back")
    partial[0].rename(earlier)
    partial[1].rename(held_back)
    counts.write_text(json.dumps(rows), encoding="utf-8")
    return Split(earlier, held_back, rows["earlier"], rows["held_back"])


# --- database ---------------------------------------------------------------------------------------


@contextmanager
def scratch_database(*, keep: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database for this run, dropped at the end unless ``keep``."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"churn_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"Kept database {name} (drop it with: DROP DATABASE {name})", file=sys.stderr)
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def vacuum_analyze(url: str) -> float:
    """What autovacuum does soon after a bulk change on a default server (it may be off on this one):
    done explicitly so that every stage meets the same planner statistics and visibility map."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        started = time.perf_counter()
        connection.execute(text("VACUUM ANALYZE"))
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def server_settings(engine: Engine) -> str:
    names = ("shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather", "autovacuum")
    with engine.connect() as connection:
        version = connection.exec_driver_sql("SHOW server_version").scalar_one().split()[0]
        values = [f"{n} {connection.exec_driver_sql(f'SHOW {n}').scalar_one()}" for n in names]
    return f"PostgreSQL {version}, " + ", ".join(values) + f", {os.cpu_count()} CPUs"


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def size_mb(engine: Engine, table: str) -> float:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one() / 2**20


EVENT_COLUMNS = "event_id, customer_id, event_type, occurred_at, user_id, quantity"
BARE_EVENTS_DDL = (
    "CREATE TABLE bare (event_id text, customer_id text, event_type text, occurred_at timestamptz,"
    " user_id text, quantity float8)"
)
# The floor any load into usage_events pays: the same table, indexes and defaults, no checks.
INDEXED_EVENTS_DDL = (
    "CREATE TABLE indexed (LIKE usage_events INCLUDING DEFAULTS INCLUDING INDEXES);"
    " ALTER TABLE indexed ALTER COLUMN ingested_at SET DEFAULT now(),"
    " ALTER COLUMN updated_at SET DEFAULT now()"
)


def copy_events(engine: Engine, events: Path, table: str, ddl: str) -> float:
    """Create ``table`` with ``ddl``, then the seconds a ``COPY`` of the events CSV into it takes."""
    with engine.begin() as connection:
        connection.exec_driver_sql(ddl)
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with (
            raw.driver_connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({EVENT_COLUMNS}) FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            events.open("rb") as handle,
        ):
            for block in iter(lambda: handle.read(1 << 20), b""):
                copy.write(block)
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


# --- stages -----------------------------------------------------------------------------------------


def child(url: str, stage: str, *args: str) -> dict:
    """Run one stage in a fresh process (benchmarks.features_child) and return its JSON report."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.features_child", url, stage, *args],
        check=True,
        stdout=subprocess.PIPE,  # the report; errors and warnings pass through to our stderr
        text=True,
    )
    return json.loads(result.stdout)


def ingest_in_child(url: str, entity: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_child", url, entity, str(path)],
        check=True,
        stdout=subprocess.PIPE,  # the report; errors and warnings pass through to our stderr
        text=True,
    )
    return json.loads(result.stdout)


def import_company(engine: Engine, url: str, data: Path, events: Path) -> Row:
    """Import the six files in dependency order, events (in a fresh process) from ``events``."""
    seconds, peak_mb = 0.0, None
    for entity in IMPORT_ORDER:
        print(f"  {entity} ...", file=sys.stderr)
        if entity == "events":
            report = ingest_in_child(url, entity, events)
            seconds += report["seconds"]
            peak_mb = report["peak_mb"]
        else:
            path = demo_file(data, entity)
            assert path is not None, f"{data}: no {entity} file"
            seconds += ingest_file(
                engine, entity, path, options=IngestOptions(), now=datetime.now(UTC)
            ).seconds
    return Row("import: all six files", count(engine, "usage_events"), seconds, peak_mb=peak_mb)


@dataclass
class Results:
    table: list[Row]
    record: list[Row]  # timed for the record, no baseline
    sizes: dict[str, str]
    goals: list[str]
    notes: list[str]


def run(customers: int, months: int, data_dir: Path, *, keep_database: bool) -> Results:
    data = demo_data(data_dir, customers, months)
    last_day = data.end - timedelta(days=1)
    split = split_last_day(data.directory / "events.csv", last_day)
    as_of = last_day  # the day after the last imported event: sees every event of the first import
    next_as_of = data.end
    history = snapshot_days(
        as_of - timedelta(days=HISTORY_STEP_DAYS * (HISTORY_SNAPSHOTS - 1)), as_of, HISTORY_STEP_DAYS
    )
    record: list[Row] = []
    notes: list[str] = []
    with scratch_database(keep=keep_database) as url:
        engine = make_engine(url)
        try:
            upgrade_database(engine)
            print(f"Importing (events before {last_day}) ...", file=sys.stderr)
            imported = import_company(engine, url, data.directory, split.earlier)
            imported.stage = f"import: all six files, events before {last_day}"
            record.append(imported)
            record.append(Row("VACUUM ANALYZE after the import", imported.rows, vacuum_analyze(url)))
            events = imported.rows

            print("Floor query ...", file=sys.stderr)
            floor = child(url, "floor")
            floor_row = Row(
                f"floor: GROUP BY customer_id, event_type (warm, best of 2, work_mem {floor['work_mem']})",
                events,
                floor["seconds"],
                peak_mb=floor["peak_mb"],
            )
            notes.append(
                f"floor: warm-up {floor['warm_up_seconds']:.2f} s, then best of two"
                f" {floor['server_seconds']:.2f} s at the server's work_mem ({floor['server_work_mem']})"
                f" and {floor['seconds']:.2f} s at the feature jobs' ({floor['work_mem']}, the baseline);"
                f" {floor['groups']:,} rows fetched"
            )

            def vs_floor(stage: str, report: dict, seconds: float | None = None) -> Row:
                return Row(
                    stage,
                    events,
                    report["seconds"] if seconds is None else seconds,
                    "floor",
                    floor_row.seconds,
                    report["peak_mb"],
                )

            print("Usage rollup, full build ...", file=sys.stderr)
            full = child(url, "rollup", "--full")
            assert full["full_rebuild"], full
            full_row = vs_floor("usage rollup, full build", full)
            record.append(Row("VACUUM ANALYZE after the rollup build", events, vacuum_analyze(url)))
            rollup_rows = {t: count(engine, t) for t in ("usage_daily", "usage_daily_users")}

            print(f"One snapshot at {as_of} ...", file=sys.stderr)
            one = child(url, "snapshots", as_of.isoformat())
            one_row = vs_floor(
                f"one snapshot, as_of {as_of}"
                f" ({one['customers'][0]:,} customers, {one['features']} features)",
                one,
            )
            print(f"{len(history)} weekly snapshots ...", file=sys.stderr)
            weekly = child(url, "snapshots", *(d.isoformat() for d in history))
            history_row = vs_floor(f"{len(history)}-snapshot history, weekly to {as_of}", weekly)
            per_snapshot = vs_floor("  per snapshot of the history", weekly, weekly["seconds"] / len(history))
            runs = weekly["run_seconds"]
            notes.append(
                f"history snapshots: {min(runs):.2f}-{max(runs):.2f} s each,"
                f" {min(weekly['customers']):,}-{max(weekly['customers']):,} customers"
            )

            print(f"Importing the events of {last_day} ...", file=sys.stderr)
            day_import = ingest_in_child(url, "events", split.held_back)
            record.append(
                Row(
                    f"import: events of {last_day} ({split.held_back_rows:,} rows)",
                    count(engine, "usage_events"),
                    day_import["seconds"],
                    peak_mb=day_import["peak_mb"],
                )
            )
            events_after = count(engine, "usage_events")
            with engine.connect() as connection:
                pending = connection.execute(text("SELECT count(*) FROM usage_changes")).scalar_one()
            print("Incremental rollup ...", file=sys.stderr)
            incremental = child(url, "rollup")
            if incremental["full_rebuild"]:
                notes.append("WARNING: the daily refresh rebuilt the whole rollup (full_rebuild True)")
            print(f"Next day's snapshot at {next_as_of} ...", file=sys.stderr)
            after = child(url, "snapshots", next_as_of.isoformat())
            incremental_row = Row(
                f"incremental rollup: {split.held_back_rows:,} new events, {pending:,} customer-days"
                f" (full_rebuild {incremental['full_rebuild']})",
                events_after,
                incremental["seconds"],
                "usage rollup, full build",
                full_row.seconds,
                incremental["peak_mb"],
            )
            next_row = Row(
                f"next day's snapshot, as_of {next_as_of}",
                events_after,
                after["seconds"],
                "floor",
                floor_row.seconds,
                after["peak_mb"],
            )
            daily_row = Row(
                "incremental rollup + one snapshot",
                events_after,
                incremental_row.seconds + next_row.seconds,
                "full rollup + one snapshot",
                full_row.seconds + one_row.seconds,
                max(incremental["peak_mb"], after["peak_mb"]),
            )
            sizes = {
                "server": server_settings(engine),
                "customers": f"{count(engine, 'customers'):,}",
                "events": f"{events_after:,} ({size_mb(engine, 'usage_events'):,.0f} MB with indexes)",
                "usage_daily": f"{count(engine, 'usage_daily'):,} rows"
                f" ({size_mb(engine, 'usage_daily'):,.0f} MB)"
                f" ({rollup_rows['usage_daily']:,} after the full build)",
                "usage_daily_users": f"{count(engine, 'usage_daily_users'):,} rows"
                f" ({size_mb(engine, 'usage_daily_users'):,.0f} MB)"
                f" ({rollup_rows['usage_daily_users']:,} after the full build)",
            }
        finally:
            engine.dispose()
    if data.generated_seconds is not None:
        record.insert(0, Row("demo-data: generate all six files", events_after, data.generated_seconds))
    table = [floor_row, full_row, one_row, history_row, per_snapshot, incremental_row, next_row, daily_row]
    goals = [
        _goal(
            f"one snapshot within {SNAPSHOT_GOAL:.0f}x of the floor", one_row.ratio <= SNAPSHOT_GOAL, one_row
        ),
        _goal(
            f"incremental rollup under {INCREMENTAL_GOAL:.0%} of the full build",
            incremental_row.ratio < INCREMENTAL_GOAL and not incremental["full_rebuild"],
            incremental_row,
        ),
        f"incremental rollup + one snapshot vs full rollup + one snapshot: {_ratio(daily_row.ratio)}",
    ]
    return Results(table, record, sizes, goals, notes)


def _goal(goal: str, met: bool, row: Row) -> str:
    return f"{goal}: {'met' if met else 'MISSED'} ({_ratio(row.ratio)})"


# --- output -----------------------------------------------------------------------------------------


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 0.995 else f"{ratio:.1f}x"


def _cells(rows: list[Row], columns: list[tuple[str, Callable[[Row], str], bool]]) -> list[str]:
    """Markdown table lines, columns padded; right-aligned where the flag says so."""
    texts = [[get(r) for _, get, _ in columns] for r in rows]
    widths = [max(len(name), *(len(t[i]) for t in texts)) for i, (name, _, _) in enumerate(columns)]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, (_, _, right) in zip(values, widths, columns, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "| "
        + " | ".join(
            "-" * (w - 1) + (":" if right else "-") for w, (_, _, right) in zip(widths, columns, strict=True)
        )
        + " |"
    )
    return [line([name for name, _, _ in columns]), rule, *(line(t) for t in texts)]


def _peak(row: Row) -> str:
    return "" if row.peak_mb is None else f"{row.peak_mb:,.0f}"


def print_results(results: Results, customers: int, months: int, version: str) -> None:
    print(f"\nData: demo company, {customers:,} customers x {months} months (seed {SEED}), PostgreSQL.")
    print(f"Code: {version}.")
    for name, value in results.sizes.items():
        print(f"- {name}: {value}")
    print()
    for line in _cells(
        results.table,
        [
            ("stage", lambda r: r.stage, False),
            ("rows", lambda r: f"{r.rows:,}", True),
            ("seconds", lambda r: f"{r.seconds:.2f}", True),
            ("baseline", lambda r: r.baseline, False),
            ("baseline s", lambda r: "" if r.baseline_seconds is None else f"{r.baseline_seconds:.2f}", True),
            ("ratio", lambda r: _ratio(r.ratio), True),
            ("peak MB", _peak, True),
        ],
    ):
        print(line)
    print("\nFor the record (no baseline):\n")
    for line in _cells(
        results.record,
        [
            ("step", lambda r: r.stage, False),
            ("rows", lambda r: f"{r.rows:,}", True),
            ("seconds", lambda r: f"{r.seconds:.2f}", True),
            ("peak MB", _peak, True),
        ],
    ):
        print(line)
    print("\nGoals:")
    for goal in results.goals:
        print(f"- {goal}")
    print("\nNotes:")
    for note in results.notes:
        print(f"- {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.features", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument(
        "--keep-data",
        type=Path,
        metavar="DIR",
        help="generate the demo files here, or reuse them if they match",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the benchmark database for inspection"
    )
    args = parser.parse_args(argv)
    version = os.environ.get(_FROZEN)
    if version is None:
        return _run_frozen(args)
    if not Path(make_engine.__code__.co_filename).resolve().is_relative_to(Path.cwd().resolve()):
        raise SystemExit(f"the frozen run imported churn from {make_engine.__code__.co_filename}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="churn-bench-features-") as scratch:
        data_dir = args.keep_data or Path(scratch) / "data"
        results = run(args.customers, args.months, data_dir, keep_database=args.keep_database)
    print_results(results, args.customers, args.months, version)
    print(f"\nWhole run: {time.perf_counter() - started:,.0f} s.")
    return 0


# Set in the process that runs from the frozen copy: the code version it measures.
_FROZEN = "CHURN_BENCH_FEATURES_CODE"
_PACKAGES = ("benchmarks", "churn", "features")
_PRODUCT = ("churn", "features")  # the code whose changes would change the figures


def _run_frozen(args: argparse.Namespace) -> int:
    """Run the benchmark from a copy of the code taken now, so every stage measures the same code."""
    argv = ["--customers", str(args.customers), "--months", str(args.months)]
    if args.keep_data:
        argv += ["--keep-data", str(args.keep_data.resolve())]
    if args.keep_database:
        argv.append("--keep-database")
    return run_frozen("benchmarks.features", argv, packages=_PACKAGES, product=_PRODUCT, marker=_FROZEN)


if __name__ == "__main__":
    raise SystemExit(main())
