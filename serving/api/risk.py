"""Reading risk scores: one customer's latest score and history, and the change feed CRMs sync from.

The change feed has one row per customer and scored day, in ``change_id`` order. A day scored for
the first time adds a row per customer; a rescored day whose values changed (a new model, a rebuilt
snapshot) comes again under a new, larger change id; a re-run that changes nothing adds nothing.
Change ids grow in commit order and scorings are serialised, so a sync that pages with the cursor
until ``has_more`` is false has seen every committed change exactly once, even while a scoring runs.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from threading import Lock
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection, Row, select

from churn.config import ProductConfig
from churn.tables import scoring_runs
from features.snapshot import load_snapshots
from serving.api.auth import require
from serving.api.drivers import ModelCache, compute_drivers
from serving.api.errors import ERROR_SCHEMA, ApiError
from serving.api.risk_schemas import (
    CustomerRisk,
    Drivers,
    LikelyReason,
    RiskHistory,
    ScoreChange,
    ScoreChanges,
    ScoredDay,
    SourceFreshness,
    Tier,
)
from serving.api.sync_cursor import decode_cursor, encode_cursor
from serving.api_keys import ApiKey, Scope
from serving.freshness import source_freshness
from serving.risk_reads import ChangeFilter, changes, customer_known, latest_score, score_history
from training.likely_reason import LikelyReasonModel, describe_reason, load_likely_reason

router = APIRouter(tags=["risk scores"])

Reader = Annotated[ApiKey, Depends(require(Scope.READ_SCORES))]
# No NUL characters: PostgreSQL text cannot hold them, so no customer id or segment has one.
TEXT = r"^[^\x00]+$"
CustomerId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=TEXT, description="The customer's id, as imported.")
]

MAX_PAGE = 5000
CSV_COLUMNS = (
    "change_id",
    "customer_id",
    "as_of",
    "risk",
    "tier",
    "model_version",
    "scored_at",
    "snapshot_built_at",
    "updated_at",
    "segment",
    "owner_email",
)
CSV_RESPONSE = {
    "description": "The same page as CSV; the next cursor is in `X-Next-Cursor`, more rows in `X-Has-More`.",
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "headers": {
        "X-Next-Cursor": {"description": "Pass as `cursor` for the next page.", "schema": {"type": "string"}},
        "X-Has-More": {"description": "true when more changes are committed.", "schema": {"type": "string"}},
    },
}
FEED_RESPONSE = {
    **CSV_RESPONSE,
    "description": "A page of changes; as CSV with `format=csv` or `Accept: text/csv` (cursor in headers).",
}
# A source's freshness at a day is the same for every customer and moves only with a backfill, while
# finding it scans the source tables: compute it once a minute per day, not on every read.
_FRESHNESS_TTL_S = 60.0
_FRESHNESS_DAYS_KEPT = 16
# Looking for a likely-reason model costs an MLflow lookup: when there is none, look again a minute later.
_LIKELY_REASON_RETRY_S = 60.0


@router.get(
    "/v1/customers/{customer_id}/risk",
    summary="A customer's latest risk, with the data's freshness and the drivers in plain words.",
    response_model=CustomerRisk,
    responses={404: ERROR_SCHEMA},
)
def customer_risk(customer_id: CustomerId, request: Request, _key: Reader) -> CustomerRisk:
    app_state = request.app.state
    config = app_state.config
    with app_state.engine.connect() as connection:
        row = latest_score(connection, customer_id)
        if row is None:
            raise _not_scored(connection, customer_id)
        freshness = _reading(request).freshness(connection, row.as_of, config.alerts.stale_after_days)
        if row.drivers is not None:
            drivers, source, note = Drivers.model_validate(row.drivers), "stored", None
        else:
            found = compute_drivers(
                connection,
                _reading(request).models,
                customer_id=customer_id,
                as_of=row.as_of,
                version=row.model_version,
                top=config.scoring.top_drivers,
            )
            drivers = Drivers.model_validate(found.drivers) if found.drivers else None
            source, note = ("computed", None) if drivers else ("unavailable", found.note)
        reason, reason_note = _reading(request).likely_reason(connection, customer_id, row.as_of, config)
    return CustomerRisk(
        **_score_fields(row),
        freshness=freshness,
        drivers=drivers,
        drivers_source=source,
        drivers_note=note,
        likely_reason=reason,
        likely_reason_note=reason_note,
    )


@router.get(
    "/v1/customers/{customer_id}/risk/history",
    summary="Every scored day of a customer, oldest first.",
    response_model=RiskHistory,
    responses={404: ERROR_SCHEMA},
)
def customer_risk_history(
    customer_id: CustomerId,
    request: Request,
    _key: Reader,
    start: Annotated[date | None, Query(alias="from", description="The first day (inclusive).")] = None,
    end: Annotated[date | None, Query(alias="to", description="The last day (inclusive).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many days.")] = 1000,
) -> RiskHistory:
    if start is not None and end is not None and start > end:
        raise ApiError(
            422,
            f"query parameter 'from' ({start}) is after 'to' ({end})",
            [f"query.from: {start} is after query.to {end}"],
        )
    with request.app.state.engine.connect() as connection:
        rows = score_history(connection, customer_id, start=start, end=end, limit=limit + 1)
        if not rows and not customer_known(connection, customer_id):
            raise ApiError(404, f"customer {customer_id!r} is not known")
    more = len(rows) > limit
    days = [ScoredDay(**_score_fields(row)) for row in rows[:limit]]
    next_from = days[-1].as_of + timedelta(days=1) if more else None
    return RiskHistory(customer_id=customer_id, days=days, has_more=more, next_from=next_from)


@dataclass(frozen=True)
class FeedRequest:
    """A change-feed request: where to continue and which changes."""

    wanted: ChangeFilter
    limit: int
    after_change: int


def feed_request(
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="next_cursor from the previous page (opaque); leave out to start from the beginning.",
        ),
    ] = None,
    updated_since: Annotated[
        datetime | None,
        Query(
            description="Only rows written at or after this time (ISO 8601; no offset means UTC). For a "
            "first sync only: the time is when a scoring wrote its rows, a little before it committed, so "
            "incremental syncs page with the cursor."
        ),
    ] = None,
    tier: Annotated[list[Tier] | None, Query(description="Only these tiers (repeat for several).")] = None,
    min_risk: Annotated[float | None, Query(ge=0, le=1, description="Only risks at least this.")] = None,
    segment: Annotated[
        str | None,
        Query(min_length=1, max_length=64, pattern=TEXT, description="Only accounts of this segment."),
    ] = None,
    owner: Annotated[
        str | None,
        Query(
            min_length=3,
            max_length=255,
            pattern=r"^[^@\s\x00]+@[^@\s\x00]+$",
            description="Only accounts this CSM owns (owner e-mail, any case).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many rows.")] = 500,
) -> FeedRequest:
    after = decode_cursor(cursor) if cursor is not None else 0
    if updated_since is not None:
        try:
            updated_since = (
                updated_since.replace(tzinfo=UTC)
                if updated_since.tzinfo is None
                else updated_since.astimezone(UTC)
            )
        except OverflowError:
            raise ApiError(
                422, "query parameter 'updated_since' is out of range", ["query.updated_since: out of range"]
            ) from None
    wanted = ChangeFilter(
        after_change=after,
        updated_since=updated_since,
        tiers=tuple(tier or ()),
        min_risk=min_risk,
        segment=segment,
        owner_email=owner,
    )
    return FeedRequest(wanted=wanted, limit=limit, after_change=after)


Feed = Annotated[FeedRequest, Depends(feed_request)]


@router.get(
    "/v1/risk-scores",
    summary="Score changes for incremental CRM sync, in change order, paged by an opaque cursor.",
    response_model=ScoreChanges,
    responses={200: FEED_RESPONSE},
)
def risk_scores_feed(
    request: Request,
    feed: Feed,
    _key: Reader,
    output: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="csv: the same page as CSV (as does `Accept: text/csv`)."),
    ] = None,
) -> Any:
    rows, more, next_cursor = _page(request, feed)
    if output == "csv" or (output is None and _prefers_csv(request.headers.get("accept", ""))):
        return _csv_response(rows, more, next_cursor)
    return ScoreChanges(
        changes=[ScoreChange(**_change_fields(row)) for row in rows], next_cursor=next_cursor, has_more=more
    )


@router.get(
    "/v1/risk-scores.csv",
    summary="The score change feed as CSV (streamed); the next cursor is in the X-Next-Cursor header.",
    response_class=StreamingResponse,
    responses={200: CSV_RESPONSE},
)
def risk_scores_csv(request: Request, feed: Feed, _key: Reader) -> StreamingResponse:
    rows, more, next_cursor = _page(request, feed)
    return _csv_response(rows, more, next_cursor)


def _page(request: Request, feed: FeedRequest) -> tuple[list[Row], bool, str]:
    with request.app.state.engine.connect() as connection:
        rows = changes(connection, feed.wanted, limit=feed.limit + 1)
    more = len(rows) > feed.limit
    rows = rows[: feed.limit]
    # With nothing new the cursor stays where it was: a later page continues from the same place.
    next_cursor = encode_cursor(rows[-1].change_id if rows else feed.after_change)
    return rows, more, next_cursor


def _prefers_csv(accept: str) -> bool:
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "text/csv" in types and "application/json" not in types


def _csv_response(rows: Sequence[Row], more: bool, next_cursor: str) -> StreamingResponse:
    return StreamingResponse(
        _csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "X-Next-Cursor": next_cursor,
            "X-Has-More": "true" if more else "false",
            "Content-Disposition": 'attachment; filename="risk-scores.csv"',
        },
    )


def _csv_lines(rows: Sequence[Row], chunk: int = 500) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for start in range(0, len(rows), chunk):
        for row in rows[start : start + chunk]:
            fields = _change_fields(row)
            writer.writerow([_csv_value(fields[name]) for name in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _csv_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else value


def _score_fields(row: Row) -> dict[str, Any]:
    return {
        "customer_id": row.customer_id,
        "as_of": row.as_of,
        "risk": row.risk,
        "tier": row.tier,
        "model_version": row.model_version,
        "scored_at": row.scored_at,
        "snapshot_built_at": row.snapshot_built_at,
        "updated_at": row.updated_at,
    }


def _change_fields(row: Row) -> dict[str, Any]:
    return {
        **_score_fields(row),
        "change_id": row.change_id,
        "segment": row.segment,
        "owner_email": row.owner_email,
    }


def _not_scored(connection: Connection, customer_id: str) -> ApiError:
    if not customer_known(connection, customer_id):
        return ApiError(404, f"customer {customer_id!r} is not known")
    return ApiError(
        404,
        f"customer {customer_id!r} has no risk score yet: it is scored on the first scored day it is active",
    )


class _Reading:
    """What the risk routes keep per app: the models that explain scores and each day's source freshness."""

    def __init__(self, request: Request) -> None:
        self.models: ModelCache = request.app.state.models
        self._freshness: dict[date, tuple[float, list[SourceFreshness]]] = {}
        self._lock = Lock()
        self._finding = Lock()
        self._finding_reason = Lock()
        self._settings = request.app.state.settings
        self._reasons: tuple[float, LikelyReasonModel | None] | None = None

    def likely_reason(
        self, connection: Connection, customer_id: str, as_of: date, config: ProductConfig
    ) -> tuple[LikelyReason | None, str | None]:
        """The customer's likely reason on its scored day, or why there is none."""
        model = self._likely_reason_model()
        if model is None:
            return None, "no likely-reason model yet: run `churn reasons likely-train`"
        features = load_snapshots(connection, [as_of], [customer_id])
        if features.empty:
            return None, f"the feature snapshot of {as_of} no longer has this customer"
        (found,) = model.predict(features).itertuples(index=False)
        return LikelyReason(**describe_reason(found.code, found.probability, model, config)), None

    def _likely_reason_model(self) -> LikelyReasonModel | None:
        def usable(kept: tuple[float, LikelyReasonModel | None] | None) -> bool:
            return kept is not None and (
                kept[1] is not None or time.monotonic() - kept[0] < _LIKELY_REASON_RETRY_S
            )

        with self._lock:
            kept = self._reasons
        if usable(kept):
            return kept[1]
        # The lookup asks MLflow (most of a second): one request does it while the others wait for it
        # the first time and go on with what is known when it is only a look for a newer model.
        if not self._finding_reason.acquire(blocking=kept is None):
            return kept[1]
        try:
            with self._lock:
                kept = self._reasons
            if usable(kept):
                return kept[1]
            model = load_likely_reason(self._settings)
            with self._lock:
                self._reasons = (time.monotonic(), model)
            return model
        finally:
            self._finding_reason.release()

    def freshness(self, connection: Connection, as_of: date, limits: dict[str, int]) -> list[SourceFreshness]:
        with self._lock:
            kept = self._freshness.get(as_of)
        if kept and time.monotonic() - kept[0] < _FRESHNESS_TTL_S:
            return kept[1]
        # One request finds it while the others of the moment wait for its answer, rather than every
        # request that arrives meanwhile asking the database the same question.
        with self._finding:
            with self._lock:
                kept = self._freshness.get(as_of)
            if kept and time.monotonic() - kept[0] < _FRESHNESS_TTL_S:
                return kept[1]
            stored = connection.execute(
                select(scoring_runs.c.source_freshness).where(scoring_runs.c.as_of == as_of)
            ).scalar()
            if stored is not None:  # what the scoring saw: one row, where finding it scans the sources
                found = [SourceFreshness(**f) for f in stored]
            else:
                found = [SourceFreshness(**f.as_dict()) for f in source_freshness(connection, as_of, limits)]
        with self._lock:
            if len(self._freshness) >= _FRESHNESS_DAYS_KEPT:
                self._freshness.pop(min(self._freshness, key=lambda day: self._freshness[day][0]))
            self._freshness[as_of] = (time.monotonic(), found)
        return found


_reading_lock = Lock()


def _reading(request: Request) -> _Reading:
    state = request.app.state
    with _reading_lock:
        if not hasattr(state, "risk_reading"):
            state.risk_reading = _Reading(request)
        return state.risk_reading
