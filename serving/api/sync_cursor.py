"""The opaque cursor of the risk-score change feed: where a sync stopped, as URL-safe base64 of small JSON."""

from __future__ import annotations

import base64
import binascii
import json

from serving.api.errors import ApiError

CURSOR_VERSION = 1


def encode_cursor(after_change: int) -> str:
    """A cursor that continues after the change ``after_change``."""
    payload = json.dumps({"v": CURSOR_VERSION, "after": after_change}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The change id a cursor continues after; a cursor this API did not hand out is a 422 naming it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        payload = None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != CURSOR_VERSION
        or type(payload.get("after")) is not int
        or not 0 <= payload["after"] <= 2**63 - 1  # a BIGINT
    ):
        raise ApiError(
            422,
            "query parameter 'cursor' is not a cursor this API handed out: pass next_cursor back as it "
            "came, or leave it out to start from the beginning",
            [f"query.cursor: {cursor[:40]!r} is not a valid cursor"],
        )
    return payload["after"]
