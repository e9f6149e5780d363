"""Training on a feature table: same data, same figures; baselines beside them; bad tables refused."""

from __future__ import annotations

import pandas as pd
import pytest

from churn.config import ProductConfig
from tests.training_data import panel_table
from training.backtest import train, verdict
from training.dataset import DatasetError, table_dataset


def _table(tmp_path, table: pd.DataFrame, name: str = "features.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)
    return path


def _dataset(path, **options):
    options = {
        "label": "churned",
        "id_column": "account",
        "time_column": "week",
        "horizon_days": 14,
    } | options
    return table_dataset(path, **options)


def test_the_same_data_and_seed_give_the_same_model_and_figures(tmp_path):
    dataset = _dataset(_table(tmp_path, panel_table(), "features.parquet"))

    first, second = train(dataset, ProductConfig()), train(dataset, ProductConfig())

    assert first.evaluation.overall == second.evaluation.overall
    assert first.evaluation.folds == second.evaluation.folds
    pd.testing.assert_frame_equal(first.predictions, second.predictions)
    sample = dataset.frame.head(50)
    assert (first.model.predict_risk(sample) == second.model.predict_risk(sample)).all()


def test_a_table_with_signal_is_learned_and_every_baseline_is_measured_beside_it(tmp_path):
    dataset = _dataset(_table(tmp_path, panel_table()))

    result = train(dataset, ProductConfig())

    overall = result.evaluation.overall
    assert set(overall) == {"lightgbm", "logistic_regression", "rule_score"}
    assert overall["lightgbm"]["roc_auc"] > 0.7
    assert 0 < overall["lightgbm"]["brier"] < 0.25
    assert len(result.evaluation.folds) == 3
    assert set(result.predictions["fold"]) == {1, 2, 3}
    assert result.evaluation.dataset["rows"] == 300 * 16


def test_tuning_searches_inside_each_training_window_and_keeps_the_backtest_intact(tmp_path):
    dataset = _dataset(_table(tmp_path, panel_table(customers=150)))
    config = ProductConfig.model_validate({"training": {"tune_trials": 3}})

    tuned = train(dataset, config, tune=True)

    assert len(tuned.evaluation.folds) == 3
    assert tuned.evaluation.params["num_leaves"] in (7, 15, 31, 63)
    assert tuned.evaluation.overall["lightgbm"]["roc_auc"] > 0.6


def test_the_verdict_says_loudly_when_lightgbm_loses():
    ours = {"pr_auc": 0.20, "roc_auc": 0.70, "brier": 0.05}
    better_linear = {"pr_auc": 0.25, "roc_auc": 0.72, "brier": 0.05}
    worse_rule = {"pr_auc": 0.10, "roc_auc": 0.60, "brier": 0.06}

    lines = verdict({"lightgbm": ours, "logistic_regression": better_linear, "rule_score": worse_rule}, True)

    assert lines[0].startswith(
        "WARNING: LightGBM does not beat the logistic regression (pr_auc 0.200 vs 0.250"
    )
    assert lines[1].startswith("LightGBM beats the rule-based health score")


def test_without_a_time_column_it_cross_validates_and_says_the_rule_score_needs_known_columns(tmp_path):
    table = panel_table().drop(columns=["week", "account"])
    table = table.rename(columns={"events_30d": "usage", "open_tickets": "tickets", "last_nps": "nps"})
    table = table.drop(columns=["events_30d_vs_prev_30d"])

    result = train(table_dataset(_table(tmp_path, table), label="churned", horizon_days=90), ProductConfig())

    assert result.evaluation.models == ["lightgbm", "logistic_regression"]
    assert result.evaluation.folds[0]["test_from"] is None
    assert any("rule-based health score needs" in line for line in result.evaluation.verdict)


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (lambda t: t.assign(churned=2), {}, r"features.csv:2: column 'churned': 2 is not a binary label"),
        (lambda t: t.assign(churned=0), {}, r"every one of the 4,800 labelled rows stayed"),
        (lambda t: t, {"label": "left"}, r"--label 'left': no such column"),
        (lambda t: t, {"time_column": None}, r"'account' 'A0000' appears 16 times"),
        (lambda t: t.assign(week="soon"), {}, r"features.csv:2: column 'week': 'soon' is not a date"),
        (lambda t: t[["account", "week", "churned"]], {}, r"no feature columns besides the label"),
        (lambda t: t.assign(churned_at="2025-03-01"), {}, r"column 'churned_at' records the outcome"),
        (
            lambda t: t.assign(name=[f"Co {i}" for i in range(len(t))]),
            {},
            r"column 'name' has 4,800 different",
        ),
        (lambda t: t.assign(week=202501), {}, r"--time 'week': holds numbers \(202501, ...\)"),
        (lambda t: t.rename(columns={"noise": "mrr [usd]"}), {}, r"column 'mrr \[usd\]': names may not"),
    ],
)
def test_a_bad_table_is_refused_with_a_line_that_names_the_problem(tmp_path, change, options, message):
    path = _table(tmp_path, change(panel_table()))

    with pytest.raises(DatasetError, match=message):
        _dataset(path, **options)


def test_a_missing_or_unreadable_table_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nope.csv: no such file"):
        _dataset(tmp_path / "nope.csv")
    (tmp_path / "features.txt").write_text("a,b\n")
    with pytest.raises(DatasetError, match=r"expected a .csv, .csv.gz or .parquet file"):
        _dataset(tmp_path / "features.txt")
