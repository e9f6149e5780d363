"""Shared fixtures: settings on tmp_path and a real database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from churn.db import make_engine
from churn.migrate import upgrade_database
from churn.settings import get_settings, normalise_database_url
from churn.tables import metadata

# The fake Slack Web API server and its fixture, for every test module.
pytest_plugins = ["tests.fake_slack"]

# Each xdist worker trains models at the same time: one OpenMP thread per worker keeps LightGBM from
# oversubscribing the cores (it busy-waits, so two workers x all cores is many times slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")

POSTGRES_URL = normalise_database_url(
    os.environ.get("CHURN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
# CI sets this so a PostgreSQL outage fails the run instead of quietly skipping half the suite.
REQUIRE_POSTGRES = os.environ.get("CHURN_REQUIRE_POSTGRES", "") not in ("", "0", "false")

BACKENDS = ["sqlite", "postgresql"]
# PostgreSQL databases already at the head schema: later tests only truncate them.
_migrated: set[str] = set()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session (per xdist worker)."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"churn_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        where = make_url(POSTGRES_URL).render_as_string(hide_password=True)
        message = (
            f"PostgreSQL is not reachable at {where} ({type(exc).__name__}); set CHURN_TEST_POSTGRES_URL"
        )
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message + " to run the PostgreSQL half of the suite")
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(url: str) -> None:
    _migrated.discard(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables at all, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'churn.db'}"
    url = request.getfixturevalue("postgres_database")
    _reset_postgres(url)
    return url


def _migrated_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'churn.db'}"
        engine = make_engine(url)
        upgrade_database(engine)
        engine.dispose()
        return url
    url = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    if url not in _migrated:
        _reset_postgres(url)
        upgrade_database(engine)
        _migrated.add(url)
    else:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    return _migrated_database(request.param, request, tmp_path)


@pytest.fixture
def both_databases(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """A migrated, empty database on every backend at once, for comparing their results."""
    return {backend: _migrated_database(backend, request, tmp_path) for backend in BACKENDS}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings pointing at tmp_path; tests may add CHURN_DATABASE_URL etc. before invoking the CLI."""
    for name in ("CHURN_DATABASE_URL", "MLFLOW_TRACKING_URI", "SLACK_BOT_TOKEN", "CHURN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    values: dict[str, str] = {}
    yield values
    get_settings.cache_clear()


@pytest.fixture
def run_cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """Invoke the `churn` CLI in-process with the test's environment; returns the click Result."""
    from churn.cli import app

    runner = CliRunner()

    def run(*args: str, **extra_env: str):
        for name, value in {**env, **extra_env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def demo_history(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 300-customer demo company with a fortnightly snapshot history, in SQLite (built once per worker)."""
    from tests.training_data import build_demo_history

    folder = tmp_path_factory.mktemp("demo-history")
    url = f"sqlite:///{folder / 'churn.db'}"
    build_demo_history(
        url, folder / "demo-data", customers=300, months=15, step_days=14, first=date(2025, 6, 2)
    )
    return url


@pytest.fixture(scope="session")
def demo_dataset(demo_history: str):
    """The demo history's labelled snapshots, as `churn train` assembles them."""
    from churn.config import ProductConfig
    from training.dataset import snapshot_dataset

    config = ProductConfig()
    engine = make_engine(demo_history)
    with engine.connect() as connection:
        dataset = snapshot_dataset(connection, config.features, config.labels)
    engine.dispose()
    return dataset


@pytest.fixture(scope="session")
def demo_training(demo_dataset):
    """A model trained and backtested on the demo history (no MLflow)."""
    from churn.config import ProductConfig
    from training.backtest import train

    return train(demo_dataset, ProductConfig())


@pytest.fixture
def api(database_url: str, env: dict[str, str], tmp_path: Path):
    """The REST API on each backend, in-process; ``api.key("read:scores")`` gives auth headers."""
    from churn.settings import Settings
    from tests.api_support import open_api

    settings = Settings(CHURN_DATABASE_URL=database_url, CHURN_HOME=str(tmp_path))
    harness, client = open_api(settings)
    with client:
        yield harness
