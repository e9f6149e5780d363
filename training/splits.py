"""How data is split so every figure is out of time: rolling-origin folds and a later holdout slice.

A snapshot's label looks ``horizon_days`` past its as_of. A fold therefore trains only on snapshots
whose whole label window closed before its test window opens (the purge): otherwise the training
labels would already know how the test period ended. Within a training window, the latest days are
held out for early stopping and calibration, so both are fitted on data later than the trees.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from churn.config import TrainingConfig
from training.dataset import Dataset, DatasetError


@dataclass(frozen=True)
class Window:
    """Rows to learn from: ``fit`` grows the trees, ``stop`` picks when to stop, ``calibrate`` maps
    scores to probabilities (``stop`` and ``calibrate`` are the same rows when data is short)."""

    fit: np.ndarray
    stop: np.ndarray
    calibrate: np.ndarray


@dataclass(frozen=True)
class Fold:
    """One backtest fold: a training window and the later rows it is tested on."""

    number: int
    train: Window
    test: np.ndarray
    test_from: date | None = None
    test_to: date | None = None
    train_to: date | None = None

    def describe(self) -> str:
        """What the fold trains and tests on, in words."""
        if self.test_from is None:
            return f"cross-validation part {self.number}"
        return f"trained on days to {self.train_to}, tested {self.test_from} to {self.test_to}"


def backtest_folds(dataset: Dataset, config: TrainingConfig) -> list[Fold]:
    """Rolling-origin folds over time, or stratified cross-validation when the data has no time."""
    if not dataset.has_time:
        return _cross_validation(dataset, config)
    days = dataset.days
    reach = dataset.label_reach
    as_of = dataset.keys["as_of"].to_numpy()
    size = _block_size(days, reach, dataset.horizon_days, config)
    folds = []
    for number in range(config.folds):
        first = len(days) - (config.folds - number) * size
        test_days = days[first : first + size]
        train_days = [d for d in days if d + reach <= test_days[0]]
        test = np.isin(as_of, test_days)
        folds.append(
            Fold(
                number=number + 1,
                train=time_window(dataset, train_days, config),
                test=test,
                test_from=test_days[0],
                test_to=test_days[-1],
                train_to=train_days[-1],
            )
        )
    return folds


def final_window(dataset: Dataset, config: TrainingConfig) -> Window:
    """The window the served model learns from: every labelled row, the latest days held out."""
    if dataset.has_time:
        return time_window(dataset, dataset.days, config)
    rows = np.ones(len(dataset.frame), dtype=bool)
    return _random_window(dataset, rows, config)


def time_window(dataset: Dataset, train_days: list[date], config: TrainingConfig) -> Window:
    """Fit on the earlier days; stop early on the next ones; calibrate on the latest ones."""
    held = max(1, round(len(train_days) * config.holdout_share))
    if len(train_days) - held < 1:
        raise DatasetError(f"only {len(train_days)} snapshot day(s) to train on: need at least 2")
    fit_days, later = train_days[:-held], train_days[-held:]
    stop_days, calibrate_days = (
        (later[: len(later) // 2], later[len(later) // 2 :]) if held > 1 else (later, later)
    )
    # Fit rows whose labels reach into the held-out days make those days partly in-sample (the same
    # churn seen twice): early stopping would stop late and calibration be too steep. Leave them out
    # when the history can spare them (a third of the fit days at most); a short one cannot.
    purged = [d for d in fit_days if d + dataset.label_reach <= later[0]]
    if len(purged) >= max(config.min_train_days, math.ceil(len(fit_days) * 2 / 3)):
        fit_days = purged
    as_of = dataset.keys["as_of"].to_numpy()
    learnable = dataset.trainable
    return Window(
        fit=np.isin(as_of, fit_days) & learnable,
        stop=np.isin(as_of, stop_days) & learnable,
        calibrate=np.isin(as_of, calibrate_days) & learnable,
    )


def _block_size(days: list[date], reach: timedelta, horizon_days: int, config: TrainingConfig) -> int:
    """Test days per fold: a horizon's worth where history allows, fewer when it is short."""
    if len(days) < 2:
        raise DatasetError(_too_short(days, horizon_days, config))
    step = min(b - a for a, b in itertools.pairwise(days))
    wanted = max(1, timedelta(days=horizon_days) // step)
    for size in range(min(wanted, len(days) // (config.folds + 1)), 0, -1):
        first_test = days[len(days) - config.folds * size]
        if sum(d + reach <= first_test for d in days) >= config.min_train_days:
            return size
    raise DatasetError(_too_short(days, horizon_days, config))


def _too_short(days: list[date], horizon_days: int, config: TrainingConfig) -> str:
    span = f"{days[0]} to {days[-1]}" if days else "none"
    return (
        f"not enough history for a {config.folds}-fold backtest: "
        f"{len(days)} labelled snapshot day(s) ({span}). "
        f"The first fold needs {config.min_train_days} days whose {horizon_days}-day horizon ends before its "
        "test days begin: build snapshots further back (churn features build --from ... --step 7) or "
        "lower --horizon-days"
    )


def _cross_validation(dataset: Dataset, config: TrainingConfig) -> list[Fold]:
    y = dataset.label.to_numpy()
    smallest = int(min(y.sum(), len(y) - y.sum()))
    if smallest < config.folds * 2:
        raise DatasetError(
            f"{dataset.source}: only {smallest} row(s) of the rarer class: {config.folds}-fold "
            "cross-validation needs at least two per fold"
        )
    splitter = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    folds = []
    for number, (train_rows, test_rows) in enumerate(splitter.split(np.zeros(len(y)), y), start=1):
        train = np.zeros(len(y), dtype=bool)
        train[train_rows] = True
        test = np.zeros(len(y), dtype=bool)
        test[test_rows] = True
        folds.append(Fold(number=number, train=_random_window(dataset, train, config), test=test))
    return folds


def _random_window(dataset: Dataset, rows: np.ndarray, config: TrainingConfig) -> Window:
    """Without time, the holdout is a stratified random share of the training rows."""
    index = np.flatnonzero(rows & dataset.trainable)
    y = dataset.label.to_numpy()[index]
    fit_rows, held_rows = train_test_split(
        index, test_size=config.holdout_share, stratify=y, random_state=config.seed
    )
    fit = np.zeros(len(dataset.frame), dtype=bool)
    fit[fit_rows] = True
    held = np.zeros(len(dataset.frame), dtype=bool)
    held[held_rows] = True
    return Window(fit=fit, stop=held, calibrate=held)
