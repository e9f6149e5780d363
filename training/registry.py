"""The model registry: which versions exist, which one serves (alias ``champion``), and the gate to move it.

A challenger replaces the champion only if it is at least as good on the same recent stretch of
backtest: both runs' out-of-time predictions for the same customers and days, judged against the
freshest labels. Rolling back is promoting an older version (``force`` skips the gate for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from churn.config import PromotionConfig
from churn.errors import UserFacingError
from churn.settings import Settings
from training.metrics import METRIC_LABELS, better, score_metrics
from training.model import ChurnModel
from training.tracking import CHAMPION, MODEL_NAME, client, read_predictions

LISTED_METRICS = ("roc_auc", "pr_auc", "brier", "top_decile_lift")


class RegistryError(UserFacingError):
    """A registry request that cannot be carried out as asked."""


@dataclass(frozen=True)
class Comparison:
    """The challenger and the champion on the same recent backtest rows."""

    metric: str
    challenger: float
    champion: float
    rows: int
    window_from: str | None
    window_to: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "challenger": self.challenger,
            "champion": self.champion,
            "rows": self.rows,
            "from": self.window_from,
            "to": self.window_to,
        }


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` decided, and why."""

    version: str
    previous: str | None
    promoted: bool
    reason: str
    comparison: Comparison | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous_champion": self.previous,
            "promoted": self.promoted,
            "reason": self.reason,
            "comparison": self.comparison.as_dict() if self.comparison else None,
        }


def champion_version(settings: Settings) -> str | None:
    """The version the alias ``champion`` points to, if any."""
    try:
        return str(client(settings).get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except MlflowException:
        return None


def list_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every registered version, newest first, with its backtest figures and aliases."""
    tracker = client(settings)
    try:
        versions = tracker.search_model_versions(f"name = '{MODEL_NAME}'")
    except MlflowException:
        return []
    # Version searches leave aliases out, so the champion is looked up once and marked by hand.
    champion = champion_version(settings)
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        run = tracker.get_run(version.run_id)
        metrics, params = run.data.metrics, run.data.params
        rows.append(
            {
                "version": str(version.version),
                "aliases": [CHAMPION] if str(version.version) == champion else [],
                "run_id": version.run_id,
                "created": pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC").isoformat(),
                "source": params.get("source"),
                "data_from": params.get("data_from"),
                "data_to": params.get("data_to"),
                "rows": _int(params.get("rows")),
                "horizon_days": _int(params.get("horizon_days")),
                "beats_baselines": run.data.tags.get("beats_baselines") == "true",
                **{m: metrics.get(f"lightgbm.{m}") for m in LISTED_METRICS},
                "logistic_pr_auc": metrics.get("logistic_regression.pr_auc"),
            }
        )
    return rows


def promote(settings: Settings, version: str, config: PromotionConfig, *, force: bool = False) -> Promotion:
    """Point ``champion`` at ``version`` if it passes the gate (or ``force``); otherwise say why not."""
    tracker = client(settings)
    challenger = _version(tracker, version)
    previous = champion_version(settings)
    if previous == str(challenger.version):
        return Promotion(
            str(challenger.version), previous, False, f"version {version} is already the champion"
        )
    if previous is None or force:
        reason = "first champion" if previous is None else f"forced over version {previous}, gate skipped"
        _move_alias(tracker, str(challenger.version), previous)
        return Promotion(str(challenger.version), previous, True, reason)
    champion = _version(tracker, previous)
    _check_comparable(tracker, challenger.run_id, champion.run_id, previous)
    comparison = compare(settings, challenger.run_id, champion.run_id, config)
    if better(config.metric, comparison.challenger, comparison.champion, config.tolerance):
        _move_alias(tracker, str(challenger.version), previous)
        return Promotion(
            str(challenger.version), previous, True, "at least as good as the champion", comparison
        )
    label = METRIC_LABELS[config.metric]
    return Promotion(
        str(challenger.version),
        previous,
        False,
        f"worse than champion version {previous} on {label} ({comparison.challenger:.4f} vs "
        f"{comparison.champion:.4f}, tolerance {config.tolerance}); to roll back anyway, add --force",
        comparison,
    )


def _check_comparable(
    tracker: mlflow.MlflowClient, challenger_run: str, champion_run: str, champion: str
) -> None:
    """Two runs are judged on the same rows only if their labels and keys mean the same thing."""
    ours, theirs = tracker.get_run(challenger_run).data.params, tracker.get_run(champion_run).data.params
    for name, what in (("horizon_days", "label horizon"), ("time_column", "time column")):
        if ours.get(name) != theirs.get(name):
            raise RegistryError(
                f"the challenger's {what} ({ours.get(name)}) differs from champion version {champion}'s "
                f"({theirs.get(name)}), so their backtests are not comparable; add --force to promote anyway"
            )
    if "row" in (ours.get("id_column"), theirs.get("id_column")):
        raise RegistryError(
            "a table trained without --id has no customer ids to line the two backtests up by; "
            "add --force to promote anyway"
        )


def compare(
    settings: Settings, challenger_run: str, champion_run: str, config: PromotionConfig
) -> Comparison:
    """Both runs' out-of-time LightGBM risks on the rows they share, over the latest ``window_days``."""
    ours, theirs = read_predictions(settings, challenger_run), read_predictions(settings, champion_run)
    keys = (
        ["customer_id", "as_of"] if "as_of" in ours.columns and "as_of" in theirs.columns else ["customer_id"]
    )
    ours = ours.assign(customer_id=ours["customer_id"].astype(str))
    theirs = theirs.assign(customer_id=theirs["customer_id"].astype(str))
    shared = ours[[*keys, "churned", "lightgbm"]].merge(
        theirs[[*keys, "lightgbm"]], on=keys, suffixes=("", "_champion")
    )
    window_from = window_to = None
    if "as_of" in keys and not shared.empty:
        last = shared["as_of"].max()
        shared = shared[shared["as_of"] > last - timedelta(days=config.window_days)]
        window_from, window_to = str(shared["as_of"].min()), str(last)
    label = shared["churned"].to_numpy()
    if shared.empty or label.min() == label.max():
        raise RegistryError(
            "the challenger and the champion share no recent backtest rows with both churners and "
            "non-churners (trained on different data?), so they cannot be compared; add --force to promote "
            "without the gate"
        )
    challenger = score_metrics(label, shared["lightgbm"].to_numpy())[config.metric]
    champion = score_metrics(label, shared["lightgbm_champion"].to_numpy())[config.metric]
    return Comparison(config.metric, challenger, champion, len(shared), window_from, window_to)


def load_model(settings: Settings, version: str | None = None) -> tuple[ChurnModel, str, str]:
    """A registered model (the champion by default), with its version and run id."""
    tracker = client(settings)
    if version is None:
        version = champion_version(settings)
        if version is None:
            raise RegistryError(
                "no champion model yet: run `churn train --promote` (or `churn promote VERSION`)"
            )
    found = _version(tracker, version)
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{found.version}")
    return loaded.unwrap_python_model().model, str(found.version), found.run_id


def run_of(settings: Settings, version: str | None) -> tuple[str, str | None]:
    """The run id behind a version (the champion's by default) and that version."""
    if version is None:
        version = champion_version(settings)
        if version is None:
            raise RegistryError(
                "no champion model yet: run `churn train --promote`, or name a --version or --run"
            )
    found = _version(client(settings), version)
    return found.run_id, str(found.version)


def _version(tracker: mlflow.MlflowClient, version: str) -> Any:
    if not (str(version).isascii() and str(version).isdigit()):
        raise RegistryError(f"model version {version!r}: expected a number, as `churn models` lists them")
    try:
        return tracker.get_model_version(MODEL_NAME, str(int(version)))
    except MlflowException:
        known = [v.version for v in _all_versions(tracker)]
        have = (
            f"versions {min(map(int, known))} to {max(map(int, known))} exist"
            if known
            else "none is registered yet"
        )
        raise RegistryError(f"model version {version} does not exist ({have}; see `churn models`)") from None


def _all_versions(tracker: mlflow.MlflowClient) -> list[Any]:
    try:
        return list(tracker.search_model_versions(f"name = '{MODEL_NAME}'"))
    except MlflowException:
        return []


def _move_alias(tracker: mlflow.MlflowClient, version: str, previous: str | None) -> None:
    tracker.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    tracker.set_model_version_tag(MODEL_NAME, version, "promoted_over", previous or "")


def _int(value: str | None) -> int | None:
    """A count logged as an MLflow parameter (text), or None if it was not logged as one."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
