"""What an alert says: Slack Block Kit blocks with a plain-text fallback, and the same facts for a console.

Pure functions of the alert row (its ``kind`` and ``message`` facts, see :mod:`serving.outbox`). Slack
rejects a message outside its limits (``invalid_blocks``, ``msg_too_long``), and that would keep an
alert from ever arriving, so every block is built by the helpers at the bottom of this module, which
are the one place the limits are enforced: long text is cut with an ellipsis, long lists end with
"and N more".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

# Slack's documented limits (Block Kit reference and chat.postMessage).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_FIELD_TEXT = 2_000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_ACTION_ID = 255
MAX_URL = 3_000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 3_000
MAX_TEXT = 40_000

ELLIPSIS = "…"
BUTTONS = (
    ("acknowledge", "Acknowledge", "primary"),
    ("log_outreach", "Log outreach", None),
    ("mark_saved", "Mark saved", None),
    ("customer_leaving", "Customer is leaving", "danger"),
)


@dataclass(frozen=True)
class SlackMessage:
    """A chat.postMessage payload: the notification text and the blocks."""

    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class Owner:
    """Who an alert is for: the e-mail, and the Slack user when the dispatcher found one."""

    email: str | None
    slack_user_id: str | None = None
    looked_up: bool = False  # True when Slack was asked: no user id then means Slack has none

    def mrkdwn(self) -> str:
        if self.slack_user_id:
            return f"<@{self.slack_user_id}>"
        if not self.email:
            return "no owner on record"
        if self.looked_up:
            return f"{escape(self.email)} (no Slack user has this e-mail)"
        return escape(self.email)

    def plain(self) -> str:
        if not self.email:
            return "no owner on record"
        return self.email + (
            " (no Slack user has this e-mail)" if self.looked_up and not self.slack_user_id else ""
        )


def slack_message(alert: Mapping[str, Any], owner: Owner | None = None) -> SlackMessage:
    """The Slack message for an alert row (customer alert, owner digest or operator notice)."""
    facts = alert["message"]
    kind = alert["kind"]
    owner = owner or Owner(facts.get("owner_email") or alert.get("owner_email"))
    if kind == "digest":
        return _digest_message(alert, facts, owner)
    if kind == "notice":
        return _notice_message(facts)
    return _customer_message(alert, facts, owner)


def console_rendering(alert: Mapping[str, Any], owner: Owner | None = None) -> RenderableType:
    """The same facts as the Slack message, readable in a terminal."""
    facts = alert["message"]
    kind = alert["kind"]
    owner = owner or Owner(facts.get("owner_email") or alert.get("owner_email"))
    lines: list[Text] = []
    if kind == "digest":
        title = f"Daily digest for {owner.plain()}"
        lines.append(Text(_digest_intro(facts)))
        for customer in facts.get("customers") or []:
            lines.append(Text(f"• {_digest_line_plain(customer)}"))
    elif kind == "notice":
        title = str(facts.get("title") or "Notice")
        lines.extend(Text(str(line)) for line in facts.get("lines") or [])
    else:
        title = f"{_account(facts)} is at risk of churning"
        lines.append(Text(_risk_sentence(kind, facts), style="bold"))
        lines.extend(Text(f"{label}: {value}") for label, value in _account_facts_plain(facts, owner))
        drivers = _driver_lines(facts)
        if drivers:
            lines.append(Text(drivers[0]))
            lines.extend(Text(f"  • {line}") for line in drivers[1:])
        for label, value in _reason_and_play(facts):
            lines.append(Text(f"{label}: {value}"))
        if facts.get("crm_url"):
            lines.append(Text(f"CRM: {facts['crm_url']}"))
    footer = _context_plain(facts)
    if footer:
        lines.append(Text(footer, style="dim"))
    alert_id = alert.get("alert_id")
    subtitle = f"alert {alert_id} · {kind}" if alert_id is not None else kind
    return Panel(Group(*lines), title=Text(title, style="bold"), subtitle=subtitle, expand=False)


# --- customer alerts --------------------------------------------------------------------------------


def _customer_message(alert: Mapping[str, Any], facts: Mapping[str, Any], owner: Owner) -> SlackMessage:
    name = _account(facts)
    risk_sentence = _risk_sentence(alert["kind"], facts)
    blocks: list[dict[str, Any]] = [
        header(f"{name} is at risk of churning"),
        section(f"*{escape(risk_sentence)}*"),
        fields([f"*{label}*\n{value}" for label, value in _account_facts_mrkdwn(facts, owner)]),
    ]
    drivers = _driver_lines(facts)
    if drivers:
        lines = [f"*{escape(drivers[0])}*", *(f"• {escape(line)}" for line in drivers[1:])]
        blocks.append(section("\n".join(lines)))
    reasons = _reason_and_play(facts)
    if reasons:
        blocks.append(section("\n".join(f"*{label}:* {escape(value)}" for label, value in reasons)))
    value = _button_value(alert, facts)
    buttons = [button(text, action_id, value, style=style) for action_id, text, style in BUTTONS]
    if facts.get("crm_url"):
        buttons.append(button("Open in CRM", "open_crm", value, url=str(facts["crm_url"])))
    blocks.append(actions(buttons))
    footer = _context_plain(facts)
    if footer:
        blocks.append(context([escape(footer)]))
    # The fallback text is mrkdwn too (a name like <!channel> would ping everyone): escape it as well.
    text = f"{escape(name)}: {escape(risk_sentence)} Owner: {owner.mrkdwn()}."
    return finish(text, blocks)


def _account(facts: Mapping[str, Any]) -> str:
    return str(facts.get("name") or facts.get("customer_id") or "Unknown account")


def _risk_sentence(kind: str, facts: Mapping[str, Any]) -> str:
    risk, previous = facts.get("risk"), facts.get("previous_risk")
    if risk is None:
        return "Risk is unknown."
    if previous is None:
        return f"Risk is {percent(risk)}."
    since = _since(facts.get("previous_as_of"), facts.get("as_of"))
    if kind == "jump":
        return f"Risk jumped from {percent(previous)} to {percent(risk)}{since}."
    if round(risk * 100) == round(previous * 100):
        return f"Risk is {percent(risk)}, unchanged{since}."
    verb = "rose" if risk > previous else "fell"
    return f"Risk {verb} from {percent(previous)} to {percent(risk)}{since}."


def _since(previous_as_of: object, as_of: object) -> str:
    before, now = _day(previous_as_of), _day(as_of)
    if before is None:
        return ""
    shown = (
        f"{before.day} {before:%b}"
        if now is not None and now.year == before.year
        else f"{before.day} {before:%b %Y}"
    )
    return f" since {shown}"


def _account_facts(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    if facts.get("mrr") is not None:
        shown.append(("MRR", money(facts["mrr"])))
    renewal = _day(facts.get("renewal_date"))
    if renewal is not None:
        days = facts.get("days_to_renewal")
        when = f"{renewal.isoformat()}"
        if days is not None:
            when += f" (in {int(days)} days)" if int(days) >= 0 else f" ({-int(days)} days ago)"
        shown.append(("Renewal", when))
    if facts.get("segment"):
        shown.append(("Segment", str(facts["segment"])))
    if facts.get("involuntary"):
        shown.append(("Note", "failed payments drive this risk"))
    return shown


def _account_facts_mrkdwn(facts: Mapping[str, Any], owner: Owner) -> list[tuple[str, str]]:
    return [(label, escape(value)) for label, value in _account_facts(facts)] + [("Owner", owner.mrkdwn())]


def _account_facts_plain(facts: Mapping[str, Any], owner: Owner) -> list[tuple[str, str]]:
    return [*_account_facts(facts), ("Owner", owner.plain())]


def _driver_lines(facts: Mapping[str, Any]) -> list[str]:
    """A heading, then one sentence per driver: what changed since the last scoring, else what raises risk."""
    changes = [d for d in facts.get("change_drivers") or [] if d.get("sentence")]
    if changes:
        lines = ["What changed since the last scoring:"]
        for driver in changes:
            line = str(driver["sentence"])
            if driver.get("previous_sentence") and driver["previous_sentence"] != driver["sentence"]:
                line += f" (was: {driver['previous_sentence']})"
            effect = driver.get("effect") or 0
            lines.append(f"{line} — pushed risk {'up' if effect > 0 else 'down'}")
        return lines
    raising = [d for d in (facts.get("drivers") or {}).get("raising") or [] if d.get("sentence")]
    if raising:
        return ["What raises the risk:", *(f"{d['sentence']} — pushes risk up" for d in raising)]
    return []


def _reason_and_play(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    shown = []
    reason = facts.get("likely_reason")
    if isinstance(reason, Mapping):
        chance = float(reason.get("probability") or 0)
        text = f"{reason.get('label') or reason.get('code')} ({chance:.0%} likely)"
        if reason.get("low_confidence"):
            text += ", a rough guess: the model barely beats always guessing the commonest reason"
        shown.append(("Likely reason", text))
    elif reason:
        shown.append(("Likely reason", str(reason)))
    if facts.get("suggested_play"):
        shown.append(("Suggested play", str(facts["suggested_play"])))
    return shown


def _button_value(alert: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    customer_id = alert.get("customer_id") or facts.get("customer_id")
    return json.dumps({"alert_id": alert.get("alert_id"), "customer_id": customer_id}, separators=(",", ":"))


def _context_plain(facts: Mapping[str, Any]) -> str:
    parts = []
    if facts.get("model_version"):
        parts.append(f"model {facts['model_version']}")
    if facts.get("as_of"):
        parts.append(f"as of {facts['as_of']}")
    return " · ".join(parts)


# --- digests and notices ----------------------------------------------------------------------------


def _digest_intro(facts: Mapping[str, Any]) -> str:
    customers = facts.get("customers") or []
    cap = facts.get("cap")
    over = f" over the daily limit of {cap} alerts" if cap else ""
    accounts = "account" if len(customers) == 1 else "accounts"
    return f"{len(customers)} more {accounts} crossed the risk threshold{over}:"


def _digest_line_plain(customer: Mapping[str, Any]) -> str:
    name = str(customer.get("name") or customer.get("customer_id") or "Unknown account")
    risk, previous = customer.get("risk"), customer.get("previous_risk")
    change = f"{percent(risk)}" if risk is not None else "risk unknown"
    if risk is not None and previous is not None:
        change += f" (from {percent(previous)})"
    if customer.get("mrr") is not None:
        change += f", MRR {money(customer['mrr'])}"
    headline = f" — {customer['headline']}" if customer.get("headline") else ""
    return f"{name}: {change}{headline}"


def _digest_message(alert: Mapping[str, Any], facts: Mapping[str, Any], owner: Owner) -> SlackMessage:
    customers = list(facts.get("customers") or [])
    fixed = [
        header(f"Daily digest: {len(customers)} more accounts at risk"),
        section(f"{owner.mrkdwn()}: {escape(_digest_intro(facts))}"),
    ]
    footer = [context([escape(_context_plain(facts))])] if _context_plain(facts) else []
    lines = [section(f"• {escape(_digest_line_plain(c))}") for c in customers]
    blocks = fixed + listed(lines, MAX_BLOCKS - len(fixed) - len(footer)) + footer
    names = ", ".join(_digest_line_plain(c).split(":", 1)[0] for c in customers)
    text = f"Daily digest for {owner.mrkdwn()}: {len(customers)} more accounts at risk: {escape(names)}"
    return finish(text, blocks)


def _notice_message(facts: Mapping[str, Any]) -> SlackMessage:
    title = str(facts.get("title") or "Notice")
    lines = [section(escape(str(line))) for line in facts.get("lines") or []]
    footer = [context([escape(f"as of {facts['as_of']}")])] if facts.get("as_of") else []
    blocks = [header(title), *listed(lines, MAX_BLOCKS - 1 - len(footer)), *footer]
    text = escape(" ".join([title + ":", *(str(line) for line in facts.get("lines") or [])]))
    return finish(text, blocks)


# --- formatting -------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def percent(value: float) -> str:
    return f"{float(value) * 100:.0f}%"


def money(value: float) -> str:
    number = float(value)
    return f"{number:,.0f}" if number >= 100 or number.is_integer() else f"{number:,.2f}"


def _day(value: object) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


# --- Slack's limits, enforced here and only here ----------------------------------------------------

_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def clip(text: str, limit: int) -> str:
    """Cut text to at most ``limit`` characters, ending with an ellipsis (never inside an &entity;)."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - len(ELLIPSIS)])
    return cut + ELLIPSIS


def header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, MAX_HEADER_TEXT), "emoji": True},
    }


def section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(mrkdwn, MAX_SECTION_TEXT)}}


def fields(items: Sequence[str]) -> dict[str, Any]:
    shown = [{"type": "mrkdwn", "text": clip(item, MAX_FIELD_TEXT)} for item in items[:MAX_FIELDS]]
    return {"type": "section", "fields": shown}


def context(items: Sequence[str]) -> dict[str, Any]:
    shown = [
        {"type": "mrkdwn", "text": clip(item, MAX_CONTEXT_TEXT)} for item in items[:MAX_CONTEXT_ELEMENTS]
    ]
    return {"type": "context", "elements": shown}


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, url: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, MAX_BUTTON_TEXT)},
        "action_id": action_id[:MAX_ACTION_ID],
    }
    # A value cut short would not parse: the ids in it are bounded (ID columns are 128 characters).
    if len(value) <= MAX_BUTTON_VALUE:
        element["value"] = value
    if style:
        element["style"] = style
    if url and len(url) <= MAX_URL:
        element["url"] = url
    return element


def actions(elements: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements[:MAX_ACTIONS_ELEMENTS])}


def listed(blocks: Sequence[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """At most ``budget`` blocks; when some are left out the last one says how many."""
    if len(blocks) <= budget:
        return list(blocks)
    shown = list(blocks[: budget - 1])
    return [*shown, section(f"… and {len(blocks) - len(shown)} more")]


def finish(text: str, blocks: Sequence[dict[str, Any]]) -> SlackMessage:
    """The message within the per-message limits: the block count and the fallback text."""
    return SlackMessage(text=clip(text, MAX_TEXT), blocks=listed(list(blocks), MAX_BLOCKS))
