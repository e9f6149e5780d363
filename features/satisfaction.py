"""Survey signals as of a cutoff: the last NPS answer, NPS, CSAT and CES over a window, how often they answer.

Point in time: a survey answered at or after ``as_of`` does not exist yet. Scales follow the data
contract: NPS 0-10 (promoters 9-10, passives 7-8, detractors 0-6), CSAT 1-5 (satisfied = 4-5), CES 1-7
(higher = easier).

``nps_response_rate_365d`` is a proxy: survey invitations are not in the data contract, so it is the
share of the last four 91-day quarters before ``as_of`` — only quarters wholly after the customer's
tenure start — in which the customer answered at least one NPS survey.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Double, and_, case, cast, func, select

from churn.config import FeaturesConfig
from churn.sql import epoch_seconds
from churn.tables import survey_responses
from features.aggregate import count_where, per_customer, ratio
from features.catalogue import Direction, Feature, Unit
from features.scope import Scope, Signals

FAMILY = "satisfaction"

PROMOTER_MIN = 9
DETRACTOR_MAX = 6
CSAT_SATISFIED_MIN = 4
QUARTER_DAYS = 91
QUARTERS = 4
YEAR_DAYS = 365

_LAST_NPS = Feature(
    "last_nps",
    FAMILY,
    "Score of the most recent NPS answer (0-10)",
    Unit.SCORE,
    "Their last NPS answer was {value} out of 10",
    "No NPS answer yet",
    direction=Direction.LOWERS,
)
_LAST_NPS_CATEGORY = Feature(
    "last_nps_category",
    FAMILY,
    "Promoter (9-10), passive (7-8) or detractor (0-6) on the most recent NPS answer",
    Unit.CATEGORY,
    "Their last NPS answer makes them a {value}",
    "No NPS answer yet",
)
_NPS = Feature(
    "nps_{window}d",
    FAMILY,
    "NPS of the answers in the last {window} days: % promoters minus % detractors (-100 to 100)",
    Unit.SCORE,
    "Their NPS over the last {window} days is {value} (on a scale from -100 to 100)",
    "No NPS answer in the last {window} days",
    direction=Direction.LOWERS,
)
_NPS_CHANGE = Feature(
    "nps_score_change_{window}d",
    FAMILY,
    "Average NPS answer in the last {window} days minus the average in the {window} days before",
    Unit.SCORE,
    "Their average NPS answer moved by {value} points against the {window} days before",
    "Not enough NPS answers to compare the last {window} days with the {window} days before",
    direction=Direction.LOWERS,
)
_DAYS_SINCE_ANSWER = Feature(
    "days_since_last_survey_answer",
    FAMILY,
    "Days since the customer last answered any survey",
    Unit.DAYS,
    "They last answered a survey {value} ago",
    "They have never answered a survey",
)
_CSAT_SATISFIED = Feature(
    "csat_satisfied_share_{window}d",
    FAMILY,
    "Share of CSAT answers in the last {window} days that were 4 or 5 out of 5",
    Unit.SHARE,
    "{value} of their CSAT answers in the last {window} days were satisfied (4 or 5 out of 5)",
    "No CSAT answer in the last {window} days",
    direction=Direction.LOWERS,
)
_CES_MEAN = Feature(
    "ces_mean_{window}d",
    FAMILY,
    "Average customer effort score (1-7, higher is easier) in the last {window} days",
    Unit.SCORE,
    "Their average effort score in the last {window} days was {value} out of 7 (higher is easier)",
    "No effort (CES) answer in the last {window} days",
    direction=Direction.LOWERS,
)
_ANSWERS = Feature(
    "survey_answers_365d",
    FAMILY,
    "Survey answers of any kind in the last 365 days",
    Unit.COUNT,
    "Survey answers in the last 365 days: {value}",
)
_NPS_RESPONSE_RATE = Feature(
    "nps_response_rate_365d",
    FAMILY,
    "Share of the last four quarters as a customer with at least one NPS answer",
    Unit.SHARE,
    "They answered an NPS survey in {value} of their last four quarters as a customer",
    "Not a customer for a full quarter yet",
)


def catalogue(config: FeaturesConfig) -> list[Feature]:
    """Every satisfaction feature for these windows, in the order ``compute`` returns them."""
    # Survey answers are rare (NPS is typically quarterly), so windowed metrics use the longest window.
    longest = max(config.windows_days)
    return [
        _LAST_NPS,
        _LAST_NPS_CATEGORY,
        _NPS.expand(window=longest),
        _NPS_CHANGE.expand(window=longest),
        _DAYS_SINCE_ANSWER,
        _CSAT_SATISFIED.expand(window=longest),
        _CES_MEAN.expand(window=longest),
        _ANSWERS,
        _NPS_RESPONSE_RATE,
    ]


def compute(connection: Connection, scope: Scope, config: FeaturesConfig) -> Signals:
    """Satisfaction features for every customer in scope, as of ``scope.as_of``."""
    features = catalogue(config)
    longest = max(config.windows_days)
    values = _values(_totals(connection, scope, longest), _last_nps(connection, scope), scope, longest)
    index = scope.population.index
    frame = pd.DataFrame({f.name: _per_customer(values[f.name], f, index) for f in features}, index=index)
    return Signals(frame, features)


def _values(
    totals: pd.DataFrame, last_nps: pd.Series, scope: Scope, window_days: int
) -> dict[str, pd.Series]:
    """Each feature per customer, from the SQL aggregates: null when there was nothing to measure."""
    window = f"{window_days}d"
    return {
        "last_nps": last_nps,
        "last_nps_category": last_nps.map(_nps_category, na_action="ignore"),
        f"nps_{window}": 100.0 * ratio(totals["promoters"] - totals["detractors"], totals["nps_answers"]),
        f"nps_score_change_{window}": totals["nps_mean"] - totals["nps_mean_previous"],
        "days_since_last_survey_answer": (scope.as_of.timestamp() - totals["last_answer_epoch"]) / 86400.0,
        f"csat_satisfied_share_{window}": ratio(totals["csat_satisfied"], totals["csat_answers"]),
        f"ces_mean_{window}": totals["ces_mean"],
        "survey_answers_365d": totals["answers_365d"],
        "nps_response_rate_365d": _nps_response_rate(totals, scope.population),
    }


def _totals(connection: Connection, scope: Scope, window_days: int) -> pd.DataFrame:
    """One row per customer with survey counts, means and the quarters with an NPS answer, in SQL."""
    s = survey_responses.c
    score = cast(s.score, Double)  # PostgreSQL averages integers as numeric (Decimal)
    nps, csat, ces = s.survey == "nps", s.survey == "csat", s.survey == "ces"
    window_start = scope.days_before(window_days)
    in_window = s.responded_at >= window_start
    in_previous = and_(s.responded_at >= scope.days_before(2 * window_days), s.responded_at < window_start)
    nps_in_window = and_(nps, in_window)

    columns: list[ColumnElement[Any]] = [
        count_where(nps_in_window).label("nps_answers"),
        count_where(and_(nps_in_window, s.score >= PROMOTER_MIN)).label("promoters"),
        count_where(and_(nps_in_window, s.score <= DETRACTOR_MAX)).label("detractors"),
        func.avg(case((nps_in_window, score))).label("nps_mean"),
        func.avg(case((and_(nps, in_previous), score))).label("nps_mean_previous"),
        func.max(epoch_seconds(s.responded_at)).label("last_answer_epoch"),
        count_where(and_(csat, in_window)).label("csat_answers"),
        count_where(and_(csat, in_window, s.score >= CSAT_SATISFIED_MIN)).label("csat_satisfied"),
        func.avg(case((and_(ces, in_window), score))).label("ces_mean"),
        count_where(s.responded_at >= scope.days_before(YEAR_DAYS)).label("answers_365d"),
    ]
    # Quarter q covers [as_of - 91 (q + 1) days, as_of - 91 q days): q = 0 is the latest.
    edges = [scope.days_before(QUARTER_DAYS * q) for q in range(QUARTERS + 1)]
    for quarter in range(QUARTERS):
        answered = and_(nps, s.responded_at >= edges[quarter + 1], s.responded_at < edges[quarter])
        columns.append(func.max(case((answered, 1), else_=0)).label(f"nps_quarter_{quarter}"))
    # No lower bound on responded_at: days_since_last_survey_answer looks at the whole history.
    query = (
        select(s.customer_id, *columns)
        .where(scope.only(s.customer_id), s.responded_at < scope.as_of)
        .group_by(s.customer_id)
    )
    return per_customer(connection, query)


def _last_nps(connection: Connection, scope: Scope) -> pd.Series:
    """Score of each customer's most recent NPS answer before ``as_of`` (ties: the highest response_id)."""
    s = survey_responses.c
    rank = (
        func.row_number()
        .over(partition_by=s.customer_id, order_by=(s.responded_at.desc(), s.response_id.desc()))
        .label("rank")
    )
    ranked = (
        select(s.customer_id, s.score, rank)
        .where(scope.only(s.customer_id), s.survey == "nps", s.responded_at < scope.as_of)
        .subquery()
    )
    query = select(ranked.c.customer_id, ranked.c.score).where(ranked.c.rank == 1)
    return per_customer(connection, query)["score"]


def _nps_response_rate(totals: pd.DataFrame, population: pd.DataFrame) -> pd.Series:
    """Share of the last four quarters, each wholly within the customer's tenure, with an NPS answer."""
    tenure = population["tenure_days"].astype("float64")
    answered = totals.reindex(population.index).fillna(0.0)
    eligible_quarters = pd.Series(0.0, index=population.index)
    answered_quarters = pd.Series(0.0, index=population.index)
    for quarter in range(QUARTERS):
        # A quarter that began before the customer did would count missed invitations never sent.
        eligible = (tenure >= QUARTER_DAYS * (quarter + 1)).astype("float64")
        eligible_quarters += eligible
        answered_quarters += eligible * answered[f"nps_quarter_{quarter}"]
    return ratio(answered_quarters, eligible_quarters)


def _nps_category(score: float) -> str:
    if score >= PROMOTER_MIN:
        return "promoter"
    return "detractor" if score <= DETRACTOR_MAX else "passive"


def _per_customer(values: pd.Series, feature: Feature, index: pd.Index) -> pd.Series:
    """One column of the result: every customer in the population, counts 0 where nothing was found."""
    series = values.reindex(index)
    if feature.unit is Unit.CATEGORY:
        # object with None, not pandas' string dtype: snapshot rows mix categories with numbers.
        return series.astype(object).where(series.notna(), None)
    # Rounded so the float noise of SQLite's julianday and PostgreSQL's epoch agree to the digit.
    series = series.astype("float64").round(6)
    return series.fillna(0.0) if feature.unit is Unit.COUNT else series
