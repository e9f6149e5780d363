"""The `churn` command line: the composition root, and the only package that imports every other one."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
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

from churn.cli.alerts import alerts_app
from churn.cli.api import register as register_api_commands
from churn.cli.common import (
    UserError,
    console,
    create_engine_for,
    errors,
    load_context,
    open_engine,
    user_errors,
)
from churn.cli.features import features_app, show_demo_features
from churn.cli.likely_reason import register as register_likely_reason
from churn.cli.reasons import reasons_app
from churn.cli.reasons_report import register as register_reasons_report
from churn.cli.scheduler import register as register_scheduler_commands
from churn.cli.scoring import register as register_scoring_commands
from churn.cli.scoring import score_demo
from churn.cli.training import register as register_model_commands
from churn.cli.training import train_demo_model
from churn.clock import utc_now
from churn.config import ProductConfig, check_timezone
from churn.ingest import IngestOptions, IngestSummary, parse_column_map

if TYPE_CHECKING:
    from churn.demo import DemoSummary
    from churn.status import EntityStatus

app = typer.Typer(
    help="Churn-risk prediction and alerting: import data, build features, train, score and alert.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs reflow to the terminal width
)
db_app = typer.Typer(help="Create and upgrade the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(features_app, name="features")
app.add_typer(alerts_app, name="alerts")
app.add_typer(reasons_app, name="reasons")
register_likely_reason(reasons_app)
register_reasons_report(reasons_app)
register_model_commands(app)
register_scoring_commands(app)
register_scheduler_commands(app)
register_api_commands(app)


EntityName = Literal["customers", "subscriptions", "events", "tickets", "surveys", "cancellations"]


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database schema, or upgrade it to this version's. Safe to run any number of times."""
    from churn.migrate import upgrade_database

    with user_errors():
        settings, _ = load_context()
        engine = open_engine(settings, require_schema=False)
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

    with user_errors():
        settings, _ = load_context()
        engine = open_engine(settings)
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

    with user_errors():
        settings, config = load_context()
        options = _ingest_options(config, column_map or [], timezone, dry_run)
        engine = open_engine(settings)
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
    with user_errors():
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
    """Run the story on the embedded default: generate the demo company, import it, build its
    features, train, backtest and promote the first model, score every customer and send the alerts
    (to the console, or to Slack when SLACK_BOT_TOKEN is set).

    A second run reuses the generated files, the imported rows (the import is a no-op), the feature
    snapshots, the champion model and the day's scores; alerts already sent are not sent again.
    """
    from churn.cli.next_steps import demo_next_steps
    from churn.demo_pipeline import demo_files_match, ingest_demo
    from churn.migrate import upgrade_database
    from churn.status import entity_status

    with user_errors():
        settings, config = load_context()
        customers = customers or config.demo.customers
        months = months or config.demo.months
        seed = config.demo.seed if seed is None else seed
        out = settings.home / "demo-data"
        end = utc_now().date()
        if demo_files_match(out, customers=customers, months=months, seed=seed):
            console.print(f"Reusing the demo company in {out}.")
        else:
            console.print(
                f"[bold]1/6[/bold] Generating a demo company: {customers:,} customers, {months} months"
            )
            _generate(out, customers=customers, months=months, seed=seed, end=end, file_format="csv")
        engine = create_engine_for(settings)
        console.print("[bold]2/6[/bold] Creating or upgrading the database")
        upgrade_database(engine)
        console.print("[bold]3/6[/bold] Importing the demo company")
        options = _ingest_options(config, [], None, dry_run=False)
        with _progress(enabled=True) as track:
            summaries = ingest_demo(engine, out, options=options, now=utc_now(), on_entity=track)
        _print_summaries(summaries, as_json=False)
        console.print(_status_table(engine, entity_status(engine)))
        day = date.fromisoformat(json.loads((out / "demo.json").read_text())["end"])
        console.print(f"[bold]4/6[/bold] Building the feature snapshot as of {day} (the end of the data)")
        show_demo_features(engine, day, config)
        manifest = json.loads((out / "demo.json").read_text())
        console.print("[bold]5/6[/bold] Training the first model on a fortnightly feature history")
        report = train_demo_model(
            settings, config, engine, start=date.fromisoformat(manifest["window_start"]), end=day
        )
        console.print(f"[bold]6/6[/bold] Scoring every customer as of {day} and sending the alerts")
        score_demo(settings, config, engine, day)
        console.print(demo_next_steps(settings, report))


@app.command("config")
def show_config() -> None:
    """Print the effective settings and product configuration (secrets hidden)."""
    import yaml

    with user_errors():
        settings, config = load_context()
        console.print("[bold]Settings[/bold] (environment)")
        console.print(f"  CHURN_HOME           {settings.home}")
        console.print(f"  CHURN_DATABASE_URL   {_hide_password(settings.resolved_database_url)}")
        console.print(f"  MLFLOW_TRACKING_URI  {settings.resolved_mlflow_tracking_uri}")
        slack = "set" if settings.slack_bot_token else "not set"
        webhook = "set" if settings.slack_webhook_url else "not set"
        if not (settings.slack_bot_token or settings.slack_webhook_url):
            webhook += " (alerts go to the console)"
        console.print(f"  SLACK_BOT_TOKEN      {slack}")
        console.print(f"  SLACK_WEBHOOK_URL    {webhook}")
        signing = "set" if settings.slack_signing_secret else "not set (Slack buttons are refused)"
        console.print(f"  SLACK_SIGNING_SECRET {signing}")
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
