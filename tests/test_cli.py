"""The `churn` command line: exit codes, messages and output a person or a script relies on."""

from __future__ import annotations

import json

import pytest

from tests import factories


@pytest.fixture
def db_env(env, database_url):
    env["CHURN_DATABASE_URL"] = database_url
    return env


def test_help_lists_the_commands(run_cli):
    result = run_cli("--help")

    assert result.exit_code == 0
    for command in ("ingest", "db", "features", "demo-data", "demo", "config"):
        assert command in result.output


def test_db_upgrade_twice_reports_up_to_date(run_cli, env, empty_database_url):
    env["CHURN_DATABASE_URL"] = empty_database_url

    first = run_cli("db", "upgrade")
    second = run_cli("db", "upgrade")

    assert first.exit_code == second.exit_code == 0
    assert "upgraded from empty" in first.output
    assert "is up to date" in second.output


def test_ingest_before_the_schema_exists_says_what_to_run(run_cli, env, empty_database_url, tmp_path):
    env["CHURN_DATABASE_URL"] = empty_database_url
    path = factories.write_csv(tmp_path / "c.csv", factories.customer_rows())

    result = run_cli("ingest", "customers", path)

    assert result.exit_code == 2
    assert "is empty: run `churn db upgrade`" in result.stderr


def test_ingest_prints_a_summary_and_json_for_scripts(run_cli, db_env, tmp_path):
    path = factories.write_csv(tmp_path / "c.csv", factories.customer_rows(3))

    first = run_cli("ingest", "customers", path)
    second = run_cli("ingest", "customers", path, "--json")

    assert first.exit_code == 0, first.output
    assert "Import summary" in first.output
    summary = json.loads(second.stdout)
    assert (summary["rows_read"], summary["inserted"], summary["unchanged"]) == (3, 0, 3)


def test_a_bad_file_exits_2_with_one_line_per_problem_and_no_traceback(run_cli, db_env, tmp_path):
    customers = factories.customer_rows(3)
    customers[1]["seats"] = "twelve"
    path = factories.write_csv(tmp_path / "c.csv", customers)

    result = run_cli("ingest", "customers", path)

    assert result.exit_code == 2
    assert f"error: {path}:3: column 'seats': 'twelve' is not a whole number of at least 0" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("db", "status").output.count(" 0 ") >= 1


def test_more_than_twenty_problems_end_with_a_count(run_cli, db_env, tmp_path):
    customers = factories.customer_rows(25)
    for row in customers:
        row["created_at"] = "someday"
    path = factories.write_csv(tmp_path / "c.csv", customers)

    result = run_cli("ingest", "customers", path)

    assert result.exit_code == 2
    assert result.stderr.count("error:") == 20
    assert "... and 5 more problems" in result.stderr


def test_dry_run_says_nothing_was_written(run_cli, db_env, tmp_path):
    path = factories.write_csv(tmp_path / "c.csv", factories.customer_rows(2))

    result = run_cli("ingest", "customers", path, "--dry-run")

    assert result.exit_code == 0
    assert "Dry run: nothing was written" in result.output
    assert json.loads(run_cli("ingest", "customers", path, "--dry-run", "--json").stdout)["inserted"] == 2


def test_map_option_and_bad_map_syntax(run_cli, db_env, tmp_path):
    rows = [{"Account": r["customer_id"], "Company": r["name"]} for r in factories.customer_rows(2)]
    path = factories.write_csv(tmp_path / "c.csv", rows)

    bad = run_cli("ingest", "customers", path, "--map", "Account")
    good = run_cli(
        "ingest", "customers", path, "--map", "Account=customer_id", "--map", "Company=name", "--json"
    )

    assert bad.exit_code == 2
    assert "--map 'Account': expected SOURCE=TARGET" in bad.stderr
    assert good.exit_code == 0, good.stderr
    assert json.loads(good.stdout)["inserted"] == 2


def test_an_unknown_entity_or_timezone_is_refused(run_cli, db_env, tmp_path):
    path = factories.write_csv(tmp_path / "c.csv", factories.customer_rows(1))

    entity = run_cli("ingest", "invoices", path)
    zone = run_cli("ingest", "customers", path, "--timezone", "Europe/Atlantis")

    assert entity.exit_code == 2
    assert "invoices" in entity.stderr
    assert zone.exit_code == 2
    assert "--timezone: unknown time zone 'Europe/Atlantis'" in zone.stderr


def test_an_unreachable_database_is_one_clear_line(run_cli, env, tmp_path):
    env["CHURN_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    path = factories.write_csv(tmp_path / "c.csv", factories.customer_rows(1))

    result = run_cli("ingest", "customers", path)

    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot use the database:")
    assert "Traceback" not in result.stderr


def test_a_bad_config_file_is_one_clear_line(run_cli, db_env, tmp_path):
    config = tmp_path / "churn.yaml"
    config.write_text("ingest:\n  chunk: 3\n", encoding="utf-8")

    result = run_cli("config", CHURN_CONFIG=str(config))

    assert result.exit_code == 2
    assert f"error: {config}: ingest.chunk: Extra inputs are not permitted" in result.stderr


def test_config_shows_settings_without_secrets(run_cli, env):
    result = run_cli(
        "config", CHURN_DATABASE_URL="postgresql://churn:hunter2@db/churn", SLACK_BOT_TOKEN="xoxb-secret"
    )

    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert "xoxb-secret" not in result.output
    assert "postgresql+psycopg://churn:***@db/churn" in result.output
    assert "timezone: UTC" in result.output


def test_values_that_look_like_markup_are_printed_as_they_are(run_cli, db_env, tmp_path):
    customers = factories.customer_rows(1)
    customers[0]["seats"] = "[/x]"
    path = factories.write_csv(tmp_path / "bad[red].csv", customers)

    result = run_cli("ingest", "customers", path)

    assert result.exit_code == 2
    assert f"{path}:2: column 'seats': '[/x]' is not a whole number" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost/db", "CHURN_DATABASE_URL:"),
        ("postgresql+psycopg2://u@h/d", "PostgreSQL driver 'psycopg2' is not supported"),
    ],
)
def test_a_bad_database_url_is_one_clear_line(run_cli, env, url, message):
    result = run_cli("db", "upgrade", CHURN_DATABASE_URL=url)

    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_config_variable_means_defaults_and_a_folder_is_refused(run_cli, env, tmp_path):
    empty = run_cli("config", CHURN_CONFIG="")
    folder = run_cli("config", CHURN_CONFIG=str(tmp_path))

    assert empty.exit_code == 0
    assert folder.exit_code == 2
    assert "cannot read the config file" in folder.stderr
