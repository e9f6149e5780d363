"""What is in the database: row counts and the newest import per entity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from churn.tables import CONTRACT_TABLES, ingest_runs


@dataclass(frozen=True)
class EntityStatus:
    entity: str
    rows: int
    last_import_at: datetime | None
    last_source: str | None


def entity_status(engine: Engine) -> list[EntityStatus]:
    """Rows stored and the newest import, for each contract entity."""
    statuses = []
    with engine.connect() as connection:
        for entity, table in CONTRACT_TABLES.items():
            rows = connection.execute(select(func.count()).select_from(table)).scalar_one()
            last = connection.execute(
                select(ingest_runs.c.finished_at, ingest_runs.c.source)
                .where(ingest_runs.c.entity == entity)
                .order_by(ingest_runs.c.run_id.desc())
                .limit(1)
            ).first()
            statuses.append(EntityStatus(entity, rows, *(last or (None, None))))
    return statuses
