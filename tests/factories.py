"""Small, readable input files for tests: plain functions that write contract files."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, Table, insert


def write_csv(path: Path, rows: Iterable[Mapping[str, object]], columns: list[str] | None = None) -> Path:
    """Write rows as CSV; missing values are left empty."""
    rows = list(rows)
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return path


def write_parquet(path: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    pd.DataFrame(list(rows)).to_parquet(path, index=False)
    return path


def customer_rows(n: int = 3) -> list[dict[str, object]]:
    return [
        {
            "customer_id": f"C{i:03d}",
            "name": f"Company {i}",
            "segment": "SMB" if i % 2 else "Enterprise",
            "plan": "Growth",
            "region": "EMEA",
            "owner_email": "csm@example.com",
            "created_at": "2024-01-15T10:00:00Z",
            "seats": 10 + i,
            "industry": "Retail",
        }
        for i in range(1, n + 1)
    ]


def event_rows(n: int = 5, customer_id: str = "C001") -> list[dict[str, object]]:
    return [
        {
            "event_id": f"E{i:05d}",
            "customer_id": customer_id,
            "event_type": "report_created" if i % 2 else "login",
            "occurred_at": f"2024-02-{1 + i % 27:02d}T09:{i % 60:02d}:00Z",
            "user_id": f"{customer_id}-U1",
            "quantity": 1,
        }
        for i in range(1, n + 1)
    ]


def survey_rows() -> list[dict[str, object]]:
    return [
        {
            "response_id": "S1",
            "customer_id": "C001",
            "survey": "nps",
            "score": 9,
            "responded_at": "2024-03-01T12:00:00+03:00",
            "comment": "الخدمة ممتازة",
        },
        {
            "response_id": "S2",
            "customer_id": "C002",
            "survey": "csat",
            "score": 2,
            "responded_at": "2024-03-02T12:00:00Z",
            "comment": "Slow support",
        },
        {
            "response_id": "S3",
            "customer_id": "C003",
            "survey": "ces",
            "score": 6,
            "responded_at": "2024-03-03 12:00:00",
            "comment": None,
        },
    ]


def ticket_rows() -> list[dict[str, object]]:
    return [
        {
            "ticket_id": "T1",
            "customer_id": "C001",
            "opened_at": "2024-03-01T09:00:00Z",
            "first_response_at": "2024-03-01T11:30:00Z",
            "resolved_at": "2024-03-02T09:00:00Z",
            "status": "solved",
            "priority": "high",
            "channel": "email",
            "replies": 3,
            "reopened": "false",
            "escalated": "yes",
            "csat": 4,
        },
        {
            "ticket_id": "T2",
            "customer_id": "C002",
            "opened_at": "2024-03-05T09:00:00Z",
            "status": "open",
            "priority": "normal",
            "channel": "chat",
            "replies": 0,
        },
    ]


def subscription_rows() -> list[dict[str, object]]:
    return [
        {
            "subscription_id": "SUB1",
            "customer_id": "C001",
            "started_at": "2024-01-15T00:00:00Z",
            "ended_at": "2024-06-15T00:00:00Z",
            "mrr": "499.00",
            "plan": "Growth",
            "seats": 10,
            "billing_period": "monthly",
        },
        {
            "subscription_id": "SUB2",
            "customer_id": "C002",
            "started_at": "2024-01-15T00:00:00Z",
            "mrr": 1200.5,
            "plan": "Business",
            "seats": 40,
            "billing_period": "annual",
        },
    ]


def cancellation_rows() -> list[dict[str, object]]:
    return [
        {
            "cancellation_id": "X1",
            "customer_id": "C001",
            "requested_at": "2024-06-01T00:00:00Z",
            "effective_at": "2024-06-15T00:00:00Z",
            "reason_code": "price",
            "reason_text": "السعر مرتفع جدا",
            "voluntary": "true",
            "source": "in_app",
        },
    ]


def insert_rows(
    engine: Engine, table: Table, rows: Iterable[Mapping[str, object]], *, at: datetime | None = None
):
    """Store rows straight into a table, as an import would have, with its bookkeeping columns filled.

    Timestamps may be given as ISO strings. For tests of what reads the tables (feature jobs, labels).
    """
    at = at or datetime(2030, 1, 1, tzinfo=UTC)
    prepared = []
    for row in rows:
        values = {k: _timestamp(v) if k.endswith("_at") else v for k, v in row.items()}
        if "ingested_at" in table.c:
            values.setdefault("ingested_at", at)
            values.setdefault("updated_at", at)
        if table.name == "customers":
            values.setdefault("attributes", {})
        prepared.append(values)
    # One statement for many rows needs the same keys in each: a column a row leaves out is empty.
    names = list(dict.fromkeys(k for values in prepared for k in values))
    prepared = [{k: values.get(k) for k in names} for values in prepared]
    with engine.begin() as connection:
        connection.execute(insert(table), prepared)


def _timestamp(value: object) -> object:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return value
