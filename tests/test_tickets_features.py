"""Ticket features: hand-computed values, point in time, empty customers, one customer on demand."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from churn.config import FeaturesConfig
from churn.tables import customers, subscriptions, tickets
from features import tickets as ticket_features
from features.scope import Scope, active_customers, as_of_instant
from tests.factories import insert_rows

AS_OF = as_of_instant(date(2024, 6, 1))
CONFIG = FeaturesConfig()

# Windows before 2024-06-01: 7d from 05-25, 30d from 05-02, 90d from 03-03, the 90 days before from 2023-12-04.
TICKETS = [
    # Open, answered: opened in the last 7 days.
    {"ticket_id": "T1", "customer_id": "C001", "opened_at": "2024-05-30T10:00:00Z",
     "first_response_at": "2024-05-30T12:00:00Z", "priority": "Urgent"},
    # Resolved after as_of, so open at as_of: its outcome fields and today's status must not be read.
    {"ticket_id": "T2", "customer_id": "C001", "opened_at": "2024-05-20T00:00:00Z",
     "resolved_at": "2024-06-03T00:00:00Z", "status": "solved", "priority": "normal",
     "replies": 5, "reopened": True, "escalated": True, "csat": 1},
    {"ticket_id": "T3", "customer_id": "C001", "opened_at": "2024-04-01T00:00:00Z",
     "first_response_at": "2024-04-01T04:00:00Z", "resolved_at": "2024-04-02T00:00:00Z", "priority": "high",
     "replies": 1, "reopened": False, "escalated": False, "csat": 5},
    {"ticket_id": "T4", "customer_id": "C001", "opened_at": "2024-03-10T00:00:00Z",
     "first_response_at": "2024-03-10T01:00:00Z", "resolved_at": "2024-03-12T00:00:00Z", "priority": "low",
     "replies": 3, "reopened": True, "escalated": False, "csat": 3},
    # Opened in the previous 90 days, resolved inside the window (55 days = 1320 h); outcomes partly unknown.
    {"ticket_id": "T5", "customer_id": "C001", "opened_at": "2024-01-10T00:00:00Z",
     "first_response_at": "2024-01-10T02:00:00Z", "resolved_at": "2024-03-05T00:00:00Z", "escalated": True},
    # First response exactly at as_of: it has not happened yet.
    {"ticket_id": "T6", "customer_id": "C001", "opened_at": "2024-05-31T20:00:00Z",
     "first_response_at": "2024-06-01T00:00:00Z", "priority": "High"},
    {"ticket_id": "U1", "customer_id": "C002", "opened_at": "2024-05-15T12:00:00Z",
     "first_response_at": "2024-05-15T18:00:00Z", "resolved_at": "2024-05-16T12:00:00Z", "priority": "normal",
     "replies": 0, "reopened": False, "escalated": False, "csat": 4},
]  # fmt: skip

EXPECTED = {
    "C001": {
        "tickets_opened_7d": 2.0,  # T1, T6
        "tickets_opened_30d": 3.0,  # + T2
        "tickets_opened_90d": 5.0,  # + T3, T4
        "open_tickets": 3.0,  # T1, T2, T6
        "oldest_open_ticket_age_days": 12.0,  # T2
        "tickets_awaiting_first_response": 2.0,  # T2, T6
        "median_first_response_h_90d": 2.0,  # T1 2 h, T3 4 h, T4 1 h
        "avg_resolution_h_90d": 464.0,  # (24 + 48 + 1320) / 3
        "first_contact_resolution_90d": 0.5,  # T3 of T3, T4 (T5 replies unknown)
        "reopen_rate_90d": 0.5,  # T4 of T3, T4
        "escalation_rate_90d": 0.333333,  # T5 of T3, T4, T5
        "high_priority_share_90d": 0.6,  # T1 urgent, T3 high, T6 High of five
        "ticket_csat_90d": 4.0,  # (5 + 3) / 2
        "tickets_opened_90d_vs_prev_90d": 4.0,  # 5 against 1 (T5)
    },
    "C002": {
        "tickets_opened_7d": 0.0,
        "tickets_opened_30d": 1.0,
        "tickets_opened_90d": 1.0,
        "open_tickets": 0.0,
        "oldest_open_ticket_age_days": np.nan,
        "tickets_awaiting_first_response": 0.0,
        "median_first_response_h_90d": 6.0,
        "avg_resolution_h_90d": 24.0,
        "first_contact_resolution_90d": 1.0,
        "reopen_rate_90d": 0.0,
        "escalation_rate_90d": 0.0,
        "high_priority_share_90d": 0.0,
        "ticket_csat_90d": 4.0,
        "tickets_opened_90d_vs_prev_90d": np.nan,  # nothing the 90 days before
    },
    "C003": {
        "tickets_opened_7d": 0.0,
        "tickets_opened_30d": 0.0,
        "tickets_opened_90d": 0.0,
        "open_tickets": 0.0,
        "oldest_open_ticket_age_days": np.nan,
        "tickets_awaiting_first_response": 0.0,
        "median_first_response_h_90d": np.nan,
        "avg_resolution_h_90d": np.nan,
        "first_contact_resolution_90d": np.nan,
        "reopen_rate_90d": np.nan,
        "escalation_rate_90d": np.nan,
        "high_priority_share_90d": np.nan,
        "ticket_csat_90d": np.nan,
        "tickets_opened_90d_vs_prev_90d": np.nan,
    },
}


def _seed_customers(engine: Engine, ids: tuple[str, ...] = ("C001", "C002", "C003")) -> None:
    insert_rows(engine, customers, [{"customer_id": c, "created_at": "2024-01-01T00:00:00Z"} for c in ids])
    insert_rows(
        engine,
        subscriptions,
        [
            {
                "subscription_id": f"S-{c}",
                "customer_id": c,
                "started_at": "2024-01-01T00:00:00Z",
                "mrr": 100.0,
            }
            for c in ids
        ],
    )


def _compute(engine: Engine, customer_ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        scope = Scope(AS_OF, active_customers(connection, AS_OF), customer_ids)
        signals = ticket_features.compute(connection, scope, CONFIG)
    assert list(signals.frame.columns) == [f.name for f in signals.features]
    return signals.frame


def _insert_tickets(engine: Engine, rows: list[dict[str, object]]) -> None:
    # One multi-row insert needs the same keys in every row: what a row leaves out is unknown.
    optional = ("first_response_at", "resolved_at", "status", "priority", "replies", "reopened", "escalated")
    insert_rows(engine, tickets, [dict.fromkeys((*optional, "csat")) | row for row in rows])


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    _seed_customers(engine)
    _insert_tickets(engine, TICKETS)
    return engine


def test_catalogue_names_read_as_sentences():
    names = [f.name for f in ticket_features.catalogue(CONFIG)]
    assert names == list(EXPECTED["C001"])
    assert all(
        f.family == "tickets" and f.description and f.sentence for f in ticket_features.catalogue(CONFIG)
    )


def test_hand_computed_values(seeded: Engine):
    frame = _compute(seeded)
    expected = pd.DataFrame.from_dict(EXPECTED, orient="index")
    expected.index.name = "customer_id"
    assert (frame.dtypes == "float64").all()
    pd.testing.assert_frame_equal(frame, expected, check_index_type=False, check_exact=True)


def test_ticket_resolved_after_as_of_is_open_and_its_outcome_unread(engine: Engine):
    _seed_customers(engine, ("C001",))
    _insert_tickets(engine, [TICKETS[1]])
    row = _compute(engine).loc["C001"]
    assert row["open_tickets"] == 1
    assert row["tickets_awaiting_first_response"] == 1
    for unread in ("avg_resolution_h_90d", "reopen_rate_90d", "escalation_rate_90d", "ticket_csat_90d"):
        assert math.isnan(row[unread]), unread


def test_first_response_at_as_of_has_not_happened(engine: Engine):
    _seed_customers(engine, ("C001",))
    _insert_tickets(engine, [TICKETS[5]])
    row = _compute(engine).loc["C001"]
    assert row["tickets_awaiting_first_response"] == 1
    assert math.isnan(row["median_first_response_h_90d"])


def test_facts_dated_at_or_after_as_of_change_nothing(seeded: Engine):
    before = _compute(seeded)
    later = [
        {"ticket_id": "L1", "customer_id": "C001", "opened_at": "2024-06-01T00:00:00Z", "priority": "urgent"},
        {"ticket_id": "L2", "customer_id": "C002", "opened_at": "2024-06-02T00:00:00Z",
         "first_response_at": "2024-06-02T01:00:00Z", "resolved_at": "2024-06-03T00:00:00Z",
         "replies": 1, "reopened": True, "escalated": True, "csat": 1},
        {"ticket_id": "L3", "customer_id": "C003", "opened_at": "2024-07-01T00:00:00Z"},
    ]  # fmt: skip
    _insert_tickets(seeded, later)
    pd.testing.assert_frame_equal(_compute(seeded), before)


def test_sentences_a_rep_reads(seeded: Engine):
    frame = _compute(seeded)
    by_name = {f.name: f for f in ticket_features.catalogue(CONFIG)}
    oldest = by_name["oldest_open_ticket_age_days"]
    assert (
        oldest.say(frame.loc["C001", oldest.name])
        == "The oldest open support ticket has been open for 12 days"
    )
    assert oldest.say(frame.loc["C003", oldest.name]) == "No support ticket is open"
    trend = by_name["tickets_opened_90d_vs_prev_90d"]
    assert trend.say(frame.loc["C001", trend.name]) == (
        "New support tickets rose 400% in the last 90 days compared with the 90 days before"
    )
    share = by_name["high_priority_share_90d"]
    assert (
        share.say(frame.loc["C001", share.name])
        == "60% of tickets opened in the last 90 days were high priority"
    )


def test_one_customer_on_demand(seeded: Engine):
    everyone = _compute(seeded)
    # The whole population but one customer in scope: the query itself must skip the others' tickets.
    narrowed = _compute(seeded, customer_ids=("C002",))
    pd.testing.assert_series_equal(narrowed.loc["C002"], everyone.loc["C002"])
    assert narrowed.loc["C001", "tickets_opened_90d"] == 0


def test_windows_follow_the_config(seeded: Engine):
    config = FeaturesConfig(windows_days=[14, 60], high_priorities=["URGENT"])
    with seeded.connect() as connection:
        scope = Scope(AS_OF, active_customers(connection, AS_OF))
        signals = ticket_features.compute(connection, scope, config)
    frame = signals.frame
    assert list(frame.columns)[:2] == ["tickets_opened_14d", "tickets_opened_60d"]
    # Since 2024-04-02: T1 (urgent), T2, T6; the 60 days before: T3, T4.
    assert frame.loc["C001", "high_priority_share_60d"] == 0.333333
    assert frame.loc["C001", "tickets_opened_60d_vs_prev_60d"] == 0.5
