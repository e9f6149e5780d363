"""The REST API in-process for tests: a TestClient on a real database, and keys with chosen scopes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from churn.config import ProductConfig
from churn.settings import Settings
from serving.api.app import create_app
from serving.api_keys import create_key


@dataclass
class Api:
    """A client on the API, the engine behind it, and a way to make keys."""

    client: TestClient
    engine: Engine
    settings: Settings

    def key(self, *scopes: str, name: str = "test") -> dict[str, str]:
        """Headers carrying a fresh key with these scopes."""
        secret, _ = create_key(self.engine, name, tuple(scopes), now=datetime.now(UTC))
        return {"Authorization": f"Bearer {secret}"}


def open_api(settings: Settings, config: ProductConfig | None = None) -> tuple[Api, TestClient]:
    app = create_app(settings, config or ProductConfig())
    client = TestClient(app, raise_server_exceptions=True)
    return Api(client=client, engine=app.state.engine, settings=settings), client
