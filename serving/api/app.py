"""The FastAPI application: built from the settings and config, one engine for its lifetime."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy import text

from churn.config import ProductConfig, load_config
from churn.db import engine_for
from churn.settings import Settings, get_settings
from serving.api import metrics, risk, slack_actions, writes
from serving.api.drivers import ModelCache
from serving.api.errors import ERROR_SCHEMA, ApiError, install_error_handlers
from serving.api.metrics import install_metrics

API_VERSION = "1"


def create_app(settings: Settings | None = None, config: ProductConfig | None = None) -> FastAPI:
    """The API against the configured database (the scheduler runs elsewhere: never in API workers)."""
    settings = settings or get_settings()
    config = config or load_config(settings.config_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _warm_up(app)
        # The libraries imported at start-up (MLflow, LightGBM, pandas) leave many long-lived objects;
        # the cyclic collector walking them stalled requests by 100-250 ms (benchmarks/api.py). Keep
        # them out of its reach.
        gc.freeze()
        yield
        app.state.engine.dispose()

    app = FastAPI(
        title="churn-risk API",
        version=API_VERSION,
        description=(
            "Risk scores for CRM syncs, ingest and feedback writes, and Slack interactivity. Every route "
            "but the health checks needs an API key (`churn apikey create NAME --scope ...`)."
        ),
        lifespan=lifespan,
        # 400: a body that is not JSON at all (FastAPI answers it before any route runs).
        responses={400: ERROR_SCHEMA, 401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 422: ERROR_SCHEMA},
    )
    app.state.settings = settings
    app.state.config = config
    app.state.engine = engine_for(settings)
    # Registered models by version, loaded once per process: readiness and on-demand drivers share them.
    app.state.models = ModelCache(settings)
    install_error_handlers(app)
    install_metrics(app)
    _health_routes(app)
    for module in (risk, writes, slack_actions, metrics):
        app.include_router(module.router)
    return app


def _health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"], summary="The process is up.")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database answers and the champion model is loaded.",
        responses={503: ERROR_SCHEMA},
    )
    def readyz(request: Request) -> dict[str, str]:
        from training.registry import champion_version

        try:
            with request.app.state.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise ApiError(503, f"the database does not answer: {type(exc).__name__}") from None
        version = champion_version(request.app.state.settings)
        if version is None:
            raise ApiError(503, "no champion model: run `churn train --promote`")
        loaded = request.app.state.models.model(version)
        if isinstance(loaded, str):
            raise ApiError(503, f"the champion model (version {version}) cannot be loaded: {loaded}")
        return {"status": "ready", "model_version": version}


def _warm_up(app: FastAPI) -> None:
    """Open MLflow's store and load the champion before the first request, not during it.

    The first look at MLflow in a process takes most of a second of CPU, and the first on-demand
    explanation loads the model: at 200 requests/s either backed the first reads up by seconds. A
    registry that cannot answer now is left to /readyz to report.
    """
    from mlflow.exceptions import MlflowException

    from churn.errors import UserFacingError
    from training.registry import champion_version

    settings = app.state.settings
    if not settings.mlflow_tracking_uri and not (settings.mlruns_dir / "mlflow.db").exists():
        return  # no local store yet, so no champion: nothing to load, and no store to create here
    try:
        version = champion_version(settings)
    except (MlflowException, UserFacingError, OSError):
        return
    if version is not None:
        app.state.models.model(version)
