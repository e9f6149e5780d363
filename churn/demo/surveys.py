"""Survey responses: quarterly NPS, CSAT after tickets, CES after onboarding and support, with comments."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from churn.demo import phrasing
from churn.demo.comments import COMMENTS
from churn.demo.company import Accounts, customer_ids
from churn.demo.fate import Cause, Fates, active, pressure
from churn.demo.formatting import compose_text, sequence_within
from churn.demo.support import Tickets
from churn.demo.timeline import DAY_S, Window, business_seconds, civil_dates

NPS_MONTHS = (1, 4, 7, 10)  # campaigns go out on the 10th of each quarter's first month
NPS_SAMPLE = 0.60  # share of eligible customers invited to a campaign
NPS_RESPONSE_RATE = 0.30  # per invited user
NPS_INVITED_USERS = 3
CES_ONBOARDING_RESPONSE = 0.40
CES_SUPPORT_RESPONSE = 0.12
ARABIC_WHEN_ARABIC_SPEAKING = 0.85
ARABIC_OTHERWISE = 0.02

# NPS points lost at full pressure, per cause: unhappiness shows most for missing features and support.
NPS_DROP = np.zeros(len(Cause))
for _cause, _drop in (
    (Cause.PRODUCT_FIT, 4.5), (Cause.SUPPORT, 3.5), (Cause.PRICE, 3.0), (Cause.COMPETITOR, 2.5),
    (Cause.ADOPTION, 1.5), (Cause.BUSINESS_CLOSED, 0.5), (Cause.OTHER, 1.0),
):  # fmt: skip
    NPS_DROP[_cause] = _drop
CAUSE_TOPIC = {
    Cause.ADOPTION: "adoption", Cause.SUPPORT: "support", Cause.PRODUCT_FIT: "product_fit",
    Cause.PRICE: "price", Cause.COMPETITOR: "competitor",
}  # fmt: skip


class Responses(NamedTuple):
    """Answers to one kind of survey at one touchpoint."""

    row: np.ndarray
    at: np.ndarray
    survey: str
    score: np.ndarray
    topic: np.ndarray  # what a comment would be about
    commented: np.ndarray
    touchpoint: str


def _campaign_days(window: Window) -> np.ndarray:
    days = np.arange(window.days)
    _, month, day = civil_dates(window.start_epoch_day + days)
    return days[np.isin(month, NPS_MONTHS) & (day == 10)].astype(float)


def _local_time(rng: np.random.Generator, accounts: Accounts, row: np.ndarray, day: np.ndarray) -> np.ndarray:
    """A moment in the customer's office hours on the given (local) day."""
    return np.floor(day) + business_seconds(rng, len(row)) / DAY_S - accounts.tz_hours[row] / 24


def _nps(
    rng: np.random.Generator, accounts: Accounts, fates: Fates, window: Window, mood: np.ndarray
) -> Responses:
    campaigns = _campaign_days(window)
    n = len(accounts)
    row = np.repeat(np.arange(n), len(campaigns))
    sent = np.tile(campaigns, n)
    eligible = active(fates, accounts.created, row, sent) & (sent - accounts.created[row] >= 45)
    eligible &= rng.random(len(row)) < NPS_SAMPLE
    invited = np.minimum(accounts.users[row], NPS_INVITED_USERS) * eligible
    answers = rng.binomial(invited, NPS_RESPONSE_RATE)
    row, sent = np.repeat(row, answers), np.repeat(sent, answers)
    at = _local_time(rng, accounts, row, sent + np.minimum(rng.exponential(2.5, len(row)), 14))
    answered = (at < window.days) & active(fates, accounts.created, row, at)
    row, at = row[answered], at[answered]
    cause, x = pressure(fates, row, at)
    latent = 7.4 + 1.3 * mood[row] - NPS_DROP[cause] * x + rng.normal(0, 1.4, len(row))
    score = np.clip(np.round(latent), 0, 10)
    band = np.where(score >= 9, "promoter", np.where(score >= 7, "passive", "detractor"))
    about_cause = (
        (x > 0.25) & (score <= 8) & (rng.random(len(row)) < 0.75) & np.isin(cause, list(CAUSE_TOPIC))
    )
    topics = np.array([CAUSE_TOPIC.get(Cause(c), "") for c in range(len(Cause))], dtype=object)[cause]
    topic = np.where(about_cause, topics, band)
    commented = rng.random(len(row)) < np.where(score <= 6, 0.55, 0.35)
    return Responses(row, at, "nps", score, topic, commented, "quarterly_nps")


def _csat(rng: np.random.Generator, tickets: Tickets) -> Responses:
    rated = ~np.isnan(tickets.csat)
    row, at, score = tickets.row[rated], tickets.csat_at[rated], tickets.csat[rated]
    trouble = tickets.friction[rated] > 0.3
    topic = np.where(score >= 4, "support_good", np.where(score <= 2, "support_bad", "passive"))
    topic = np.where(trouble & (score <= 3) & (rng.random(len(row)) < 0.6), "support", topic)
    commented = rng.random(len(row)) < 0.30
    return Responses(row, at, "csat", score, topic, commented, "support_ticket")


def _ces_onboarding(
    rng: np.random.Generator, accounts: Accounts, fates: Fates, window: Window, mood: np.ndarray
) -> Responses:
    n = len(accounts)
    asked = accounts.created + rng.uniform(30, 50, n)
    at = _local_time(rng, accounts, np.arange(n), asked + rng.exponential(1.5, n))
    answered = (at >= 0) & (at < window.days) & (rng.random(n) < CES_ONBOARDING_RESPONSE)
    answered &= active(fates, accounts.created, np.arange(n), at)
    row, at = np.flatnonzero(answered), at[answered]
    cause, x = pressure(fates, row, at)
    struggling = np.isin(cause, (Cause.ADOPTION, Cause.PRODUCT_FIT)) * x
    latent = 5.3 + 0.7 * mood[row] - 3.0 * struggling + rng.normal(0, 1.1, len(row))
    score = np.clip(np.round(latent), 1, 7)
    topic = np.where(score >= 5, "onboarding_easy", np.where(score <= 3, "onboarding_hard", "passive"))
    commented = rng.random(len(row)) < 0.25
    return Responses(row, at, "ces", score, topic, commented, "onboarding")


def _ces_support(
    rng: np.random.Generator, accounts: Accounts, tickets: Tickets, fates: Fates, window: Window
) -> Responses:
    at = tickets.resolved + rng.exponential(0.5, len(tickets))
    asked = ~np.isnan(tickets.resolved) & (rng.random(len(tickets)) < CES_SUPPORT_RESPONSE)
    asked &= (at < window.days) & active(fates, accounts.created, tickets.row, at)
    row, at = tickets.row[asked], at[asked]
    slow = np.log(np.clip(tickets.resolution_h[asked] / 24, 0.05, None))
    latent = 5.6 - 3.0 * tickets.friction[asked] - 0.4 * slow + rng.normal(0, 1.1, len(row))
    score = np.clip(np.round(latent), 1, 7)
    topic = np.where(score >= 5, "support_good", np.where(score <= 3, "support_bad", "passive"))
    commented = rng.random(len(row)) < 0.25
    return Responses(row, at, "ces", score, topic, commented, "support_ticket")


def survey_columns(
    rng: np.random.Generator,
    accounts: Accounts,
    fates: Fates,
    tickets: Tickets,
    window: Window,
    id_digits: int,
) -> dict[str, object]:
    """The surveys file rows for one batch, ordered by customer and response time."""
    # How a customer feels about the product in good times; related to how much it uses it.
    mood = 0.5 * np.log(accounts.engagement) + rng.normal(0, 0.85, len(accounts))
    parts = [
        _nps(rng, accounts, fates, window, mood),
        _csat(rng, tickets),
        _ces_onboarding(rng, accounts, fates, window, mood),
        _ces_support(rng, accounts, tickets, fates, window),
    ]
    row = np.concatenate([p.row for p in parts])
    at = np.concatenate([p.at for p in parts])
    survey = np.concatenate([np.full(len(p.row), p.survey) for p in parts])
    score = np.concatenate([p.score for p in parts]).astype(np.int64)
    topic = np.concatenate([np.asarray(p.topic, dtype=object) for p in parts])
    commented = np.concatenate([p.commented for p in parts])
    touchpoint = np.concatenate([np.full(len(p.row), p.touchpoint) for p in parts])
    order = np.lexsort((at, row))
    row, at, survey, score = row[order], at[order], survey[order], score[order]
    topic, commented, touchpoint = topic[order], commented[order], touchpoint[order]

    talker = np.flatnonzero(commented)
    share = np.where(accounts.arabic[row[talker]], ARABIC_WHEN_ARABIC_SPEAKING, ARABIC_OTHERWISE)
    texts = phrasing.write_texts(
        rng, [str(t) for t in topic[talker]], rng.random(len(talker)) < share, COMMENTS
    )
    comment: list[str | None] = [None] * len(row)
    for i, text in zip(talker, texts, strict=True):
        comment[i] = text
    numbers = accounts.number[row]
    return {
        "response_id": compose_text(["C", (numbers, id_digits), "-R", (sequence_within(row), 4)]),
        "customer_id": customer_ids(numbers, id_digits),
        "survey": survey,
        "score": score,
        "responded_at": window.seconds(at),
        "comment": comment,
        "touchpoint": touchpoint,
    }
