"""What an alert says in Slack and on the console, and that Slack accepts it whatever the data."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from slack_sdk import WebClient

from serving.message import MAX_BLOCKS, Owner, console_rendering, slack_message
from tests.alert_rows import customer_facts
from tests.fake_slack import FakeSlack, block_problem


def _alert(facts: dict, *, kind: str = "threshold", alert_id: int = 7) -> dict:
    return {"alert_id": alert_id, "kind": kind, "customer_id": facts.get("customer_id"), "message": facts}


def _all_text(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def _accepted(fake: FakeSlack, alert: dict, owner: Owner | None = None) -> None:
    message = slack_message(alert, owner)
    client = WebClient(token=fake.token, base_url=fake.url)
    response = client.chat_postMessage(channel="#cs-alerts", text=message.text, blocks=message.blocks)
    assert response["ok"]


def test_a_customer_alert_says_who_how_risky_and_why():
    message = slack_message(_alert(customer_facts()), Owner("csm@example.com", "U0CSM00001", looked_up=True))
    text = _all_text(message.blocks)

    assert message.blocks[0]["type"] == "header"
    assert "Company C001" in message.blocks[0]["text"]["text"]
    assert "Risk rose from 22% to 61% since 24 Nov." in text
    assert "1,250" in text and "2025-01-15 (in 45 days)" in text
    assert "<@U0CSM00001>" in text and "<@U0CSM00001>" in message.text
    assert "12 logins in the last 30 days (was: 41 logins in the last 30 days) — pushed risk up" in text
    assert "last NPS answer 9 (was: last NPS answer 6) — pushed risk down" in text
    assert "4 open tickets" not in text  # the change's drivers come first
    context = message.blocks[-1]
    assert (
        context["type"] == "context"
        and "model 3" in _all_text([context])
        and "2024-12-01" in _all_text([context])
    )


@pytest.mark.parametrize(
    ("kind", "previous", "expected"),
    [
        ("threshold", None, "Risk is 61%."),
        ("jump", 0.22, "Risk jumped from 22% to 61% since 24 Nov."),
        ("threshold", 0.7, "Risk fell from 70% to 61% since 24 Nov."),
    ],
)
def test_the_risk_sentence_says_how_it_changed(kind, previous, expected):
    facts = customer_facts(previous_risk=previous, kind=kind)
    assert expected in slack_message(_alert(facts, kind=kind)).text


def test_without_change_drivers_the_raising_drivers_are_shown_and_reason_and_play_when_known():
    facts = customer_facts(
        change_drivers=[],
        likely_reason="Price: moved to a cheaper tool",
        suggested_play="Offer the annual plan",
        crm_url="https://crm.example.com/accounts/C001",
    )
    message = slack_message(_alert(facts))
    text = _all_text(message.blocks)

    assert "4 open tickets — pushes risk up" in text
    assert "Price: moved to a cheaper tool" in text and "Offer the annual plan" in text
    links = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"] if "url" in e]
    assert [link["url"] for link in links] == ["https://crm.example.com/accounts/C001"]


def test_the_likely_reason_reads_as_words_with_its_chance_and_a_rough_guess_says_so():
    sure = {"code": "price", "label": "Price", "probability": 0.62, "low_confidence": False}
    rough = {**sure, "low_confidence": True}

    text = _all_text(
        slack_message(_alert(customer_facts(likely_reason=sure, suggested_play="Right-size"))).blocks
    )
    guess = _all_text(slack_message(_alert(customer_facts(likely_reason=rough))).blocks)

    assert "Price (62% likely)" in text and "Right-size" in text and "{" not in text.split("Price")[1][:5]
    assert "a rough guess" in guess


def test_an_owner_unknown_to_slack_is_named_by_e_mail():
    owner = Owner("nobody@example.com", None, looked_up=True)
    text = _all_text(slack_message(_alert(customer_facts()), owner).blocks)
    assert "nobody@example.com (no Slack user has this e-mail)" in text
    assert "<@" not in text


def test_buttons_carry_the_alert_and_customer():
    message = slack_message(_alert(customer_facts("C042"), alert_id=1234))
    buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == [
        "acknowledge",
        "log_outreach",
        "mark_saved",
        "customer_leaving",
    ]
    assert {json.dumps(json.loads(b["value"]), sort_keys=True) for b in buttons} == {
        json.dumps({"alert_id": 1234, "customer_id": "C042"}, sort_keys=True)
    }


def test_names_with_control_characters_are_escaped_in_mrkdwn():
    facts = customer_facts(name="<!channel> Smith & <Sons>", owner_email="a&b@example.com")
    message = slack_message(_alert(facts))
    mrkdwn = [
        text["text"]
        for block in message.blocks
        for text in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
        if isinstance(text, dict) and text.get("type") == "mrkdwn"
    ]
    shown = " ".join(mrkdwn) + message.text
    assert "<!channel>" not in shown and "<Sons>" not in shown
    assert "&lt;!channel&gt; Smith &amp; &lt;Sons&gt;" in message.text
    assert "a&amp;b@example.com" in shown
    # The header is plain text: shown as written, nothing there is interpreted.
    assert message.blocks[0]["text"]["text"].startswith("<!channel> Smith & <Sons>")


def test_huge_data_stays_within_slacks_limits_and_slack_accepts_it(fake_slack):
    facts = customer_facts(
        name="Ünïcode & <Sons> " * 800,
        change_drivers=[
            {"feature": f"f{i}", "sentence": "&<>" * 400 + f" signal {i}", "effect": 0.1} for i in range(200)
        ],
        likely_reason="x" * 10_000,
        suggested_play="y" * 10_000,
        crm_url="https://crm.example.com/" + "a" * 5_000,
    )
    alert = _alert(facts)
    message = slack_message(alert)

    assert block_problem(message.blocks) is None
    assert len(message.text) <= 40_000
    assert message.blocks[0]["text"]["text"].endswith("…")
    assert "&am…" not in _all_text(message.blocks)  # never cut inside an escaped character
    _accepted(fake_slack, alert)


def test_a_long_digest_lists_what_fits_and_says_how_many_more(fake_slack):
    customers = [
        {
            "alert_id": i,
            "customer_id": f"C{i:04d}",
            "name": f"Customer <{i}> " * 30,
            "risk": 0.5,
            "previous_risk": 0.1,
            "mrr": 900.0,
            "headline": "usage fell by half " * 50,
        }
        for i in range(300)
    ]
    facts = {"owner_email": "csm@example.com", "as_of": "2024-12-01", "cap": 5, "customers": customers}
    alert = _alert(facts, kind="digest")
    message = slack_message(alert, Owner("csm@example.com", "U0CSM00001", looked_up=True))

    assert len(message.blocks) == MAX_BLOCKS
    assert block_problem(message.blocks) is None
    listed = [b for b in message.blocks if b["type"] == "section" and b["text"]["text"].startswith("• ")]
    assert "and 300 more" not in _all_text(message.blocks)
    assert f"and {300 - len(listed)} more" in _all_text(message.blocks)
    assert "300 more accounts" in message.blocks[0]["text"]["text"]
    assert "&lt;0&gt;" in listed[0]["text"]["text"] and "50%" in listed[0]["text"]["text"]
    _accepted(fake_slack, alert)


def test_a_notice_has_its_title_and_lines(fake_slack):
    facts = {
        "as_of": "2024-12-01",
        "title": "Alerts held: events are stale",
        "lines": [f"line {i}" for i in range(80)],
    }
    alert = _alert(facts, kind="notice")
    message = slack_message(alert)
    assert message.blocks[0]["text"]["text"] == "Alerts held: events are stale"
    assert "line 0" in _all_text(message.blocks) and "more" in _all_text(message.blocks)
    assert block_problem(message.blocks) is None
    _accepted(fake_slack, alert)


def test_the_console_rendering_reads_like_the_slack_message():
    facts = customer_facts(name="Acme <Ltd> & Co", likely_reason="Support: slow answers")
    console = Console(record=True, width=100)
    console.print(console_rendering(_alert(facts)))
    shown = console.export_text()
    assert "Acme <Ltd> & Co is at risk of churning" in shown
    assert "Risk rose from 22% to 61% since 24 Nov." in shown
    assert "Owner: csm@example.com" in shown
    assert "Likely reason: Support: slow answers" in shown
    assert "alert 7" in shown
