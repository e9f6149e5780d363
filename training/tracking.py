"""MLflow: each training run's parameters, data, figures and pictures, and the model it registers.

The one module that writes to MLflow. A run logs what it was trained on (window, rows, a fingerprint
of the data), every metric per fold (as steps) and overall, the plots, the out-of-time predictions
the promotion gate compares on, the evaluation report, and the model as ``churn-risk``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from churn.config import ProductConfig
from churn.settings import Settings, configure_mlflow_environment
from training.backtest import Evaluation, TrainingResult
from training.dataset import Dataset
from training.model import ChurnModel

EXPERIMENT = "churn-risk"
MODEL_NAME = "churn-risk"
CHAMPION = "champion"
EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "backtest_predictions.parquet"
REPORT_FILE = "report.html"


class ChurnRiskPyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow face of a ChurnModel: ``predict`` returns the calibrated risk per row."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = ChurnModel.load(Path(context.artifacts["churn_model"]))

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> np.ndarray:
        return self.model.predict_risk(model_input)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    version: str
    experiment_id: str


def client(settings: Settings) -> mlflow.MlflowClient:
    """An MLflow client on our store (the embedded mlruns/ unless MLFLOW_TRACKING_URI says otherwise)."""
    configure_mlflow_environment(settings)
    # MLflow narrates its own bookkeeping (creating tables, validating examples) at INFO; our
    # commands say what happens in the user's words instead.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(settings.resolved_mlflow_tracking_uri)
    return mlflow.MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri)


def experiment_id(settings: Settings, name: str = EXPERIMENT) -> str:
    """The id of the experiment ``name``, created (artifacts under mlruns/ by default) if it is new."""
    tracker = client(settings)
    found = tracker.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = settings.mlflow_artifact_root.as_uri() if not settings.mlflow_tracking_uri else None
    return tracker.create_experiment(name, artifact_location=location)


def newest_version(settings: Settings, model_name: str) -> Any | None:
    """The newest registered version of ``model_name``, or None when nothing is registered yet."""
    try:
        versions = client(settings).search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def log_training_run(
    settings: Settings,
    result: TrainingResult,
    dataset: Dataset,
    config: ProductConfig,
    *,
    report_html: str,
    figures: dict[str, bytes],
    tuned: bool,
) -> LoggedRun:
    """Record the run and register its model as a new version of ``churn-risk``."""
    experiment = experiment_id(settings)
    evaluation = result.evaluation
    with mlflow.start_run(experiment_id=experiment) as run, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        mlflow.log_params(_run_params(evaluation, dataset, config, tuned))
        mlflow.set_tags(
            {
                "data_fingerprint": dataset.fingerprint(),
                "source": dataset.source,
                "beats_baselines": str(evaluation.beats_baselines).lower(),
            }
        )
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        mlflow.log_dict(evaluation.as_dict(), EVALUATION_FILE)
        mlflow.log_dict(evaluation.params.get("directions", {}), "directions.json")
        _log_metrics(evaluation)
        predictions = folder / PREDICTIONS_FILE
        _storable(result.predictions).to_parquet(predictions, index=False)
        mlflow.log_artifact(str(predictions))
        for name, png in figures.items():
            (folder / name).write_bytes(png)
            mlflow.log_artifact(str(folder / name), artifact_path="plots")
        (folder / REPORT_FILE).write_text(report_html, encoding="utf-8")
        mlflow.log_artifact(str(folder / REPORT_FILE))
        importance = folder / "importance.csv"
        result.model.importance().to_csv(importance, index=False)
        mlflow.log_artifact(str(importance))

        model_folder = folder / "churn_model"
        result.model.save(model_folder)
        example = _as_sent(dataset.frame.head(5))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("mlflow_model.py")),
            artifacts={"churn_model": str(model_folder)},
            signature=infer_signature(example, result.model.predict_risk(example)),
            input_example=example,
            registered_model_name=MODEL_NAME,
            metadata={"features": result.model.feature_names, "horizon_days": dataset.horizon_days},
        )
    version = str(info.registered_model_version)
    client(settings).set_model_version_tag(MODEL_NAME, version, "pr_auc", _tag(evaluation, "pr_auc"))
    return LoggedRun(run_id=run.info.run_id, version=version, experiment_id=experiment)


def _run_params(
    evaluation: Evaluation, dataset: Dataset, config: ProductConfig, tuned: bool
) -> dict[str, Any]:
    summary = evaluation.dataset
    # Directions are one entry per feature: too long for a parameter, logged as directions.json instead.
    skipped = ("verbosity", "num_threads", "directions")
    lightgbm = {f"lgbm.{k}": v for k, v in evaluation.params.items() if k not in skipped}
    return {
        "source": dataset.source,
        "horizon_days": dataset.horizon_days,
        "folds": len(evaluation.folds),
        "data_from": summary["from"] or "",
        "data_to": summary["to"] or "",
        "rows": summary["rows"],
        "customers": summary["customers"],
        "churned": summary["churned"],
        "features": summary["features"],
        "threshold": evaluation.threshold,
        "calibration": config.training.calibration,
        "monotone": config.training.monotone,
        "tuned": tuned,
        "id_column": dataset.id_column,
        "time_column": dataset.time_column,
        **lightgbm,
    }


def _log_metrics(evaluation: Evaluation) -> None:
    overall = {
        f"{model}.{name}": value
        for model, values in evaluation.overall.items()
        for name, value in values.items()
        if value is not None
    }
    mlflow.log_metrics(overall)
    for fold in evaluation.folds:
        per_fold = {
            f"fold.{model}.{name}": value
            for model, values in fold["metrics"].items()
            for name, value in values.items()
            if value is not None
        }
        mlflow.log_metrics(per_fold, step=int(fold["fold"]))


def _tag(evaluation: Evaluation, metric: str) -> str:
    value = evaluation.overall["lightgbm"].get(metric)
    return "" if value is None else f"{value:.4f}"


def _as_sent(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as a caller sends them: text columns as text (the model turns them into its categories)."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def _storable(predictions: pd.DataFrame) -> pd.DataFrame:
    out = predictions.copy()
    if "as_of" in out.columns:
        out["as_of"] = pd.to_datetime(out["as_of"])
    return out


def read_evaluation(settings: Settings, run_id: str) -> Evaluation:
    """A run's evaluation as it was logged."""
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=EVALUATION_FILE, tracking_uri=settings.resolved_mlflow_tracking_uri
    )
    return Evaluation.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def read_predictions(settings: Settings, run_id: str) -> pd.DataFrame:
    """A run's out-of-time backtest predictions (as_of back as dates)."""
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=PREDICTIONS_FILE, tracking_uri=settings.resolved_mlflow_tracking_uri
    )
    frame = pd.read_parquet(path)
    if "as_of" in frame.columns:
        frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame
