"""Where things are and the secrets: environment variables, read once at the entry point."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def normalise_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg 3 and make SQLite paths absolute.

    SQLAlchemy 2.0 maps a bare ``postgresql://`` to psycopg2 while 2.1 maps it to psycopg 3; naming the
    driver keeps one driver (psycopg 3, which we also use for COPY) whatever SQLAlchemy is installed.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


class Settings(BaseSettings):
    """Locations and secrets; product behaviour lives in the config file (see churn.config)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    home: Path = Field(
        default_factory=Path.cwd,
        validation_alias="CHURN_HOME",
        description="Folder for the embedded defaults (SQLite file, mlruns/, demo data).",
    )
    database_url: str = Field(
        default="",
        validation_alias="CHURN_DATABASE_URL",
        description="SQLAlchemy URL; empty means the SQLite file churn.db in CHURN_HOME.",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking store; empty means SQLite-backed mlruns/mlflow.db in CHURN_HOME.",
    )
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    slack_webhook_url: SecretStr | None = Field(
        default=None,
        validation_alias="SLACK_WEBHOOK_URL",
        description="Slack incoming-webhook URL, used without a bot token (no mentions, no delivery check).",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias="SLACK_SIGNING_SECRET",
        description="Checks that requests to /slack/interactions come from Slack (the app's signing secret).",
    )
    config_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CHURN_CONFIG"),
        description="Optional YAML file with product behaviour (windows, horizon, thresholds, ...).",
    )

    @field_validator("config_path", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{self.home / 'churn.db'}"

    @property
    def mlruns_dir(self) -> Path:
        return self.home / "mlruns"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        # MLflow 3.13+ refuses a plain ./mlruns file store, so the embedded default is a SQLite
        # backend inside mlruns/ with artifacts beside it: still one local folder, no server.
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.mlruns_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.mlruns_dir / "artifacts"

    @property
    def is_postgres(self) -> bool:
        return self.resolved_database_url.startswith("postgresql")


def configure_mlflow_environment(settings: Settings) -> None:
    """Point MLflow at our store and switch its telemetry off; called at the entry point, not on import."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ["MLFLOW_TRACKING_URI"] = settings.resolved_mlflow_tracking_uri
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
