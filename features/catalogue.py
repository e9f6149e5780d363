"""The feature catalogue: every feature's name, meaning, unit, and the sentence a CS rep reads.

Engagement features are named after the company's own event types, so some entries are patterns
(``{event}_events_{window}d``) that ``expand`` turns into concrete features at build time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum


class Direction(StrEnum):
    """What more of a feature is expected to do to churn risk; training may constrain the model to it.

    A prior only where the product knows it for every company (more open tickets never make a customer
    safer). ``LEARNED`` features are named after the company's own event types, whose meaning we do not
    know ("report exported" is engagement, "data export requested" may be a way out): training reads
    their direction from the training data. ``NONE`` leaves the model free.
    """

    RAISES = "raises"
    LOWERS = "lowers"
    LEARNED = "learned"
    NONE = "none"


class Unit(StrEnum):
    COUNT = "count"
    DAYS = "days"
    HOURS = "hours"
    SHARE = "share"  # 0-1, shown as a percentage
    CHANGE = "change"  # relative change, -0.62 = fell 62%
    SCORE = "score"
    MONEY = "money per month"
    RATIO = "ratio"
    CATEGORY = "category"


@dataclass(frozen=True)
class Feature:
    """One feature: what it is called, what it means, its unit, and how to say its value in words.

    ``sentence`` is a template: ``{value}`` is the formatted value, and for changes ``{change}`` reads
    "fell 62%", "rose 15%" or "held steady". ``missing`` is said when the value is unknown.
    """

    name: str
    family: str
    description: str
    unit: Unit
    sentence: str
    missing: str = ""
    direction: Direction = Direction.NONE

    def say(self, value: object) -> str:
        """The plain-language sentence for this feature's value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing or f"{self.description}: not known"
        return self.sentence.format(value=format_value(self.unit, value), change=_change_words(value))

    def expand(self, **names: object) -> Feature:
        """A concrete feature from a pattern, e.g. ``expand(event="login", window=30)``."""
        fill = {k: str(v) for k, v in names.items()}
        if "event" in fill:
            fill.setdefault("event_label", event_label(fill["event"]))
        return replace(
            self,
            name=self.name.format(**fill),
            description=self.description.format(**fill),
            sentence=self.sentence.format(value="{value}", change="{change}", **fill),
            missing=self.missing.format(**fill),
        )


def format_value(unit: Unit, value: object) -> str:
    """A value as a rep would write it."""
    if unit is Unit.CATEGORY or isinstance(value, str):
        return str(value)
    number = float(value)  # type: ignore[arg-type]
    match unit:
        case Unit.SHARE:
            return f"{number:.0%}"
        case Unit.CHANGE:
            return f"{abs(number):.0%}"
        case Unit.DAYS:
            return f"{number:,.0f} {'day' if round(number) == 1 else 'days'}"
        case Unit.HOURS:
            return f"{number:,.1f}"
        case Unit.RATIO:
            return f"{number:.2f}"
        case Unit.SCORE:
            return f"{number:.1f}".removesuffix(".0")
        case _:
            return f"{number:,.0f}"


def _change_words(value: object) -> str:
    if not isinstance(value, int | float):
        return ""
    if abs(value) < 0.005:
        return "held steady"
    return f"{'rose' if value > 0 else 'fell'} {abs(value):.0%}"


def event_label(event_type: str) -> str:
    """How an event type reads in a sentence: ``report_exported`` -> ``'report exported'``."""
    return "'" + event_type.replace("_", " ").replace("-", " ").strip() + "'"


def feature_slug(event_type: str) -> str:
    """An event type as part of a feature name: lower case letters, digits and underscores."""
    slug = "".join(ch if ch.isalnum() and ch.isascii() else "_" for ch in event_type.lower())
    return "_".join(part for part in slug.split("_") if part) or "unnamed"
