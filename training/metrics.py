"""The figures: how well risk ranks and how true its probabilities are, and what a CS leader asks.

Ranking (ROC AUC, PR AUC, top-decile lift), probability quality (Brier, log loss, calibration
error), and at the alert threshold: precision, recall, alerts per week and the lead time from a
customer's first alert to its churn. Each takes plain arrays; nothing here knows about models.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = {"brier", "log_loss", "calibration_error"}
SCORE_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift", "calibration_error")
THRESHOLD_METRICS = ("precision", "recall", "alerts_per_week", "median_lead_days")
METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier",
    "log_loss": "log loss",
    "top_decile_lift": "top-decile lift",
    "calibration_error": "calibration error",
    "precision": "precision at threshold",
    "recall": "recall at threshold",
    "alerts_per_week": "alerts per week",
    "median_lead_days": "median lead time (days)",
    "base_rate": "churn rate",
    "rows": "rows",
}


def score_metrics(label: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """Ranking and probability metrics; a one-class sample has no AUC (NaN), not a made-up one."""
    label = np.asarray(label, dtype="int64")
    risk = np.asarray(risk, dtype="float64")
    both = 0 < label.sum() < len(label)
    return {
        "rows": float(len(label)),
        "base_rate": float(label.mean()) if len(label) else math.nan,
        "roc_auc": float(roc_auc_score(label, risk)) if both else math.nan,
        "pr_auc": float(average_precision_score(label, risk)) if both else math.nan,
        "brier": float(brier_score_loss(label, risk)) if len(label) else math.nan,
        "log_loss": float(log_loss(label, risk, labels=[0, 1])) if len(label) else math.nan,
        "top_decile_lift": top_decile_lift(label, risk),
        "calibration_error": calibration_error(label, risk),
    }


def top_decile_lift(label: np.ndarray, risk: np.ndarray) -> float:
    """Churn rate among the riskiest 10% over the overall churn rate (1.0 = no better than random)."""
    if not len(label) or label.mean() == 0:
        return math.nan
    top = max(1, math.ceil(len(label) * 0.1))
    cutoff = np.sort(risk)[::-1][top - 1]
    # Rows tied at the cutoff (calibration makes steps) count in proportion, not by row order.
    above, tied = risk > cutoff, risk == cutoff
    churned = label[above].sum() + label[tied].mean() * (top - above.sum())
    return float(churned / top / label.mean())


def calibration_error(label: np.ndarray, risk: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted gap between predicted and observed churn, in
    ten equal-count bins of predicted risk."""
    if not len(label):
        return math.nan
    order = np.argsort(risk, kind="stable")
    gaps = [
        len(part) * abs(risk[part].mean() - label[part].mean())
        for part in np.array_split(order, min(bins, len(label)))
        if len(part)
    ]
    return float(sum(gaps) / len(label))


def reliability(label: np.ndarray, risk: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Predicted against observed churn per equal-count bin: the calibration plot's points."""
    order = np.argsort(risk, kind="stable")
    rows = [
        {"predicted": float(risk[part].mean()), "observed": float(label[part].mean()), "rows": len(part)}
        for part in np.array_split(order, min(bins, max(len(label), 1)))
        if len(part)
    ]
    return pd.DataFrame(rows, columns=["predicted", "observed", "rows"])


def threshold_metrics(predictions: pd.DataFrame, risk_column: str, threshold: float) -> dict[str, float]:
    """What alerting at ``threshold`` would have meant, from out-of-time predictions.

    ``predictions`` has churned (0/1) per row, and with time also customer_id, as_of and churned_at.
    Precision and recall are per snapshot row. An alert is a customer crossing the threshold upward
    (or entering above it); the lead time runs from a churner's first alert within the horizon before
    its churn to the churn.
    """
    label = predictions["churned"].to_numpy(dtype="int64")
    flagged = predictions[risk_column].to_numpy(dtype="float64") >= threshold
    out: dict[str, float] = {
        "threshold": threshold,
        "precision": float(label[flagged].mean()) if flagged.any() else math.nan,
        "recall": float(flagged[label == 1].mean()) if label.sum() else math.nan,
        "alerts_per_week": math.nan,
        "median_lead_days": math.nan,
        "churners_alerted": math.nan,
    }
    if "as_of" not in predictions.columns or predictions.empty:
        return out
    ordered = predictions.assign(flagged=flagged).sort_values(["customer_id", "as_of"], kind="stable")
    previous = ordered.groupby("customer_id", sort=False)["flagged"].shift(1, fill_value=False)
    # On the first day nobody's previous risk is known: whoever is already above the threshold then
    # was alerted before the window, not in it. A customer first seen later is new, and counts.
    first_day = ordered["as_of"] == ordered["as_of"].min()
    crossings = ordered["flagged"] & ~previous.astype(bool) & ~first_day
    days = pd.to_datetime(pd.Series(ordered["as_of"].unique())).sort_values()
    weeks = (days.iloc[-1] - days.iloc[0]) / pd.Timedelta(days=7)
    out["alerts_per_week"] = float(crossings.sum() / weeks) if weeks > 0 else math.nan
    leads, churns = _lead_days(ordered)
    out["median_lead_days"] = float(np.median(leads)) if len(leads) else math.nan
    out["churners_alerted"] = float(len(leads) / churns) if churns else math.nan
    return out


def _lead_days(ordered: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Days from each alerted churn's first alert to the churn, and how many churns there were."""
    if "churned_at" not in ordered.columns:  # a table without churn dates: no lead time to measure
        return np.array([]), 0
    churned = ordered[(ordered["churned"] == 1) & ordered["churned_at"].notna()]
    churns = len(churned.drop_duplicates(["customer_id", "churned_at"]))
    alerted = churned[churned["flagged"]]
    if alerted.empty:
        return np.array([]), churns
    first = alerted.groupby(["customer_id", "churned_at"], sort=False)["as_of"].min().reset_index()
    start = pd.to_datetime(first["as_of"]).dt.tz_localize("UTC")
    return ((first["churned_at"] - start) / pd.Timedelta(days=1)).to_numpy(dtype="float64"), churns


def better(metric: str, challenger: float, champion: float, tolerance: float) -> bool:
    """Whether the challenger is at least as good as the champion, within ``tolerance``."""
    if metric in LOWER_IS_BETTER:
        return challenger <= champion + tolerance
    return challenger >= champion - tolerance


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """Metrics with NaN as None, for JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def as_number(value: object) -> float:
    """A stored figure back as a float: NaN where it is absent (None) or not a number."""
    try:
        return math.nan if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
