"""The figures a data scientist and a CS leader read, on cases worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from training.calibration import EPSILON, fit_calibrator
from training.metrics import calibration_error, score_metrics, threshold_metrics, top_decile_lift


def test_a_perfect_ranking_lifts_the_top_decile_by_one_over_the_churn_rate():
    label = np.array([1] * 10 + [0] * 90)
    risk = np.linspace(1, 0, 100)

    assert top_decile_lift(label, risk) == pytest.approx(10.0)
    assert top_decile_lift(label, risk[::-1]) == pytest.approx(0.0)


def test_customers_tied_at_the_top_decile_count_in_proportion_not_by_row_order():
    label = np.array([1, 0] * 10)  # 20 customers, 10 churned
    risk = np.full(20, 0.5)

    assert top_decile_lift(label, risk) == pytest.approx(1.0)
    assert top_decile_lift(label[::-1], risk) == pytest.approx(1.0)


def test_calibration_error_is_the_gap_between_said_and_seen():
    # Ten groups of ten customers: the group told "k0%" has exactly k churners.
    risk = np.repeat(np.arange(10) / 10, 10)
    label = np.concatenate([[1] * k + [0] * (10 - k) for k in range(10)])

    assert calibration_error(label, risk) == pytest.approx(0.0)
    assert calibration_error(label, np.clip(risk + 0.1, 0, 1)) == pytest.approx(0.1)


def test_one_class_has_no_auc_rather_than_a_made_up_one():
    figures = score_metrics(np.zeros(10, dtype=int), np.linspace(0, 1, 10))

    assert np.isnan(figures["roc_auc"]) and np.isnan(figures["pr_auc"])
    assert figures["brier"] == pytest.approx(np.mean(np.linspace(0, 1, 10) ** 2))


def test_alerts_count_upward_crossings_and_lead_time_runs_from_the_first_alert_to_the_churn():
    start = date(2025, 1, 6)
    days = [start + timedelta(days=7 * i) for i in range(4)]
    churn_at = pd.Timestamp(start + timedelta(days=7 * 4 + 2), tz="UTC")
    rows = pd.DataFrame(
        {
            "customer_id": ["A"] * 4 + ["B"] * 4,
            "as_of": days * 2,
            # A crosses in week 2 and stays above; B starts above (alerted before), then crosses again.
            "risk": [0.1, 0.6, 0.7, 0.8, 0.6, 0.1, 0.6, 0.2],
            "churned": [1, 1, 1, 1, 0, 0, 0, 0],
            "churned_at": [churn_at] * 4 + [pd.NaT] * 4,
        }
    )

    figures = threshold_metrics(rows, "risk", 0.5)

    assert figures["alerts_per_week"] == pytest.approx(2 / 3)  # two crossings in three weeks
    assert figures["median_lead_days"] == pytest.approx(23.0)  # first alert on day 7, churn on day 30
    assert figures["precision"] == pytest.approx(3 / 5)
    assert figures["recall"] == pytest.approx(3 / 4)
    assert figures["churners_alerted"] == 1.0


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "auto"])
def test_calibrated_risk_is_a_probability_that_never_reorders_customers(method):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=4_000)
    label = (rng.random(4_000) < 1 / (1 + np.exp(-(2 * scores - 3)))).astype(int)

    calibrator = fit_calibrator(scores, label, method)
    grid = np.linspace(-6, 6, 500)
    risk = calibrator(grid)

    assert (np.diff(risk) >= 0).all()
    assert risk.min() >= EPSILON and risk.max() <= 1 - EPSILON
    assert calibrator(scores).mean() == pytest.approx(label.mean(), abs=0.01)


def test_a_slice_where_nobody_churned_calibrates_to_a_small_rate_not_zero():
    calibrator = fit_calibrator(np.linspace(-2, 2, 99), np.zeros(99, dtype=int))

    assert calibrator(np.array([5.0]))[0] == pytest.approx(0.005)
