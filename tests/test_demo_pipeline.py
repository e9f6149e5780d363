"""`churn demo`, the README's main command, end to end on a small company (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from churn.db import make_engine
from churn.tables import CONTRACT_TABLES

pytestmark = pytest.mark.slow


def test_demo_generates_imports_and_a_second_run_reuses_everything(run_cli, env, database_url):
    env["CHURN_DATABASE_URL"] = database_url

    first = run_cli("demo", "--customers", "60", "--months", "4")
    second = run_cli("demo", "--customers", "60", "--months", "4")

    assert first.exit_code == 0, first.stderr
    assert second.exit_code == 0, second.stderr
    out = Path(os.environ["CHURN_HOME"]) / "demo-data"
    written = json.loads((out / "demo.json").read_text(encoding="utf-8"))["rows"]
    engine = make_engine(database_url)
    with engine.connect() as connection:
        stored = {
            entity: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for entity, table in CONTRACT_TABLES.items()
        }
    engine.dispose()
    assert stored == written
    assert stored["events"] > 1_000 and stored["cancellations"] > 0
    assert "Reusing the demo company" in second.output
    assert "Import summary" in second.output
    for run in (first, second):  # both end by saying what to open next
        next_steps = run.output[run.output.index("What to open next") :]
        for word in ("mlflow", "serve", "scheduler", "replay", "notebooks/"):
            assert word in next_steps, word


def test_demo_files_from_an_earlier_day_are_reused(tmp_path):
    from datetime import date

    from churn.demo import generate_demo_company
    from churn.demo_pipeline import demo_files_match

    generate_demo_company(out_dir=tmp_path, customers=20, months=3, seed=3, end=date(2025, 1, 10))

    assert demo_files_match(tmp_path, customers=20, months=3, seed=3)
    assert not demo_files_match(tmp_path, customers=20, months=3, seed=4)
