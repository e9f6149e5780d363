"""`churn features`: building, showing and listing features, and one clear line for every mistake."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from churn.db import make_engine
from churn.tables import feature_snapshots
from tests import factories


@pytest.fixture
def db_env(env, database_url):
    env["CHURN_DATABASE_URL"] = database_url
    return env


@pytest.fixture
def small_company(run_cli, db_env, tmp_path):
    """Three customers, two with a running subscription since January 2024, and some usage."""
    files = {
        "customers": factories.customer_rows(3),
        "subscriptions": factories.subscription_rows(),
        "events": factories.event_rows(20, "C001") + factories.event_rows(3, "C002"),
        "tickets": factories.ticket_rows(),
        "surveys": factories.survey_rows(),
    }
    for entity, rows in files.items():
        if entity == "events":  # the two customers' generated ids collide: derive ids from the rows
            rows = [{k: v for k, v in row.items() if k != "event_id"} for row in rows]
        result = run_cli("ingest", entity, factories.write_csv(tmp_path / f"{entity}.csv", rows))
        assert result.exit_code == 0, result.output
    return db_env


def _snapshot_rows(database_url: str) -> int:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(feature_snapshots)).scalar_one()
    engine.dispose()
    return count


def test_build_show_and_snapshots(run_cli, small_company, database_url):
    built = run_cli("features", "build", "--as-of", "2024-03-01")
    again = run_cli("features", "build", "--as-of", "2024-03-01")
    shown = run_cli("features", "show", "C001", "--as-of", "2024-03-01", "--json")
    listed = run_cli("features", "snapshots")

    assert built.exit_code == 0, built.output
    assert "built" in built.output and "kept (already built" in again.output
    document = json.loads(shown.stdout)
    assert document["source"] == "snapshot"
    features = {f["name"]: f for f in document["features"]}
    assert features["login_events_30d"]["value"] == 10
    assert features["login_events_30d"]["sentence"] == "10 'login' events in the last 30 days"
    assert features["tenure_days"]["sentence"] == "Customer for 46 days"
    assert "2024-03-01" in listed.output and _snapshot_rows(database_url) == 2


def test_show_computes_a_day_that_was_not_built(run_cli, small_company, database_url):
    table = run_cli("features", "show", "C002", "--as-of", "2024-04-01")
    document = json.loads(run_cli("features", "show", "C002", "--as-of", "2024-04-01", "--json").stdout)

    assert table.exit_code == 0, table.output
    assert "computed now" in table.output and document["source"] == "computed"
    sentences = [f["sentence"] for f in document["features"]]
    assert "3 product events in the last 90 days" in sentences
    assert _snapshot_rows(database_url) == 0


def test_a_history_builds_every_step(run_cli, small_company, database_url):
    result = run_cli("features", "build", "--from", "2024-02-05", "--to", "2024-03-04", "--step", "14")

    assert result.exit_code == 0, result.output
    for day in ("2024-02-05", "2024-02-19", "2024-03-04"):
        assert day in result.output


def test_list_names_every_family_with_sentences(run_cli, env):
    table = run_cli("features", "list")
    listed = json.loads(run_cli("features", "list", "--json").stdout)

    assert table.exit_code == 0
    names = {f["name"] for f in listed}
    assert {"{event}_events_30d", "open_tickets", "last_nps", "days_to_renewal"} <= names
    assert all(f["description"] and f["sentence"] and f["unit"] for f in listed)
    assert {f["family"] for f in listed} == {"engagement", "tickets", "satisfaction", "account"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "--as-of", "2999-01-01"], "--as-of 2999-01-01: is in the future"),
        (
            ["build", "--as-of", "2023-01-01"],
            "is before any data (the first subscription starts on 2024-01-15)",
        ),
        (["show", "C999", "--as-of", "2024-03-10"], "unknown customer 'C999'"),
        (["show", "C003", "--as-of", "2024-03-10"], "customer 'C003' was not active on 2024-03-10"),
        (["build", "--from", "2024-03-01", "--to", "2024-02-01"], "--to 2024-02-01: is before --from"),
        (["build", "--from", "2024-02-01", "--step", "0"], "--step 0: must be at least 1 day"),
        (["build", "--as-of", "2024-03-01", "--from", "2024-02-01"], "either --as-of or --from/--to"),
    ],
)
def test_mistakes_get_one_clear_line_and_change_nothing(run_cli, small_company, database_url, args, message):
    result = run_cli("features", *args)

    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert _snapshot_rows(database_url) == 0


def test_an_empty_database_says_to_import_first(run_cli, db_env):
    result = run_cli("features", "build", "--as-of", "2024-03-01")

    assert result.exit_code == 2
    assert "has no customers yet: import data first" in result.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("features:\n  families: [engagement, loyalty]\n", "unknown family 'loyalty'"),
        ("features:\n  windows_days: [30, 0]\n", "window 0 days: windows must be at least 1 day"),
        ("features:\n  windows_days: [-7]\n", "window -7 days"),
        ("features:\n  window_days: [7]\n", "features.window_days"),
    ],
)
def test_a_bad_feature_config_is_named(run_cli, env, tmp_path, config, message):
    path = tmp_path / "churn.yaml"
    path.write_text(config)

    result = run_cli("features", "list", CHURN_CONFIG=str(path))

    assert result.exit_code == 2
    assert message in result.stderr and str(path) in result.stderr


def test_families_and_windows_come_from_the_config(run_cli, env, tmp_path):
    path = tmp_path / "churn.yaml"
    path.write_text("features:\n  families: [tickets]\n  windows_days: [14]\n")

    listed = json.loads(run_cli("features", "list", "--json", CHURN_CONFIG=str(path)).stdout)

    assert {f["family"] for f in listed} == {"tickets"}
    assert "tickets_opened_14d" in {f["name"] for f in listed}
