"""Importing a contract file: validate every row, then apply all of it or nothing.

The whole import runs in one transaction. Problems are gathered across the whole file (the first
few in full, then a count) and any problem rolls everything back, so a bad file changes nothing.
Re-importing the same file changes nothing; a changed row updates the stored one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
from sqlalchemy import Connection, Engine, Table, insert
from sqlalchemy.exc import DataError, IntegrityError

from churn import merge
from churn.config import check_timezone
from churn.contract import Entity, get_entity
from churn.db import WRITES
from churn.sources import SourceError, SourceFile
from churn.tables import CONTRACT_TABLES, ingest_runs, usage_events
from churn.validation import check_chunk

Progress = Callable[[int, int], None]


class IngestError(ValueError):
    """An import that cannot go ahead; ``problems`` name file, row, column, value and expectation."""

    def __init__(self, problems: list[str], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        super().__init__(problems[0] if problems else "import rejected")


@dataclass(frozen=True)
class IngestOptions:
    """How to read a file: column renames, zone of naive timestamps, chunking, and what to show."""

    column_map: dict[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    chunk_mb: int = 4
    max_problems_shown: int = 20
    dry_run: bool = False


@dataclass(frozen=True)
class IngestSummary:
    """What an import did (or, in a dry run, would do)."""

    entity: str
    source: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    ignored_columns: list[str]
    dry_run: bool
    seconds: float
    sha256: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ``SOURCE=TARGET`` strings into a rename mapping."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise IngestError([f"--map {pair!r}: expected SOURCE=TARGET, e.g. --map account=customer_id"])
        mapping[source.strip()] = target.strip()
    return mapping


def ingest_file(
    engine: Engine,
    entity_name: str,
    path: Path,
    *,
    options: IngestOptions,
    now: datetime,
    on_progress: Progress | None = None,
    source_name: str | None = None,
) -> IngestSummary:
    """Import one file in one transaction; a dry run validates and counts, then rolls back.

    ``source_name`` is what the import log records as the source (default: the file's path), e.g.
    the API client that sent a batch.
    """
    entity = _entity(entity_name)
    started = time.perf_counter()
    with engine.connect().execution_options(**WRITES) as connection:
        transaction = connection.begin()
        try:
            summary = _load(connection, entity, path, options=options, now=now, on_progress=on_progress)
            if source_name is not None:
                summary = IngestSummary(**{**summary.as_dict(), "source": source_name})
            summary = IngestSummary(**{**summary.as_dict(), "seconds": time.perf_counter() - started})
            if options.dry_run:
                transaction.rollback()
            else:
                _record_run(connection, summary, started_at=now)
                transaction.commit()
        except (DataError, IntegrityError) as exc:
            transaction.rollback()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise IngestError([f"{path}: the database refused the data: {reason}"]) from None
        except psycopg.Error as exc:  # raised by COPY, below SQLAlchemy
            transaction.rollback()
            reason = str(exc).strip().splitlines()[0]
            raise IngestError([f"{path}: the database refused the data: {reason}"]) from None
        except BaseException:
            transaction.rollback()
            raise
    return summary


def _entity(name: str) -> Entity:
    try:
        return get_entity(name)
    except ValueError as exc:
        raise IngestError([str(exc)]) from None


def _load(
    connection: Connection,
    entity: Entity,
    path: Path,
    *,
    options: IngestOptions,
    now: datetime,
    on_progress: Progress | None,
) -> IngestSummary:
    try:
        source = SourceFile(path)
    except SourceError as exc:
        raise IngestError([str(exc)]) from None
    renames, ignored = _plan_columns(entity, source, options.column_map)
    try:
        timezone = check_timezone(options.timezone)
    except ValueError as exc:
        raise IngestError([f"--timezone: {exc}"]) from None
    target = CONTRACT_TABLES[entity.name]
    staged_columns = [*entity.columns, *(["attributes"] if entity.keeps_extra_columns else [])]
    staging = merge.create_staging(connection, target, staged_columns)
    keep = options.max_problems_shown
    problems: list[tuple[int, str]] = []
    total_problems = 0
    rows_read = 0
    try:
        with merge.staging_loader(connection, staging) as load:
            for chunk in source.chunks(options.chunk_mb):
                frame = chunk.frame.rename(columns=renames)
                rows_read += len(frame) + len(chunk.malformed)
                total_problems += len(chunk.malformed)
                problems.extend(chunk.malformed[:keep])
                checked = check_chunk(entity, frame, timezone=timezone, now=now, keep=keep)
                total_problems += checked.problem_count
                problems.extend((p.row, f"{source.location(p.row)}: {p.message}") for p in checked.problems)
                problems = sorted(problems)[:keep]  # only the first few are shown; the rest are counted
                rows = checked.rows
                if entity.key_derived_from_row:
                    rows = _with_derived_keys(entity, rows)
                load(rows)
                if on_progress:
                    on_progress(chunk.progress, source.size)
    except SourceError as exc:
        raise IngestError([str(exc)]) from None
    total_problems += _set_checks(connection, entity, staging, source, problems, keep)
    if total_problems:
        shown = [message for _, message in sorted(problems)[:keep]]
        raise IngestError(shown, total_problems)
    update_columns = _columns_in_file(entity, source, renames)
    if target is usage_events:
        merge.record_changed_days(connection, staging, target, entity.key, compared=update_columns)
    counts = merge.merge_staging(
        connection, staging, target, entity.key, now=now, update_columns=update_columns
    )
    merge.drop_staging(connection, staging)
    return IngestSummary(
        entity=entity.name,
        source=str(path),
        rows_read=rows_read,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        ignored_columns=ignored,
        dry_run=options.dry_run,
        seconds=0.0,
        sha256=source.sha256,
    )


def _columns_in_file(entity: Entity, source: SourceFile, renames: dict[str, str]) -> list[str]:
    """Contract columns the file actually has (after --map); columns with a default count as present."""
    names = {renames.get(name, name) for name in source.header}
    present = [f.name for f in entity.fields if f.name in names or f.default is not None]
    if entity.keeps_extra_columns and names - set(entity.columns):
        present.append("attributes")
    return present


def _plan_columns(
    entity: Entity, source: SourceFile, column_map: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Check the header against the contract; return the renames and the columns that will be ignored."""
    where = f"{source.path}:1" if source.format == "csv" else str(source.path)
    problems = [
        f"--map {src}={dst}: the file has no column {src!r} (columns: {', '.join(source.header)})"
        for src, dst in column_map.items()
        if src not in source.header
    ]
    if not entity.keeps_extra_columns:
        problems += [
            f"--map {src}={dst}: {dst!r} is not a column of {entity.name} "
            f"(expected one of {', '.join(entity.columns)})"
            for src, dst in column_map.items()
            if dst not in entity.columns
        ]
    names = [column_map.get(name, name) for name in source.header]
    problems += [
        f"{where}: column {name!r} appears twice after --map"
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    problems += [
        f"{where}: missing required column {name!r} (columns: {', '.join(source.header)}); "
        f"if it has another name, add --map THAT_NAME={name}"
        for name in entity.required
        if name not in names
    ]
    if problems:
        raise IngestError(problems)
    ignored = [] if entity.keeps_extra_columns else [n for n in names if n not in entity.columns]
    return {src: dst for src, dst in column_map.items() if src != dst}, ignored


def _set_checks(
    connection: Connection,
    entity: Entity,
    staging: Table,
    source: SourceFile,
    problems: list[tuple[int, str]],
    keep: int,
) -> int:
    """Checks across rows, done in the database: keys repeated in the file, unknown customers."""
    repeats, total = merge.find_duplicate_keys(connection, staging, entity.key, keep)
    for conflict in repeats:
        if entity.key_derived_from_row and conflict.value.startswith(_DERIVED_PREFIX):
            what = "repeats an earlier row in every column and has no event_id"
        else:
            what = f"column '{entity.key}': {conflict.value!r} is a duplicate key"
        first = source.row_label(conflict.first_row or 0)
        problems.append((conflict.row, f"{source.location(conflict.row)}: {what} (first at {first})"))
    if entity.references_customers:
        unknown, missing = merge.find_unknown_customers(connection, staging, keep)
        total += missing
        problems.extend(
            (
                c.row,
                f"{source.location(c.row)}: column 'customer_id': {c.value!r} is not a known customer "
                "(import customers first)",
            )
            for c in unknown
        )
    return total


_DERIVED_PREFIX = "row:"


def _with_derived_keys(entity: Entity, rows: pd.DataFrame) -> pd.DataFrame:
    """Give rows without a source id a stable id from their content, so re-imports match them."""
    missing = rows[entity.key].isna()
    if not missing.any():
        return rows
    content = rows.loc[missing, [c for c in entity.columns if c != entity.key]]
    # Spelled out per type, not left to a library's display format, so ids stay the same across
    # versions: UTC timestamps as ISO 8601 with microseconds, numbers as Python's shortest repr.
    columns = [_canonical_text(content[name]) for name in content.columns]
    canonical = ["\x1f".join(values) for values in zip(*columns, strict=True)]
    digests = [_DERIVED_PREFIX + hashlib.blake2b(t.encode(), digest_size=16).hexdigest() for t in canonical]
    rows = rows.copy()
    rows.loc[missing, entity.key] = digests
    return rows


def _canonical_text(values: pd.Series) -> list[str]:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return ["" if pd.isna(v) else v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for v in values]
    if pd.api.types.is_float_dtype(values.dtype):
        return ["" if pd.isna(v) else repr(float(v)) for v in values]
    return ["" if pd.isna(v) else str(v) for v in values]


def _record_run(connection: Connection, summary: IngestSummary, *, started_at: datetime) -> None:
    connection.execute(
        insert(ingest_runs).values(
            entity=summary.entity,
            source=summary.source,
            sha256=summary.sha256,
            started_at=started_at,
            finished_at=started_at + timedelta(seconds=summary.seconds),
            rows_read=summary.rows_read,
            inserted=summary.inserted,
            updated=summary.updated,
            unchanged=summary.unchanged,
        )
    )
