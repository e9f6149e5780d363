"""Vectorised text columns: zero-padded ids and ISO 8601 timestamps built straight into Arrow buffers.

Formatting tens of millions of values one Python string at a time (or with ``strftime``) would dominate
the generator's run time; composing the bytes with numpy is about twenty times faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pyarrow as pa

from churn.demo.timeline import DAY_S, civil_dates

# A part is literal text or (non-negative integers, minimum digits) rendered like f"{value:0{digits}d}".
Part = str | tuple[np.ndarray, int]

_ZERO = ord("0")


def _digit_count(values: np.ndarray, minimum: int) -> np.ndarray:
    digits = np.full(values.shape, minimum, dtype=np.int64)
    power = 10 ** np.int64(minimum)
    while True:
        wider = values >= power
        if not wider.any():
            return digits
        digits += wider
        power *= 10


def sequence_within(group: np.ndarray) -> np.ndarray:
    """Number rows 1, 2, 3... within each run of equal values of a sorted group column (for ids)."""
    index = np.arange(len(group))
    first = np.r_[True, group[1:] != group[:-1]] if len(group) else np.zeros(0, dtype=bool)
    return index - np.maximum.accumulate(np.where(first, index, 0)) + 1


def compose_text(parts: Sequence[Part], *, valid: np.ndarray | None = None) -> pa.StringArray:
    """Concatenate literal and zero-padded integer parts row by row into an Arrow string column."""
    n = next(len(p[0]) for p in parts if not isinstance(p, str))
    widths: list[np.ndarray | int] = []
    for part in parts:
        if isinstance(part, str):
            widths.append(len(part.encode("utf-8")))
            continue
        values = np.asarray(part[0], dtype=np.int64)
        if (values < 0).any():
            raise ValueError("compose_text formats non-negative integers only")
        widths.append(_digit_count(values, part[1]))
    row_length = sum((np.broadcast_to(w, (n,)) for w in widths), start=np.zeros(n, dtype=np.int64))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_length, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("text column too large for one Arrow string array: use smaller batches")
    widest = [int(np.max(w, initial=0)) for w in widths]
    data = _fixed_width_bytes(parts, widest, n)
    if any(np.ndim(w) and n and (w != widest[i]).any() for i, w in enumerate(widths)):
        # Narrower numbers were padded to the widest one: drop the extra leading zeros row by row.
        keep = np.ones((n, sum(widest)), dtype=bool)
        column = 0
        for width, wide in zip(widths, widest, strict=True):
            if np.ndim(width):
                keep[:, column : column + wide] = np.arange(wide)[None, :] >= (wide - width)[:, None]
            column += wide
        data = data.reshape(n, -1)[keep]
    validity = None
    null_count = 0
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid.astype(np.uint8), bitorder="little"))
        null_count = int(n - valid.sum())
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data), validity, null_count
    )


def _fixed_width_bytes(parts: Sequence[Part], widths: list[int], n: int) -> np.ndarray:
    """Fill a (rows, width) byte matrix column by column, numbers padded to the given widths."""
    matrix = np.empty((n, sum(widths)), dtype=np.uint8)
    column = 0
    for part, width in zip(parts, widths, strict=True):
        if isinstance(part, str):
            matrix[:, column : column + width] = np.frombuffer(part.encode("utf-8"), dtype=np.uint8)
        else:
            remaining = np.asarray(part[0], dtype=np.int64).copy()
            for k in range(width):
                matrix[:, column + width - 1 - k] = _ZERO + remaining % 10
                remaining //= 10
        column += width
    return matrix.reshape(-1)


def iso_utc(seconds: np.ndarray) -> pa.StringArray:
    """ISO 8601 UTC timestamps such as 2025-03-04T09:12:33Z from epoch seconds; NaN becomes null."""
    seconds = np.asarray(seconds, dtype=np.float64)
    n = len(seconds)
    valid = ~np.isnan(seconds)
    whole = np.where(valid, seconds, 0.0).astype(np.int64)
    days, of_day = np.divmod(whole, DAY_S)
    first = int(days.min(initial=0))
    # Render each calendar day and each second of the day once, then gather rows of bytes.
    calendar_days = np.arange(first, int(days.max(initial=0)) + 1)
    year, month, day = civil_dates(calendar_days)
    date_bytes = _byte_rows(compose_text([(year, 4), "-", (month, 2), "-", (day, 2)]), 10)
    time_bytes = _clock_bytes()
    matrix = np.empty((n, 20), dtype=np.uint8)
    matrix[:, :10] = date_bytes[days - first]
    matrix[:, 10] = ord("T")
    matrix[:, 11:19] = time_bytes[of_day]
    matrix[:, 19] = ord("Z")
    offsets = np.arange(n + 1, dtype=np.int32) * 20
    validity = None
    null_count = int(n - valid.sum())
    if null_count:
        validity = pa.py_buffer(np.packbits(valid.astype(np.uint8), bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(matrix), validity, null_count)


@cache
def _clock_bytes() -> np.ndarray:
    """HH:MM:SS for every second of a day, as an (86400, 8) byte matrix."""
    clock = np.arange(DAY_S)
    text = compose_text([(clock // 3600, 2), ":", (clock // 60 % 60, 2), ":", (clock % 60, 2)])
    return _byte_rows(text, 8)


def _byte_rows(text: pa.StringArray, width: int) -> np.ndarray:
    """The bytes of a fixed-width string column as a (rows, width) matrix."""
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8, count=len(text) * width)
    return data.reshape(len(text), width)
