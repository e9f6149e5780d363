"""Hidden fates: who churns, when, why, and how the trouble shows beforehand. Never written to a file."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from churn.demo.company import Accounts

INF = np.inf


class Cause(IntEnum):
    NONE = 0
    ADOPTION = 1
    SUPPORT = 2
    PRODUCT_FIT = 3
    PRICE = 4
    COMPETITOR = 5
    BUSINESS_CLOSED = 6
    PAYMENT_FAILED = 7
    OTHER = 8


REASON_CODE = {c: c.name.lower() for c in Cause if c is not Cause.NONE}
CHURN_CAUSES = tuple(c for c in Cause if c is not Cause.NONE)

ANNUAL_CHURN = np.array([0.20, 0.11, 0.06])  # per segment, for an established customer
EARLY_FAILURE = np.array([0.06, 0.03, 0.015])  # new customers who never get going (churn at 45-150 days)
# Cause mix per segment, columns in CHURN_CAUSES order.
CAUSE_SHARES = np.array([
    [0.24, 0.10, 0.10, 0.18, 0.08, 0.12, 0.13, 0.05],
    [0.22, 0.14, 0.16, 0.14, 0.16, 0.05, 0.08, 0.05],
    [0.18, 0.18, 0.22, 0.10, 0.22, 0.02, 0.03, 0.05],
])  # fmt: skip
EARLY_CAUSE_SHARES = np.array([0.55, 0.15, 0.20, 0.05, 0.0, 0.0, 0.05, 0.0])
# Days between the first precursor and the churn date, per cause.
LEAD_DAYS = {
    Cause.ADOPTION: (60, 120), Cause.SUPPORT: (40, 100), Cause.PRODUCT_FIT: (50, 120), Cause.PRICE: (30, 90),
    Cause.COMPETITOR: (45, 110), Cause.BUSINESS_CLOSED: (3, 21), Cause.PAYMENT_FAILED: (14, 35),
    Cause.OTHER: (30, 90),
}  # fmt: skip
SILENT_SHARE = 0.12  # churns with no precursor at all
SAVED_SHARE = 0.15  # retained customers who go through a rough patch and recover
PATCH_CAUSES = (Cause.ADOPTION, Cause.SUPPORT, Cause.PRODUCT_FIT, Cause.PRICE, Cause.COMPETITOR)
PATCH_SHARES = (0.30, 0.25, 0.15, 0.15, 0.15)
HORIZON_DAYS = 150  # fates are drawn this far past the end, so precursors of later churns show up
MONTH_DAYS = 30.4375


@dataclass(frozen=True)
class Fates:
    """Per customer of a batch; times in days since the window start, inf when it does not happen."""

    cause: np.ndarray  # why the customer churns (NONE: not within the horizon)
    churn: np.ndarray  # the last subscription ends
    requested: np.ndarray  # the customer asks to cancel
    onset: np.ndarray  # precursors start (inf: a silent churn)
    lead: np.ndarray
    intensity: np.ndarray  # how strongly the precursors show (0-1)
    patch_cause: np.ndarray  # retained customers' rough patch
    patch_start: np.ndarray
    patch_rise: np.ndarray
    patch_fall: np.ndarray
    patch_depth: np.ndarray
    change_at: np.ndarray  # plan change (a new subscription)
    change_kind: np.ndarray  # +1 upgrade, -1 downgrade, 0 none
    gap_start: np.ndarray  # short lapse in billing, not a churn
    gap_end: np.ndarray
    winback: np.ndarray  # a churned customer comes back
    churn2: np.ndarray  # ... and leaves again
    requested2: np.ndarray

    @property
    def voluntary(self) -> np.ndarray:
        return self.cause != Cause.PAYMENT_FAILED


def _next_renewal(created: np.ndarray, after: np.ndarray, annual: np.ndarray) -> np.ndarray:
    """The first billing anniversary at or after ``after``: customers leave when a paid period ends."""
    period = np.where(annual, 365.0, MONTH_DAYS)
    periods = np.maximum(1, np.ceil((after - created) / period))
    return created + periods * period


def _uniform_between(
    rng: np.random.Generator, bounds: dict[Cause, tuple[int, int]], cause: np.ndarray
) -> np.ndarray:
    lo = np.array([bounds.get(Cause(c), (0, 0))[0] for c in range(len(Cause))], dtype=float)[cause]
    hi = np.array([bounds.get(Cause(c), (0, 0))[1] for c in range(len(Cause))], dtype=float)[cause]
    return lo + (hi - lo) * rng.random(len(cause))


def draw_fates(rng: np.random.Generator, accounts: Accounts, window_days: int) -> Fates:
    """Draw every customer's hidden fate and life events for one batch."""
    n = len(accounts)
    created, segment, annual = accounts.created, accounts.segment, accounts.annual
    # Light users churn a little more often, but low usage alone is a weak predictor.
    hazard = -np.log(1 - ANNUAL_CHURN[segment]) * np.clip(accounts.engagement**-0.2, 0.85, 1.3)
    origin = np.maximum(created, 0.0)
    raw = origin + rng.exponential(365.25 / hazard)
    early = (created >= -30) & (rng.random(n) < EARLY_FAILURE[segment])
    raw = np.where(early, created + rng.uniform(45, 150, n), raw)
    churn = _next_renewal(created, raw, annual)
    churner = churn < window_days + HORIZON_DAYS

    shares = np.where(early[:, None], EARLY_CAUSE_SHARES, CAUSE_SHARES[segment])
    picked = (rng.random((n, 1)) > shares.cumsum(axis=1)).sum(axis=1).clip(0, len(CHURN_CAUSES) - 1)
    cause = np.where(churner, np.array(CHURN_CAUSES)[picked], Cause.NONE).astype(np.int8)
    churn = np.where(churner, churn, INF)

    lead = _uniform_between(rng, LEAD_DAYS, cause)
    silent = rng.random(n) < SILENT_SHARE
    onset = np.where(churner & ~silent, churn - lead, INF)
    # An early failure cannot show trouble before its first week or two as a customer.
    onset = np.where(early & churner & ~silent, np.maximum(onset, created + rng.uniform(7, 20, n)), onset)
    with np.errstate(invalid="ignore"):  # inf - inf where there is no onset; the where discards it
        lead = np.where(np.isfinite(onset), churn - onset, np.maximum(lead, 1.0))
    notice = np.where(annual, rng.uniform(14, 45, n), rng.uniform(0, 30, n))
    notice = np.where(cause == Cause.BUSINESS_CLOSED, rng.uniform(0, 7, n), notice)
    notice = np.where(cause == Cause.PAYMENT_FAILED, 0.0, notice)
    requested = np.where(churner, np.maximum(churn - notice, created + 1), INF)

    saved = ~churner & (rng.random(n) < SAVED_SHARE)
    patch_pick = rng.choice(len(PATCH_CAUSES), size=n, p=PATCH_SHARES)
    patch_cause = np.where(saved, np.array(PATCH_CAUSES)[patch_pick], Cause.NONE).astype(np.int8)
    patch_start = np.where(saved, np.maximum(created + 30, rng.uniform(-60, window_days, n)), INF)

    change_at, change_kind = _plan_changes(rng, accounts, cause, churn, onset, lead, requested, window_days)
    price_patch = (patch_cause == Cause.PRICE) & (rng.random(n) < 0.4) & (change_kind == 0)
    patch_rise = rng.uniform(30, 90, n)
    at_trough = patch_start + patch_rise
    fits = price_patch & (at_trough < window_days) & (at_trough > 0)
    change_at = np.where(fits, at_trough, change_at)
    change_kind = np.where(fits, -1, change_kind).astype(np.int8)

    gap_start, gap_end = _short_gaps(rng, created, churn, change_at, window_days)
    winback, churn2, requested2 = _winbacks(rng, cause, churn, window_days)
    return Fates(
        cause=cause, churn=churn, requested=requested, onset=onset, lead=lead,
        intensity=rng.uniform(0.45, 1.0, n),
        patch_cause=patch_cause, patch_start=patch_start, patch_rise=patch_rise,
        patch_fall=rng.uniform(20, 60, n), patch_depth=rng.uniform(0.4, 0.9, n),
        change_at=change_at, change_kind=change_kind, gap_start=gap_start, gap_end=gap_end,
        winback=winback, churn2=churn2, requested2=requested2,
    )  # fmt: skip


def _plan_changes(
    rng: np.random.Generator, accounts: Accounts, cause: np.ndarray, churn: np.ndarray, onset: np.ndarray,
    lead: np.ndarray, requested: np.ndarray, window_days: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Upgrades for healthy accounts; downgrades before most price churns, and a few for no reason."""
    n = len(accounts)
    earliest = np.maximum(accounts.created + 30, 0.0)
    latest = np.minimum(churn, window_days) - 1
    when = earliest + (latest - earliest) * rng.random(n)
    years = window_days / 365.25
    upgrade = (cause == Cause.NONE) & (rng.random(n) < 0.15 * years)
    downgrade = (cause == Cause.NONE) & (rng.random(n) < 0.03 * years) & ~upgrade
    price_down = (cause == Cause.PRICE) & np.isfinite(onset) & (rng.random(n) < 0.75)
    before_price_churn = np.minimum(churn - lead * rng.uniform(0.35, 0.65, n), requested - 1)
    when = np.where(price_down, before_price_churn, when)
    kind = np.select([price_down, downgrade, upgrade], [-1, -1, 1], 0)
    valid = (kind != 0) & (when >= earliest) & (when < latest)
    return np.where(valid, when, INF), np.where(valid, kind, 0).astype(np.int8)


def _short_gaps(
    rng: np.random.Generator, created: np.ndarray, churn: np.ndarray, change_at: np.ndarray, window_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """A lapse of 1-6 days between two subscriptions (a card renewed late): not a churn."""
    n = len(created)
    lo = np.maximum(created, 0.0) + 15
    hi = np.minimum(churn, window_days) - 10
    start = lo + (hi - lo) * rng.random(n)
    end = start + rng.uniform(1.0, 6.5, n)
    valid = (rng.random(n) < 0.04) & (hi > lo) & (end < hi) & (np.abs(start - change_at) > 10)
    return np.where(valid, start, INF), np.where(valid, end, INF)


def _winbacks(
    rng: np.random.Generator, cause: np.ndarray, churn: np.ndarray, window_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A few churned customers return after weeks or months; some of them leave again."""
    n = len(cause)
    eligible = (churn < window_days - 20) & ~np.isin(cause, (Cause.BUSINESS_CLOSED, Cause.NONE))
    winback = churn + rng.uniform(10, 120, n)
    back = eligible & (rng.random(n) < 0.12) & (winback < window_days)
    churn2 = winback + MONTH_DAYS * rng.integers(1, 7, n)
    again = back & (rng.random(n) < 0.25) & (churn2 < window_days)
    requested2 = np.maximum(churn2 - rng.uniform(0, 20, n), winback + 1)
    return np.where(back, winback, INF), np.where(again, churn2, INF), np.where(again, requested2, INF)


def pressure(fates: Fates, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which cause weighs on a customer at time t and how much (0-1): precursors or a rough patch."""
    onset, lead, churn = fates.onset[rows], fates.lead[rows], fates.churn[rows]
    # Absent onsets and patches are inf: they clip to 0 progress.
    churning = np.clip((t - onset) / lead, 0.0, 1.0) * fates.intensity[rows] * (t < churn)
    start, rise, fall = fates.patch_start[rows], fates.patch_rise[rows], fates.patch_fall[rows]
    up = np.clip((t - start) / rise, 0.0, 1.0)
    down = np.clip((t - start - rise) / fall, 0.0, 1.0)
    patch = (up - down) * fates.patch_depth[rows]
    in_patch = fates.patch_cause[rows] != Cause.NONE
    cause = np.where(in_patch, fates.patch_cause[rows], np.where(np.isfinite(onset), fates.cause[rows], 0))
    return cause.astype(np.int8), np.where(in_patch, patch, churning)


def active(fates: Fates, created: np.ndarray, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether the customer is a customer at time t (short billing lapses count as active)."""
    first = (t >= created[rows]) & (t < fates.churn[rows])
    again = (t >= fates.winback[rows]) & (t < fates.churn2[rows])
    return first | again


def after_request(fates: Fates, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether a voluntary churner has already asked to cancel at time t (it then winds down)."""
    return fates.voluntary[rows] & (t >= fates.requested[rows]) & (t < fates.churn[rows])
