"""`churn train` speed on a feature table, beside a bare ``lightgbm.train`` on the same matrix.

    python -m benchmarks.training [--customers 100000] [--snapshots 26] [--keep-data DIR] [--threads N]

The table is synthetic but shaped like the product's snapshots: one row per customer and weekly
as_of, 160 float features named like the catalogue's (engagement per event type, tickets, NPS,
account), three text columns and a ``churned`` label (churn within 28 days, about 4.5% positives)
that follows a customer's decline before they leave. It is written to Parquet and read by all three
runs, each in a fresh process so its peak memory (``ru_maxrss`` from ``wait4``) is its own:

- the baseline: read the Parquet, text columns to ``category``, one ``lightgbm.train`` on every row
  with ``training.model.default_params`` and exactly the final model's number of rounds (no
  validation set, no early stopping);
- ``churn train --table ... --json --horizon-days 28`` with ``CHURN_HOME`` in a temporary folder, so
  MLflow writes to a throwaway ``mlruns/``;
- ``training.backtest.train`` called directly on the same dataset: the backtest and the final fit
  without MLflow, the run log or the report, its stages timed.

All three run from a copy of the code taken at the start: the working tree may change during a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.provenance import code_version, frozen_code

SEED = 1
LAST_AS_OF = date(2026, 10, 5)
STEP_DAYS = 7
HORIZON_DAYS = 28
TARGET_POSITIVE_RATE = 0.045
GOAL = 1.5  # churn train within 1.5x of the bare fit
WINDOWS = (7, 30, 90)
EVENT_TYPES = (  # (event type, share of ordinary usage): the demo company's
    ("login", 0.24),
    ("dashboard_viewed", 0.18),
    ("search_performed", 0.05),
    ("report_created", 0.06),
    ("report_exported", 0.05),
    ("comment_added", 0.07),
    ("file_uploaded", 0.04),
    ("workflow_created", 0.02),
    ("workflow_run", 0.08),
    ("integration_synced", 0.07),
    ("api_call", 0.08),
    ("settings_changed", 0.015),
    ("user_invited", 0.01),
    ("billing_page_viewed", 0.006),
    ("data_export_requested", 0.002),
    ("payment_failed", 0.002),
)
SEGMENTS = ("smb", "mid_market", "enterprise")
PLANS = ("starter", "growth", "pro", "enterprise")
TEXT_COLUMNS = ("segment", "plan", "billing_period")


# --- data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customers:
    """What stays with a customer across snapshots; days count from the first as_of."""

    segment: np.ndarray
    plan: np.ndarray
    annual: np.ndarray
    seats: np.ndarray
    mrr: np.ndarray
    start_day: np.ndarray  # negative: a customer before the first as_of
    level: np.ndarray  # usage per seat
    shares: np.ndarray  # customers x event types
    health: np.ndarray  # latent, > 0 is healthy
    nps: np.ndarray  # NaN: never answers surveys
    survey_phase: np.ndarray
    renewal_phase: np.ndarray
    churn_day: np.ndarray  # inf: stays
    decline_from: np.ndarray  # usage and sentiment sink from here to the churn (or a dip's end)
    decline_to: np.ndarray
    depth: np.ndarray
    drift: np.ndarray  # customers x weeks: persistent ups and downs of usage (AR(1))


def make_customers(rng: np.random.Generator, n: int, snapshots: int) -> Customers:
    span = STEP_DAYS * (snapshots - 1)
    segment = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    plan_given_segment = np.array([[0.5, 0.35, 0.15, 0.0], [0.1, 0.4, 0.4, 0.1], [0.0, 0.1, 0.4, 0.5]])
    plan = (rng.random(n)[:, None] > plan_given_segment[segment].cumsum(axis=1)).sum(axis=1).clip(0, 3)
    annual = rng.random(n) < np.array([0.25, 0.5, 0.8])[segment]
    seats = np.maximum(1, np.round(np.exp(rng.normal(np.log([4, 20, 120])[segment], 0.6))))
    price = np.array([15.0, 30.0, 50.0, 80.0])[plan] * np.where(annual, 0.85, 1.0)
    mrr = np.round(seats * price * np.exp(rng.normal(0, 0.15, n)), 2)
    joins = rng.random(n) < 0.1
    start_day = np.where(joins, rng.uniform(0, span, n), -(14 + rng.exponential(450, n)))
    health = rng.normal(0, 1, n)
    level = np.exp(rng.normal(0, 0.5, n) + 0.3 * health)
    base = np.array([share for _, share in EVENT_TYPES])
    shares = rng.dirichlet(base * 30 + 0.05, size=n)
    nps = np.where(rng.random(n) < 0.4, np.nan, np.clip(7.5 + 1.5 * health + rng.normal(0, 1.5, n), 0, 10))
    period = np.where(annual, 365.0, 30.0)
    renewal_phase = rng.uniform(0, period)

    # Who leaves: riskier when unhealthy, small, monthly, on the cheapest plan or barely using it.
    risk = (
        -0.9 * health
        + 0.6 * (segment == 0)
        + 0.5 * ~annual
        + 0.4 * (plan == 0)
        + 0.8 * (level < np.quantile(level, 0.25))
        + 0.6 * (np.nan_to_num(nps, nan=7.0) <= 6)
    )
    last_label_day = span + HORIZON_DAYS
    # Most leave at a renewal inside the period; some mid-term.
    renewal = renewal_phase + period * np.floor(rng.random(n) * np.ceil(last_label_day / period))
    renewal = np.where(renewal > last_label_day, np.inf, renewal)
    mid_term = rng.random(n) < 0.2
    candidate = np.where(mid_term, rng.uniform(0, last_label_day, n), renewal)
    candidate = np.where(candidate > np.maximum(start_day, 0) + 7, candidate, np.inf)
    offset = _solve_churn_offset(risk, candidate, start_day, snapshots)
    churns = (rng.random(n) < _sigmoid(offset + risk)) & np.isfinite(candidate)
    churn_day = np.where(churns, candidate, np.inf)

    # Most churners fade first (silent ones do not); some who stay have a dip that recovers.
    lead = rng.uniform(21, 120, n)
    fades = churns & (rng.random(n) < 0.75)
    dips = ~churns & (rng.random(n) < 0.1)
    dip_end = rng.uniform(-60, span + 60, n)
    never = -1e9  # no decline: a window that ended long ago
    decline_to = np.where(fades, churn_day, np.where(dips, dip_end, never))
    decline_from = decline_to - np.where(fades, lead, 40.0)
    depth = np.where(fades, rng.uniform(0.4, 0.9, n), np.where(dips, 0.5, 0.0))

    weeks = snapshots + 27  # 26 weeks of look-back before the first as_of
    drift = np.empty((n, weeks))
    drift[:, 0] = rng.normal(0, 0.35, n)
    for week in range(1, weeks):
        drift[:, week] = 0.85 * drift[:, week - 1] + np.sqrt(1 - 0.85**2) * rng.normal(0, 0.35, n)
    return Customers(
        segment=segment,
        plan=plan,
        annual=annual,
        seats=seats,
        mrr=mrr,
        start_day=start_day,
        level=level,
        shares=shares,
        health=health,
        nps=nps,
        survey_phase=rng.uniform(0, 90, n),
        renewal_phase=renewal_phase,
        churn_day=churn_day,
        decline_from=decline_from,
        decline_to=decline_to,
        depth=depth,
        drift=drift,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _solve_churn_offset(
    risk: np.ndarray, churn_day: np.ndarray, start_day: np.ndarray, snapshots: int
) -> float:
    """The intercept that makes the expected share of positive rows the target (bisection)."""
    days = STEP_DAYS * np.arange(snapshots)
    present = days[None, :] >= start_day[:, None] + 7
    rows_if_stays = present.sum(axis=1)
    before = present & (days[None, :] < churn_day[:, None])
    rows_if_leaves = before.sum(axis=1)
    positives_if_leaves = (before & (days[None, :] + HORIZON_DAYS >= churn_day[:, None])).sum(axis=1)
    low, high = -15.0, 5.0
    for _ in range(60):
        middle = (low + high) / 2
        p = _sigmoid(middle + risk)
        rate = (p * positives_if_leaves).sum() / (p * rows_if_leaves + (1 - p) * rows_if_stays).sum()
        low, high = (middle, high) if rate < TARGET_POSITIVE_RATE else (low, middle)
    return (low + high) / 2


def feature_names() -> list[str]:
    """The 160 float columns, named like the product's catalogue."""
    names = []
    for event, _ in EVENT_TYPES:
        for w in WINDOWS:
            names += [f"{event}_events_{w}d", f"{event}_events_{w}d_vs_prev_{w}d"]
    for w in WINDOWS:
        names += [
            f"events_{w}d",
            f"events_{w}d_vs_prev_{w}d",
            f"events_per_30d_{w}d",
            f"active_days_{w}d",
            f"active_users_{w}d",
            f"active_users_{w}d_vs_prev_{w}d",
            f"seat_utilization_{w}d",
            f"event_types_used_{w}d",
        ]
    names += ["days_since_last_event", "days_since_last_login", "days_since_last_report_exported"]
    names += ["days_since_last_api_call", "tickets_opened_7d", "tickets_opened_30d", "tickets_opened_90d"]
    names += ["tickets_opened_30d_vs_prev_30d", "tickets_opened_90d_vs_prev_90d"]
    for w in (30, 90):
        names += [
            f"median_first_response_h_{w}d",
            f"avg_resolution_h_{w}d",
            f"first_contact_resolution_{w}d",
            f"reopen_rate_{w}d",
            f"escalation_rate_{w}d",
            f"high_priority_share_{w}d",
            f"ticket_csat_{w}d",
        ]
    names += ["open_tickets", "oldest_open_ticket_age_days", "tickets_awaiting_first_response"]
    names += ["last_nps", "days_since_last_survey_answer", "nps_90d", "nps_score_change_90d"]
    names += ["csat_satisfied_share_90d", "ces_mean_90d"]
    names += ["days_to_renewal", "seats", "mrr", "tenure_days", "mrr_change_30d", "mrr_change_90d"]
    names += ["failed_payments_30d", "failed_payments_90d"]
    return names


def snapshot(rng: np.random.Generator, c: Customers, number: int, snapshots: int) -> pa.Table:
    """The rows of one as_of: every customer who has joined and not yet left, with the label."""
    day = STEP_DAYS * number
    rows = np.flatnonzero((day >= c.start_day + 7) & (day < c.churn_day))
    n = len(rows)
    seats, level, shares = c.seats[rows], c.level[rows], c.shares[rows]
    tenure = day - c.start_day[rows]

    def health_at(d: np.ndarray | float) -> np.ndarray:
        frm, to = c.decline_from[rows], c.decline_to[rows]
        progress = np.clip((d - frm) / np.maximum(to - frm, 1.0), 0.0, 1.0) * (d <= to)
        return 1.0 - c.depth[rows] * progress

    def usage(mid_day: float) -> np.ndarray:
        week = np.clip(round(mid_day / STEP_DAYS) + 26, 0, c.drift.shape[1] - 1)
        return seats**0.9 * 3.0 * level * np.exp(c.drift[rows, week]) * health_at(mid_day)

    def change(current: np.ndarray, previous: np.ndarray, w: int) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (current - previous) / previous
        return np.where((previous > 0) & (tenure >= 2 * w), ratio, np.nan)

    def share_of(p: np.ndarray, of: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(of > 0, rng.binomial(of.astype(int), np.clip(p, 0, 1)) / of, np.nan)

    columns: dict[str, np.ndarray] = {}
    h = health_at(float(day))
    decline = 1.0 - h
    counts, totals, previous_totals = {}, {}, {}
    # Current windows nest (7d within 30d within 90d); each previous window is drawn on its own.
    inner, inner_days = np.zeros((n, len(EVENT_TYPES))), np.zeros(n)
    for w in WINDOWS:
        days_in = np.clip(tenure, 0, w)
        extra = (days_in - inner_days)[:, None]
        rate = usage(day - w / 2)[:, None] * shares
        current = inner + rng.poisson(rate * extra)
        previous = rng.poisson(usage(day - 1.5 * w)[:, None] * shares * np.clip(tenure - w, 0, w)[:, None])
        counts[w], totals[w], previous_totals[w] = current, current.sum(axis=1), previous.sum(axis=1)
        for k, (event, _) in enumerate(EVENT_TYPES):
            columns[f"{event}_events_{w}d"] = current[:, k].astype(float)
            columns[f"{event}_events_{w}d_vs_prev_{w}d"] = change(current[:, k], previous[:, k], w)
        inner, inner_days = current, days_in
    daily = usage(day - 3.5)
    active_per_day = 1 - np.exp(-daily * 0.3)
    for w in WINDOWS:
        days_in = np.clip(tenure, 0, w).astype(int)
        users_p = 1 - np.exp(-usage(day - w / 2) / seats * 0.05 * w)
        users_prev_p = 1 - np.exp(-usage(day - 1.5 * w) / seats * 0.05 * w)
        users = rng.binomial(seats.astype(int), users_p).astype(float)
        users_prev = rng.binomial(seats.astype(int), users_prev_p).astype(float)
        columns[f"events_{w}d"] = totals[w].astype(float)
        columns[f"events_{w}d_vs_prev_{w}d"] = change(totals[w], previous_totals[w], w)
        columns[f"events_per_30d_{w}d"] = totals[w] / np.clip(tenure, 1, w) * 30
        columns[f"active_days_{w}d"] = rng.binomial(days_in, active_per_day).astype(float)
        columns[f"active_users_{w}d"] = users
        columns[f"active_users_{w}d_vs_prev_{w}d"] = change(users, users_prev, w)
        columns[f"seat_utilization_{w}d"] = users / seats
        columns[f"event_types_used_{w}d"] = (counts[w] > 0).sum(axis=1).astype(float)
    columns["days_since_last_event"] = np.minimum(rng.geometric(np.maximum(active_per_day, 1e-3)) - 1, tenure)
    for event in ("login", "report_exported", "api_call"):
        k = [name for name, _ in EVENT_TYPES].index(event)
        p = 1 - np.exp(-daily * shares[:, k])
        gap = (rng.geometric(np.maximum(p, 1e-4)) - 1).astype(float)
        columns[f"days_since_last_{event}"] = np.where(gap <= tenure, gap, np.nan)

    tickets_per_day = 0.02 * np.sqrt(seats) * (1 + 1.5 * decline + 0.3 * np.maximum(0, -c.health[rows]))
    opened, done = np.zeros(n), np.zeros(n)
    for w in WINDOWS:
        days_in = np.clip(tenure, 0, w)
        opened = opened + rng.poisson(tickets_per_day * (days_in - done))
        done = days_in
        columns[f"tickets_opened_{w}d"] = opened
        if w in (30, 90):
            before = rng.poisson(tickets_per_day * 0.8 * np.clip(tenure - w, 0, w))
            columns[f"tickets_opened_{w}d_vs_prev_{w}d"] = change(opened, before, w)
            none = np.where(opened > 0, 1.0, np.nan)
            columns[f"median_first_response_h_{w}d"] = none * np.exp(
                rng.normal(np.log(3) + 0.5 * decline, 0.7)
            )
            columns[f"avg_resolution_h_{w}d"] = none * np.exp(rng.normal(np.log(20) + 0.6 * decline, 0.8))
            columns[f"first_contact_resolution_{w}d"] = share_of(0.6 - 0.2 * decline, opened)
            columns[f"reopen_rate_{w}d"] = share_of(0.08 + 0.1 * decline, opened)
            columns[f"escalation_rate_{w}d"] = share_of(0.05 + 0.1 * decline, opened)
            columns[f"high_priority_share_{w}d"] = share_of(0.15 + 0.15 * decline, opened)
            rated = rng.binomial(opened.astype(int), 0.4)
            csat = np.clip(rng.normal(4.3 - 1.2 * decline, 0.6), 1, 5)
            columns[f"ticket_csat_{w}d"] = np.where(rated > 0, csat, np.nan)
    open_tickets = rng.poisson(tickets_per_day * 6).astype(float)
    columns["open_tickets"] = open_tickets
    age = rng.exponential(8 * (1 + decline))
    columns["oldest_open_ticket_age_days"] = np.where(open_tickets > 0, np.round(age, 1), np.nan)
    columns["tickets_awaiting_first_response"] = rng.binomial(open_tickets.astype(int), 0.25).astype(float)

    since_survey = (day + c.survey_phase[rows]) % 90
    survey_day = day - since_survey
    last_nps = np.clip(np.round(c.nps[rows] + rng.normal(0, 0.8, n) - 4 * (1 - health_at(survey_day))), 0, 10)
    earlier = np.clip(
        np.round(c.nps[rows] + rng.normal(0, 0.8, n) - 4 * (1 - health_at(survey_day - 90))), 0, 10
    )
    answered = ~np.isnan(c.nps[rows]) & (survey_day >= c.start_day[rows])
    columns["last_nps"] = np.where(answered, last_nps, np.nan)
    columns["days_since_last_survey_answer"] = np.where(answered, since_survey, np.nan)
    columns["nps_90d"] = np.where(answered, np.round(last_nps + rng.normal(0, 0.3, n), 1), np.nan)
    columns["nps_score_change_90d"] = np.where(answered & (tenure > 180), last_nps - earlier, np.nan)
    satisfied = np.clip(rng.beta(8, 2, n) - 0.3 * decline, 0, 1)
    columns["csat_satisfied_share_90d"] = np.where(rng.random(n) < 0.5, satisfied, np.nan)
    effort = np.clip(rng.normal(5.5 - decline, 0.8), 1, 7)
    columns["ces_mean_90d"] = np.where(rng.random(n) < 0.3, effort, np.nan)

    period = np.where(c.annual[rows], 365.0, 30.0)
    columns["days_to_renewal"] = np.round((c.renewal_phase[rows] - day) % period)
    columns["seats"] = np.where(rng.random(n) < 0.005, np.nan, seats)
    columns["mrr"] = np.where(rng.random(n) < 0.005, np.nan, c.mrr[rows])
    columns["tenure_days"] = np.round(tenure)
    for w, p in ((30, 0.05), (90, 0.12)):
        shrinks = rng.random(n) < p + 0.2 * decline
        grows = rng.random(n) < p * 0.8
        amount = c.mrr[rows] * rng.uniform(0.05, 0.3, n)
        columns[f"mrr_change_{w}d"] = np.round(np.where(shrinks, -amount, np.where(grows, amount, 0.0)), 2)
    failing = (0.01 + 0.15 * decline) * ~c.annual[rows]
    failed_30d = rng.poisson(failing).astype(float)
    columns["failed_payments_30d"] = failed_30d
    columns["failed_payments_90d"] = failed_30d + rng.poisson(2 * failing)

    as_of = LAST_AS_OF - timedelta(days=STEP_DAYS * (snapshots - 1 - number))
    churned = c.churn_day[rows] <= day + HORIZON_DAYS
    missing_segment = rng.random(n) < 0.005
    segment = np.array(SEGMENTS, dtype=object)[c.segment[rows]]
    text = {
        "segment": np.where(missing_segment, None, segment),
        "plan": np.array(PLANS, dtype=object)[c.plan[rows]],
        "billing_period": np.where(c.annual[rows], "annual", "monthly").astype(object),
    }
    return pa.table(
        {
            "customer_id": pa.array([f"c{i:06d}" for i in rows], pa.string()),
            "as_of": pa.array(np.full(n, as_of), pa.date32()),
            **{name: pa.array(columns[name], pa.float64()) for name in feature_names()},
            **{name: pa.array(values, pa.string()) for name, values in text.items()},
            "churned": pa.array(churned.astype(np.int8), pa.int8()),
        }
    )


def write_table(path: Path, customers: int, snapshots: int) -> float | None:
    """The feature table at ``path`` (reused when already there); the seconds it took to write."""
    if path.exists():
        return None
    print(
        f"Generating {customers:,} customers x {snapshots} weekly snapshots into {path} ...", file=sys.stderr
    )
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    population = make_customers(rng, customers, snapshots)
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for number in range(snapshots):
            table = snapshot(rng, population, number, snapshots)
            writer = writer or pq.ParquetWriter(partial, table.schema)
            writer.write_table(table)  # one row group per as_of
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
    return time.perf_counter() - started


def describe_table(path: Path) -> dict[str, object]:
    meta = pq.ParquetFile(path).metadata
    label = pq.read_table(path, columns=["churned", "customer_id"])
    positives = int(pc.sum(label["churned"]).as_py())
    return {
        "rows": meta.num_rows,
        "customers": len(pc.unique(label["customer_id"])),
        "float_features": len(feature_names()),
        "text_features": len(TEXT_COLUMNS),
        "positives": positives,
        "mb": path.stat().st_size / 2**20,
    }


# --- children: each measured run in a fresh process ---------------------------------------------------


def bare_fit(table: Path, rounds: int) -> dict[str, object]:
    """The baseline: read the table, text to ``category``, one ``lightgbm.train`` on every row."""
    import lightgbm as lgb
    import pandas as pd

    from churn.config import TrainingConfig
    from training.model import default_params

    started = time.perf_counter()
    frame = pd.read_parquet(table)
    read = time.perf_counter() - started
    label = frame.pop("churned").astype("int64")
    frame = frame.drop(columns=["customer_id", "as_of"])
    for name in TEXT_COLUMNS:
        frame[name] = frame[name].astype("category")
    params = default_params(len(frame), int(label.sum()), TrainingConfig())
    fit_started = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(frame, label=label), num_boost_round=rounds)
    fit = time.perf_counter() - fit_started
    return {"read_seconds": read, "fit_seconds": fit, "rounds": booster.current_iteration()}


def train_in_process(table: Path) -> dict[str, object]:
    """``training.backtest.train`` on the table's dataset: the backtest and final fit, no MLflow.

    The stages it calls are wrapped with timers (in this process only) to say where the time goes.
    """
    import training.backtest
    import training.model
    from churn.config import ProductConfig
    from training.dataset import table_dataset

    parts: dict[str, list[float]] = {}
    rounds: list[int] = []

    def timer(module: object, name: str, label: str) -> None:
        original = getattr(module, name)

        def wrapped(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            result = original(*args, **kwargs)
            parts.setdefault(label, []).append(time.perf_counter() - started)
            if name == "fit_booster":
                rounds.append(result.current_iteration())
            return result

        setattr(module, name, wrapped)

    timer(training.model, "fit_booster", "lightgbm fits (fit_booster, early stopping)")
    timer(training.model, "monotone_directions", "monotone directions")
    timer(training.backtest, "fit_churn_model", "fit_churn_model (fit + calibration)")
    timer(training.backtest, "fit_logistic", "logistic regression fits")
    timer(training.backtest, "logistic_scores", "logistic regression scoring")
    timer(training.backtest, "backtest_folds", "folds")
    started = time.perf_counter()
    dataset = table_dataset(
        table, label="churned", id_column="customer_id", time_column="as_of", horizon_days=HORIZON_DAYS
    )
    load = time.perf_counter() - started
    train_started = time.perf_counter()
    result = training.backtest.train(dataset, ProductConfig())
    return {
        "dataset_seconds": load,
        "train_seconds": time.perf_counter() - train_started,
        "rounds": result.evaluation.params["num_boost_round"],
        "fit_rounds": rounds,
        "fit_seconds": parts["lightgbm fits (fit_booster, early stopping)"],
        "parts": {label: [sum(times), len(times)] for label, times in parts.items()},
    }


_CHILDREN = {
    "bare": lambda args: bare_fit(args.table, args.rounds),
    "train": lambda args: train_in_process(args.table),
}


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    stdout: str


def measured(command: list[str], *, cwd: Path, env: dict[str, str]) -> Measured:
    """Run ``command`` to the end: its wall time, and its own peak memory (ru_maxrss from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    stdout = process.stdout.read()  # errors and warnings pass through to our stderr
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with code {process.returncode}:\n{stdout[-2000:]}")
    return Measured(seconds, usage.ru_maxrss / 1024, stdout)


_PACKAGES = ("benchmarks", "churn", "features", "training", "serving")
_PRODUCT = ("churn", "features", "training")  # the code whose changes would change the figures


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Row:
    stage: str
    seconds: float
    peak_mb: float | None = None


@dataclass(frozen=True)
class Results:
    rows: list[Row]
    baseline: Measured  # the bare fit's whole process: the 1.0x
    fit_seconds: float  # its lightgbm.train call alone
    cli: Measured
    rounds: int
    evaluation: dict  # churn train's, from its JSON
    direct: dict  # the in-process train()'s report


def run(table: Path, threads: int | None) -> Results:
    """The three runs, each in a fresh process from a copy of the code; ``threads`` caps OpenMP/BLAS."""
    churn = Path(sys.executable).with_name("churn")
    with tempfile.TemporaryDirectory(prefix="churn-bench-training-") as scratch:
        code = frozen_code(Path(scratch) / "code", _PACKAGES)
        home = Path(scratch) / "home"
        home.mkdir()
        unset = ("CHURN_DATABASE_URL", "MLFLOW_TRACKING_URI", "CHURN_CONFIG", "PYTHONPATH")
        env = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": str(code)}
        if threads is not None:  # LightGBM's num_threads 0 means OpenMP's default, which this sets
            env |= {
                name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            }

        print("churn train ...", file=sys.stderr)
        command = [str(churn), "train", "--table", str(table), "--label", "churned", "--id", "customer_id"]
        command += ["--time", "as_of", "--horizon-days", str(HORIZON_DAYS), "--json"]
        # CHURN_HOME is also the working directory, so no .env of the checkout is read.
        cli = measured(command, cwd=home, env=env | {"CHURN_HOME": str(home)})
        evaluation = json.loads(cli.stdout)["evaluation"]
        rounds = int(evaluation["params"]["num_boost_round"])

        def child(*args: str) -> tuple[Measured, dict]:
            done = measured([sys.executable, "-m", "benchmarks.training", *args], cwd=code, env=env)
            return done, json.loads(done.stdout)

        print(f"bare lightgbm.train, {rounds} rounds ...", file=sys.stderr)
        bare, bare_report = child("--child", "bare", "--table", str(table), "--rounds", str(rounds))
        print("training.backtest.train in-process ...", file=sys.stderr)
        direct, direct_report = child("--child", "train", "--table", str(table))

    folds = len(evaluation["folds"])
    rows = [
        Row(f"bare lightgbm.train: read Parquet, categories, {rounds} rounds", bare.seconds, bare.peak_mb),
        Row("  of which lightgbm.train (Dataset construction + rounds)", bare_report["fit_seconds"]),
        Row("  of which pd.read_parquet", bare_report["read_seconds"]),
        Row("churn train --json (MLflow in a temporary CHURN_HOME)", cli.seconds, cli.peak_mb),
        Row(f"  of which train(): backtest ({folds} folds) + final fit", evaluation["seconds"]),
        Row(
            "  of which the rest: start, imports, read table, MLflow run + model, report",
            cli.seconds - evaluation["seconds"],
        ),
        Row("training.backtest.train in-process (no MLflow)", direct.seconds, direct.peak_mb),
        Row("  of which table_dataset (read and check the table)", direct_report["dataset_seconds"]),
        Row("  of which train(): backtest + final fit", direct_report["train_seconds"]),
    ]
    for label, (seconds, calls) in direct_report["parts"].items():
        rows.append(Row(f"    {label}: {calls} call{'s' if calls > 1 else ''}", seconds))
    return Results(rows, bare, bare_report["fit_seconds"], cli, rounds, evaluation, direct_report)


def _ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 0.995 else f"{ratio:.1f}x"


def print_results(results: Results, customers: int, snapshots: int, notes: list[str]) -> None:
    print(
        f"\nData: synthetic feature table (seed {SEED}), {customers:,} customers x {snapshots} weekly as_of."
    )
    for note in notes:
        print(f"- {note}")
    print()
    baseline = results.baseline.seconds
    columns = ("stage", "seconds", "ratio", "peak MB")
    texts = [
        [
            r.stage,
            f"{r.seconds:.2f}",
            _ratio(r.seconds / baseline),
            "" if r.peak_mb is None else f"{r.peak_mb:,.0f}",
        ]
        for r in results.rows
    ]
    widths = [max(len(name), *(len(t[i]) for t in texts)) for i, name in enumerate(columns)]

    def line(values: list[str]) -> str:
        cells = [
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    print(line(list(columns)))
    print("| " + " | ".join("-" * w if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)) + " |")
    for t in texts:
        print(line(t))
    cli = results.cli.seconds
    print(
        f"\nGoal: churn train within {GOAL}x of the bare fit: {'met' if cli <= GOAL * baseline else 'MISSED'}"
        f" ({_ratio(cli / baseline)} of the bare fit's whole process,"
        f" {_ratio(cli / results.fit_seconds)} of its lightgbm.train call alone)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.training", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=26, help="weekly as_of dates")
    parser.add_argument(
        "--keep-data", type=Path, help="write the table here and reuse it (default: a temporary folder)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="cap OpenMP and BLAS threads in every run (default: the product's, all cores);"
        " LightGBM's spinning threads are slowed badly by other load on a small machine",
    )
    parser.add_argument("--child", choices=sorted(_CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_CHILDREN[args.child](args)))
        return 0

    started = time.perf_counter()
    version = code_version(_PRODUCT)
    with tempfile.TemporaryDirectory(prefix="churn-bench-training-data-") as scratch:
        folder = (args.keep_data or Path(scratch)).resolve()
        table = folder / f"training-{args.customers}x{args.snapshots}-seed{SEED}.parquet"
        generated = write_table(table, args.customers, args.snapshots)
        size = describe_table(table)
        load_before = os.getloadavg()[0]
        results = run(table, args.threads)
        load_after = os.getloadavg()[0]
    params = results.evaluation["params"]
    notes = [
        f"code: {version}, copied at the start of the run",
        f"{os.cpu_count()} CPUs, threads: {args.threads or 'all (the default)'};"
        f" load average {load_before:.1f} before the runs, {load_after:.1f} after",
        f"rows: {size['rows']:,}; features: {size['float_features']} float + {size['text_features']} text;"
        f" positives: {size['positives']:,} ({size['positives'] / size['rows']:.1%});"
        f" Parquet {size['mb']:,.0f} MB"
        + (" (reused)" if generated is None else f", generated in {generated:.0f} s"),
        f"final model: {results.rounds} rounds (early stopping), num_leaves {params['num_leaves']},"
        f" min_data_in_leaf {params['min_data_in_leaf']}; in-process train(): {results.direct['rounds']}",
        "in-process train(), each LightGBM fit (folds, then final): rounds kept by early stopping (seconds): "
        + ", ".join(
            f"{r} ({t:.1f} s)"
            for r, t in zip(results.direct["fit_rounds"], results.direct["fit_seconds"], strict=True)
        ),
        "backtest PR AUC (ROC AUC): "
        + ", ".join(
            f"{name} {m['pr_auc']:.3f} ({m['roc_auc']:.3f})"
            for name, m in results.evaluation["overall"].items()
        ),
        "backtest folds (train rows / test rows): "
        + ", ".join(f"{f['train_rows']:,} / {f['test_rows']:,}" for f in results.evaluation["folds"]),
        "ratios are against the bare fit's whole process (first row); peak MB is each process's ru_maxrss",
    ]
    print_results(results, args.customers, args.snapshots, notes)
    print(f"\nWhole run: {time.perf_counter() - started:,.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
