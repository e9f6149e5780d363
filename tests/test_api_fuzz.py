"""A property-based run of the OpenAPI spec (schemathesis, in-process): every operation, with an admin key,
on scored demo data and a champion; no 5xx, and every response as the spec documents it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from churn.config import ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from tests.alert_rows import alert_row, queue
from tests.api_support import open_api
from tests.scoring_data import copy_demo_snapshots, snapshot_days_of

# Per operation; with the handful of operations the API has, the whole run stays well under a minute.
MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

_champion_homes: dict[str, Path] = {}


def champion_home(tmp_path_factory: pytest.TempPathFactory, demo_training, demo_dataset) -> Path:
    """A CHURN_HOME whose MLflow store has the demo model as its champion (registered once per worker)."""
    if "home" not in _champion_homes:
        from training.registry import promote
        from training.tracking import log_training_run

        home = tmp_path_factory.mktemp("fuzz-champion")
        settings_ = Settings(CHURN_HOME=str(home))
        config = ProductConfig()
        run = log_training_run(
            settings_, demo_training, demo_dataset, config, report_html="", figures={}, tuned=False
        )
        promote(settings_, run.version, config.promotion, force=True)
        _champion_homes["home"] = home
    return _champion_homes["home"]


@dataclass
class Fuzzed:
    app: FastAPI
    headers: dict[str, str] = field(repr=False)  # a failure's report must not print the key


@pytest.fixture
def fuzzed(database_url, env, demo_history, demo_training, demo_dataset, tmp_path_factory):
    """The API on two scored demo days with a champion, and admin headers."""
    from serving.scoring import score_day

    home = champion_home(tmp_path_factory, demo_training, demo_dataset)
    settings_ = Settings(
        CHURN_DATABASE_URL=database_url, CHURN_HOME=str(home), SLACK_SIGNING_SECRET="fuzz-signing-secret"
    )
    days = snapshot_days_of(demo_history)[-2:]
    copy_demo_snapshots(demo_history, database_url, days)
    engine = make_engine(database_url)
    for day in days:
        now = datetime.combine(day, day_time(6), tzinfo=UTC)
        score_day(
            engine, settings_, ProductConfig(), as_of=day, now=now, model=(demo_training.model, "1", "r")
        )
    queue(engine, [alert_row("C-FUZZ-1"), alert_row("C-FUZZ-2", state="sent")])
    engine.dispose()
    harness, client = open_api(settings_)
    with client:
        yield Fuzzed(client.app, harness.key("admin", name="fuzz"))


def test_every_operation_survives_the_fuzzer(fuzzed):
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    failures = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problem = _fuzz(operation, mode, fuzzed.headers)
            if problem:
                failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = problem

    assert {"GET /healthz", "GET /metrics"} <= {f"{o.method.upper()} {o.path}" for o in operations}
    assert not failures, "\n\n".join(f"{name}:\n{problem}" for name, problem in failures.items())


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """The first failing case of one operation, shrunk and described, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the run's time stays bounded
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        case.call_and_validate(headers=dict(headers), checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # no parameters to break: nothing negative to send
        return None
    except (Exception, BaseExceptionGroup) as exc:  # a check failed: its report says request and response
        return str(exc)[:4000]
    return None
