"""`churn train`, `churn models`, `churn promote` and `churn report` from the data scientist's seat."""

from __future__ import annotations

import json

import pytest

from tests.training_data import panel_table


@pytest.fixture
def tables(tmp_path):
    table = panel_table(customers=200, days=14)
    good, weak = tmp_path / "features.parquet", tmp_path / "weak.parquet"
    table.to_parquet(good, index=False)
    # The same rows and labels without the columns that carry the signal: a worse challenger.
    table.drop(columns=["events_30d", "events_30d_vs_prev_30d", "open_tickets", "last_nps"]).to_parquet(weak)
    return good, weak


def _train(run_cli, path, *extra):
    args = ["train", "--table", path, "--label", "churned", "--id", "account", "--time", "week"]
    result = run_cli(*args, "--horizon-days", "14", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_train_promote_refuse_roll_back_and_report(run_cli, tables, tmp_path):
    good, weak = tables

    first = _train(run_cli, good, "--promote")
    second = _train(run_cli, good)
    promoted = run_cli("promote", second["version"])
    third = _train(run_cli, weak)
    refused = run_cli("promote", third["version"])
    still = json.loads(run_cli("models", "--json").stdout)
    rollback = run_cli("promote", first["version"], "--force")
    other_horizon = _train(run_cli, good, "--horizon-days", "21")
    not_comparable = run_cli("promote", other_horizon["version"])
    listed = run_cli("models")
    report = run_cli("report", "--out", tmp_path / "report.html")

    assert first["promotion"]["promoted"] and first["promotion"]["reason"] == "first champion"
    assert first["evaluation"]["overall"] == second["evaluation"]["overall"]  # same data, same figures
    assert promoted.exit_code == 0 and "Version 2 is now the champion" in promoted.output
    assert refused.exit_code == 1
    assert "Version 3 was not promoted: worse than champion version 2 on PR AUC" in refused.output
    assert "challenger" in refused.output and "champion (v2)" in refused.output
    assert [v["aliases"] for v in still] == [[], ["champion"], []]
    assert (
        rollback.exit_code == 0 and "Version 1 is now the champion: forced over version 2" in rollback.output
    )
    assert not_comparable.exit_code == 2
    assert "label horizon (21) differs from champion version 1's (14)" in not_comparable.output
    assert listed.exit_code == 0 and "PR AUC" in listed.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert report.exit_code == 0 and "Churn-risk model version 1: evaluation" in html
    assert html.count("data:image/png;base64,") >= 5


def test_train_from_snapshots_with_its_own_horizon(run_cli, env, demo_history):
    document = _json(run_cli("train", "--horizon-days", "60", "--json", CHURN_DATABASE_URL=demo_history))

    assert document["evaluation"]["dataset"]["horizon_days"] == 60
    assert document["evaluation"]["dataset"]["source"] == "snapshots"
    assert len(document["evaluation"]["folds"]) == 3
    assert {"lightgbm", "logistic_regression", "rule_score"} == set(document["evaluation"]["overall"])
    listed = _json(run_cli("models", "--json", CHURN_DATABASE_URL=demo_history))
    assert listed[0]["horizon_days"] == 60 and listed[0]["source"] == "snapshots"


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["promote", "7"],
            "error: model version 7 does not exist (none is registered yet; see `churn models`)",
        ),
        (["promote", "latest"], "error: model version 'latest': expected a number"),
        (["train", "--label", "churned"], "error: --label, --id and --time go with --table"),
        (["train", "--table", "x.csv"], "error: --table: also give --label"),
        (["report"], "error: no champion model yet"),
    ],
)
def test_mistakes_are_one_clear_line(run_cli, args, message):
    result = run_cli(*args)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_training_without_snapshots_says_how_to_build_them(run_cli, env, database_url):
    result = run_cli("train", CHURN_DATABASE_URL=database_url)

    assert result.exit_code == 2
    assert "no feature snapshots yet: build a history first" in result.output
