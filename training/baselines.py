"""The yardsticks every run is measured against: a logistic regression and a rule-based health score.

If the trees cannot beat a linear model on the same features, or the health score a CS team could
write on a whiteboard, the team should know before it trusts them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

LIGHTGBM = "lightgbm"
LOGISTIC = "logistic_regression"
RULE = "rule_score"
MODEL_LABELS = {LIGHTGBM: "LightGBM", LOGISTIC: "Logistic regression", RULE: "Rule-based health score"}

# The health score's parts: (feature, weight, value at which the part is fully "unhealthy",
# value at which it is fully healthy). Usage, support and satisfaction, as CS teams score them.
HEALTH_RULES = (
    ("events_30d_vs_prev_30d", 0.30, -0.6, 0.1),
    ("days_since_last_event", 0.15, 21.0, 2.0),
    ("active_users_30d_vs_prev_30d", 0.10, -0.5, 0.1),
    ("open_tickets", 0.15, 3.0, 0.0),
    ("tickets_opened_30d", 0.05, 5.0, 0.0),
    ("last_nps", 0.25, 3.0, 9.0),
)


def fit_logistic(frame: pd.DataFrame, label: pd.Series, seed: int) -> Pipeline:
    """Logistic regression on the same features: median-imputed with missing flags, scaled, one-hot."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in frame.columns if c not in categorical]
    prepare = ColumnTransformer(
        [
            ("numbers", scaled_numbers(), numeric),
            ("categories", _one_hot(), categorical),
        ]
    )
    model = make_pipeline(prepare, LogisticRegression(C=0.1, max_iter=2_000, random_state=seed))
    return model.fit(_for_sklearn(frame), label.to_numpy())


def scaled_numbers() -> Pipeline:
    """Numbers for a linear model: median-imputed with a flag per missing column, then scaled."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
    )


def logistic_scores(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The regression's log-odds (calibrated afterwards, like every model here)."""
    return model.decision_function(_for_sklearn(frame))


def rule_available(frame: pd.DataFrame) -> list[str]:
    """The health-score parts the data has columns for."""
    return [name for name, *_ in HEALTH_RULES if name in frame.columns]


def rule_scores(frame: pd.DataFrame) -> np.ndarray:
    """Unhealthiness from 0 (healthy on every part) to 1; a part the customer has no value for is neutral."""
    total = np.zeros(len(frame))
    weights = 0.0
    for name, weight, unhealthy, healthy in HEALTH_RULES:
        if name not in frame.columns:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")
        part = np.clip((values - healthy) / (unhealthy - healthy), 0.0, 1.0)
        total += weight * np.where(np.isnan(part), 0.5, part)
        weights += weight
    return total / weights if weights else total


def _one_hot() -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(unknown)"),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False),
    )


def _for_sklearn(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as plain text objects (sklearn's imputers do not take pandas categoricals)."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), np.nan)
    return out
