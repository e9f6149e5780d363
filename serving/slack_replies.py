"""Replies to a rep's click in Slack: the reason form it opens, and the alert message showing outcomes.

Run after the interaction has been answered (Slack gives it three seconds), so every failure here is
logged, never raised: the outcome is already recorded, and the next click shows it anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Connection, Engine, select

from churn.config import ProductConfig
from churn.settings import Settings
from churn.tables import alerts, slack_users
from serving.feedback import Outcome, list_outcomes
from serving.message import Owner
from serving.slack import EVENT_TYPE, retry_handlers
from serving.slack_views import alert_with_outcomes, reason_form

log = logging.getLogger(__name__)


def open_reason_form(
    settings: Settings,
    config: ProductConfig,
    trigger_id: str,
    outcome: Outcome,
    alert: Mapping[str, Any],
    where: dict[str, str] | None,
) -> None:
    """Open the form asking why (``where`` is the alert's message, handed back when the form is sent)."""
    client = _client(settings, config, f"open the reason form for alert {alert['alert_id']}")
    if client is None:
        return
    facts = alert.get("message") or {}
    account = str(facts.get("name") or alert.get("customer_id") or f"alert {alert['alert_id']}")
    view = reason_form(outcome, account=account, metadata={"alert_id": alert["alert_id"], "message": where})
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except Exception as exc:
        log.warning("could not open the reason form for alert %s: %s", alert["alert_id"], _why(exc))


def show_outcomes(
    engine: Engine, settings: Settings, config: ProductConfig, alert_id: int, where: dict[str, str] | None
) -> None:
    """Show the alert's outcomes on its Slack message (rebuilt from the database, see slack_views)."""
    if where is None:
        log.warning("alert %s's Slack message is not known: it is not updated", alert_id)
        return
    client = _client(settings, config, f"update alert {alert_id}'s message")
    if client is None:
        return
    with engine.connect() as connection:
        row = connection.execute(select(alerts).where(alerts.c.alert_id == alert_id)).first()
        if row is None:
            return
        alert = dict(row._mapping)
        outcomes = list_outcomes(connection, alert_id)
        owner = _owner(connection, alert)
    message = alert_with_outcomes(alert, owner, outcomes)
    try:
        client.chat_update(
            channel=where["channel"],
            ts=where["ts"],
            text=message.text,
            blocks=message.blocks,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"alert_id": alert_id}},
        )
    except Exception as exc:
        log.warning("could not update alert %s's message in Slack: %s", alert_id, _why(exc))


def _owner(connection: Connection, alert: Mapping[str, Any]) -> Owner:
    """The owner as the dispatcher showed them: a mention when Slack knew their e-mail."""
    email = alert.get("owner_email") or (alert.get("message") or {}).get("owner_email")
    if not email:
        return Owner(None)
    row = connection.execute(select(slack_users.c.slack_user_id).where(slack_users.c.email == email)).first()
    if row is None:
        return Owner(email)
    return Owner(email, row.slack_user_id, looked_up=True)


def _client(settings: Settings, config: ProductConfig, what: str) -> WebClient | None:
    token = settings.slack_bot_token
    if token is None or not token.get_secret_value():
        log.warning("cannot %s: SLACK_BOT_TOKEN is not set", what)
        return None
    base_url = settings.slack_api_url
    return WebClient(
        token=token.get_secret_value(),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=int(max(1, round(config.alerts.delivery.timeout_s))),
        retry_handlers=retry_handlers(),
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        return f"Slack answered {data.get('error') or exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}"
