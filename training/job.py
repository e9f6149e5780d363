"""The data scientist's jobs end to end: train (and maybe promote) a model, write a run's report.

Thin composition over the stage modules, so the CLI and the scheduler call the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn.clock import utc_now
from churn.config import ProductConfig
from churn.db import engine_for
from churn.settings import Settings
from training.backtest import Evaluation, Progress, train
from training.dataset import Dataset, snapshot_dataset, table_dataset
from training.plots import evaluation_pngs
from training.registry import Promotion, RegistryError, champion_version, promote, run_of
from training.report import render_report, write_report
from training.tracking import LoggedRun, log_training_run, read_evaluation, read_predictions


@dataclass(frozen=True)
class TableSource:
    """A feature table a data scientist brings instead of the database's snapshots."""

    path: Path
    label: str
    id_column: str | None = None
    time_column: str | None = None


@dataclass(frozen=True)
class TrainingOutcome:
    evaluation: Evaluation
    run: LoggedRun
    promotion: Promotion | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "version": self.run.version,
            "evaluation": self.evaluation.as_dict(),
            "promotion": self.promotion.as_dict() if self.promotion else None,
        }


def load_dataset(
    settings: Settings, config: ProductConfig, *, table: TableSource | None, horizon_days: int | None
) -> Dataset:
    """Labelled snapshots from the database, or the given table."""
    horizon = config.labels.horizon_days if horizon_days is None else horizon_days
    if table is not None:
        return table_dataset(
            table.path,
            label=table.label,
            id_column=table.id_column,
            time_column=table.time_column,
            horizon_days=horizon,
        )
    engine = engine_for(settings)
    try:
        with engine.connect() as connection:
            return snapshot_dataset(
                connection, config.features, config.labels, horizon_days=horizon, reasons=config.reasons
            )
    finally:
        engine.dispose()


def run_training(
    settings: Settings,
    config: ProductConfig,
    *,
    table: TableSource | None = None,
    horizon_days: int | None = None,
    tune: bool = False,
    promote_if_better: bool = False,
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    """Assemble the data, backtest and fit, log the run and its model, and promote it if asked."""
    say = on_progress or (lambda _message: None)
    say("assembling labelled data")
    dataset = load_dataset(settings, config, table=table, horizon_days=horizon_days)
    result = train(dataset, config, tune=tune, on_progress=say)
    say("recording the run in MLflow")
    figures = evaluation_pngs(result.evaluation, result.predictions)
    html = render_report(
        result.evaluation,
        result.predictions,
        title="Churn-risk model: evaluation (new run)",
        details={"trained at": _now()},
        pngs=figures,
    )
    run = log_training_run(settings, result, dataset, config, report_html=html, figures=figures, tuned=tune)
    promotion = _promote(settings, run.version, config) if promote_if_better else None
    return TrainingOutcome(evaluation=result.evaluation, run=run, promotion=promotion)


def _promote(settings: Settings, version: str, config: ProductConfig) -> Promotion:
    """The gate's decision; a run it cannot compare stays registered, unpromoted, with the reason."""
    try:
        return promote(settings, version, config.promotion)
    except RegistryError as exc:
        return Promotion(version, champion_version(settings), False, str(exc))


def write_run_report(
    settings: Settings,
    *,
    version: str | None = None,
    run_id: str | None = None,
    out: Path | None = None,
    extra_sections: Sequence[str] = (),
) -> Path:
    """The self-contained HTML report of a model version (the champion by default) or a run."""
    if run_id is None:
        run_id, version = run_of(settings, version)
    evaluation = read_evaluation(settings, run_id)
    predictions = read_predictions(settings, run_id)
    name = f"model-v{version}" if version else f"run-{run_id[:8]}"
    what = f"model version {version}" if version else f"run {run_id[:8]}"
    details = {"model version": version or "not registered", "MLflow run": run_id, "written at": _now()}
    html = render_report(
        evaluation,
        predictions,
        title=f"Churn-risk {what}: evaluation",
        details=details,
        extra_sections=extra_sections,
    )
    return write_report(out or settings.home / "reports" / f"{name}.html", html)


def _now() -> str:
    return utc_now().strftime("%Y-%m-%d %H:%M UTC")
