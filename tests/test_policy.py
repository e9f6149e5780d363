"""The alert policy: a rep hears about a customer once, early, and is never flooded."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from churn.config import AlertsConfig, JumpRule, Route
from serving.alerting import CustomerFacts, plan_alerts, route
from serving.freshness import SourceFreshness
from serving.outbox import AlertKind, AlertState
from serving.policy import CustomerState, apply_daily_cap, decide_day, lowest_recent_risk, replay_policy

DAY = date(2026, 3, 2)
POLICY = AlertsConfig(threshold=0.3, rearm_below=0.2, cooldown_days=14, jump=None)


def run_days(risks: list[float], policy: AlertsConfig = POLICY, step_days: int = 1) -> list[date]:
    """Score one customer day after day; the days it alerted."""
    state: dict[str, CustomerState] = {}
    alerted = []
    history = []
    for n, risk in enumerate(risks):
        day = DAY + timedelta(days=n * step_days)
        frame = pd.DataFrame(history, columns=["customer_id", "as_of", "risk"])
        lows = lowest_recent_risk(frame, day, policy.jump.within_days) if policy.jump else None
        decisions, changed = decide_day(day, {"C1": risk}, state, policy, lows)
        state.update(changed)
        alerted += [d.as_of for d in decisions]
        history.append(("C1", day, risk))
    return alerted


def test_no_alert_below_the_threshold():
    assert run_days([0.1, 0.2, 0.29, 0.299]) == []


def test_crossing_the_threshold_upward_alerts_once_while_risk_stays_high():
    assert run_days([0.1, 0.35, 0.4, 0.5, 0.45]) == [DAY + timedelta(days=1)]


def test_no_second_alert_during_the_cooldown_even_after_re_arming():
    # Falls below the re-arm level and crosses again within 14 days: still cooling down.
    assert run_days([0.35, 0.1, 0.35], step_days=3) == [DAY]


def test_a_wobble_around_the_threshold_does_not_re_alert_until_risk_falls_below_the_re_arm_level():
    weekly = [0.31, 0.28, 0.32, 0.29, 0.33]  # never below 0.2: not re-armed
    assert run_days(weekly, step_days=7) == [DAY]


def test_re_arms_after_falling_below_the_hysteresis_level_and_the_cooldown():
    alerted = run_days([0.31, 0.15, 0.32], step_days=10)
    assert alerted == [DAY, DAY + timedelta(days=20)]


def test_a_crossing_suppressed_by_the_cooldown_alerts_when_the_cooldown_ends_if_still_high():
    alerted = run_days([0.31, 0.1, 0.35, 0.36], step_days=5)
    assert alerted == [DAY, DAY + timedelta(days=15)]


def test_a_jump_below_the_threshold_alerts():
    policy = AlertsConfig(threshold=0.5, rearm_below=0.3, jump=JumpRule(rise=0.15, within_days=14))
    assert run_days([0.05, 0.08, 0.25], policy=policy, step_days=7) == [DAY + timedelta(days=14)]


def test_a_slow_rise_is_not_a_jump():
    policy = AlertsConfig(threshold=0.5, rearm_below=0.3, jump=JumpRule(rise=0.15, within_days=14))
    assert run_days([0.05, 0.1, 0.15, 0.2, 0.25], policy=policy, step_days=7) == []


def test_re_running_a_day_or_scoring_an_earlier_day_decides_nothing():
    state = {"C1": CustomerState(armed=True, evaluated_as_of=DAY)}
    for day in (DAY, DAY - timedelta(days=7)):
        decisions, changed = decide_day(day, {"C1": 0.9}, state, POLICY)
        assert (decisions, changed) == ([], {})


def test_each_owner_gets_the_riskiest_alerts_up_to_the_cap_and_the_rest_in_a_digest():
    decisions, _ = decide_day(DAY, {f"C{i}": 0.3 + i / 100 for i in range(6)}, {}, POLICY)
    owners = {f"C{i}": "ana@x.example" if i < 4 else "bo@x.example" for i in range(6)}

    capped = apply_daily_cap(decisions, owners, cap=2)

    assert sorted(d.customer_id for d in capped.individual) == ["C2", "C3", "C4", "C5"]
    assert [d.customer_id for d in capped.digests["ana@x.example"]] == ["C1", "C0"]
    assert "bo@x.example" not in capped.digests


def test_alerts_already_sent_today_count_against_the_cap():
    decisions, _ = decide_day(DAY, {"C1": 0.5, "C2": 0.4}, {}, POLICY)
    capped = apply_daily_cap(decisions, {"C1": "ana@x", "C2": "ana@x"}, cap=2, already_sent={"ana@x": 1})
    assert [d.customer_id for d in capped.individual] == ["C1"]
    assert [d.customer_id for d in capped.digests["ana@x"]] == ["C2"]


def facts(customer_id: str, **values) -> CustomerFacts:
    base = {
        "name": f"Company {customer_id}",
        "segment": "SMB",
        "owner_email": "ana@x.example",
        "tier": "high",
    }
    base.update(mrr=1000.0, days_to_renewal=30.0)
    base.update(values)
    return CustomerFacts(customer_id=customer_id, **base)


def test_routing_by_segment_and_mrr_band_first_match_wins():
    policy = AlertsConfig(
        channels={"cs-alerts": "#cs-alerts", "ent": "#cs-enterprise", "big": "C0BIGACCT1"},
        routes=[Route(channel="ent", segment="enterprise"), Route(channel="big", min_mrr=5000)],
    )
    assert route(facts("C1", segment="Enterprise", mrr=9000.0), policy) == "ent"
    assert route(facts("C2", segment="SMB", mrr=9000.0), policy) == "big"
    assert route(facts("C3", segment="SMB", mrr=4999.0), policy) == "cs-alerts"
    assert route(facts("C4", segment=None, mrr=None), policy) == "cs-alerts"


FAILED_PAYMENTS = {
    "raising": [{"feature": "failed_payments_30d", "sentence": "2 failed payments", "effect": 1.0}]
}


def test_failed_payment_risk_does_not_go_to_reps_by_default():
    decisions, _ = decide_day(DAY, {"C1": 0.6, "C2": 0.6}, {}, POLICY)
    plan = plan_alerts(
        decisions,
        {"C1": facts("C1", drivers=FAILED_PAYMENTS), "C2": facts("C2")},
        as_of=DAY,
        model_version="1",
        policy=POLICY,
        freshness=[],
        already_sent={},
    )
    states = {row["customer_id"]: row["state"] for row in plan.individual}
    assert states == {"C1": AlertState.SUPPRESSED, "C2": AlertState.PENDING}


def test_failed_payment_risk_goes_to_a_billing_channel_when_one_is_set():
    policy = AlertsConfig(
        channels={"cs-alerts": "#cs", "billing": "#billing"}, involuntary={"channel": "billing"}
    )
    decisions, _ = decide_day(DAY, {"C1": 0.6}, {}, policy)
    plan = plan_alerts(
        decisions, {"C1": facts("C1", drivers=FAILED_PAYMENTS)}, as_of=DAY, model_version="1",
        policy=policy, freshness=[], already_sent={},
    )  # fmt: skip
    assert [(r["channel"], r["state"]) for r in plan.individual] == [("billing", AlertState.PENDING)]


def test_a_stale_source_holds_every_alert_and_tells_the_operator():
    policy = AlertsConfig(
        channels={"cs-alerts": "#cs", "ops": "#ops"}, operator_channel="ops", daily_cap_per_owner=1
    )
    decisions, _ = decide_day(DAY, {"C1": 0.6, "C2": 0.5}, {}, policy)
    stale = SourceFreshness("events", None, None, 3)

    plan = plan_alerts(
        decisions, {"C1": facts("C1"), "C2": facts("C2")}, as_of=DAY, model_version="1",
        policy=policy, freshness=[stale], already_sent={},
    )  # fmt: skip

    assert [r["state"] for r in plan.individual] == [AlertState.HELD]
    assert plan.individual[0]["state_reason"] == "stale data: events: no rows at all"
    assert [d["state"] for d, _ in plan.digests] == [AlertState.HELD]
    assert [n["kind"] for n in plan.notices] == [AlertKind.NOTICE]
    assert "2 alert(s)" in plan.notices[0]["message"]["lines"][-1]


def test_the_replay_warm_start_does_not_count_customers_already_at_risk():
    scores = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C1", "C2"],
            "as_of": [DAY, DAY, DAY + timedelta(days=7), DAY + timedelta(days=7)],
            "risk": [0.5, 0.1, 0.5, 0.4],
        }
    )
    decisions = replay_policy(scores, POLICY)
    assert [(d.customer_id, d.as_of, d.kind) for d in decisions] == [
        ("C2", DAY + timedelta(days=7), AlertKind.THRESHOLD)
    ]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"threshold": 1.2}, "alerts.threshold: Input should be less than 1"),
        ({"threshold": 0}, "alerts.threshold: Input should be greater than 0"),
        ({"rearm_below": 0.4}, "rearm_below 0.4 must be below threshold 0.3"),
        ({"routes": [{"channel": "vip"}]}, "routes[0].channel: unknown channel name 'vip'"),
        ({"default_channel": "nowhere"}, "default_channel: unknown channel name 'nowhere'"),
        ({"stale_after_days": {"logins": 2}}, "unknown source 'logins'"),
        ({"channels": {"cs-alerts": "cs alerts"}}, "channels.cs-alerts: 'cs alerts' is not a Slack channel"),
        (
            {"routes": [{"channel": "cs-alerts", "min_mrr": 500, "max_mrr": 100}]},
            "min_mrr 500.0 must be below",
        ),
        ({"crm_url_template": "https://crm/{account}"}, "the only placeholder allowed is {customer_id}"),
    ],
)
def test_a_bad_alert_policy_is_one_clear_line_naming_the_setting(tmp_path, section, message):
    from churn.config import ConfigError, load_config

    path = tmp_path / "churn.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"alerts": section}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
