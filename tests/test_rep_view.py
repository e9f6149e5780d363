"""The rep's view end to end: a promoted model scores two days, and one alert per customer at risk reaches
the right Slack channel with the change, its drivers and buttons the API can act on."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from sqlalchemy import select

from churn.db import make_engine
from churn.tables import customers
from tests.scoring_data import copy_demo_snapshots, snapshot_days_of


@pytest.fixture
def champion_home(run_cli, env, demo_history, tmp_path):
    """A champion trained and promoted with `churn train --promote` on the demo history."""
    source = demo_history.removeprefix("sqlite:///")
    history = tmp_path / "history.db"
    shutil.copy(source, history)
    result = run_cli("train", "--promote", "--json", CHURN_DATABASE_URL=f"sqlite:///{history}")
    assert result.exit_code == 0, result.output
    return f"sqlite:///{history}"


@pytest.mark.slow
def test_scores_in_one_alert_out_in_the_right_channel_with_the_change(
    run_cli, env, champion_home, database_url, fake_slack, tmp_path
):
    days = snapshot_days_of(champion_home)[-2:]
    copy_demo_snapshots(champion_home, database_url, days)
    for n, owner in enumerate(owner_emails(database_url)):
        fake_slack.users[owner] = f"U{n:09d}"
    config = tmp_path / "churn.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "threshold": 0.08,
                    "rearm_below": 0.05,
                    "stale_after_days": {},
                    "channels": {"cs-alerts": "#cs-alerts", "enterprise": "#cs-enterprise"},
                    "routes": [{"channel": "enterprise", "segment": "Enterprise"}],
                    "crm_url_template": "https://crm.example.com/accounts/{customer_id}",
                }
            }
        )
    )
    setting = {
        "CHURN_DATABASE_URL": database_url,
        "CHURN_CONFIG": str(config),
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_URL": fake_slack.url,
    }

    scored = [json.loads(run_cli("score", "--as-of", day, "--json", **setting).stdout) for day in days]
    sent = run_cli("alerts", "send", **setting)
    again = run_cli("alerts", "send", **setting)
    rescored = json.loads(run_cli("score", "--as-of", days[-1], "--json", **setting).stdout)
    listed = json.loads(run_cli("alerts", "list", "--json", **setting).stdout)

    assert sent.exit_code == 0, sent.output
    assert again.exit_code == 0 and rescored["alerted"] == [] and rescored["scores_changed"] == 0
    queued = [a for s in scored for a in s["alerted"] if a["state"] == "pending"]
    assert queued, "some customers cross the threshold"
    posted = fake_slack.messages
    # Exactly once each, in the channel its segment routes to.
    assert sorted(p.alert_id for p in posted) == sorted(a["alert_id"] for a in listed if a["state"] == "sent")
    assert len(posted) == len(queued) == len({p.alert_id for p in posted})
    by_customer = {a["customer_id"]: a for a in queued}
    for message in posted:
        buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
        actions = {b.get("action_id"): json.loads(b["value"]) for b in buttons if "value" in b}
        assert set(actions) >= {"acknowledge", "log_outreach", "mark_saved", "customer_leaving"}
        values = next(iter(actions.values()))
        assert values["alert_id"] == message.alert_id
        customer = by_customer[values["customer_id"]]
        expected = "cs-enterprise" if customer["channel"] == "enterprise" else "cs-alerts"
        assert fake_slack.channels[fake_slack.channel_id(message.channel)] == expected
        assert "https://crm.example.com/accounts/" + values["customer_id"] in json.dumps(message.blocks)
        assert f"<@{fake_slack.users[customer['owner_email']]}>" in json.dumps(message.blocks)
    second_day = [p for p in posted if by_customer[_customer(p)]["previous_risk"] is not None]
    assert second_day, "the second day's alerts compare with the first"
    assert any("Risk rose from" in p.text or "Risk rose from" in json.dumps(p.blocks) for p in second_day)


def owner_emails(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        owners = connection.execute(select(customers.c.owner_email).distinct()).scalars().all()
    engine.dispose()
    return sorted(o for o in owners if o)


def _customer(posted) -> str:
    for block in posted.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == "acknowledge":
                return json.loads(element["value"])["customer_id"]
    raise AssertionError("no Acknowledge button")


@pytest.mark.slow
def test_the_scheduler_jobs_score_hold_stale_alerts_and_retrain_through_the_gate(
    run_cli, env, champion_home, tmp_path
):
    config = tmp_path / "churn.yaml"
    config.write_text(yaml.safe_dump({"alerts": {"threshold": 0.05, "rearm_below": 0.02}}))
    setting = {"CHURN_DATABASE_URL": champion_home, "CHURN_CONFIG": str(config)}

    scored = run_cli("scheduler", "--once", "score", **setting)
    dispatched = run_cli("scheduler", "--once", "dispatch", **setting)
    retrained = run_cli("scheduler", "--once", "retrain", **setting)
    jobs = {job["job"]: job for job in json.loads(run_cli("jobs", "--json", **setting).stdout)}
    held = json.loads(run_cli("alerts", "list", "--held", "--json", **setting).stdout)

    assert (scored.exit_code, dispatched.exit_code, retrained.exit_code) == (0, 0, 0), retrained.output
    # Today's snapshot is built from data that ended months ago: alerts are held, and the run says why.
    assert jobs["score"]["last_run"]["outcome"] == "ok"
    assert "stale: events" in jobs["score"]["last_run"]["detail"]
    assert held and all(a["state"] == "held" for a in held)
    assert jobs["dispatch"]["last_run"]["outcome"] == "ok"
    assert jobs["retrain"]["last_run"]["outcome"] == "ok"
    assert jobs["retrain"]["last_run"]["detail"].startswith("version 2 ")
