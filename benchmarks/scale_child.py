"""One stage of the scale run that needs the product's objects, in a fresh process, reported as JSON.

    python -m benchmarks.scale_child dataset URL HOME TABLE HORIZON   # the labelled history to Parquet
    python -m benchmarks.scale_child bare TABLE ROUNDS                # bare lightgbm.train on it
    python -m benchmarks.scale_child floors URL HOME DAY              # predict + fetch + COPY floors
    python -m benchmarks.scale_child dispatch URL HOME INTERVAL       # churn's dispatcher vs a fake Slack

A fresh process per stage makes the peak memory (VmHWM) that stage's own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.ingest_child import peak_memory_mb
from churn.config import load_config
from churn.db import make_engine
from churn.settings import Settings


def _settings(url: str, home: Path, **extra: str) -> Settings:
    return Settings(CHURN_HOME=str(home), CHURN_DATABASE_URL=url, **extra)


def export_dataset(url: str, home: Path, table: Path, horizon_days: int) -> dict[str, Any]:
    """The rows ``churn train`` trains on (labelled, trainable), as Parquet for the bare fit."""
    import pandas as pd

    from training.dataset import snapshot_dataset

    config = load_config(home / "churn.yaml")
    engine = make_engine(url)
    started = time.perf_counter()
    with engine.connect() as connection:
        dataset = snapshot_dataset(
            connection, config.features, config.labels, horizon_days=horizon_days, reasons=config.reasons
        )
    engine.dispose()
    trainable = dataset.keys["trainable"].to_numpy()
    frame = dataset.frame[trainable].reset_index(drop=True)
    frame = pd.concat([frame, dataset.label[trainable].reset_index(drop=True).rename("__churned")], axis=1)
    frame.to_parquet(table)
    return {
        "seconds": time.perf_counter() - started,
        "rows": int(trainable.sum()),
        "all_rows": len(dataset.frame),
        "positives": int(dataset.label[trainable].sum()),
        "features": dataset.frame.shape[1],
    }


def bare_fit(table: Path, rounds: int) -> dict[str, Any]:
    """The training baseline: read the table, one ``lightgbm.train`` of ``rounds`` on every row."""
    import lightgbm as lgb
    import pandas as pd

    from churn.config import TrainingConfig
    from training.model import default_params

    started = time.perf_counter()
    frame = pd.read_parquet(table)
    label = frame.pop("__churned")
    params = default_params(len(frame), int(label.sum()), TrainingConfig(threads=0))
    booster = lgb.train(params, lgb.Dataset(frame, label=label), num_boost_round=rounds)
    return {"seconds": time.perf_counter() - started, "rounds": booster.current_iteration()}


def floors(url: str, home: Path, day: date) -> dict[str, Any]:
    """The scoring floors for the champion on ``day`` (see benchmarks.scoring)."""
    from benchmarks.scoring import scoring_floors
    from training.registry import load_model

    model, version, _ = load_model(_settings(url, home))
    return {**scoring_floors(url, model, day), "model_version": version}


def dispatch(url: str, home: Path, interval_s: float) -> dict[str, Any]:
    """Send every queued alert to a fake Slack allowing one message per ``interval_s`` per channel."""
    from serving.dispatch import dispatch_pending
    from tests.fake_slack import FakeSlack

    config = load_config(home / "churn.yaml")
    engine = make_engine(url)
    with engine.connect() as connection:
        queued = connection.execute(text("SELECT count(*) FROM alerts WHERE state = 'pending'")).scalar_one()
        channels = connection.execute(
            text("SELECT count(DISTINCT channel) FROM alerts WHERE state = 'pending'")
        ).scalar_one()
        owners = connection.execute(
            text("SELECT DISTINCT owner_email FROM alerts WHERE owner_email IS NOT NULL")
        ).scalars()
        users = {email: f"U{n:09d}" for n, email in enumerate(owners)}
    with FakeSlack(seed=7) as fake:
        fake.users |= users  # every owner has a Slack account, so alerts follow the routes
        for name in config.alerts.channels:
            if fake.channel_id(name) is None:
                fake.channels[f"C0{name.upper().replace('-', '')[:8]:0<8}"] = name
        fake.limit_per_channel(interval_s)
        settings = _settings(url, home, SLACK_BOT_TOKEN=fake.token, SLACK_API_URL=fake.url)
        # Alerts are due at once; each pass sends up to delivery.batch_size, as the scheduler does
        # every few minutes. The clock moves past any backoff so a retry is due at the next pass.
        now, passes = datetime.now(UTC), 0
        started = time.perf_counter()
        while passes < 1_000:
            passes += 1
            summary = dispatch_pending(engine, settings, config, now=now)
            if summary.kept == 0:
                break
            now += timedelta(minutes=10)
        seconds = time.perf_counter() - started
        seen = Counter(fake.alert_ids())
        rate_limited = len(fake.rate_limited)
    with engine.connect() as connection:
        states = dict(connection.execute(text("SELECT state, count(*) FROM alerts GROUP BY state")).all())
        per_channel = dict(
            connection.execute(
                text("SELECT channel, count(*) FROM alerts WHERE state = 'sent' GROUP BY channel")
            ).all()
        )
    engine.dispose()
    return {
        "seconds": seconds,
        "queued": queued,
        "channels": channels,
        "passes": passes,
        "delivered": len(seen),
        "duplicates": sum(n - 1 for n in seen.values()),
        "rate_limited": rate_limited,
        "states": states,
        "per_channel": per_channel,
    }


def main() -> None:
    stage, *args = sys.argv[1:]
    match stage:
        case "dataset":
            report = export_dataset(args[0], Path(args[1]), Path(args[2]), int(args[3]))
        case "bare":
            report = bare_fit(Path(args[0]), int(args[1]))
        case "floors":
            report = floors(args[0], Path(args[1]), date.fromisoformat(args[2]))
        case "dispatch":
            report = dispatch(args[0], Path(args[1]), float(args[2]))
        case _:
            raise SystemExit(f"unknown stage {stage!r} (expected dataset, bare, floors or dispatch)")
    print(json.dumps({**report, "peak_mb": peak_memory_mb(), "pid": os.getpid()}, default=str))


if __name__ == "__main__":
    main()
