"""The embedded demo's data steps: generate the demo company once, then import it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from churn.contract import ENTITIES
from churn.ingest import IngestOptions, IngestSummary, ingest_file

# Customers first: every other entity refers to them.
IMPORT_ORDER = ("customers", "subscriptions", "events", "tickets", "surveys", "cancellations")


def demo_files_match(out_dir: Path, *, customers: int, months: int, seed: int) -> bool:
    """Whether ``out_dir`` already holds the demo company for these parameters (so it can be reused).

    The end date is left out on purpose: a demo generated yesterday is reused today rather than
    regenerated one day later and imported over the first, which would mix two companies.
    """
    manifest = out_dir / "demo.json"
    if not manifest.exists():
        return False
    try:
        params = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    wanted = {"customers": customers, "months": months, "seed": seed}
    return all(params.get(k) == v for k, v in wanted.items()) and all(
        demo_file(out_dir, entity) is not None for entity in ENTITIES
    )


def demo_file(out_dir: Path, entity: str) -> Path | None:
    """The demo file for an entity, in whichever format it was written."""
    for suffix in (".csv", ".csv.gz", ".parquet"):
        path = out_dir / f"{entity}{suffix}"
        if path.exists():
            return path
    return None


def ingest_demo(
    engine: Engine,
    out_dir: Path,
    *,
    options: IngestOptions,
    now: datetime,
    on_entity: Callable[[str, Path], Callable[[int, int], None] | None] | None = None,
) -> list[IngestSummary]:
    """Import the six demo files in dependency order."""
    summaries = []
    for entity in IMPORT_ORDER:
        path = demo_file(out_dir, entity)
        if path is None:
            raise FileNotFoundError(f"{out_dir}: no {entity} file (run churn demo-data first)")
        progress = on_entity(entity, path) if on_entity else None
        summaries.append(ingest_file(engine, entity, path, options=options, now=now, on_progress=progress))
    return summaries
