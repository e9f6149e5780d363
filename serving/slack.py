"""The edge to Slack: the bot (Web API), an incoming webhook, or the console when neither is set up.

Each sink posts one message and says, when it can, whether a message for an alert is already in a
channel (the dispatcher asks before re-sending an alert whose earlier attempt may have landed).
Failures come out as :class:`DeliveryError` with a scope the dispatcher acts on: retry the alert
later, give up on this alert, or stop the pass because Slack refuses the credentials.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.error import URLError

from rich.console import Console
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from churn.config import ProductConfig
from churn.settings import Settings
from churn.tables import slack_users
from serving.message import Owner, console_rendering, slack_message

EVENT_TYPE = "churn_alert"  # message metadata that marks our posts and carries the alert_id
# A request that fails is not retried inside it (the dispatcher tries the alert again in the pass and
# keeps serving other channels meanwhile), except a lookup or history read told to wait by a 429.
RATE_LIMIT_RETRIES = 2
POST_METHOD = "chat.postMessage"
HISTORY_PAGES = 10  # how far back (x200 messages) to look for an earlier post of an alert

# The bot token itself is refused (or lacks a permission every message needs): no alert can go out.
TOKEN_ERRORS = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
    "no_permission",
    "team_access_not_granted",
    "invalid_token",  # webhook
    "no_service",  # webhook removed
    "no_team",  # webhook
}
# This alert cannot go out as it is: the channel or the message itself is wrong.
ALERT_ERRORS = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "channel_is_archived",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "restricted_action",
    "action_prohibited",
    "posting_to_general_channel_denied",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "metadata_too_large",
}
ALERT_HINTS = {
    "channel_not_found": "the bot cannot see this channel: check alerts.channels in the config",
    "not_in_channel": "invite the bot to the channel (/invite @bot)",
    "is_archived": "the channel is archived: point alerts.channels at another",
    "channel_is_archived": "the channel is archived: point alerts.channels at another",
    "invalid_blocks": "Slack refused the message layout",
    "msg_too_long": "the message is too long for Slack",
}


class Scope(StrEnum):
    RETRY = "retry"  # Slack or the network is having trouble: try this alert again later
    ALERT = "alert"  # this alert cannot be sent as it is (channel, message): keep it, say why
    TOKEN = "token"  # the credentials are refused: stop the pass, every alert stays queued


class DeliveryError(Exception):
    """A send that did not happen, with the Slack error code and what to do about it."""

    def __init__(self, scope: Scope, code: str, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.scope = scope
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s  # a 429: Slack took nothing and says when to post again


@dataclass(frozen=True)
class Posted:
    """Where a message landed: the Slack channel id and message ts (none for console and webhook)."""

    channel: str
    ts: str | None


class Sink(Protocol):
    """Somewhere alerts are delivered to."""

    name: str
    can_look_up: bool  # can resolve owners' e-mails to Slack users
    can_reconcile: bool  # can tell whether an alert was already posted

    def post(self, target: str, alert: Mapping[str, Any], owner: Owner) -> Posted: ...

    def find_posted(self, target: str, alert_id: int, since: datetime) -> Posted | None: ...

    def lookup_user(self, email: str) -> str | None: ...


class _RateLimitUnlessPosting(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits Retry-After), except for posts: the dispatcher paces each channel."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.split("?", 1)[0].endswith("/" + POST_METHOD):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def retry_handlers() -> list[RetryHandler]:
    """Only a 429 on a lookup or history read is retried in the request; the dispatcher retries the rest."""
    return [_RateLimitUnlessPosting(max_retry_count=RATE_LIMIT_RETRIES)]


def _retry_after_s(headers: Mapping[str, Any] | None) -> float:
    """Slack's Retry-After in seconds (1 when it is missing or unreadable)."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return 1.0


def open_sink(settings: Settings, config: ProductConfig, *, console: Console | None = None) -> Sink:
    """The bot when SLACK_BOT_TOKEN is set, else the incoming webhook, else the console."""
    timeout_s = config.alerts.delivery.timeout_s
    if settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value():
        return SlackSink(
            settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout_s=timeout_s
        )
    webhook = settings.slack_webhook_url
    if webhook is not None and webhook.get_secret_value():
        return WebhookSink(webhook.get_secret_value(), timeout_s=timeout_s)
    return ConsoleSink(console or Console())


def sending_error(exc: Exception, what: str) -> DeliveryError:
    """Classify a failed Slack call: retry later, give up on the alert, or stop (bad credentials)."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error") or f"HTTP {status}")
        if code in TOKEN_ERRORS:
            needed = data.get("needed")
            extra = f" (needs scope {needed})" if needed else ""
            return DeliveryError(Scope.TOKEN, code, f"Slack rejected the bot token ({code}){extra}")
        if code in ALERT_ERRORS:
            hint = ALERT_HINTS.get(code)
            return DeliveryError(Scope.ALERT, code, f"{what}: {code}" + (f" ({hint})" if hint else ""))
        if status == 429 or code == "ratelimited":
            wait_s = _retry_after_s(exc.response.headers)
            return DeliveryError(
                Scope.RETRY,
                "ratelimited",
                f"{what}: Slack rate limit (429, retry after {wait_s:g} s)",
                retry_after_s=wait_s,
            )
        if status >= 500:
            return DeliveryError(Scope.RETRY, f"HTTP {status}", f"{what}: Slack server error {status}")
        return DeliveryError(Scope.RETRY, code, f"{what}: Slack answered {code}")
    if isinstance(exc, TimeoutError):
        return DeliveryError(Scope.RETRY, "timeout", f"{what}: no answer from Slack in time")
    if isinstance(exc, URLError | ConnectionError | http.client.HTTPException | OSError | SlackClientError):
        reason = getattr(exc, "reason", None) or exc
        return DeliveryError(Scope.RETRY, "connection", f"{what}: cannot reach Slack ({reason})")
    raise exc


class SlackSink:
    """The bot: chat.postMessage with the alert_id in the message metadata."""

    name = "slack"
    can_look_up = True
    can_reconcile = True

    def __init__(self, token: str, *, base_url: str, timeout_s: float) -> None:
        self.client = WebClient(
            token=token,
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            timeout=int(max(1, round(timeout_s))),
            retry_handlers=retry_handlers(),
        )
        self._channel_ids: dict[str, str] = {}

    def post(self, target: str, alert: Mapping[str, Any], owner: Owner) -> Posted:
        message = slack_message(alert, owner)
        try:
            response = self.client.chat_postMessage(
                channel=target,
                text=message.text,
                blocks=message.blocks,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"alert_id": alert["alert_id"]}},
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            raise sending_error(exc, f"channel {target}") from exc
        channel = str(response["channel"])
        self._channel_ids.setdefault(target, channel)
        return Posted(channel, str(response["ts"]))

    def find_posted(self, target: str, alert_id: int, since: datetime) -> Posted | None:
        what = f"checking channel {target} for alert {alert_id}"
        try:
            channel = self._channel_id(target)
            if channel is None:
                return None
            pages = self.client.conversations_history(
                channel=channel, oldest=f"{since.timestamp():.6f}", include_all_metadata=True, limit=200
            )
            for number, page in enumerate(pages):
                for message in page.get("messages") or []:
                    metadata = message.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if metadata.get("event_type") == EVENT_TYPE and payload.get("alert_id") == alert_id:
                        return Posted(channel, str(message["ts"]))
                if number + 1 >= HISTORY_PAGES:
                    break
        except Exception as exc:
            error = sending_error(exc, what)
            if error.code in ("channel_not_found", "not_in_channel"):
                return None  # nothing can be there: the send will name the problem
            raise error from exc
        return None

    def lookup_user(self, email: str) -> str | None:
        try:
            response = self.client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if data.get("error") == "users_not_found":
                return None
            raise sending_error(exc, f"looking up the owner {email}") from exc
        except Exception as exc:
            raise sending_error(exc, f"looking up the owner {email}") from exc
        user = response.get("user") or {}
        return str(user["id"]) if user.get("id") else None

    def _channel_id(self, target: str) -> str | None:
        """Channel ids pass through; a #name is looked up once (conversations.history needs the id)."""
        if not target.startswith("#"):
            return target
        if target not in self._channel_ids:
            for channel in self._channels():
                self._channel_ids.setdefault(f"#{channel['name']}", channel["id"])
        return self._channel_ids.get(target)

    def _channels(self) -> Iterator[dict[str, Any]]:
        pages = self.client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=1000
        )
        for page in pages:
            yield from page.get("channels") or []


@dataclass
class WebhookSink:
    """An incoming webhook: one fixed channel, no owner lookup, no way to look for earlier posts."""

    url: str
    timeout_s: float
    name: str = "webhook"
    can_look_up: bool = False
    can_reconcile: bool = False
    client: WebhookClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = WebhookClient(
            self.url, timeout=int(max(1, round(self.timeout_s))), retry_handlers=retry_handlers()
        )

    def post(self, target: str, alert: Mapping[str, Any], owner: Owner) -> Posted:
        message = slack_message(alert, owner)
        try:
            response = self.client.send(text=message.text, blocks=message.blocks)
        except Exception as exc:
            raise sending_error(exc, "the incoming webhook") from exc
        if response.status_code == 200:
            return Posted("webhook", None)
        code = (response.body or f"HTTP {response.status_code}").strip()
        if code in TOKEN_ERRORS or (response.status_code in (401, 403, 404) and code not in ALERT_ERRORS):
            raise DeliveryError(Scope.TOKEN, code, f"Slack rejected the incoming webhook ({code})")
        if code in ALERT_ERRORS:
            raise DeliveryError(Scope.ALERT, code, f"the incoming webhook: {code}")
        if response.status_code == 429:
            wait_s = _retry_after_s(response.headers)
            raise DeliveryError(
                Scope.RETRY,
                "ratelimited",
                f"the incoming webhook: Slack rate limit (429, retry after {wait_s:g} s)",
                retry_after_s=wait_s,
            )
        raise DeliveryError(Scope.RETRY, code, f"the incoming webhook answered {response.status_code} {code}")

    def find_posted(self, target: str, alert_id: int, since: datetime) -> Posted | None:
        return None

    def lookup_user(self, email: str) -> str | None:
        return None


@dataclass
class ConsoleSink:
    """No Slack configured (the embedded default): print each alert readably."""

    console: Console
    name: str = "console"
    can_look_up: bool = False
    can_reconcile: bool = False

    def post(self, target: str, alert: Mapping[str, Any], owner: Owner) -> Posted:
        self.console.print(console_rendering(alert, owner))
        return Posted("console", None)

    def find_posted(self, target: str, alert_id: int, since: datetime) -> Posted | None:
        return None

    def lookup_user(self, email: str) -> str | None:
        return None


def lookup_owner(engine: Engine, sink: Sink, email: str | None, *, now: datetime, cache_days: int) -> Owner:
    """The owner's Slack user, from the slack_users cache when fresh, else asked of Slack and cached."""
    if not email or not sink.can_look_up:
        return Owner(email)
    with engine.connect() as connection:
        query = select(slack_users.c.slack_user_id, slack_users.c.looked_up_at)
        cached = connection.execute(query.where(slack_users.c.email == email)).first()
    if cached is not None and cached.looked_up_at > now - timedelta(days=cache_days):
        return Owner(email, cached.slack_user_id, looked_up=True)
    user_id = sink.lookup_user(email)
    _cache_user(engine, email, user_id, now)
    return Owner(email, user_id, looked_up=True)


def _cache_user(engine: Engine, email: str, user_id: str | None, now: datetime) -> None:
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(slack_users).values(email=email, slack_user_id=user_id, looked_up_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[slack_users.c.email],
        set_={
            "slack_user_id": statement.excluded.slack_user_id,
            "looked_up_at": statement.excluded.looked_up_at,
        },
    )
    with engine.begin() as connection:
        connection.execute(statement)
