"""Labelled training data from the database: only known labels, the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from churn.config import ProductConfig
from churn.db import make_engine
from features.labels import observed_until
from tests.training_data import build_demo_history
from training.dataset import DatasetError, snapshot_dataset

CONFIG = ProductConfig()


def _dataset(url: str, **options):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return snapshot_dataset(connection, CONFIG.features, CONFIG.labels, **options)
    finally:
        engine.dispose()


def test_both_databases_give_the_same_training_rows(both_databases, tmp_path):
    for backend, url in both_databases.items():
        build_demo_history(
            url, tmp_path / backend, customers=60, months=12, step_days=28, first=date(2025, 7, 7)
        )

    sqlite, postgres = _dataset(both_databases["sqlite"]), _dataset(both_databases["postgresql"])

    assert sqlite.fingerprint() == postgres.fingerprint()
    assert sqlite.summary() == postgres.summary()


def test_only_snapshots_whose_horizon_has_passed_are_trained_on(demo_history, demo_dataset):
    engine = make_engine(demo_history)
    with engine.connect() as connection:
        until = observed_until(connection)
    engine.dispose()
    grace = timedelta(days=CONFIG.labels.grace_days)
    latest = max(demo_dataset.days)

    assert latest + timedelta(days=90) + grace <= until.date()
    assert demo_dataset.label.isin([0, 1]).all() and 0 < demo_dataset.label.mean() < 0.5
    assert not {"customer_id", "as_of", "churned", "churned_at", "reason_code"} & set(
        demo_dataset.frame.columns
    )
    churned_at = demo_dataset.keys.loc[demo_dataset.label == 1, "churned_at"]
    as_of = pd.to_datetime(demo_dataset.keys.loc[demo_dataset.label == 1, "as_of"]).dt.tz_localize("UTC")
    assert ((churned_at > as_of) & (churned_at <= as_of + pd.Timedelta(days=90))).all()


def test_a_shorter_horizon_labels_fewer_churns_and_reaches_closer_to_today(demo_history, demo_dataset):
    short = _dataset(demo_history, horizon_days=30)

    assert short.horizon_days == 30
    assert short.label.mean() < demo_dataset.label.mean()
    assert max(short.days) > max(demo_dataset.days)


def test_no_snapshots_or_no_labels_yet_is_a_clear_error(database_url, tmp_path):
    with pytest.raises(DatasetError, match=r"no feature snapshots yet: build a history first"):
        _dataset(database_url)

    build_demo_history(
        database_url, tmp_path / "demo", customers=20, months=6, step_days=14, first=date(2026, 5, 4)
    )
    with pytest.raises(
        DatasetError, match=r"none of the 2 snapshots \(2026-05-04 to 2026-05-18\) has a label yet"
    ):
        _dataset(database_url)
