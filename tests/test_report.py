"""The training report: one self-contained page with every chart, the verdict and the figures, escaped."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from training.backtest import Evaluation
from training.baselines import LIGHTGBM, LOGISTIC, MODEL_LABELS, RULE
from training.plots import evaluation_figures, figure_png
from training.report import render_report, write_report

MODELS = [LIGHTGBM, LOGISTIC, RULE]
FIGURE_NAMES = {
    "roc.png",
    "precision_recall.png",
    "calibration.png",
    "gains.png",
    "lift.png",
    "importance.png",
    "folds.png",
}
WARNING = "WARNING: LightGBM does not beat the rule-based health score (pr_auc 0.412 vs 0.431); prefer the simpler model"


def metrics(roc_auc: float | None, pr_auc: float, **extra: float | None) -> dict[str, float | None]:
    return {
        "rows": 360.0,
        "base_rate": 0.15,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "brier": 0.118,
        "log_loss": 0.381,
        "top_decile_lift": 2.8,
        "calibration_error": 0.021,
        "precision": 0.34,
        "recall": 0.52,
        "alerts_per_week": 6.5,
        "median_lead_days": 41.0,
        "churners_alerted": 0.61,
        **extra,
    }


@pytest.fixture(scope="module")
def predictions() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = 360
    churned = (rng.random(rows) < 0.15).astype("int64")
    start = date(2024, 1, 1)
    as_of = [start + timedelta(days=7 * (i % 12)) for i in range(rows)]
    signal = churned * 0.25 + rng.random(rows) * 0.6
    return pd.DataFrame(
        {
            "customer_id": [f"c{i % 120}" for i in range(rows)],
            "as_of": as_of,
            "churned_at": pd.to_datetime(
                [
                    pd.Timestamp(d) + pd.Timedelta(days=30) if c else pd.NaT
                    for d, c in zip(as_of, churned, strict=True)
                ]
            ).tz_localize("UTC"),
            "fold": np.repeat([1, 2, 3], rows // 3),
            "churned": churned,
            LIGHTGBM: np.clip(signal, 0, 1),
            LOGISTIC: np.clip(signal * 0.8 + rng.random(rows) * 0.2, 0, 1),
            RULE: rng.random(rows),
        }
    )


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    folds = [
        {
            "fold": number,
            "train_to": f"2024-0{number}-01",
            "test_from": f"2024-0{number + 1}-05",
            "test_to": f"2024-0{number + 1}-26",
            "train_rows": 1000 * number,
            "test_rows": 120,
            "test_churned": 18,
            "metrics": {
                LIGHTGBM: metrics(0.70 + number / 100, 0.40),
                LOGISTIC: metrics(0.69, 0.38),
                RULE: metrics(None, 0.43),  # a fold without an AUC
            },
        }
        for number in (1, 2, 3)
    ]
    return Evaluation(
        dataset={
            "source": "demo",
            "rows": 4360,
            "customers": 400,
            "churned": 610,
            "churn_rate": 0.14,
            "features": 24,
            "days": 40,
            "from": "2023-06-05",
            "to": "2024-04-29",
            "horizon_days": 90,
        },
        threshold=0.3,
        models=MODELS,
        folds=folds,
        overall={
            LIGHTGBM: metrics(0.7234, 0.412, brier=0.101),
            LOGISTIC: metrics(0.7011, 0.398),
            RULE: metrics(0.6512, 0.431, top_decile_lift=None),
        },
        verdict=[
            "LightGBM beats the logistic regression: PR AUC 0.412 vs 0.398, ROC AUC 0.723 vs 0.701",
            WARNING,
        ],
        params={"num_leaves": 15},
        importance=[
            {
                "feature": "logins_30d_vs_prev_30d",
                "gain_share": 0.31,
                "splits": 120,
                "description": "Logins in the last 30 days against the 30 before",
            },
            {"feature": "open_tickets", "gain_share": 0.22, "splits": 80, "description": ""},
            {"feature": "last_nps", "gain_share": 0.12, "splits": 40, "description": "Latest NPS answer"},
        ],
    )


@pytest.fixture(scope="module")
def page(evaluation: Evaluation, predictions: pd.DataFrame) -> str:
    details = {"Model version": "7", "Run id": "abc123", "Note": "<script>alert('x')</script>"}
    return render_report(evaluation, predictions, title="Churn model report", details=details)


def test_the_page_is_self_contained_with_every_chart_embedded(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", page)
    assert "<link" not in page and "<script src" not in page
    assert page.count('src="data:image/png;base64,') == len(FIGURE_NAMES)


def test_a_warning_verdict_is_shown_in_the_warning_box(page: str) -> None:
    boxes = re.findall(r'<div class="warning">(.*?)</div>', page, flags=re.S)
    assert len(boxes) == 1
    assert "LightGBM does not beat the rule-based health score" in boxes[0]
    assert "LightGBM beats the logistic regression" in page
    assert "LightGBM beats the logistic regression" not in boxes[0]


def test_the_headline_says_how_many_of_the_riskiest_ten_churned(page: str) -> None:
    # lift 2.8 on a 15% churn rate: 4.2 of the riskiest 10 churned, against 1.5 of a random 10
    assert "Out of every 10 customers this model flags as riskiest, 4.2 churned within 90 days" in page
    assert "against 1.5 for a random 10" in page


def test_the_metrics_table_names_every_model_and_formats_its_figures(page: str) -> None:
    for model in MODELS:
        assert MODEL_LABELS[model] in page
    assert "<strong>0.723</strong>" in page  # LightGBM's ROC AUC, 3 decimals, best of its row
    assert "<strong>0.431</strong>" in page  # the rule's PR AUC beats LightGBM's
    assert "<strong>0.1010</strong>" in page  # lower Brier is better
    assert "2.80" in page  # lift, 2 decimals
    assert "34.0%" in page and "52.0%" in page  # precision and recall as percentages
    assert "—" in page  # the rule's missing lift


def test_the_fold_table_names_periods_by_their_test_dates(page: str) -> None:
    for number in (1, 2, 3):
        assert f"2024-0{number + 1}-05 to 2024-0{number + 1}-26" in page


def test_text_is_html_escaped(page: str) -> None:
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_write_report_creates_the_folder(tmp_path, page: str) -> None:
    path = write_report(tmp_path / "runs" / "report.html", page)
    assert path.read_text(encoding="utf-8") == page


def test_a_one_class_model_column_does_not_crash_the_charts(
    evaluation: Evaluation, predictions: pd.DataFrame
) -> None:
    no_churners = predictions.assign(churned=0)
    figures = evaluation_figures(evaluation, no_churners)
    assert set(figures) == FIGURE_NAMES
    legend = figures["roc.png"].axes[0].get_legend()
    assert any("all one outcome" in text.get_text() for text in legend.get_texts())
    for figure in figures.values():
        assert figure_png(figure).startswith(b"\x89PNG\r\n\x1a\n")


def test_figure_png_returns_png_bytes() -> None:
    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [0, 1])
    png = figure_png(figure)
    assert isinstance(png, bytes)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
