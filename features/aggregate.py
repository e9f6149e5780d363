"""The small pieces every family aggregates with: conditional counts in SQL, per-customer frames, ratios."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Executable, case, func


def count_where(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """SQL: how many rows of the group meet ``condition`` (0, not NULL, when none do)."""
    return func.sum(case((condition, 1), else_=0))


def read_frame(connection: Connection, query: Executable) -> pd.DataFrame:
    """A query's rows as a frame, built column by column.

    Handing SQLAlchemy rows to pandas directly costs seconds per hundred thousand rows: pandas probes
    each row for attributes it does not have.
    """
    result = connection.execute(query)
    names = list(result.keys())
    columns = list(zip(*result.fetchall(), strict=True)) or [()] * len(names)
    return pd.DataFrame({name: list(values) for name, values in zip(names, columns, strict=True)})


def per_customer(connection: Connection, query: Executable) -> pd.DataFrame:
    """Run a per-customer aggregate; the result is indexed by customer_id, every column a float."""
    return read_frame(connection, query).set_index("customer_id").astype("float64")


def ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """``numerator / denominator``, unknown (NaN) where the denominator is 0."""
    return numerator / denominator.where(denominator > 0)
