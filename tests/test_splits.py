"""Backtest splits: every test row is later than anything its fold learned from, labels included."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from churn.config import TrainingConfig
from training.dataset import Dataset, DatasetError
from training.splits import backtest_folds, final_window


def _dataset(days: int, *, horizon_days: int = 28, with_time: bool = True, customers: int = 40) -> Dataset:
    rng = np.random.default_rng(1)
    as_of = [date(2025, 1, 6) + timedelta(days=7 * i) for i in range(days)]
    keys = pd.DataFrame(
        {
            "customer_id": np.repeat([f"C{i}" for i in range(customers)], days),
            "as_of": as_of * customers,
            "trainable": True,
        }
    )
    if not with_time:
        keys = keys[["customer_id", "trainable"]].assign(customer_id=[f"R{i}" for i in range(len(keys))])
    label = pd.Series((rng.random(len(keys)) < 0.2).astype("int64"))
    frame = pd.DataFrame({"x": rng.normal(size=len(keys))})
    return Dataset(frame, label, keys, [], "test", horizon_days, "as_of" if with_time else None, grace_days=7)


@pytest.mark.parametrize("config", [TrainingConfig(), TrainingConfig(folds=5, holdout_share=0.3)])
def test_no_fold_learns_from_a_label_that_reaches_into_its_test_days(config):
    dataset = _dataset(40)
    as_of = pd.to_datetime(dataset.keys["as_of"])
    horizon = pd.Timedelta(days=dataset.horizon_days + dataset.grace_days)  # the grace proves an end

    folds = backtest_folds(dataset, config)

    assert len(folds) == config.folds
    for fold in folds:
        learned = fold.train.fit | fold.train.stop | fold.train.calibrate
        assert (as_of[learned] + horizon).max() <= as_of[fold.test].min()
        assert as_of[fold.train.fit].max() < as_of[fold.train.stop].min()
        assert as_of[fold.train.stop].max() <= as_of[fold.train.calibrate].min()
        assert not (learned & fold.test).any()
    tested = [as_of[f.test] for f in folds]
    assert all(a.max() < b.min() for a, b in itertools.pairwise(tested))
    assert tested[-1].max() == as_of.max()


def test_trees_learn_only_from_labels_that_closed_before_the_held_out_days():
    dataset = _dataset(40)
    as_of = pd.to_datetime(dataset.keys["as_of"])
    reach = pd.Timedelta(days=dataset.horizon_days + dataset.grace_days)

    for fold in backtest_folds(dataset, TrainingConfig()):
        window = fold.train
        assert (as_of[window.fit] + reach).max() <= as_of[window.stop | window.calibrate].min()


def test_rows_the_label_policy_leaves_out_are_tested_but_never_learned_from():
    dataset = _dataset(40)
    dataset.keys.loc[dataset.keys["customer_id"] == "C3", "trainable"] = False
    left_out = (dataset.keys["customer_id"] == "C3").to_numpy()

    folds = backtest_folds(dataset, TrainingConfig())

    for fold in folds:
        assert not (left_out & (fold.train.fit | fold.train.stop | fold.train.calibrate)).any()
    assert any((left_out & fold.test).any() for fold in folds)
    window = final_window(dataset, TrainingConfig())
    assert not (left_out & (window.fit | window.stop | window.calibrate)).any()


def test_the_served_model_holds_out_the_latest_days():
    dataset = _dataset(20)
    as_of = pd.to_datetime(dataset.keys["as_of"])

    window = final_window(dataset, TrainingConfig())

    assert as_of[window.fit].min() == as_of.min()
    assert as_of[window.calibrate].max() == as_of.max()
    assert as_of[window.fit].max() < as_of[window.stop].min()


def test_a_short_history_is_refused_with_what_to_do():
    with pytest.raises(DatasetError, match=r"not enough history for a 3-fold backtest: 6 labelled snapshot"):
        backtest_folds(_dataset(6), TrainingConfig())


def test_without_time_every_row_is_tested_once_with_both_classes_in_each_fold():
    dataset = _dataset(10, with_time=False)

    folds = backtest_folds(dataset, TrainingConfig())

    tested = np.sum([f.test for f in folds], axis=0)
    assert (tested == 1).all()
    for fold in folds:
        assert 0 < dataset.label[fold.test].sum() < fold.test.sum()
        assert not (fold.train.fit & fold.test).any()
