"""Demo-data generation and ingest speed, each beside a baseline measured in the same run.

    python -m benchmarks [--customers 2000] [--months 12] [--skip-postgres]

Baselines: for generation, copying the generated events file with pyarrow (pure I/O, no logic); for
ingest, the engine's own bulk path for the same file into a bare table with no indexes or checks
(SQLite ``executemany``, PostgreSQL ``COPY``). A second reference shows ``COPY`` into a table shaped
and indexed like ``usage_events``: the floor any upsert into the real table has to pay.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.csv as pacsv
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.features import BARE_EVENTS_DDL, EVENT_COLUMNS, INDEXED_EVENTS_DDL, copy_events
from churn.db import make_engine
from churn.demo import generate_demo_company
from churn.ingest import IngestOptions, ingest_file
from churn.migrate import upgrade_database
from churn.settings import normalise_database_url

POSTGRES_URL = normalise_database_url(
    os.environ.get("CHURN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)


@dataclass
class Row:
    stage: str
    rows: int
    seconds: float
    baseline: str
    baseline_seconds: float
    peak_mb: float | None = None

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def ingest_in_child(url: str, entity: str, path: Path) -> tuple[float, float]:
    """Import in a fresh process: (seconds the import took, that process's peak memory in MB)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_child", url, entity, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    return report["seconds"], report["peak_mb"]


def count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1


def bench_generation(out: Path, customers: int, months: int) -> tuple[Row, Path]:
    seconds = timed(
        lambda: generate_demo_company(
            out_dir=out, customers=customers, months=months, seed=1, end=date(2026, 10, 31)
        )
    )
    events = out / "events.csv"
    copy = out / "events-copy.csv"
    baseline = timed(lambda: pacsv.write_csv(pacsv.read_csv(events), copy))
    copy.unlink()
    return Row(
        "demo-data: generate all six files",
        count_rows(events),
        seconds,
        "pyarrow read+write events",
        baseline,
    ), events


def bench_sqlite(data: Path, workdir: Path) -> Row:
    url = f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    ingest_file(engine, "customers", data / "customers.csv", options=IngestOptions(), now=datetime.now(UTC))
    events = data / "events.csv"
    seconds, peak_mb = ingest_in_child(url, "events", events)

    def executemany() -> None:
        table = pacsv.read_csv(events)
        rows = list(zip(*(table[c].to_pylist() for c in table.column_names), strict=True))
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TABLE bare ({EVENT_COLUMNS})")
            connection.connection.driver_connection.executemany(
                f"INSERT INTO bare VALUES ({', '.join('?' * len(table.column_names))})", rows
            )

    baseline = timed(executemany)
    engine.dispose()
    return Row(
        "ingest events -> SQLite", count_rows(events), seconds, "executemany, bare table", baseline, peak_mb
    )


def bench_postgres(data: Path) -> list[Row]:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"churn_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        ingest_file(
            engine, "customers", data / "customers.csv", options=IngestOptions(), now=datetime.now(UTC)
        )
        events = data / "events.csv"
        seconds, peak_mb = ingest_in_child(url, "events", events)

        bare = copy_events(engine, events, "bare", BARE_EVENTS_DDL)
        indexed = copy_events(engine, events, "indexed", INDEXED_EVENTS_DDL)
        rows = count_rows(events)
        return [
            Row("ingest events -> PostgreSQL", rows, seconds, "COPY, bare table", bare, peak_mb),
            Row(
                "ingest events -> PostgreSQL",
                rows,
                seconds,
                "COPY, indexed like usage_events",
                indexed,
                peak_mb,
            ),
        ]
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def print_table(rows: list[Row], customers: int, months: int) -> None:
    print(f"\nData: demo company, {customers:,} customers x {months} months (seed 1).")
    print(f"Peak memory of this process (generation, baselines): {_own_peak_mb():,.0f} MB;")
    print("each ingest runs in a fresh process, whose peak is in the last column.\n")
    header = (
        f"| {'stage':<34} | {'rows':>10} | {'seconds':>8} | {'rows/s':>9} | {'baseline':<38} "
        f"| {'baseline s':>10} | {'ratio':>6} | {'peak MB':>7} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r.stage:<34} | {r.rows:>10,} | {r.seconds:>8.2f} | {r.rows / r.seconds:>9,.0f} | "
            f"{r.baseline:<38} | {r.baseline_seconds:>10.2f} | {r.ratio:>5.1f}x | "
            f"{'' if r.peak_mb is None else f'{r.peak_mb:,.0f}':>7} |"
        )


def _own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--skip-postgres", action="store_true", help="only SQLite (no server at hand)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
        workdir = Path(scratch)
        print(f"Generating {args.customers:,} customers x {args.months} months ...", file=sys.stderr)
        generation, _ = bench_generation(workdir / "data", args.customers, args.months)
        rows = [generation]
        print("Ingesting into SQLite ...", file=sys.stderr)
        rows.append(bench_sqlite(workdir / "data", workdir))
        if not args.skip_postgres:
            print("Ingesting into PostgreSQL ...", file=sys.stderr)
            rows.extend(bench_postgres(workdir / "data"))
        print_table(rows, args.customers, args.months)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
