"""Nothing lost, nothing twice: a feature build killed midway leaves whole snapshots, and a rerun
finishes the rest without writing any day twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from churn.demo import generate_demo_company
from churn.demo_pipeline import ingest_demo
from churn.ingest import IngestOptions
from churn.tables import feature_snapshots, snapshot_runs
from features.snapshot import built_days, snapshot_days

pytestmark = pytest.mark.slow

FIRST, LAST = date(2024, 12, 2), date(2025, 5, 26)


def _runs(engine) -> dict[date, int]:
    with engine.connect() as connection:
        return {
            (d if isinstance(d, date) else date.fromisoformat(str(d))): n
            for d, n in connection.execute(select(snapshot_runs.c.as_of, snapshot_runs.c.customers))
        }


def _stored(engine) -> dict[date, int]:
    column = feature_snapshots.c.as_of
    with engine.connect() as connection:
        rows = connection.execute(select(column, func.count()).group_by(column)).all()
    return {(d if isinstance(d, date) else date.fromisoformat(str(d))): n for d, n in rows}


def test_a_killed_build_keeps_whole_snapshots_and_the_rerun_builds_each_day_once(
    engine, database_url, tmp_path
):
    generate_demo_company(out_dir=tmp_path / "demo", customers=150, months=10, seed=5, end=date(2025, 6, 1))
    ingest_demo(engine, tmp_path / "demo", options=IngestOptions(), now=datetime(2025, 6, 2, tzinfo=UTC))
    command = [sys.executable, "-m", "churn", "features", "build", "--from", str(FIRST), "--to", str(LAST)]
    env = {**os.environ, "CHURN_DATABASE_URL": database_url, "CHURN_HOME": str(tmp_path)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _runs(engine) and time.monotonic() < deadline:  # kill once the first days are written
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    killed = _runs(engine)
    assert 0 < len(killed) < len(snapshot_days(FIRST, LAST, 7)), "kill the build while it is running"
    assert _stored(engine) == killed  # every day written is whole; no day is half there

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert rerun.returncode == 0, rerun.stderr
    assert built_days(engine) == snapshot_days(FIRST, LAST, 7)
    assert _stored(engine) == _runs(engine)
    assert {day: _runs(engine)[day] for day in killed} == killed  # kept, not rebuilt
