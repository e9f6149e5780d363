"""``/metrics`` for Prometheus: requests, their latency, and the scoring and alert figures in the database."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import time as day_time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churn.tables import alert_outcomes, alerts, risk_scores, scoring_runs
from serving.api.auth import require
from serving.api_keys import ApiKey
from serving.api_keys import Scope as KeyScope
from serving.outbox import AlertState

# A scraper needs read access only: a key with read:scores (or admin) may read the metrics, so the key
# kept in Prometheus's config cannot write anything.
METRICS_SCOPE = KeyScope.READ_SCORES

# Requests that matched no route are counted under one label: raw paths (customer ids, probes) would
# grow the label set without bound.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

router = APIRouter(tags=["metrics"])


class RequestMetrics:
    """This app's request counters and latency histogram, in a registry of its own."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "churn_api_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "churn_api_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by method and route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.database = DatabaseCollector(engine)
        self.registry.register(self.database)

    def exposition(self) -> bytes:
        """The text format, across every worker process when several share a multiprocess directory."""
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not folder:
            return generate_latest(self.registry)
        # With `churn serve --workers N` each worker counts into files here; one scrape sums them all.
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=folder)
        combined.register(self.database)
        return generate_latest(combined)


class DatabaseCollector(Collector):
    """Scoring and alert figures read at scrape time: a handful of small, indexed queries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        # Describing must not query the database (it runs at registration).
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("churn_database_up", "1 if the database answered the metrics queries.")
        try:
            families = self._families()
        except SQLAlchemyError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        with self.engine.connect() as connection:
            last = connection.execute(
                select(scoring_runs).order_by(scoring_runs.c.as_of.desc()).limit(1)
            ).first()
            by_state = connection.execute(select(alerts.c.state, func.count()).group_by(alerts.c.state)).all()
            outcomes = connection.execute(
                select(alert_outcomes.c.outcome, func.count()).group_by(alert_outcomes.c.outcome)
            ).all()
            tiers = (
                connection.execute(
                    select(risk_scores.c.tier, func.count())
                    .where(risk_scores.c.as_of == last.as_of)
                    .group_by(risk_scores.c.tier)
                ).all()
                if last
                else []
            )
        state = GaugeMetricFamily("churn_alerts", "Alerts in the outbox, by state.", labels=["state"])
        # Every state has a series, 0 when empty, so a rule like `churn_alerts{state="failed"} > 0` can fire.
        counts = {s.value: 0 for s in AlertState} | dict(by_state)
        for name, count in sorted(counts.items()):
            state.add_metric([name], float(count))
        outcome = GaugeMetricFamily(
            "churn_alert_outcomes", "Alert outcomes recorded (Slack or API), by outcome.", labels=["outcome"]
        )
        for name, count in sorted(outcomes):
            outcome.add_metric([name], float(count))
        tier = GaugeMetricFamily(
            "churn_scored_customers", "Customers in the latest scored day, by risk tier.", labels=["tier"]
        )
        for name, count in sorted(tiers):
            tier.add_metric([name], float(count))
        return [state, outcome, tier, *_last_scoring(last)]


def _last_scoring(last: Any) -> list[Metric]:
    figures = {
        "churn_scoring_last_as_of_timestamp_seconds": (
            "The latest scored day (its midnight UTC), as a Unix time.",
            lambda row: datetime.combine(row.as_of, day_time(0), tzinfo=UTC).timestamp(),
        ),
        "churn_scoring_last_scored_at_timestamp_seconds": (
            "When the latest scored day was scored, as a Unix time.",
            lambda row: row.scored_at.timestamp(),
        ),
        "churn_scoring_last_customers": (
            "Customers scored in the latest scored day.",
            lambda row: float(row.customers),
        ),
        "churn_scoring_last_alerts": (
            "Alerts queued by the latest scored day.",
            lambda row: float(row.alerts),
        ),
        "churn_scoring_last_held": (
            "Alerts the latest scored day held on stale data.",
            lambda row: float(row.held),
        ),
        "churn_scoring_last_duration_seconds": (
            "How long the latest scored day's scoring took.",
            lambda row: float(row.seconds),
        ),
    }
    families = []
    for name, (documentation, value) in figures.items():
        family = GaugeMetricFamily(name, documentation)
        if last is not None:  # no sample before the first scoring: absent, not zero
            family.add_metric([], value(last))
        families.append(family)
    return families


class _TimingMiddleware:
    """Counts each request by its route template and status, and times it to the end of its response."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started ends as a 500 from the server

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            # The router writes the matched route into the request's scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI) -> None:
    """Count requests and their latency in a registry of this app's own (several apps may share a process)."""
    metrics = RequestMetrics(app.state.engine)
    app.state.metrics = metrics
    app.add_middleware(_TimingMiddleware, metrics=metrics)


@router.get(
    "/metrics",
    summary="Request, latency, scoring and alert metrics in the Prometheus text format.",
    description=(
        f"Needs a key with `{METRICS_SCOPE.value}` (or `admin`): give Prometheus one with "
        "`authorization: {credentials: <key>}` in its scrape config."
    ),
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request, _key: Annotated[ApiKey, Depends(require(METRICS_SCOPE))]) -> Response:
    body = request.app.state.metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
