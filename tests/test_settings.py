"""Settings from the environment and the optional product config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.config import ConfigError, ProductConfig, load_config
from churn.settings import Settings, configure_mlflow_environment, normalise_database_url


def test_embedded_defaults_live_in_the_home_folder(env, tmp_path):
    settings = Settings()

    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'churn.db'}"
    assert settings.resolved_mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert settings.mlflow_artifact_root == tmp_path / "mlruns" / "artifacts"
    assert settings.slack_bot_token is None
    assert not settings.is_postgres


def test_a_postgres_url_switches_the_product_to_postgres_with_psycopg3(env, monkeypatch):
    monkeypatch.setenv("CHURN_DATABASE_URL", "postgresql://churn:secret@db.internal:5432/churn")

    settings = Settings()

    assert settings.resolved_database_url == "postgresql+psycopg://churn:secret@db.internal:5432/churn"
    assert settings.is_postgres


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////abs/churn.db", "sqlite:////abs/churn.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
    ],
)
def test_database_urls_are_normalised(given, expected):
    assert normalise_database_url(given) == expected


def test_a_relative_sqlite_path_is_made_absolute(env, tmp_path):
    assert normalise_database_url("sqlite:///data/x.db") == f"sqlite:///{tmp_path / 'data' / 'x.db'}"


def test_the_slack_token_is_a_secret(env, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-123-secret")

    settings = Settings()

    assert "xoxb" not in repr(settings)
    assert settings.slack_bot_token.get_secret_value() == "xoxb-123-secret"


def test_mlflow_is_pointed_at_our_store_with_telemetry_off(env, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    configure_mlflow_environment(Settings())

    import os

    assert os.environ["MLFLOW_TRACKING_URI"].endswith("mlruns/mlflow.db")
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert (tmp_path / "mlruns").is_dir()


def test_no_config_file_means_defaults():
    assert load_config(None) == ProductConfig()


def test_a_config_file_overrides_what_it_names(tmp_path):
    path = tmp_path / "churn.yaml"
    path.write_text("ingest:\n  timezone: Asia/Riyadh\n", encoding="utf-8")

    config = load_config(path)

    assert config.ingest.timezone == "Asia/Riyadh"
    assert config.ingest.chunk_mb == ProductConfig().ingest.chunk_mb


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ingest:\n  timezon: UTC\n", "ingest.timezon: Extra inputs are not permitted"),
        ("ingest:\n  timezone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
        ("ingest:\n  chunk_mb: lots\n", "ingest.chunk_mb: Input should be a valid integer"),
        ("ingest: [\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping of sections at the top level"),
        (
            "training:\n  calibration: platt\n",
            "training.calibration: unknown method 'platt' (expected one of auto, isotonic, sigmoid)",
        ),
        ("promotion:\n  metric: accuracy\n", "promotion.metric: unknown metric 'accuracy'"),
        ("training:\n  folds: 2\n", "training.folds: Input should be greater than or equal to 3"),
    ],
)
def test_a_bad_config_file_names_the_file_and_the_setting(tmp_path, text, message):
    path = tmp_path / "churn.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value).startswith(f"{path}:")
    assert message in str(error.value)


def test_a_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.slow
def test_the_embedded_mlflow_store_records_runs_under_mlruns(env, tmp_path):
    import mlflow

    settings = Settings()
    configure_mlflow_environment(settings)
    client = mlflow.MlflowClient(tracking_uri=settings.resolved_mlflow_tracking_uri)
    experiment = client.create_experiment("smoke", artifact_location=settings.mlflow_artifact_root.as_uri())
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "horizon_days", 90)
    note = tmp_path / "note.txt"
    note.write_text("hello", encoding="utf-8")
    client.log_artifact(run.info.run_id, str(note))

    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert list((tmp_path / "mlruns" / "artifacts").rglob("note.txt"))
    assert client.get_run(run.info.run_id).data.params == {"horizon_days": "90"}
