"""Checking one chunk of an import against the data contract, vectorised over its rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.contract import INT32_MAX, SURVEY_SCALES, TIME_ORDER, Entity, Field, Kind

_TEXT = pd.StringDtype("pyarrow")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
# An explicit offset after a time of day ("...09:30:00Z", "...09:30+02:00"); a bare date has none.
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
# Facts that have happened cannot carry a future timestamp; a day of slack absorbs clock skew.
_FUTURE_SLACK = pd.Timedelta(days=1)
OBSERVED = frozenset(
    {"occurred_at", "opened_at", "first_response_at", "resolved_at", "responded_at", "requested_at"}
)


@dataclass(frozen=True, order=True)
class Problem:
    """One invalid value: where it is and what was expected."""

    row: int
    column: str
    message: str = field(compare=False)


@dataclass
class CheckedChunk:
    """The rows that passed (typed, in contract order) and the problems found."""

    rows: pd.DataFrame
    problems: list[Problem]
    problem_count: int


# Reports the rows of a mask as invalid, optionally saying why (default: "is not <expectation>").
Complaint = Callable[..., None]


class _Collector:
    """Keeps the first few problems of each kind in full and counts the rest."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.problems: list[Problem] = []
        self.count = 0
        self.bad_rows: set[int] = set()

    def add(self, mask: pd.Series, column: str, describe: Callable[[int], str]) -> None:
        if not mask.any():
            return
        rows = mask.index[mask.to_numpy(dtype=bool)]
        self.count += len(rows)
        self.bad_rows.update(rows.tolist())
        for row in rows[: self.keep]:
            self.problems.append(Problem(int(row), column, describe(row)))


def check_chunk(
    entity: Entity,
    frame: pd.DataFrame,
    *,
    timezone: ZoneInfo,
    now: datetime,
    keep: int = 20,
) -> CheckedChunk:
    """Validate and type every contract column of ``frame`` (already renamed to contract names)."""
    found = _Collector(keep)
    typed: dict[str, pd.Series] = {}
    for spec in entity.fields:
        raw = frame[spec.name] if spec.name in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
        typed[spec.name] = _check_field(spec, raw, found, timezone=timezone, now=now)
    _check_survey_scales(entity, typed, frame, found)
    _check_time_order(entity, typed, found)
    rows = pd.DataFrame(typed, index=frame.index)
    if entity.keeps_extra_columns:
        extra = [c for c in frame.columns if c not in entity.columns]
        rows["attributes"] = _attributes(frame[extra])
    if found.bad_rows:
        rows = rows.drop(index=list(found.bad_rows))
    found.problems.sort()
    return CheckedChunk(rows=rows, problems=found.problems[:keep], problem_count=found.count)


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _check_field(
    spec: Field, raw: pd.Series, found: _Collector, *, timezone: ZoneInfo, now: datetime
) -> pd.Series:
    if _is_typed(raw) and spec.kind not in (Kind.TEXT, Kind.CHOICE):
        text, missing = raw, raw.isna()
    else:  # text, or a typed Parquet column (say, numeric ids) where the contract wants text
        text = raw.astype(_TEXT).str.strip()
        missing = (text.isna() | (text == "")).astype(bool)
        text = text.mask(missing)
    if spec.required:
        found.add(missing, spec.name, lambda row: f"column '{spec.name}': is required but empty")

    def invalid(bad: pd.Series, reason: str = "") -> None:
        found.add(
            bad & ~missing,
            spec.name,
            lambda row: (
                f"column '{spec.name}': {_shown(raw.loc[row])} {reason or 'is not ' + spec.expectation()}"
            ),
        )

    match spec.kind:
        case Kind.TEXT:
            # PostgreSQL cannot store NUL in text; refuse it on every backend alike.
            invalid(text.str.contains("\x00", regex=False).fillna(False), "contains a NUL character")
            too_long = text.str.len() > spec.max_length
            invalid(too_long.fillna(False), f"is longer than {spec.max_length} characters")
            return text
        case Kind.CHOICE:
            lowered = text.str.lower()
            invalid(~lowered.isin(spec.choices).fillna(False))
            return lowered
        case Kind.BOOLEAN:
            return _booleans(text, invalid)
        case Kind.INTEGER | Kind.NUMBER:
            return _numbers(spec, text, missing, invalid)
        case Kind.TIMESTAMP:
            stamps, at_clock_change = _timestamps(raw, text, timezone)
            invalid(stamps.isna() & ~at_clock_change)
            invalid(
                at_clock_change,
                f"does not exist or is ambiguous in {timezone.key} (a daylight-saving change); "
                "give it an offset",
            )
            if spec.name in OBSERVED:
                future = stamps > pd.Timestamp(now) + _FUTURE_SLACK
                invalid(future.fillna(False), "is in the future (has it the right time zone?)")
            return stamps
    raise AssertionError(spec.kind)


def _is_typed(raw: pd.Series) -> bool:
    """Parquet columns may already be numbers, booleans or timestamps rather than text."""
    return not (pd.api.types.is_string_dtype(raw.dtype) or raw.dtype == object)


def _booleans(text: pd.Series, invalid: Complaint) -> pd.Series:
    if pd.api.types.is_bool_dtype(text.dtype):
        return text.astype("boolean")
    lowered = text.astype(_TEXT).str.lower()
    values = pd.Series(pd.NA, index=text.index, dtype="boolean")
    values[lowered.isin(_TRUE).fillna(False)] = True
    values[lowered.isin(_FALSE).fillna(False)] = False
    invalid(values.isna() & lowered.notna())
    return values


def _numbers(spec: Field, text: pd.Series, missing: pd.Series, invalid: Complaint) -> pd.Series:
    numbers = _parse_numbers(text)
    if not pd.api.types.is_numeric_dtype(numbers.dtype) or pd.api.types.is_bool_dtype(numbers.dtype):
        numbers = pd.to_numeric(text.astype(_TEXT), errors="coerce")
    numbers = numbers.astype("Float64")
    bad = numbers.isna() | ~np.isfinite(numbers.fillna(0))
    if spec.kind is Kind.INTEGER:
        bad |= (numbers % 1 != 0).fillna(False)
    if spec.minimum is not None:
        bad |= (numbers < spec.minimum).fillna(False)
    if spec.maximum is not None:
        bad |= (numbers > spec.maximum).fillna(False)
    invalid(bad)
    if spec.kind is Kind.INTEGER:
        # Whole-number columns are 32-bit in the database; say so rather than overflow there.
        too_large = (numbers.abs() > INT32_MAX).fillna(False) & ~bad
        invalid(too_large, f"is too large (at most {INT32_MAX:,})")
        numbers = numbers.mask(bad | too_large)
    else:
        numbers = numbers.mask(bad)
    if spec.default is not None:
        numbers = numbers.fillna(spec.default)
    return numbers.astype("Int64") if spec.kind is Kind.INTEGER else numbers.astype("Float64")


def _parse_numbers(text: pd.Series) -> pd.Series:
    """Numbers from text (or typed Parquet values); what does not parse becomes missing."""
    if not _is_typed(text):
        # Arrow parses a clean column in C++; anything odd goes the slower, forgiving way.
        try:
            parsed = pc.cast(pa.array(text.array, type=pa.string(), from_pandas=True), pa.float64())
            return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index).astype("Float64")
        except pa.ArrowInvalid:
            pass
    return pd.to_numeric(text, errors="coerce")


def _timestamps(raw: pd.Series, text: pd.Series, timezone: ZoneInfo) -> tuple[pd.Series, pd.Series]:
    """Parse to aware UTC, values without an offset being local time in ``timezone``.

    Also returns which values fell in a daylight-saving change (nonexistent or ambiguous local times).
    """
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        if raw.dt.tz is not None:
            return raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), pd.Series(False, index=raw.index)
        local = _localise(raw, timezone)
        return local.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), local.isna() & raw.notna()
    text = text.astype(_TEXT)
    uniform = _parse_uniform(text, timezone)
    if uniform is not None:
        return uniform
    has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
    aware = pd.to_datetime(text.where(has_offset), utc=True, format="ISO8601", errors="coerce")
    naive = pd.to_datetime(text.where(~has_offset), format="ISO8601", errors="coerce")
    local = _localise(naive, timezone)
    at_clock_change = (local.isna() & naive.notna()).astype(bool)
    stamps = aware.where(has_offset, local.dt.tz_convert("UTC"))
    return stamps.astype("datetime64[us, UTC]"), at_clock_change


def _parse_uniform(text: pd.Series, timezone: ZoneInfo) -> tuple[pd.Series, pd.Series] | None:
    """Fast path for the usual file, whose timestamps all carry an offset (or all lack one).

    Arrow parses ISO 8601 in C++; if any value does not fit, return None and take the careful path,
    which also says which values are wrong and why.
    """
    arrow = pa.array(text.array, type=pa.string(), from_pandas=True)
    no_clock_change = pd.Series(False, index=text.index)
    try:
        aware = pc.cast(arrow, pa.timestamp("us", tz="UTC"))
        return aware.to_pandas().set_axis(text.index).astype("datetime64[us, UTC]"), no_clock_change
    except pa.ArrowInvalid:
        pass
    try:
        naive = pd.Series(pc.cast(arrow, pa.timestamp("us")).to_pandas()).set_axis(text.index)
    except pa.ArrowInvalid:
        return None
    local = _localise(naive, timezone)
    return local.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), (local.isna() & naive.notna()).astype(
        bool
    )


def _localise(naive: pd.Series, timezone: ZoneInfo) -> pd.Series:
    # Times that do not exist or are ambiguous at a DST change become invalid, not silently shifted.
    return naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")


def _check_survey_scales(
    entity: Entity, typed: dict[str, pd.Series], frame: pd.DataFrame, found: _Collector
) -> None:
    if "survey" not in typed or "score" not in typed:
        return
    for kind, (low, high) in SURVEY_SCALES.items():
        score = typed["score"]
        outside = (typed["survey"] == kind) & ((score < low) | (score > high))
        found.add(
            outside.fillna(False),
            "score",
            lambda row, kind=kind, low=low, high=high: (
                f"column 'score': {_shown(frame['score'].loc[row])} is outside the {kind.upper()} "
                f"scale (expected {low} to {high})"
            ),
        )


def _check_time_order(entity: Entity, typed: dict[str, pd.Series], found: _Collector) -> None:
    for earlier, later in TIME_ORDER.get(entity.name, ()):
        before = (typed[later] < typed[earlier]).fillna(False)
        found.add(
            before,
            later,
            lambda row, earlier=earlier, later=later: (
                f"column '{later}': {typed[later].loc[row].isoformat()} is before "
                f"{earlier} {typed[earlier].loc[row].isoformat()}"
            ),
        )


def _attributes(extra: pd.DataFrame) -> pd.Series:
    """Columns outside the contract, kept per row as JSON text (sorted keys, so re-imports compare equal)."""
    records = extra.astype("object").where(extra.notna(), None).to_dict("records")
    documents = []
    for record in records:
        kept = {k: _json_value(v) for k, v in record.items() if v is not None and not _is_blank(v)}
        documents.append(json.dumps(kept, sort_keys=True, ensure_ascii=False))
    return pd.Series(documents, index=extra.index, dtype="string")


def _is_blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _json_value(value: object) -> object:
    """A value from a (possibly typed Parquet) column as plain JSON: dates as ISO text, arrays as lists."""
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return value.replace("\x00", "")  # PostgreSQL's jsonb cannot hold NUL
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value
