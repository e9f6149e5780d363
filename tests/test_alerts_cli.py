"""`churn alerts`: send, list, retry, release, discard; and a dispatcher killed mid-batch loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from churn.cli.alerts import alerts_app
from churn.config import ProductConfig
from churn.settings import get_settings
from serving.dispatch import claim_lease_s
from tests.alert_rows import alert_row, queue, states
from tests.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def alerts_cli(env, monkeypatch, database_url):
    """Run `churn alerts ...` in-process against the test database."""
    app = typer.Typer()
    app.add_typer(alerts_app, name="alerts")
    runner = CliRunner()

    def run(*args: str, **extra_env: str):
        for name, value in {"CHURN_DATABASE_URL": database_url, **extra_env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return runner.invoke(app, ["alerts", *map(str, args)], catch_exceptions=False)

    return run


def _cells(output: str) -> str:
    """A table's text without borders and line breaks, so wrapped cells read whole."""
    return "".join(ch for ch in output if not ch.isspace() and ch not in "│┃━─┏┓┗┛┡┩└┘┳┻╇┼")


def _slack(fake: FakeSlack, token: str | None = None) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": token or fake.token, "SLACK_API_URL": fake.url}


def test_send_posts_the_due_alerts_and_shows_a_summary(alerts_cli, engine, fake_slack):
    ids = queue(engine, [alert_row("C1"), alert_row("C2")], now=datetime.now(UTC))

    result = alerts_cli("send", **_slack(fake_slack))

    assert result.exit_code == 0, result.output
    assert "Alerts sent to Slack" in result.stdout
    assert sorted(fake_slack.alert_ids()) == ids
    assert {row["state"] for row in states(engine).values()} == {"sent"}


def test_a_bad_token_is_one_clear_line_and_keeps_the_alerts(alerts_cli, engine, fake_slack):
    queue(engine, [alert_row("C1"), alert_row("C2")], now=datetime.now(UTC))

    result = alerts_cli("send", **_slack(fake_slack, "xoxb-wrong"))

    assert result.exit_code == 2
    assert (
        "error: Slack rejected the bot token (invalid_auth): check SLACK_BOT_TOKEN; 2 alerts kept"
        in result.stderr
    )
    assert "Traceback" not in result.output
    assert {row["state"] for row in states(engine).values()} == {"pending"}


def test_a_failed_alert_is_listed_with_its_channel_and_retry_sends_it(
    alerts_cli,
    engine,
    fake_slack,
    tmp_path,
):
    [alert_id] = queue(engine, [alert_row("C1")], now=datetime.now(UTC))
    config = tmp_path / "churn.yaml"
    config.write_text("alerts:\n  channels:\n    cs-alerts: '#cs-alrts'\n")

    failed = alerts_cli("send", **_slack(fake_slack), CHURN_CONFIG=str(config))
    listed = alerts_cli("list", "--failed")
    as_json = json.loads(alerts_cli("list", "--json").stdout)
    config.write_text("alerts:\n  channels:\n    cs-alerts: '#cs-alerts'\n")
    retried = alerts_cli("retry", alert_id)
    sent = alerts_cli("send", **_slack(fake_slack))

    assert failed.exit_code == 1
    assert "#cs-alrts" in failed.stderr and "churn alerts retry" in failed.stderr
    assert (
        listed.exit_code == 0
        and "channel_not_found" in _cells(listed.stdout)
        and "CompanyC1" in _cells(listed.stdout)
    )
    assert as_json[0]["alert_id"] == alert_id and as_json[0]["state"] == "failed"
    assert "#cs-alrts" in as_json[0]["last_error"]
    assert retried.exit_code == 0 and "1 failed alert(s) queued again" in retried.stdout
    assert sent.exit_code == 0 and fake_slack.alert_ids() == [alert_id]


def test_release_and_discard_held_alerts(alerts_cli, engine, fake_slack):
    released, discarded = queue(engine, [alert_row("C1", state="held"), alert_row("C2", state="held")])

    held = alerts_cli("list", "--held")
    release = alerts_cli("release", released)
    discard = alerts_cli("discard")
    send = alerts_cli("send", **_slack(fake_slack))

    assert "CompanyC1" in _cells(held.stdout) and "CompanyC2" in _cells(held.stdout)
    assert release.exit_code == 0 and discard.exit_code == 0
    assert "1 held alert(s) discarded" in discard.stdout
    assert send.exit_code == 0 and fake_slack.alert_ids() == [released]
    rows = states(engine)
    assert rows[discarded]["state"] == "discarded"
    assert "discarded by an operator" in rows[discarded]["state_reason"]


def test_mistakes_are_one_line_and_change_nothing(alerts_cli, engine):
    [alert_id] = queue(engine, [alert_row("C1", state="held")])

    cases = {
        ("retry", alert_id): f"only failed alerts can be retried: {alert_id} is held; nothing changed",
        ("release", 999): "no alert with id 999; nothing changed",
        ("list", "--state", "lost"): "--state 'lost': unknown state",
    }
    for args, message in cases.items():
        result = alerts_cli(*args)
        assert result.exit_code == 2, args
        assert message in result.stderr
    assert states(engine)[alert_id]["state"] == "held"


def test_without_slack_send_prints_the_alerts(alerts_cli, engine):
    queue(engine, [alert_row("C1")], now=datetime.now(UTC))
    result = alerts_cli("send")
    assert result.exit_code == 0
    assert "Company C1 is at risk of churning" in result.stdout
    assert "Alerts sent to the console" in result.stdout


def test_help_speaks_to_cs_ops(alerts_cli, engine):
    result = alerts_cli("--help")
    for command in ("send", "list", "retry", "release", "discard"):
        assert command in result.stdout
    assert "stale" in alerts_cli("release", "--help").stdout


# --- a dispatcher killed mid-batch ------------------------------------------------------------------

DISPATCH = """
import json, sys
from datetime import datetime
from churn.config import ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from serving.dispatch import dispatch_pending

settings = Settings()
summary = dispatch_pending(
    make_engine(settings.resolved_database_url), settings, ProductConfig(),
    now=datetime.fromisoformat(sys.argv[1]), channel_interval_s=0.0,
)
print(json.dumps({"sent": summary.sent, "reconciled": summary.reconciled, "kept": summary.kept}))
"""


def _dispatcher(database_url: str, fake: FakeSlack, now: datetime, tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "CHURN_DATABASE_URL": database_url,
        "CHURN_HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        **_slack(fake),
    }
    return subprocess.Popen(
        [sys.executable, "-c", DISPATCH, now.isoformat()],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the dispatcher did not get that far"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["after Slack accepted", "while Slack is slow"])
def test_a_killed_dispatcher_restarted_sends_every_alert_exactly_once(
    database_url,
    engine,
    fake_slack,
    tmp_path,
    moment,
):
    now = datetime.now(UTC)
    ids = queue(engine, [alert_row(f"C{i}", channel="cs-alerts") for i in range(8)], now=now)
    if moment == "after Slack accepted":
        fake_slack.delay_after_post_s = 2.0  # the message is recorded, the answer comes late
    else:
        fake_slack.delay_s = 1.0  # every request is slow; the one in flight lands after the kill

    process = _dispatcher(database_url, fake_slack, now, tmp_path)
    _wait_for(lambda: len(fake_slack.messages) >= 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    time.sleep(fake_slack.delay_s + 0.5)  # let a request already in Slack's hands finish there

    killed = states(engine)
    assert process.returncode == -signal.SIGKILL
    assert "sending" in {row["state"] for row in killed.values()}
    assert len(fake_slack.messages) < len(ids), "the kill came too late to land mid-batch"

    fake_slack.delay_s = fake_slack.delay_after_post_s = 0.0
    lease = timedelta(seconds=claim_lease_s(ProductConfig().alerts.delivery))
    restart = _dispatcher(database_url, fake_slack, now + lease + timedelta(seconds=30), tmp_path)
    out, err = restart.communicate(timeout=120)
    assert restart.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])

    assert sorted(fake_slack.alert_ids()) == ids  # each alert exactly once
    assert {row["state"] for row in states(engine).values()} == {"sent"}
    assert summary["kept"] == 0
    if moment == "after Slack accepted":
        assert summary["reconciled"] >= 1
