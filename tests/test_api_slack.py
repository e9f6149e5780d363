"""POST /slack/interactions: signed clicks on an alert's buttons, the reason forms, the updated message."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select

from churn.settings import Settings
from churn.tables import alert_outcomes, cancellations
from serving.api.app import create_app
from serving.outbox import mark_sent
from serving.slack import SlackSink, lookup_owner
from tests.alert_rows import NOW, alert_row, queue, states
from tests.api_support import Api, open_api
from tests.fake_slack import TOKEN, Failure, FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0CSALERTS"
ANA = {"id": "U0ANA00001", "username": "ana", "name": "ana", "team_id": "T0TEAM0001"}
BUTTONS = ["acknowledge", "log_outreach", "mark_saved", "customer_leaving"]


@dataclass
class Posted:
    """An alert as the dispatcher left it: in the database and posted to the fake Slack."""

    alert_id: int
    channel: str
    ts: str
    blocks: list[dict[str, Any]]


def settings_for(database_url: str, home: Path, slack: FakeSlack, **extra: str) -> Settings:
    return Settings(
        CHURN_DATABASE_URL=database_url,
        CHURN_HOME=str(home),
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_API_URL=slack.url,
        **extra,
    )


@pytest.fixture
def slack_api(
    database_url: str,
    env: dict[str, str],
    tmp_path: Path,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    """The API with a signing secret and a bot token pointing at the fake Slack."""
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    harness, client = open_api(settings_for(database_url, tmp_path, fake_slack, SLACK_SIGNING_SECRET=SECRET))
    with client:
        yield harness


@pytest.fixture
def posted(slack_api: Api, fake_slack: FakeSlack) -> Posted:
    """One customer alert, posted by the bot with its owner mentioned, as dispatch leaves it."""
    (alert_id,) = queue(slack_api.engine, [alert_row("C001")])
    sink = SlackSink(TOKEN, base_url=fake_slack.url, timeout_s=5)
    owner = lookup_owner(slack_api.engine, sink, "csm@example.com", now=NOW, cache_days=7)
    where = sink.post(CHANNEL, states(slack_api.engine)[alert_id], owner)
    with slack_api.engine.begin() as connection:
        mark_sent(connection, alert_id, channel=where.channel, ts=where.ts, now=NOW)
    message = fake_slack.messages[-1]
    return Posted(alert_id, message.channel, message.ts, json.loads(json.dumps(message.blocks)))


# --- what Slack sends -------------------------------------------------------------------------------


def signed(body: str, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


def form(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def button_value(alert: Posted, action_id: str) -> str:
    for block in alert.blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return element["value"]
    raise AssertionError(f"no {action_id} button on the message")


def click(alert: Posted, action_id: str, *, user: dict[str, str] = ANA, action_ts: str = "1733040301.000200"):
    """A block_actions payload as Slack sends it when ``user`` clicks a button on the alert."""
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": "A0APP00001",
        "team": {"id": "T0TEAM0001", "domain": "example"},
        "container": {"type": "message", "message_ts": alert.ts, "channel_id": alert.channel},
        "channel": {"id": alert.channel, "name": "cs-alerts"},
        "message": {"type": "message", "ts": alert.ts, "blocks": alert.blocks},
        "trigger_id": "4711.1733040301.5f0a",
        "response_url": "https://hooks.slack.com/actions/T0TEAM0001/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "text": {"type": "plain_text", "text": action_id},
                "value": button_value(alert, action_id),
                "action_ts": action_ts,
            }
        ],
    }


def submission(view: dict[str, Any], *, reason: str | None = None, note: str | None = None, user=ANA):
    """A view_submission payload for a form the fake Slack opened, filled in."""
    values: dict[str, Any] = {}
    if reason is not None:
        values["reason"] = {"reason_code": {"type": "static_select", "selected_option": {"value": reason}}}
    values["note"] = {"note": {"type": "plain_text_input", "value": note}}
    return {
        "type": "view_submission",
        "user": user,
        "team": {"id": "T0TEAM0001"},
        "view": {**view["view"], "id": view["id"], "state": {"values": values}},
    }


def send(api: Api, payload: dict[str, Any], **signing: Any):
    body = form(payload)
    return api.client.post("/slack/interactions", content=body, headers=signed(body, **signing))


def outcomes(api: Api) -> list[dict[str, Any]]:
    with api.engine.connect() as connection:
        rows = connection.execute(select(alert_outcomes).order_by(alert_outcomes.c.outcome_id))
        return [dict(row._mapping) for row in rows]


def contexts(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


# --- the buttons ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action_id", "outcome", "line"),
    [
        ("acknowledge", "acknowledged", "✅ Acknowledged by <@U0ANA00001> at "),
        ("log_outreach", "outreach_logged", "📞 Outreach logged by <@U0ANA00001> at "),
    ],
)
def test_a_click_records_who_did_what_and_shows_it_on_the_alert(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted, action_id: str, outcome: str, line: str
) -> None:
    response = send(slack_api, click(posted, action_id))

    assert response.status_code == 200
    assert response.content == b""
    (stored,) = outcomes(slack_api)
    assert stored["alert_id"] == posted.alert_id
    assert stored["customer_id"] == "C001"
    assert stored["outcome"] == outcome
    assert stored["actor"] == "U0ANA00001 (ana)"
    assert stored["source"] == "slack"
    (update,) = fake_slack.updates
    assert (update.channel, update.ts) == (posted.channel, posted.ts)
    # The message as posted (owner mentioned, same buttons), with one line saying who did what.
    assert update.blocks[: len(posted.blocks)] == posted.blocks
    (added,) = contexts(update.blocks[len(posted.blocks) :])
    assert added.startswith(line)
    assert added.endswith(" UTC on " + stored["created_at"].strftime("%-d %b"))
    assert action_ids(update.blocks) == BUTTONS
    assert update.metadata == {"event_type": "churn_alert", "event_payload": {"alert_id": posted.alert_id}}


def test_a_retried_click_lands_once_and_a_new_click_adds_a_line(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted
) -> None:
    first = click(posted, "acknowledge")
    assert send(slack_api, first).status_code == 200
    assert send(slack_api, first).status_code == 200  # Slack delivering the same click again
    assert len(outcomes(slack_api)) == 1

    assert send(slack_api, click(posted, "log_outreach", action_ts="1733040999.000100")).status_code == 200

    assert [o["outcome"] for o in outcomes(slack_api)] == ["acknowledged", "outreach_logged"]
    lines = contexts(fake_slack.messages[-1].blocks)
    assert [line.split(" by ")[0] for line in lines[-2:]] == ["✅ Acknowledged", "📞 Outreach logged"]


def test_mark_saved_asks_for_a_note_and_the_saved_alert_loses_its_buttons(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted
) -> None:
    response = send(slack_api, click(posted, "mark_saved"))

    assert response.status_code == 200
    assert outcomes(slack_api) == []  # nothing is recorded until the form is sent
    (opened,) = fake_slack.views
    assert opened["trigger_id"] == "4711.1733040301.5f0a"
    assert opened["view"]["callback_id"] == "churn_outcome_saved"
    assert json.loads(opened["view"]["private_metadata"])["alert_id"] == posted.alert_id
    assert "reason" not in [b.get("block_id") for b in opened["view"]["blocks"]]  # saved has no reason code

    sent = send(slack_api, submission(opened, note="Offered a training session; they renewed."))

    assert sent.status_code == 200
    assert sent.content == b""  # closes the form
    (stored,) = outcomes(slack_api)
    assert (stored["outcome"], stored["reason_code"]) == ("saved", None)
    assert stored["note"] == "Offered a training session; they renewed."
    assert stored["actor"] == "U0ANA00001 (ana)"
    blocks = fake_slack.messages[-1].blocks
    (line,) = contexts(blocks)[-1:]
    assert line.startswith("🎉 Marked saved by <@U0ANA00001> at ")
    assert line.endswith("“Offered a training session; they renewed.”")
    assert action_ids(blocks) == []


def test_customer_leaving_needs_a_reason_and_records_churning_without_a_cancellation(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted
) -> None:
    assert send(slack_api, click(posted, "customer_leaving")).status_code == 200
    (opened,) = fake_slack.views
    assert opened["view"]["callback_id"] == "churn_outcome_churning"
    select_block = next(b for b in opened["view"]["blocks"] if b.get("block_id") == "reason")
    codes = [o["value"] for o in select_block["element"]["options"]]
    assert codes == [
        "price", "product_fit", "support", "adoption", "competitor", "business_closed", "payment_failed", "other",
    ]  # fmt: skip

    missing = send(slack_api, submission(opened, note="they are going"))
    assert missing.status_code == 200
    assert missing.json() == {
        "response_action": "errors",
        "errors": {"reason": "Choose why the customer is leaving."},
    }
    unknown = send(slack_api, submission(opened, reason="weather"))
    assert unknown.json()["errors"]["reason"] == "Unknown reason 'weather'."
    assert outcomes(slack_api) == []

    sent = send(slack_api, submission(opened, reason="competitor", note="Moving to <Rival> in March"))

    assert sent.status_code == 200
    (stored,) = outcomes(slack_api)
    assert (stored["outcome"], stored["reason_code"]) == ("churning", "competitor")
    assert stored["note"] == "Moving to <Rival> in March"
    with slack_api.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(cancellations)).scalar() == 0
    blocks = fake_slack.messages[-1].blocks
    line = contexts(blocks)[-1]
    assert line.startswith("🚪 Customer is leaving, recorded by <@U0ANA00001> at ")
    assert "reason: Moved to a competitor · “Moving to &lt;Rival&gt; in March”" in line
    assert action_ids(blocks) == []


def test_a_form_sent_twice_lands_once(slack_api: Api, fake_slack: FakeSlack, posted: Posted) -> None:
    send(slack_api, click(posted, "customer_leaving"))
    (opened,) = fake_slack.views
    filled = submission(opened, reason="price")

    assert send(slack_api, filled).status_code == 200
    assert send(slack_api, filled).status_code == 200

    assert [(o["outcome"], o["reason_code"]) for o in outcomes(slack_api)] == [("churning", "price")]


def test_slack_being_down_does_not_fail_the_click(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.fail_next(Failure(status=200, error="message_not_found", method="chat.update"))

    with caplog.at_level(logging.WARNING):
        response = send(slack_api, click(posted, "acknowledge"))

    assert response.status_code == 200
    assert [o["outcome"] for o in outcomes(slack_api)] == ["acknowledged"]
    assert (
        f"could not update alert {posted.alert_id}'s message in Slack: Slack answered message_not_found"
        in (caplog.text)
    )
    assert fake_slack.updates == []


def test_an_expired_form_trigger_is_logged(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.fail_next(Failure(status=200, error="expired_trigger_id", method="views.open"))

    with caplog.at_level(logging.WARNING):
        response = send(slack_api, click(posted, "mark_saved"))

    assert response.status_code == 200
    assert (
        f"could not open the reason form for alert {posted.alert_id}: Slack answered expired_trigger_id"
        in (caplog.text)
    )


def test_the_click_is_answered_while_slack_has_not_answered_yet(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted
) -> None:
    # A real server: the in-process test client would wait for the background work as well.
    server = uvicorn.Server(
        uvicorn.Config(create_app(slack_api.settings), port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    fake_slack.hold = threading.Event()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        body = form(click(posted, "acknowledge"))
        base = f"http://127.0.0.1:{server.config.port}"

        response = httpx.post(base + "/slack/interactions", content=body, headers=signed(body), timeout=30)

        assert response.status_code == 200
        assert [o["outcome"] for o in outcomes(slack_api)] == ["acknowledged"]
        assert fake_slack.updates == []  # Slack is still being held: the answer did not wait for it
        fake_slack.hold.set()
        for _ in range(200):
            if fake_slack.updates:
                break
            time.sleep(0.05)
        assert contexts(fake_slack.updates[0].blocks)[-1].startswith("✅ Acknowledged by <@U0ANA00001>")
    finally:
        fake_slack.hold.set()
        server.should_exit = True
        thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what is not ours, or not well formed -----------------------------------------------------------


def test_a_click_on_an_unknown_alert_is_acknowledged_and_logged(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted, caplog: pytest.LogCaptureFixture
) -> None:
    payload = click(posted, "acknowledge")
    payload["actions"][0]["value"] = json.dumps({"alert_id": 999_999, "customer_id": "C001"})

    with caplog.at_level(logging.WARNING):
        response = send(slack_api, payload)

    assert response.status_code == 200
    assert "Slack action acknowledge ignored: there is no alert 999999 in this database" in caplog.text
    assert outcomes(slack_api) == []
    assert fake_slack.calls["chat.update"] == 0


def test_a_click_naming_another_customer_is_ignored(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted
) -> None:
    payload = click(posted, "acknowledge")
    payload["actions"][0]["value"] = json.dumps({"alert_id": posted.alert_id, "customer_id": "C999"})

    assert send(slack_api, payload).status_code == 200
    assert outcomes(slack_api) == []


@pytest.mark.parametrize("value", ["not json", json.dumps({"customer_id": "C001"}), json.dumps([1, 2])])
def test_a_button_value_that_names_no_alert_is_acknowledged(
    slack_api: Api, posted: Posted, value: str
) -> None:
    payload = click(posted, "acknowledge")
    payload["actions"][0]["value"] = value

    assert send(slack_api, payload).status_code == 200
    assert outcomes(slack_api) == []


def test_the_crm_link_and_other_interactions_are_acknowledged_and_ignored(
    slack_api: Api, fake_slack: FakeSlack, posted: Posted
) -> None:
    link = click(posted, "acknowledge")
    link["actions"][0]["action_id"] = "open_crm"
    shortcut = {"type": "shortcut", "callback_id": "something", "user": ANA, "trigger_id": "1.2.3"}
    other_form = {
        "type": "view_submission",
        "user": ANA,
        "view": {"id": "V1", "callback_id": "someone_elses"},
    }

    for payload in (link, shortcut, other_form):
        response = send(slack_api, payload)
        assert response.status_code == 200
        assert response.content == b""
    assert outcomes(slack_api) == []
    assert fake_slack.calls["chat.update"] == fake_slack.calls["views.open"] == 0


@pytest.mark.parametrize(
    "body",
    ["", "payload=not-json", "other=1", urlencode({"payload": "[1, 2]"}), "payload=%ff%fe"],
)
def test_a_signed_body_that_is_not_a_slack_payload_is_a_400(slack_api: Api, body: str) -> None:
    response = slack_api.client.post("/slack/interactions", content=body, headers=signed(body))

    assert response.status_code == 400
    assert "payload" in response.json()["error"]["message"]


def test_a_form_without_its_alert_is_a_400(slack_api: Api) -> None:
    payload = {
        "type": "view_submission",
        "user": ANA,
        "view": {"id": "V1", "callback_id": "churn_outcome_saved"},
    }

    response = send(slack_api, payload)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the form's private_metadata does not name an alert"


# --- Slack's signature ------------------------------------------------------------------------------


def test_a_wrong_signing_secret_is_refused(slack_api: Api, posted: Posted) -> None:
    response = send(slack_api, click(posted, "acknowledge"), secret="not-the-secret")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        "the Slack signature does not match this request (wrong signing secret or altered body)"
    )
    assert outcomes(slack_api) == []


def test_a_tampered_body_is_refused(slack_api: Api, posted: Posted) -> None:
    honest = form(click(posted, "acknowledge"))
    headers = signed(honest)
    tampered = form(click(posted, "acknowledge", user={**ANA, "id": "U0MALLORY1"}))

    response = slack_api.client.post("/slack/interactions", content=tampered, headers=headers)

    assert response.status_code == 401
    assert "signature does not match" in response.json()["error"]["message"]
    assert outcomes(slack_api) == []


@pytest.mark.parametrize("age_s", [6 * 60, -6 * 60])
def test_an_old_request_is_refused_as_a_replay(slack_api: Api, posted: Posted, age_s: int) -> None:
    response = send(slack_api, click(posted, "acknowledge"), at=time.time() - age_s)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        "the Slack request is more than five minutes old (refused as a possible replay)"
    )
    assert outcomes(slack_api) == []


@pytest.mark.parametrize(
    "drop",
    [
        ("X-Slack-Signature",),
        ("X-Slack-Request-Timestamp",),
        ("X-Slack-Signature", "X-Slack-Request-Timestamp"),
    ],
)
def test_an_unsigned_request_is_refused(slack_api: Api, posted: Posted, drop: tuple[str, ...]) -> None:
    body = form(click(posted, "acknowledge"))
    headers = {k: v for k, v in signed(body).items() if k not in drop}

    response = slack_api.client.post("/slack/interactions", content=body, headers=headers)

    assert response.status_code == 401
    assert (
        "X-Slack-Signature and X-Slack-Request-Timestamp are required" in response.json()["error"]["message"]
    )


def test_a_timestamp_that_is_not_a_time_is_refused(slack_api: Api, posted: Posted) -> None:
    body = form(click(posted, "acknowledge"))
    headers = {**signed(body), "X-Slack-Request-Timestamp": "yesterday"}

    response = slack_api.client.post("/slack/interactions", content=body, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "X-Slack-Request-Timestamp is not a Unix time"


def test_without_a_signing_secret_interactivity_is_off(
    database_url: str,
    env: dict[str, str],
    tmp_path: Path,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    harness, client = open_api(settings_for(database_url, tmp_path, fake_slack))
    body = form({"type": "block_actions", "actions": []})

    with client:
        response = harness.client.post("/slack/interactions", content=body, headers=signed(body))

    assert response.status_code == 503
    assert response.json()["error"]["message"] == (
        "Slack interactivity is off: set SLACK_SIGNING_SECRET (the Slack app's signing secret)"
    )
