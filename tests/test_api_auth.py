"""API keys: every route but health needs a key with the right scope; keys are shown once, kept hashed."""

from __future__ import annotations

import json

from sqlalchemy import select

from churn.tables import api_keys


def test_health_needs_no_key_and_readiness_says_what_is_missing(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "error": {"status": 503, "message": "no champion model: run `churn train --promote`"}
    }


def test_a_missing_unknown_or_revoked_key_is_refused_with_json(api, run_cli, database_url):
    headers = api.key("read:scores")
    listed = json.loads(run_cli("apikey", "list", "--json", CHURN_DATABASE_URL=database_url).stdout)
    revoked = run_cli("apikey", "revoke", listed[0]["key_id"], CHURN_DATABASE_URL=database_url)

    missing = api.client.get("/v1/customers/C1/risk")
    unknown = api.client.get("/v1/customers/C1/risk", headers={"Authorization": "Bearer chr_nope"})
    after = api.client.get("/v1/customers/C1/risk", headers=headers)

    assert revoked.exit_code == 0
    assert missing.status_code == 401 and "an API key is required" in missing.json()["error"]["message"]
    assert unknown.status_code == 401 and after.status_code == 401
    assert after.json()["error"]["message"] == "this API key is not valid (unknown or revoked)"


def test_keys_are_shown_once_and_stored_hashed(run_cli, database_url):
    created = run_cli(
        "apikey", "create", "salesforce", "--scope", "read:scores", "--json", CHURN_DATABASE_URL=database_url
    )
    bad = run_cli("apikey", "create", "x", "--scope", "read:everything", CHURN_DATABASE_URL=database_url)
    key = json.loads(created.stdout)

    from churn.db import make_engine

    engine = make_engine(database_url)
    with engine.connect() as connection:
        (stored,) = connection.execute(select(api_keys)).all()
    engine.dispose()
    assert key["key"].startswith("chr_") and key["key"] not in str(tuple(stored))
    assert stored.scopes == ["read:scores"] and stored.name == "salesforce"
    assert bad.exit_code == 2 and "--scope 'read:everything': unknown scope" in bad.stderr
