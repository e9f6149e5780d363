"""`churn features`: build, show and list feature snapshots."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from churn.cli.common import DAY_FORMATS, UserError, console, errors, load_context, open_engine, user_errors
from churn.clock import utc_now
from churn.config import ProductConfig

if TYPE_CHECKING:
    from features.snapshot import BuildSummary, CustomerFeatures

features_app = typer.Typer(
    help="Build and inspect feature snapshots: each customer's signals as of a day.", no_args_is_help=True
)


def show_demo_features(engine: Engine, day: date, config: ProductConfig) -> None:
    """Build the snapshot and show, in words, the customer whose usage fell the most."""
    from features.snapshot import build_snapshots, customer_features, load_snapshots

    summary = build_snapshots(engine, [day], config.features, now=utc_now())
    console.print(build_table(summary))
    with engine.connect() as connection:
        snapshot = load_snapshots(connection, [day])
    trend = snapshot.get("events_30d_vs_prev_30d")
    if trend is None or trend.isna().all():
        return
    customer_id = str(snapshot.loc[trend.idxmin(), "customer_id"])
    shown = customer_features(engine, customer_id, day, config.features, today=utc_now().date())
    console.print(f"Signals for {customer_id}, whose usage fell the most:", highlight=False)
    headline = (
        "events_30d_vs_prev_30d",
        "active_users_30d_vs_prev_30d",
        "days_since_last_event",
        "open_tickets",
        "last_nps",
        "mrr",
        "days_to_renewal",
    )
    for feature in shown.features:
        if feature.name in headline:
            console.print(Text("  - " + feature.say(shown.values.get(feature.name))))


@features_app.command("build")
def features_build(
    as_of: Annotated[
        datetime | None,
        typer.Option(formats=DAY_FORMATS, help="Build the snapshot as of the start of this day (UTC)."),
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=DAY_FORMATS, help="First day of a history of snapshots."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=DAY_FORMATS, help="Last day of the history (default: today)."),
    ] = None,
    step: Annotated[int, typer.Option(help="Days between snapshots of a history.")] = 7,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Replace snapshots that were already built.")
    ] = False,
) -> None:
    """Write one row of features per active customer for a day, or for every --step days of a range.

    Features at a day use only facts from before that day began (UTC). The daily usage rollup is
    brought up to date first, reading only days that changed since the last run. Snapshots already
    built are kept, so facts that arrive later change only snapshots built after they arrive;
    `--rebuild` replaces them. Without options, builds today's snapshot.

    Examples: `churn features build --as-of 2025-06-01`;
    `churn features build --from 2024-06-03 --to 2025-06-02 --step 7` (a weekly training history).
    """
    from features.snapshot import check_days, snapshot_days

    with user_errors():
        settings, config = load_context()
        today = utc_now().date()
        if as_of and (start or end):
            raise UserError("--as-of: give either --as-of or --from/--to, not both")
        if as_of or not start:
            if end:
                raise UserError("--to: needs --from")
            days = [as_of.date() if as_of else today]
        else:
            days = snapshot_days(start.date(), end.date() if end else today, step)
        engine = open_engine(settings)
        check_days(engine, days, today=today)  # one clear error before any progress bar
        summary = build_with_progress(engine, days, config, rebuild=rebuild)
        console.print(build_table(summary))


def build_with_progress(
    engine: Engine, days: list[date], config: ProductConfig, *, rebuild: bool = False
) -> BuildSummary:
    """Build the snapshots of ``days`` behind a progress bar, one step a day."""
    from features.snapshot import build_snapshots

    progress = Progress(
        TextColumn("snapshots"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=errors
    )
    with progress:
        task = progress.add_task("build", total=len(days))
        return build_snapshots(
            engine,
            days,
            config.features,
            now=utc_now(),
            rebuild=rebuild,
            on_progress=lambda run: progress.advance(task),
        )


def build_table(summary: BuildSummary) -> Table:
    rollup = summary.rollup
    how = (
        "rebuilt from all events" if rollup.full_rebuild else f"{rollup.changed_days:,} changed customer-days"
    )
    table = Table(title=f"Feature snapshots (usage rollup: {how}, {rollup.seconds:.1f}s)")
    for column in ("as_of", "customers", "features", "seconds", "result"):
        table.add_column(
            column, justify="right" if column in ("customers", "features", "seconds") else "left"
        )
    for run in summary.runs:
        if run.skipped:
            table.add_row(str(run.as_of), "", "", "", "kept (already built; --rebuild replaces it)")
        else:
            table.add_row(
                str(run.as_of), f"{run.customers:,}", f"{run.features:,}", f"{run.seconds:.1f}", "built"
            )
    return table


@features_app.command("show")
def features_show(
    customer_id: Annotated[str, typer.Argument(help="The customer's customer_id.")],
    as_of: Annotated[
        datetime | None, typer.Option(formats=DAY_FORMATS, help="Day of the features (default: today).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print one customer's features as of a day, each with a sentence in plain words.

    Read from the stored snapshot when that day was built; computed on the spot otherwise.
    """
    from features.snapshot import customer_features

    with user_errors():
        settings, config = load_context()
        engine = open_engine(settings)
        today = utc_now().date()
        shown = customer_features(
            engine, customer_id, as_of.date() if as_of else today, config.features, today=today
        )
        if as_json:
            sys.stdout.write(json.dumps(shown.as_dict(), indent=2, ensure_ascii=False) + "\n")
            return
        console.print(customer_table(shown))


def customer_table(shown: CustomerFeatures) -> Table:
    source = "stored snapshot" if shown.stored else "computed now; no snapshot was built for this day"
    table = Table(title=Text(f"{shown.customer_id} as of {shown.as_of} ({source})"))
    table.add_column("family")
    table.add_column("feature")
    table.add_column("value", justify="right")
    table.add_column("in words")
    for feature in shown.features:
        value = shown.values.get(feature.name)
        table.add_row(
            feature.family,
            feature.name,
            "" if value is None else str(value),
            Text(feature.say(value)),
        )
    return table


@features_app.command("list")
def features_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every feature the configured families compute: name, unit, meaning and sentence.

    Engagement features exist for each event type the company sends; they are listed as patterns,
    with `{event}` standing for the event type.
    """
    from features.snapshot import catalogue

    with user_errors():
        _, config = load_context()
        features = catalogue(config.features)
        if as_json:
            payload = [
                {
                    "name": f.name,
                    "family": f.family,
                    "unit": str(f.unit),
                    "description": f.description,
                    "sentence": f.sentence,
                }
                for f in features
            ]
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
            return
        table = Table(title=f"{len(features)} features ({', '.join(config.features.families)})")
        for column in ("family", "feature", "unit", "meaning", "sentence"):
            table.add_column(column)
        for f in features:
            sentence = (
                f.sentence.replace("{event_label}", "'<event type>'")
                .replace("{value}", "N")
                .replace("{change}", "rose/fell N%")
            )
            table.add_row(f.family, Text(f.name), str(f.unit), Text(f.description), Text(sentence))
        console.print(table)


@features_app.command("snapshots")
def features_snapshots() -> None:
    """List the snapshots that have been built: day, customers, features, when and how long."""
    from features.snapshot import snapshot_runs_frame

    with user_errors():
        settings, _ = load_context()
        engine = open_engine(settings)
        with engine.connect() as connection:
            runs = snapshot_runs_frame(connection)
        if runs.empty:
            console.print("No snapshots yet: `churn features build --as-of DAY` builds one.")
            return
        table = Table(title=f"{len(runs)} feature snapshots")
        for column in ("as_of", "customers", "features", "built (UTC)", "seconds"):
            table.add_column(column, justify="left" if column in ("as_of", "built (UTC)") else "right")
        for run in runs.itertuples():
            table.add_row(
                str(run.as_of),
                f"{run.customers:,}",
                f"{run.features:,}",
                run.built_at.strftime("%Y-%m-%d %H:%M"),
                f"{run.seconds:.1f}",
            )
        console.print(table)
