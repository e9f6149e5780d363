"""MLflow for the reason classifier: each training run's held-out figures, and the model ``churn-reasons``."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from churn.settings import Settings
from training.reasons.classifier import MODEL_FILE, Evaluation, ReasonModel
from training.tracking import client, experiment_id, newest_version

EXPERIMENT = "churn-reasons"
MODEL_NAME = "churn-reasons"
ARTIFACT_PATH = "reason_model"


@dataclass(frozen=True)
class LoggedReasonRun:
    run_id: str
    version: str


def log_reason_run(
    settings: Settings, model: ReasonModel, evaluation: Evaluation, *, labelled_rows: int, orphaned_rows: int
) -> LoggedReasonRun:
    """Record the held-out figures and register the model as a new version of ``churn-reasons``."""
    tracker = client(settings)
    experiment = experiment_id(settings, EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment) as run, tempfile.TemporaryDirectory() as scratch:
        mlflow.log_params(
            {
                "labelled_rows": labelled_rows,
                "orphaned_rows": orphaned_rows,
                "reasons": len(model.rows_per_code),
                "train_rows_per_reason": evaluation.train_rows_per_reason or "70%",
                "repeats": evaluation.repeats,
            }
        )
        mlflow.log_metrics(
            {
                f"{name}.macro_f1_{lang}": value
                for name, languages in evaluation.macro_f1.items()
                for lang, value in languages.items()
                if value is not None
            }
        )
        mlflow.log_dict(evaluation.as_dict(), "evaluation.json")
        mlflow.log_dict(model.rows_per_code, "rows_per_code.json")
        model.save(Path(scratch) / ARTIFACT_PATH)
        mlflow.log_artifacts(str(Path(scratch) / ARTIFACT_PATH), artifact_path=ARTIFACT_PATH)
        source = mlflow.get_artifact_uri(ARTIFACT_PATH)
    with contextlib.suppress(MlflowException):  # already registered: add a version
        tracker.create_registered_model(MODEL_NAME)
    version = tracker.create_model_version(MODEL_NAME, source=source, run_id=run.info.run_id)
    return LoggedReasonRun(run.info.run_id, str(version.version))


def load_reason_model(settings: Settings) -> ReasonModel | None:
    """The newest registered reason model, or None when none was trained yet."""
    newest = newest_version(settings, MODEL_NAME)
    if newest is None:
        return None
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=newest.source, tracking_uri=settings.resolved_mlflow_tracking_uri
    )
    model = ReasonModel.load(Path(folder) / MODEL_FILE)
    model.version = f"{MODEL_NAME}/{newest.version}"
    return model
