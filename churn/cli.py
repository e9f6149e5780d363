"""The `churn` command line: the composition root, and the only module that imports every package."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

from churn.clock import utc_now
from churn.config import ConfigError, ProductConfig, check_timezone, load_config
from churn.errors import UserFacingError
from churn.ingest import IngestError, IngestOptions, IngestSummary, parse_column_map
from churn.settings import Settings, get_settings

if TYPE_CHECKING:
    from churn.demo import DemoSummary
    from churn.status import EntityStatus
    from features.snapshot import BuildSummary, CustomerFeatures

app = typer.Typer(
    help="Churn-risk prediction and alerting: import data, build features, train, score and alert.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
)
db_app = typer.Typer(help="Create and upgrade the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
features_app = typer.Typer(
    help="Build and inspect feature snapshots: each customer's signals as of a day.", no_args_is_help=True
)
app.add_typer(features_app, name="features")

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

EntityName = Literal["customers", "subscriptions", "events", "tickets", "surveys", "cancellations"]


class UserError(Exception):
    """Something the user can fix; shown as one line, exit code 2."""


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one clear line and exit code 2, never a traceback."""
    try:
        yield
    except IngestError as exc:
        for problem in exc.problems:
            _print_error(problem)
        if exc.total > len(exc.problems):
            errors.print(f"... and {exc.total - len(exc.problems)} more problems", highlight=False)
        if exc.total > 1 or (exc.problems and "rejected" not in exc.problems[0]):
            errors.print(f"{exc.total} problem(s) found; nothing was imported.", highlight=False)
        raise typer.Exit(2) from None
    except (UserError, UserFacingError, ConfigError, FileNotFoundError) as exc:
        _print_error(str(exc))
        raise typer.Exit(2) from None
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        _print_error(f"cannot use the database: {reason}")
        raise typer.Exit(2) from None
    except ProgrammingError as exc:
        _print_error(f"database error: {exc.orig}")
        raise typer.Exit(2) from None


def _print_error(message: str) -> None:
    # Messages quote file names and cell values: print them as plain text, never as Rich markup.
    errors.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def _context() -> tuple[Settings, ProductConfig]:
    settings = get_settings()
    return settings, load_config(settings.config_path)


def _create_engine(settings: Settings) -> Engine:
    from churn.db import engine_for

    try:
        return engine_for(settings)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise UserError(f"CHURN_DATABASE_URL: {exc}") from None


def _engine(settings: Settings, *, require_schema: bool = True) -> Engine:
    from churn.migrate import current_revision, head_revision

    engine = _create_engine(settings)
    if require_schema:
        current, head = current_revision(engine), head_revision()
        if current != head:
            where = engine.url.render_as_string(hide_password=True)
            state = "is empty" if current is None else f"is at schema {current}, this version needs {head}"
            raise UserError(f"the database {where} {state}: run `churn db upgrade`")
    return engine


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database schema, or upgrade it to this version's. Safe to run any number of times."""
    from churn.migrate import upgrade_database

    with _user_errors():
        settings, _ = _context()
        engine = _engine(settings, require_schema=False)
        before, after = upgrade_database(engine)
        where = engine.url.render_as_string(hide_password=True)
        if before == after:
            console.print(f"Database {where} is up to date (schema {after}).", highlight=False)
        else:
            console.print(
                f"Database {where} upgraded from {before or 'empty'} to schema {after}.", highlight=False
            )


@db_app.command("status")
def db_status() -> None:
    """Show the schema version and how many rows each entity has."""
    from churn.status import entity_status

    with _user_errors():
        settings, _ = _context()
        engine = _engine(settings)
        console.print(_status_table(engine, entity_status(engine)))


def _status_table(engine: Engine, statuses: list[EntityStatus]) -> Table:
    table = Table(title=Text(f"Database {engine.url.render_as_string(hide_password=True)}"))
    table.add_column("entity")
    table.add_column("rows", justify="right")
    table.add_column("last import (UTC)")
    for status in statuses:
        when = status.last_import_at.strftime("%Y-%m-%d %H:%M") if status.last_import_at else "never"
        table.add_row(status.entity, f"{status.rows:,}", when)
    return table


@app.command()
def ingest(
    entity: Annotated[EntityName, typer.Argument(help="What the file holds.")],
    path: Annotated[Path, typer.Argument(help="CSV (optionally .gz) or Parquet file.")],
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="Rename a column of the file: SOURCE=TARGET (repeatable).", metavar="SOURCE=TARGET"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count only; write nothing.")
    ] = False,
    timezone: Annotated[
        str | None,
        typer.Option(help="Time zone of timestamps written without an offset (default from config: UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON for scripts.")] = False,
) -> None:
    """Import a file of customers, subscriptions, events, tickets, surveys or cancellations.

    Every row is checked against the data contract. If any row is invalid, each problem is listed with
    its file, line, column and value, the command exits with code 2, and nothing is written. Importing
    the same file again changes nothing; changed rows update the stored ones.
    """
    from churn.ingest import ingest_file

    with _user_errors():
        settings, config = _context()
        options = _ingest_options(config, column_map or [], timezone, dry_run)
        engine = _engine(settings)
        errors.print(
            f"Importing {entity} from {path}{' (dry run)' if dry_run else ''}", markup=False, highlight=False
        )
        with _progress(enabled=not as_json) as track:
            summary = ingest_file(
                engine, entity, path, options=options, now=utc_now(), on_progress=track(f"{entity}", path)
            )
        _print_summaries([summary], as_json=as_json)


def _ingest_options(
    config: ProductConfig, column_map: list[str], timezone: str | None, dry_run: bool
) -> IngestOptions:
    zone = timezone or config.ingest.timezone
    try:
        check_timezone(zone)
    except ValueError as exc:
        raise UserError(f"--timezone: {exc}") from None
    return IngestOptions(
        column_map=parse_column_map(column_map),
        timezone=zone,
        chunk_mb=config.ingest.chunk_mb,
        max_problems_shown=config.ingest.max_problems_shown,
        dry_run=dry_run,
    )


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[str, Path], Callable[[int, int], None] | None]]:
    """A progress bar per file; hands out callbacks that move it."""
    progress = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=errors,
        disable=not enabled,
        transient=False,
    )

    def track(label: str, path: Path) -> Callable[[int, int], None] | None:
        if not enabled:
            return None
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return advance

    with progress:
        yield track


def _print_summaries(summaries: list[IngestSummary], *, as_json: bool) -> None:
    if as_json:
        payload = [s.as_dict() for s in summaries]
        sys.stdout.write(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n")
        return
    dry = any(s.dry_run for s in summaries)
    table = Table(title="Dry run: nothing was written" if dry else "Import summary")
    for column in ("entity", "rows read", "inserted", "updated", "unchanged", "seconds"):
        table.add_column(column, justify="left" if column == "entity" else "right")
    for s in summaries:
        table.add_row(
            s.entity,
            f"{s.rows_read:,}",
            f"{s.inserted:,}",
            f"{s.updated:,}",
            f"{s.unchanged:,}",
            f"{s.seconds:.1f}",
        )
    console.print(table)
    for s in summaries:
        if s.ignored_columns:
            console.print(
                f"{s.entity}: ignored columns not in the contract: {', '.join(s.ignored_columns)}",
                markup=False,
            )


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="Folder to write the six files into.")] = Path("demo-data"),
    customers: Annotated[int, typer.Option(min=10, help="Number of customer accounts.")] = 2_000,
    months: Annotated[int, typer.Option(min=3, max=120, help="Months of history, ending at --end.")] = 18,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and --end give the same files.")] = 7,
    end: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="End of the data window, exclusive (default: today, UTC)."),
    ] = None,
    file_format: Annotated[Literal["csv", "parquet"], typer.Option("--format", help="File format.")] = "csv",
) -> None:
    """Write a realistic demo B2B SaaS company: the six contract files, deterministic per seed.

    Churn in the demo has hidden causes with lead time (adoption decline, support friction, low
    satisfaction, price, competitors, missing features, failed payments); docs/demo-company.md tells
    the story a good model should find.
    """
    with _user_errors():
        summary = _generate(
            out, customers=customers, months=months, seed=seed, end=_end_day(end), file_format=file_format
        )
        table = Table(title=Text(f"Demo company written to {out}"))
        table.add_column("file")
        table.add_column("rows", justify="right")
        for entity, rows in summary.rows.items():
            table.add_row(Text(str(summary.paths[entity])), f"{rows:,}")
        console.print(table)


def _end_day(end: datetime | None) -> date:
    return end.date() if end else utc_now().date()


def _generate(
    out: Path, *, customers: int, months: int, seed: int, end: date, file_format: Literal["csv", "parquet"]
) -> DemoSummary:
    from churn.demo import generate_demo_company

    progress = Progress(
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=errors
    )
    with progress:
        task = progress.add_task("customers", total=customers)
        return generate_demo_company(
            out_dir=out,
            customers=customers,
            months=months,
            seed=seed,
            end=end,
            file_format=file_format,
            on_progress=lambda done: progress.update(task, completed=done),
        )


@app.command()
def demo(
    customers: Annotated[
        int | None, typer.Option(help="Customer accounts (default from config: 2,000).")
    ] = None,
    months: Annotated[int | None, typer.Option(help="Months of history (default from config: 18).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default from config).")] = None,
) -> None:
    """Run the story on the embedded default: generate the demo company, import it, build its features.

    A second run reuses the generated files, the imported rows (the import is a no-op) and the
    feature snapshot.
    """
    from churn.demo_pipeline import demo_files_match, ingest_demo
    from churn.migrate import upgrade_database
    from churn.status import entity_status

    with _user_errors():
        settings, config = _context()
        customers = customers or config.demo.customers
        months = months or config.demo.months
        seed = config.demo.seed if seed is None else seed
        out = settings.home / "demo-data"
        end = utc_now().date()
        if demo_files_match(out, customers=customers, months=months, seed=seed):
            console.print(f"Reusing the demo company in {out}.")
        else:
            console.print(
                f"[bold]1/4[/bold] Generating a demo company: {customers:,} customers, {months} months"
            )
            _generate(out, customers=customers, months=months, seed=seed, end=end, file_format="csv")
        engine = _create_engine(settings)
        console.print("[bold]2/4[/bold] Creating or upgrading the database")
        upgrade_database(engine)
        console.print("[bold]3/4[/bold] Importing the demo company")
        options = _ingest_options(config, [], None, dry_run=False)
        with _progress(enabled=True) as track:
            summaries = ingest_demo(engine, out, options=options, now=utc_now(), on_entity=track)
        _print_summaries(summaries, as_json=False)
        console.print(_status_table(engine, entity_status(engine)))
        day = date.fromisoformat(json.loads((out / "demo.json").read_text())["end"])
        console.print(f"[bold]4/4[/bold] Building the feature snapshot as of {day} (the end of the data)")
        _demo_features(engine, day, config)
        console.print(
            "Next: read docs/demo-company.md for what a model should find; `churn features show ID` "
            "for any customer's signals; `churn ingest --help` to load your own data."
        )


def _demo_features(engine: Engine, day: date, config: ProductConfig) -> None:
    """Build the snapshot and show, in words, the customer whose usage fell the most."""
    from features.snapshot import build_snapshots, customer_features, load_snapshots

    summary = build_snapshots(engine, [day], config.features, now=utc_now())
    console.print(_build_table(summary))
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


DAY_FORMATS = ["%Y-%m-%d"]


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
    from features.snapshot import build_snapshots, check_days, snapshot_days

    with _user_errors():
        settings, config = _context()
        today = utc_now().date()
        if as_of and (start or end):
            raise UserError("--as-of: give either --as-of or --from/--to, not both")
        if as_of or not start:
            if end:
                raise UserError("--to: needs --from")
            days = [as_of.date() if as_of else today]
        else:
            days = snapshot_days(start.date(), end.date() if end else today, step)
        engine = _engine(settings)
        check_days(engine, days, today=today)  # one clear error before any progress bar
        progress = Progress(
            TextColumn("snapshots"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=errors
        )
        with progress:
            task = progress.add_task("build", total=len(days))
            summary = build_snapshots(
                engine,
                days,
                config.features,
                now=utc_now(),
                rebuild=rebuild,
                on_progress=lambda run: progress.advance(task),
            )
        console.print(_build_table(summary))


def _build_table(summary: BuildSummary) -> Table:
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

    with _user_errors():
        settings, config = _context()
        engine = _engine(settings)
        today = utc_now().date()
        shown = customer_features(
            engine, customer_id, as_of.date() if as_of else today, config.features, today=today
        )
        if as_json:
            sys.stdout.write(json.dumps(shown.as_dict(), indent=2, ensure_ascii=False) + "\n")
            return
        console.print(_customer_table(shown))


def _customer_table(shown: CustomerFeatures) -> Table:
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

    with _user_errors():
        _, config = _context()
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

    with _user_errors():
        settings, _ = _context()
        engine = _engine(settings)
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


@app.command("config")
def show_config() -> None:
    """Print the effective settings and product configuration (secrets hidden)."""
    import yaml

    with _user_errors():
        settings, config = _context()
        console.print("[bold]Settings[/bold] (environment)")
        console.print(f"  CHURN_HOME           {settings.home}")
        console.print(f"  CHURN_DATABASE_URL   {_hide_password(settings.resolved_database_url)}")
        console.print(f"  MLFLOW_TRACKING_URI  {settings.resolved_mlflow_tracking_uri}")
        slack = "set" if settings.slack_bot_token else "not set (alerts go to the console)"
        console.print(f"  SLACK_BOT_TOKEN      {slack}")
        console.print(f"  SLACK_API_URL        {settings.slack_api_url}")
        console.print(f"  CHURN_CONFIG         {settings.config_path or 'not set (defaults)'}")
        console.print("[bold]Product configuration[/bold]")
        console.print(
            yaml.safe_dump(config.model_dump(), sort_keys=False, allow_unicode=True), highlight=False
        )


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
