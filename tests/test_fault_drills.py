"""Fault drills: break what production breaks (a killed scheduler, a database restart, Slack down, a full
or read-only database) on real processes, and check that nothing was lost, doubled or half-written.

docs/fault-drills.md says what each drill does and proves; run them with
`.venv/bin/pytest tests/test_fault_drills.py -v`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from sqlalchemy import Engine, create_engine, event, select, text, update
from sqlalchemy.engine import make_url

from churn.clock import utc_now
from churn.config import ProductConfig, ScheduleConfig
from churn.db import WRITES, make_engine
from churn.migrate import upgrade_database
from churn.settings import Settings
from churn.tables import (
    alerts,
    customers,
    ingest_runs,
    risk_scores,
    scoring_runs,
    snapshot_runs,
    usage_events,
)
from features.snapshot import load_snapshots
from serving.api_keys import create_key
from serving.job_runs import runs_of
from serving.scoring import _SCORING_LOCK  # the lock every scoring's write takes: the drill holds it
from tests import factories
from tests.alert_rows import alert_row, queue, states
from tests.conftest import POSTGRES_URL
from tests.drill_support import (
    ChurnProcess,
    PrivatePostgres,
    active_customers,
    count_rows,
    eventually,
    free_port,
    postgres_bin,
    store_jobs_due,
    wait_until_idle,
)
from tests.fake_slack import Failure
from tests.scoring_data import copy_demo_snapshots, snapshot_days_of
from training.model import ChurnModel

pytestmark = pytest.mark.slow

CHANNELS = {"cs-alerts": "#cs-alerts", "cs-enterprise": "#cs-enterprise", "ops": "C0OPS00001"}


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory: pytest.TempPathFactory, demo_training, demo_dataset) -> Path:
    """A CHURN_HOME whose MLflow store has the demo model registered as the champion."""
    from training.registry import promote
    from training.tracking import log_training_run

    home = tmp_path_factory.mktemp("drill-champion")
    settings = Settings(CHURN_HOME=str(home))
    config = ProductConfig()
    run = log_training_run(
        settings, demo_training, demo_dataset, config, report_html="", figures={}, tuned=False
    )
    promote(settings, run.version, config.promotion, force=True)
    return home


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., ChurnProcess]]:
    """Start `churn ...` processes; any still running when the test ends is killed."""
    started: list[ChurnProcess] = []

    def start(*args: str, name: str, env: dict[str, str]) -> ChurnProcess:
        process = ChurnProcess(list(args), tmp_path / f"{name}.log", env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def _process_env(database_url: str, home: Path, config: Path, **extra: str) -> dict[str, str]:
    return {
        "CHURN_DATABASE_URL": database_url,
        "CHURN_HOME": str(home),
        "MLFLOW_TRACKING_URI": Settings(CHURN_HOME=str(home)).resolved_mlflow_tracking_uri,
        "CHURN_CONFIG": str(config),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def _write_config(path: Path, **alerts_section: object) -> Path:
    path.write_text(yaml.safe_dump({"alerts": alerts_section}))
    return path


# --- 1. the scheduler killed during scoring ---------------------------------------------------------


@contextmanager
def _holding_the_scoring_write(engine: Engine) -> Iterator[None]:
    """Keep every scoring from writing (and so from finishing) while the block runs.

    PostgreSQL: the advisory lock each scoring's write transaction takes first. SQLite: the write
    lock itself (a scoring's write waits for it up to its busy timeout, 30 s).
    """
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCORING_LOCK})
        yield


def _waiting_for_the_scoring_lock(engine: Engine) -> bool:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%pg_advisory_xact_lock%'"
    )
    with engine.connect() as connection:
        return connection.execute(query).scalar_one() == 1


def _riskiest_fifth(engine: Engine, day: date, model: ChurnModel) -> float:
    """The risk above which a fifth of the day's customers are, by the champion (the demo model)."""
    with engine.connect() as connection:
        features = load_snapshots(connection, [day])
    return float(np.quantile(model.predict_risk(features), 0.8))


def test_drill_1_scheduler_killed_while_scoring_reruns_the_day_once_on_restart(
    database_url, engine, demo_history, demo_training, champion_home, processes, tmp_path
):
    copy_demo_snapshots(demo_history, database_url, snapshot_days_of(demo_history)[-1:])  # no score yet
    config = _write_config(tmp_path / "churn.yaml", stale_after_days={})
    store_jobs_due(database_url, ScheduleConfig(), "score")  # the 06:00 run fell due a moment ago
    env = _process_env(database_url, champion_home, config)

    first = processes("scheduler", name="first", env=env)
    (run,) = eventually(
        lambda: runs_of(engine, "score"), timeout_s=90, what="the score run to start", log=first.text
    )
    today = run.started_at.date()
    # The job refreshes today's features first; once they are in, the scoring proper runs.
    eventually(
        lambda: count_rows(engine, snapshot_runs, snapshot_runs.c.as_of == today),
        what="today's features",
        log=first.text,
    )
    with _holding_the_scoring_write(engine):
        assert count_rows(engine, scoring_runs) == 0, "the scoring finished before the drill could stop it"
        if engine.dialect.name == "postgresql":
            eventually(lambda: _waiting_for_the_scoring_lock(engine), what="the scoring to reach its write")
        else:
            wait_until_idle(first.pid)  # done computing: blocked at its write
        first.kill()
    assert [r.outcome for r in runs_of(engine, "score")] == ["running"]
    assert count_rows(engine, risk_scores) == count_rows(engine, alerts) == 0  # nothing half-written
    # Alert the riskiest fifth of today's customers, so the re-run has alerts to queue (or double).
    threshold = _riskiest_fifth(engine, today, demo_training.model)
    _write_config(
        config,
        stale_after_days={},
        threshold=threshold,
        rearm_below=threshold * 0.6,
        daily_cap_per_owner=1000,
        jump=None,
    )

    second = processes("scheduler", name="second", env=env)
    eventually(
        lambda: [r.outcome for r in runs_of(engine, "score")] == ["interrupted", "ok"],
        timeout_s=120,
        what="the interrupted run to be run again",
        log=second.text,
    )
    assert second.stop() == 0

    cut, redone = runs_of(engine, "score")
    assert (cut.pid, redone.pid) == (first.pid, second.pid)
    assert "its process ended before it finished" in cut.detail
    assert "its last run was interrupted; running it again now" in second.text()
    active = active_customers(engine, today)
    with engine.connect() as connection:
        scored = connection.execute(select(risk_scores).where(risk_scores.c.as_of == today)).all()
        (record,) = connection.execute(select(scoring_runs)).all()
        queued = connection.execute(select(alerts).where(alerts.c.as_of == today)).all()
    assert len(scored) == len(active) > 100  # one row per active customer, none twice
    assert {row.customer_id for row in scored} == active
    assert (record.as_of, record.customers) == (today, len(active))
    assert f"scored {len(active):,} customers as of {today}" in redone.detail
    # The day's first scoring: every customer at or above the threshold alerted, exactly once.
    assert len(queued) == len({row.dedupe_key for row in queued}) == record.alerts
    assert sorted(row.customer_id for row in queued) == sorted(
        row.customer_id for row in scored if row.risk >= threshold
    )
    assert queued, "the drill needs some alerts"
    assert "Traceback" not in first.text() + second.text()


# --- 2. the scheduler killed during dispatch ---------------------------------------------------------


def test_drill_2_scheduler_killed_mid_dispatch_delivers_every_alert_exactly_once_on_restart(
    database_url, engine, fake_slack, processes, tmp_path
):
    ids = queue(engine, [alert_row(f"C{i:02d}", channel=list(CHANNELS)[i % 3]) for i in range(12)])
    config = _write_config(tmp_path / "churn.yaml", channels=CHANNELS)
    store_jobs_due(database_url, ScheduleConfig(), "dispatch")
    env = _process_env(
        database_url, tmp_path, config, SLACK_BOT_TOKEN=fake_slack.token, SLACK_API_URL=fake_slack.url
    )
    # Slack keeps each message, then takes half a second to answer: a kill right after a message
    # arrives lands before the dispatcher hears back and marks it sent (the hard case).
    fake_slack.delay_after_post_s = 0.5

    first = processes("scheduler", name="first", env=env)
    eventually(
        lambda: len(fake_slack.messages) >= 5,
        timeout_s=90,
        what="the dispatch to be mid-batch",
        log=first.text,
    )
    first.kill()

    cut_short = states(engine)
    assert len(fake_slack.messages) == 5
    assert Counter(row["state"] for row in cut_short.values()) == {"sent": 4, "sending": 8}
    in_slack_unmarked = [i for i in fake_slack.alert_ids() if cut_short[i]["state"] != "sent"]
    assert len(in_slack_unmarked) == 1
    # The killed dispatcher's claims hold for 60 s + 5 x timeout_s before another may take them over;
    # age them past that instead of waiting it out.
    with engine.begin() as connection:
        connection.execute(
            update(alerts)
            .where(alerts.c.state == "sending")
            .values(claimed_until=utc_now() - timedelta(seconds=1))
        )

    fake_slack.delay_after_post_s = 0.0
    second = processes("scheduler", name="second", env=env)
    eventually(
        lambda: [r.outcome for r in runs_of(engine, "dispatch")] == ["interrupted", "ok"],
        timeout_s=90,
        what="the interrupted dispatch to be run again",
        log=second.text,
    )
    assert second.stop() == 0

    assert sorted(fake_slack.alert_ids()) == ids  # every alert in Slack, each exactly once
    final = states(engine)
    assert {row["state"] for row in final.values()} == {"sent"}
    by_ts = {message.ts: message.alert_id for message in fake_slack.messages}
    assert all(by_ts[row["slack_ts"]] == alert_id for alert_id, row in final.items())
    (_, redone) = runs_of(engine, "dispatch")
    assert redone.detail.startswith("7 sent to slack, 1 already there, 0 to retry, 0 failed, 0 still queued")
    assert final[in_slack_unmarked[0]]["attempts"] == 2  # claimed by both dispatchers, posted once


# --- 3. PostgreSQL restarted under the API -----------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this drill's own: stopping it never touches the server other tests use."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) to run a private cluster"
        )
    cluster = PrivatePostgres(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def _get(base: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(base + path, headers=headers, timeout=30)


def test_drill_3_postgres_restarted_under_the_api_answers_503_then_recovers_without_restarting_it(
    private_postgres, champion_home, processes, tmp_path
):
    url = private_postgres.url
    engine = make_engine(url)
    upgrade_database(engine)
    secret, _ = create_key(engine, "drill", ("admin",), now=utc_now())
    port = free_port()
    env = _process_env(url, champion_home, _write_config(tmp_path / "churn.yaml"))
    api = processes("serve", "--port", str(port), name="api", env=env)
    base, key = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {secret}"}
    eventually(lambda: _answers(base), timeout_s=90, what="the API to start", log=api.text)
    batch = {"rows": factories.customer_rows(3)}
    assert _get(base, "/readyz").status_code == 200

    private_postgres.stop()
    down = {
        "readyz": _get(base, "/readyz"),
        "read": _get(base, "/v1/risk-scores", key),
        "customer": _get(base, "/v1/customers/C001/risk", key),
        "write": httpx.post(base + "/v1/ingest/customers", json=batch, headers=key, timeout=30),
    }
    healthz = _get(base, "/healthz")
    private_postgres.start()
    back = {
        "readyz": _get(base, "/readyz"),
        "read": _get(base, "/v1/risk-scores", key),
        "write": httpx.post(base + "/v1/ingest/customers", json=batch, headers=key, timeout=30),
        "again": httpx.post(base + "/v1/ingest/customers", json=batch, headers=key, timeout=30),
    }

    assert healthz.status_code == 200  # the process is alive: nothing to restart
    assert {name: r.status_code for name, r in down.items()} == dict.fromkeys(down, 503)
    assert down["readyz"].json()["error"]["message"].startswith("the database does not answer")
    for name in ("read", "customer", "write"):
        assert down[name].headers["content-type"] == "application/json"
        assert down[name].json() == {
            "error": {"status": 503, "message": "the database is not available right now: try again shortly"}
        }
        assert down[name].headers["retry-after"] == "5"
    # Back without restarting the API: the pool's pre-ping replaced the connections the restart cut.
    assert {name: r.status_code for name, r in back.items()} == dict.fromkeys(back, 200)
    assert back["readyz"].json()["model_version"] == "1"
    assert (back["write"].json()["inserted"], back["again"].json()["unchanged"]) == (3, 3)
    assert api.popen.poll() is None  # the same process throughout
    api.stop()  # uvicorn shuts down cleanly, then re-raises SIGTERM as its exit status
    log = api.text()
    assert (
        "Application shutdown complete" in log
        and "Traceback" not in log
        and "the database is not available: connection failed" in log
    )
    assert secret not in log
    # The write refused during the outage left nothing; the retried one is in once, its repeat changed nothing.
    with engine.connect() as connection:
        imports = connection.execute(select(ingest_runs.c.inserted, ingest_runs.c.unchanged)).all()
    assert count_rows(engine, customers) == 3 and sorted(imports) == [(0, 3), (3, 0)]
    engine.dispose()


def _answers(base: str) -> bool:
    try:
        return _get(base, "/healthz").status_code == 200
    except httpx.TransportError:
        return False


# --- 4. Slack down for a while ----------------------------------------------------------------------


def test_drill_4_slack_down_for_a_while_delays_alerts_with_backoff_and_delivers_each_once(
    database_url, engine, fake_slack, run_cli, tmp_path
):
    ids = queue(engine, [alert_row(f"C{i}", channel=name) for i, name in enumerate(CHANNELS)])
    delivery = {"retry_base_s": 1, "max_attempts": 6, "timeout_s": 2}
    config = _write_config(tmp_path / "churn.yaml", channels=CHANNELS, delivery=delivery)
    setting = {
        "CHURN_DATABASE_URL": database_url,
        "CHURN_CONFIG": str(config),
        "SLACK_BOT_TOKEN": fake_slack.token,
    }

    def send(api_url: str):
        return run_cli("alerts", "send", SLACK_API_URL=api_url, **setting)

    unreachable = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens: connection refused

    # Slack cannot be reached at all.
    refused = send(unreachable)
    after_refused = states(engine)
    too_soon = send(fake_slack.url)
    calls_too_soon = sum(fake_slack.calls.values())
    # Then Slack answers, but its posts and history reads fail with 503, and it keeps the first
    # message despite answering 503 (so that alert is in Slack although the dispatcher heard an error).
    _wait_until_due(engine)
    fake_slack.fail_next(Failure(503, method="chat.postMessage", accepted=True))
    fake_slack.fail_next(
        *[Failure(503, method=m) for m in ("chat.postMessage", "conversations.history")] * 50
    )
    erroring = send(fake_slack.url)
    after_errors = states(engine)
    kept_despite_503 = fake_slack.alert_ids()
    fake_slack.failures.clear()  # Slack is back
    calls = sum(fake_slack.calls.values())
    too_soon_again = send(fake_slack.url)
    calls_too_soon_again = sum(fake_slack.calls.values()) - calls
    _wait_until_due(engine)
    recovered = send(fake_slack.url)

    for result in (refused, too_soon, erroring, too_soon_again, recovered):
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
    for row in after_refused.values():
        assert (row["state"], row["attempts"]) == ("pending", 1)
        assert "cannot reach Slack" in row["last_error"] and "(attempt 1 of 6, 4 tries)" in row["last_error"]
        assert row["next_attempt_at"] - row["updated_at"] == timedelta(seconds=1)  # retry_base_s
    for row in after_errors.values():
        assert (row["state"], row["attempts"]) == ("pending", 2)
        assert "Slack server error 503 (attempt 2 of 6, 4 tries)" in row["last_error"]
        assert row["next_attempt_at"] - row["updated_at"] == timedelta(seconds=2)  # doubled
    assert calls_too_soon == calls_too_soon_again == 0  # nothing due: the backoff holds, Slack is not asked
    assert len(kept_despite_503) == 1
    # Each alert in Slack exactly once: the one Slack kept during the 503s was found, not posted again.
    assert sorted(fake_slack.alert_ids()) == ids
    final = states(engine)
    assert {row["state"] for row in final.values()} == {"sent"}
    assert {row["attempts"] for row in final.values()} == {3}  # the passes that tried each, no more
    assert final[kept_despite_503[0]]["slack_ts"] == fake_slack.messages[0].ts


def _wait_until_due(engine: Engine) -> None:
    due = max(row["next_attempt_at"] for row in states(engine).values())
    eventually(lambda: utc_now() > due, timeout_s=30, what="the backoff to pass")


# --- 5. a full or read-only database during an import -----------------------------------------------


@contextmanager
def _sqlite_limited_to(pages: int) -> Iterator[None]:
    """Every SQLite connection opened meanwhile may grow its database to ``pages`` pages: a full disk."""

    def limit(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(Engine, "connect", limit)
    try:
        yield
    finally:
        event.remove(Engine, "connect", limit)


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_drill_5_sqlite_disk_full_during_ingest_is_one_line_writes_nothing_and_the_rerun_loads_once(
    run_cli, env, tmp_path
):
    url = f"sqlite:///{tmp_path / 'churn.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    people = factories.write_csv(tmp_path / "customers.csv", factories.customer_rows(3))
    events = factories.write_csv(tmp_path / "events.csv", factories.event_rows(20_000))
    assert run_cli("ingest", "customers", people, CHURN_DATABASE_URL=url).exit_code == 0
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()

    with _sqlite_limited_to(pages + 20):  # room for 80 KB more: the events need megabytes
        full = run_cli("ingest", "events", events, CHURN_DATABASE_URL=url)
    with engine.connect() as connection:
        intact = connection.exec_driver_sql("PRAGMA integrity_check").scalar_one()
    stored_after_failure = count_rows(engine, usage_events)
    rerun = run_cli("ingest", "events", events, "--json", CHURN_DATABASE_URL=url)
    again = run_cli("ingest", "events", events, "--json", CHURN_DATABASE_URL=url)

    assert full.exit_code == 2
    assert _error_lines(full) == [f"error: the database {url} is out of disk space: database or disk is full"]
    assert "Traceback" not in full.output
    assert (stored_after_failure, intact) == (0, "ok")  # nothing half-written, the file sound
    assert count_rows(engine, ingest_runs) == 3
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["inserted"] == 20_000
    assert json.loads(again.stdout)["unchanged"] == 20_000
    assert count_rows(engine, usage_events) == 20_000
    engine.dispose()


@pytest.fixture
def scratch_postgres(postgres_database: str) -> Iterator[tuple[str, Engine]]:
    """A database of the drill's own on the shared server (the other tests' are never made read-only)."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"churn_drill_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade_database(engine)
    try:
        yield url, admin
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_drill_5_postgres_read_only_database_during_ingest_is_one_line_writes_nothing_and_the_rerun_loads_once(
    scratch_postgres, run_cli, env, tmp_path
):
    url, admin = scratch_postgres
    name = make_url(url).database
    engine = make_engine(url)
    people = factories.write_csv(tmp_path / "customers.csv", factories.customer_rows(3))
    with admin.connect() as connection:  # as a failover to a standby, or maintenance, leaves it
        connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))

    refused = run_cli("ingest", "customers", people, CHURN_DATABASE_URL=url)
    nothing = (count_rows(engine, customers), count_rows(engine, ingest_runs))
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    engine.dispose()  # sessions read the database's default when they start
    rerun = run_cli("ingest", "customers", people, "--json", CHURN_DATABASE_URL=url)
    again = run_cli("ingest", "customers", people, "--json", CHURN_DATABASE_URL=url)

    assert refused.exit_code == 2
    where = make_url(url).render_as_string(hide_password=True)
    assert _error_lines(refused) == [
        f"error: the database {where} is read-only: cannot execute DROP TABLE in a read-only transaction"
    ]
    assert "Traceback" not in refused.output
    assert nothing == (0, 0)
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["inserted"] == 3
    assert json.loads(again.stdout)["unchanged"] == 3
    assert (count_rows(engine, customers), count_rows(engine, ingest_runs)) == (3, 2)
    engine.dispose()
