"""Satisfaction features: hand-computed values, point in time, empty customers, one customer on demand."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from churn.config import FeaturesConfig
from churn.tables import customers, subscriptions, survey_responses
from features import satisfaction
from features.catalogue import Unit
from features.scope import Scope, active_customers, as_of_instant
from tests.factories import insert_rows

AS_OF = as_of_instant(date(2024, 6, 1))
CONFIG = FeaturesConfig()

# Customers since 2023-01-01 (517 days at as_of), except C002 since 2024-01-01 (152 days).
STARTS = {"C001": "2023-01-01T00:00:00Z", "C002": "2024-01-01T00:00:00Z", "C003": "2023-01-01T00:00:00Z"}

# 90-day window from 2024-03-03, the 90 days before from 2023-12-04. NPS quarters before as_of:
# q0 from 2024-03-02, q1 from 2023-12-02, q2 from 2023-09-02, q3 from 2023-06-03.
SURVEYS = [
    ("S01", "C001", "nps", 9, "2024-05-20T10:00:00Z"),
    ("S02", "C001", "nps", 3, "2024-05-20T10:00:00Z"),  # same instant as S01: the higher id is the last
    ("S03", "C001", "nps", 10, "2024-04-01T00:00:00Z"),
    ("S04", "C001", "nps", 10, "2024-01-15T00:00:00Z"),  # the 90 days before; q1
    ("S05", "C001", "nps", 6, "2023-10-01T00:00:00Z"),  # q2
    ("S06", "C001", "csat", 5, "2024-05-25T00:00:00Z"),
    ("S07", "C001", "csat", 2, "2024-04-10T00:00:00Z"),
    ("S08", "C001", "csat", 4, "2024-03-10T00:00:00Z"),
    ("S09", "C001", "ces", 6, "2024-05-28T12:00:00Z"),  # the last answer before as_of
    ("S10", "C001", "ces", 3, "2024-03-20T00:00:00Z"),
    ("S11", "C001", "ces", 1, "2022-05-01T00:00:00Z"),  # more than a year ago
    ("P01", "C002", "nps", 8, "2024-02-10T00:00:00Z"),  # q1, which began before C002 did
    ("P02", "C002", "ces", 7, "2024-05-01T00:00:00Z"),
]

EXPECTED = {
    "C001": {
        "last_nps": 3.0,
        "last_nps_category": "detractor",
        "nps_90d": 33.333333,  # promoters S01, S03, detractor S02 of three
        "nps_score_change_90d": -2.666667,  # (9 + 3 + 10) / 3 - 10
        "days_since_last_survey_answer": 3.5,
        "csat_satisfied_share_90d": 0.666667,  # S06, S08 of three
        "ces_mean_90d": 4.5,
        "survey_answers_365d": 10.0,
        "nps_response_rate_365d": 0.75,  # q0, q1, q2 of four
    },
    "C002": {
        "last_nps": 8.0,
        "last_nps_category": "passive",
        "nps_90d": np.nan,
        "nps_score_change_90d": np.nan,
        "days_since_last_survey_answer": 31.0,
        "csat_satisfied_share_90d": np.nan,
        "ces_mean_90d": 7.0,
        "survey_answers_365d": 2.0,
        "nps_response_rate_365d": 0.0,  # only q0 lies wholly within its tenure, and it has no NPS answer
    },
    "C003": {
        "last_nps": np.nan,
        "last_nps_category": None,
        "nps_90d": np.nan,
        "nps_score_change_90d": np.nan,
        "days_since_last_survey_answer": np.nan,
        "csat_satisfied_share_90d": np.nan,
        "ces_mean_90d": np.nan,
        "survey_answers_365d": 0.0,
        "nps_response_rate_365d": 0.0,  # four quarters as a customer, no NPS answer in any
    },
}


def _survey_rows(rows: list[tuple[str, str, str, int, str]]) -> list[dict[str, object]]:
    keys = ("response_id", "customer_id", "survey", "score", "responded_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _compute(engine: Engine, customer_ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        scope = Scope(AS_OF, active_customers(connection, AS_OF), customer_ids)
        signals = satisfaction.compute(connection, scope, CONFIG)
    assert list(signals.frame.columns) == [f.name for f in signals.features]
    return signals.frame


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    insert_rows(engine, customers, [{"customer_id": c, "created_at": at} for c, at in STARTS.items()])
    insert_rows(
        engine,
        subscriptions,
        [
            {"subscription_id": f"S-{c}", "customer_id": c, "started_at": at, "mrr": 100.0}
            for c, at in STARTS.items()
        ],
    )
    insert_rows(engine, survey_responses, _survey_rows(SURVEYS))
    return engine


def test_catalogue_names_read_as_sentences():
    features = satisfaction.catalogue(CONFIG)
    assert [f.name for f in features] == list(EXPECTED["C001"])
    assert all(f.family == "satisfaction" and f.description and f.sentence for f in features)
    # Counts are never unknown; everything else says what it means to have no value.
    assert all(f.missing for f in features if f.unit is not Unit.COUNT)


def test_hand_computed_values(seeded: Engine):
    frame = _compute(seeded)
    expected = pd.DataFrame.from_dict(EXPECTED, orient="index").astype({"last_nps_category": object})
    expected.index.name = "customer_id"
    assert frame["last_nps_category"].dtype == object
    assert (frame.drop(columns="last_nps_category").dtypes == "float64").all()
    pd.testing.assert_frame_equal(frame, expected, check_index_type=False, check_exact=True)


def test_answers_at_or_after_as_of_do_not_exist_yet(seeded: Engine):
    before = _compute(seeded)
    later = [
        ("L01", "C001", "nps", 10, "2024-06-01T00:00:00Z"),  # exactly at as_of
        ("L02", "C002", "csat", 1, "2024-06-05T00:00:00Z"),
        ("L03", "C003", "nps", 0, "2024-07-01T00:00:00Z"),
    ]
    insert_rows(seeded, survey_responses, _survey_rows(later))
    after = _compute(seeded)
    pd.testing.assert_frame_equal(after, before)
    assert math.isnan(after.loc["C003", "last_nps"])


def test_sentences_a_rep_reads(seeded: Engine):
    frame = _compute(seeded)
    by_name = {f.name: f for f in satisfaction.catalogue(CONFIG)}
    last, category = by_name["last_nps"], by_name["last_nps_category"]
    assert last.say(frame.loc["C001", "last_nps"]) == "Their last NPS answer was 3 out of 10"
    assert (
        category.say(frame.loc["C001", "last_nps_category"]) == "Their last NPS answer makes them a detractor"
    )
    assert last.say(frame.loc["C003", "last_nps"]) == "No NPS answer yet"
    assert category.say(frame.loc["C003", "last_nps_category"]) == "No NPS answer yet"
    days = by_name["days_since_last_survey_answer"]
    assert days.say(frame.loc["C002", days.name]) == "They last answered a survey 31 days ago"
    nps = by_name["nps_90d"]
    assert (
        nps.say(frame.loc["C001", nps.name])
        == "Their NPS over the last 90 days is 33.3 (on a scale from -100 to 100)"
    )


def test_one_customer_on_demand(seeded: Engine):
    everyone = _compute(seeded)
    # The whole population but one customer in scope: the queries themselves must skip the others' answers.
    narrowed = _compute(seeded, customer_ids=("C002",))
    pd.testing.assert_series_equal(narrowed.loc["C002"], everyone.loc["C002"])
    assert narrowed.loc["C001", "survey_answers_365d"] == 0
    assert math.isnan(narrowed.loc["C001", "last_nps"])


def test_response_rate_needs_a_whole_quarter_of_tenure(engine: Engine):
    population = pd.DataFrame(
        {"tenure_days": [60.0, 91.0, 400.0]}, index=pd.Index(["new", "one", "old"], name="customer_id")
    )
    with engine.connect() as connection:
        frame = satisfaction.compute(connection, Scope(AS_OF, population), CONFIG).frame
    assert math.isnan(frame.loc["new", "nps_response_rate_365d"])
    assert frame.loc["one", "nps_response_rate_365d"] == 0.0
    assert frame.loc["old", "survey_answers_365d"] == 0.0
