"""Slack interactivity: a rep's clicks on an alert's buttons, and the reason forms they open.

Slack gives an interaction three seconds. The request only checks Slack's signature and records the
outcome; opening a form and updating the alert's message are Slack Web API calls made after the answer
has gone (background tasks), so a slow Slack never makes a click time out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from churn.clock import utc_now
from churn.db import WRITES
from churn.errors import UserFacingError
from churn.tables import alerts
from serving.api.errors import ERROR_SCHEMA, ApiError
from serving.feedback import Outcome, OutcomeSource, record_outcome
from serving.slack_replies import open_reason_form, show_outcomes
from serving.slack_views import (
    BUTTON_OUTCOMES,
    CALLBACK_OUTCOMES,
    CLOSING,
    form_answers,
    form_problem,
    problem_block,
    slack_actor,
)

router = APIRouter()
log = logging.getLogger(__name__)

MAX_AGE_S = 5 * 60  # Slack's advice: refuse older requests, they may be replays

_FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"payload": {"type": "string", "description": "Slack's JSON payload"}},
                    "required": ["payload"],
                }
            }
        },
    }
}


@router.post(
    "/slack/interactions",
    tags=["slack"],
    summary="Slack's interactivity requests: the alert buttons and the reason forms they open.",
    description=(
        "Set this URL as the Slack app's Request URL (Interactivity & Shortcuts). Requests must carry "
        "Slack's signature (`X-Slack-Signature`, `X-Slack-Request-Timestamp`, checked with "
        "SLACK_SIGNING_SECRET) and be at most five minutes old. Answers 200 with an empty body, or with "
        "`response_action: errors` for a form that needs fixing."
    ),
    responses={
        200: {
            "description": "Slack's acknowledgement: empty, or a form's field errors",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        400: ERROR_SCHEMA,
        401: ERROR_SCHEMA,
        503: ERROR_SCHEMA,
    },
    openapi_extra=_FORM_BODY,
)
async def slack_interactions(request: Request, background: BackgroundTasks) -> Response:
    # The signature covers the exact bytes Slack sent: read them before anything parses the form.
    body = await request.body()
    verify_signature(request, body)
    payload = _payload(body)
    kind = payload.get("type")
    if kind == "block_actions":
        await run_in_threadpool(_block_actions, request.app, payload, background)
        return Response(status_code=200)
    if kind == "view_submission":
        return await run_in_threadpool(_form_submitted, request.app, payload, background)
    log.info("Slack interaction of type %r ignored: nothing here handles it", kind)
    return Response(status_code=200)


def verify_signature(request: Request, body: bytes) -> None:
    """Refuse a request Slack did not sign with our signing secret, or one signed over five minutes ago."""
    secret = request.app.state.settings.slack_signing_secret
    if secret is None or not secret.get_secret_value().strip():
        raise ApiError(
            503, "Slack interactivity is off: set SLACK_SIGNING_SECRET (the Slack app's signing secret)"
        )
    signature = request.headers.get("X-Slack-Signature")
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    if not signature or not timestamp:
        raise ApiError(
            401, "not signed by Slack: X-Slack-Signature and X-Slack-Request-Timestamp are required"
        )
    if not (signature.isascii() and timestamp.isascii()):  # compare_digest refuses non-ASCII text
        raise ApiError(401, "the Slack signature does not match this request (not ASCII)")
    verifier = SignatureVerifier(secret.get_secret_value())
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise ApiError(401, "X-Slack-Request-Timestamp is not a Unix time") from None
    if abs(verifier.clock.now() - sent_at) > MAX_AGE_S:
        raise ApiError(401, "the Slack request is more than five minutes old (refused as a possible replay)")
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise ApiError(
            401, "the Slack signature does not match this request (wrong signing secret or altered body)"
        )


def _payload(body: bytes) -> dict[str, Any]:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        raise ApiError(400, "expected a form with a `payload` field holding Slack's JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "the `payload` field is not a JSON object")
    return payload


# --- the buttons ------------------------------------------------------------------------------------


def _block_actions(app: FastAPI, payload: dict[str, Any], background: BackgroundTasks) -> None:
    user = _mapping(payload.get("user"))
    for action in payload.get("actions") or []:
        action = _mapping(action)
        action_id = action.get("action_id")
        outcome = BUTTON_OUTCOMES.get(str(action_id))
        if outcome is None:
            # A link button (Open in CRM) reports its click too: there is nothing to record.
            log.info("Slack action %r ignored: not an alert feedback button", action_id)
            continue
        alert = _button_alert(app.state.engine, action.get("value"), action_id)
        if alert is None:
            continue
        container = _mapping(payload.get("container"))
        where = _message_of(container.get("channel_id"), container.get("message_ts"), alert)
        if outcome in CLOSING:
            trigger_id = payload.get("trigger_id")
            if not trigger_id:
                log.warning(
                    "Slack action %s on alert %s has no trigger_id: no form", action_id, alert["alert_id"]
                )
                continue
            background.add_task(
                open_reason_form, app.state.settings, app.state.config, str(trigger_id), outcome, alert, where
            )
            continue
        # Slack stamps each click: a retried delivery of the same click carries the same action_ts.
        action_ts = action.get("action_ts")
        request_key = f"slack:{action_ts}:{user.get('id')}:{alert['alert_id']}" if action_ts else None
        try:
            _record(app.state.engine, alert["alert_id"], outcome, user, request_key=request_key)
        except UserFacingError as exc:
            log.warning("Slack action %s on alert %s not recorded: %s", action_id, alert["alert_id"], exc)
            continue
        background.add_task(_show_outcomes, app, alert["alert_id"], where)


def _button_alert(engine: Engine, value: object, action_id: object) -> dict[str, Any] | None:
    """The alert a button names (its value is ``{"alert_id": N, "customer_id": "..."}``), or None."""
    try:
        named = json.loads(str(value))
        alert_id = int(named["alert_id"])
    except (TypeError, ValueError, KeyError):
        log.warning("Slack action %s ignored: its value %r does not name an alert", action_id, value)
        return None
    alert = _alert(engine, alert_id)
    if alert is None:
        log.warning("Slack action %s ignored: there is no alert %s in this database", action_id, alert_id)
        return None
    if named.get("customer_id") not in (None, alert["customer_id"]):
        # Another installation's message (a staging database behind the same Slack app, say).
        log.warning(
            "Slack action %s ignored: alert %s is about customer %s here, not %s",
            action_id,
            alert_id,
            alert["customer_id"],
            named.get("customer_id"),
        )
        return None
    return alert


def _message_of(channel: object, ts: object, alert: Mapping[str, Any]) -> dict[str, str] | None:
    """The Slack message the click came from, else the one the dispatcher recorded for the alert."""
    if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return {"channel": channel, "ts": ts}
    if alert.get("slack_channel") and alert.get("slack_ts"):
        return {"channel": str(alert["slack_channel"]), "ts": str(alert["slack_ts"])}
    return None


# --- the reason forms -------------------------------------------------------------------------------


def _form_submitted(app: FastAPI, payload: dict[str, Any], background: BackgroundTasks) -> Response:
    view = _mapping(payload.get("view"))
    outcome = CALLBACK_OUTCOMES.get(str(view.get("callback_id")))
    if outcome is None:
        log.info("Slack form %r ignored: not an alert reason form", view.get("callback_id"))
        return Response(status_code=200)
    try:
        metadata = _mapping(json.loads(str(view.get("private_metadata") or "")))
        alert_id = int(metadata["alert_id"])
    except (TypeError, ValueError, KeyError):
        raise ApiError(400, "the form's private_metadata does not name an alert") from None
    reason_code, note = form_answers(view)
    problem = form_problem(outcome, reason_code)
    alert = _alert(app.state.engine, alert_id)
    if alert is None:
        log.warning("Slack form for alert %s not recorded: there is no such alert in this database", alert_id)
        problem = problem or "This alert is not in the churn-risk database any more."
    if problem:
        return _form_errors(outcome, problem)
    user = _mapping(payload.get("user"))
    # One form is submitted once: its view id keys the outcome, so a resent submission lands once.
    request_key = f"slack:{view.get('id')}:{user.get('id')}:{alert_id}"
    try:
        _record(
            app.state.engine,
            alert_id,
            outcome,
            user,
            request_key=request_key,
            reason_code=reason_code if outcome == Outcome.CHURNING else None,
            note=note,
        )
    except UserFacingError as exc:
        return _form_errors(outcome, str(exc))
    where = _mapping(metadata.get("message"))
    background.add_task(
        _show_outcomes, app, alert_id, _message_of(where.get("channel"), where.get("ts"), alert)
    )
    return Response(status_code=200)


def _form_errors(outcome: Outcome, problem: str) -> JSONResponse:
    """Keep the form open with the problem shown next to its field (Slack's ``response_action``)."""
    return JSONResponse({"response_action": "errors", "errors": {problem_block(outcome): problem}})


# --- storage -------------------------------------------------------------------------------------------


def _record(
    engine: Engine,
    alert_id: int,
    outcome: Outcome,
    user: Mapping[str, Any],
    *,
    request_key: str | None,
    reason_code: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        return record_outcome(
            connection,
            alert_id=alert_id,
            outcome=outcome.value,
            actor=slack_actor(user),
            source=OutcomeSource.SLACK,
            reason_code=reason_code,
            note=note,
            request_key=request_key,
            now=utc_now(),
        )


def _alert(engine: Engine, alert_id: int) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(select(alerts).where(alerts.c.alert_id == alert_id)).first()
    return dict(row._mapping) if row is not None else None


def _show_outcomes(app: FastAPI, alert_id: int, where: dict[str, str] | None) -> None:
    show_outcomes(app.state.engine, app.state.settings, app.state.config, alert_id, where)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
