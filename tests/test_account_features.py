"""Account features: tenure, the running subscription, MRR change, renewal and failed payments at as_of."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from churn.config import FeaturesConfig
from churn.ingest import IngestOptions, ingest_file
from churn.tables import customers, subscriptions
from features import account
from features.rollup import refresh_usage_rollup
from features.scope import Scope, Signals, active_customers, as_of_instant
from tests.factories import insert_rows, write_csv

AS_OF = date(2024, 6, 1)  # 90 days before: 2024-03-03
NOW = datetime(2024, 7, 1, tzinfo=UTC)
CONFIG = FeaturesConfig()  # windows 7, 30, 90 days; failed payments are `payment_failed` events


def add_customer(engine: Engine, customer_id: str, created_at: str | None = "2023-01-01T00:00:00Z") -> None:
    insert_rows(engine, customers, [{"customer_id": customer_id, "created_at": created_at, "segment": "SMB"}])


def add_subscription(
    engine: Engine,
    customer_id: str,
    started_at: str,
    ended_at: str | None = None,
    *,
    mrr: float = 100.0,
    plan: str = "Growth",
    seats: int = 10,
    billing_period: str | None = "monthly",
) -> None:
    row = {
        "subscription_id": f"{customer_id}-{started_at}",
        "customer_id": customer_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "mrr": mrr,
        "plan": plan,
        "seats": seats,
        "billing_period": billing_period,
    }
    insert_rows(engine, subscriptions, [row])


def add_customer_since(
    engine: Engine, customer_id: str, started_at: str = "2023-01-01T00:00:00Z", **sub: object
) -> None:
    """A customer created when its one subscription started."""
    add_customer(engine, customer_id, started_at)
    add_subscription(engine, customer_id, started_at, **sub)


def import_events(engine: Engine, tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Import (customer_id, event_type, day) events, each at noon UTC, and refresh the rollup."""
    events = [
        {"event_id": f"E{i}", "customer_id": c, "event_type": kind, "occurred_at": f"{day}T12:00:00Z"}
        for i, (c, kind, day) in enumerate(rows)
    ]
    ingest_file(
        engine, "events", write_csv(tmp_path / "events.csv", events), options=IngestOptions(), now=NOW
    )
    refresh_usage_rollup(engine)


def account_at(engine: Engine, config: FeaturesConfig = CONFIG) -> Signals:
    with engine.connect() as connection:
        as_of = as_of_instant(AS_OF)
        signals = account.compute(connection, Scope(as_of, active_customers(connection, as_of)), config)
    assert list(signals.frame.columns) == [f.name for f in signals.features]
    return signals


def value(signals: Signals, customer_id: str, name: str) -> object:
    return signals.frame.at[customer_id, name]


def sentence(signals: Signals, customer_id: str, name: str) -> str:
    feature = next(f for f in signals.features if f.name == name)
    return feature.say(value(signals, customer_id, name))


def test_tenure_counts_from_created_at(engine):
    add_customer(engine, "C1", "2024-01-01T00:00:00Z")
    add_subscription(engine, "C1", "2024-02-01T00:00:00Z")
    add_customer(engine, "C2", "2024-01-01T12:00:00Z")
    add_subscription(engine, "C2", "2024-02-01T00:00:00Z")
    signals = account_at(engine)
    assert value(signals, "C1", "tenure_days") == 152.0
    assert value(signals, "C2", "tenure_days") == 151.5
    assert sentence(signals, "C1", "tenure_days") == "Customer for 152 days"


@pytest.mark.parametrize(
    "created_at",
    [None, "2024-03-01T00:00:00Z", "2024-07-01T00:00:00Z"],
    ids=["missing", "after-first-subscription", "after-as-of"],
)
def test_tenure_counts_from_the_first_subscription_when_created_at_is_missing_or_later(engine, created_at):
    add_customer(engine, "C1", created_at)
    add_subscription(engine, "C1", "2024-02-01T00:00:00Z")
    assert value(account_at(engine), "C1", "tenure_days") == 121.0


def test_tenure_counts_from_the_first_subscription_even_when_it_has_ended(engine):
    add_customer(engine, "C1", None)
    add_subscription(engine, "C1", "2023-12-01T00:00:00Z", "2024-01-01T00:00:00Z")
    add_subscription(engine, "C1", "2024-02-01T00:00:00Z")
    assert value(account_at(engine), "C1", "tenure_days") == 183.0


def test_concurrent_subscriptions_add_up_and_the_newest_gives_the_plan(engine):
    add_customer(engine, "C1")
    add_subscription(engine, "C1", "2022-01-01T00:00:00Z", "2023-01-01T00:00:00Z", mrr=999.0, plan="Legacy")
    add_subscription(engine, "C1", "2024-01-01T00:00:00Z", mrr=500.0, plan="Growth", seats=10)
    add_subscription(
        engine, "C1", "2024-03-01T00:00:00Z", mrr=120.0, plan="Extra seats", seats=5, billing_period="annual"
    )
    signals = account_at(engine)
    assert signals.frame.loc["C1", ["segment", "plan", "seats", "mrr", "billing_period"]].to_dict() == {
        "segment": "SMB",
        "plan": "Extra seats",
        "seats": 15.0,
        "mrr": 620.0,
        "billing_period": "annual",
    }
    assert sentence(signals, "C1", "plan") == "On the Extra seats plan"
    assert sentence(signals, "C1", "mrr") == "Pays 620 a month"


def test_mrr_change_after_a_downgrade(engine):
    add_customer(engine, "C1")
    add_subscription(engine, "C1", "2023-01-01T00:00:00Z", "2024-04-01T00:00:00Z", mrr=1000.0)
    add_subscription(engine, "C1", "2024-04-01T00:00:00Z", mrr=600.0)
    signals = account_at(engine)
    assert value(signals, "C1", "mrr") == 600.0
    assert value(signals, "C1", "mrr_change_90d") == -0.4
    assert sentence(signals, "C1", "mrr_change_90d") == "Monthly revenue fell 40% versus 90 days ago"


def test_mrr_change_is_unknown_for_a_customer_who_was_not_paying_90_days_ago(engine):
    add_customer_since(engine, "C1", "2024-04-01T00:00:00Z", mrr=600.0)
    signals = account_at(engine)
    assert np.isnan(value(signals, "C1", "mrr_change_90d"))
    assert sentence(signals, "C1", "mrr_change_90d") == "Not a paying customer 90 days ago"


@pytest.mark.parametrize(
    ("started_at", "billing_period", "days"),
    [
        ("2024-01-15T00:00:00Z", "monthly", 14.0),  # renews 06-15
        ("2024-01-15T18:00:00Z", "monthly", 14.75),  # at the start's time of day
        ("2024-01-31T00:00:00Z", "monthly", 29.0),  # 31 Jan renews on the last day of shorter months: 06-30
        ("2024-01-31T00:00:00Z", "quarterly", 60.0),  # 04-30, then 07-31
        ("2023-03-10T00:00:00Z", "annual", 282.0),  # 2024-03-10 has passed: 2025-03-10
        ("2024-02-29T00:00:00Z", "annual", 272.0),  # 2025-02-28
    ],
)
def test_days_to_renewal_follow_the_billing_period(engine, started_at, billing_period, days):
    add_customer_since(engine, "C1", started_at, billing_period=billing_period)
    assert value(account_at(engine), "C1", "days_to_renewal") == days


def test_days_to_renewal_are_unknown_without_a_billing_period(engine):
    add_customer_since(engine, "C1", billing_period=None)
    signals = account_at(engine)
    assert np.isnan(value(signals, "C1", "days_to_renewal"))
    assert sentence(signals, "C1", "days_to_renewal") == "Renewal date not known"


def test_failed_payments_are_counted_per_window(engine, tmp_path):
    add_customer_since(engine, "C1")
    add_customer_since(engine, "C2")
    import_events(
        engine,
        tmp_path,
        [
            ("C1", "payment_failed", "2024-05-28"),
            ("C1", "payment_failed", "2024-05-10"),
            ("C1", "payment_failed", "2024-03-10"),
            ("C1", "payment_failed", "2024-02-01"),  # before the 90-day window
            ("C1", "payment_failed", "2024-06-01"),  # on as_of: not yet
            ("C1", "login", "2024-05-30"),
            ("C2", "login", "2024-05-30"),
        ],
    )
    signals = account_at(engine)
    windows = ["failed_payments_7d", "failed_payments_30d", "failed_payments_90d"]
    assert signals.frame.loc["C1", windows].tolist() == [1.0, 2.0, 3.0]
    assert signals.frame.loc["C2", windows].tolist() == [0.0, 0.0, 0.0]
    assert sentence(signals, "C1", "failed_payments_30d") == "2 failed payments in the last 30 days"


def test_failed_payments_are_unknown_when_the_company_never_sent_them_before_as_of(engine, tmp_path):
    add_customer_since(engine, "C1")
    import_events(engine, tmp_path, [("C1", "login", "2024-05-30"), ("C1", "payment_failed", "2024-06-01")])
    signals = account_at(engine)
    assert np.isnan(value(signals, "C1", "failed_payments_30d"))
    assert sentence(signals, "C1", "failed_payments_30d") == "Failed payments are not reported"


def test_no_failed_payment_features_without_failed_payment_event_types(engine):
    add_customer_since(engine, "C1")
    signals = account_at(engine, FeaturesConfig(failed_payment_event_types=[]))
    assert not any(name.startswith("failed_payments") for name in signals.frame.columns)


def test_a_subscription_that_ends_after_as_of_is_still_running(engine):
    add_customer(engine, "C1")
    add_subscription(engine, "C1", "2024-01-15T00:00:00Z", "2024-06-15T00:00:00Z", mrr=250.0)
    signals = account_at(engine)
    assert value(signals, "C1", "mrr") == 250.0
    assert value(signals, "C1", "days_to_renewal") == 14.0


def test_a_subscription_that_starts_at_or_after_as_of_is_invisible(engine):
    add_customer(engine, "C1")
    add_subscription(engine, "C1", "2024-01-15T00:00:00Z", mrr=100.0, plan="Growth")
    add_subscription(
        engine, "C1", "2024-06-01T00:00:00Z", mrr=900.0, plan="Enterprise", billing_period="annual"
    )
    add_subscription(engine, "C1", "2024-06-02T00:00:00Z", mrr=50.0, plan="Add-on")
    signals = account_at(engine)
    assert signals.frame.loc["C1", ["plan", "mrr", "seats", "billing_period"]].to_dict() == {
        "plan": "Growth",
        "mrr": 100.0,
        "seats": 10.0,
        "billing_period": "monthly",
    }


@pytest.mark.parametrize("ended_at", ["2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z"], ids=["before", "at"])
def test_a_customer_whose_only_subscription_ended_by_as_of_is_not_in_the_population(engine, ended_at):
    add_customer(engine, "GONE")
    add_subscription(engine, "GONE", "2023-01-01T00:00:00Z", ended_at)
    add_customer_since(engine, "C1")
    assert list(account_at(engine).frame.index) == ["C1"]
