"""Engagement features: hand-computed counts, changes, rates, breadth and recency from imported events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from churn.config import FeaturesConfig
from churn.ingest import IngestOptions, ingest_file
from churn.tables import customers, subscriptions
from features import engagement
from features.rollup import RollupSummary, refresh_usage_rollup
from features.scope import Scope, Signals, active_customers, as_of_instant
from tests.factories import insert_rows, write_csv

AS_OF = date(2024, 6, 1)
NOW = datetime(2024, 7, 1, tzinfo=UTC)  # imports run after as_of, so events on and after it are valid
CONFIG = FeaturesConfig()  # windows 7, 30, 90 days; look-back 180 days
VISIT = "Kunden-Besuch vor Ort"  # an event type as a German CRM might spell it

# Windows before 2024-06-01:  7d from 05-25 (the 7 days before: from 05-18),
#                            30d from 05-02 (the 30 days before: from 04-02),
#                            90d from 03-03 (the 90 days before: from 2023-12-04, the look-back start).


def add_customer(
    engine: Engine, customer_id: str, *, since: str = "2023-01-01", seats: int | None = 10
) -> None:
    """A customer created on ``since`` with one open subscription from that day."""
    start = f"{since}T00:00:00Z"
    insert_rows(engine, customers, [{"customer_id": customer_id, "created_at": start}])
    insert_rows(
        engine,
        subscriptions,
        [
            {
                "subscription_id": f"S-{customer_id}",
                "customer_id": customer_id,
                "started_at": start,
                "mrr": 100.0,
                "seats": seats,
            }
        ],
    )


def event(customer_id: str, event_type: str, at: str, user_id: str | None = None) -> dict[str, object]:
    """One usage event; ``at`` is a day (the event is at noon UTC) or a full timestamp."""
    occurred_at = at if "T" in at else f"{at}T12:00:00Z"
    return {
        "customer_id": customer_id,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "user_id": user_id,
    }


def import_events(
    engine: Engine, tmp_path: Path, rows: list[dict[str, object]], name: str = "events"
) -> RollupSummary:
    """Import events as a file (so the rollup change log is written), then refresh the rollup."""
    rows = [{"event_id": f"{name}-{i}", **row} for i, row in enumerate(rows)]
    path = write_csv(tmp_path / f"{name}.csv", rows)
    ingest_file(engine, "events", path, options=IngestOptions(), now=NOW)
    return refresh_usage_rollup(engine)


def engagement_at(engine: Engine, day: date = AS_OF, config: FeaturesConfig = CONFIG) -> Signals:
    with engine.connect() as connection:
        as_of = as_of_instant(day)
        signals = engagement.compute(connection, Scope(as_of, active_customers(connection, as_of)), config)
    assert list(signals.frame.columns) == [f.name for f in signals.features]
    assert (signals.frame.dtypes == "float64").all()
    return signals


def assert_features(signals: Signals, customer_id: str, expected: dict[str, float]) -> None:
    actual = signals.frame.loc[customer_id, list(expected)]
    wanted = pd.Series(expected, name=customer_id, dtype="float64")
    pd.testing.assert_series_equal(actual, wanted, check_names=False, rtol=0, atol=1e-9)


def sentence(signals: Signals, customer_id: str, name: str) -> str:
    feature = next(f for f in signals.features if f.name == name)
    return feature.say(signals.frame.at[customer_id, name])


def per_type_columns(signals: Signals) -> set[str]:
    return {c for c in signals.frame.columns if "_events_" in c or c.startswith("days_since_last_")}


def test_counts_per_event_type_and_in_total_per_window(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(
        engine,
        tmp_path,
        [
            event("C1", "playlist_created", "2024-05-30"),
            event("C1", "playlist_created", "2024-05-25"),  # first day of the 7-day window
            event("C1", "playlist_created", "2024-05-10"),
            event("C1", "playlist_created", "2024-04-01"),
            event("C1", VISIT, "2024-05-31"),
            event("C1", VISIT, "2024-03-10"),
        ],
    )
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {
            "playlist_created_events_7d": 2.0,
            "playlist_created_events_30d": 3.0,
            "playlist_created_events_90d": 4.0,
            "kunden_besuch_vor_ort_events_7d": 1.0,
            "kunden_besuch_vor_ort_events_30d": 1.0,
            "kunden_besuch_vor_ort_events_90d": 2.0,
            "events_7d": 3.0,
            "events_30d": 4.0,
            "events_90d": 6.0,
        },
    )


def test_an_event_type_is_named_by_its_slug_and_said_in_its_own_words(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(engine, tmp_path, [event("C1", VISIT, "2024-05-31"), event("C1", VISIT, "2024-03-10")])
    signals = engagement_at(engine)
    assert sentence(signals, "C1", "kunden_besuch_vor_ort_events_90d") == (
        "2 'Kunden Besuch vor Ort' events in the last 90 days"
    )
    assert sentence(signals, "C1", "days_since_last_kunden_besuch_vor_ort") == (
        "The last 'Kunden Besuch vor Ort' event was 1 day ago"
    )


def test_change_versus_the_previous_window(engine, tmp_path):
    add_customer(engine, "C1")
    before = [event("C1", "playlist_created", "2024-04-10") for _ in range(4)]  # the 30 days before
    import_events(engine, tmp_path, [*before, *[event("C1", "playlist_created", "2024-05-10")] * 2])
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {"events_30d_vs_prev_30d": -0.5, "playlist_created_events_30d_vs_prev_30d": -0.5},
    )
    assert sentence(signals, "C1", "events_30d_vs_prev_30d") == (
        "Product usage fell 50% versus the previous 30 days"
    )
    assert sentence(signals, "C1", "playlist_created_events_30d_vs_prev_30d") == (
        "'playlist created' events fell 50% versus the previous 30 days"
    )


def test_change_is_unknown_when_the_previous_window_was_empty(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(engine, tmp_path, [event("C1", "playlist_created", "2024-05-10")])
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {
            "events_7d_vs_prev_7d": np.nan,  # nothing now, nothing before
            "events_90d_vs_prev_90d": np.nan,  # one event now, none before: not "infinitely more"
            "playlist_created_events_90d_vs_prev_90d": np.nan,
        },
    )
    assert sentence(signals, "C1", "events_90d_vs_prev_90d") == (
        "Too new, or no usage in the 90 days before, to compare with"
    )


def test_change_is_unknown_for_an_account_younger_than_two_windows(engine, tmp_path):
    add_customer(engine, "C1", since="2024-04-22")  # 40 days old
    import_events(
        engine,
        tmp_path,
        [
            *[event("C1", "playlist_created", "2024-04-25")] * 2,  # the 30 days before, after the start
            event("C1", "playlist_created", "2024-05-20"),  # the 7 days before
            *[event("C1", "playlist_created", "2024-05-28")] * 2,
        ],
    )
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {
            "events_7d": 2.0,
            "events_7d_vs_prev_7d": 1.0,  # 40 days >= 2 x 7
            "events_30d": 3.0,
            "events_30d_vs_prev_30d": np.nan,  # would be +50%, but 40 days < 2 x 30
            "playlist_created_events_30d_vs_prev_30d": np.nan,
            "events_90d_vs_prev_90d": np.nan,
        },
    )
    assert (
        sentence(signals, "C1", "events_7d_vs_prev_7d")
        == "Product usage rose 100% versus the previous 7 days"
    )


def test_events_per_30_days_count_only_the_days_the_account_existed(engine, tmp_path):
    add_customer(engine, "YOUNG", since="2024-05-12")  # 20 days old
    add_customer(engine, "OLD")
    import_events(
        engine,
        tmp_path,
        [event(c, "playlist_created", "2024-05-15") for c in ("YOUNG", "OLD") for _ in range(10)],
    )
    signals = engagement_at(engine)
    young = {"events_per_30d_7d": 0.0, "events_per_30d_30d": 15.0, "events_per_30d_90d": 15.0}  # 10 / 20 x 30
    assert_features(signals, "YOUNG", young)
    old = {
        "events_per_30d_7d": 0.0,
        "events_per_30d_30d": 10.0,
        "events_per_30d_90d": 3.333333,
    }  # 10 / 90 x 30
    assert_features(signals, "OLD", old)


def test_active_days_users_seats_and_breadth(engine, tmp_path):
    add_customer(engine, "C1", seats=4)
    import_events(
        engine,
        tmp_path,
        [
            event("C1", "playlist_created", "2024-05-30", "U1"),
            event("C1", "playlist_created", "2024-05-30T18:00:00Z", "U2"),
            event("C1", "song_played", "2024-05-30"),  # no user: an event, not a person
            event("C1", "song_played", "2024-05-20", "U1"),  # U1 again, another day
            event("C1", "song_played", "2024-04-10", "U3"),
            event("C1", VISIT, "2024-04-10", "U3"),
        ],
    )
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {
            "events_7d": 3.0,
            "events_30d": 4.0,
            "events_90d": 6.0,
            "active_days_7d": 1.0,
            "active_days_30d": 2.0,
            "active_days_90d": 3.0,
            "active_users_7d": 2.0,
            "active_users_30d": 2.0,
            "active_users_90d": 3.0,
            "active_users_30d_vs_prev_30d": 1.0,  # U1, U2 against U3
            "seat_utilization_7d": 0.5,
            "seat_utilization_30d": 0.5,
            "seat_utilization_90d": 0.75,
            "event_types_used_7d": 2.0,
            "event_types_used_30d": 2.0,
            "event_types_used_90d": 3.0,
        },
    )
    assert (
        sentence(signals, "C1", "seat_utilization_90d") == "75% of paid seats were used in the last 90 days"
    )


def test_seat_utilization_is_unknown_without_a_seat_count(engine, tmp_path):
    add_customer(engine, "C1", seats=None)
    import_events(engine, tmp_path, [event("C1", "playlist_created", "2024-05-30", "U1")])
    signals = engagement_at(engine)
    assert_features(signals, "C1", {"active_users_7d": 1.0, "seat_utilization_7d": np.nan})
    assert sentence(signals, "C1", "seat_utilization_7d") == "Seat count not known"


def test_days_since_the_last_event_in_total_and_per_type(engine, tmp_path):
    add_customer(engine, "C1")
    add_customer(engine, "EDGE")
    add_customer(engine, "GONE")
    import_events(
        engine,
        tmp_path,
        [
            event("C1", "playlist_created", "2024-05-30"),
            event("C1", "song_played", "2024-05-20"),
            event("EDGE", "playlist_created", "2023-12-04"),  # the first day of the 180-day look-back
            event("GONE", "playlist_created", "2023-12-03"),  # one day before it
        ],
    )
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {
            "days_since_last_event": 2.0,
            "days_since_last_playlist_created": 2.0,
            "days_since_last_song_played": 12.0,
        },
    )
    assert_features(
        signals,
        "EDGE",
        {"days_since_last_event": 180.0, "days_since_last_playlist_created": 180.0, "events_90d": 0.0},
    )
    assert_features(
        signals,
        "GONE",
        {"days_since_last_event": np.nan, "days_since_last_playlist_created": np.nan, "events_90d": 0.0},
    )
    assert (
        sentence(signals, "C1", "days_since_last_song_played")
        == "The last 'song played' event was 12 days ago"
    )
    assert sentence(signals, "GONE", "days_since_last_event") == "No product activity in the last 180 days"
    assert sentence(signals, "GONE", "days_since_last_playlist_created") == (
        "No 'playlist created' event in the last 180 days"
    )


def test_events_at_or_after_as_of_are_not_counted(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(
        engine,
        tmp_path,
        [
            event("C1", "playlist_created", "2024-05-31T23:59:59Z"),
            event("C1", "playlist_created", "2024-06-01T00:00:00Z"),
            event("C1", "playlist_created", "2024-06-01T09:00:00Z"),
            event("C1", "sent_after_as_of", "2024-06-01T00:00:00Z"),
        ],
    )
    signals = engagement_at(engine)
    assert_features(
        signals,
        "C1",
        {
            "events_7d": 1.0,
            "playlist_created_events_7d": 1.0,
            "active_days_7d": 1.0,
            "days_since_last_event": 1.0,
        },
    )
    assert not any("sent_after_as_of" in c for c in signals.frame.columns)
    # They are stored, and count from the next day on.
    assert_features(engagement_at(engine, date(2024, 6, 2)), "C1", {"events_7d": 4.0})


def test_windows_are_counted_by_utc_day(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(
        engine,
        tmp_path,
        [
            event("C1", "playlist_created", "2024-05-24T23:30:00-02:00"),  # 05-25 01:30 UTC: in the 7 days
            event("C1", "playlist_created", "2024-05-25T00:30:00+02:00"),  # 05-24 22:30 UTC: before them
            event("C1", "playlist_created", "2024-05-31T23:30:00-01:00"),  # 06-01 00:30 UTC: on as_of
        ],
    )
    assert_features(
        engagement_at(engine), "C1", {"events_7d": 1.0, "events_30d": 2.0, "days_since_last_event": 7.0}
    )


def test_max_event_types_keeps_per_type_features_for_the_most_used_only(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(
        engine,
        tmp_path,
        [*[event("C1", "song_played", "2024-05-30")] * 3, event("C1", "playlist_created", "2024-05-30")],
    )
    signals = engagement_at(engine, config=FeaturesConfig(max_event_types=1))
    assert per_type_columns(signals) == {
        "song_played_events_7d",
        "song_played_events_30d",
        "song_played_events_90d",
        "song_played_events_7d_vs_prev_7d",
        "song_played_events_30d_vs_prev_30d",
        "song_played_events_90d_vs_prev_90d",
        "days_since_last_song_played",
        "days_since_last_event",
    }
    assert_features(
        signals, "C1", {"song_played_events_7d": 3.0, "events_7d": 4.0, "event_types_used_7d": 2.0}
    )


def test_excluded_event_types_are_left_out_of_totals_too(engine, tmp_path):
    add_customer(engine, "C1")
    import_events(
        engine,
        tmp_path,
        [
            *[event("C1", "song_played", "2024-05-30")] * 2,
            *[event("C1", "internal_sync", "2024-05-29")] * 3,
            event("C1", "internal_sync", "2024-05-31"),
        ],
    )
    signals = engagement_at(engine, config=FeaturesConfig(exclude_event_types=["internal_sync"]))
    assert not any("internal_sync" in c for c in signals.frame.columns)
    assert_features(
        signals,
        "C1",
        {"events_7d": 2.0, "active_days_7d": 1.0, "event_types_used_7d": 1.0, "days_since_last_event": 2.0},
    )


@pytest.mark.parametrize(
    ("failed_payment_type", "config"),
    [
        ("payment_failed", CONFIG),
        ("Zahlung fehlgeschlagen", FeaturesConfig(failed_payment_event_types=["Zahlung fehlgeschlagen"])),
    ],
)
def test_failed_payments_never_count_as_engagement(engine, tmp_path, failed_payment_type, config):
    add_customer(engine, "C1")
    import_events(
        engine,
        tmp_path,
        [event("C1", "song_played", "2024-05-30"), *[event("C1", failed_payment_type, "2024-05-31")] * 2],
    )
    signals = engagement_at(engine, config=config)
    assert per_type_columns(signals) == {
        "song_played_events_7d",
        "song_played_events_30d",
        "song_played_events_90d",
        "song_played_events_7d_vs_prev_7d",
        "song_played_events_30d_vs_prev_30d",
        "song_played_events_90d_vs_prev_90d",
        "days_since_last_song_played",
        "days_since_last_event",
    }
    assert_features(
        signals,
        "C1",
        {"events_7d": 1.0, "active_days_7d": 1.0, "event_types_used_7d": 1.0, "days_since_last_event": 2.0},
    )


@pytest.mark.parametrize(
    ("left_out", "config"),
    [
        ("payment_failed", CONFIG),
        ("internal_sync", FeaturesConfig(exclude_event_types=["internal_sync"])),
    ],
)
def test_people_seen_only_in_left_out_events_are_not_active_users(engine, tmp_path, left_out, config):
    add_customer(engine, "C1", seats=4)
    import_events(engine, tmp_path, [event("C1", left_out, "2024-05-31", "billing-contact")])
    signals = engagement_at(engine, config=config)
    assert_features(
        signals,
        "C1",
        {"events_7d": 0.0, "active_days_7d": 0.0, "active_users_7d": 0.0, "seat_utilization_7d": 0.0},
    )


def test_an_incrementally_refreshed_rollup_gives_the_same_features_as_a_full_rebuild(engine, tmp_path):
    add_customer(engine, "C1", seats=4)
    add_customer(engine, "C2")
    first = import_events(
        engine,
        tmp_path,
        [
            event("C1", "song_played", "2024-04-20", "U1"),  # moved to 05-29 by the second import
            event("C1", "song_played", "2024-05-28", "U1"),
            event("C1", "playlist_created", "2024-05-28", "U2"),
            event("C2", "song_played", "2024-05-01", "U9"),
        ],
        name="first",
    )
    assert first.full_rebuild  # the rollup was empty
    second = import_events(
        engine,
        tmp_path,
        [
            {"event_id": "first-0", **event("C1", "song_played", "2024-05-29", "U1")},
            event("C1", "song_played", "2024-05-30", "U3"),  # a new day
            event("C1", "playlist_created", "2024-05-28", "U2"),  # a day the rollup already holds
        ],
        name="second",
    )
    # C1 on 04-20 (moved from), 05-29 (moved to), 05-30 (new) and 05-28 (added to).
    assert (second.changed_days, second.full_rebuild) == (4, False)
    incremental = engagement_at(engine)
    assert_features(
        incremental,
        "C1",
        {
            "events_7d": 5.0,
            "events_90d": 5.0,  # not 6: the moved event left 04-20
            "events_30d_vs_prev_30d": np.nan,
            "song_played_events_7d": 3.0,
            "playlist_created_events_7d": 2.0,
            "active_days_7d": 3.0,
            "active_users_7d": 3.0,
            "active_users_90d": 3.0,
            "days_since_last_event": 2.0,
        },
    )
    assert_features(incremental, "C2", {"events_7d": 0.0, "events_90d": 1.0, "days_since_last_event": 31.0})

    assert refresh_usage_rollup(engine, full=True).full_rebuild
    pd.testing.assert_frame_equal(incremental.frame, engagement_at(engine).frame, check_exact=True)
