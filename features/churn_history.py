"""The company's churn so far, in the tables a data scientist asks for first: by month, sign-up cohort,
reason and segment.

Months and cohorts start with the first month that has usage on record: before it, the subscriptions
an export holds are often only those of customers who were still there when the data begins, and
their churn rate would be zero by construction. Only complete months are counted.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from churn.config import LabelsConfig, ReasonsConfig
from churn.tables import subscriptions, usage_daily
from features.aggregate import read_frame
from features.labels import LABELLED, REASON_SOURCES, UNKNOWN, churn_events, observed_until

MONTH_COLUMNS = ["month", "active_at_start", "new_customers", "churned", "involuntary", "churn_rate"]
COHORT_COLUMNS = ["cohort", "customers", "churned", "churn_rate"]
REASON_COLUMNS = ["reason_code", "reason", "voluntary", "controllable", "churns", "share", *REASON_SOURCES]
RATE_COLUMNS = ["rows", "churned", "churn_rate"]
NO_REASON = "No reason given"


def churn_by_month(
    connection: Connection, config: LabelsConfig, *, start: date | None = None
) -> pd.DataFrame:
    """Per complete calendar month: customers active on its first day, sign-ups, churns and the churn rate.

    ``churn_rate`` is the month's churns over the customers active at its start (logo churn);
    ``involuntary`` counts the churns whose cancellation says the customer did not choose to leave.
    """
    subs = _subscriptions(connection)
    months = _months(connection, subs, start)
    if subs.empty or not months:
        return pd.DataFrame(columns=MONTH_COLUMNS)
    churns = churn_events(connection, config)
    churn_month = _month_of(churns["churned_at"])
    involuntary = churns["voluntary"].eq(False).fillna(False).to_numpy(dtype=bool)
    first_month = _month_of(subs.groupby("customer_id")["started_at"].min())
    rows = []
    for month in months:
        instant = pd.Timestamp(month, tz="UTC")
        covering = (subs["started_at"] <= instant) & (subs["ended_at"].isna() | (subs["ended_at"] > instant))
        active = subs.loc[covering, "customer_id"].nunique()
        in_month = churn_month == month
        churned = int(in_month.sum())
        rows.append(
            {
                "month": month,
                "active_at_start": active,
                "new_customers": int((first_month == month).sum()),
                "churned": churned,
                "involuntary": int((in_month & involuntary).sum()),
                "churn_rate": churned / active if active else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=MONTH_COLUMNS)


def churn_by_cohort(
    connection: Connection, config: LabelsConfig, *, within_days: int = 180, start: date | None = None
) -> pd.DataFrame:
    """Per sign-up month: how many customers started then and the share who churned within ``within_days``.

    A customer signs up with its first subscription. A cohort is shown only once every member has been
    watched for ``within_days``: a younger one would look better than it is.
    """
    if within_days < 1:
        raise ValueError(f"within_days must be at least 1 (got {within_days!r})")
    subs = _subscriptions(connection)
    months = _months(connection, subs, start)
    if subs.empty or not months:
        return pd.DataFrame(columns=COHORT_COLUMNS)
    until = pd.Timestamp(observed_until(connection))
    signed = subs.groupby("customer_id")["started_at"].min().rename("signed_at").reset_index()
    churns = churn_events(connection, config)
    first_churn = churns.groupby("customer_id")["churned_at"].min().rename("churned_at").reset_index()
    customers = signed.merge(first_churn, on="customer_id", how="left")
    customers["cohort"] = _month_of(customers["signed_at"])
    customers["churned"] = (
        customers["churned_at"].notna()
        & (customers["churned_at"] <= customers["signed_at"] + pd.Timedelta(days=within_days))
    ).astype("int64")
    watched = [
        m for m in months if pd.Timestamp(_next_month(m), tz="UTC") + timedelta(days=within_days) <= until
    ]
    grouped = customers[customers["cohort"].isin(watched)].groupby("cohort")["churned"]
    table = pd.DataFrame({"customers": grouped.size(), "churned": grouped.sum()})
    table = table.reindex(watched, fill_value=0).rename_axis("cohort").reset_index()
    table["churn_rate"] = table["churned"] / table["customers"].where(table["customers"] > 0)
    return table[COHORT_COLUMNS]


def churn_by_reason(churns: pd.DataFrame, reasons: ReasonsConfig | None = None) -> pd.DataFrame:
    """Churns per reason (from ``churn_events``), in the taxonomy's words, most common first.

    Every reason of the taxonomy has a row, even with no churns; a churn no one explained counts as
    ``unknown``. The columns named after the reason sources say where the reasons came from: the
    cancellation itself, the text classifier, or a rep.
    """
    taxonomy = (reasons or ReasonsConfig()).taxonomy
    code = churns["reason_code"].astype(object).where(churns["reason_code"].notna(), UNKNOWN)
    source = churns["reason_source"].astype(object)
    codes = list(dict.fromkeys([*taxonomy, *sorted(set(code) - set(taxonomy) - {UNKNOWN}), UNKNOWN]))
    total = len(churns)
    rows = []
    for name in codes:
        mine = (code == name).to_numpy(dtype=bool)
        reason = taxonomy.get(name)
        rows.append(
            {
                "reason_code": name,
                "reason": reason.label if reason else (NO_REASON if name == UNKNOWN else name),
                "voluntary": reason.voluntary if reason else None,
                "controllable": reason.controllable if reason else None,
                "churns": int(mine.sum()),
                "share": mine.sum() / total if total else np.nan,
                **{
                    where: int((mine & (source == where).to_numpy(dtype=bool)).sum())
                    for where in REASON_SOURCES
                },
            }
        )
    table = pd.DataFrame(rows, columns=REASON_COLUMNS)
    known = table[(table["churns"] > 0) | table["reason_code"].isin(list(taxonomy))]
    return known.sort_values(["churns", "reason_code"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def churn_rate_by(labels: pd.DataFrame, column: str) -> pd.DataFrame:
    """The label's churn rate per value of a snapshot column (segment, plan, as_of), over labelled rows.

    ``labels`` is ``label_snapshots``'s result with that column kept; a row is one customer on one
    snapshot day, and it churned if the customer left within the horizon after it.
    """
    if column not in labels.columns:
        raise ValueError(f"labels have no column {column!r} (columns: {', '.join(map(str, labels.columns))})")
    labelled = labels[labels["label_status"] == LABELLED]
    grouped = labelled.groupby(labelled[column].astype(object), sort=True)["churned"]
    table = pd.DataFrame({"rows": grouped.size().astype("int64"), "churned": grouped.sum().astype("int64")})
    table["churn_rate"] = (table["churned"] / table["rows"]).astype("float64")
    return table.rename_axis(column)[RATE_COLUMNS]


def _subscriptions(connection: Connection) -> pd.DataFrame:
    query = select(subscriptions.c.customer_id, subscriptions.c.started_at, subscriptions.c.ended_at)
    subs = read_frame(connection, query)
    if subs.empty:
        return pd.DataFrame(columns=["customer_id", "started_at", "ended_at"])
    subs["started_at"] = pd.to_datetime(subs["started_at"], utc=True)
    subs["ended_at"] = pd.to_datetime(subs["ended_at"], utc=True)
    return subs


def _months(connection: Connection, subs: pd.DataFrame, start: date | None) -> list[date]:
    """The complete months from ``start`` (default: the first day with usage) to the freshest fact."""
    until = observed_until(connection)
    if until is None or subs.empty:
        return []
    if start is None:
        first_usage = connection.execute(select(func.min(usage_daily.c.day))).scalar_one()
        start = first_usage or subs["started_at"].min().date()
    # A month the data starts partway through is not complete either.
    month = start if start.day == 1 else _next_month(start.replace(day=1))
    months = []
    while pd.Timestamp(_next_month(month), tz="UTC") <= pd.Timestamp(until):
        months.append(month)
        month = _next_month(month)
    return months


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _month_of(instants: pd.Series) -> pd.Series:
    """The first day of each instant's UTC month, as a date."""
    stamps = pd.to_datetime(instants, utc=True)
    return stamps.map(lambda t: None if pd.isna(t) else t.date().replace(day=1))
