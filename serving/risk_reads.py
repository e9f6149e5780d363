"""Reading the risk history: a customer's latest score and scored days, and the change feed CRMs sync from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Row, Select, func, select

from churn.tables import customers, risk_scores

SCORE_COLUMNS = (
    risk_scores.c.customer_id,
    risk_scores.c.as_of,
    risk_scores.c.risk,
    risk_scores.c.tier,
    risk_scores.c.model_version,
    risk_scores.c.snapshot_built_at,
    risk_scores.c.scored_at,
    risk_scores.c.updated_at,
    risk_scores.c.change_id,
)


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes a sync wants: after a change id, since a time, of some tiers, risks, segment or owner."""

    after_change: int = 0
    updated_since: datetime | None = None
    tiers: Sequence[str] = ()
    min_risk: float | None = None
    segment: str | None = None
    owner_email: str | None = None


def customer_known(connection: Connection, customer_id: str) -> bool:
    """Whether the customer was ever imported."""
    found = connection.execute(select(customers.c.customer_id).where(customers.c.customer_id == customer_id))
    return found.first() is not None


def latest_score(connection: Connection, customer_id: str) -> Row | None:
    """The customer's score of its latest scored day, with the stored drivers (or None if never scored)."""
    query = (
        select(*SCORE_COLUMNS, risk_scores.c.drivers)
        .where(risk_scores.c.customer_id == customer_id)
        .order_by(risk_scores.c.as_of.desc())
        .limit(1)
    )
    return connection.execute(query).first()


def score_history(
    connection: Connection, customer_id: str, *, start: date | None, end: date | None, limit: int
) -> list[Row]:
    """The customer's scored days from ``start`` to ``end`` (inclusive), oldest first, at most ``limit``."""
    query = select(*SCORE_COLUMNS).where(risk_scores.c.customer_id == customer_id)
    if start is not None:
        query = query.where(risk_scores.c.as_of >= start)
    if end is not None:
        query = query.where(risk_scores.c.as_of <= end)
    return list(connection.execute(query.order_by(risk_scores.c.as_of).limit(limit)))


def changes(connection: Connection, wanted: ChangeFilter, *, limit: int) -> list[Row]:
    """Score rows changed after ``wanted.after_change``, in change order, at most ``limit``.

    One row per customer and scored day: a rescored day whose values changed carries a new, larger
    change id, so it comes again; an unchanged one does not.
    """
    return list(connection.execute(_change_query(wanted).limit(limit)))


def _change_query(wanted: ChangeFilter) -> Select:
    query = (
        select(*SCORE_COLUMNS, customers.c.segment, customers.c.owner_email)
        .select_from(risk_scores.outerjoin(customers, customers.c.customer_id == risk_scores.c.customer_id))
        .where(risk_scores.c.change_id > wanted.after_change)
        .order_by(risk_scores.c.change_id)
    )
    if wanted.updated_since is not None:
        query = query.where(risk_scores.c.updated_at >= wanted.updated_since)
    if wanted.tiers:
        query = query.where(risk_scores.c.tier.in_(list(wanted.tiers)))
    if wanted.min_risk is not None:
        query = query.where(risk_scores.c.risk >= wanted.min_risk)
    if wanted.segment is not None:
        query = query.where(customers.c.segment == wanted.segment)
    if wanted.owner_email is not None:
        # E-mail addresses are matched as people type them, whatever the case the CRM stored.
        query = query.where(func.lower(customers.c.owner_email) == wanted.owner_email.lower())
    return query
