"""How hard each signal pushes risk across customers (driver_strength), beside one customer's drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.explain import driver_strength, explain


@pytest.fixture(scope="module")
def model(demo_training):
    return demo_training.model


@pytest.fixture(scope="module")
def rows(demo_dataset) -> pd.DataFrame:
    latest = demo_dataset.keys["as_of"] == max(demo_dataset.days)
    return demo_dataset.frame[latest.to_numpy()].reset_index(drop=True)


def test_every_signal_has_a_strength_in_the_catalogues_words_strongest_first(model, rows):
    strength = driver_strength(model, rows)

    assert sorted(strength["feature"]) == sorted(model.feature_names)
    assert strength["mean_abs_effect"].is_monotonic_decreasing
    assert strength["mean_abs_effect"].iloc[0] > 0.01
    by_name = {f.name: f.description for f in model.features}
    assert strength["description"].tolist() == [by_name[name] for name in strength["feature"]]
    assert ((strength["raises_share"] + strength["lowers_share"]) <= 1).all()


def test_for_one_customer_the_strongest_signal_is_their_strongest_driver(model, rows):
    customer = rows.iloc[[int(np.argmax(model.predict_risk(rows)))]]

    strength = driver_strength(model, customer).iloc[0]
    why = explain(model, customer, top=10)[0]
    strongest = max([*why.raising, *why.lowering], key=lambda driver: abs(driver.effect))

    assert strength["feature"] == strongest.feature
    assert strength["mean_abs_effect"] == pytest.approx(abs(strongest.effect))
    assert strength[["raises_share", "lowers_share"]].tolist() == (
        [1.0, 0.0] if strongest.raises_risk else [0.0, 1.0]
    )


def test_no_customers_give_unknown_strengths(model, rows):
    strength = driver_strength(model, rows.iloc[:0])

    assert len(strength) == len(model.feature_names)
    assert strength["mean_abs_effect"].isna().all()
