"""Product usage events: who did what and when, with the rhythm of a working week."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from churn.demo.company import Accounts, customer_ids
from churn.demo.exposure import USAGE_DROP, WIND_DOWN, CustomerDays
from churn.demo.fate import Cause, Fates, active
from churn.demo.formatting import compose_text, sequence_within
from churn.demo.timeline import DAY_S, Window, business_seconds

HUMAN, MACHINE, BILLING = 0, 1, 2
# Event type, share of ordinary usage, and who or what emits it.
EVENT_TYPES = (
    ("login", 0.24, HUMAN),
    ("dashboard_viewed", 0.18, HUMAN),
    ("search_performed", 0.05, HUMAN),
    ("report_created", 0.06, HUMAN),
    ("report_exported", 0.05, HUMAN),
    ("comment_added", 0.07, HUMAN),
    ("file_uploaded", 0.04, HUMAN),
    ("workflow_created", 0.02, HUMAN),
    ("workflow_run", 0.08, HUMAN),
    ("integration_synced", 0.07, MACHINE),
    ("api_call", 0.08, MACHINE),
    ("settings_changed", 0.015, HUMAN),
    ("user_invited", 0.01, HUMAN),
    ("billing_page_viewed", 0.006, HUMAN),
    ("data_export_requested", 0.002, HUMAN),
    ("payment_failed", 0.0, BILLING),
)
TYPE_NAMES = tuple(name for name, _, _ in EVENT_TYPES)
_T = {name: i for i, name in enumerate(TYPE_NAMES)}
_BASE_SHARE = np.array([share for _, share, _ in EVENT_TYPES])
_EMITTER = np.array([emitter for _, _, emitter in EVENT_TYPES])
_ADVANCED = np.array(
    [_T["report_created"], _T["workflow_created"], _T["workflow_run"], _T["integration_synced"]]
)
_NO_USER = np.array([_T["integration_synced"], _T["payment_failed"]])  # service accounts, the billing system

# Calibrated to about 40 events per customer per month of the window (about 63 per month actually
# subscribed, since most customers sign up during the window): 100k customers x 12 months ~ 48M events.
EVENTS_PER_DAY_SCALE = 0.745
MIX_CONCENTRATION = 40.0  # how closely each customer's feature mix follows the company-wide one
CARD_TROUBLE_PER_DAY = 0.0002  # failed payments that get fixed: noise in the payment signal


def _extra_streams(accounts: Accounts, days: CustomerDays) -> list[tuple[int, np.ndarray]]:
    """Event rates per customer-day that do not scale with ordinary usage: the precursors themselves."""
    x, cause, level = days.pressure, days.cause, days.weekday_level
    annual = accounts.annual[days.row]
    # Annual customers look at billing in the month before renewal: an innocent look-alike of price churn.
    period = np.where(annual, 365.0, 30.4375)
    to_renewal = (accounts.created[days.row] - days.day) % period
    renewing = annual & (to_renewal < 30)
    billing = level * (0.12 * x * (cause == Cause.PRICE) + 0.08 * x * (cause == Cause.PAYMENT_FAILED))
    billing += level * 0.02 * renewing
    exports = level * (0.06 * x * (cause == Cause.COMPETITOR) + 0.12 * days.leaving)
    exported_reports = level * 0.15 * x * (cause == Cause.COMPETITOR)
    failing = (cause == Cause.PAYMENT_FAILED) & (x > 0)
    payments = 0.3 * failing + CARD_TROUBLE_PER_DAY
    ramp_left = days.onboarding < 1
    invites = level * ramp_left * (accounts.users[days.row] - 1) / accounts.ramp_days[days.row]
    return [
        (_T["billing_page_viewed"], billing),
        (_T["data_export_requested"], exports),
        (_T["report_exported"], exported_reports),
        (_T["payment_failed"], payments),
        (_T["user_invited"], invites),
    ]


def _sparse_poisson(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    """Cell index of each event for Poisson counts with the given rates, drawing only where rate > 0."""
    cells = np.flatnonzero(rate > 0)
    counts = rng.poisson(rate[cells])
    return np.repeat(cells, counts)


def event_columns(
    rng: np.random.Generator,
    accounts: Accounts,
    fates: Fates,
    days: CustomerDays,
    window: Window,
    id_digits: int,
) -> dict[str, object]:
    """The events file rows for one batch, ordered by customer and time."""
    n = len(accounts)
    row = days.row
    usage = 1 - USAGE_DROP[days.cause] * days.pressure
    usage = usage * np.where(days.leaving, WIND_DOWN, 1.0)
    burst = rng.gamma(3.0, 1 / 3.0, len(days))  # busy and quiet days
    rate = (
        EVENTS_PER_DAY_SCALE * accounts.engagement[row] * days.users**0.6 * usage
        * days.weekday_level * days.drift * burst
    )  # fmt: skip
    cell = _sparse_poisson(rng, rate)

    # Each customer uses its own mix of features (a Dirichlet draw around the company-wide mix).
    types = len(EVENT_TYPES)
    gammas = rng.gamma(_BASE_SHARE * MIX_CONCENTRATION + 1e-9, size=(n, types))
    cumulative = np.cumsum(gammas / gammas.sum(axis=1, keepdims=True), axis=1)
    # Inverse-CDF sampling for all customers at once: shift customer i's CDF to [i, i + 1] and search
    # the flattened, still increasing, table (no events x types matrix in memory).
    shifted = (np.arange(n)[:, None] + cumulative).ravel()
    owner = row[cell]
    position = np.searchsorted(shifted, owner + rng.random(len(cell)), side="right")
    kind = np.clip(position - owner * types, 0, types - 1)
    # Customers missing a feature stop building reports and workflows first.
    misfit = (days.cause[cell] == Cause.PRODUCT_FIT) & np.isin(kind, _ADVANCED)
    keep = ~misfit | (rng.random(len(cell)) > 0.7 * days.pressure[cell])
    cell, kind = cell[keep], kind[keep]

    extra_cells = [cell]
    extra_kinds = [kind]
    for type_index, extra_rate in _extra_streams(accounts, days):
        more = _sparse_poisson(rng, extra_rate)
        extra_cells.append(more)
        extra_kinds.append(np.full(len(more), type_index))
    cell, kind = np.concatenate(extra_cells), np.concatenate(extra_kinds)

    emitter = _EMITTER[kind]
    local_s = np.where(emitter == MACHINE, rng.uniform(0, DAY_S, len(cell)), business_seconds(rng, len(cell)))
    t = days.day[cell] + local_s / DAY_S - accounts.tz_hours[row[cell]] / 24
    # The billing system retries cards in its nightly run, on UTC time.
    t = np.where(emitter == BILLING, days.day[cell] + rng.uniform(5, 7, len(cell)) / 24, t)
    inside = (t >= 0) & (t < window.days) & active(fates, accounts.created, row[cell], t)
    cell, kind, t = cell[inside], kind[inside], t[inside]

    who = row[cell]
    seconds = window.seconds(t)
    order = np.argsort(who * 10**10 + (seconds - window.start_s).astype(np.int64), kind="stable")
    cell, kind, who, seconds = cell[order], kind[order], who[order], seconds[order]
    # Power users and admins do most of the work: user numbers skew low.
    user_number = 1 + np.floor(days.users[cell] * rng.random(len(cell)) ** 1.7).astype(np.int64)
    has_user = ~np.isin(kind, _NO_USER)
    numbers = accounts.number[who]
    return {
        "event_id": compose_text(["C", (numbers, id_digits), "-E", (sequence_within(who), 5)]),
        "customer_id": customer_ids(numbers, id_digits),
        "event_type": pa.array(TYPE_NAMES, pa.string()).take(pa.array(kind)),
        "occurred_at": seconds,
        "user_id": compose_text(["C", (numbers, id_digits), "-U", (user_number, 2)], valid=has_user),
        "quantity": _quantities(rng, kind),
    }


def _quantities(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """How much one event stands for: API calls and synced records come in batches, runs in bursts."""
    quantity = np.ones(len(kind))
    for name, draw in (
        ("api_call", lambda k: np.round(rng.lognormal(3.0, 1.0, k)) + 1),
        ("integration_synced", lambda k: np.round(rng.lognormal(4.0, 1.2, k)) + 1),
        ("workflow_run", lambda k: 1 + rng.poisson(2.0, k)),
        ("file_uploaded", lambda k: 1 + rng.poisson(0.6, k)),
    ):
        where = kind == _T[name]
        quantity[where] = draw(int(where.sum()))
    return quantity
