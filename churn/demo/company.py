"""The demo company's accounts: who the customers are, what they bought, and who looks after them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from churn.demo import names
from churn.demo.formatting import compose_text
from churn.demo.timeline import DAY_S, MENA, REGION_SHARES, REGIONS, Window, business_seconds, draw_timezones

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARES = (0.60, 0.30, 0.10)
SMB, MID_MARKET, ENTERPRISE = range(3)

PLANS = ("Starter", "Growth", "Business", "Enterprise")
# Bigger customers buy bigger plans: rows are segments, columns plans.
PLAN_SHARES = np.array([[0.55, 0.35, 0.10, 0.00], [0.10, 0.40, 0.40, 0.10], [0.00, 0.10, 0.35, 0.55]])
PRICE_PER_SEAT = np.array([15.0, 29.0, 49.0, 79.0])  # list price per seat and month
ANNUAL_DISCOUNT = 0.15
ANNUAL_SHARE = np.array([0.25, 0.55, 0.85])  # larger accounts sign annual contracts

# Seats: median and spread (log scale) and bounds per segment.
_SEAT_MEDIAN = np.array([8.0, 55.0, 350.0])
_SEAT_SIGMA = np.array([0.6, 0.5, 0.6])
_SEAT_BOUNDS = np.array([[2, 40], [20, 250], [120, 3000]])

EXISTING_SHARE = 0.40  # customers already on board when the window opens
HISTORY_DAYS = 3 * 365  # how far back existing customers signed up
LIGHT_USER_SHARE = 0.22  # healthy accounts that simply use the product little
ARABIC_SPEAKING_SHARE = {True: 0.70, False: 0.03}  # by MENA / elsewhere


@dataclass(frozen=True)
class Roster:
    """Everything decided for the whole company before batches: sign-up days in id order and the CSM team."""

    signup_day: np.ndarray  # whole days since the window start, ascending (ids follow sign-up order)
    csm_emails: list[list[str]]  # per region
    id_digits: int
    window_days: int


@dataclass(frozen=True)
class Accounts:
    """One batch of customers: their visible attributes and the hidden traits that drive behaviour."""

    number: np.ndarray  # global customer numbers, 1-based
    created: np.ndarray  # days since the window start (negative: before it)
    segment: np.ndarray
    plan: np.ndarray
    region: np.ndarray
    industry: np.ndarray
    seats: np.ndarray
    annual: np.ndarray
    discount: np.ndarray
    tz_hours: np.ndarray
    weekend_kind: np.ndarray
    names: list[str]
    owner: list[str]
    # Hidden traits, never written as such.
    users: np.ndarray  # tracked users once onboarding is done
    ramp_days: np.ndarray  # length of the onboarding ramp
    engagement: np.ndarray  # usage level relative to similar accounts (mean 1)
    weekend_level: np.ndarray  # share of a weekday's activity that happens on a weekend day
    arabic: np.ndarray  # writes free text mostly in Arabic

    def __len__(self) -> int:
        return len(self.number)


def draw_roster(rng: np.random.Generator, customers: int, window: Window) -> Roster:
    """Sign-up days for all customers (ids in sign-up order) and a CSM team sized to the book."""
    existing = round(customers * EXISTING_SHARE)
    before = -np.ceil(HISTORY_DAYS * rng.random(existing) ** 1.4)  # more recent sign-ups are more common
    during = np.floor(window.days * rng.random(customers - existing) ** 0.85)  # the company is growing
    signup_day = np.sort(np.concatenate([before, during]))
    # One CSM per 60-150 accounts, at least one per region.
    per_region = [max(1, round(customers * share / rng.uniform(60, 150))) for share in REGION_SHARES]
    return Roster(
        signup_day=signup_day,
        csm_emails=names.csm_pool(rng, per_region),
        id_digits=max(6, len(str(customers))),
        window_days=window.days,
    )


def draw_accounts(rng: np.random.Generator, roster: Roster, first: int, count: int) -> Accounts:
    """The customers numbered first+1 .. first+count."""
    segment = rng.choice(3, size=count, p=SEGMENT_SHARES)
    region = rng.choice(len(REGIONS), size=count, p=REGION_SHARES)
    tz_hours, weekend_kind = draw_timezones(rng, region)
    plan = (rng.random((count, 1)) > PLAN_SHARES[segment].cumsum(axis=1)).sum(axis=1)
    seats = np.exp(np.log(_SEAT_MEDIAN[segment]) + _SEAT_SIGMA[segment] * rng.standard_normal(count))
    seats = np.clip(np.round(seats), _SEAT_BOUNDS[segment, 0], _SEAT_BOUNDS[segment, 1]).astype(np.int64)
    users = np.clip(np.round(seats**0.75 * rng.uniform(0.4, 0.9, count)), 2, 150).astype(np.int64)
    light = rng.random(count) < LIGHT_USER_SHARE
    level = np.where(light, 0.3, (1 - 0.3 * LIGHT_USER_SHARE) / (1 - LIGHT_USER_SHARE))
    engagement = level * rng.lognormal(-0.125, 0.5, count)
    discount = np.where(
        segment == ENTERPRISE,
        rng.uniform(0.0, 0.25, count),
        np.where((segment == MID_MARKET) & (rng.random(count) < 0.5), rng.uniform(0.0, 0.1, count), 0.0),
    )
    # Sign-up during local office hours of the customer's head office.
    day = roster.signup_day[first : first + count]
    created = day + (business_seconds(rng, count, spread=0.05) / DAY_S) - tz_hours / 24
    created = np.minimum(created, roster.window_days - 1 / 24)  # nobody signs up after the data ends
    pool = roster.csm_emails
    owner_pick = rng.random(count)
    owner = [pool[r][int(u * len(pool[r]))] for r, u in zip(region, owner_pick, strict=True)]
    arabic_share = np.where(region == MENA, ARABIC_SPEAKING_SHARE[True], ARABIC_SPEAKING_SHARE[False])
    return Accounts(
        number=np.arange(first + 1, first + count + 1),
        created=created,
        segment=segment,
        plan=plan,
        region=region,
        industry=rng.choice(len(names.INDUSTRIES), size=count, p=names.INDUSTRY_SHARES),
        seats=seats,
        annual=rng.random(count) < ANNUAL_SHARE[segment],
        discount=discount,
        tz_hours=tz_hours,
        weekend_kind=weekend_kind,
        names=names.company_names(rng, region),
        owner=owner,
        users=users,
        ramp_days=rng.uniform(28, 56, count),
        engagement=engagement,
        weekend_level=rng.uniform(0.04, 0.2, count),
        arabic=rng.random(count) < arabic_share,
    )


def customer_ids(numbers: np.ndarray, digits: int) -> pa.StringArray:
    """Customer ids such as C000123."""
    return compose_text(["C", (numbers, digits)])


def monthly_revenue(
    plan: np.ndarray, seats: np.ndarray, annual: np.ndarray, discount: np.ndarray
) -> np.ndarray:
    """MRR in currency units with cents: seats x list price, less the annual and negotiated discounts."""
    price = PRICE_PER_SEAT[plan] * np.where(annual, 1 - ANNUAL_DISCOUNT, 1.0) * (1 - discount)
    return np.round(seats * price, 2)


def customer_columns(accounts: Accounts, window: Window, id_digits: int) -> dict[str, object]:
    """The customers file rows; plan and seats are as signed up (later changes live on subscriptions)."""
    return {
        "customer_id": customer_ids(accounts.number, id_digits),
        "name": accounts.names,
        "segment": np.array(SEGMENTS)[accounts.segment],
        "plan": np.array(PLANS)[accounts.plan],
        "region": np.array(REGIONS)[accounts.region],
        "owner_email": accounts.owner,
        "created_at": window.seconds(accounts.created),
        "seats": accounts.seats,
        "industry": np.array(names.INDUSTRIES)[accounts.industry],
    }
