"""Support tickets: when customers ask for help, how fast they get it, and how they rate it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churn.demo.company import Accounts, customer_ids
from churn.demo.exposure import CustomerDays
from churn.demo.fate import Cause, Fates, active
from churn.demo.formatting import compose_text, sequence_within
from churn.demo.timeline import DAY_S, Window, business_seconds

PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_SHARES = np.array([0.25, 0.50, 0.18, 0.07])
CHANNELS = ("email", "chat", "web", "phone")
# Channel mix per segment: enterprise customers pick up the phone.
CHANNEL_SHARES = np.array([[0.40, 0.35, 0.20, 0.05], [0.40, 0.30, 0.18, 0.12], [0.35, 0.20, 0.15, 0.30]])
TICKETS_PER_MONTH = np.array([0.35, 0.9, 2.2])  # per segment, once onboarded
FIRST_RESPONSE_MEDIAN_H = np.array([8.0, 4.0, 1.5, 0.5])  # per priority
RESOLUTION_MEDIAN_H = np.array([48.0, 24.0, 10.0, 4.0])
WEEKEND_RESPONSE_SLOWDOWN = 3.0
CSAT_RESPONSE_RATE = 0.30
SOLVED_DAYS = 4  # a solved ticket closes after this many quiet days

# How a cause's pressure changes the ticket rate (multiplier at full pressure).
TICKET_RATE_AT_PRESSURE = np.ones(len(Cause))
for _cause, _factor in (
    (Cause.SUPPORT, 5.0), (Cause.PRODUCT_FIT, 2.5), (Cause.PAYMENT_FAILED, 3.0), (Cause.PRICE, 1.5),
    (Cause.ADOPTION, 0.5), (Cause.COMPETITOR, 0.7), (Cause.BUSINESS_CLOSED, 0.5),
):  # fmt: skip
    TICKET_RATE_AT_PRESSURE[_cause] = _factor


@dataclass(frozen=True)
class Tickets:
    """A batch's tickets; times in days since the window start, NaN when not reached by the end."""

    row: np.ndarray
    opened: np.ndarray
    first_response: np.ndarray
    resolved: np.ndarray
    priority: np.ndarray
    channel: np.ndarray
    replies: np.ndarray
    reopened: np.ndarray
    escalated: np.ndarray
    csat: np.ndarray  # NaN when not rated
    csat_at: np.ndarray
    resolution_h: np.ndarray  # hidden: how long it took (even past the end of the data)
    friction: np.ndarray  # hidden: how bad support was for this customer then

    def __len__(self) -> int:
        return len(self.row)


def draw_tickets(
    rng: np.random.Generator, accounts: Accounts, fates: Fates, days: CustomerDays, window: Window
) -> Tickets:
    """Tickets for one batch, ordered by customer and opening time."""
    n = len(accounts)
    row = days.row
    appetite = rng.gamma(2.0, 0.5, n)  # some customers simply file more tickets
    settling_in = 1 + 2.5 * (1 - days.onboarding)
    under_pressure = 1 + (TICKET_RATE_AT_PRESSURE[days.cause] - 1) * days.pressure
    rate = (
        TICKETS_PER_MONTH[accounts.segment[row]] / 30.4375 * appetite[row] * settling_in * under_pressure
        * np.where(days.weekend, 0.25, 1.0)
    )  # fmt: skip
    cells = np.flatnonzero(rate > 0)
    cell = np.repeat(cells, rng.poisson(rate[cells]))
    k = len(cell)

    priority = rng.choice(len(PRIORITIES), size=k, p=PRIORITY_SHARES)
    support_trouble = np.where(days.cause[cell] == Cause.SUPPORT, days.pressure[cell], 0.0)
    # Support trouble means more urgent tickets, not only more of them.
    bump = rng.random(k) < 0.5 * support_trouble
    priority = np.where(bump, np.minimum(priority + 1, 3), priority)
    anytime = (priority == 3) & (rng.random(k) < 0.3)
    local_s = np.where(anytime, rng.uniform(0, DAY_S, k), business_seconds(rng, k))
    who = row[cell]
    opened = days.day[cell] + local_s / DAY_S - accounts.tz_hours[who] / 24
    inside = (opened >= 0) & (opened < window.days) & active(fates, accounts.created, who, opened)
    order = np.lexsort((opened[inside], who[inside]))
    cell, priority, friction = cell[inside][order], priority[inside][order], support_trouble[inside][order]
    who, opened = row[cell], opened[inside][order]
    k = len(cell)

    slow = 1 + 2 * friction
    weekend = days.weekend[cell]
    first_h = rng.lognormal(np.log(FIRST_RESPONSE_MEDIAN_H[priority]), 0.9) * slow
    first_h *= np.where(weekend, WEEKEND_RESPONSE_SLOWDOWN, 1.0)
    reopened = rng.random(k) < 0.06 + 0.30 * friction
    work_h = rng.lognormal(np.log(RESOLUTION_MEDIAN_H[priority]), 1.0) * (1 + 3 * friction)
    work_h *= np.where(reopened, rng.uniform(1.3, 2.5, k), 1.0)
    resolution_h = first_h + work_h
    escalated = rng.random(k) < 0.03 + 0.20 * friction + 0.15 * (priority == 3)
    replies = 1 + rng.poisson(0.6 + 0.25 * np.log1p(resolution_h) + 3 * friction) + 2 * reopened

    # A ticket still open when the customer leaves is closed then.
    period_end = np.where(opened < fates.churn[who], fates.churn[who], fates.churn2[who])
    resolved = np.minimum(opened + resolution_h / 24, period_end)
    first_response = np.minimum(opened + first_h / 24, resolved)
    rated = rng.random(k) < CSAT_RESPONSE_RATE
    csat_at = resolved + rng.exponential(0.3, k)
    rated &= (csat_at < window.days) & (csat_at < period_end)
    latent = (
        4.4 - 2.2 * friction - 0.35 * np.log(np.clip(resolution_h / 24, 0.05, None)) - 0.8 * reopened
        + rng.normal(0, 0.9, k)
    )  # fmt: skip
    csat = np.where(rated, np.clip(np.round(latent), 1, 5), np.nan)
    segment = accounts.segment[who]
    channel = (rng.random((k, 1)) > CHANNEL_SHARES[segment].cumsum(axis=1)).sum(axis=1).clip(0, 3)
    return Tickets(
        row=who, opened=opened, first_response=_known(first_response, window),
        resolved=_known(resolved, window), priority=priority, channel=channel, replies=replies,
        reopened=reopened, escalated=escalated, csat=csat, csat_at=np.where(rated, csat_at, np.nan),
        resolution_h=resolution_h, friction=friction,
    )  # fmt: skip


def _known(t: np.ndarray, window: Window) -> np.ndarray:
    """Times after the end of the data have not happened yet: NaN."""
    return np.where(t < window.days, t, np.nan)


def ticket_columns(
    rng: np.random.Generator, tickets: Tickets, accounts: Accounts, window: Window, id_digits: int
) -> dict[str, object]:
    """The tickets file rows; status as seen at the end of the data."""
    resolved_known = ~np.isnan(tickets.resolved)
    responded = ~np.isnan(tickets.first_response)
    recently = tickets.resolved > window.days - SOLVED_DAYS
    waiting = rng.random(len(tickets)) < 0.4  # an answered open ticket often waits on the customer
    status = np.where(
        resolved_known,
        np.where(recently, "solved", "closed"),
        np.where(responded & waiting, "pending", "open"),
    )
    numbers = accounts.number[tickets.row]
    # Closed tickets keep their counts; one still open at the end shows what has happened so far.
    replies = np.where(resolved_known, tickets.replies, np.where(responded, 1, 0))
    return {
        "ticket_id": compose_text(["C", (numbers, id_digits), "-T", (sequence_within(tickets.row), 4)]),
        "customer_id": customer_ids(numbers, id_digits),
        "opened_at": window.seconds(tickets.opened),
        "first_response_at": window.seconds(tickets.first_response),
        "resolved_at": window.seconds(tickets.resolved),
        "status": status,
        "priority": np.array(PRIORITIES)[tickets.priority],
        "channel": np.array(CHANNELS)[tickets.channel],
        "replies": replies,
        "reopened": tickets.reopened & resolved_known,
        "escalated": tickets.escalated,
        "csat": tickets.csat,
    }
