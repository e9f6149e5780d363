"""Sending the outbox: every pending alert becomes exactly one Slack message.

One pass claims due alerts (state ``sending`` with a lease), then sends them one by one, each marked
``sent`` in its own short transaction right after Slack accepts it. What makes it exactly once:

- a claim is a lease: a dispatcher that dies leaves its rows in ``sending`` until the lease lapses,
  then any dispatcher may claim them again;
- just before posting, the dispatcher renews its own claim (and fails to if another took the row), so
  two dispatchers never post the same alert;
- an alert tried before (a lapsed claim, a timeout, a 5xx, in an earlier pass or this one) may already
  be in Slack: the dispatcher looks for its ``alert_id`` in the channel's message metadata first, and
  only marks it sent if it is there.

Each channel has its own queue within the pass, served as the channel's one-message-a-second slot
comes free, so trouble in one channel does not hold up the others. A try that fails for a reason
worth retrying (5xx, timeout, 429) puts the alert back at the head of its channel's queue, for up to
``TRIES_PER_PASS`` tries; then it goes back to ``pending`` with exponential backoff. Permanent failures
(an unknown channel, a message Slack refuses) make the alert ``failed`` with the reason, and a refused
token stops the pass with every alert still queued.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import Connection, Engine, func, or_, select, update

from churn.clock import utc_now
from churn.config import DeliveryConfig, ProductConfig
from churn.db import WRITES
from churn.settings import Settings
from churn.tables import alerts
from serving.outbox import AlertKind, AlertState, claim_due, mark_sent, release_claim, renew_claim
from serving.score_store import forget_discarded
from serving.slack import DeliveryError, Scope, Sink, lookup_owner, open_sink

# Slack posts about one message per second per channel; faster bursts are answered with 429.
CHANNEL_INTERVAL_S = 1.0
# Tries of one alert within a pass; together they are one of its delivery.max_attempts.
TRIES_PER_PASS = 4
# A channel whose tries keep failing rests before the next: two failures in a row are retried at once
# (a lone 5xx is common and costs Slack nothing), the third and later wait 0.5 s, 1 s, then 2 s.
CHANNEL_PAUSE_AFTER = 3
CHANNEL_PAUSE_S = 0.5
CHANNEL_PAUSE_MAX_S = 2.0
# Between renewing a claim and marking the alert sent there is one post, not retried inside the request;
# the lease allows five of its timeouts and a margin, so a slow database cannot outlast it either.
LEASE_TIMEOUTS = 5
LEASE_MARGIN_S = 60.0


@dataclass
class DispatchSummary:
    """What one pass did: counts, time taken, and each problem in words."""

    sink: str
    sent: int = 0
    reconciled: int = 0  # already in Slack from an earlier attempt: marked sent, not posted again
    retried: int = 0  # back to pending, to be tried again later
    failed: int = 0  # gave up: needs a fix and `churn alerts retry`
    skipped: int = 0  # another dispatcher took the alert over
    stopped: str | None = None  # why the pass stopped early (Slack refused the token)
    kept: int = 0  # alerts still waiting to be sent when the pass ended
    retried_in_pass: int = 0  # failed tries given another go within the pass
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    sent_per_channel: dict[str, int] = field(default_factory=dict)

    @property
    def claimed(self) -> int:
        return self.sent + self.reconciled + self.retried + self.failed + self.skipped

    def __str__(self) -> str:
        told = (
            f"{self.sent} sent to {self.sink}, {self.reconciled} already there, {self.retried} to retry, "
            f"{self.failed} failed, {self.kept} still queued, in {self.seconds:.1f} s"
        )
        return told + (f"; stopped: {self.stopped}" if self.stopped else "")


def claim_lease_s(delivery: DeliveryConfig) -> float:
    """How long a claim lasts: several times the slowest post (its timeout), plus a margin."""
    return LEASE_MARGIN_S + delivery.timeout_s * LEASE_TIMEOUTS


def retry_delay_s(delivery: DeliveryConfig, attempts: int) -> float:
    """Exponential backoff: retry_base_s, doubling with each attempt made, at most retry_max_s."""
    return min(delivery.retry_max_s, delivery.retry_base_s * 2 ** max(0, attempts - 1))


def channel_pause_s(failures_in_a_row: int) -> float:
    """How long a channel rests after failed tries in a row: none after a few, then doubling to a cap."""
    if failures_in_a_row < CHANNEL_PAUSE_AFTER:
        return 0.0
    return min(CHANNEL_PAUSE_MAX_S, CHANNEL_PAUSE_S * 2 ** (failures_in_a_row - CHANNEL_PAUSE_AFTER))


def dispatch_pending(
    engine: Engine,
    settings: Settings,
    config: ProductConfig,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    console: Console | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    channel_interval_s: float = CHANNEL_INTERVAL_S,
) -> DispatchSummary:
    """Send the alerts that are due, once each; one pass of at most ``limit`` (delivery.batch_size) alerts."""
    sink = open_sink(settings, config, console=console)
    return _Pass(engine, sink, config, now or utc_now(), channel_interval_s).run(
        limit or config.alerts.delivery.batch_size, on_progress
    )


class _Pass:
    def __init__(self, engine: Engine, sink: Sink, config: ProductConfig, now: datetime, interval_s: float):
        self.engine = engine
        self.sink = sink
        self.config = config
        self.delivery = config.alerts.delivery
        self.lease = timedelta(seconds=claim_lease_s(self.delivery))
        self.summary = DispatchSummary(sink=sink.name)
        self.pacer = _Pacer(interval_s if sink.name != "console" else 0.0)
        self._started_at = now
        self._started = time.monotonic()

    def clock(self) -> datetime:
        """The pass's time: the given start moved on by the time the pass has taken."""
        return self._started_at + timedelta(seconds=time.monotonic() - self._started)

    def lane(self, row: dict[str, Any]) -> str:
        """The Slack channel an alert is queued for in the pass (its configured target)."""
        return self.config.alerts.channels.get(row["channel"], row["channel"])

    def run(self, limit: int, on_progress: Callable[[int, int], None] | None) -> DispatchSummary:
        with _writing(self.engine) as connection:
            now = self.clock()
            rows = claim_due(connection, now=now, claimed_until=now + self.lease, limit=limit)
        for row in rows:
            row["claimed_until"] = now + self.lease
            row["tries"] = 0  # in this pass
            row["maybe_posted"] = False  # a post of this pass failed in a way Slack may have taken it
        lanes = _Lanes(self.pacer)
        for row in rows:
            lanes.add(self.lane(row), row)
        done = 0
        try:
            while not self.summary.stopped and (turn := lanes.next()) is not None:
                lane, row = turn
                if self._try(lane, row, lanes):
                    done += 1
                    if on_progress is not None:
                        on_progress(done, len(rows))
        finally:
            # Alerts the pass did not get to (it stopped, or was interrupted) go back as they were.
            for row in lanes.drain():
                self._release(row, refund=not row["maybe_posted"])
            self.summary.kept = count_waiting(self.engine)
            self.summary.seconds = time.monotonic() - self._started
        return self.summary

    def _try(self, lane: str, row: dict[str, Any], lanes: _Lanes) -> bool:
        """One try of an alert; False when it went back on its channel's queue for another."""
        row["tries"] += 1
        try:
            self._deliver(row)
        except DeliveryError as error:
            if error.scope is Scope.RETRY:
                lanes.failed(lane)  # Slack or the network in trouble, not this alert
            if error.scope is Scope.RETRY and row["tries"] < TRIES_PER_PASS:
                lanes.put_back(lane, row)
                self.summary.retried_in_pass += 1
                return False
            self._failed(row, error)
            return True
        lanes.succeeded(lane)
        return True

    def _deliver(self, row: dict[str, Any]) -> None:
        alert_id = row["alert_id"]
        owner = lookup_owner(
            self.engine,
            self.sink,
            row["owner_email"] if row["kind"] != AlertKind.NOTICE else None,
            now=self.clock(),
            cache_days=self.delivery.owner_cache_days,
        )
        name = row["channel"]
        if owner.looked_up and owner.slack_user_id is None:
            name = self.config.alerts.fallback_channel  # the owner is unknown to Slack
        target = self.config.alerts.channels.get(name)
        if target is None:
            raise DeliveryError(
                Scope.ALERT,
                "unknown_channel_name",
                f"channel name {name!r} is not in alerts.channels "
                f"({', '.join(self.config.alerts.channels) or 'none'}): fix the config",
            )
        # A row that got as far as a post before (renew_claim records the target) may be in Slack
        # already, however its attempts were counted since (`churn alerts retry` starts them afresh).
        if (row["slack_channel"] is not None or row["maybe_posted"]) and self._already_posted(row, target):
            return
        self.pacer.wait(target)  # the fallback channel may differ from the queue's
        now = self.clock()
        until = now + self.lease
        with _writing(self.engine) as connection:
            held = renew_claim(
                connection,
                alert_id,
                claimed_until=row["claimed_until"],
                until=until,
                target=target,
                now=now,
            )
        if not held:
            self.summary.skipped += 1
            return
        row["claimed_until"] = until
        try:
            posted = self.sink.post(target, row, owner)
        except DeliveryError as error:
            if error.retry_after_s is not None:
                self.pacer.hold(target, error.retry_after_s)  # a 429: Slack took nothing
            elif error.scope is Scope.RETRY:
                row["maybe_posted"] = True  # a 5xx or a lost answer: Slack may have taken it
            raise
        self.pacer.accepted(target)
        with _writing(self.engine) as connection:
            mark_sent(connection, alert_id, channel=posted.channel, ts=posted.ts, now=self.clock())
        self.summary.sent += 1
        self.summary.sent_per_channel[target] = self.summary.sent_per_channel.get(target, 0) + 1

    def _already_posted(self, row: dict[str, Any], target: str) -> bool:
        """Whether an earlier attempt's message is in Slack; if so the alert is marked sent."""
        if not self.sink.can_reconcile:
            return False
        since = row["created_at"] - timedelta(minutes=5)
        for channel in dict.fromkeys(filter(None, [row.get("slack_channel"), target])):
            posted = self.sink.find_posted(channel, row["alert_id"], since)
            if posted is not None:
                with _writing(self.engine) as connection:
                    mark_sent(
                        connection, row["alert_id"], channel=posted.channel, ts=posted.ts, now=self.clock()
                    )
                self.pacer.accepted(target)  # it may have landed a moment ago, in this channel's slot
                self.summary.reconciled += 1
                return True
        return False

    def _failed(self, row: dict[str, Any], error: DeliveryError) -> None:
        alert_id, attempts = row["alert_id"], row["attempts"] + 1
        who = f"alert {alert_id}" + (f" ({row['customer_id']})" if row.get("customer_id") else "")
        now = self.clock()
        if error.scope is Scope.TOKEN:
            self.summary.stopped = error.detail
            # An alert whose post may have landed keeps the attempt, so the next pass looks first.
            self._release(row, refund=not row["maybe_posted"], error=error.detail)
            self.summary.errors.append(f"{who}: {error.detail}")
            return
        tries = f", {row['tries']} tries" if row["tries"] > 1 else ""
        if error.scope is Scope.ALERT or attempts >= self.delivery.max_attempts:
            state, when = AlertState.FAILED, now
            message = error.detail
            if error.scope is Scope.RETRY:
                message += f" (gave up after {attempts} attempts{tries})"
            self.summary.failed += 1
        else:
            state = AlertState.PENDING
            when = now + timedelta(seconds=retry_delay_s(self.delivery, attempts))
            message = f"{error.detail} (attempt {attempts} of {self.delivery.max_attempts}{tries})"
            self.summary.retried += 1
        with _writing(self.engine) as connection:
            release_claim(
                connection,
                alert_id,
                claimed_until=row["claimed_until"],
                state=state,
                next_attempt_at=when,
                error=message,
                now=now,
            )
        self.summary.errors.append(f"{who}: {message}")

    def _release(self, row: dict[str, Any], *, refund: bool, error: str | None = None) -> None:
        now = self.clock()
        with _writing(self.engine) as connection:
            release_claim(
                connection,
                row["alert_id"],
                claimed_until=row["claimed_until"],
                state=AlertState.PENDING,
                next_attempt_at=min(now, row["next_attempt_at"]),
                error=error,
                now=now,
                refund=refund,
            )


class _Pacer:
    """At most one message per channel per interval, counted from the last one Slack accepted.

    A failed post does not use the slot (Slack counts what it accepted); a 429 holds the channel for
    as long as Retry-After says, and failed tries in a row rest it (``channel_pause_s``).
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last: dict[str, float] = {}
        self.held_until: dict[str, float] = {}

    def free_at(self, channel: str) -> float:
        """When (time.monotonic) the channel may be posted to next."""
        last = self.last.get(channel)
        paced = last + self.interval_s if last is not None else float("-inf")
        return max(paced, self.held_until.get(channel, float("-inf")))

    def wait(self, channel: str) -> None:
        remaining = self.free_at(channel) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def accepted(self, channel: str) -> None:
        self.last[channel] = time.monotonic()

    def hold(self, channel: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.held_until[channel] = max(until, self.held_until.get(channel, float("-inf")))


class _Lanes:
    """The pass's alerts, one queue per channel, each served when its channel is free, earliest first."""

    def __init__(self, pacer: _Pacer) -> None:
        self.pacer = pacer
        self.queues: dict[str, deque[dict[str, Any]]] = {}  # in turn order: a served channel goes last
        self.failures: dict[str, int] = {}  # failed tries in a row, per channel

    def add(self, lane: str, row: dict[str, Any]) -> None:
        self.queues.setdefault(lane, deque()).append(row)

    def next(self) -> tuple[str, dict[str, Any]] | None:
        """The alert to try next, once its channel is free (waiting for it if none is)."""
        if not self.queues:
            return None
        lane = min(self.queues, key=self.pacer.free_at)  # ties: the channel served longest ago
        self.pacer.wait(lane)
        queue = self.queues.pop(lane)
        row = queue.popleft()
        if queue:
            self.queues[lane] = queue
        return lane, row

    def put_back(self, lane: str, row: dict[str, Any]) -> None:
        """Another try soon: at the head of its channel's queue, after the other channels' turns."""
        queue = self.queues.pop(lane, deque())
        queue.appendleft(row)
        self.queues[lane] = queue

    def failed(self, lane: str) -> None:
        self.failures[lane] = self.failures.get(lane, 0) + 1
        pause_s = channel_pause_s(self.failures[lane])
        if pause_s:
            self.pacer.hold(lane, pause_s)

    def succeeded(self, lane: str) -> None:
        self.failures.pop(lane, None)

    def drain(self) -> list[dict[str, Any]]:
        rows = [row for queue in self.queues.values() for row in queue]
        self.queues.clear()
        return rows


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        yield connection


def count_waiting(engine: Engine) -> int:
    """Alerts still to be sent: pending, or claimed by a dispatcher."""
    states = [AlertState.PENDING.value, AlertState.SENDING.value]
    with engine.connect() as connection:
        query = select(func.count()).select_from(alerts).where(alerts.c.state.in_(states))
        return int(connection.execute(query).scalar_one())


# --- What operators do with the outbox ---------------------------------------------------------------

LISTED_COLUMNS = (
    "alert_id",
    "kind",
    "customer_id",
    "as_of",
    "owner_email",
    "channel",
    "risk",
    "state",
    "state_reason",
    "attempts",
    "next_attempt_at",
    "last_error",
    "slack_channel",
    "slack_ts",
    "created_at",
    "sent_at",
)


def list_alerts(
    engine: Engine, *, states: Sequence[str] | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest alerts (optionally in some states), with where they are in delivery."""
    query = select(*(alerts.c[name] for name in LISTED_COLUMNS), alerts.c.message)
    if states:
        query = query.where(alerts.c.state.in_(list(states)))
    query = query.order_by(alerts.c.alert_id.desc()).limit(limit)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    for row in rows:
        facts = row.pop("message") or {}
        row["name"] = facts.get("name") or facts.get("title") or facts.get("owner_email")
    return rows


def alert_states(engine: Engine, alert_ids: Sequence[int]) -> dict[int, str]:
    """The state of each given alert that exists."""
    query = select(alerts.c.alert_id, alerts.c.state).where(alerts.c.alert_id.in_(list(alert_ids)))
    with engine.connect() as connection:
        return {alert_id: state for alert_id, state in connection.execute(query)}


def _move(
    engine: Engine,
    *,
    from_state: AlertState,
    values: dict[str, Any],
    alert_ids: Sequence[int] | None,
) -> int:
    statement = update(alerts).where(alerts.c.state == from_state.value).values(**values)
    if alert_ids is not None:
        statement = statement.where(alerts.c.alert_id.in_(list(alert_ids)))
    with _writing(engine) as connection:
        return connection.execute(statement).rowcount


def retry_failed(engine: Engine, now: datetime, alert_ids: Sequence[int] | None = None) -> int:
    """Queue failed alerts again, with a fresh count of attempts; returns how many."""
    values = {"state": AlertState.PENDING.value, "attempts": 0, "next_attempt_at": now, "updated_at": now}
    return _move(engine, from_state=AlertState.FAILED, values=values, alert_ids=alert_ids)


def release_held(engine: Engine, now: datetime, alert_ids: Sequence[int] | None = None) -> int:
    """Send held alerts after all (the data they were held for is fine); returns how many."""
    values = {
        "state": AlertState.PENDING.value,
        "next_attempt_at": now,
        "updated_at": now,
        "state_reason": func.coalesce(alerts.c.state_reason + "; ", "") + "released by an operator",
    }
    return _move(engine, from_state=AlertState.HELD, values=values, alert_ids=alert_ids)


def discard_held(engine: Engine, now: datetime, alert_ids: Sequence[int] | None = None) -> int:
    """Never send held alerts (kept, as discarded, for the record); returns how many.

    A discarded alert told nobody, so its customer (and those of a discarded digest) can alert again
    at the next scoring: the policy forgets it.
    """
    with _writing(engine) as connection:
        query = select(alerts.c.alert_id).where(alerts.c.state == AlertState.HELD.value)
        if alert_ids is not None:
            query = query.where(alerts.c.alert_id.in_(list(alert_ids)))
        ids = list(connection.execute(query).scalars())
        if not ids:
            return 0
        reason = func.coalesce(alerts.c.state_reason + "; ", "")
        connection.execute(
            update(alerts)
            .where(alerts.c.alert_id.in_(ids))
            .values(
                state=AlertState.DISCARDED.value,
                updated_at=now,
                state_reason=reason + "discarded by an operator",
            )
        )
        connection.execute(
            update(alerts)
            .where(alerts.c.digest_id.in_(ids), alerts.c.state == AlertState.DIGESTED.value)
            .values(
                state=AlertState.DISCARDED.value,
                updated_at=now,
                state_reason=reason + "its digest was discarded",
            )
        )
        customers = connection.execute(
            select(alerts.c.customer_id)
            .where(
                or_(alerts.c.alert_id.in_(ids), alerts.c.digest_id.in_(ids)),
                alerts.c.customer_id.is_not(None),
            )
            .distinct()
        ).scalars()
        forget_discarded(connection, list(customers))
    return len(ids)
