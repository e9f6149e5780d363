"""Billing history: subscription periods (plan changes, lapses, churn, win-backs) and cancellations."""

from __future__ import annotations

import numpy as np

from churn.demo import phrasing
from churn.demo.company import PLANS, Accounts, customer_ids, monthly_revenue
from churn.demo.fate import REASON_CODE, Cause, Fates
from churn.demo.formatting import compose_text, sequence_within
from churn.demo.reasons import CLOSERS, OPENERS, REASONS
from churn.demo.timeline import Window

REASON_CODE_SHARE = 0.62  # voluntary cancellations with a reason code picked (billing always sets one)
REASON_TEXT_SHARE = 0.80
MISSTATED_SHARE = 0.10  # customers often name price or "other" whatever the real cause
SOURCES = ("in_app", "csm", "crm")
SOURCE_SHARES = (0.45, 0.35, 0.20)

# Boundary kinds in a customer's billing life; a period opens at an opener and ends at the next boundary.
_OPENS = np.array([True, True, False, True, False, True, False])  # created, change, gap start/end, churn, ...


def _changed_plans(
    rng: np.random.Generator, accounts: Accounts, fates: Fates
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plan and seats after the plan change, and seats on a win-back subscription."""
    n = len(accounts)
    plan, seats = accounts.plan, accounts.seats
    by_plan = rng.random(n) < 0.5
    up_plan = np.where(by_plan & (plan < 3), plan + 1, plan)
    up_seats = np.where(
        up_plan == plan, np.maximum(seats + 1, np.round(seats * rng.uniform(1.15, 1.8, n))), seats
    )
    down_plan = np.where(by_plan & (plan > 0), plan - 1, plan)
    down_seats = np.where(
        down_plan == plan, np.maximum(1, np.round(seats * rng.uniform(0.5, 0.85, n))), seats
    )
    upgrade = fates.change_kind > 0
    new_plan = np.where(upgrade, up_plan, down_plan)
    new_seats = np.where(upgrade, up_seats, down_seats).astype(np.int64)
    winback_seats = np.maximum(1, np.round(seats * rng.uniform(0.6, 1.0, n))).astype(np.int64)
    return new_plan, new_seats, winback_seats


def subscription_columns(
    rng: np.random.Generator, accounts: Accounts, fates: Fates, window: Window, id_digits: int
) -> dict[str, object]:
    """The subscriptions file rows: one row per paid period, in order per customer."""
    # An end after the data is not known yet: the subscription is still running.
    churn = np.where(fates.churn < window.days, fates.churn, np.inf)
    churn2 = np.where(fates.churn2 < window.days, fates.churn2, np.inf)
    boundaries = np.stack(
        [accounts.created, fates.change_at, fates.gap_start, fates.gap_end, churn, fates.winback, churn2],
        axis=1,
    )
    order = np.argsort(boundaries, axis=1, kind="stable")
    times = np.take_along_axis(boundaries, order, axis=1)
    times = np.concatenate([times, np.full((len(accounts), 1), np.inf)], axis=1)
    new_plan, new_seats, winback_seats = _changed_plans(rng, accounts, fates)

    rows, starts, ends = [], [], []
    for j in range(boundaries.shape[1]):
        opens = _OPENS[order[:, j]] & np.isfinite(times[:, j])
        who = np.flatnonzero(opens)
        rows.append(who)
        starts.append(times[who, j])
        ends.append(times[who, j + 1])
    row, start, end = np.concatenate(rows), np.concatenate(starts), np.concatenate(ends)
    sort = np.lexsort((start, row))
    row, start, end = row[sort], start[sort], end[sort]

    changed = start >= fates.change_at[row]
    plan = np.where(changed, new_plan[row], accounts.plan[row])
    seats = np.where(changed, new_seats[row], accounts.seats[row])
    won_back = start >= fates.winback[row]
    seats = np.where(won_back, np.minimum(seats, winback_seats[row]), seats)
    annual = accounts.annual[row]
    sequence = sequence_within(row)
    numbers = accounts.number[row]
    return {
        "subscription_id": compose_text(["C", (numbers, id_digits), "-S", (sequence, 2)]),
        "customer_id": customer_ids(numbers, id_digits),
        "started_at": window.seconds(start),
        "ended_at": window.seconds(np.where(np.isfinite(end), end, np.nan)),
        "mrr": monthly_revenue(plan, seats, annual, accounts.discount[row]),
        "plan": np.array(PLANS)[plan],
        "seats": seats,
        "billing_period": np.where(annual, "annual", "monthly"),
    }


def cancellation_columns(
    rng: np.random.Generator, accounts: Accounts, fates: Fates, window: Window, id_digits: int
) -> dict[str, object]:
    """The cancellations file rows: one per churn that took effect before the end of the data."""
    first = np.flatnonzero(fates.churn < window.days)
    again = np.flatnonzero(fates.churn2 < window.days)
    row = np.concatenate([first, again])
    effective = np.concatenate([fates.churn[first], fates.churn2[again]])
    requested = np.concatenate([fates.requested[first], fates.requested2[again]])
    sort = np.lexsort((effective, row))
    row, effective, requested = row[sort], effective[sort], requested[sort]
    n = len(row)

    cause = fates.cause[row]
    true_code = np.array([REASON_CODE.get(Cause(c), "other") for c in range(len(Cause))], dtype=object)[cause]
    misstated = rng.random(n) < MISSTATED_SHARE
    stated = np.where(misstated, np.where(rng.random(n) < 0.6, "price", "other"), true_code)
    involuntary = cause == Cause.PAYMENT_FAILED
    stated = np.where(involuntary, "payment_failed", stated)
    has_code = involuntary | (rng.random(n) < REASON_CODE_SHARE)
    has_text = rng.random(n) < REASON_TEXT_SHARE
    in_arabic = np.where(accounts.arabic[row], rng.random(n) < 0.85, rng.random(n) < 0.02)
    # The free text tells the real story more often than the picked code does.
    topic = np.where(rng.random(n) < 0.05, "other", true_code)
    texts = phrasing.write_texts(
        rng, [str(code) for code in topic], in_arabic, REASONS, openers=OPENERS, closers=CLOSERS
    )
    source = np.array(SOURCES)[rng.choice(len(SOURCES), size=n, p=SOURCE_SHARES)]
    numbers = accounts.number[row]
    return {
        "cancellation_id": compose_text(["C", (numbers, id_digits), "-X", (sequence_within(row), 2)]),
        "customer_id": customer_ids(numbers, id_digits),
        "effective_at": window.seconds(effective),
        "requested_at": window.seconds(requested),
        "reason_code": [str(code) if keep else None for code, keep in zip(stated, has_code, strict=True)],
        "reason_text": [text if keep else None for text, keep in zip(texts, has_text, strict=True)],
        "voluntary": ~involuntary,
        "source": np.where(involuntary, "billing", source),
    }
