"""The data contract: which entities the product accepts, their columns, keys and rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    TIMESTAMP = "timestamp"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"


@dataclass(frozen=True)
class Field:
    """One column of an entity and what a valid value looks like."""

    name: str
    kind: Kind
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    default: object | None = None
    max_length: int = 255

    def expectation(self) -> str:
        """Say in words what a valid value is, for error messages."""
        match self.kind:
            case Kind.TIMESTAMP:
                return "an ISO 8601 timestamp such as 2024-03-01T09:30:00Z"
            case Kind.BOOLEAN:
                return "true/false, yes/no or 1/0"
            case Kind.CHOICE:
                return "one of " + ", ".join(self.choices)
            case Kind.INTEGER | Kind.NUMBER:
                noun = "a whole number" if self.kind is Kind.INTEGER else "a number"
                if self.minimum is not None and self.maximum is not None:
                    return f"{noun} from {self.minimum:g} to {self.maximum:g}"
                if self.minimum is not None:
                    return f"{noun} of at least {self.minimum:g}"
                return noun
            case _:
                return f"text of at most {self.max_length} characters"


@dataclass(frozen=True)
class Entity:
    """An importable entity: its natural key and columns."""

    name: str
    table: str
    key: str
    fields: tuple[Field, ...]
    description: str
    references_customers: bool = True
    # Customers keep unknown columns as free-form attributes; other entities ignore them.
    keeps_extra_columns: bool = False
    # Usage events may come without an id: then the whole row is the identity.
    key_derived_from_row: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


# Score scales per survey kind (standard definitions; CES on the common 1-7 scale).
SURVEY_SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

_ID = 128
INT32_MAX = 2**31 - 1  # whole-number columns are 32-bit in the database

CUSTOMERS = Entity(
    name="customers",
    table="customers",
    key="customer_id",
    description="One row per customer account; unknown columns are kept as attributes.",
    references_customers=False,
    keeps_extra_columns=True,
    fields=(
        Field("customer_id", Kind.TEXT, required=True, max_length=_ID),
        Field("name", Kind.TEXT),
        Field("segment", Kind.TEXT, max_length=64),
        Field("plan", Kind.TEXT, max_length=64),
        Field("region", Kind.TEXT, max_length=64),
        Field("owner_email", Kind.TEXT),
        Field("created_at", Kind.TIMESTAMP),
        Field("seats", Kind.INTEGER, minimum=0),
    ),
)

SUBSCRIPTIONS = Entity(
    name="subscriptions",
    table="subscriptions",
    key="subscription_id",
    description="Paid subscription periods; an empty ended_at means active.",
    fields=(
        Field("subscription_id", Kind.TEXT, required=True, max_length=_ID),
        Field("customer_id", Kind.TEXT, required=True, max_length=_ID),
        Field("started_at", Kind.TIMESTAMP, required=True),
        Field("ended_at", Kind.TIMESTAMP),
        Field("mrr", Kind.NUMBER, required=True, minimum=0),
        Field("plan", Kind.TEXT, max_length=64),
        Field("seats", Kind.INTEGER, minimum=0),
        Field("billing_period", Kind.CHOICE, choices=("monthly", "quarterly", "annual")),
    ),
)

EVENTS = Entity(
    name="events",
    table="usage_events",
    key="event_id",
    description="Product usage events of any type the company sends.",
    key_derived_from_row=True,
    fields=(
        Field("event_id", Kind.TEXT, max_length=_ID),
        Field("customer_id", Kind.TEXT, required=True, max_length=_ID),
        Field("event_type", Kind.TEXT, required=True, max_length=64),
        Field("occurred_at", Kind.TIMESTAMP, required=True),
        Field("user_id", Kind.TEXT, max_length=_ID),
        Field("quantity", Kind.NUMBER, minimum=0, default=1.0),
    ),
)

TICKETS = Entity(
    name="tickets",
    table="tickets",
    key="ticket_id",
    description="Support tickets; a ticket without resolved_at is still open.",
    fields=(
        Field("ticket_id", Kind.TEXT, required=True, max_length=_ID),
        Field("customer_id", Kind.TEXT, required=True, max_length=_ID),
        Field("opened_at", Kind.TIMESTAMP, required=True),
        Field("first_response_at", Kind.TIMESTAMP),
        Field("resolved_at", Kind.TIMESTAMP),
        Field("status", Kind.TEXT, max_length=32),
        Field("priority", Kind.TEXT, max_length=32),
        Field("channel", Kind.TEXT, max_length=32),
        Field("replies", Kind.INTEGER, minimum=0),
        Field("reopened", Kind.BOOLEAN),
        Field("escalated", Kind.BOOLEAN),
        Field("csat", Kind.INTEGER, minimum=1, maximum=5),
    ),
)

SURVEYS = Entity(
    name="surveys",
    table="survey_responses",
    key="response_id",
    description="NPS, CSAT and CES answers, with comments in any language.",
    fields=(
        Field("response_id", Kind.TEXT, required=True, max_length=_ID),
        Field("customer_id", Kind.TEXT, required=True, max_length=_ID),
        Field("survey", Kind.CHOICE, required=True, choices=tuple(SURVEY_SCALES)),
        Field("score", Kind.INTEGER, required=True),  # range depends on the survey: SURVEY_SCALES
        Field("responded_at", Kind.TIMESTAMP, required=True),
        Field("comment", Kind.TEXT, max_length=4000),
        Field("touchpoint", Kind.TEXT, max_length=64),
    ),
)

CANCELLATIONS = Entity(
    name="cancellations",
    table="cancellations",
    key="cancellation_id",
    description="Cancellations with reason codes and free text in any language.",
    fields=(
        Field("cancellation_id", Kind.TEXT, required=True, max_length=_ID),
        Field("customer_id", Kind.TEXT, required=True, max_length=_ID),
        Field("effective_at", Kind.TIMESTAMP, required=True),
        Field("requested_at", Kind.TIMESTAMP),
        Field("reason_code", Kind.TEXT, max_length=64),
        Field("reason_text", Kind.TEXT, max_length=4000),
        Field("voluntary", Kind.BOOLEAN),
        Field("source", Kind.TEXT, max_length=64),
    ),
)

ENTITIES: dict[str, Entity] = {
    e.name: e for e in (CUSTOMERS, SUBSCRIPTIONS, EVENTS, TICKETS, SURVEYS, CANCELLATIONS)
}

# Pairs (earlier, later) that must be in order when both are present.
TIME_ORDER: dict[str, tuple[tuple[str, str], ...]] = {
    "subscriptions": (("started_at", "ended_at"),),
    "tickets": (("opened_at", "first_response_at"), ("opened_at", "resolved_at")),
    "cancellations": (("requested_at", "effective_at"),),
}


def get_entity(name: str) -> Entity:
    """Look an entity up by its CLI name, with a clear error for a wrong one."""
    try:
        return ENTITIES[name]
    except KeyError:
        raise ValueError(f"unknown entity {name!r}: expected one of {', '.join(ENTITIES)}") from None
