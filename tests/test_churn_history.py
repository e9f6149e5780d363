"""The churn history tables the notebooks draw: by month and sign-up cohort (both databases), by reason and
by a snapshot column."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churn.config import DEFAULT_TAXONOMY, LabelsConfig, ReasonsConfig
from churn.tables import cancellations, customers, subscriptions, usage_events
from features.churn_history import churn_by_cohort, churn_by_month, churn_by_reason, churn_rate_by
from features.labels import churn_events
from features.rollup import refresh_usage_rollup
from tests.factories import insert_rows


def subscribe(engine, customer_id: str, started: str, ended: str | None = None) -> None:
    insert_rows(engine, customers, [{"customer_id": customer_id}])
    insert_rows(
        engine,
        subscriptions,
        [
            {
                "subscription_id": f"{customer_id}-S1",
                "customer_id": customer_id,
                "started_at": f"{started}T00:00:00Z",
                "ended_at": None if ended is None else f"{ended}T00:00:00Z",
                "mrr": 100.0,
            }
        ],
    )


def used(engine, *days: str) -> None:
    insert_rows(
        engine,
        usage_events,
        [
            {
                "event_id": f"E{i}",
                "customer_id": "C2",
                "event_type": "login",
                "occurred_at": f"{day}T12:00:00Z",
            }
            for i, day in enumerate(days)
        ],
    )
    refresh_usage_rollup(engine, full=True)


@pytest.fixture
def company(engine):
    """Four customers from January 2024; one leaves in February (a failed card), one in March.

    Usage runs to the end of April, so the data reaches 1 May: January to April are complete months.
    """
    subscribe(engine, "C1", "2024-01-01", "2024-03-10")
    subscribe(engine, "C2", "2024-01-01")
    subscribe(engine, "C3", "2024-02-15")
    subscribe(engine, "C4", "2024-01-01", "2024-02-20")
    insert_rows(
        engine,
        cancellations,
        [
            {
                "cancellation_id": "X4",
                "customer_id": "C4",
                "effective_at": "2024-02-20T00:00:00Z",
                "reason_code": "payment_failed",
                "voluntary": False,
            }
        ],
    )
    used(engine, "2024-01-05", "2024-04-30")
    return engine


def test_each_complete_month_has_its_active_customers_sign_ups_and_churns(company):
    with company.connect() as connection:
        months = churn_by_month(connection, LabelsConfig(), start=date(2024, 1, 1))

    assert months["month"].tolist() == [date(2024, m, 1) for m in (1, 2, 3, 4)]
    assert months["active_at_start"].tolist() == [3, 3, 3, 2]
    assert months["new_customers"].tolist() == [3, 1, 0, 0]
    assert months["churned"].tolist() == [0, 1, 1, 0]
    assert months["involuntary"].tolist() == [0, 1, 0, 0]
    assert months["churn_rate"].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 0])


def test_months_start_with_the_first_complete_month_of_usage(company):
    # Usage begins on 5 January: January is not complete, and earlier subscriptions alone would
    # describe only the customers still there when the data begins.
    with company.connect() as connection:
        months = churn_by_month(connection, LabelsConfig())

    assert months["month"].tolist() == [date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)]


def test_an_empty_database_has_no_months_and_no_cohorts(engine):
    with engine.connect() as connection:
        assert churn_by_month(connection, LabelsConfig()).empty
        assert churn_by_cohort(connection, LabelsConfig()).empty


@pytest.mark.parametrize(
    ("within_days", "expected"),
    [
        # Nobody signed up in March: its cohort is empty, not missing.
        (30, [(date(2024, 1, 1), 3, 0), (date(2024, 2, 1), 1, 0), (date(2024, 3, 1), 0, 0)]),
        (60, [(date(2024, 1, 1), 3, 1), (date(2024, 2, 1), 1, 0)]),
        # 75 days after the end of February is past 1 May: February's cohort is not shown yet.
        (75, [(date(2024, 1, 1), 3, 2)]),
    ],
)
def test_a_cohort_counts_who_churned_within_the_days_after_sign_up_once_all_were_watched(
    company, within_days, expected
):
    with company.connect() as connection:
        cohorts = churn_by_cohort(connection, LabelsConfig(), within_days=within_days, start=date(2024, 1, 1))

    assert list(cohorts[["cohort", "customers", "churned"]].itertuples(index=False, name=None)) == expected
    rates = [churned / n if n else np.nan for _, n, churned in expected]
    assert cohorts["churn_rate"].tolist() == pytest.approx(rates, nan_ok=True)


def test_a_cohort_window_must_be_at_least_a_day(company):
    with company.connect() as connection, pytest.raises(ValueError, match="within_days must be at least 1"):
        churn_by_cohort(connection, LabelsConfig(), within_days=0)


def test_reasons_come_from_the_database_with_their_source(company):
    with company.connect() as connection:
        reasons = churn_by_reason(churn_events(connection, LabelsConfig())).set_index("reason_code")

    assert reasons.loc["payment_failed", ["reason", "churns", "cancellation"]].tolist() == [
        "Failed payment",
        1,
        1,
    ]
    assert reasons.loc["unknown", ["reason", "churns"]].tolist() == ["No reason given", 1]


def churns(*rows: tuple[str | None, str | None]) -> pd.DataFrame:
    """Churns as churn_events gives them: (reason_code, reason_source) each."""
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(len(rows))],
            "reason_code": pd.Series([code for code, _ in rows], dtype=object),
            "reason_source": pd.Series([source for _, source in rows], dtype=object),
        }
    )


def test_churns_by_reason_speak_the_taxonomy_and_say_where_each_reason_came_from():
    table = churn_by_reason(
        churns(
            ("price", "cancellation"),
            ("price", "classifier"),
            (None, None),
            ("legacy_code", "cancellation"),
        )
    )

    assert table["reason_code"].tolist()[:3] == ["price", "legacy_code", "unknown"]
    assert set(DEFAULT_TAXONOMY) <= set(table["reason_code"])  # every reason, even with no churns
    by_code = table.set_index("reason_code")
    assert by_code.loc["price", ["reason", "churns", "share", "cancellation", "classifier"]].tolist() == [
        "Price",
        2,
        0.5,
        1,
        1,
    ]
    assert by_code.loc["legacy_code", ["reason", "voluntary", "churns"]].tolist() == ["legacy_code", None, 1]
    assert by_code.loc["unknown", "reason"] == "No reason given"
    assert by_code.loc["competitor", "churns"] == 0
    assert table["churns"].sum() == 4


def test_a_taxonomy_of_ones_own_names_the_reasons():
    taxonomy = {
        "other": DEFAULT_TAXONOMY["other"],
        "too_slow": DEFAULT_TAXONOMY["support"].model_copy(update={"label": "Too slow"}),
    }

    table = churn_by_reason(churns(("too_slow", "cancellation")), ReasonsConfig(taxonomy=taxonomy))

    assert table[["reason_code", "reason", "churns"]].values.tolist() == [
        ["too_slow", "Too slow", 1],
        ["other", "Other", 0],
    ]


def test_no_churns_give_every_reason_at_zero():
    table = churn_by_reason(churns())

    assert table["churns"].sum() == 0
    assert table["share"].isna().all()


def labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6"],
            "segment": ["SMB", "SMB", "SMB", "Enterprise", "Enterprise", "SMB"],
            "label_status": ["labelled", "labelled", "labelled", "labelled", "censored", "excluded"],
            "churned": pd.array([1, 0, 0, 0, pd.NA, pd.NA], dtype="Int8"),
        }
    )


def test_the_churn_rate_by_segment_counts_labelled_rows_only():
    table = churn_rate_by(labels(), "segment")

    assert table.index.tolist() == ["Enterprise", "SMB"]
    assert table["rows"].tolist() == [1, 3]
    assert table["churned"].tolist() == [0, 1]
    assert np.allclose(table["churn_rate"], [0.0, 1 / 3])


def test_a_column_the_labels_lack_is_named():
    with pytest.raises(ValueError, match="labels have no column 'region'"):
        churn_rate_by(labels(), "region")
