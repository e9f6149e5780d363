"""Nothing lost, nothing twice: a killed import leaves no trace and the retry loads each row once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from churn.ingest import IngestOptions, ingest_file
from churn.tables import ingest_runs, usage_events
from tests import factories

pytestmark = pytest.mark.slow


def _count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize("delay_s", [0.2, 1.5])
def test_a_killed_import_writes_nothing_and_the_retry_loads_each_row_once(
    engine, database_url, tmp_path: Path, delay_s: float
):
    now = datetime(2024, 12, 1, tzinfo=UTC)
    ingest_file(
        engine,
        "customers",
        factories.write_csv(tmp_path / "c.csv", factories.customer_rows(3)),
        options=IngestOptions(),
        now=now,
    )
    events = factories.write_csv(tmp_path / "events.csv", factories.event_rows(400_000))
    env = {**os.environ, "CHURN_DATABASE_URL": database_url, "CHURN_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "churn", "ingest", "events", str(events), "--json"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    started = process.stderr.readline()  # "Importing events from ..." once the work begins
    assert started.startswith("Importing events"), started
    time.sleep(delay_s)
    assert process.poll() is None, "the import finished before it could be killed; use a larger file"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    assert _count(engine, usage_events) == 0
    assert _count(engine, ingest_runs) == 1  # only the customers import

    retry = ingest_file(engine, "events", events, options=IngestOptions(), now=now)
    again = ingest_file(engine, "events", events, options=IngestOptions(), now=now)

    assert (retry.inserted, again.inserted, again.unchanged) == (400_000, 0, 400_000)
    assert _count(engine, usage_events) == 400_000
