"""Churn dates, snapshot labels over the horizon, censoring and the label policy, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import insert

from churn.config import DEFAULT_TAXONOMY, LabelsConfig, ReasonsConfig
from churn.tables import (
    alert_outcomes,
    alerts,
    cancellations,
    customers,
    ingest_runs,
    reason_predictions,
    subscriptions,
    usage_events,
)
from features.labels import churn_events, label_snapshots, label_summary, observed_until
from features.rollup import refresh_usage_rollup
from tests.factories import insert_rows

LATER = datetime(2026, 1, 1, tzinfo=UTC)  # an observation horizon that censors nothing in these tests


def utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def subscribe(engine, customer_id: str, *periods: tuple[str, str | None]) -> None:
    """A customer and its paid periods, (started_at, ended_at) as ISO days; None = still running."""
    insert_rows(engine, customers, [{"customer_id": customer_id}])
    insert_rows(
        engine,
        subscriptions,
        [
            {
                "subscription_id": f"{customer_id}-S{i}",
                "customer_id": customer_id,
                "started_at": f"{start}T00:00:00Z",
                "ended_at": None if end is None else f"{end}T00:00:00Z",
                "mrr": 100.0,
            }
            for i, (start, end) in enumerate(periods)
        ],
    )


def cancel(engine, cancellation_id: str, customer_id: str, effective: str, **values: object) -> None:
    row = {"voluntary": True, "reason_code": "price", "reason_text": "too expensive", **values}
    insert_rows(
        engine,
        cancellations,
        [{"cancellation_id": cancellation_id, "customer_id": customer_id, "effective_at": effective, **row}],
    )


def churns(engine, config: LabelsConfig | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        return churn_events(connection, config or LabelsConfig())


def label(engine, rows: list[tuple[str, str]], config: LabelsConfig | None = None, **options):
    options.setdefault("observed_until", LATER)
    snapshots = pd.DataFrame(
        {"customer_id": [c for c, _ in rows], "as_of": [date.fromisoformat(d) for _, d in rows]}
    )
    with engine.connect() as connection:
        return label_snapshots(connection, snapshots, config or LabelsConfig(), **options)


def test_a_single_subscription_churns_at_its_end(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))

    found = churns(engine)

    assert found["customer_id"].tolist() == ["C1"]
    assert found["churned_at"].tolist() == [utc("2024-06-01")]
    assert str(found["churned_at"].dtype) == "datetime64[ns, UTC]"
    assert found["cancellation_id"].tolist() == [None]
    assert found["reason_code"].tolist() == [None]


def test_a_snapshot_is_churned_when_the_churn_falls_in_the_window(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))

    labels = label(
        engine,
        [
            ("C1", "2024-05-02"),  # 30 days before
            ("C1", "2024-03-03"),  # exactly 90 days before: the window's end is included
            ("C1", "2024-03-02"),  # 91 days before: the churn is past the window
            ("C1", "2024-06-01"),  # the churn date itself is not in (as_of, ...]
        ],
    )

    assert labels["churned"].tolist() == [1, 1, 0, 0]
    assert str(labels["churned"].dtype) == "Int8"
    assert labels["label_status"].tolist() == ["labelled"] * 4
    assert labels["churned_at"].tolist()[:2] == [utc("2024-06-01")] * 2
    assert labels["churned_at"].isna().tolist() == [False, False, True, True]


def test_an_open_subscription_has_not_churned(engine):
    subscribe(engine, "C1", ("2024-01-01", None))

    assert churns(engine).empty
    assert label(engine, [("C1", "2024-05-01")])["churned"].tolist() == [0]


def test_overlapping_subscriptions_are_one_stretch_of_coverage(engine):
    # An add-on that ends inside the main subscription is not a churn.
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"), ("2024-02-01", "2024-04-01"))

    assert churns(engine)["churned_at"].tolist() == [utc("2024-06-01")]


@pytest.mark.parametrize("gap_days", [0, 3, 7])
def test_a_lapse_within_the_grace_gap_is_not_churn(engine, gap_days):
    resumed = (date(2024, 3, 1) + pd.Timedelta(days=gap_days)).isoformat()
    subscribe(engine, "C1", ("2024-01-01", "2024-03-01"), (resumed, None))

    assert churns(engine).empty
    assert label(engine, [("C1", "2024-02-01")])["churned"].tolist() == [0]


def test_a_lapse_longer_than_the_grace_gap_is_churn_and_the_customer_comes_back(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-03-01"), ("2024-03-21", None))

    assert churns(engine)["churned_at"].tolist() == [utc("2024-03-01")]
    labels = label(engine, [("C1", "2024-02-01"), ("C1", "2024-04-01")])
    assert labels["churned"].tolist() == [1, 0]


def test_a_lapse_one_day_past_grace_is_churn(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-03-01"), ("2024-03-09", None))

    assert churns(engine)["churned_at"].tolist() == [utc("2024-03-01")]


def test_a_win_back_that_leaves_again_churns_twice(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-03-01"), ("2024-05-01", "2024-08-01"))
    cancel(engine, "X1", "C1", "2024-03-01T00:00:00Z", reason_code="price")
    cancel(engine, "X2", "C1", "2024-08-01T00:00:00Z", reason_code="competitor")

    found = churns(engine)

    assert found["churned_at"].tolist() == [utc("2024-03-01"), utc("2024-08-01")]
    assert found["cancellation_id"].tolist() == ["X1", "X2"]
    labels = label(engine, [("C1", "2024-02-01"), ("C1", "2024-06-01")])
    assert labels["churned"].tolist() == [1, 1]
    assert labels["churned_at"].tolist() == [utc("2024-03-01"), utc("2024-08-01")]
    assert labels["reason_code"].tolist() == ["price", "competitor"]


def test_observed_until_is_the_freshest_fact(engine):
    with engine.connect() as connection:
        assert observed_until(connection) is None
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-02-01", None))
    with engine.connect() as connection:
        assert observed_until(connection) == datetime(2024, 6, 1, tzinfo=UTC)
    insert_rows(
        engine,
        usage_events,
        [
            {
                "event_id": "E1",
                "customer_id": "C2",
                "event_type": "login",
                "occurred_at": "2024-09-01T12:00:00Z",
            }
        ],
    )
    refresh_usage_rollup(engine, full=True)
    with engine.connect() as connection:  # usage is known to the end of its last day
        assert observed_until(connection) == datetime(2024, 9, 2, tzinfo=UTC)


def test_a_window_that_reaches_past_what_we_know_is_censored(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-01-01", None))
    insert_rows(
        engine,
        usage_events,
        [
            {
                "event_id": "E1",
                "customer_id": "C2",
                "event_type": "login",
                "occurred_at": "2024-08-31T00:00:00Z",
            }
        ],
    )
    refresh_usage_rollup(engine, full=True)  # usage on 2024-08-31: known up to 2024-09-01
    rows = [
        ("C1", "2024-05-01"),  # window + grace ends 2024-08-06: known
        ("C2", "2024-05-27"),  # 2024-05-27 + 90 + 7 days is exactly 2024-09-01: known
        ("C2", "2024-05-28"),  # one day too late
        ("C1", "2024-05-28"),  # the churn is seen, but the label is censored like any other
    ]

    labels = label(engine, rows, observed_until=None)

    assert labels["label_status"].tolist() == ["labelled", "labelled", "censored", "censored"]
    assert labels["churned"].tolist() == [1, 0, pd.NA, pd.NA]
    assert labels["churned_at"].isna().tolist() == [False, True, True, True]

    later = label(engine, rows, observed_until=datetime(2024, 12, 31, tzinfo=UTC))
    assert later["label_status"].tolist() == ["labelled"] * 4
    assert later["churned"].tolist() == [1, 0, 0, 1]


def test_an_empty_database_labels_nothing(engine):
    labels = label(engine, [("C1", "2024-05-01")], observed_until=None)

    assert labels["label_status"].tolist() == ["censored"]
    assert labels["churned"].isna().all()


def test_a_failed_payment_is_excluded_by_default(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="payment_failed", voluntary=False)

    labels = label(engine, [("C1", "2024-05-01"), ("C1", "2024-01-15")])

    assert labels["label_status"].tolist() == ["excluded", "labelled"]
    assert labels["churned"].tolist() == [pd.NA, 0]
    assert labels["reason_code"].tolist() == ["payment_failed", None]
    assert labels["voluntary"].tolist() == [False, pd.NA]

    keep_all = LabelsConfig(exclude_reason_codes=[], exclude_involuntary=False)
    kept = label(engine, [("C1", "2024-05-01")], keep_all)
    assert kept["label_status"].tolist() == ["labelled"]
    assert kept["churned"].tolist() == [1]
    assert kept["reason_code"].tolist() == ["payment_failed"]


def test_involuntary_churn_is_excluded_whatever_its_reason(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="other", voluntary=False)

    assert label(engine, [("C1", "2024-05-01")])["label_status"].tolist() == ["excluded"]
    kept = label(engine, [("C1", "2024-05-01")], LabelsConfig(exclude_involuntary=False))
    assert kept["churned"].tolist() == [1]


def test_an_excluded_reason_code_excludes_voluntary_churn(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="competitor", voluntary=True)

    assert label(engine, [("C1", "2024-05-01")])["churned"].tolist() == [1]
    rivals = LabelsConfig(exclude_reason_codes=["competitor"])
    labels = label(engine, [("C1", "2024-05-01")], rivals)
    assert labels["label_status"].tolist() == ["excluded"]
    assert labels["excluded_because"].tolist() == ["reason_code"]


def test_uncontrollable_churn_is_excluded_by_default(engine):
    # A business that closed is a churn no rep could have prevented: not what the CS model predicts.
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="business_closed", voluntary=True)

    labels = label(engine, [("C1", "2024-05-01")])
    assert labels["label_status"].tolist() == ["excluded"]
    assert labels["excluded_because"].tolist() == ["uncontrollable"]
    assert labels["voluntary"].tolist() == [True]

    kept = label(engine, [("C1", "2024-05-01")], LabelsConfig(exclude_uncontrollable=False))
    assert kept["churned"].tolist() == [1]
    assert kept["excluded_because"].tolist() == [None]


def test_the_taxonomy_decides_what_a_reason_means(engine):
    # A company whose taxonomy calls "price" uncontrollable and "competitor" involuntary.
    taxonomy = {
        **DEFAULT_TAXONOMY,
        "price": DEFAULT_TAXONOMY["price"].model_copy(update={"controllable": False}),
        "competitor": DEFAULT_TAXONOMY["competitor"].model_copy(update={"voluntary": False}),
    }
    reasons = ReasonsConfig(taxonomy=taxonomy)
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="price", voluntary=None)
    cancel(engine, "X2", "C2", "2024-06-01T00:00:00Z", reason_code="competitor", voluntary=None)
    rows = [("C1", "2024-05-01"), ("C2", "2024-05-01")]

    assert label(engine, rows)["churned"].tolist() == [1, 1]
    labels = label(engine, rows, reasons=reasons)
    assert labels["excluded_because"].tolist() == ["uncontrollable", "involuntary"]
    # The cancellation gave no flag: the reason's own kind says whether the customer chose to leave.
    assert labels["voluntary"].tolist() == [True, False]


def test_an_orphaned_reason_code_stays_a_churn_and_is_reported(engine):
    # The taxonomy dropped "support" after cancellations were stored with it.
    reasons = ReasonsConfig(taxonomy={k: v for k, v in DEFAULT_TAXONOMY.items() if k != "support"})
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="support", voluntary=None)

    labels = label(engine, [("C1", "2024-05-01"), ("C1", "2024-04-01")], reasons=reasons)

    assert labels["churned"].tolist() == [1, 1]
    assert labels["reason_code"].tolist() == ["support", "support"]
    assert labels["voluntary"].isna().all()
    summary = label_summary(labels, reasons)
    assert summary["orphaned_reasons"] == {"support": 1}
    assert summary["churns_by_reason"] == {"support": 1}
    assert label_summary(labels)["orphaned_reasons"] == {}


def predict(engine, cancellation_id: str, reason_code: str, confidence: float = 0.9) -> None:
    insert_rows(
        engine,
        reason_predictions,
        [
            {
                "cancellation_id": cancellation_id,
                "reason_code": reason_code,
                "confidence": confidence,
                "classifier": "vocabulary",
                "classified_at": "2024-06-02T00:00:00Z",
            }
        ],
    )


def rep_says(engine, customer_id: str, when: str, reason_code: str | None, outcome: str = "churning") -> None:
    """A rep marks an alert about the customer with an outcome, as Slack or the API records it."""
    with engine.begin() as connection:
        alert_id = connection.execute(
            insert(alerts)
            .values(
                dedupe_key=f"{customer_id}:{when}:{outcome}",
                kind="threshold",
                customer_id=customer_id,
                as_of=date.fromisoformat(when[:10]),
                channel="default",
                message={},
                state="sent",
                attempts=1,
                next_attempt_at=datetime.fromisoformat(when),
                created_at=datetime.fromisoformat(when),
                updated_at=datetime.fromisoformat(when),
            )
            .returning(alerts.c.alert_id)
        ).scalar_one()
        connection.execute(
            insert(alert_outcomes).values(
                alert_id=alert_id,
                customer_id=customer_id,
                outcome=outcome,
                reason_code=reason_code,
                actor="rep@example.com",
                source="slack",
                created_at=datetime.fromisoformat(when),
            )
        )


def test_the_classifier_fills_a_cancellation_that_gave_only_text(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C3", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code=None, voluntary=None)
    cancel(engine, "X2", "C2", "2024-06-01T00:00:00Z", reason_code="", voluntary=None)
    cancel(engine, "X3", "C3", "2024-06-01T00:00:00Z", reason_code="competitor")
    predict(engine, "X1", "payment_failed")
    predict(engine, "X2", "adoption")
    predict(engine, "X3", "price")  # the cancellation's own code wins over the classifier's

    found = churns(engine).set_index("customer_id")
    assert found["reason_code"].to_dict() == {"C1": "payment_failed", "C2": "adoption", "C3": "competitor"}
    assert found["reason_source"].to_dict() == {"C1": "classifier", "C2": "classifier", "C3": "cancellation"}

    labels = label(engine, [("C1", "2024-05-01"), ("C2", "2024-05-01"), ("C3", "2024-05-01")])
    assert labels["label_status"].tolist() == ["excluded", "labelled", "labelled"]
    assert labels["excluded_because"].tolist() == ["involuntary", None, None]


def test_a_cancellation_coded_other_takes_the_classifiers_reason_and_stays_other_without_one(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="other")
    cancel(engine, "X2", "C2", "2024-06-01T00:00:00Z", reason_code="other")
    predict(engine, "X1", "support")

    found = churns(engine).set_index("customer_id")
    assert found["reason_code"].to_dict() == {"C1": "support", "C2": "other"}
    assert found["reason_source"].to_dict() == {"C1": "classifier", "C2": "cancellation"}


def test_a_reason_a_rep_gave_before_the_churn_fills_a_churn_nobody_explained(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))  # no cancellation row at all
    subscribe(engine, "C2", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C3", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X3", "C3", "2024-06-01T00:00:00Z", reason_code=None, voluntary=None)
    rep_says(engine, "C1", "2024-04-01T10:00:00+00:00", "price")
    rep_says(engine, "C1", "2024-05-10T10:00:00+00:00", "business_closed")  # the latest before the churn
    rep_says(engine, "C1", "2024-05-20T10:00:00+00:00", None)  # leaving, no reason given
    rep_says(engine, "C1", "2024-06-20T10:00:00+00:00", "support")  # after the churn: not its reason
    rep_says(engine, "C2", "2024-05-10T10:00:00+00:00", "competitor", outcome="saved")
    rep_says(engine, "C3", "2024-05-10T10:00:00+00:00", "adoption")

    found = churns(engine).set_index("customer_id")

    assert found["reason_code"].to_dict() == {"C1": "business_closed", "C2": None, "C3": "adoption"}
    assert found["reason_source"].to_dict() == {"C1": "alert_outcome", "C2": None, "C3": "alert_outcome"}
    labels = label(engine, [("C1", "2024-05-15"), ("C2", "2024-05-15"), ("C3", "2024-05-15")])
    assert labels["label_status"].tolist() == ["excluded", "labelled", "labelled"]


def test_a_rep_reason_before_a_win_back_does_not_explain_the_later_churn(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-03-01"), ("2024-05-01", "2024-08-01"))
    rep_says(engine, "C1", "2024-02-10T00:00:00+00:00", "business_closed")

    found = churns(engine)

    assert found["reason_code"].tolist() == ["business_closed", None]
    labels = label(engine, [("C1", "2024-02-15"), ("C1", "2024-06-01")])
    assert labels["label_status"].tolist() == ["excluded", "labelled"]
    assert labels["churned"].tolist() == [pd.NA, 1]


def test_a_counted_churn_in_the_window_wins_over_an_excluded_one(engine):
    # A failed payment, a win-back, then a real departure within the same 90 days.
    subscribe(engine, "C1", ("2024-01-01", "2024-03-01"), ("2024-03-20", "2024-05-01"))
    cancel(engine, "X1", "C1", "2024-03-01T00:00:00Z", reason_code="payment_failed", voluntary=False)
    cancel(engine, "X2", "C1", "2024-05-01T00:00:00Z", reason_code="competitor")

    labels = label(engine, [("C1", "2024-02-15")])
    assert labels["churned"].tolist() == [1]
    assert labels["churned_at"].tolist() == [utc("2024-05-01")]
    assert labels["reason_code"].tolist() == ["competitor"]

    short = label(engine, [("C1", "2024-02-15")], horizon_days=30)
    assert short["label_status"].tolist() == ["excluded"]
    assert short["churned_at"].tolist() == [utc("2024-03-01")]


def test_the_horizon_can_be_overridden_for_one_run(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    rows = [("C1", "2024-04-02")]  # 60 days before the churn

    assert label(engine, rows)["churned"].tolist() == [1]
    assert label(engine, rows, horizon_days=30)["churned"].tolist() == [0]
    assert label(engine, rows, LabelsConfig(horizon_days=30))["churned"].tolist() == [0]
    assert label(engine, rows, LabelsConfig(horizon_days=30), horizon_days=60)["churned"].tolist() == [1]


@pytest.mark.parametrize("horizon_days", [0, -5])
def test_a_horizon_under_one_day_is_refused(engine, horizon_days):
    with pytest.raises(ValueError, match=r"^horizon_days must be a whole number of days, at least 1"):
        label(engine, [("C1", "2024-05-01")], horizon_days=horizon_days)


def test_a_churn_takes_the_nearest_cancellation_within_grace(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X-far", "C1", "2024-03-01T00:00:00Z", reason_code="payment_failed", voluntary=False)
    cancel(engine, "X-near", "C1", "2024-06-04T00:00:00Z", reason_code="support")
    cancel(engine, "X-nearest", "C1", "2024-05-31T12:00:00Z", reason_code="product_fit")
    # Ten days off with a grace of seven: a cancellation that belongs to nothing we know of.
    cancel(engine, "X-late", "C2", "2024-06-11T00:00:00Z", reason_code="payment_failed", voluntary=False)

    found = churns(engine).set_index("customer_id")

    assert found.loc["C1", "cancellation_id"] == "X-nearest"
    assert found.loc["C1", "reason_code"] == "product_fit"
    assert found.loc["C1", "reason_text"] == "too expensive"
    assert found.loc["C1", "voluntary"]
    assert found.loc["C2", "cancellation_id"] is None
    assert pd.isna(found.loc["C2", "voluntary"])
    # A churn without a cancellation row is a churn of unknown reason, not an excluded one.
    labels = label(engine, [("C1", "2024-05-01"), ("C2", "2024-05-01")])
    assert labels["churned"].tolist() == [1, 1]
    assert labels["reason_code"].tolist() == ["product_fit", None]


def test_snapshots_keep_their_index_and_columns_and_accept_midnight_utc(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    snapshots = pd.DataFrame(
        {
            "customer_id": ["C1", "C1"],
            "as_of": [datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC)],
            "risk": [0.9, 0.1],
        },
        index=[10, 20],
    )
    with engine.connect() as connection:
        labels = label_snapshots(connection, snapshots, LabelsConfig(), observed_until=LATER)

    assert labels.index.tolist() == [10, 20]
    assert labels["risk"].tolist() == [0.9, 0.1]
    assert labels["churned"].tolist() == [1, 0]
    assert snapshots.columns.tolist() == ["customer_id", "as_of", "risk"]


def test_bad_snapshots_or_observation_time_are_refused(engine):
    with engine.connect() as connection, pytest.raises(ValueError, match="lack column 'as_of'"):
        label_snapshots(connection, pd.DataFrame({"customer_id": ["C1"]}), LabelsConfig())
    with pytest.raises(ValueError, match="has no time zone"):
        label(engine, [("C1", "2024-05-01")], observed_until=datetime(2024, 9, 1))


def test_label_summary_counts_statuses_the_churn_rate_and_the_reasons(engine):
    subscribe(engine, "C1", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C2", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C3", ("2024-01-01", "2024-06-01"))
    subscribe(engine, "C4", ("2024-01-01", None))
    subscribe(engine, "C5", ("2024-01-01", "2024-06-01"))
    cancel(engine, "X1", "C1", "2024-06-01T00:00:00Z", reason_code="price")
    cancel(engine, "X2", "C2", "2024-06-01T00:00:00Z", reason_code="payment_failed", voluntary=False)
    cancel(engine, "X3", "C3", "2024-06-01T00:00:00Z", reason_code=None, voluntary=None)
    predict(engine, "X3", "business_closed")
    rows = [("C1", "2024-05-01"), ("C1", "2024-04-01"), ("C2", "2024-05-01"), ("C3", "2024-05-01")]
    rows += [("C4", "2024-05-01"), ("C5", "2024-05-01")]

    labels = label(engine, rows, observed_until=datetime(2024, 9, 1, tzinfo=UTC))
    labels.loc[labels["customer_id"] == "C4", ["label_status", "churned"]] = ["censored", pd.NA]

    assert label_summary(labels) == {
        "snapshots": 6,
        "labelled": 3,
        "censored": 1,
        "excluded": 2,
        "churned": 3,
        "churn_rate": 1.0,
        "excluded_because": {"involuntary": 1, "uncontrollable": 1, "reason_code": 0},
        "churns": 4,
        "churns_by_reason": {"business_closed": 1, "payment_failed": 1, "price": 1, "unknown": 1},
        "reason_sources": {"cancellation": 2, "classifier": 1, "unknown": 1},
        "orphaned_reasons": {},
    }
    assert label_summary(labels.iloc[4:5])["churn_rate"] is None


def test_an_end_date_later_than_the_last_import_is_a_plan_not_a_fact(engine):
    subscribe(engine, "C1", ("2024-01-01", "2025-01-01"))  # a cancellation scheduled ahead
    imported = datetime(2024, 7, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(ingest_runs).values(
                entity="subscriptions",
                source="crm.csv",
                sha256="0" * 64,
                started_at=imported,
                finished_at=imported,
                rows_read=1,
                inserted=1,
                updated=0,
                unchanged=0,
            )
        )

    with engine.connect() as connection:
        assert observed_until(connection) == imported
    assert label(engine, [("C1", "2024-05-01")], observed_until=None)["label_status"].tolist() == ["censored"]
