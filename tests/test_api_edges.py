"""Inputs at the edges of the API answer with clear 4xx JSON, never a 500."""

from __future__ import annotations

import base64
import json


def cursor(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": 1, "after": after}).encode()).decode().rstrip("=")


def test_a_cursor_beyond_a_bigint_and_an_out_of_range_time_are_422s(api):
    headers = api.key("read:scores")

    huge = api.client.get("/v1/risk-scores", params={"cursor": cursor(2**63)}, headers=headers)
    far = api.client.get(
        "/v1/risk-scores", params={"updated_since": "0001-01-01T00:00:00+14:00"}, headers=headers
    )

    assert huge.status_code == 422 and "query.cursor" in huge.json()["error"]["problems"][0]
    assert far.status_code == 422 and "updated_since" in far.json()["error"]["message"]


def test_an_ingest_body_that_is_empty_or_not_json_is_a_4xx(api):
    headers = api.key("write:ingest")

    empty = api.client.post(
        "/v1/ingest/events", content=b"", headers={**headers, "Content-Type": "application/json"}
    )
    text = api.client.post(
        "/v1/ingest/events", content=b"not json", headers={**headers, "Content-Type": "text/plain"}
    )

    assert empty.status_code in (400, 422) and empty.json()["error"]["message"]
    assert text.status_code in (400, 422) and text.json()["error"]["message"]


def test_a_json_true_is_not_taken_as_a_customer_id(api):
    response = api.client.post(
        "/v1/ingest/customers", json={"rows": [{"customer_id": True}]}, headers=api.key("write:ingest")
    )
    assert response.status_code == 422


def test_a_non_ascii_slack_signature_is_refused_not_a_crash(api):
    from tests.api_support import open_api

    settings = api.settings.model_copy(
        update={"slack_signing_secret": __import__("pydantic").SecretStr("s3cret")}
    )
    _, client = open_api(settings)
    with client:
        response = client.post(
            "/slack/interactions",
            content=b"payload=%7B%7D",
            headers={
                "X-Slack-Signature": "v0=\u00e9".encode("latin-1"),  # obs-text bytes, as a client may send
                "X-Slack-Request-Timestamp": str(int(__import__("time").time())),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert response.status_code == 401


def test_a_worker_whose_database_connections_are_all_busy_answers_503_to_retry(api):
    """Overload is a 503 with Retry-After, not a 500: a sync retries later instead of paging someone."""
    from sqlalchemy import create_engine

    headers = api.key("read:scores")
    app = api.client.app
    crowded = create_engine(api.engine.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    served_by, app.state.engine = app.state.engine, crowded
    try:
        with crowded.connect():  # the one connection is taken, as by a slow request
            busy = api.client.get("/v1/customers/C1/risk", headers=headers)
        freed = api.client.get("/v1/customers/C1/risk", headers=headers)
    finally:
        app.state.engine = served_by
        crowded.dispose()

    assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
    assert "busy" in busy.json()["error"]["message"]
    assert freed.status_code == 404  # served again once a connection is free: an unknown customer
