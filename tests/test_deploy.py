"""The deployment files match the code: the Slack app's scopes and Request URL, the systemd units'
commands, and the environment variables the operations guide names."""

from __future__ import annotations

import ast
import configparser
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import typer
import yaml
from pydantic import AliasChoices
from slack_sdk import WebClient
from typer.testing import CliRunner

from churn.cli import app as cli_app
from churn.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MANIFEST = DEPLOY / "slack-app-manifest.yml"
UNITS = sorted(DEPLOY.glob("*.service"))
COMMANDS = {"churn-api.service": ["serve"], "churn-scheduler.service": ["scheduler"]}
OPERATIONS = ROOT / "docs" / "operations.md"

# The bot scopes each Slack Web API method needs (https://api.slack.com/methods/<method>).
METHOD_SCOPES: dict[str, set[str]] = {
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    # Alerts go to public and private channels, never to direct messages: no im:/mpim: scopes.
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.list": {"channels:read", "groups:read"},
    # Slack grants users:read.email only together with users:read.
    "users.lookupByEmail": {"users:read", "users:read.email"},
    "views.open": set(),
}

# Variables the product reads outside churn/settings.py, each with the module that reads it.
READ_ELSEWHERE = {"PROMETHEUS_MULTIPROC_DIR": "serving/api/metrics.py"}
ENV_VAR = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def slack_methods_called() -> set[str]:
    """Every Slack Web API method the serving code calls on a slack_sdk WebClient, as Slack names it."""
    web_methods = {name for name, value in vars(WebClient).items() if callable(value) and name[0] != "_"}
    called = set()
    for path in (ROOT / "serving").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if call and node.func.attr in web_methods:
                called.add(node.func.attr.replace("_", "."))
    return called


def settings_variables() -> set[str]:
    """The environment variables Settings reads."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
    return names


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(path.read_text(encoding="utf-8"))
    return unit


def churn_command(args: list[str]) -> list[str]:
    """The subcommand path of ``churn ARGS``, after checking that every option and value parses."""
    command = typer.main.get_command(cli_app)
    context = typer.Context(command, info_name="churn")
    path: list[str] = []
    while isinstance(command, typer.core.TyperGroup):
        assert args, f"`churn {' '.join(path)}` needs a subcommand"
        name, *args = args
        sub = command.get_command(context, name)
        assert sub is not None, f"`churn {' '.join([*path, name])}` is not a churn command"
        path.append(name)
        context = typer.Context(sub, info_name=name, parent=context)
        command = sub
    command.make_context(path[-1], list(args), parent=context.parent)  # raises on a bad option or value
    return path


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_the_scan_finds_the_slack_calls_the_code_makes():
    called = slack_methods_called()

    # The alert post is the one call every deployment makes: a scan that misses it finds nothing.
    assert "chat.postMessage" in called
    unknown = called - set(METHOD_SCOPES)
    assert not unknown, f"Slack methods without a scope in METHOD_SCOPES: {sorted(unknown)}"


def test_the_manifest_asks_for_exactly_the_bot_scopes_the_code_needs(manifest):
    needed = set().union(*(METHOD_SCOPES[method] for method in slack_methods_called()))
    scopes = manifest["oauth_config"]["scopes"]

    assert set(scopes["bot"]) == needed
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert not scopes.get("user"), "the app acts as its bot only"


def test_the_manifest_points_interactivity_at_the_apis_slack_route(manifest, env):
    from serving.api.app import create_app
    from serving.api.slack_actions import slack_interactions

    route = create_app().url_path_for(slack_interactions.__name__)
    interactivity = manifest["settings"]["interactivity"]
    url = urlparse(interactivity["request_url"])

    assert interactivity["is_enabled"] is True
    assert url.scheme == "https"
    assert url.path == route


def test_the_manifest_has_what_slack_requires(manifest):
    display = manifest["display_information"]

    assert 0 < len(display["name"]) <= 35
    assert len(display.get("description", "")) <= 140
    assert manifest["features"]["bot_user"]["display_name"]
    assert manifest["settings"]["socket_mode_enabled"] is False  # interactivity arrives over HTTPS


def test_there_is_a_unit_for_the_api_and_the_scheduler():
    assert [unit.name for unit in UNITS] == sorted(COMMANDS)


@pytest.mark.parametrize("path", UNITS, ids=[unit.name for unit in UNITS])
def test_each_unit_runs_a_real_churn_subcommand(path, env):
    service = read_unit(path)["Service"]
    program, *args = shlex.split(service["ExecStart"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]

    assert Path(program).name in scripts
    # The checkout's own virtualenv, as `make setup` creates it.
    assert Path(program) == Path(service["WorkingDirectory"]) / ".venv" / "bin" / "churn"
    subcommand = churn_command(args)
    assert subcommand == COMMANDS[path.name]
    result = CliRunner().invoke(cli_app, [*subcommand, "--help"])
    assert result.exit_code == 0, result.output


def test_the_units_share_the_user_folder_and_environment():
    services = [read_unit(path)["Service"] for path in UNITS]

    for key in ("User", "WorkingDirectory", "EnvironmentFile"):
        assert len({service[key] for service in services}) == 1, f"{key} differs between the units"


def test_systemd_waits_longer_than_the_scheduler_waits_for_a_running_job():
    from serving.scheduler import STOP_TIMEOUT_S

    service = read_unit(DEPLOY / "churn-scheduler.service")["Service"]

    assert float(service["TimeoutStopSec"]) > STOP_TIMEOUT_S


def test_the_scheduler_doc_shows_the_unit_file_as_it_is():
    doc = (ROOT / "docs" / "scheduler.md").read_text(encoding="utf-8")
    shown = re.findall(r"```ini\n(.*?)```", doc, flags=re.DOTALL)

    assert shown == [(DEPLOY / "churn-scheduler.service").read_text(encoding="utf-8")]


@pytest.mark.parametrize("path", UNITS, ids=[unit.name for unit in UNITS])
def test_the_units_set_only_variables_the_code_reads(path):
    service = read_unit(path)["Service"]
    assignments = shlex.split(service.get("Environment", ""))
    names = {assignment.split("=", 1)[0] for assignment in assignments}

    assert names <= settings_variables() | set(READ_ELSEWHERE)


def test_variables_read_elsewhere_are_read_there():
    for name, module in READ_ELSEWHERE.items():
        assert f'"{name}"' in (ROOT / module).read_text(encoding="utf-8"), f"{module} no longer reads {name}"


def test_the_operations_guide_names_every_setting_and_nothing_else():
    doc = OPERATIONS.read_text(encoding="utf-8")
    named = set(ENV_VAR.findall(doc))
    section = doc.split("## Environment variables")[1].split("\n## ")[0]
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE))

    assert table == settings_variables()
    assert named - settings_variables() <= set(READ_ELSEWHERE), "variables nothing reads"
