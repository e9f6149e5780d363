"""A fake Slack Web API server for tests: a real HTTP server on 127.0.0.1 that the real slack_sdk talks to.

It speaks the methods the product uses (chat.postMessage, chat.update, views.open,
users.lookupByEmail, conversations.history, conversations.list, auth.test) with form, query or JSON
bodies as slack_sdk sends them, checks the bearer token, records every posted message, update and
opened modal, and can be told to misbehave: answer 429 with Retry-After,
500/503, a Slack error code (for one method or one channel's posts, and even after taking the message),
limit each channel to one message a second, fail a random share of requests, or wait after recording a
message before answering (so a dispatcher can be killed between Slack accepting a message and it being
marked sent). Like Slack's, the per-channel limit counts only the messages it accepted: a request
answered 5xx, 429 or a Slack error does not use up the channel's second. Like Slack, it refuses blocks outside Block Kit's
limits (``invalid_blocks``) and text over 40,000 characters (``msg_too_long``). ``hold`` makes every
request wait until a test lets it through.

Use the ``fake_slack`` fixture (registered for every test by ``tests/conftest.py``), or
``FakeSlack()`` as a context manager.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

TOKEN = "xoxb-test-token"
CHANNELS = {"C0CSALERTS": "cs-alerts", "C0ENTERPRS": "cs-enterprise", "C0OPS00001": "ops"}
USERS = {"csm@example.com": "U0CSM00001", "ana@example.com": "U0ANA00001"}


@dataclass
class Posted:
    """One message the fake accepted."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    received_at: float  # time.monotonic() when it arrived

    @property
    def alert_id(self) -> int | None:
        payload = (self.metadata or {}).get("event_payload") or {}
        return payload.get("alert_id")


@dataclass
class Failure:
    """A canned answer: an HTTP status with headers, or a 200 with ``{"ok": false, "error": ...}``."""

    status: int = 200
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None  # only for this method; None: the next request of any method
    channel: str | None = None  # only for posts to this channel (id or #name)
    accepted: bool = False  # a post: keep the message (as Slack sometimes does), then answer this


class FakeSlack:
    """The fake server's state, and the knobs tests turn."""

    def __init__(self, *, token: str = TOKEN, seed: int = 1) -> None:
        self.token = token
        self.channels: dict[str, str] = dict(CHANNELS)  # id -> name
        self.archived: set[str] = set()
        self.users: dict[str, str] = dict(USERS)  # e-mail -> user id
        self.messages: list[Posted] = []
        self.views: list[dict[str, Any]] = []  # views.open: {"trigger_id": ..., "view": {...}}
        self.updates: list[Posted] = []  # chat.update: each message as it was updated, in order
        self.calls: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()
        self.rate_limited: list[str] = []  # channel ids answered 429 by the per-channel limit
        self.failures: list[Failure] = []
        self.per_channel_interval_s: float | None = None
        self.server_error_share = 0.0
        self.delay_s = 0.0  # before handling any request
        self.delay_after_post_s = 0.0  # after recording a message, before answering
        self.hold: threading.Event | None = None  # when given, every request waits for it to be set
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._last_post: dict[str, float] = {}
        self._last_ts = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- knobs ---

    def fail_next(self, *failures: Failure) -> None:
        """Answer the next requests (of the failure's method, if it names one) with these, in order."""
        with self._lock:
            self.failures.extend(failures)

    def limit_per_channel(self, interval_s: float = 1.0) -> None:
        """Like Slack: a message to a channel within ``interval_s`` of the last one it accepted gets 429."""
        self.per_channel_interval_s = interval_s

    def alert_ids(self) -> list[int | None]:
        with self._lock:
            return [m.alert_id for m in self.messages]

    def channel_id(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        name = channel.removeprefix("#")
        return next((cid for cid, known in self.channels.items() if known == name), None)

    # --- the API ---

    def handle(self, method: str, token: str | None, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.hold is not None:
            self.hold.wait(timeout=60)
        with self._lock:
            self.calls[method] += 1
            canned = next((f for f in self.failures if self._applies(f, method, args)), None)
            if canned is not None:
                self.failures.remove(canned)
            elif self.server_error_share and self._random.random() < self.server_error_share:
                return self._random.choice([500, 503]), {}, {"ok": False, "error": "internal_error"}
        if canned is not None:
            if canned.accepted and method == "chat.postMessage":
                self._chat_postMessage(args)
            if canned.status != 200:
                return canned.status, canned.headers, {"ok": False, "error": canned.error or "fatal_error"}
            return 200, canned.headers, {"ok": False, "error": canned.error}
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token != self.token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        return handler(args)

    def _applies(self, failure: Failure, method: str, args: dict[str, Any]) -> bool:
        if failure.method not in (None, method):
            return False
        if failure.channel is None:
            return True
        wanted = self.channel_id(failure.channel)
        return method == "chat.postMessage" and self.channel_id(str(args.get("channel", ""))) == wanted

    def _auth_test(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"ok": True, "team": "Test", "user": "churnbot", "user_id": "U0BOT00001"}

    def _users_lookupByEmail(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        email = str(args.get("email", ""))
        with self._lock:
            self.lookups[email] += 1
        if email not in self.users:
            return 200, {}, {"ok": False, "error": "users_not_found"}
        return 200, {}, {"ok": True, "user": {"id": self.users[email], "profile": {"email": email}}}

    def _conversations_list(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        channels = [
            {"id": cid, "name": name, "is_archived": cid in self.archived}
            for cid, name in self.channels.items()
        ]
        return 200, {}, {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def _conversations_history(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        channel = str(args.get("channel", ""))
        if channel not in self.channels:  # Slack wants the id here, not a #name
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        offset = int(args.get("cursor") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [m for m in reversed(self.messages) if m.channel == channel and float(m.ts) > oldest]
        page = found[offset : offset + limit]
        messages = []
        for m in page:
            message: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if with_metadata and m.metadata:
                message["metadata"] = m.metadata
            messages.append(message)
        more = offset + limit < len(found)
        cursor = str(offset + limit) if more else ""
        return (
            200,
            {},
            {
                "ok": True,
                "messages": messages,
                "has_more": more,
                "response_metadata": {"next_cursor": cursor},
            },
        )

    def _chat_postMessage(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        channel = self.channel_id(str(args.get("channel", "")))
        if channel is None:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if channel in self.archived:
            return 200, {}, {"ok": False, "error": "is_archived"}
        text = args.get("text") or ""
        blocks = _parsed(args.get("blocks")) or []
        metadata = _parsed(args.get("metadata"))
        if len(text) > 40_000:
            return 200, {}, {"ok": False, "error": "msg_too_long"}
        problem = block_problem(blocks)
        if problem:
            return 200, {}, {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        if not text and not blocks:
            return 200, {}, {"ok": False, "error": "no_text"}
        with self._lock:
            now = time.monotonic()
            last = self._last_post.get(channel)
            if self.per_channel_interval_s and last is not None and now - last < self.per_channel_interval_s:
                self.rate_limited.append(channel)
                return 429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}
            self._last_post[channel] = now
            self._last_ts = max(time.time(), self._last_ts + 0.000001)
            ts = f"{self._last_ts:.6f}"
            self.messages.append(Posted(channel, ts, text, blocks, metadata, now))
        if self.delay_after_post_s:
            time.sleep(self.delay_after_post_s)
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": {"text": text, "ts": ts}}

    def _chat_update(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if channel not in self.channels:  # Slack wants the id here, not a #name
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        text = args.get("text") or ""
        blocks = _parsed(args.get("blocks"))
        if len(text) > 40_000:
            return 200, {}, {"ok": False, "error": "msg_too_long"}
        problem = block_problem(blocks) if blocks is not None else None
        if problem:
            return 200, {}, {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        with self._lock:
            message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
            if message is None:
                return 200, {}, {"ok": False, "error": "message_not_found"}
            message.text = text or message.text
            if blocks is not None:
                message.blocks = blocks
            metadata = _parsed(args.get("metadata"))
            if metadata:
                message.metadata = metadata
            self.updates.append(
                Posted(channel, ts, message.text, list(message.blocks), message.metadata, time.monotonic())
            )
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "text": message.text}

    def _views_open(self, args: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        trigger_id = args.get("trigger_id")
        view = _parsed(args.get("view"))
        if not trigger_id:
            return 200, {}, {"ok": False, "error": "invalid_arguments"}
        problem = view_problem(view)
        if problem:
            return (
                200,
                {},
                {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [problem]}},
            )
        with self._lock:
            view_id = f"V{len(self.views) + 1:09d}"
            self.views.append({"trigger_id": trigger_id, "view": view, "id": view_id})
        return 200, {}, {"ok": True, "view": {**view, "id": view_id}}


def view_problem(view: Any) -> str | None:
    """What breaks a modal's limits (Slack answers invalid_arguments), or None."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return "view must be a modal"
    for part in ("title", "submit", "close"):
        if part == "title" or part in view:
            text = view.get(part) or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 24:
                return f"{part} must be plain_text of 1-24 characters"
    if len(view.get("private_metadata", "")) > 3000:
        return "private_metadata over 3000 characters"
    if len(view.get("callback_id", "")) > 255:
        return "callback_id over 255 characters"
    blocks = view.get("blocks") or []
    if not 0 < len(blocks) <= 100:
        return "a modal needs 1-100 blocks"
    for number, block in enumerate(blocks):
        if block.get("type") == "input":
            label = (block.get("label") or {}).get("text", "")
            if not 0 < len(label) <= 2000 or not isinstance(block.get("element"), dict):
                return f"block {number} (input): needs a label of 1-2000 characters and an element"
            options = block["element"].get("options")
            if options is not None and not 0 < len(options) <= 100:
                return f"block {number} (input): 1-100 options"
        else:
            problem = block_problem([block])
            if problem:
                return problem.replace("block 0", f"block {number}")
    return None


def _parsed(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def block_problem(blocks: Any) -> str | None:
    """What breaks Block Kit's limits in ``blocks`` (Slack answers invalid_blocks), or None."""
    if not isinstance(blocks, list):
        return "blocks must be a list"
    if len(blocks) > 50:
        return f"{len(blocks)} blocks, more than 50"
    for number, block in enumerate(blocks):
        where = f"block {number} ({block.get('type')})"
        kind = block.get("type")
        if kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                return f"{where}: header text must be plain_text of 1-150 characters"
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                return f"{where}: needs text or fields"
            if text is not None and not 0 < len(text.get("text", "")) <= 3000:
                return f"{where}: text must be 1-3000 characters"
            if fields is not None and (
                len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields)
            ):
                return f"{where}: at most 10 fields of at most 2000 characters"
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 25:
                return f"{where}: 1-25 elements"
            for element in elements:
                problem = _button_problem(element)
                if problem:
                    return f"{where}: {problem}"
        elif kind == "context":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 10:
                return f"{where}: 1-10 elements"
            if any(not 0 < len(e.get("text", "")) <= 3000 for e in elements):
                return f"{where}: element text must be 1-3000 characters"
        elif kind != "divider":
            return f"{where}: unknown block type"
    return None


def _button_problem(element: dict[str, Any]) -> str | None:
    if element.get("type") != "button":
        return f"unknown element {element.get('type')}"
    text = (element.get("text") or {}).get("text", "")
    if not 0 < len(text) <= 75:
        return "button text must be 1-75 characters"
    if len(element.get("value", "")) > 2000:
        return "button value over 2000 characters"
    if not 0 < len(element.get("action_id", "")) <= 255:
        return "action_id must be 1-255 characters"
    if len(element.get("url", "")) > 3000:
        return "url over 3000 characters"
    return None


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            method = parts.path.rsplit("/", 1)[-1]
            args: dict[str, Any] = dict(parse_qsl(parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            kind = self.headers.get("Content-Type", "")
            if body and kind.startswith("application/json"):
                args.update(json.loads(body))
            elif body:
                args.update(parse_qsl(body.decode("utf-8")))
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() or args.get("token")
            status, headers, payload = fake.handle(method, token, args)
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (a killed dispatcher)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack Web API on a random local port."""
    with FakeSlack() as fake:
        yield fake
