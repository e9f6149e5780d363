"""The churn model: LightGBM trees plus a calibration map, and what it needs to score new rows.

Defaults are meant to hold without tuning: trees sized to the number of churners, leaves large
enough to be more than noise, early stopping on a later time slice, categories handled natively,
and (by default) each feature kept to its known direction of risk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype, is_object_dtype
from scipy.stats import spearmanr

from churn.config import TrainingConfig
from features.catalogue import Direction, Feature, Unit
from training.calibration import Calibrator, fit_calibrator
from training.dataset import as_numbers, category_text

# A learned direction must be clear in the fit slice: a rank correlation with churn of at least
# this many standard errors (about 1/sqrt(rows)). Weaker associations are left unconstrained.
LEARNED_DIRECTION_STANDARD_ERRORS = 2.0
_SIGNS = {Direction.RAISES: 1, Direction.LOWERS: -1}


def default_params(rows: int, positives: int, config: TrainingConfig) -> dict[str, Any]:
    """LightGBM parameters scaled to the data: fewer churners, simpler trees and stronger smoothing."""
    num_leaves = int(np.clip(2 ** np.floor(np.log2(max(positives, 2)) / 1.6) - 1, 7, 63))
    min_leaf = int(np.clip(rows / 400, 20, 1_000))
    return {
        "objective": "binary",
        "learning_rate": config.learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_leaf,
        "min_sum_hessian_in_leaf": 1e-2,
        "lambda_l2": float(np.clip(np.log10(max(rows, 10)), 1.0, 10.0)),
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "max_cat_to_onehot": 8,
        "cat_smooth": 20.0,
        "min_data_per_group": max(20, min_leaf // 2),
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        # LightGBM's threads spin while they wait: on cores other jobs keep busy, fewer threads go faster.
        "num_threads": config.threads,
        "verbosity": -1,
    }


def monotone_directions(frame: pd.DataFrame, label: pd.Series, features: list[Feature]) -> list[int]:
    """Per column: +1 (more raises risk), -1 (more lowers it) or 0, from the catalogue or the data."""
    by_name = {f.name: f for f in features}
    learned = _learned_event_signs(
        frame, label, [f.name for f in features if f.direction is Direction.LEARNED]
    )
    signs = []
    for name in frame.columns:
        feature = by_name.get(name)
        if (
            isinstance(frame[name].dtype, pd.CategoricalDtype)
            or feature is None
            or feature.unit is Unit.CATEGORY
        ):
            signs.append(0)
        elif feature.direction is Direction.LEARNED:
            signs.append(learned.get(name, 0))
        else:
            signs.append(_SIGNS.get(feature.direction, 0))
    return signs


def _learned_event_signs(frame: pd.DataFrame, label: pd.Series, names: list[str]) -> dict[str, int]:
    """One direction per event type, for all its features at once.

    An event type is engagement or a warning sign as a whole: its counts in every window and their
    changes share one sign, and the days since it last happened take the opposite one. The sign is
    that of its count most clearly tied to churn, if clear enough; otherwise the type stays free.
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        if match := _EVENT_FEATURE.match(name):
            groups.setdefault(match["event"] or match["recent"], []).append(name)
    signs = {}
    for columns in groups.values():
        counts = [c for c in columns if not c.startswith("days_since_last_") and "_vs_" not in c]
        evidence = [_rank_correlation(frame[c], label) for c in counts]
        strongest = max(evidence, key=lambda pair: abs(pair[0]), default=(0.0, 0))
        rho, rows = strongest
        sign = (
            0
            if rows == 0 or abs(rho) < LEARNED_DIRECTION_STANDARD_ERRORS / np.sqrt(rows)
            else int(np.sign(rho))
        )
        for column in columns:
            signs[column] = -sign if column.startswith("days_since_last_") else sign
    return signs


# The names of per-event-type features (see features/engagement.py): {event}_events_{w}d[_vs_prev_{w}d]
# and days_since_last_{event}.
_EVENT_FEATURE = re.compile(
    r"^(?:(?P<event>.+)_events_\d+d(?:_vs_prev_\d+d)?|days_since_last_(?P<recent>.+))$"
)


def _rank_correlation(values: pd.Series, label: pd.Series) -> tuple[float, int]:
    known = values.notna().to_numpy()
    if known.sum() < 30 or values[known].nunique() < 2 or label[known].nunique() < 2:
        return 0.0, 0
    rho = spearmanr(values[known], label[known]).statistic
    return (float(rho), int(known.sum())) if np.isfinite(rho) else (0.0, 0)


def fit_booster(
    fit_x: pd.DataFrame,
    fit_y: pd.Series,
    stop_x: pd.DataFrame,
    stop_y: pd.Series,
    params: dict[str, Any],
    config: TrainingConfig,
    monotone: list[int] | None = None,
) -> lgb.Booster:
    """Grow trees on the fit slice until the later stop slice's log loss stops improving."""
    params = dict(params)
    if monotone is not None and any(monotone):
        params["monotone_constraints"] = monotone
        params["monotone_constraints_method"] = "intermediate"
    train_set = lgb.Dataset(fit_x, label=fit_y, categorical_feature="auto", free_raw_data=False)
    stop_set = lgb.Dataset(stop_x, label=stop_y, reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=config.max_rounds,
        valid_sets=[stop_set],
        valid_names=["stop"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )


@dataclass
class ChurnModel:
    """Trees and calibration; scores rows that have (at least) the columns it was trained on."""

    booster: lgb.Booster
    calibrator: Calibrator
    features: list[Feature]
    categories: dict[str, list[str]]
    horizon_days: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in its order; categories on its levels, unseen values unknown."""
        # Columns that hold numbers convert as one block, and dtypes are read once: per-column pandas
        # calls cost far more than the prediction itself, most of all for a single customer's read.
        dtypes = frame.dtypes.to_dict()
        present = [n for n in self.feature_names if n not in self.categories and n in dtypes]
        block = [n for n in present if is_numeric_dtype(dtypes[n])]
        objects = [n for n in present if is_object_dtype(dtypes[n])]
        if objects:
            values = frame[objects].to_numpy(dtype=object)
            block += [n for j, n in enumerate(objects) if _plain_numbers(values[:, j])]
        numbers = frame[block].to_numpy(dtype="float64", na_value=np.nan)
        numbers = np.where(np.isinf(numbers), np.nan, numbers)  # a copy: to_numpy may give a view
        converted = set(block)
        columns: dict[str, Any] = {}
        for name in self.feature_names:
            if name in converted:
                continue
            if name not in dtypes:
                columns[name] = np.full(len(frame), np.nan)
            elif name in self.categories:
                columns[name] = pd.Categorical(category_text(frame[name]), categories=self.categories[name])
            else:
                columns[name] = as_numbers(frame[name])
        prepared = pd.concat(
            [
                pd.DataFrame(numbers, columns=block, index=frame.index),
                pd.DataFrame(columns, index=frame.index),
            ],
            axis=1,
        )
        return prepared[self.feature_names]

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds."""
        return self.booster.predict(self._booster_input(self.prepare(frame)), raw_score=True)

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churning within the horizon, per row."""
        return self.calibrator(self.scores(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each feature's push on the log-odds (LightGBM pred_contrib) plus the 'baseline' column.

        About a millisecond a row: call it for the customers whose reasons will be read.
        """
        values = self.booster.predict(self._booster_input(self.prepare(frame)), pred_contrib=True)
        return pd.DataFrame(values, columns=[*self.feature_names, "baseline"], index=frame.index)

    def _booster_input(self, prepared: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        """The prepared frame as LightGBM's own float matrix, category codes included.

        LightGBM turns a pandas frame into exactly this matrix on every call, at a cost of several
        milliseconds whatever the number of rows; when its categories are ours, doing it here keeps
        that cost out of one-customer explanations. Otherwise the frame goes as it is.
        """
        categorical = [n for n in self.feature_names if n in self.categories]
        if self.booster.pandas_categorical != [self.categories[n] for n in categorical]:
            return prepared
        numeric = [i for i, n in enumerate(self.feature_names) if n not in self.categories]
        matrix = np.empty(prepared.shape, dtype="float64")
        matrix[:, numeric] = prepared.drop(columns=categorical).to_numpy(dtype="float64")
        for name in categorical:
            codes = prepared[name].cat.codes.to_numpy()
            matrix[:, self.feature_names.index(name)] = np.where(codes < 0, np.nan, codes)
        return matrix

    def importance(self) -> pd.DataFrame:
        """Global importance: total gain per feature, as a share of all gain, largest first."""
        gain = self.booster.feature_importance(importance_type="gain")
        splits = self.booster.feature_importance(importance_type="split")
        total = gain.sum() or 1.0
        frame = pd.DataFrame(
            {"feature": self.feature_names, "gain_share": gain / total, "splits": splits}
        ).sort_values(["gain_share", "feature"], ascending=[False, True], kind="stable")
        by_name = {f.name: f for f in self.features}
        frame["description"] = [by_name[name].description for name in frame["feature"]]
        return frame.reset_index(drop=True)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "booster.txt"))
        meta = {
            "calibrator": self.calibrator.as_dict(),
            "features": [_feature_dict(f) for f in self.features],
            "categories": self.categories,
            "horizon_days": self.horizon_days,
            "params": self.params,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> ChurnModel:
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        return cls(
            booster=lgb.Booster(model_file=str(folder / "booster.txt")),
            calibrator=Calibrator.from_dict(meta["calibrator"]),
            features=[_feature_from(d) for d in meta["features"]],
            categories=meta["categories"],
            horizon_days=int(meta["horizon_days"]),
            params=meta.get("params", {}),
        )


def fit_churn_model(
    frame: pd.DataFrame,
    label: pd.Series,
    features: list[Feature],
    window: Any,
    params: dict[str, Any],
    config: TrainingConfig,
    horizon_days: int,
) -> ChurnModel:
    """Fit trees on ``window.fit``, stop on ``window.stop``, calibrate on ``window.calibrate``."""
    by_name = {f.name: f for f in features}
    used = [by_name.get(c) or Feature(c, "other", c, Unit.SCORE, f"{c}: {{value}}") for c in frame.columns]
    fit_x, fit_y = frame[window.fit], label[window.fit]
    monotone = monotone_directions(fit_x, fit_y, used) if config.monotone else None
    booster = fit_booster(
        fit_x, fit_y, frame[window.stop], label[window.stop], params, config, monotone=monotone
    )
    categories = {
        c: [str(v) for v in frame[c].cat.categories]
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    model = ChurnModel(booster, Calibrator("sigmoid"), used, categories, horizon_days, params)
    scores = model.scores(frame[window.calibrate])
    model.calibrator = fit_calibrator(scores, label[window.calibrate].to_numpy(), config.calibration)
    model.params = {**params, "num_boost_round": booster.best_iteration or booster.current_iteration()}
    if monotone is not None:
        model.params["directions"] = {c: s for c, s in zip(frame.columns, monotone, strict=True) if s}
    return model


def _feature_dict(feature: Feature) -> dict[str, str]:
    return {
        "name": feature.name,
        "family": feature.family,
        "description": feature.description,
        "unit": str(feature.unit),
        "sentence": feature.sentence,
        "missing": feature.missing,
        "direction": str(feature.direction),
    }


def _feature_from(values: dict[str, str]) -> Feature:
    return Feature(
        values["name"],
        values["family"],
        values["description"],
        Unit(values["unit"]),
        values["sentence"],
        values.get("missing", ""),
        Direction(values.get("direction", "none")),
    )


def _plain_numbers(values: np.ndarray) -> bool:
    """Whether Python objects are only numbers and unknowns (a snapshot's all-empty feature comes
    back from JSON as objects), so they convert with the numeric block."""
    return all(v is None or type(v) in (int, float) for v in values)
