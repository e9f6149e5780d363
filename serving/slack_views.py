"""What a rep sees after clicking an alert's buttons: the reason form, and the alert with its outcomes.

Pure functions. The updated alert is rebuilt from the alert row and every outcome recorded for it (not
patched onto whatever message Slack last showed), so two reps clicking at once, a retried request and a
form submitted minutes later all converge on the same message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from serving.feedback import Outcome
from serving.message import (
    BUTTONS,
    MAX_BLOCKS,
    Owner,
    SlackMessage,
    clip,
    context,
    escape,
    finish,
    section,
    slack_message,
)

FEEDBACK_ACTIONS = frozenset(action_id for action_id, _text, _style in BUTTONS)
OUTCOME_BLOCK = "churn_outcome"  # block_id prefix of the lines this module adds
MAX_OUTCOME_LINES = 10  # the latest ones; a long history ends in the API, not in the message
MAX_NOTE = 3_000

REASONS = {
    "price": "Price",
    "product_fit": "Product fit",
    "support": "Support",
    "adoption": "Low adoption",
    "competitor": "Moved to a competitor",
    "business_closed": "Business closed",
    "payment_failed": "Payment failed",
    "other": "Other",
}


CLOSING = frozenset({Outcome.SAVED, Outcome.CHURNING})  # the alert is settled: its buttons go away

# Button -> the outcome it records. The last two ask for a reason first (a form).
BUTTON_OUTCOMES = {
    "acknowledge": Outcome.ACKNOWLEDGED,
    "log_outreach": Outcome.OUTREACH_LOGGED,
    "mark_saved": Outcome.SAVED,
    "customer_leaving": Outcome.CHURNING,
}
FORM_CALLBACKS = {Outcome.SAVED: "churn_outcome_saved", Outcome.CHURNING: "churn_outcome_churning"}
CALLBACK_OUTCOMES = {callback: outcome for outcome, callback in FORM_CALLBACKS.items()}
REASON_BLOCK, REASON_ACTION = "reason", "reason_code"
NOTE_BLOCK, NOTE_ACTION = "note", "note"

# Outcome -> (title, the note's label, the reason question or None). Only churning carries a reason code.
_FORMS = {
    Outcome.SAVED: ("Mark saved", "What saved the account?", None),
    Outcome.CHURNING: ("Customer is leaving", "Anything to add?", "Why is the customer leaving?"),
}
_LINES = {
    Outcome.ACKNOWLEDGED: ("✅", "Acknowledged"),
    Outcome.OUTREACH_LOGGED: ("📞", "Outreach logged"),
    Outcome.SAVED: ("🎉", "Marked saved"),
    Outcome.CHURNING: ("🚪", "Customer is leaving, recorded"),
}


def reason_form(outcome: Outcome, *, account: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The modal asking why (a reason code when leaving, and a note); ``metadata`` comes back on submit."""
    title, note_label, question = _FORMS[outcome]
    blocks: list[dict[str, Any]] = [section(f"*{escape(clip(account, 200))}*")]
    if question is not None:
        options = [
            {"text": {"type": "plain_text", "text": label}, "value": code} for code, label in REASONS.items()
        ]
        blocks.append(
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": question},
                "element": {"type": "static_select", "action_id": REASON_ACTION, "options": options},
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": NOTE_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": note_label},
            "element": {
                "type": "plain_text_input",
                "action_id": NOTE_ACTION,
                "multiline": True,
                "max_length": MAX_NOTE,
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACKS[outcome],
        "private_metadata": json.dumps(dict(metadata), separators=(",", ":")),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def form_answers(view: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The reason code and note a submitted form carries (None where left empty)."""
    values = (view.get("state") or {}).get("values") or {}
    selected = ((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("selected_option") or {}
    note = ((values.get(NOTE_BLOCK) or {}).get(NOTE_ACTION) or {}).get("value")
    reason = selected.get("value")
    note = note.strip()[:MAX_NOTE] if isinstance(note, str) else None
    return (str(reason) if reason else None), (note or None)


def form_problem(outcome: Outcome, reason_code: str | None) -> str | None:
    """What is wrong with a submitted form, said next to the reason field, or None."""
    if _FORMS[outcome][2] is None:
        return None  # no reason asked: whatever came is ignored
    if reason_code is None:
        return "Choose why the customer is leaving."
    if reason_code not in REASONS:
        return f"Unknown reason {reason_code!r}."
    return None


def problem_block(outcome: Outcome) -> str:
    """The form field a problem is shown next to."""
    return REASON_BLOCK if _FORMS[outcome][2] is not None else NOTE_BLOCK


def alert_with_outcomes(
    alert: Mapping[str, Any], owner: Owner, outcomes: Sequence[Mapping[str, Any]]
) -> SlackMessage:
    """The alert as first posted, one line per outcome, and no feedback buttons once it is settled."""
    message = slack_message(alert, owner)
    settled = any(o["outcome"] in CLOSING for o in outcomes)
    blocks = [b for b in message.blocks if not str(b.get("block_id", "")).startswith(OUTCOME_BLOCK)]
    if settled:
        blocks = _without_feedback_buttons(blocks)
    shown = list(outcomes)[-MAX_OUTCOME_LINES:]
    earlier = len(outcomes) - len(shown)
    lines = [outcome_line(o) for o in shown]
    if earlier:
        lines[0] = f"_{earlier} earlier {'update' if earlier == 1 else 'updates'}_ · " + lines[0]
    room = MAX_BLOCKS - len(blocks)
    for number, line in enumerate(lines[-room:] if room > 0 else []):
        blocks.append({**context([line]), "block_id": f"{OUTCOME_BLOCK}_{number}"})
    return finish(message.text, blocks)


def outcome_line(outcome: Mapping[str, Any]) -> str:
    """One recorded outcome in words: what, who, when, and the reason and note when given."""
    emoji, what = _LINES.get(
        outcome["outcome"], ("•", str(outcome["outcome"]).replace("_", " ").capitalize())
    )
    line = f"{emoji} {what} by {_who(outcome)} at {_when(outcome['created_at'])}"
    if outcome.get("reason_code"):
        line += f" · reason: {escape(REASONS.get(outcome['reason_code'], str(outcome['reason_code'])))}"
    if outcome.get("note"):
        line += f" · “{escape(clip(' '.join(str(outcome['note']).split()), 500))}”"
    return line


def slack_actor(user: Mapping[str, Any]) -> str:
    """Who clicked, as stored: the Slack user id first (it never changes), then the name then shown."""
    user_id = str(user.get("id") or "unknown")
    name = user.get("username") or user.get("name")
    return f"{user_id} ({name})" if name else user_id


def _who(outcome: Mapping[str, Any]) -> str:
    actor = str(outcome.get("actor") or "someone")
    if outcome.get("source") == "slack":
        return f"<@{actor.split(' ', 1)[0]}>"
    return f"{escape(actor)} (via the API)"


def _when(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC on {moment.day} {moment:%b}"


def _without_feedback_buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for block in blocks:
        if block.get("type") == "actions":
            elements = [e for e in block.get("elements") or [] if e.get("action_id") not in FEEDBACK_ACTIONS]
            if not elements:
                continue
            block = {**block, "elements": elements}
        kept.append(block)
    return kept
