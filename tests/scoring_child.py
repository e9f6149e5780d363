"""A scoring run in its own process, for tests that kill it: python -m tests.scoring_child URL MODEL DAY CONFIG."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime

from churn.config import ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from serving.scoring import score_day
from training.model import ChurnModel

if __name__ == "__main__":
    url, model_dir, day, config_json = sys.argv[1:5]
    engine = make_engine(url)
    model = (ChurnModel.load(__import__("pathlib").Path(model_dir)), "1", "run-1")
    config = ProductConfig.model_validate_json(config_json)
    print("scoring", flush=True)
    score_day(
        engine,
        Settings(),
        config,
        as_of=date.fromisoformat(day),
        now=datetime(2026, 6, 1, 12, tzinfo=UTC),
        model=model,
    )
    print("done", flush=True)
