"""What the risk-reading routes answer, as pydantic models (so the OpenAPI spec says exactly this)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

Tier = Literal["high", "medium", "low"]
DriversSource = Literal["stored", "computed", "unavailable"]


class Driver(BaseModel):
    """One reason for the risk, in the feature catalogue's words."""

    feature: str = Field(description="The feature's name, e.g. logins_30d.")
    value: bool | int | float | str | None = Field(description="The customer's value of it that day.")
    sentence: str = Field(description="The reason in plain words.")
    effect: float = Field(description="How hard it pushes the risk, in log-odds (positive raises it).")
    direction: Literal["raises risk", "lowers risk"]


class Drivers(BaseModel):
    """The top drivers raising and lowering a customer's risk."""

    raising: list[Driver]
    lowering: list[Driver]


class SourceFreshness(BaseModel):
    """A source's newest row before the scored day began, and whether it was older than allowed."""

    source: str
    newest: datetime | None = Field(description="The newest row's business time (UTC); null: no rows.")
    age_days: float | None = Field(description="Days between that row and the start of the scored day.")
    limit_days: int | None = Field(description="alerts.stale_after_days for this source, if any.")
    stale: bool


class ScoreFields(BaseModel):
    customer_id: str
    as_of: date = Field(description="The scored day (features as of its start, UTC).")
    risk: float = Field(ge=0, le=1, description="Calibrated probability of churning within the horizon.")
    tier: Tier
    model_version: str
    scored_at: datetime
    snapshot_built_at: datetime = Field(description="When the day's feature snapshot was built.")
    updated_at: datetime = Field(description="When these values were last written (moves only on change).")


class LikelyReason(BaseModel):
    """The reason the customer would most likely give for leaving, learned from past churners."""

    code: str = Field(description="The reason code, from the taxonomy (config reasons.taxonomy).")
    label: str = Field(description="How the reason reads to a rep.")
    probability: float = Field(ge=0, le=1, description="The model's probability of this reason.")
    play: str | None = Field(description="The suggested play for a rep.")
    low_confidence: bool = Field(
        description="true when, on held-out churns, the model did not beat guessing the commonest reason."
    )


class CustomerRisk(ScoreFields):
    """A customer's latest score, with the freshness of its data and why the risk is what it is."""

    freshness: list[SourceFreshness]
    drivers: Drivers | None
    drivers_source: DriversSource = Field(
        description="stored: kept by the scoring; computed: now, by the model that scored; "
        "unavailable: see drivers_note."
    )
    drivers_note: str | None = Field(default=None, description="Why drivers are unavailable.")
    likely_reason: LikelyReason | None = Field(
        default=None, description="The likely reason for leaving, when a likely-reason model is trained."
    )
    likely_reason_note: str | None = Field(default=None, description="Why likely_reason is null.")


class ScoredDay(ScoreFields):
    """One scored day of a customer."""


class RiskHistory(BaseModel):
    """A customer's scored days, oldest first."""

    customer_id: str
    days: list[ScoredDay]
    has_more: bool = Field(description="More days match: ask again with `from` = next_from.")
    next_from: date | None


class ScoreChange(ScoreFields):
    """A change to one customer's score of one day (a new day, or a rescored day whose values changed)."""

    change_id: int = Field(description="Grows in commit order; the cursor continues after it.")
    segment: str | None
    owner_email: str | None


class ScoreChanges(BaseModel):
    """A page of the change feed, in change order."""

    changes: list[ScoreChange]
    next_cursor: str = Field(description="Pass as `cursor`, with the same filters, for the next page.")
    has_more: bool = Field(description="More changes are committed already: ask again at once.")
