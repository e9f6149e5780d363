"""The dispatcher against a fake Slack server: each alert arrives once, and trouble keeps it queued."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from rich.console import Console
from slack_sdk import WebClient

from churn.config import ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from churn.tables import alerts
from serving.dispatch import TRIES_PER_PASS, claim_lease_s, dispatch_pending, list_alerts, retry_failed
from serving.outbox import AlertKind
from tests.alert_rows import NOW, alert_row, customer_facts, queue, states
from tests.fake_slack import Failure, FakeSlack


def _config(**delivery) -> ProductConfig:
    return ProductConfig.model_validate(
        {
            "alerts": {
                "channels": {
                    "cs-alerts": "#cs-alerts",
                    "cs-enterprise": "#cs-enterprise",
                    "ops": "C0OPS00001",
                },
                "delivery": {"retry_base_s": 30, "max_attempts": 3, "timeout_s": 5, **delivery},
            }
        }
    )


def _settings(fake: FakeSlack, token: str | None = None) -> Settings:
    return Settings(SLACK_BOT_TOKEN=token or fake.token, SLACK_API_URL=fake.url)


def _send(engine, fake: FakeSlack, config: ProductConfig | None = None, *, now=NOW, token=None, **kwargs):
    return dispatch_pending(
        engine, _settings(fake, token), config or _config(), now=now, channel_interval_s=0.0, **kwargs
    )


def test_each_pending_alert_is_posted_once_and_marked_sent(engine, fake_slack):
    ids = queue(engine, [alert_row(f"C{i}") for i in range(3)])
    queue(
        engine,
        [alert_row(f"H{i}", state=state) for i, state in enumerate(["held", "digested", "suppressed"])],
    )

    summary = _send(engine, fake_slack)
    again = _send(engine, fake_slack, now=NOW + timedelta(hours=1))

    assert (summary.sent, summary.failed, summary.retried, again.sent) == (3, 0, 0, 0)
    assert sorted(fake_slack.alert_ids()) == ids
    rows = states(engine)
    by_ts = {m.ts: m for m in fake_slack.messages}
    for alert_id in ids:
        assert rows[alert_id]["state"] == "sent"
        assert rows[alert_id]["slack_channel"] == "C0CSALERTS"
        assert by_ts[rows[alert_id]["slack_ts"]].alert_id == alert_id
    assert {row["state"] for row in rows.values() if row["alert_id"] not in ids} == {
        "held",
        "digested",
        "suppressed",
    }
    buttons = [e for b in fake_slack.messages[0].blocks if b["type"] == "actions" for e in b["elements"]]
    assert json.loads(buttons[0]["value"])["alert_id"] == fake_slack.messages[0].alert_id


def test_a_429_is_waited_out_as_retry_after_says(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.fail_next(Failure(429, "ratelimited", {"Retry-After": "1"}, method="chat.postMessage"))

    summary = _send(engine, fake_slack)

    assert summary.sent == 1
    assert fake_slack.calls["chat.postMessage"] == 2
    assert fake_slack.alert_ids() == [alert_id]


def test_server_errors_then_success_send_the_alert_once(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.fail_next(Failure(500, method="chat.postMessage"), Failure(503, method="chat.postMessage"))

    summary = _send(engine, fake_slack)

    assert summary.sent == 1 and fake_slack.alert_ids() == [alert_id]
    assert states(engine)[alert_id]["attempts"] == 1  # three tries in one pass are one attempt


@pytest.mark.parametrize(
    ("failures", "history_looks"),
    [
        ([Failure(503, channel="#cs-alerts"), Failure(500, channel="#cs-alerts")], 2),
        ([Failure(429, "ratelimited", {"Retry-After": "1"}, channel="#cs-alerts")], 0),
    ],
    ids=["5xx", "429"],
)
def test_trouble_posting_to_one_channel_does_not_hold_up_another(engine, fake_slack, failures, history_looks):
    [troubled, *others] = queue(
        engine,
        [alert_row("C1", channel="cs-alerts")]
        + [alert_row(f"E{i}", channel="cs-enterprise") for i in range(2)],
    )
    fake_slack.fail_next(*failures)

    summary = _send(engine, fake_slack)

    arrived = fake_slack.alert_ids()
    assert sorted(arrived) == sorted([troubled, *others])  # each once, the troubled one in the same pass
    assert arrived.index(others[0]) < arrived.index(troubled)  # the other channel went on meanwhile
    assert summary.sent == 3 and summary.retried == 0
    # A 5xx'd post may have landed, so the dispatcher looks before posting again; a 429 took nothing.
    assert fake_slack.calls["conversations.history"] == history_looks


def test_a_post_slack_kept_despite_a_5xx_is_found_and_not_posted_again(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.fail_next(Failure(500, method="chat.postMessage", accepted=True))

    summary = _send(engine, fake_slack)

    assert (summary.sent, summary.reconciled) == (0, 1)
    assert fake_slack.alert_ids() == [alert_id]
    row = states(engine)[alert_id]
    assert (row["state"], row["slack_ts"]) == ("sent", fake_slack.messages[0].ts)


def test_a_refused_token_after_a_5xx_keeps_the_attempt_so_the_next_pass_looks_first(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.fail_next(
        Failure(503, method="chat.postMessage"), Failure(200, "invalid_auth", method="conversations.list")
    )

    stopped = _send(engine, fake_slack)
    row = states(engine)[alert_id]
    fixed = _send(engine, fake_slack, now=NOW + timedelta(minutes=1))

    assert stopped.stopped and (row["state"], row["attempts"]) == ("pending", 1)
    assert fixed.sent == 1 and fake_slack.calls["conversations.history"] == 1
    assert fake_slack.alert_ids() == [alert_id]


def test_slack_down_keeps_the_alert_for_a_later_pass_with_backoff(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.fail_next(*[Failure(503, method="chat.postMessage")] * TRIES_PER_PASS)

    first = _send(engine, fake_slack)
    row = states(engine)[alert_id]
    too_soon = _send(engine, fake_slack, now=NOW + timedelta(seconds=10))
    later = _send(engine, fake_slack, now=NOW + timedelta(seconds=90))

    assert (first.retried, row["state"], row["attempts"]) == (1, "pending", 1)
    assert "Slack server error 503" in row["last_error"]
    assert f"attempt 1 of 3, {TRIES_PER_PASS} tries" in row["last_error"]
    assert row["next_attempt_at"] >= NOW + timedelta(seconds=30)
    assert too_soon.sent == 0 and later.sent == 1
    # Looked before every post that followed a failed one, in the first pass and the later one.
    assert fake_slack.calls["conversations.history"] == TRIES_PER_PASS
    assert fake_slack.alert_ids() == [alert_id]


def test_a_refused_token_stops_the_pass_and_keeps_every_alert(engine, fake_slack):
    ids = queue(engine, [alert_row(f"C{i}") for i in range(4)])

    summary = _send(engine, fake_slack, token="xoxb-revoked")

    assert summary.stopped == "Slack rejected the bot token (invalid_auth)"
    assert summary.kept == 4 and summary.sent == 0
    assert fake_slack.messages == []
    rows = states(engine)
    assert {rows[i]["state"] for i in ids} == {"pending"}
    assert {rows[i]["attempts"] for i in ids} == {0}
    assert any("invalid_auth" in (rows[i]["last_error"] or "") for i in ids)
    assert sum(fake_slack.calls.values()) == 1  # the pass stopped at the first refusal


def test_an_unknown_channel_fails_the_alert_naming_it_and_sends_once_the_config_is_fixed(
    engine,
    fake_slack,
):
    [alert_id] = queue(engine, [alert_row()])
    broken = ProductConfig.model_validate({"alerts": {"channels": {"cs-alerts": "#cs-alrts"}}})

    summary = _send(engine, fake_slack, broken)
    row = states(engine)[alert_id]

    assert (summary.failed, row["state"]) == (1, "failed")
    assert "#cs-alrts" in row["last_error"] and "channel_not_found" in row["last_error"]
    assert "alerts.channels" in row["last_error"]
    assert retry_failed(engine, NOW + timedelta(minutes=1)) == 1
    fixed = _send(engine, fake_slack, now=NOW + timedelta(minutes=2))
    assert fixed.sent == 1 and fake_slack.alert_ids() == [alert_id]
    assert states(engine)[alert_id]["state"] == "sent"


def test_an_owner_unknown_to_slack_goes_to_the_fallback_channel_and_the_lookup_is_cached(
    engine,
    fake_slack,
):
    rows = [alert_row(f"C{i}", channel="cs-enterprise", owner_email="nobody@example.com") for i in range(2)]
    rows.append(alert_row("C9", channel="cs-enterprise", owner_email="csm@example.com"))
    ids = queue(engine, rows)

    _send(engine, fake_slack)
    _send(engine, fake_slack)  # the cache also answers the next pass
    queue(engine, [alert_row("C7", channel="cs-enterprise", owner_email="nobody@example.com")])
    _send(engine, fake_slack, now=NOW + timedelta(days=1))

    by_alert = {m.alert_id: m for m in fake_slack.messages}
    assert by_alert[ids[0]].channel == "C0CSALERTS"  # the fallback channel
    assert "nobody@example.com (no Slack user has this e-mail)" in json.dumps(by_alert[ids[0]].blocks)
    assert by_alert[ids[2]].channel == "C0ENTERPRS"
    assert "<@U0CSM00001>" in json.dumps(by_alert[ids[2]].blocks)
    assert fake_slack.lookups == {"nobody@example.com": 1, "csm@example.com": 1}


def test_the_owner_cache_expires(engine, fake_slack):
    queue(engine, [alert_row("C1")])
    _send(engine, fake_slack)
    queue(engine, [alert_row("C2")], now=NOW + timedelta(days=8))
    _send(engine, fake_slack, now=NOW + timedelta(days=8))
    assert fake_slack.lookups["csm@example.com"] == 2


def test_repeated_failure_ends_failed_listed_and_retry_sends_it(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.server_error_share = 1.0
    config = _config(max_attempts=2, retry_base_s=1)

    _send(engine, fake_slack, config)
    _send(engine, fake_slack, config, now=NOW + timedelta(minutes=1))
    failed = list_alerts(engine, states=["failed"], limit=10)

    assert [row["alert_id"] for row in failed] == [alert_id]
    assert "gave up after 2 attempts" in failed[0]["last_error"]
    fake_slack.server_error_share = 0.0
    assert retry_failed(engine, NOW + timedelta(minutes=2), [alert_id]) == 1
    assert states(engine)[alert_id]["attempts"] == 0
    summary = _send(engine, fake_slack, config, now=NOW + timedelta(minutes=3))
    assert summary.sent == 1 and fake_slack.alert_ids() == [alert_id]


def test_a_message_slack_refuses_fails_the_alert_with_the_reason(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    fake_slack.fail_next(Failure(200, "invalid_blocks", method="chat.postMessage"))

    summary = _send(engine, fake_slack)

    assert summary.failed == 1
    assert "invalid_blocks" in states(engine)[alert_id]["last_error"]


def test_huge_alerts_and_digests_are_accepted_by_slack(engine, fake_slack):
    huge = customer_facts(
        "C1",
        name="Big & <Bold> " * 1_000,
        change_drivers=[{"sentence": "signal " * 300, "effect": 0.3} for _ in range(100)],
    )
    digest = {
        "owner_email": "csm@example.com",
        "as_of": "2024-12-01",
        "cap": 5,
        "customers": [
            {"alert_id": i, "customer_id": f"D{i}", "name": "N" * 500, "risk": 0.4, "headline": "h" * 3_000}
            for i in range(400)
        ],
    }
    ids = queue(
        engine,
        [
            alert_row("C1", message=huge),
            alert_row("csm@example.com", kind=AlertKind.DIGEST, message=digest),
        ],
    )

    summary = _send(engine, fake_slack)

    assert summary.sent == 2, summary.errors
    assert sorted(fake_slack.alert_ids()) == sorted(ids)


def test_without_a_token_alerts_are_printed_readably(engine, env):
    queue(engine, [alert_row(message=customer_facts(name="Acme & <Sons>"))])
    console = Console(record=True, width=100)

    summary = dispatch_pending(engine, Settings(), _config(), now=NOW, console=console)

    shown = console.export_text()
    assert summary.sink == "console" and summary.sent == 1
    assert "Acme & <Sons> is at risk of churning" in shown
    assert "Risk rose from 22% to 61% since 24 Nov." in shown
    assert [row["state"] for row in states(engine).values()] == ["sent"]


def test_an_alert_already_in_slack_from_a_dead_dispatcher_is_marked_sent_not_posted_again(
    engine,
    fake_slack,
):
    [alert_id] = queue(engine, [alert_row()])
    # A dispatcher claimed it, Slack took the message, and the dispatcher died before marking it.
    WebClient(token=fake_slack.token, base_url=fake_slack.url).chat_postMessage(
        channel="#cs-alerts",
        text="x",
        metadata={"event_type": "churn_alert", "event_payload": {"alert_id": alert_id}},
    )
    lapsed = NOW - timedelta(minutes=1)
    with engine.begin() as connection:
        connection.execute(
            alerts.update().values(
                state="sending", attempts=1, claimed_until=lapsed, slack_channel="#cs-alerts"
            )
        )

    summary = _send(engine, fake_slack)

    assert (summary.reconciled, summary.sent) == (1, 0)
    assert fake_slack.alert_ids() == [alert_id]
    row = states(engine)[alert_id]
    assert (row["state"], row["slack_ts"]) == ("sent", fake_slack.messages[0].ts)


def test_a_claim_that_has_not_lapsed_is_left_alone(engine, fake_slack):
    queue(engine, [alert_row()])
    with engine.begin() as connection:
        connection.execute(
            alerts.update().values(state="sending", attempts=1, claimed_until=NOW + timedelta(minutes=1))
        )
    assert _send(engine, fake_slack).claimed == 0
    lease = timedelta(seconds=claim_lease_s(_config().alerts.delivery))
    assert _send(engine, fake_slack, now=NOW + lease).sent == 1


def test_two_dispatchers_at_once_never_send_an_alert_twice(database_url, fake_slack):
    engine = make_engine(database_url)
    ids = queue(engine, [alert_row(f"C{i}", channel=["cs-alerts", "ops"][i % 2]) for i in range(30)])
    fake_slack.delay_s = 0.01
    summaries = []

    def run() -> None:
        own = make_engine(database_url)
        summaries.append(_send(own, fake_slack))
        own.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(fake_slack.alert_ids()) == ids
    assert sum(s.sent for s in summaries) == 30
    assert {row["state"] for row in states(engine).values()} == {"sent"}
    engine.dispose()


@pytest.mark.parametrize("share", [0.2])
def test_random_server_errors_lose_nothing_and_duplicate_nothing(engine, fake_slack, share):
    ids = queue(engine, [alert_row(f"C{i}") for i in range(40)])
    fake_slack.server_error_share = share
    config = _config(retry_base_s=1, max_attempts=20)
    now = NOW
    for _ in range(20):
        if _send(engine, fake_slack, config, now=now).kept == 0:
            break
        now += timedelta(minutes=10)

    assert sorted(fake_slack.alert_ids()) == ids
    assert {row["state"] for row in states(engine).values()} == {"sent"}


def test_retrying_a_failed_alert_slack_had_taken_looks_before_posting_again(engine, fake_slack):
    [alert_id] = queue(engine, [alert_row()])
    once = _config(max_attempts=1)
    fake_slack.fail_next(
        Failure(500, method="chat.postMessage", accepted=True),
        *[Failure(500, method="conversations.history")] * (TRIES_PER_PASS + 1),
    )
    _send(engine, fake_slack, once)
    failed = states(engine)[alert_id]["state"]
    fake_slack.failures.clear()

    retry_failed(engine, NOW, [alert_id])
    _send(engine, fake_slack, once, now=NOW + timedelta(minutes=5))

    assert failed == "failed"
    assert fake_slack.alert_ids() == [alert_id]
    assert states(engine)[alert_id]["state"] == "sent"
