"""`churn train`, `churn promote`, `churn models`, `churn report`: the data scientist's model commands."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from churn.cli.common import UserError, console, load_context, open_engine, spinner, user_errors
from churn.config import ProductConfig
from churn.settings import Settings

if TYPE_CHECKING:
    from training.backtest import Evaluation
    from training.registry import Promotion


def register(app: typer.Typer) -> None:
    """Add the model commands to the root CLI."""
    app.command("train")(train)
    app.command("promote")(promote)
    app.command("models")(models)
    app.command("report")(report)


def train(
    horizon_days: Annotated[
        int | None,
        typer.Option(min=1, max=730, help="Churn within this many days counts (default from config: 90)."),
    ] = None,
    tune: Annotated[
        bool, typer.Option("--tune", help="Search LightGBM parameters inside each training window (slower).")
    ] = False,
    promote_model: Annotated[
        bool,
        typer.Option("--promote", help="Make it the champion if it is at least as good as the current one."),
    ] = False,
    table: Annotated[
        Path | None,
        typer.Option(help="Train on your own feature table (CSV or Parquet) instead of snapshots."),
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="With --table: the 0/1 column that says who churned.")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="With --table: the customer id column.")
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time", help="With --table: the date of each row; enables the time-based backtest."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON for scripts.")] = False,
) -> None:
    """Train a churn model, backtest it over time beside two baselines, and register it in MLflow.

    Uses every feature snapshot whose label is known (built with `churn features build`). The backtest
    rolls forward: each fold trains on earlier days, leaves a horizon's gap so no training label sees
    the test period, and scores later days once. Logistic regression and a rule-based health score
    are measured on the same rows; a warning says when LightGBM does not beat them. The model is
    registered as `churn-risk`; `--promote` makes it the champion if it passes the gate.

    Examples: `churn train`; `churn train --horizon-days 30 --promote`;
    `churn train --table features.parquet --label churned --id account_id --time month`.
    """
    from training.job import TableSource, run_training

    with user_errors():
        settings, config = load_context()
        source = None
        if table is not None:
            if label is None:
                raise UserError("--table: also give --label, the column that says who churned")
            source = TableSource(table, label, id_column, time_column)
        elif label or id_column or time_column:
            raise UserError("--label, --id and --time go with --table")
        else:
            open_engine(settings)  # a clear line if the schema is missing, before any work
        with spinner(enabled=not as_json) as say:
            outcome = run_training(
                settings,
                config,
                table=source,
                horizon_days=horizon_days,
                tune=tune,
                promote_if_better=promote_model,
                on_progress=say,
            )
        if as_json:
            _json(outcome.as_dict())
            return
        print_evaluation(outcome.evaluation)
        console.print(
            f"Registered as churn-risk version {outcome.run.version} (MLflow run {outcome.run.run_id}).",
            highlight=False,
        )
        if outcome.promotion:
            print_promotion(outcome.promotion)
        else:
            console.print(
                f"Next: `churn report --version {outcome.run.version}` to read it, "
                f"`churn promote {outcome.run.version}` to serve it."
            )


def promote(
    version: Annotated[
        str, typer.Argument(help="The model version to make the champion (see `churn models`).")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Skip the quality gate, e.g. to roll back to an older version.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Make a model version the champion, the one that scores customers, if it is at least as good.

    Both versions' out-of-time backtest predictions are compared on the same customers and days, over
    the most recent stretch (config: promotion.window_days, metric, tolerance). A worse challenger is
    refused and both figures shown. Rolling back is promoting an older version with `--force`.
    Exits with code 1 when the promotion is refused.
    """
    from training.registry import promote as promote_version

    with user_errors():
        settings, config = load_context()
        decision = promote_version(settings, version, config.promotion, force=force)
        if as_json:
            _json(decision.as_dict())
        else:
            print_promotion(decision)
        if not decision.promoted and "already" not in decision.reason:
            raise typer.Exit(1)


def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """List registered model versions, newest first, with their backtest figures and which is champion."""
    from training.registry import list_versions
    from training.report import format_metric

    with user_errors():
        settings, _ = load_context()
        versions = list_versions(settings)
        if as_json:
            _json(versions)
            return
        if not versions:
            console.print("No models yet: `churn train` trains and registers one.")
            return
        table = Table(title="churn-risk model versions (backtest figures, out of time)")
        for column in ("version", "alias", "trained (UTC)", "data", "rows", "horizon", "ROC AUC", "PR AUC"):
            table.add_column(column, justify="right" if column in ("rows", "ROC AUC", "PR AUC") else "left")
        table.add_column("vs baselines")
        for v in versions:
            table.add_row(
                v["version"],
                ", ".join(v["aliases"]),
                v["created"][:16].replace("T", " "),
                Text(f"{v['data_from']} to {v['data_to']}" if v["data_from"] else str(v["source"])),
                f"{v['rows']:,}" if v["rows"] else "",
                f"{v['horizon_days']} days" if v["horizon_days"] else "",
                format_metric("roc_auc", v["roc_auc"]),
                format_metric("pr_auc", v["pr_auc"]),
                "beats both" if v["beats_baselines"] else Text("does not beat them", style="bold red"),
            )
        console.print(table)


def report(
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    run: Annotated[str | None, typer.Option(help="An MLflow run id instead of a version.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the HTML (default: reports/ in CHURN_HOME).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report's path as JSON.")] = False,
) -> None:
    """Write a self-contained HTML evaluation report (plots and tables) for people who do not open MLflow."""
    from churn.cli.replay import replay_sections
    from training.job import write_run_report

    with user_errors():
        settings, config = load_context()
        if version and run:
            raise UserError("--run: give either --version or --run, not both")
        sections = replay_sections(settings, config, version=version, run_id=run)
        path = write_run_report(settings, version=version, run_id=run, out=out, extra_sections=sections)
        if as_json:
            _json({"report": str(path)})
        else:
            console.print(f"Report written to {path}", highlight=False)


# The demo's training history: a snapshot every two weeks from two weeks into the data.
DEMO_STEP_DAYS = 14


def train_demo_model(
    settings: Settings, config: ProductConfig, engine: Engine, *, start: date, end: date
) -> Path | None:
    """Build the demo's snapshot history and train, backtest and promote its first model (once).

    Returns the champion's evaluation report (written if missing), or None when nothing is trainable.
    """
    from churn.cli.features import build_with_progress
    from churn.cli.replay import replay_sections
    from features.snapshot import snapshot_days
    from training.dataset import DatasetError
    from training.job import run_training, write_run_report
    from training.registry import champion_version

    days = snapshot_days(start + timedelta(days=DEMO_STEP_DAYS), end, DEMO_STEP_DAYS)
    build_with_progress(engine, days, config)
    champion = champion_version(settings)
    if champion is not None:
        console.print(f"Keeping the champion model, version {champion} (`churn train` retrains).")
        report = settings.home / "reports" / f"model-v{champion}.html"
        if not report.exists():
            sections = replay_sections(settings, config, version=champion, run_id=None)
            report = write_run_report(settings, version=champion, extra_sections=sections)
        return report
    try:
        with spinner(enabled=True) as say:
            outcome = run_training(settings, config, promote_if_better=True, on_progress=say)
    except DatasetError as exc:
        console.print(Text(f"Not training yet: {exc}"))
        return None
    print_evaluation(outcome.evaluation)
    if outcome.promotion:
        print_promotion(outcome.promotion)
    sections = replay_sections(settings, config, version=outcome.run.version, run_id=None)
    path = write_run_report(settings, version=outcome.run.version, extra_sections=sections)
    console.print(f"Evaluation report: {path}", highlight=False)
    return path


def print_evaluation(evaluation: Evaluation) -> None:
    """The backtest figures side by side, and the verdict in words."""
    from training.baselines import MODEL_LABELS
    from training.metrics import METRIC_LABELS, SCORE_METRICS, THRESHOLD_METRICS
    from training.report import format_metric

    data = evaluation.dataset
    console.print(
        f"Trained on {data['rows']:,} labelled rows of {data['customers']:,} customers "
        f"({data['churned']:,} churned within {data['horizon_days']} days"
        + (f", {data['from']} to {data['to']}" if data.get("from") else "")
        + f"); {len(evaluation.folds)}-fold out-of-time backtest in {evaluation.seconds:.0f}s.",
        highlight=False,
    )
    table = Table(title=f"Backtest (alert threshold {evaluation.threshold:.0%})")
    table.add_column("metric")
    for model in evaluation.models:
        table.add_column(MODEL_LABELS[model], justify="right")
    for key in (*SCORE_METRICS, *THRESHOLD_METRICS):
        values = (format_metric(key, evaluation.overall[m].get(key)) for m in evaluation.models)
        table.add_row(METRIC_LABELS[key], *values)
    console.print(table)
    for line in evaluation.verdict:
        style = "bold red" if line.startswith("WARNING") else "green"
        console.print(Text(line, style=style))


def print_promotion(decision: Promotion) -> None:
    style = "green" if decision.promoted else "bold red"
    verb = "is now the champion" if decision.promoted else "was not promoted"
    console.print(Text(f"Version {decision.version} {verb}: {decision.reason}.", style=style))
    comparison = decision.comparison
    if comparison:
        where = f"{comparison.window_from} to {comparison.window_to}, " if comparison.window_from else ""
        console.print(
            f"  Same backtest rows ({where}{comparison.rows:,} rows), {comparison.metric}: "
            f"challenger {comparison.challenger:.4f}, "
            f"champion (v{decision.previous}) {comparison.champion:.4f}",
            highlight=False,
        )


def _json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str, ensure_ascii=False) + "\n")
