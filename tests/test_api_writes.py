"""Write routes: batch ingest and cancellations as `churn ingest` does them, and alert outcomes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from churn.tables import (
    alert_outcomes,
    cancellations,
    customers,
    ingest_runs,
    survey_responses,
    tickets,
    usage_events,
)
from tests.alert_rows import alert_row, queue
from tests.factories import (
    cancellation_rows,
    customer_rows,
    event_rows,
    subscription_rows,
    survey_rows,
    ticket_rows,
)

INGEST_ROUTES = [
    f"/v1/ingest/{name}" for name in ("customers", "subscriptions", "events", "tickets", "surveys")
]
WRITE_ROUTES = [*INGEST_ROUTES, "/v1/cancellations"]
ARABIC = "السعر مرتفع جدا ولم نعد نستخدم التقارير"


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def post_customers(api, headers, n: int = 3) -> None:
    answer = api.client.post("/v1/ingest/customers", json={"rows": customer_rows(n)}, headers=headers)
    assert answer.status_code == 200, answer.text


# --- ingest ----------------------------------------------------------------------------------------


def test_every_entity_lands_and_reposting_the_same_batch_changes_nothing(api):
    headers = api.key("write:ingest", name="hubspot")
    batches = {
        "/v1/ingest/customers": customer_rows(3),
        "/v1/ingest/subscriptions": subscription_rows(),
        "/v1/ingest/events": event_rows(5),
        "/v1/ingest/tickets": ticket_rows(),
        "/v1/ingest/surveys": survey_rows(),
        "/v1/cancellations": cancellation_rows(),
    }
    first = {
        route: api.client.post(route, json={"rows": rows}, headers=headers) for route, rows in batches.items()
    }
    again = {
        route: api.client.post(route, json={"rows": rows}, headers=headers) for route, rows in batches.items()
    }

    for route, rows in batches.items():
        assert first[route].status_code == 200, first[route].text
        assert first[route].json() | {"ignored_columns": []} == {
            "entity": route.rsplit("/", 1)[1],
            "rows_read": len(rows),
            "inserted": len(rows),
            "updated": 0,
            "unchanged": 0,
            "ignored_columns": [],
            "dry_run": False,
        }
        assert again[route].json()["inserted"] == 0 and again[route].json()["updated"] == 0
        assert again[route].json()["unchanged"] == len(rows)
    assert count(api.engine, usage_events) == 5 and count(api.engine, customers) == 3
    with api.engine.connect() as connection:
        sources = set(connection.execute(select(ingest_runs.c.source)).scalars())
        attributes = connection.execute(
            select(customers.c.attributes).where(customers.c.customer_id == "C001")
        ).scalar_one()
    assert sources == {"api:hubspot"}  # the client that sent it, not a temporary file
    assert attributes == {"industry": "Retail"}  # customers keep extra columns, as a file import does


def test_a_changed_row_updates_only_the_columns_the_batch_has(api):
    headers = api.key("write:ingest")
    post_customers(api, headers)

    renamed = api.client.post(
        "/v1/ingest/customers", json={"rows": [{"customer_id": "C001", "name": "Renamed"}]}, headers=headers
    )

    assert renamed.json()["updated"] == 1
    with api.engine.connect() as connection:
        row = connection.execute(select(customers).where(customers.c.customer_id == "C001")).one()
    assert row.name == "Renamed" and row.segment == "SMB" and row.owner_email == "csm@example.com"


def test_json_numbers_and_booleans_are_read_like_file_values(api):
    headers = api.key("write:ingest")
    post_customers(api, headers)
    rows = [
        {
            "ticket_id": "T9",
            "customer_id": "C001",
            "opened_at": "2024-03-01T09:00:00Z",
            "replies": 2.0,
            "escalated": True,
            "reopened": 0,
            "csat": "5",
        },
    ]

    answer = api.client.post("/v1/ingest/tickets", json={"rows": rows}, headers=headers)

    assert answer.status_code == 200, answer.text
    with api.engine.connect() as connection:
        row = connection.execute(select(tickets).where(tickets.c.ticket_id == "T9")).one()
    assert (row.replies, row.escalated, row.reopened, row.csat) == (2, True, False, 5)


def test_a_bad_row_rejects_the_whole_batch_naming_row_and_column(api):
    headers = api.key("write:ingest")
    post_customers(api, headers)
    rows = event_rows(4)
    rows[1]["occurred_at"] = "yesterday"
    rows[2]["customer_id"] = "C999"
    rows[3]["event_id"] = rows[0]["event_id"]

    answer = api.client.post("/v1/ingest/events", json={"rows": rows}, headers=headers)

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["message"] == "the batch was not imported: 3 problem(s); nothing was written"
    assert sorted(error["problems"]) == sorted(
        [
            "rows[1]: column 'occurred_at': 'yesterday' is not an ISO 8601 timestamp such as 2024-03-01T09:30:00Z",
            "rows[2]: column 'customer_id': 'C999' is not a known customer (import customers first)",
            f"rows[3]: column 'event_id': {rows[0]['event_id']!r} is a duplicate key (first at rows[0])",
        ]
    )
    assert count(api.engine, usage_events) == 0  # not even the good row
    assert count(api.engine, ingest_runs) == 1  # the customers only


def test_a_row_without_a_required_column_or_with_a_nested_value_is_refused(api):
    headers = api.key("write:ingest")
    post_customers(api, headers)
    missing = [{"customer_id": "C001", "event_type": "login"}]
    nested = [{"customer_id": "C001", "name": {"first": "A"}}]
    empty: list[dict] = []

    answers = [
        api.client.post("/v1/ingest/events", json={"rows": missing}, headers=headers),
        api.client.post("/v1/ingest/customers", json={"rows": nested}, headers=headers),
        api.client.post("/v1/ingest/events", json={"rows": empty}, headers=headers),
    ]

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert any("rows.0.occurred_at" in p for p in answers[0].json()["error"]["problems"])
    assert any("rows.0.name" in p for p in answers[1].json()["error"]["problems"])
    assert count(api.engine, usage_events) == 0


def test_a_batch_over_the_limit_is_refused_before_anything_is_read(api):
    headers = api.key("write:ingest")
    rows = [{"customer_id": f"C{i}"} for i in range(10_001)]

    answer = api.client.post("/v1/ingest/customers", json={"rows": rows}, headers=headers)

    assert answer.status_code == 413
    assert answer.json()["error"]["message"] == "the batch has 10,001 rows; send at most 10,000 per request"
    assert count(api.engine, customers) == 0


def test_a_dry_run_counts_and_writes_nothing(api):
    headers = api.key("write:ingest")

    answer = api.client.post(
        "/v1/ingest/customers?dry_run=true", json={"rows": customer_rows(2)}, headers=headers
    )

    assert answer.json()["inserted"] == 2 and answer.json()["dry_run"] is True
    assert count(api.engine, customers) == 0 and count(api.engine, ingest_runs) == 0


def test_cancellations_keep_the_customers_words_in_any_language(api):
    headers = api.key("write:ingest")
    post_customers(api, headers)
    rows = [
        {
            "cancellation_id": "X1",
            "customer_id": "C001",
            "effective_at": "2024-06-15T00:00:00Z",
            "reason_code": "price",
            "reason_text": ARABIC,
            "voluntary": True,
            "source": "crm",
        },
    ]
    surveys = [{**survey_rows()[0], "comment": ARABIC}]

    posted = api.client.post("/v1/cancellations", json={"rows": rows}, headers=headers)
    survey = api.client.post("/v1/ingest/surveys", json={"rows": surveys}, headers=headers)
    again = api.client.post("/v1/cancellations", json={"rows": rows}, headers=headers)

    assert posted.json()["inserted"] == 1 and survey.status_code == 200
    assert again.json()["unchanged"] == 1
    with api.engine.connect() as connection:
        stored = connection.execute(select(cancellations)).one()
        comment = connection.execute(select(survey_responses.c.comment)).scalar_one()
    assert stored.reason_text == ARABIC and comment == ARABIC
    assert (stored.reason_code, stored.voluntary, stored.source) == ("price", True, "crm")


def test_a_cancellation_of_an_unknown_customer_is_refused_naming_it(api):
    headers = api.key("write:ingest")
    post_customers(api, headers)
    rows = [{**cancellation_rows()[0], "customer_id": "ACME-404"}]

    answer = api.client.post("/v1/cancellations", json={"rows": rows}, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["error"]["problems"] == [
        "rows[0]: column 'customer_id': 'ACME-404' is not a known customer (import customers first)"
    ]
    assert count(api.engine, cancellations) == 0


@pytest.mark.parametrize("route", WRITE_ROUTES)
def test_ingest_needs_a_key_with_write_ingest(api, route):
    body = {"rows": [{"customer_id": "C001"}]}

    missing = api.client.post(route, json=body)
    wrong = api.client.post(route, json=body, headers=api.key("read:scores", "write:feedback", name="crm"))

    assert missing.status_code == 401 and missing.json()["error"]["status"] == 401
    assert wrong.status_code == 403
    assert wrong.json()["error"]["message"] == "this API key (crm) lacks the scope write:ingest"
    assert count(api.engine, customers) == 0


# --- alert outcomes --------------------------------------------------------------------------------


def test_an_outcome_is_recorded_under_the_keys_name_and_listed(api):
    (alert_id,) = queue(api.engine, [alert_row("C001")])
    writer = api.key("write:feedback", name="salesforce")

    posted = api.client.post(
        f"/v1/alerts/{alert_id}/outcome", json={"outcome": "acknowledged"}, headers=writer
    )
    leaving = api.client.post(
        f"/v1/alerts/{alert_id}/outcome",
        json={"outcome": "churning", "reason_code": "price", "note": ARABIC, "actor": "rep@example.com"},
        headers=writer,
    )
    listed = api.client.get(f"/v1/alerts/{alert_id}/outcomes", headers=api.key("read:scores"))

    assert posted.status_code == 201 and leaving.status_code == 201
    assert posted.json() | {"outcome_id": 0, "created_at": ""} == {
        "outcome_id": 0,
        "alert_id": alert_id,
        "customer_id": "C001",
        "outcome": "acknowledged",
        "reason_code": None,
        "note": None,
        "actor": "salesforce",
        "source": "api",
        "created_at": "",
    }
    outcomes = listed.json()["outcomes"]
    assert [o["outcome"] for o in outcomes] == ["acknowledged", "churning"]
    assert outcomes[1]["reason_code"] == "price" and outcomes[1]["note"] == ARABIC
    assert outcomes[1]["actor"] == "rep@example.com"


def test_a_retried_outcome_lands_once_and_answers_the_same(api):
    (alert_id,) = queue(api.engine, [alert_row("C001")])
    headers = {**api.key("write:feedback"), "Idempotency-Key": "7c1e-outreach"}
    body = {"outcome": "outreach_logged", "note": "called the champion"}

    first = api.client.post(f"/v1/alerts/{alert_id}/outcome", json=body, headers=headers)
    retry = api.client.post(f"/v1/alerts/{alert_id}/outcome", json=body, headers=headers)
    other = api.client.post(f"/v1/alerts/{alert_id}/outcome", json={"outcome": "saved"}, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert other.status_code == 422
    assert other.json()["error"]["message"] == (
        f"this request key already recorded outreach_logged for alert {alert_id}: "
        "use a new key for a different outcome"
    )
    assert count(api.engine, alert_outcomes) == 1


def test_the_same_idempotency_key_from_two_clients_records_two_outcomes(api):
    (alert_id,) = queue(api.engine, [alert_row("C001")])
    body = {"outcome": "acknowledged"}

    for name in ("crm-a", "crm-b"):
        headers = {**api.key("write:feedback", name=name), "Idempotency-Key": "1"}
        assert (
            api.client.post(f"/v1/alerts/{alert_id}/outcome", json=body, headers=headers).status_code == 201
        )

    assert count(api.engine, alert_outcomes) == 2


def test_outcome_mistakes_are_json_and_write_nothing(api):
    (alert_id,) = queue(api.engine, [alert_row("C001")])
    writer = api.key("write:feedback")
    url = f"/v1/alerts/{alert_id}/outcome"

    unknown = api.client.post("/v1/alerts/999/outcome", json={"outcome": "saved"}, headers=writer)
    unknown_list = api.client.get("/v1/alerts/999/outcomes", headers=api.key("read:scores"))
    bad_outcome = api.client.post(url, json={"outcome": "lost"}, headers=writer)
    stray_reason = api.client.post(url, json={"outcome": "saved", "reason_code": "price"}, headers=writer)
    nul = api.client.post(url, json={"outcome": "saved", "note": "a\x00b"}, headers=writer)

    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "alert 999 does not exist"
    assert unknown_list.status_code == 404
    assert bad_outcome.status_code == 422 and "outcome" in bad_outcome.json()["error"]["problems"][0]
    assert stray_reason.status_code == 422
    assert stray_reason.json()["error"]["message"] == "reason_code: only a churning outcome carries a reason"
    assert nul.status_code == 422 and nul.json()["error"]["message"] == "note: contains a NUL character"
    assert count(api.engine, alert_outcomes) == 0


def test_outcomes_need_the_right_scope(api):
    (alert_id,) = queue(api.engine, [alert_row("C001")])
    url = f"/v1/alerts/{alert_id}/outcome"

    missing = api.client.post(url, json={"outcome": "saved"})
    wrong = api.client.post(url, json={"outcome": "saved"}, headers=api.key("read:scores", "write:ingest"))
    list_missing = api.client.get(f"/v1/alerts/{alert_id}/outcomes")
    list_wrong = api.client.get(f"/v1/alerts/{alert_id}/outcomes", headers=api.key("write:feedback"))
    admin = api.client.post(url, json={"outcome": "saved"}, headers=api.key("admin"))

    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert (list_missing.status_code, list_wrong.status_code) == (401, 403)
    assert wrong.json()["error"]["message"].endswith("lacks the scope write:feedback")
    assert admin.status_code == 201 and count(api.engine, alert_outcomes) == 1


def test_half_a_character_is_refused_not_a_server_error(api):
    headers = {**api.key("write:ingest", "write:feedback"), "Content-Type": "application/json"}
    (alert_id,) = queue(api.engine, [alert_row("C001")])

    rows = api.client.post(
        "/v1/ingest/customers", content='{"rows": [{"customer_id": "C\\ud800"}]}', headers=headers
    )
    note = api.client.post(
        f"/v1/alerts/{alert_id}/outcome", content='{"outcome": "saved", "note": "\\ud800"}', headers=headers
    )

    assert rows.status_code == 422
    assert rows.json()["error"]["problems"] == ["rows[0]: column 'customer_id': is not valid Unicode text"]
    assert note.status_code == 422
    assert count(api.engine, customers) == 0 and count(api.engine, alert_outcomes) == 0
