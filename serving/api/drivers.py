"""Drivers of a score that were not stored: computed on demand from the day's snapshot by the scoring model.

Models are loaded once per app and kept by version (the champion, normally, plus the one before a
promotion while older scores are still read); a version that cannot be loaded is remembered for a
minute so a missing registry does not cost every request an MLflow lookup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from threading import Lock
from typing import Any

from mlflow.exceptions import MlflowException
from sqlalchemy import Connection

from churn.errors import UserFacingError
from churn.settings import Settings
from features.snapshot import load_snapshots
from training.explain import explain
from training.model import ChurnModel
from training.registry import champion_version, load_model

_RETRY_MISSING_S = 60.0
_KEPT_VERSIONS = 2


@dataclass(frozen=True)
class OnDemandDrivers:
    """Drivers computed now, or why they could not be."""

    drivers: dict[str, Any] | None
    note: str | None


class ModelCache:
    """Registered models by version, loaded at first use and kept for the app's lifetime."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._models: dict[str, ChurnModel] = {}
        self._missing: dict[str, tuple[float, str]] = {}
        self._lock = Lock()

    def model(self, version: str) -> ChurnModel | str:
        """The model of ``version``, or a sentence saying why it cannot be had."""
        with self._lock:
            if version in self._models:
                return self._models[version]
            missing = self._missing.get(version)
            if missing and time.monotonic() - missing[0] < _RETRY_MISSING_S:
                return missing[1]
            try:
                model, _, _ = load_model(self._settings, version)
            except (UserFacingError, MlflowException, OSError) as exc:
                reason = self._why_missing(version, exc)
                self._missing[version] = (time.monotonic(), reason)
                return reason
            if len(self._models) >= _KEPT_VERSIONS:
                self._models.pop(next(iter(self._models)))
            self._models[version] = model
            self._missing.pop(version, None)
            return model

    def _why_missing(self, version: str, exc: Exception) -> str:
        if champion_version(self._settings) is None:
            return "drivers were not stored for this score and there is no champion model to compute them"
        return f"drivers were not stored for this score and model version {version} cannot be loaded: {exc}"


def compute_drivers(
    connection: Connection, cache: ModelCache, *, customer_id: str, as_of: date, version: str, top: int
) -> OnDemandDrivers:
    """The top drivers each way of one customer's score on ``as_of``, by the model that made it."""
    model = cache.model(version)
    if isinstance(model, str):
        return OnDemandDrivers(None, model)
    features = load_snapshots(connection, [as_of], [customer_id])
    if features.empty:
        return OnDemandDrivers(None, f"the feature snapshot of {as_of} no longer has this customer")
    (explanation,) = explain(model, features, top=top)
    return OnDemandDrivers(explanation.as_dict(), None)
