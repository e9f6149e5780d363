"""Writes from CRMs and other systems: batch ingest of contract rows, cancellations, alert outcomes.

Ingest goes through the same validation and merge as ``churn ingest``: the batch is written to a
Parquet file of text columns (what a CSV import reads) and imported in one transaction, so a batch
is all or nothing and re-posting it changes nothing.
"""

from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model

from churn.clock import utc_now
from churn.contract import ENTITIES, Entity, Kind
from churn.db import WRITES
from churn.ingest import IngestError, IngestOptions, ingest_file
from serving.api.auth import require
from serving.api.errors import ERROR_SCHEMA, ApiError
from serving.api_keys import ApiKey, Scope
from serving.feedback import (
    MAX_ACTOR,
    MAX_NOTE,
    MAX_REASON_CODE,
    FeedbackError,
    Outcome,
    OutcomeSource,
    UnknownAlertError,
    list_outcomes,
    record_outcome,
)

router = APIRouter()

MAX_BATCH_ROWS = 10_000
MAX_IDEMPOTENCY_KEY = 200
ALERT_ID = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alert's id, as its Slack message shows.")]

Scalar = str | bool | int | float


# --- Ingest -------------------------------------------------------------------------------------


class _Row(BaseModel):
    """A contract row; values are checked by the same rules as a file import."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scalar | None] = Field(init=False)


# JSON types a column accepts; the value rules (formats, ranges, lengths) are the contract's.
_JSON_TYPES: dict[Kind, Any] = {
    Kind.TEXT: StrictStr | StrictInt,  # not a JSON true: it would become the text "true"
    Kind.CHOICE: str,
    Kind.TIMESTAMP: str,
    Kind.NUMBER: int | float | str,
    Kind.INTEGER: int | float | str,
    Kind.BOOLEAN: bool | str | int,
}


def _row_model(entity: Entity) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for spec in entity.fields:
        kind = _JSON_TYPES[spec.kind]
        if spec.required:
            fields[spec.name] = (kind, Field(description=spec.expectation()))
        else:
            fields[spec.name] = (kind | None, Field(default=None, description=spec.expectation()))
    extra = (
        "Other columns are kept as the customer's attributes."
        if entity.keeps_extra_columns
        else "Other columns are ignored (and listed in ignored_columns)."
    )
    name = entity.name.title().replace("_", "")
    return create_model(f"{name}Row", __base__=_Row, __doc__=f"{entity.description} {extra}", **fields)


def _batch_model(entity: Entity) -> type[BaseModel]:
    row = _row_model(entity)
    return create_model(
        f"{row.__name__[:-3]}Batch",
        __doc__=f"Up to {MAX_BATCH_ROWS:,} {entity.name} rows, imported all or nothing.",
        rows=(list[row], Field(min_length=1, description=f"At most {MAX_BATCH_ROWS:,} rows.")),  # type: ignore[valid-type]
    )


class IngestResult(BaseModel):
    """What an ingest did (or, with dry_run, would do)."""

    entity: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    ignored_columns: list[str]
    dry_run: bool


async def _bounded_batch(request: Request) -> None:
    """Refuse an oversized batch before its rows are validated one by one."""
    try:
        body = await request.json()
    except ValueError:
        return  # not JSON at all: FastAPI's own body check answers it
    rows = body.get("rows") if isinstance(body, dict) else None
    if isinstance(rows, list) and len(rows) > MAX_BATCH_ROWS:
        raise ApiError(413, f"the batch has {len(rows):,} rows; send at most {MAX_BATCH_ROWS:,} per request")


def ingest_rows(
    request: Request, entity: Entity, rows: list[dict[str, Any]], *, key: ApiKey, dry_run: bool
) -> IngestResult:
    """Import a batch of contract rows as ``churn ingest`` imports a file: all of it or nothing."""
    config = request.app.state.config
    options = IngestOptions(timezone=config.ingest.timezone, dry_run=dry_run)
    engine = request.app.state.engine
    unreadable = _not_unicode(rows)
    if unreadable:
        raise ApiError(422, "the batch was not imported: it has text that is not Unicode", unreadable)
    with tempfile.TemporaryDirectory(prefix="churn-api-") as folder:
        path = FilePath(folder) / f"{entity.name}.parquet"
        _write_text_parquet(path, rows)
        try:
            summary = ingest_file(
                engine, entity.name, path, options=options, now=utc_now(), source_name=f"api:{key.name}"
            )
        except IngestError as exc:
            problems = [_in_batch_words(problem, path) for problem in exc.problems]
            shown = "" if exc.total <= len(problems) else f" (the first {len(problems)} shown)"
            raise ApiError(
                422,
                f"the batch was not imported: {exc.total:,} problem(s){shown}; nothing was written",
                problems,
            ) from None
    return IngestResult(
        entity=summary.entity,
        rows_read=summary.rows_read,
        inserted=summary.inserted,
        updated=summary.updated,
        unchanged=summary.unchanged,
        ignored_columns=summary.ignored_columns,
        dry_run=summary.dry_run,
    )


def _not_unicode(rows: list[dict[str, Any]]) -> list[str]:
    """JSON can carry halves of a character (lone surrogates) that no file or database can hold."""
    problems = []
    for index, row in enumerate(rows):
        for name, value in row.items():
            if not _encodable(name):
                problems.append(f"rows[{index}]: a column name is not valid Unicode text")
            elif isinstance(value, str) and not _encodable(value):
                problems.append(f"rows[{index}]: column {name!r}: is not valid Unicode text")
    return problems


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _write_text_parquet(path: FilePath, rows: list[dict[str, Any]]) -> None:
    """Every value as text (as a CSV import reads it); a column some rows lack is empty in them."""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    table = pa.table(
        {name: pa.array([_as_text(row.get(name)) for row in rows], type=pa.string()) for name in columns}
    )
    pq.write_table(table, path)


def _as_text(value: Scalar | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _in_batch_words(problem: str, path: FilePath) -> str:
    """An import problem with the batch's row index (0-based, as in ``rows``) instead of file and row."""
    where = re.escape(str(path))
    problem = re.sub(where + r": row (\d+)", lambda m: f"rows[{int(m.group(1)) - 1}]", problem)
    problem = re.sub(r"first at row (\d+)", lambda m: f"first at rows[{int(m.group(1)) - 1}]", problem)
    return problem.replace(str(path), "the batch")


_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: ERROR_SCHEMA,
    403: ERROR_SCHEMA,
    413: ERROR_SCHEMA,
    422: ERROR_SCHEMA,
}
DryRun = Annotated[bool, Query(description="Validate and count, then write nothing.")]


def _ingest_route(entity: Entity, path: str, summary: str, tags: list[str]) -> None:
    batch_model = _batch_model(entity)

    def ingest(
        request: Request,
        key: Annotated[ApiKey, Depends(require(Scope.WRITE_INGEST))],
        _bounded: Annotated[None, Depends(_bounded_batch)],
        batch: batch_model,  # type: ignore[valid-type]
        dry_run: DryRun = False,
    ) -> IngestResult:
        rows = [row.model_dump(exclude_unset=True) for row in batch.rows]  # type: ignore[attr-defined]
        return ingest_rows(request, entity, rows, key=key, dry_run=dry_run)

    ingest.__name__ = f"ingest_{entity.name}"
    ingest.__annotations__["batch"] = batch_model  # a model made per entity: not a name to look up
    router.add_api_route(
        path,
        ingest,
        methods=["POST"],
        summary=summary,
        description=(
            f"{entity.description} Validated and merged as `churn ingest {entity.name}` does: any bad "
            f"row rejects the whole batch (422, each problem naming `rows[i]` and the column) and "
            f"nothing is written; re-posting a batch changes nothing. Timestamps without an offset "
            f"are read in the config's `ingest.timezone`. At most {MAX_BATCH_ROWS:,} rows (413)."
        ),
        tags=tags,
        response_model=IngestResult,
        responses=_INGEST_RESPONSES,
    )


for _name, _summary in (
    ("customers", "Import customers (accounts)."),
    ("subscriptions", "Import subscription periods."),
    ("events", "Import product usage events."),
    ("tickets", "Import support tickets."),
    ("surveys", "Import survey answers (NPS, CSAT, CES)."),
):
    _ingest_route(ENTITIES[_name], f"/v1/ingest/{_name}", _summary, ["ingest"])

_ingest_route(
    ENTITIES["cancellations"],
    "/v1/cancellations",
    "Push cancellations with their reason code and the customer's words.",
    ["ingest", "feedback"],
)


# --- Alert outcomes -------------------------------------------------------------------------------


class OutcomeRequest(BaseModel):
    """What was done about an alert."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    reason_code: str | None = Field(
        default=None, max_length=MAX_REASON_CODE, description="Why the customer is leaving (churning only)."
    )
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    actor: str | None = Field(
        default=None, max_length=MAX_ACTOR, description="Who did it; the API key's name if not given."
    )


class OutcomeRecord(BaseModel):
    """A recorded outcome of an alert."""

    outcome_id: int
    alert_id: int
    customer_id: str | None
    outcome: Outcome
    reason_code: str | None
    note: str | None
    actor: str
    source: OutcomeSource
    created_at: datetime


class OutcomeList(BaseModel):
    """Every outcome recorded for an alert, oldest first."""

    alert_id: int
    outcomes: list[OutcomeRecord]


@router.post(
    "/v1/alerts/{alert_id}/outcome",
    summary="Record what was done about an alert.",
    description=(
        "Acknowledged, outreach logged, saved, or churning (with a reason code). Send an "
        "`Idempotency-Key` header so that a retried request is recorded once and answers the same."
    ),
    tags=["feedback"],
    status_code=201,
    response_model=OutcomeRecord,
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA, 422: ERROR_SCHEMA},
)
def post_outcome(
    request: Request,
    alert_id: ALERT_ID,
    body: OutcomeRequest,
    key: Annotated[ApiKey, Depends(require(Scope.WRITE_FEEDBACK))],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=MAX_IDEMPOTENCY_KEY,
            description="Any unique string per intended outcome, e.g. a UUID.",
        ),
    ] = None,
) -> OutcomeRecord:
    # Keys are per API key: two clients choosing the same string never collide.
    request_key = f"api:{key.key_id}:{idempotency_key}" if idempotency_key else None
    with request.app.state.engine.connect().execution_options(**WRITES) as connection, connection.begin():
        try:
            stored = record_outcome(
                connection,
                alert_id=alert_id,
                outcome=body.outcome,
                actor=body.actor or key.name,
                source=OutcomeSource.API,
                reason_code=body.reason_code,
                note=body.note,
                request_key=request_key,
                now=utc_now(),
            )
        except UnknownAlertError as exc:
            raise ApiError(404, str(exc)) from None
        except FeedbackError as exc:
            raise ApiError(422, str(exc)) from None
    return OutcomeRecord(**stored)


@router.get(
    "/v1/alerts/{alert_id}/outcomes",
    summary="List what was done about an alert.",
    tags=["feedback"],
    response_model=OutcomeList,
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA},
)
def get_outcomes(
    request: Request,
    alert_id: ALERT_ID,
    _key: Annotated[ApiKey, Depends(require(Scope.READ_SCORES))],
) -> OutcomeList:
    with request.app.state.engine.connect() as connection:
        try:
            rows = list_outcomes(connection, alert_id)
        except UnknownAlertError as exc:
            raise ApiError(404, str(exc)) from None
    return OutcomeList(alert_id=alert_id, outcomes=[OutcomeRecord(**row) for row in rows])
