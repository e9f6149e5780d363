"""Policy replay: the alerts a policy would have sent over the backtest, judged by what happened."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from churn.config import AlertsConfig
from serving.replay import ReplayError, replay_alerts
from serving.replay_report import replay_section

WEEK = timedelta(days=7)
START = date(2026, 1, 5)  # a Monday
POLICY = AlertsConfig(threshold=0.3, rearm_below=0.2, cooldown_days=14, jump=None, daily_cap_per_owner=5)


def predictions(
    series: dict[str, list[float]], churned_at: dict[str, datetime] | None = None, horizon: int = 90
):
    """Weekly out-of-time scores per customer; churned = churn within the horizon after the day."""
    rows = []
    for customer_id, risks in series.items():
        churn = (churned_at or {}).get(customer_id)
        for n, risk in enumerate(risks):
            day = START + n * WEEK
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            label = churn is not None and start < churn <= start + timedelta(days=horizon)
            rows.append((customer_id, day, int(label), churn if label else pd.NaT, risk))
    frame = pd.DataFrame(rows, columns=["customer_id", "as_of", "churned", "churned_at", "lightgbm"])
    frame["churned_at"] = pd.to_datetime(frame["churned_at"], utc=True)
    return frame


def test_counts_precision_recall_and_lead_time_by_hand():
    churn_c2 = datetime(2026, 2, 20, tzinfo=UTC)
    churn_c4 = datetime(2026, 2, 1, tzinfo=UTC)
    frame = predictions(
        {
            "C1": [0.1, 0.4, 0.4, 0.4],  # alerts in week 2, does not churn: a false alarm
            "C2": [0.1, 0.1, 0.5, 0.5],  # alerts on 19 Jan, churns 20 Feb: caught 32 days ahead
            "C3": [0.1, 0.1, 0.1, 0.1],  # quiet, stays
            "C4": [0.1, 0.1, 0.1, 0.1],  # churns without an alert: missed
        },
        churned_at={"C2": churn_c2, "C4": churn_c4},
    )
    owners = {"C1": "ana@x", "C2": "ana@x", "C3": "bo@x", "C4": "bo@x"}

    replay = replay_alerts(frame, owners, POLICY, horizon_days=90)

    o = replay.overall
    assert (o["alerts"], o["churners"], o["churners_alerted"]) == (2, 2, 1)
    assert o["precision"] == 0.5 and o["recall"] == 0.5
    assert o["median_lead_days"] == 32.0
    assert o["base_rate"] == pytest.approx(round(frame["churned"].mean(), 4))
    assert [w["alerts"] for w in replay.by_week] == [0, 1, 1, 0]
    assert replay.by_owner == [
        {"owner": "ana@x", "alerts": 2, "alerts_per_week": round(2 / 3, 2), "churned": 1, "precision": 0.5}
    ]


def test_the_period_and_the_daily_cap_are_respected():
    frame = predictions({f"C{i}": [0.1, 0.5] for i in range(4)})
    capped = POLICY.model_copy(update={"daily_cap_per_owner": 1})

    replay = replay_alerts(frame, {f"C{i}": "ana@x" for i in range(4)}, capped, horizon_days=90)

    assert replay.overall["alerts"] == 4 and replay.overall["in_digests"] == 3
    with pytest.raises(ReplayError, match="a replay needs at least two"):
        replay_alerts(frame, {}, POLICY, horizon_days=90, start=START + WEEK)


def test_a_replay_of_a_table_without_dates_says_why_it_cannot_run():
    frame = pd.DataFrame({"churned": [0, 1], "lightgbm": [0.1, 0.9]})
    with pytest.raises(ReplayError, match="trained on a table without customer ids and dates"):
        replay_alerts(frame, {}, POLICY, horizon_days=90)


def test_the_report_section_says_the_figures_in_words_with_a_chart():
    frame = predictions({"C1": [0.1, 0.4, 0.4], "C2": [0.1, 0.1, 0.1]})
    html = replay_section(replay_alerts(frame, {"C1": "<ana>@x"}, POLICY, horizon_days=90))

    assert "would have sent <b>1 alert</b>" in html
    assert "data:image/png;base64," in html
    assert "&lt;ana&gt;@x" in html  # owner names are escaped
