"""Data for training tests: a small demo company with a snapshot history, and synthetic feature tables."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from churn.config import ProductConfig
from churn.db import make_engine
from churn.demo import generate_demo_company
from churn.demo_pipeline import ingest_demo
from churn.ingest import IngestOptions
from churn.migrate import upgrade_database
from features.snapshot import build_snapshots, snapshot_days

DEMO_END = date(2026, 6, 1)
# Imports happen "now" = just after the demo's data window, so every fact is in the past.
IMPORTED_AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def build_demo_history(
    url: str, folder: Path, *, customers: int, months: int, step_days: int, first: date
) -> None:
    """Generate, import and snapshot a demo company: the data `churn train` reads."""
    generate_demo_company(out_dir=folder, customers=customers, months=months, seed=3, end=DEMO_END)
    engine = make_engine(url)
    upgrade_database(engine)
    ingest_demo(engine, folder, options=IngestOptions(), now=IMPORTED_AT)
    days = snapshot_days(first, date(2026, 5, 25), step_days)
    build_snapshots(engine, days, ProductConfig().features, now=IMPORTED_AT)
    engine.dispose()


def panel_table(*, customers: int = 300, days: int = 16, seed: int = 0) -> pd.DataFrame:
    """A customer × week feature table whose churn depends on a hidden health that usage, tickets
    and NPS reveal (``noise`` and ``segment`` carry no signal)."""
    rng = np.random.default_rng(seed)
    rows = customers * days
    customer = np.repeat([f"A{i:04d}" for i in range(customers)], days)
    as_of = np.tile(pd.date_range("2025-01-06", periods=days, freq="7D").date, customers)
    health = np.repeat(rng.normal(size=customers), days) + rng.normal(scale=0.5, size=rows)
    usage = np.exp(2 + 0.8 * health + rng.normal(scale=0.3, size=rows))
    tickets = rng.poisson(np.exp(0.2 - 0.6 * health))
    nps = np.clip(np.round(7 + 1.5 * health + rng.normal(size=rows)), 0, 10)
    logit = -3.2 - 1.6 * health
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    table = pd.DataFrame(
        {
            "account": customer,
            "week": as_of,
            "events_30d": usage.round(),
            "events_30d_vs_prev_30d": np.tanh(health + rng.normal(scale=0.5, size=rows)),
            "open_tickets": tickets.astype(float),
            "last_nps": nps,
            "noise": rng.normal(size=rows),
            "segment": rng.choice(["SMB", "Mid-Market", "Enterprise"], size=rows),
            "churned": churned.astype(int),
        }
    )
    table.loc[rng.random(rows) < 0.1, "last_nps"] = np.nan
    return table
