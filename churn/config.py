"""What the product does: the optional YAML config file, with defaults that work."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """The config file cannot be used; the message names the file and the setting."""


class _Section(BaseModel):
    # A misspelt key should fail loudly rather than silently keep its default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Section):
    # The CSV reader keeps a few dozen chunks in flight, so this sets the memory an import needs.
    chunk_mb: int = Field(
        default=4, ge=1, le=256, description="Megabytes of a file read and checked at a time."
    )
    timezone: str = Field(default="UTC", description="Time zone for timestamps written without an offset.")
    max_problems_shown: int = Field(default=20, ge=1, description="Problems printed before the count.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        check_timezone(value)
        return value


class DemoConfig(_Section):
    customers: int = Field(default=2_000, ge=10)
    months: int = Field(default=18, ge=3)
    seed: int = 7


FAMILIES = ("engagement", "tickets", "satisfaction", "account")


class FeaturesConfig(_Section):
    families: list[str] = Field(
        default=list(FAMILIES), min_length=1, description="Signal families to compute: " + ", ".join(FAMILIES)
    )
    windows_days: list[int] = Field(
        default=[7, 30, 90], min_length=1, description="Look-back windows, in days, for counts and trends."
    )
    max_event_types: int = Field(
        default=25, ge=0, description="Event types that get their own features (the most frequent ones)."
    )
    exclude_event_types: list[str] = Field(
        default=[], description="Event types left out of engagement (e.g. internal or system events)."
    )
    failed_payment_event_types: list[str] = Field(
        default=["payment_failed"],
        description="Event types that record a failed payment; they feed the account family, not engagement.",
    )
    high_priorities: list[str] = Field(
        default=["high", "urgent"], description="Ticket priorities counted as high or urgent."
    )
    work_mem_mb: int = Field(
        default=256,
        ge=4,
        le=16_384,
        description="PostgreSQL memory per sort or hash for feature jobs (SET LOCAL work_mem, per query).",
    )

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown family {unknown[0]!r} (expected some of {', '.join(FAMILIES)})")
        return list(dict.fromkeys(value))

    @field_validator("windows_days")
    @classmethod
    def _positive_windows(cls, value: list[int]) -> list[int]:
        bad = [w for w in value if w <= 0]
        if bad:
            raise ValueError(f"window {bad[0]} days: windows must be at least 1 day")
        if max(value) > 365:
            raise ValueError(f"window {max(value)} days: windows longer than 365 days are not supported")
        return sorted(set(value))

    @property
    def lookback_days(self) -> int:
        """How far back a snapshot reads usage: two of the longest window, to compare with the one before."""
        return 2 * max(self.windows_days)


class LabelsConfig(_Section):
    horizon_days: int = Field(
        default=90, ge=1, le=730, description="A snapshot is labelled churned if churn follows within this."
    )
    grace_days: int = Field(
        default=7, ge=0, le=90, description="A gap between subscriptions shorter than this is not churn."
    )
    exclude_involuntary: bool = Field(
        default=True, description="Leave involuntary churn (voluntary = false) out of the churn label."
    )
    exclude_reason_codes: list[str] = Field(
        default=["payment_failed"], description="Cancellation reason codes left out of the churn label."
    )
    exclude_uncontrollable: bool = Field(
        default=True,
        description="Leave churn whose reason the company could not have changed out of the label.",
    )


CALIBRATION_METHODS = ("auto", "isotonic", "sigmoid")
PROMOTION_METRICS = ("pr_auc", "roc_auc", "brier", "log_loss", "top_decile_lift")


def _one_of(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r} (expected one of {', '.join(choices)})")
    return value


class TrainingConfig(_Section):
    folds: int = Field(
        default=3,
        ge=3,
        le=12,
        description="Rolling-origin backtest folds (train on earlier days, test later).",
    )
    min_train_days: int = Field(
        default=4, ge=2, description="Fewest snapshot days the first backtest fold trains on."
    )
    holdout_share: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.5,
        description="Latest share of a fold's training days kept for early stopping and calibration.",
    )
    calibration: str = Field(
        default="auto",
        description="Scores to probabilities: isotonic, sigmoid, or auto (isotonic given enough churners).",
    )
    monotone: bool = Field(
        default=True,
        description="Keep the model to each feature's known direction (more open tickets never lower risk).",
    )
    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    max_rounds: int = Field(default=2_000, ge=10, description="Upper bound on boosting rounds.")
    early_stopping_rounds: int = Field(default=100, ge=5)
    threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="CPU threads LightGBM uses; 0 = all cores. Lower it on a machine other jobs share.",
    )
    tune_trials: int = Field(
        default=12, ge=2, le=200, description="Parameter sets `churn train --tune` tries."
    )
    seed: int = 7

    @field_validator("calibration")
    @classmethod
    def _known_calibration(cls, value: str) -> str:
        return _one_of(value, CALIBRATION_METHODS, "method")


class ScoringConfig(_Section):
    high_risk: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="Risk from which a customer is in the high tier."
    )
    medium_risk: float = Field(
        default=0.15, gt=0.0, lt=1.0, description="Risk from which a customer is in the medium tier."
    )
    top_drivers: int = Field(
        default=3, ge=1, le=10, description="Drivers each way stored for high-tier and alerted customers."
    )

    @model_validator(mode="after")
    def _tiers_in_order(self) -> ScoringConfig:
        if self.medium_risk >= self.high_risk:
            raise ValueError(f"medium_risk {self.medium_risk} must be below high_risk {self.high_risk}")
        return self


SOURCES = ("events", "tickets", "surveys", "subscriptions")
# A channel as Slack names it: "#name" (lower case, digits, - and _) or an ID (public, private, DM).
CHANNEL = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{8,}")


class JumpRule(_Section):
    rise: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="Alert when risk rose by at least this much (0.2 = 20 points)...",
    )
    within_days: int = Field(default=14, ge=1, le=365, description="...within this many days.")


class Route(_Section):
    """Alerts for customers matching every given condition go to ``channel``; the first match wins."""

    channel: str
    segment: str | None = None
    min_mrr: float | None = Field(default=None, ge=0, description="MRR band, inclusive lower bound.")
    max_mrr: float | None = Field(default=None, gt=0, description="MRR band, exclusive upper bound.")


class InvoluntaryConfig(_Section):
    to_reps: bool = Field(
        default=False, description="Send failed-payment risk to the account owner like any other alert."
    )
    channel: str | None = Field(
        default=None, description="Channel for failed-payment risk (billing team); unset keeps it unsent."
    )


class DeliveryConfig(_Section):
    max_attempts: int = Field(
        default=6, ge=1, le=100, description="Sends tried before an alert is marked failed."
    )
    retry_base_s: float = Field(
        default=30.0, gt=0, description="First wait before retrying an alert; doubles each attempt."
    )
    retry_max_s: float = Field(default=3_600.0, gt=0, description="Longest wait between attempts.")
    batch_size: int = Field(default=100, ge=1, le=10_000, description="Alerts one dispatch pass sends.")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="Slack API request timeout.")
    owner_cache_days: int = Field(
        default=7, ge=0, description="How long an owner's e-mail to Slack user lookup is reused."
    )


class AlertsConfig(_Section):
    threshold: float = Field(
        default=0.3,
        gt=0.0,
        lt=1.0,
        description="Risk (probability of churning within the horizon) at which a customer alerts.",
    )
    rearm_below: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="After alerting, a customer alerts again only once its risk has fallen below this.",
    )
    cooldown_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description="Days after an alert during which the customer does not alert again.",
    )
    jump: JumpRule | None = Field(
        default=JumpRule(), description="Also alert on a sharp rise below the threshold; null turns it off."
    )
    change_window_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="The change an alert shows is against the scoring this many days earlier (or before).",
    )
    daily_cap_per_owner: int = Field(
        default=5, ge=1, description="Alerts an owner gets a day; the rest go into one daily digest."
    )
    channels: dict[str, str] = Field(
        default={"cs-alerts": "#cs-alerts"},
        description="Channel names used below, each mapped to a Slack channel (#name or channel ID).",
    )
    default_channel: str = Field(default="cs-alerts", description="Where alerts go when no route matches.")
    fallback_channel: str = Field(
        default="cs-alerts", description="Where alerts go when the owner is unknown to Slack."
    )
    routes: list[Route] = Field(default=[], description="Routing by segment or MRR band; first match wins.")
    involuntary: InvoluntaryConfig = InvoluntaryConfig()
    stale_after_days: dict[str, int] = Field(
        # Only events by default: tickets, surveys and new subscriptions can be rare in a small
        # book without anything being wrong with the feed.
        default={"events": 3},
        description="Hold alerts when a source's newest row is older than this many days.",
    )
    operator_channel: str | None = Field(
        default=None, description="Channel told when alerts are held (stale data); unset: logs only."
    )
    crm_url_template: str | None = Field(
        default=None,
        description="Link to the CRM record, e.g. https://crm.example.com/accounts/{customer_id}",
    )
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _consistent(self) -> AlertsConfig:
        if self.rearm_below >= self.threshold:
            raise ValueError(f"rearm_below {self.rearm_below} must be below threshold {self.threshold}")
        for name, channel in self.channels.items():
            if not CHANNEL.fullmatch(channel):
                raise ValueError(
                    f"channels.{name}: {channel!r} is not a Slack channel "
                    "(write #name or a channel ID like C0123ABCD)"
                )
        for i, rule in enumerate(self.routes):
            if rule.min_mrr is not None and rule.max_mrr is not None and rule.min_mrr >= rule.max_mrr:
                raise ValueError(f"routes[{i}]: min_mrr {rule.min_mrr} must be below max_mrr {rule.max_mrr}")
        named = [("default_channel", self.default_channel), ("fallback_channel", self.fallback_channel)]
        named += [(f"routes[{i}].channel", r.channel) for i, r in enumerate(self.routes)]
        named += [
            ("involuntary.channel", self.involuntary.channel),
            ("operator_channel", self.operator_channel),
        ]
        for where, name in named:
            if name is not None and name not in self.channels:
                raise ValueError(
                    f"{where}: unknown channel name {name!r} (declared in alerts.channels: "
                    f"{', '.join(self.channels) or 'none'})"
                )
        for source, days in self.stale_after_days.items():
            if source not in SOURCES:
                raise ValueError(
                    f"stale_after_days: unknown source {source!r} (expected some of {', '.join(SOURCES)})"
                )
            if days < 1:
                raise ValueError(f"stale_after_days.{source}: {days} days must be at least 1")
        if self.crm_url_template is not None:
            try:
                self.crm_url_template.format(customer_id="C1")
            except (KeyError, IndexError, ValueError):
                raise ValueError(
                    f"crm_url_template {self.crm_url_template!r}: "
                    "the only placeholder allowed is {customer_id}"
                ) from None
        return self


class ScheduleConfig(_Section):
    timezone: str = Field(default="UTC", description="Time zone the cron expressions below are read in.")
    score: str = Field(default="0 6 * * *", description="Refresh today's features and score (crontab).")
    dispatch_minutes: int = Field(
        default=5, ge=1, le=1_440, description="Send queued alerts every N minutes."
    )
    retrain: str = Field(
        default="0 3 * * 1", description="Retrain and promote through the gate (crontab; Mondays 03:00)."
    )
    misfire_grace_s: int = Field(
        default=3_600, ge=1, description="A job missed by less than this (scheduler down) still runs, once."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        check_timezone(value)
        return value

    @field_validator("score", "retrain")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from churn.crontab import crontab_trigger

        try:
            crontab_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a crontab expression: {exc}") from None
        return value


class PromotionConfig(_Section):
    metric: str = Field(
        default="pr_auc", description="Backtest metric a challenger must match to be promoted."
    )
    tolerance: float = Field(
        default=0.005, ge=0.0, le=0.5, description="How much worse than the champion a challenger may be."
    )
    window_days: int = Field(
        default=91, ge=7, description="The recent stretch of backtest days both models are compared on."
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return _one_of(value, PROMOTION_METRICS, "metric")


class Reason(_Section):
    """One cancellation reason: what it means, whether CS can act on it, and what a rep should do."""

    label: str = Field(min_length=1, max_length=80, description="How the reason reads to a rep.")
    voluntary: bool = Field(description="The customer chose to leave (not a failed payment).")
    controllable: bool = Field(description="Something the company could have changed (price, support, ...).")
    play: str = Field(min_length=1, max_length=600, description="The suggested play for a rep.")


DEFAULT_TAXONOMY = {
    "price": Reason(
        label="Price",
        voluntary=True,
        controllable=True,
        play="Compare what they use with what they pay: right-size the plan or seats before the renewal "
        "and show the value delivered in their own numbers.",
    ),
    "product_fit": Reason(
        label="Missing feature",
        voluntary=True,
        controllable=True,
        play="Ask which workflow is blocked, share the roadmap or a workaround, and bring product in "
        "if the account is worth it.",
    ),
    "support": Reason(
        label="Poor service",
        voluntary=True,
        controllable=True,
        play="Service recovery: apologise, ask what went wrong, agree one action item with a date, "
        "and follow up when it is done.",
    ),
    "adoption": Reason(
        label="Low usage, no value seen",
        voluntary=True,
        controllable=True,
        play="Re-onboard: find the champion, agree two outcomes that matter to them, and book a "
        "training session for the team.",
    ),
    "competitor": Reason(
        label="Moving to a competitor",
        voluntary=True,
        controllable=True,
        play="Find out which competitor and why, answer the gap that matters most, and involve the "
        "account executive.",
    ),
    "business_closed": Reason(
        label="Business closed, acquired or budget cut to zero",
        voluntary=True,
        controllable=False,
        play="Confirm the situation kindly, offer a pause or a smaller plan, and keep the contact.",
    ),
    "payment_failed": Reason(
        label="Failed payment",
        voluntary=False,
        controllable=True,
        play="Billing first: check the card and the dunning e-mails, and offer another way to pay.",
    ),
    # Kept in the churn label: a reason no one could classify is not a reason to stop learning from it.
    "other": Reason(
        label="Other",
        voluntary=True,
        controllable=True,
        play="Ask what would have made them stay, and note it for the team.",
    ),
}


class ReasonsConfig(_Section):
    taxonomy: dict[str, Reason] = Field(
        default=DEFAULT_TAXONOMY,
        description="Cancellation reason codes, each with its label, kind and suggested play.",
    )
    min_confidence: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="A text classified with less confidence than this is left as 'other'.",
    )

    @field_validator("taxonomy")
    @classmethod
    def _codes(cls, value: dict[str, Reason]) -> dict[str, Reason]:
        for code in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", code):
                raise ValueError(f"reason code {code!r}: use lower-case letters, digits and _ (at most 64)")
        if "other" not in value:
            raise ValueError("the taxonomy needs an 'other' reason (where unclear texts go)")
        return value


class ProductConfig(_Section):
    """Every product behaviour a team may want to change, with its default."""

    ingest: IngestConfig = IngestConfig()
    demo: DemoConfig = DemoConfig()
    features: FeaturesConfig = FeaturesConfig()
    labels: LabelsConfig = LabelsConfig()
    training: TrainingConfig = TrainingConfig()
    scoring: ScoringConfig = ScoringConfig()
    alerts: AlertsConfig = AlertsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    promotion: PromotionConfig = PromotionConfig()
    reasons: ReasonsConfig = ReasonsConfig()

    @model_validator(mode="after")
    def _label_codes_in_taxonomy(self) -> ProductConfig:
        orphans = [code for code in self.labels.exclude_reason_codes if code not in self.reasons.taxonomy]
        if orphans:
            raise ValueError(
                f"labels.exclude_reason_codes: {orphans[0]!r} is not a reason in reasons.taxonomy "
                f"({', '.join(self.reasons.taxonomy)})"
            )
        return self


def check_timezone(name: str) -> ZoneInfo:
    """Return the IANA time zone, or say clearly that it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
        ) from None


def load_config(path: Path | None) -> ProductConfig:
    """Read the config file if there is one; defaults otherwise."""
    if path is None:
        return ProductConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (set by CHURN_CONFIG)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        return ProductConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(
                filter(None, [".".join(str(p) for p in err["loc"]), err["msg"].removeprefix("Value error, ")])
            )
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
