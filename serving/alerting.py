"""From the policy's decisions to outbox rows: routing, owners' daily caps, digests, holds, and the facts.

Pure: every input is passed in, so the rules read in one place and the scoring job only gathers
data and writes the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from churn.config import AlertsConfig
from serving.freshness import SourceFreshness
from serving.outbox import AlertKind, AlertState, dedupe_key
from serving.policy import Decision, apply_daily_cap

# Features whose rise means a failed payment: risk driven by them is billing's to chase, not the rep's.
FAILED_PAYMENT_PREFIX = "failed_payments_"


@dataclass(frozen=True)
class CustomerFacts:
    """What a rep needs to know about the account, next to its risk."""

    customer_id: str
    name: str | None
    segment: str | None
    owner_email: str | None
    tier: str
    mrr: float | None
    days_to_renewal: float | None
    previous_risk: float | None = None
    previous_as_of: date | None = None
    drivers: dict[str, Any] = field(default_factory=dict)  # {raising, lowering}: training.explain
    change_drivers: list[dict[str, Any]] = field(default_factory=list)
    # {code, label, probability, play, low_confidence} from the likely-reason model, when there is one.
    likely_reason: dict[str, Any] | None = None


@dataclass(frozen=True)
class AlertPlan:
    """Rows to queue: alerts on their own, digests with the alerts they carry, operator notices."""

    individual: list[dict[str, Any]]
    digests: list[tuple[dict[str, Any], list[dict[str, Any]]]]
    notices: list[dict[str, Any]]

    @property
    def count(self) -> int:
        return len(self.individual) + sum(len(carried) for _, carried in self.digests)

    @property
    def held(self) -> int:
        """Alerts held on stale data, on their own or in a held digest."""
        alone = sum(row["state"] == AlertState.HELD.value for row in self.individual)
        return alone + sum(len(c) for digest, c in self.digests if digest["state"] == AlertState.HELD.value)


def plan_alerts(
    decisions: Sequence[Decision],
    facts: Mapping[str, CustomerFacts],
    *,
    as_of: date,
    model_version: str,
    policy: AlertsConfig,
    freshness: Sequence[SourceFreshness],
    already_sent: Mapping[str, int],
) -> AlertPlan:
    """Route each decision, cap each owner's day, and hold everything if a source is stale."""
    stale = [f for f in freshness if f.stale]
    held_reason = "stale data: " + "; ".join(f.describe() for f in stale) if stale else None
    involuntary = [
        d for d in decisions if is_involuntary(facts[d.customer_id]) and not policy.involuntary.to_reps
    ]
    for_reps = [d for d in decisions if d not in involuntary]

    owner_of = {d.customer_id: facts[d.customer_id].owner_email for d in for_reps}
    capped = apply_daily_cap(for_reps, owner_of, policy.daily_cap_per_owner, already_sent)
    individual = [
        _alert_row(d, facts[d.customer_id], as_of, model_version, policy) for d in capped.individual
    ]
    for decision in involuntary:
        row = _alert_row(decision, facts[decision.customer_id], as_of, model_version, policy)
        if policy.involuntary.channel is None:
            row.update(state=AlertState.SUPPRESSED.value, state_reason="failed-payment risk: not for CS reps")
        else:
            row["channel"] = policy.involuntary.channel
        individual.append(row)

    digests = []
    for owner, overflow in capped.digests.items():
        carried = [_alert_row(d, facts[d.customer_id], as_of, model_version, policy) for d in overflow]
        for row in carried:
            row.update(
                state=AlertState.DIGESTED.value, state_reason="over the owner's daily cap: in the digest"
            )
        digests.append((_digest_row(owner, carried, as_of, policy), carried))

    if held_reason is not None:
        for row in [*individual, *(d for d, _ in digests)]:
            if row["state"] == AlertState.PENDING.value:
                row.update(state=AlertState.HELD.value, state_reason=held_reason)
    plan = AlertPlan(individual=individual, digests=digests, notices=[])
    if held_reason is not None and policy.operator_channel is not None:
        plan.notices.append(_notice_row(as_of, stale, plan.held, policy.operator_channel))
    return plan


def is_involuntary(facts: CustomerFacts) -> bool:
    """Risk whose strongest reason is failed payments: involuntary churn in the making."""
    raising = facts.drivers.get("raising") or []
    return bool(raising) and str(raising[0]["feature"]).startswith(FAILED_PAYMENT_PREFIX)


def route(facts: CustomerFacts, policy: AlertsConfig) -> str:
    """The channel name for a customer: the first route its segment and MRR match, else the default."""
    for rule in policy.routes:
        if rule.segment is not None and (facts.segment or "").casefold() != rule.segment.casefold():
            continue
        mrr = facts.mrr
        if rule.min_mrr is not None and (mrr is None or mrr < rule.min_mrr):
            continue
        if rule.max_mrr is not None and (mrr is None or mrr >= rule.max_mrr):
            continue
        return rule.channel
    return policy.default_channel


def _alert_row(
    decision: Decision, facts: CustomerFacts, as_of: date, model_version: str, policy: AlertsConfig
) -> dict[str, Any]:
    renewal = None
    if facts.days_to_renewal is not None:
        renewal = (as_of + timedelta(days=round(facts.days_to_renewal))).isoformat()
    message = {
        "customer_id": facts.customer_id,
        "name": facts.name,
        "segment": facts.segment,
        "owner_email": facts.owner_email,
        "as_of": as_of.isoformat(),
        "kind": decision.kind.value,
        "risk": round(decision.risk, 4),
        "previous_risk": None if facts.previous_risk is None else round(facts.previous_risk, 4),
        "previous_as_of": facts.previous_as_of.isoformat() if facts.previous_as_of else None,
        "jump_from": None if decision.baseline_risk is None else round(decision.baseline_risk, 4),
        "tier": facts.tier,
        "mrr": facts.mrr,
        "renewal_date": renewal,
        "days_to_renewal": None if facts.days_to_renewal is None else round(facts.days_to_renewal),
        "model_version": model_version,
        "involuntary": is_involuntary(facts),
        "change_drivers": facts.change_drivers,
        "drivers": facts.drivers,
        "likely_reason": _likely_reason(facts),
        "suggested_play": facts.likely_reason.get("play") if facts.likely_reason else None,
        "crm_url": policy.crm_url_template.format(customer_id=facts.customer_id)
        if policy.crm_url_template
        else None,
    }
    return {
        "dedupe_key": dedupe_key(decision.kind, as_of, facts.customer_id),
        "kind": decision.kind.value,
        "customer_id": facts.customer_id,
        "as_of": as_of,
        "owner_email": facts.owner_email,
        "channel": route(facts, policy),
        "risk": decision.risk,
        "previous_risk": facts.previous_risk,
        "model_version": model_version,
        "message": message,
        "state": AlertState.PENDING.value,
        "state_reason": None,
    }


def _likely_reason(facts: CustomerFacts) -> dict[str, Any] | None:
    if facts.likely_reason is None:
        return None
    # The play has its own slot in the message.
    return {key: value for key, value in facts.likely_reason.items() if key != "play"}


def _digest_row(
    owner: str, carried: list[dict[str, Any]], as_of: date, policy: AlertsConfig
) -> dict[str, Any]:
    # Entries get their alert ids once the carried alerts are queued (serving.score_store).
    entries = [digest_entry(None, row["message"]) for row in carried]
    # Sent where the owner's first alert would have gone: the routes are per account, a digest per owner.
    return {
        "dedupe_key": dedupe_key(AlertKind.DIGEST, as_of, owner or "unowned"),
        "kind": AlertKind.DIGEST.value,
        "customer_id": None,
        "as_of": as_of,
        "owner_email": owner or None,
        "channel": carried[0]["channel"],
        "risk": None,
        "previous_risk": None,
        "model_version": carried[0]["model_version"],
        "message": {
            "owner_email": owner or None,
            "as_of": as_of.isoformat(),
            "cap": policy.daily_cap_per_owner,
            "customers": entries,
        },
        "state": AlertState.PENDING.value,
        "state_reason": None,
    }


def digest_entry(alert_id: int | None, message: dict[str, Any]) -> dict[str, Any]:
    """One line of a digest: the account, its risk and change, and its headline reason."""
    return {
        "alert_id": alert_id,
        "customer_id": message["customer_id"],
        "name": message["name"],
        "risk": message["risk"],
        "previous_risk": message["previous_risk"],
        "mrr": message["mrr"],
        "headline": _headline(message),
    }


def _headline(message: dict[str, Any]) -> str | None:
    for driver in [*message["change_drivers"], *(message["drivers"].get("raising") or [])]:
        return str(driver["sentence"])
    return None


def _notice_row(as_of: date, stale: Sequence[SourceFreshness], held: int, channel: str) -> dict[str, Any]:
    lines = [f.describe() for f in stale]
    lines.append(
        f"{held} alert(s) from the scoring of {as_of} are held, not sent: `churn alerts release` sends "
        "them anyway; `churn alerts discard` drops them, and their customers can alert again at the "
        "next scoring, on fresh data."
    )
    return {
        "dedupe_key": dedupe_key(AlertKind.NOTICE, as_of, "stale-data"),
        "kind": AlertKind.NOTICE.value,
        "customer_id": None,
        "as_of": as_of,
        "owner_email": None,
        "channel": channel,
        "risk": None,
        "previous_risk": None,
        "model_version": None,
        "message": {
            "as_of": as_of.isoformat(),
            "title": "Churn alerts held: a data source is stale",
            "lines": lines,
        },
        "state": AlertState.PENDING.value,
        "state_reason": None,
    }
