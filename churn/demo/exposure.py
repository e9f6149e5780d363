"""Customer-days: which customer is active on which day, how far onboarded and under what pressure.

Events and tickets are drawn per customer-day from these arrays, so behaviour is vectorised over the
whole batch with no loop per customer or per event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churn.demo.company import Accounts
from churn.demo.fate import Cause, Fates, after_request, pressure
from churn.demo.timeline import Window, season_table, weekend_table

# How much a cause's pressure (0-1) cuts overall usage and the number of active users.
USAGE_DROP = np.zeros(len(Cause))
USER_DROP = np.zeros(len(Cause))
for _cause, _usage, _users in (
    (Cause.ADOPTION, 0.85, 0.65),
    (Cause.SUPPORT, 0.30, 0.10),
    (Cause.PRODUCT_FIT, 0.45, 0.30),
    (Cause.PRICE, 0.25, 0.30),
    (Cause.COMPETITOR, 0.60, 0.45),
    (Cause.BUSINESS_CLOSED, 0.90, 0.70),
    (Cause.OTHER, 0.30, 0.20),
):
    USAGE_DROP[_cause], USER_DROP[_cause] = _usage, _users
WIND_DOWN = 0.55  # usage left once a customer has asked to cancel
WEEKLY_PHI, WEEKLY_SIGMA = 0.8, 0.2  # week-to-week drift of every account's usage (log scale)


@dataclass(frozen=True)
class CustomerDays:
    """One entry per active customer-day of a batch (day = local calendar day in the window)."""

    row: np.ndarray  # customer index in the batch
    day: np.ndarray
    cause: np.ndarray  # cause of the pressure on that day (NONE when none)
    pressure: np.ndarray  # 0-1
    leaving: np.ndarray  # has asked to cancel
    onboarding: np.ndarray  # 0 at sign-up, 1 once the ramp is over
    users: np.ndarray  # users active that day (>= 1)
    weekday_level: np.ndarray  # calendar factor: weekends, holidays
    weekend: np.ndarray
    drift: np.ndarray  # slow random drift of usage

    def __len__(self) -> int:
        return len(self.row)


def _covering(begin: np.ndarray, end: np.ndarray, days: int) -> np.ndarray:
    """(customers, days) grid: whether any part of each day falls in [begin, end)."""
    day = np.arange(days)[None, :]
    return (day + 1 > begin[:, None]) & (day < end[:, None])


def customer_days(rng: np.random.Generator, accounts: Accounts, fates: Fates, window: Window) -> CustomerDays:
    """Every day on which a batch's customers are customers, with their state that day."""
    n, days = len(accounts), window.days
    grid = _covering(accounts.created, fates.churn, days) | _covering(fates.winback, fates.churn2, days)
    row, day = np.nonzero(grid)
    noon = day + 0.5
    cause, x = pressure(fates, row, noon)
    leaving = after_request(fates, row, noon)

    age = noon - accounts.created[row]
    onboarding = np.clip(age / accounts.ramp_days[row], 0.0, 1.0)
    users = 1 + (accounts.users[row] - 1) * onboarding**0.8
    users = np.maximum(1.0, users * (1 - USER_DROP[cause] * x))

    weekend = weekend_table(window)[accounts.weekend_kind[row], day]
    season = season_table(window)[accounts.region[row], day]
    weekday_level = season * np.where(weekend, accounts.weekend_level[row], 1.0)

    weeks = days // 7 + 1
    shocks = rng.normal(0.0, WEEKLY_SIGMA, (n, weeks))
    walk = np.empty_like(shocks)
    walk[:, 0] = shocks[:, 0] / np.sqrt(1 - WEEKLY_PHI**2)
    for w in range(1, weeks):  # a loop over weeks, vectorised over customers
        walk[:, w] = WEEKLY_PHI * walk[:, w - 1] + shocks[:, w]
    stationary_var = WEEKLY_SIGMA**2 / (1 - WEEKLY_PHI**2)
    drift = np.exp(walk - stationary_var / 2)[row, day // 7]
    return CustomerDays(
        row=row, day=day, cause=cause, pressure=x, leaving=leaving, onboarding=onboarding, users=users,
        weekday_level=weekday_level, weekend=weekend, drift=drift,
    )  # fmt: skip
