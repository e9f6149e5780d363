"""`churn alerts replay`: what the alert policy would have sent over the backtest, before switching it on."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from churn.cli.common import DAY_FORMATS, UserError, console, errors, load_context, open_engine, user_errors

if TYPE_CHECKING:
    from churn.config import ProductConfig
    from churn.settings import Settings
    from serving.replay import Replay


def replay(
    start: Annotated[
        datetime | None, typer.Option("--from", formats=DAY_FORMATS, help="First backtest day to replay.")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option("--to", formats=DAY_FORMATS, help="Last backtest day.")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON for scripts.")] = False,
) -> None:
    """Replay the alert policy over the model's backtest: how many alerts it would have sent, per week
    and per owner, how many of those customers really churned (precision), how many churners it caught
    (recall), and how early (median lead time).

    The scores are the model's out-of-time backtest scores, so no alert saw its own future. Change
    `alerts.threshold`, `rearm_below`, `cooldown_days`, `jump` or `daily_cap_per_owner` in the config
    file and replay again to find a policy that fits the team's capacity before switching it on.
    """
    from serving.replay import replay_model

    with user_errors():
        settings, config = load_context()
        engine = open_engine(settings)
        result, used = replay_model(
            settings,
            engine,
            config.alerts,
            version=version,
            start=start.date() if start else None,
            end=end.date() if end else None,
        )
        if as_json:
            sys.stdout.write(json.dumps({"model_version": used, **result.as_dict()}, indent=2) + "\n")
        else:
            print_replay(result, used)


def print_replay(result: Replay, version: str | None) -> None:
    """The replay in words, then per week and per owner."""
    from serving.replay import percent

    o = result.overall
    plural = "" if o["alerts"] == 1 else "s"
    lead = "—" if o["median_lead_days"] is None else f"{o['median_lead_days']:.0f} days"
    console.print(
        f"Replaying the alert policy (threshold {o['threshold']:.0%}) over model version {version}'s "
        f"backtest, {o['from']} to {o['to']} ({o['scored_days']} scored days, {o['customers']:,} customers):",
        highlight=False,
    )
    console.print(
        f"  {o['alerts']:,} alert{plural} ({o['alerts_per_week']:.1f} a week; {o['in_digests']:,} of them in "
        f"daily digests). {percent(o['precision'])} of alerted customers churned within "
        f"{o['horizon_days']} days (against {percent(o['base_rate'])} of all customers); "
        f"{o['churners_alerted']:,} of {o['churners']:,} churners were alerted first "
        f"({percent(o['recall'])}), a median {lead} before they left.",
        highlight=False,
    )
    if o["days_between_scorings"] > 1:
        console.print(
            f"  The backtest scored every {o['days_between_scorings']:.0f} days: the daily cap and jumps "
            "applied at that pace, so a daily live scoring sends somewhat more.",
            highlight=False,
        )
    weeks = Table(title="Per week")
    for column in ("week of", "alerts", "churned", "precision"):
        weeks.add_column(column, justify="left" if column == "week of" else "right")
    for row in result.by_week:
        weeks.add_row(row["week"], f"{row['alerts']:,}", f"{row['churned']:,}", percent(row["precision"]))
    console.print(weeks)
    owners = Table(title="Per owner")
    for column in ("owner", "alerts", "a week", "churned", "precision"):
        owners.add_column(column, justify="left" if column == "owner" else "right")
    for row in result.by_owner:
        owners.add_row(
            Text(row["owner"]),
            f"{row['alerts']:,}",
            f"{row['alerts_per_week']:.1f}",
            f"{row['churned']:,}",
            percent(row["precision"]),
        )
    console.print(owners)


def replay_sections(
    settings: Settings, config: ProductConfig, *, version: str | None, run_id: str | None
) -> list[str]:
    """The replay as a report section; none when the run cannot be replayed (one trained on a table)."""
    from serving.replay import ReplayError, replay_model
    from serving.replay_report import replay_section

    try:
        engine = open_engine(settings)
        result, _ = replay_model(settings, engine, config.alerts, version=version, run_id=run_id)
    except (ReplayError, UserError) as exc:
        errors.print(Text(f"The report has no alert-policy replay: {exc}"))
        return []
    return [replay_section(result)]
