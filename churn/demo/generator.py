"""Generate the demo company batch by batch and write its six files plus a manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from churn.contract import ENTITIES
from churn.demo.activity import event_columns
from churn.demo.billing import cancellation_columns, subscription_columns
from churn.demo.company import Accounts, Roster, customer_columns, customer_ids, draw_accounts, draw_roster
from churn.demo.exposure import customer_days
from churn.demo.fate import Cause, Fates, draw_fates
from churn.demo.support import draw_tickets, ticket_columns
from churn.demo.surveys import survey_columns
from churn.demo.timeline import Window, window_ending
from churn.demo.writer import EntityWriter, FileFormat

if TYPE_CHECKING:
    import pandas as pd

# Fixed, so that the files depend only on (customers, months, seed, end): never on memory or cores.
BATCH_CUSTOMERS = 2_000
MANIFEST = "demo.json"
_ROSTER, _BATCHES = 0, 1  # SeedSequence spawn keys: SeedSequence(seed).spawn(2) gives the same children
_STREAMS = ("accounts", "fates", "days", "events", "tickets", "surveys", "billing")


@dataclass(frozen=True)
class DemoSummary:
    """What was written: one file per entity and its row count."""

    out_dir: Path
    paths: dict[str, Path]
    rows: dict[str, int]
    customers: int
    months: int
    seed: int
    end: date
    window_start: date


def _batches(customers: int) -> Iterator[tuple[int, int, int]]:
    for index, first in enumerate(range(0, customers, BATCH_CUSTOMERS)):
        yield index, first, min(BATCH_CUSTOMERS, customers - first)


def _roster(seed: int, customers: int, window: Window) -> Roster:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_ROSTER,)))
    return draw_roster(rng, customers, window)


def _streams(seed: int, batch: int) -> dict[str, np.random.Generator]:
    """Independent generators per batch and per concern, so changing one part never shifts another."""
    children = np.random.SeedSequence(seed, spawn_key=(_BATCHES, batch)).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}


def _batch_fates(
    streams: dict[str, np.random.Generator], roster: Roster, first: int, count: int, window: Window
) -> tuple[Accounts, Fates]:
    accounts = draw_accounts(streams["accounts"], roster, first, count)
    return accounts, draw_fates(streams["fates"], accounts, window.days)


def _check(customers: int, months: int, file_format: str) -> None:
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file format must be csv or parquet, got {file_format!r}")


def generate_demo_company(
    *,
    out_dir: Path,
    customers: int,
    months: int,
    seed: int,
    end: date,
    file_format: FileFormat = "csv",
    on_progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Write the demo company's six files and demo.json to ``out_dir``; same inputs, same bytes."""
    _check(customers, months, file_format)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = window_ending(end, months)
    roster = _roster(seed, customers, window)
    digits = roster.id_digits
    # Written under temporary names and renamed at the end: an interrupted run leaves no half files behind.
    paths = {name: out_dir / f"{name}.{file_format}" for name in ENTITIES}
    writers = {
        name: EntityWriter(
            path.with_name(path.name + ".partial"),
            ENTITIES[name],
            file_format,
            extra_columns=("industry",) if name == "customers" else (),
        )
        for name, path in paths.items()
    }
    finished = False
    try:
        for batch, first, count in _batches(customers):
            streams = _streams(seed, batch)
            accounts, fates = _batch_fates(streams, roster, first, count, window)
            days = customer_days(streams["days"], accounts, fates, window)
            tickets = draw_tickets(streams["tickets"], accounts, fates, days, window)
            billing = streams["billing"]
            writers["customers"].write(customer_columns(accounts, window, digits))
            writers["subscriptions"].write(subscription_columns(billing, accounts, fates, window, digits))
            writers["events"].write(event_columns(streams["events"], accounts, fates, days, window, digits))
            writers["tickets"].write(ticket_columns(streams["tickets"], tickets, accounts, window, digits))
            writers["surveys"].write(
                survey_columns(streams["surveys"], accounts, fates, tickets, window, digits)
            )
            writers["cancellations"].write(cancellation_columns(billing, accounts, fates, window, digits))
            if on_progress is not None:
                on_progress(first + count)
        finished = True
    finally:
        for writer in writers.values():
            writer.close()
            if not finished:
                writer.path.unlink(missing_ok=True)
    # The old manifest stops describing the folder as soon as the first file is replaced.
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for name, writer in writers.items():
        os.replace(writer.path, paths[name])
        # A stale file of the other format would be picked up by readers that try both.
        other = paths[name].with_suffix(".parquet" if file_format == "csv" else ".csv")
        other.unlink(missing_ok=True)
    rows = {name: writer.rows for name, writer in writers.items()}
    manifest = {
        "seed": seed,
        "customers": customers,
        "months": months,
        "end": end.isoformat(),
        "window_start": window.start.isoformat(),
        "format": file_format,
        "rows": rows,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return DemoSummary(
        out_dir=out_dir, paths=paths, rows=rows, customers=customers, months=months, seed=seed, end=end,
        window_start=window.start,
    )  # fmt: skip


def _moments(window: Window, t: np.ndarray) -> pd.DatetimeIndex:
    import pandas as pd

    return pd.to_datetime(window.seconds(np.where(np.isfinite(t), t, np.nan)), unit="s", utc=True)


def _hidden_fates(*, customers: int, months: int, seed: int, end: date) -> pd.DataFrame:
    """The hidden truth behind a generated company, for tests and docs only: never part of the files."""
    import pandas as pd

    window = window_ending(end, months)
    roster = _roster(seed, customers, window)
    frames = []
    for batch, first, count in _batches(customers):
        accounts, fates = _batch_fates(_streams(seed, batch), roster, first, count, window)
        frames.append(
            pd.DataFrame({
                "customer_id": customer_ids(accounts.number, roster.id_digits).to_pylist(),
                "cause": [Cause(c).name.lower() for c in fates.cause],
                "churn_at": _moments(window, fates.churn),
                "requested_at": _moments(window, fates.requested),
                "onset_at": _moments(window, fates.onset),
                "silent": (fates.cause != Cause.NONE) & ~np.isfinite(fates.onset),
                "patch_cause": [Cause(c).name.lower() for c in fates.patch_cause],
                "patch_start_at": _moments(window, fates.patch_start),
                "winback_at": _moments(window, fates.winback),
                "churn2_at": _moments(window, fates.churn2),
            })
        )  # fmt: skip
    return pd.concat(frames, ignore_index=True)
