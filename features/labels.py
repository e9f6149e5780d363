"""Labels: when customers churned, whether a snapshot's customer churned within the horizon, and why.

Labels look into the future of a snapshot by definition, so unlike feature jobs they read every
subscription and cancellation, whenever it happened. The one thing they must not do is guess: a
snapshot whose window (plus the grace gap that proves an end was final) reaches past the freshest fact
in the database is censored, not labelled 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, func, select

from churn.config import LabelsConfig, ReasonsConfig
from churn.tables import (
    alert_outcomes,
    cancellations,
    ingest_runs,
    reason_predictions,
    subscriptions,
    usage_daily,
)
from features.scope import as_of_instant

LABELLED = "labelled"
CENSORED = "censored"
EXCLUDED = "excluded"
STATUSES = (LABELLED, CENSORED, EXCLUDED)

# Where a churn's reason came from, most trusted first: what the cancellation itself says, the text
# classifier's reading of its free text, what a rep recorded on an alert ("customer is leaving").
CANCELLATION = "cancellation"
CLASSIFIER = "classifier"
ALERT_OUTCOME = "alert_outcome"
REASON_SOURCES = (CANCELLATION, CLASSIFIER, ALERT_OUTCOME)
UNKNOWN = "unknown"

# Why the label policy left a churn out, in the order the rules are asked.
INVOLUNTARY = "involuntary"
UNCONTROLLABLE = "uncontrollable"
REASON_CODE = "reason_code"
EXCLUSIONS = (INVOLUNTARY, UNCONTROLLABLE, REASON_CODE)

CHURN_COLUMNS = [
    "customer_id",
    "churned_at",
    "reason_code",
    "reason_source",
    "reason_text",
    "voluntary",
    "cancellation_id",
]
LABEL_COLUMNS = [
    "churned",
    "label_status",
    "churned_at",
    "reason_code",
    "reason_source",
    "voluntary",
    "excluded_because",
]

_UTC = "datetime64[ns, UTC]"
# An open subscription (no ended_at) covers the customer for ever: it sorts after every real end.
_OPEN = np.iinfo(np.int64).max


def churn_events(connection: Connection, config: LabelsConfig) -> pd.DataFrame:
    """Every churn of every customer, with the cancellation that explains it, if any, and its reason.

    Subscriptions that overlap or follow each other within ``grace_days`` are one stretch of coverage;
    the end of a stretch that no subscription resumes is a churn. Columns: customer_id, churned_at
    (aware UTC), reason_code and reason_source (see ``_fill_reasons``; None when no one said why),
    reason_text, voluntary (the cancellation's own flag), cancellation_id (None when none matched).
    """
    churns = _coverage_ends(connection, config.grace_days)
    matched = _match_cancellations(connection, churns, config.grace_days)
    matched = matched.sort_values(["customer_id", "churned_at"], kind="stable").reset_index(drop=True)
    return _fill_reasons(connection, matched)[CHURN_COLUMNS]


def observed_until(connection: Connection) -> datetime | None:
    """The freshest fact in the database: how far our knowledge of who churned reaches."""
    return _freshest_fact(connection)


def label_snapshots(
    connection: Connection,
    snapshots: pd.DataFrame,
    config: LabelsConfig,
    *,
    horizon_days: int | None = None,
    observed_until: datetime | None = None,
    reasons: ReasonsConfig | None = None,
) -> pd.DataFrame:
    """Label each snapshot (customer_id, as_of): did the customer churn in (as_of, as_of + horizon]?

    Returns the snapshots with churned (Int8: 1, 0, or <NA> unless labelled), label_status
    ('labelled', 'censored' or 'excluded'), and the churned_at, reason_code, reason_source, voluntary
    and excluded_because of the churn in the window. A window holding only churns the label policy
    leaves out (by the ``reasons`` taxonomy; default: the built-in one) is 'excluded'; one that ends
    less than ``grace_days`` before ``observed_until`` (default: the freshest fact) is 'censored'.
    """
    taxonomy = (reasons or ReasonsConfig()).taxonomy
    horizon_days = config.horizon_days if horizon_days is None else horizon_days
    _check_horizon(horizon_days)
    missing = [name for name in ("customer_id", "as_of") if name not in snapshots.columns]
    if missing:
        raise ValueError(f"snapshots lack column {missing[0]!r} (expected customer_id and as_of)")
    until = _freshest_fact(connection) if observed_until is None else observed_until
    until_ts = None if until is None else _aware("observed_until", until)

    horizon = pd.Timedelta(days=horizon_days)
    grace = pd.Timedelta(days=config.grace_days)
    as_of = _instants(snapshots["as_of"]).reset_index(drop=True)
    rows = pd.DataFrame(
        {"row": np.arange(len(snapshots)), "customer_id": snapshots["customer_id"].to_numpy(), "as_of": as_of}
    )
    churns = churn_events(connection, config)
    churns = _apply_policy(churns, config, taxonomy)
    churns["excluded"] = churns["excluded_because"].notna()
    in_window = rows.merge(churns, on="customer_id")
    in_window = in_window[
        (in_window["churned_at"] > in_window["as_of"])
        & (in_window["churned_at"] <= in_window["as_of"] + horizon)
    ]
    # A churn that counts wins over one the policy leaves out (a failed payment, a win-back, then a
    # real departure is a real departure); among equals, the first one.
    first = in_window.sort_values(["row", "excluded", "churned_at"], kind="stable").drop_duplicates("row")
    first = first.set_index("row").reindex(rows["row"])

    known = (
        np.zeros(len(rows), dtype=bool)
        if until_ts is None
        else (as_of + horizon + grace <= until_ts).to_numpy(dtype=bool)
    )
    has_churn = first["churned_at"].notna().to_numpy()
    excluded = first["excluded"].fillna(False).to_numpy(dtype=bool)
    status = np.where(~known, CENSORED, np.where(excluded, EXCLUDED, LABELLED))
    labelled = status == LABELLED
    shown = known & has_churn

    churned = pd.array(has_churn.astype("int8"), dtype="Int8")
    churned[~labelled] = pd.NA
    voluntary = pd.array(first["voluntary"].to_numpy(), dtype="boolean")
    voluntary[~shown] = pd.NA

    out = snapshots.copy()
    out["churned"] = churned
    out["label_status"] = status
    out["churned_at"] = first["churned_at"].where(shown).array
    reason = first["reason_code"].to_numpy(dtype=object)
    # object, not str: a missing reason is None here as in churn_events, not NaN.
    out["reason_code"] = pd.Series(
        np.where(shown & first["reason_code"].notna().to_numpy(), reason, None), index=out.index, dtype=object
    )
    out["voluntary"] = voluntary
    for name in ("reason_source", "excluded_because"):
        values = first[name].to_numpy(dtype=object)
        out[name] = pd.Series(
            np.where(shown & first[name].notna().to_numpy(), values, None), index=out.index, dtype=object
        )
    return out


def label_summary(labels: pd.DataFrame, reasons: ReasonsConfig | None = None) -> dict[str, Any]:
    """Snapshots labelled, censored and excluded (and why), the churn rate, and the churns by reason.

    ``churns_by_reason``, ``reason_sources`` and ``orphaned_reasons`` count distinct churns (customer
    and date) seen in a known window; an orphaned reason is a stored code the ``reasons`` taxonomy
    (default: the built-in one) no longer has: such churns stay in the label.
    """
    taxonomy = (reasons or ReasonsConfig()).taxonomy
    counts = labels["label_status"].value_counts()
    summary: dict[str, Any] = {"snapshots": len(labels)}
    summary.update({status: int(counts.get(status, 0)) for status in STATUSES})
    churned = int((labels["churned"] == 1).sum())
    summary["churned"] = churned
    summary["churn_rate"] = churned / summary[LABELLED] if summary[LABELLED] else None
    why = labels.loc[labels["label_status"] == EXCLUDED, "excluded_because"].value_counts()
    summary["excluded_because"] = {name: int(why.get(name, 0)) for name in EXCLUSIONS}
    seen = labels[labels["churned_at"].notna()].drop_duplicates(["customer_id", "churned_at"])
    reason = seen["reason_code"].astype(object).where(seen["reason_code"].notna(), UNKNOWN)
    summary["churns"] = len(seen)
    summary["churns_by_reason"] = _counts(reason)
    source = seen["reason_source"].astype(object).where(seen["reason_source"].notna(), UNKNOWN)
    summary["reason_sources"] = _counts(source)
    summary["orphaned_reasons"] = _counts(reason[(reason != UNKNOWN) & ~reason.isin(list(taxonomy))])
    return summary


def _counts(values: pd.Series) -> dict[str, int]:
    """Counts by value, largest first (ties by name), as plain ints."""
    counted = values.value_counts()
    return {str(k): int(n) for k, n in sorted(counted.items(), key=lambda item: (-item[1], str(item[0])))}


def _check_horizon(horizon_days: int) -> None:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer) or horizon_days < 1:
        raise ValueError(f"horizon_days must be a whole number of days, at least 1 (got {horizon_days!r})")


def _coverage_ends(connection: Connection, grace_days: int) -> pd.DataFrame:
    """The churn dates: ends of coverage that no subscription resumes within the grace gap."""
    query = select(
        subscriptions.c.customer_id, subscriptions.c.started_at, subscriptions.c.ended_at
    ).order_by(subscriptions.c.customer_id, subscriptions.c.started_at, subscriptions.c.subscription_id)
    subs = _read(connection, query)
    if subs.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=object), "churned_at": pd.Series(dtype=_UTC)})
    customer = subs["customer_id"].to_numpy()
    starts = _nanoseconds(subs["started_at"])
    ended = _instants(subs["ended_at"])
    # A row ending before it starts is bad data; it must not pull the coverage end backwards.
    ends = np.where(ended.isna().to_numpy(), _OPEN, np.maximum(_nanoseconds(ended), starts))
    # Coverage so far, per customer: the latest end of any subscription started up to this row.
    coverage = pd.Series(ends).groupby(customer, sort=False).cummax().to_numpy()
    first_row = np.r_[True, customer[1:] != customer[:-1]]
    covered_before = np.r_[np.int64(0), coverage[:-1]]
    grace_ns = pd.Timedelta(days=grace_days).value
    # Subtract from the start rather than add to the end: an open coverage end cannot grow.
    new_stretch = first_row | (starts - grace_ns > covered_before)
    last_of_stretch = np.r_[new_stretch[1:], True]
    churned = last_of_stretch & (coverage != _OPEN)
    return pd.DataFrame(
        {
            "customer_id": customer[churned],
            "churned_at": pd.to_datetime(coverage[churned], unit="ns", utc=True).astype(_UTC),
        }
    )


def _match_cancellations(connection: Connection, churns: pd.DataFrame, grace_days: int) -> pd.DataFrame:
    """Attach to each churn the nearest cancellation of its customer effective within the grace gap."""
    query = select(
        cancellations.c.customer_id,
        cancellations.c.effective_at,
        cancellations.c.reason_code,
        cancellations.c.reason_text,
        cancellations.c.voluntary,
        cancellations.c.cancellation_id,
    )
    found = _read(connection, query)
    found["effective_at"] = _instants(found["effective_at"])
    found["customer_id"] = found["customer_id"].astype(object)
    churns = churns.assign(customer_id=churns["customer_id"].astype(object))
    matched = pd.merge_asof(
        churns.sort_values("churned_at", kind="stable"),
        found.sort_values("effective_at", kind="stable"),
        left_on="churned_at",
        right_on="effective_at",
        by="customer_id",
        direction="nearest",
        tolerance=pd.Timedelta(days=grace_days),
    )
    out = matched[[name for name in CHURN_COLUMNS if name != "reason_source"]].copy()
    for name in ("reason_code", "reason_text", "cancellation_id"):
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    out["voluntary"] = out["voluntary"].astype("boolean")
    return out


def _fill_reasons(connection: Connection, churns: pd.DataFrame) -> pd.DataFrame:
    """Each churn's reason: the cancellation's code, else the classifier's, else a rep's on an alert.

    A rep's reason counts if it was recorded before the churn and after the customer's previous churn
    (what they said before a win-back is about the earlier departure); the latest such one wins.
    """
    churns = churns.copy()
    own = _blank_is_none(churns["reason_code"])
    churns["reason_source"] = pd.Series(np.where(own.notna(), CANCELLATION, None), dtype=object)
    # "other" says a reason was given but not which: the classifier or a rep may place it.
    stated_other = (own == "other").fillna(False).astype(bool)
    own = own.where(~stated_other)

    predicted = _read(
        connection, select(reason_predictions.c.cancellation_id, reason_predictions.c.reason_code)
    )
    by_cancellation = dict(
        zip(predicted["cancellation_id"], _blank_is_none(predicted["reason_code"]), strict=True)
    )
    classified = churns["cancellation_id"].map(lambda key: None if key is None else by_cancellation.get(key))
    use = own.isna() & classified.notna()
    own = own.where(~use, classified)
    churns.loc[use, "reason_source"] = CLASSIFIER

    said = _read(
        connection,
        select(alert_outcomes.c.customer_id, alert_outcomes.c.created_at, alert_outcomes.c.reason_code).where(
            alert_outcomes.c.outcome == "churning",
            alert_outcomes.c.reason_code.is_not(None),
            alert_outcomes.c.customer_id.is_not(None),
        ),
    )
    said["reason_code"] = _blank_is_none(said["reason_code"])
    said = said[said["reason_code"].notna()]
    if not said.empty and own.isna().any():
        said = said.assign(
            created_at=_instants(said["created_at"]), customer_id=said["customer_id"].astype(object)
        )
        previous = churns.groupby("customer_id", sort=False)["churned_at"].shift(1)
        ordered = churns.assign(previous_churn=previous, position=np.arange(len(churns)))
        latest = (
            pd.merge_asof(
                ordered.sort_values("churned_at", kind="stable"),
                said.rename(columns={"reason_code": "said_reason"}).sort_values("created_at", kind="stable"),
                left_on="churned_at",
                right_on="created_at",
                by="customer_id",
                direction="backward",
            )
            .set_index("position")
            .sort_index()
        )
        fresh = latest["previous_churn"].isna() | (latest["created_at"] > latest["previous_churn"])
        told = latest["said_reason"].where(fresh & latest["said_reason"].notna()).to_numpy(dtype=object)
        use = own.isna().to_numpy() & pd.notna(told)
        own = own.where(~use, pd.Series(told, index=own.index))
        churns.loc[use, "reason_source"] = ALERT_OUTCOME

    own = own.where(own.notna() | ~stated_other, "other")
    churns["reason_code"] = own.astype(object).where(own.notna(), None)
    return churns


def _apply_policy(churns: pd.DataFrame, config: LabelsConfig, taxonomy: dict[str, Any]) -> pd.DataFrame:
    """Each churn's voluntary flag as the policy reads it, and why the policy leaves it out (None: kept).

    A churn is involuntary if its cancellation says so or its reason is; a code the taxonomy does not
    know (orphaned by a taxonomy change) says nothing either way, so that churn stays in the label.
    """
    known = churns["reason_code"].map(lambda code: taxonomy.get(code) if code is not None else None)
    reason_voluntary = pd.array(known.map(lambda r: None if r is None else r.voluntary), dtype="boolean")
    uncontrollable = known.map(lambda r: r is not None and not r.controllable).to_numpy(dtype=bool)
    flag = churns["voluntary"].astype("boolean")
    involuntary = (
        flag.eq(False).fillna(False) | pd.Series(reason_voluntary).eq(False).fillna(False).to_numpy()
    ).to_numpy(dtype=bool)
    voluntary = flag.where(flag.notna(), pd.Series(reason_voluntary, index=flag.index))
    voluntary[involuntary] = False
    coded = churns["reason_code"].isin(config.exclude_reason_codes).to_numpy(dtype=bool)
    because = np.select(
        [involuntary & config.exclude_involuntary, uncontrollable & config.exclude_uncontrollable, coded],
        list(EXCLUSIONS),
        default="",
    )
    return churns.assign(
        voluntary=voluntary,
        excluded_because=pd.Series(np.where(because == "", None, because), index=churns.index, dtype=object),
    )


def _blank_is_none(values: pd.Series) -> pd.Series:
    """Codes as text, with missing and blank ones as None."""
    text = values.astype(object).map(
        lambda v: None if v is None or pd.isna(v) or not str(v).strip() else str(v).strip()
    )
    return text.astype(object)


def _freshest_fact(connection: Connection) -> datetime | None:
    # Usage is read from the daily rollup (its key starts with the day, so the newest day is one index
    # probe, where max(occurred_at) over raw events is a full scan); a day counts as seen to its end.
    latest = [
        select(func.max(subscriptions.c.started_at)).scalar_subquery(),
        select(func.max(subscriptions.c.ended_at)).scalar_subquery(),
        select(func.max(usage_daily.c.day)).scalar_subquery(),
        select(func.max(ingest_runs.c.finished_at)).scalar_subquery(),
    ]
    started, ended, usage_day, last_import = connection.execute(select(*latest)).one()
    usage = as_of_instant(usage_day) + timedelta(days=1) if usage_day is not None else None
    values = [value for value in (started, ended, usage) if value is not None]
    if not values:
        return None
    # An end date later than the last import is a plan (a cancellation scheduled ahead), not a fact.
    return min(max(values), last_import) if last_import is not None else max(values)


def _read(connection: Connection, query: Select[Any]) -> pd.DataFrame:
    """A query's rows as a frame, built column-wise (pandas inspects Row objects one by one, slowly)."""
    result = connection.execute(query)
    names = list(result.keys())
    columns = list(zip(*result.all(), strict=True)) or [()] * len(names)
    return pd.DataFrame(
        {name: pd.Series(list(values), dtype=object) for name, values in zip(names, columns, strict=True)}
    )


def _instants(values: pd.Series) -> pd.Series:
    """Dates (as midnight UTC) or timestamps as aware UTC, at one resolution so they compare and merge."""
    return pd.Series(pd.to_datetime(values, utc=True), index=values.index).astype(_UTC)


def _nanoseconds(values: pd.Series) -> np.ndarray:
    return _instants(values).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")


def _aware(name: str, value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{name} {value!r} has no time zone: give an aware UTC timestamp")
    return stamp.tz_convert("UTC")
