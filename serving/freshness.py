"""How fresh each source is at a day: alerts on missing data would be wrong, so stale sources hold them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import Connection, func, select

from churn.tables import subscriptions, survey_responses, tickets, usage_events

# The business time of each source's rows: what "newest row" means for it.
SOURCE_TIMES = {
    "events": usage_events.c.occurred_at,
    "tickets": tickets.c.opened_at,
    "surveys": survey_responses.c.responded_at,
    "subscriptions": subscriptions.c.started_at,
}


@dataclass(frozen=True)
class SourceFreshness:
    """A source's newest row known before a day began, and whether that is older than allowed."""

    source: str
    newest: datetime | None
    age_days: float | None
    limit_days: int | None

    @property
    def stale(self) -> bool:
        if self.limit_days is None:
            return False
        return self.age_days is None or self.age_days > self.limit_days

    def describe(self) -> str:
        if self.newest is None:
            return f"{self.source}: no rows at all"
        limit = f" (allowed: {self.limit_days})" if self.limit_days is not None else ""
        return f"{self.source}: newest row is {self.age_days:.1f} days old{limit}"

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "newest": self.newest.isoformat() if self.newest else None,
            "age_days": None if self.age_days is None else round(self.age_days, 2),
            "limit_days": self.limit_days,
            "stale": self.stale,
        }


def source_freshness(connection: Connection, as_of: date, limits: dict[str, int]) -> list[SourceFreshness]:
    """Every source's freshness at the start of ``as_of`` (UTC); only rows before it count."""
    start = datetime.combine(as_of, time.min, tzinfo=UTC)
    found = []
    for source, column in SOURCE_TIMES.items():
        newest = connection.execute(select(func.max(column)).where(column < start)).scalar()
        if isinstance(newest, datetime) and newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        age = None if newest is None else (start - newest).total_seconds() / 86_400
        found.append(SourceFreshness(source, newest, age, limits.get(source)))
    return found
