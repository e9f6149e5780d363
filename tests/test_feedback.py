"""Alert outcomes as Slack and the API record them: one row per request, whoever retries."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from churn.db import WRITES
from churn.tables import alert_outcomes
from serving.feedback import FeedbackError, UnknownAlertError, list_outcomes, record_outcome
from serving.outbox import AlertKind
from tests.alert_rows import alert_row, queue

NOW = datetime(2024, 12, 2, 9, 30, tzinfo=UTC)


def record(engine, **values):
    values = {"actor": "U123 (Dana)", "source": "slack", "now": NOW, **values}
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        return record_outcome(connection, **values)


def test_a_slack_outcome_is_stored_with_who_did_it_and_listed(engine):
    (alert_id,) = queue(engine, [alert_row("C007")])

    saved = record(engine, alert_id=alert_id, outcome="saved", note="  renewed for a year  ")
    leaving = record(engine, alert_id=alert_id, outcome="churning", reason_code="competitor")
    with engine.connect() as connection:
        listed = list_outcomes(connection, alert_id)

    assert saved | {"outcome_id": 0} == {
        "outcome_id": 0,
        "alert_id": alert_id,
        "customer_id": "C007",
        "outcome": "saved",
        "reason_code": None,
        "note": "renewed for a year",
        "actor": "U123 (Dana)",
        "source": "slack",
        "created_at": NOW,
    }
    assert listed == [saved, leaving]


def test_values_that_cannot_be_recorded_are_refused(engine):
    ids = queue(engine, [alert_row("C001"), alert_row(kind=AlertKind.DIGEST, channel="cs-alerts")])
    alert_id, digest_id = ids

    refusals = {
        "unknown alert": dict(alert_id=alert_id + 100, outcome="saved"),
        "digest": dict(alert_id=digest_id, outcome="saved"),
        "outcome": dict(alert_id=alert_id, outcome="lost"),
        "source": dict(alert_id=alert_id, outcome="saved", source="email"),
        "actor": dict(alert_id=alert_id, outcome="saved", actor="  "),
        "reason": dict(alert_id=alert_id, outcome="acknowledged", reason_code="price"),
    }
    messages = {}
    for what, values in refusals.items():
        with pytest.raises(FeedbackError) as caught:
            record(engine, **values)
        messages[what] = (type(caught.value), str(caught.value))

    assert messages["unknown alert"] == (UnknownAlertError, f"alert {alert_id + 100} does not exist")
    assert messages["digest"][1] == f"alert {digest_id} is not about one customer (a digest or notice)"
    assert messages["outcome"][1] == (
        "outcome: 'lost' is not one of acknowledged, outreach_logged, saved, churning"
    )
    assert messages["source"][1] == "source: 'email' is not one of slack, api"
    assert messages["actor"][1] == "actor: say who recorded the outcome"
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(alert_outcomes)).scalar_one() == 0


def test_a_retry_racing_its_first_try_lands_once(engine):
    (alert_id,) = queue(engine, [alert_row("C001")])
    values = dict(alert_id=alert_id, outcome="acknowledged", request_key="slack:T1:1700000000.1")
    answers: list[dict] = []

    with engine.connect().execution_options(**WRITES) as first, first.begin():
        answers.append(record_outcome(first, actor="U1", source="slack", now=NOW, **values))
        retry = threading.Thread(target=lambda: answers.append(record(engine, **values)))
        retry.start()
        if engine.dialect.name == "postgresql":
            _wait_until_blocked(engine)  # the retry's insert waits on the first try's uncommitted row
    retry.join()

    assert len(answers) == 2 and answers[0] == answers[1]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(alert_outcomes)).scalar_one() == 1


def _wait_until_blocked(engine) -> None:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with engine.connect() as connection:
        for _ in range(500):
            if connection.execute(query).scalar_one():
                return
            connection.rollback()
            time.sleep(0.01)
    raise AssertionError("the retry never waited on the first try")
