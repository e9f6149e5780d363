"""How a model trained on the demo company behaves: risk moves the way a CS rep expects, for reasons
said in plain words, and nothing about a customer's name or id moves it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from churn.config import ProductConfig
from churn.db import make_engine
from churn.tables import customers
from features.snapshot import compute_features
from training.explain import explain
from training.model import ChurnModel


@pytest.fixture(scope="module")
def model(demo_training) -> ChurnModel:
    return demo_training.model


@pytest.fixture(scope="module")
def rows(demo_dataset) -> pd.DataFrame:
    latest = demo_dataset.keys["as_of"] == max(demo_dataset.days)
    return demo_dataset.frame[latest.to_numpy()].reset_index(drop=True)


def _login_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("login_events_") and "_vs_" not in c]


def test_fewer_logins_never_lower_risk(model, rows):
    fewer = rows.copy()
    for column in _login_columns(rows):
        dropped = (rows[column] * 0.5).round()
        fewer[column] = dropped
        window = column.removeprefix("login_events_")  # e.g. 30d: total events fall by as much
        fewer[f"events_{window}"] = rows[f"events_{window}"] - (rows[column] - dropped)

    before, after = model.predict_risk(rows), model.predict_risk(fewer)

    assert (after >= before - 1e-12).all()
    assert (after > before).any()


@pytest.mark.parametrize("extra", [1, 3])
def test_more_open_tickets_never_lower_risk(model, rows, extra):
    more = rows.assign(
        open_tickets=rows["open_tickets"] + extra,
        tickets_awaiting_first_response=rows["tickets_awaiting_first_response"] + extra,
    )

    assert (model.predict_risk(more) >= model.predict_risk(rows) - 1e-12).all()


def test_renaming_a_customer_changes_nothing(model, demo_history, demo_dataset):
    day = max(demo_dataset.days)
    customer_id = str(demo_dataset.keys.loc[demo_dataset.keys["as_of"] == day, "customer_id"].iloc[0])
    engine = make_engine(demo_history)
    config = ProductConfig().features
    with engine.connect() as connection:
        before = compute_features(connection, day, config, [customer_id]).frame
    with engine.begin() as connection:
        original = connection.execute(customers.select().where(customers.c.customer_id == customer_id)).one()
        connection.execute(
            update(customers)
            .where(customers.c.customer_id == customer_id)
            .values(name="Renamed Holdings Ltd")
        )
    try:
        with engine.connect() as connection:
            after = compute_features(connection, day, config, [customer_id]).frame
    finally:
        with engine.begin() as connection:
            connection.execute(
                update(customers).where(customers.c.customer_id == customer_id).values(name=original.name)
            )
        engine.dispose()

    pd.testing.assert_frame_equal(before, after)
    assert model.predict_risk(before)[0] == model.predict_risk(after)[0]
    assert not {"customer_id", "name"} & set(model.feature_names)


def test_drivers_are_the_catalogue_sentences_and_add_up_to_the_score(model, rows):
    sample = rows.head(20)

    explanations = explain(model, sample, top=3)
    contributions = model.contributions(sample)

    np.testing.assert_allclose(contributions.sum(axis=1), model.scores(sample), rtol=1e-6, atol=1e-6)
    by_name = {f.name: f for f in model.features}
    for explanation in explanations:
        assert len(explanation.raising) <= 3 and len(explanation.lowering) <= 3
        assert all(d.effect > 0 for d in explanation.raising)
        assert all(d.effect < 0 for d in explanation.lowering)
        for driver in explanation.raising + explanation.lowering:
            assert driver.sentence == by_name[driver.feature].say(driver.value)
    assert any(e.raising for e in explanations) and any(e.lowering for e in explanations)


def test_a_saved_model_scores_exactly_as_the_trained_one(model, rows, tmp_path):
    model.save(tmp_path / "model")

    loaded = ChurnModel.load(tmp_path / "model")

    np.testing.assert_array_equal(loaded.predict_risk(rows), model.predict_risk(rows))
    assert loaded.feature_names == model.feature_names


def test_the_backtest_is_out_of_time_and_beats_chance(demo_training):
    evaluation = demo_training.evaluation

    for fold in evaluation.folds:
        assert fold["train_to"] < fold["test_from"]
    assert evaluation.overall["lightgbm"]["roc_auc"] > 0.55
    assert evaluation.overall["lightgbm"]["top_decile_lift"] > 1.2
