"""`churn score`: score every active customer with the champion and queue the alerts it calls for."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from churn.cli.common import DAY_FORMATS, console, load_context, open_engine, spinner, user_errors
from churn.clock import utc_now

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from churn.config import ProductConfig
    from churn.settings import Settings
    from serving.scoring import ScoringSummary


def register(app: typer.Typer) -> None:
    """Add the scoring command to the root app."""
    app.command("score")(score)


def score(
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=DAY_FORMATS, help="Score the customers as of this day (default: today, UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON for scripts.")] = False,
) -> None:
    """Score every active customer's risk of churning with the champion model, and queue alerts.

    Builds the day's feature snapshot if it is not built yet, stores each customer's risk, tier and
    top reasons in the risk history, and applies the alert policy (threshold, re-arming, cooldown,
    jumps, each owner's daily cap). Alerts are queued, not sent: `churn alerts send` (or the
    scheduler) delivers them. Running it again for the same day changes nothing.
    """
    from serving.scoring import refresh_and_score

    with user_errors():
        settings, config = load_context()
        engine = open_engine(settings)
        now = utc_now()
        with spinner(enabled=not as_json) as say:
            summary = refresh_and_score(
                engine, settings, config, now=now, as_of=as_of.date() if as_of else None, on_progress=say
            )
        if as_json:
            sys.stdout.write(json.dumps(summary.as_dict(), indent=2, default=str) + "\n")
        else:
            print_scoring(summary)


def print_scoring(summary: ScoringSummary, *, sending_next: bool = False) -> None:
    """The scoring in words: how many at risk, what was queued, and what was held back and why."""
    tiers = summary.tiers
    console.print(
        f"Scored {summary.customers:,} active customers as of {summary.as_of} with model version "
        f"{summary.model_version}: {tiers['high']:,} high risk, {tiers['medium']:,} medium, "
        f"{tiers['low']:,} low ({summary.changed:,} scores new or changed, {summary.seconds:.1f}s).",
        highlight=False,
    )
    for source in summary.stale:
        console.print(Text.assemble(("Stale data: ", "yellow"), source.describe()))
    if not summary.alerted:
        console.print("No new alerts: nobody crossed the threshold or jumped since the last scoring.")
        return
    table = Table(title=f"Alerts queued for {summary.as_of}")
    for column in ("customer", "name", "rule", "risk", "was", "owner", "channel", "state"):
        table.add_column(column, justify="right" if column in ("risk", "was") else "left")
    for row in summary.alerted:
        was = row["previous_risk"]
        table.add_row(
            row["customer_id"],
            Text(row["name"] or ""),
            row["kind"],
            f"{row['risk']:.0%}",
            "" if was is None else f"{was:.0%}",
            Text(row["owner_email"] or "no owner"),
            Text(row["channel"]),
            row["state"],
        )
    console.print(table)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.alerts.items()))
    then = "sending them now" if sending_next else "`churn alerts send` delivers them"
    console.print(f"{len(summary.alerted)} alert(s): {counts}; {then}.", highlight=False)


def score_demo(settings: Settings, config: ProductConfig, engine: Engine, day: date) -> None:
    """Score the demo's last day with its champion and send what alerts (the console without Slack)."""
    from churn.cli.alerts import print_dispatch
    from serving.dispatch import dispatch_pending
    from serving.scoring import score_day
    from training.registry import champion_version

    if champion_version(settings) is None:
        console.print("No champion model yet, so nothing to score (`churn train --promote`).")
        return
    _learn_demo_reasons(settings, config, engine)
    with spinner(enabled=True) as say:
        summary = score_day(engine, settings, config, as_of=day, now=utc_now(), on_progress=say)
    print_scoring(summary, sending_next=True)
    print_dispatch(dispatch_pending(engine, settings, config, now=utc_now(), console=console))


def _learn_demo_reasons(settings: Settings, config: ProductConfig, engine: Engine) -> None:
    """Read the demo's free-text reasons and learn which reason customers at risk would give (once)."""
    from churn.errors import UserFacingError
    from training.likely_reason import load_likely_reason, train_likely_reason
    from training.reasons.refresh import refresh_with_best_classifier

    if load_likely_reason(settings) is not None:
        return
    with spinner(enabled=True) as say:
        say("reading the cancellation texts that came without a reason code")
        fills = refresh_with_best_classifier(engine, settings, config, now=utc_now())
        say("learning which reason a customer at risk would give")
        try:
            trained = train_likely_reason(settings, config, engine)
        except UserFacingError as exc:
            trained, why = None, str(exc)
    console.print(
        f"Placed {fills.placed:,} of {fills.classified:,} free-text reasons without a code "
        f"({fills.classifier}).",
        highlight=False,
    )
    if trained is None:
        console.print(Text(f"No likely reason in alerts yet: {why}"))
        return
    figures = trained.model.evaluation
    console.print(
        f"Likely-reason model version {trained.version}: right {figures['accuracy']:.0%} of the time on "
        f"the latest churners, against {figures['majority_accuracy']:.0%} for always guessing the "
        "commonest reason; alerts now say the likely reason and its play.",
        highlight=False,
    )
