"""The training job: backtest LightGBM and the baselines fold by fold, then fit the model to serve.

Every figure comes from out-of-time predictions: each fold's models see only rows whose label
window closed before the fold's test days, and the test rows are scored once. The served model is
fitted afterwards on all labelled rows the same way; its quality is the backtest's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.model_selection import ParameterSampler

from churn.config import ProductConfig
from training.baselines import (
    LIGHTGBM,
    LOGISTIC,
    MODEL_LABELS,
    RULE,
    fit_logistic,
    logistic_scores,
    rule_available,
    rule_scores,
)
from training.calibration import fit_calibrator
from training.dataset import Dataset, DatasetError
from training.metrics import THRESHOLD_METRICS, as_number, better, plain, score_metrics, threshold_metrics
from training.model import ChurnModel, default_params, fit_booster, fit_churn_model, monotone_directions
from training.splits import Fold, Window, backtest_folds, final_window

# LightGBM "beats" a baseline when it ranks better and its probabilities are no worse.
VERDICT_METRICS = ("pr_auc", "roc_auc", "brier")

Progress = Callable[[str], None]


@dataclass
class Evaluation:
    """Everything a run's figures are made of; saved with the run and read back by the report."""

    dataset: dict[str, Any]
    threshold: float
    models: list[str]
    folds: list[dict[str, Any]]
    overall: dict[str, dict[str, Any]]
    verdict: list[str]
    params: dict[str, Any]
    importance: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "threshold": self.threshold,
            "models": self.models,
            "folds": self.folds,
            "overall": self.overall,
            "verdict": self.verdict,
            "params": self.params,
            "importance": self.importance,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Evaluation:
        return cls(**values)

    @property
    def beats_baselines(self) -> bool:
        return not any(line.startswith("WARNING") for line in self.verdict)


@dataclass
class TrainingResult:
    model: ChurnModel
    evaluation: Evaluation
    predictions: pd.DataFrame  # out-of-time: keys, fold, churned, one risk column per model


def train(
    dataset: Dataset, config: ProductConfig, *, tune: bool = False, on_progress: Progress | None = None
) -> TrainingResult:
    """Backtest, then fit the served model; ``tune`` searches parameters inside each training window."""
    started = time.perf_counter()
    say = on_progress or (lambda _message: None)
    folds = backtest_folds(dataset, config.training)
    use_rule = bool(rule_available(dataset.frame))
    models = [LIGHTGBM, LOGISTIC, *([RULE] if use_rule else [])]
    predictions, fold_rows = [], []
    for fold in folds:
        say(f"backtest fold {fold.number} of {len(folds)}: {fold.describe()}")
        scored = _run_fold(dataset, fold, config, tune=tune, use_rule=use_rule)
        predictions.append(scored)
        fold_rows.append(_fold_summary(fold, dataset, scored, models, config.alerts.threshold))
    pooled = pd.concat(predictions, ignore_index=True)
    overall = {m: _metrics(pooled, m, config.alerts.threshold) for m in models}
    say("fitting the model to serve on every labelled row")
    window = final_window(dataset, config.training)
    check_window(dataset, window, "the model to serve")
    params = _params_for(dataset, window, config, tune=tune)
    model = fit_churn_model(
        dataset.frame, dataset.label, dataset.features, window, params, config.training, dataset.horizon_days
    )
    evaluation = Evaluation(
        dataset=dataset.summary(),
        threshold=config.alerts.threshold,
        models=models,
        folds=fold_rows,
        overall=overall,
        verdict=verdict(overall, use_rule),
        params=model.params,
        importance=model.importance().head(30).to_dict("records"),
        seconds=time.perf_counter() - started,
    )
    return TrainingResult(model=model, evaluation=evaluation, predictions=pooled)


def _run_fold(
    dataset: Dataset, fold: Fold, config: ProductConfig, *, tune: bool, use_rule: bool
) -> pd.DataFrame:
    frame, label, window = dataset.frame, dataset.label, fold.train
    check_window(dataset, window, f"backtest fold {fold.number} ({fold.describe()})")
    params = _params_for(dataset, window, config, tune=tune)
    model = fit_churn_model(
        frame, label, dataset.features, window, params, config.training, dataset.horizon_days
    )
    test_x = frame[fold.test]
    scored = dataset.keys[fold.test].reset_index(drop=True)
    scored["fold"] = fold.number
    scored["churned"] = label[fold.test].to_numpy()
    scored[LIGHTGBM] = model.predict_risk(test_x)

    # The same rows the trees grow on, so its calibration slice is as unseen as theirs.
    logistic = fit_logistic(frame[window.fit], label[window.fit], config.training.seed)
    to_risk = fit_calibrator(
        logistic_scores(logistic, frame[window.calibrate]),
        label[window.calibrate],
        config.training.calibration,
    )
    scored[LOGISTIC] = to_risk(logistic_scores(logistic, test_x))
    if use_rule:
        to_risk = fit_calibrator(rule_scores(frame[window.calibrate]), label[window.calibrate], "sigmoid")
        scored[RULE] = to_risk(rule_scores(test_x))
    return scored


def check_window(dataset: Dataset, window: Window, what: str) -> None:
    """Refuse a training window a model cannot learn or be calibrated from, saying which one."""
    for part, rows in (("training", window.fit), ("calibration", window.calibrate)):
        churned = int(dataset.label[rows].sum())
        if churned == 0 or churned == int(rows.sum()):
            only = "no customer churned" if churned == 0 else "every customer churned"
            raise DatasetError(
                f"{what}: in its {part} days {only}, so it cannot learn who churns; build a longer "
                "history or use fewer folds (training.folds)"
            )


def _params_for(dataset: Dataset, window: Window, config: ProductConfig, *, tune: bool) -> dict[str, Any]:
    fit_y = dataset.label[window.fit]
    params = default_params(int(window.fit.sum()), int(fit_y.sum()), config.training)
    return tune_params(dataset, window, params, config) if tune else params


def tune_params(
    dataset: Dataset, window: Window, base: dict[str, Any], config: ProductConfig
) -> dict[str, Any]:
    """A small random search, judged on the window's own later slice: test days never take part."""
    grid = {
        "num_leaves": [7, 15, 31, 63],
        "min_data_in_leaf": [20, 50, 100, 200, 400],
        "feature_fraction": [0.5, 0.7, 0.9],
        "lambda_l2": [0.0, 1.0, 5.0, 20.0],
        "learning_rate": [0.02, 0.05, 0.1],
    }
    trials = [base] + [
        {**base, **choice}
        for choice in ParameterSampler(
            grid, n_iter=config.training.tune_trials - 1, random_state=config.training.seed
        )
    ]
    frame, label = dataset.frame, dataset.label
    # Judged with the same direction constraints the chosen parameters will be fitted under.
    monotone = (
        monotone_directions(frame[window.fit], label[window.fit], dataset.features)
        if config.training.monotone
        else None
    )
    best, best_loss = base, math.inf
    for params in trials:
        booster = fit_booster(
            frame[window.fit],
            label[window.fit],
            frame[window.stop],
            label[window.stop],
            params,
            config.training,
            monotone=monotone,
        )
        loss = booster.best_score["stop"]["binary_logloss"]
        if loss < best_loss:
            best, best_loss = params, loss
    return best


def _metrics(predictions: pd.DataFrame, model: str, threshold: float) -> dict[str, Any]:
    label = predictions["churned"].to_numpy()
    figures = score_metrics(label, predictions[model].to_numpy())
    at = threshold_metrics(predictions, model, threshold)
    figures.update({k: at[k] for k in (*THRESHOLD_METRICS, "churners_alerted")})
    return plain(figures)


def _fold_summary(
    fold: Fold, dataset: Dataset, scored: pd.DataFrame, models: list[str], threshold: float
) -> dict[str, Any]:
    return {
        "fold": fold.number,
        "train_to": fold.train_to.isoformat() if fold.train_to else None,
        "test_from": fold.test_from.isoformat() if fold.test_from else None,
        "test_to": fold.test_to.isoformat() if fold.test_to else None,
        "train_rows": int((fold.train.fit | fold.train.stop | fold.train.calibrate).sum()),
        "test_rows": int(fold.test.sum()),
        "test_churned": int(dataset.label[fold.test].sum()),
        "metrics": {m: _metrics(scored, m, threshold) for m in models},
    }


def verdict(overall: dict[str, dict[str, Any]], use_rule: bool) -> list[str]:
    """Plain sentences on whether LightGBM beats the baselines; a WARNING line when it does not."""
    lines = []
    ours = overall[LIGHTGBM]
    for baseline in (LOGISTIC, RULE):
        if baseline not in overall:
            continue
        theirs = overall[baseline]
        lost = [m for m in VERDICT_METRICS if _loses(m, as_number(ours.get(m)), as_number(theirs.get(m)))]
        name = MODEL_LABELS[baseline]
        if lost:
            figures = ", ".join(f"{m} {as_number(ours[m]):.3f} vs {as_number(theirs[m]):.3f}" for m in lost)
            lines.append(
                f"WARNING: LightGBM does not beat the {name.lower()} ({figures}); prefer the simpler model"
            )
        else:
            lines.append(
                f"LightGBM beats the {name.lower()}: PR AUC {as_number(ours['pr_auc']):.3f} vs "
                f"{as_number(theirs['pr_auc']):.3f}, ROC AUC {as_number(ours['roc_auc']):.3f} "
                f"vs {as_number(theirs['roc_auc']):.3f}"
            )
    if not use_rule:
        lines.append("The rule-based health score needs usage, ticket or NPS columns; this data has none")
    return lines


def _loses(metric: str, ours: float, theirs: float) -> bool:
    known = not (math.isnan(ours) or math.isnan(theirs))
    return known and not better(metric, ours, theirs, 0.0)
