"""``/metrics``: Prometheus text with requests by route template, latency, and the database's figures."""

from __future__ import annotations

from datetime import UTC, date, datetime

from prometheus_client.parser import text_string_to_metric_families

from churn.tables import alert_outcomes, risk_scores, scoring_runs
from tests.alert_rows import alert_row, queue
from tests.api_support import open_api

AS_OF = date(2024, 12, 1)
SCORED_AT = datetime(2024, 12, 1, 6, 30, tzinfo=UTC)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(api) -> dict:
    response = api.client.get("/metrics", headers=api.key("read:scores", name="prometheus"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_metrics_need_a_key_that_may_read(api):
    missing = api.client.get("/metrics")
    wrong = api.client.get("/metrics", headers=api.key("write:ingest"))
    admin = api.client.get("/metrics", headers=api.key("admin"))

    assert missing.status_code == 401 and missing.json()["error"]["status"] == 401
    assert wrong.status_code == 403
    assert wrong.json()["error"]["message"] == "this API key (test) lacks the scope read:scores"
    assert admin.status_code == 200 and "churn_api_requests_total" in admin.text


def test_requests_are_counted_by_route_template_never_by_raw_path(api):
    @api.client.app.get("/probe/{customer_id}")
    def probe(customer_id: str) -> dict[str, str]:
        return {"customer_id": customer_id}

    for customer_id in ("C-SECRET-1", "C-SECRET-2"):
        assert api.client.get(f"/probe/{customer_id}").status_code == 200
    api.client.get("/healthz")
    api.client.get("/no/such/C-SECRET-3")

    response = api.client.get("/metrics", headers=api.key("read:scores"))
    found = samples(response.text)

    assert "C-SECRET" not in response.text
    requests = "churn_api_requests_total"
    assert found[(requests, (("method", "GET"), ("route", "/probe/{customer_id}"), ("status", "200")))] == 2
    assert found[(requests, (("method", "GET"), ("route", "/healthz"), ("status", "200")))] == 1
    assert found[(requests, (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))] == 1
    latency = "churn_api_request_duration_seconds_count"
    assert found[(latency, (("method", "GET"), ("route", "/probe/{customer_id}")))] == 2


def test_refused_requests_are_counted_with_their_status(api):
    api.client.get("/metrics")
    found = scrape(api)

    assert (
        found[("churn_api_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "401")))]
        == 1
    )


def test_before_any_scoring_the_database_figures_are_zero_or_absent(api):
    found = scrape(api)

    assert found[("churn_database_up", ())] == 1
    assert found[("churn_alerts", (("state", "pending"),))] == 0
    assert found[("churn_alerts", (("state", "failed"),))] == 0
    assert not any(name.startswith("churn_scoring_last") for name, _ in found)
    assert not any(name == "churn_scored_customers" for name, _ in found)


def test_scoring_and_alert_figures_are_read_from_the_database(api):
    with api.engine.begin() as connection:
        for day, customers in ((date(2024, 11, 30), 5), (AS_OF, 3)):
            connection.execute(
                scoring_runs.insert().values(
                    as_of=day,
                    model_version="3",
                    model_run_id="run-3",
                    snapshot_built_at=SCORED_AT,
                    scored_at=SCORED_AT,
                    customers=customers,
                    alerts=1,
                    held=0,
                    seconds=12.5,
                )
            )
        rows = [(date(2024, 11, 30), f"C{n}", "low") for n in range(5)]
        rows += [(AS_OF, "C0", "high"), (AS_OF, "C1", "low"), (AS_OF, "C2", "low")]
        connection.execute(
            risk_scores.insert(),
            [
                {
                    "as_of": day,
                    "customer_id": customer_id,
                    "risk": 0.7 if tier == "high" else 0.1,
                    "tier": tier,
                    "model_version": "3",
                    "snapshot_built_at": SCORED_AT,
                    "scored_at": SCORED_AT,
                    "updated_at": SCORED_AT,
                    "change_id": number,
                }
                for number, (day, customer_id, tier) in enumerate(rows, start=1)
            ],
        )
    alert_ids = queue(api.engine, [alert_row("C0"), alert_row("C1", state="sent"), alert_row("C2")])
    with api.engine.begin() as connection:
        connection.execute(
            alert_outcomes.insert().values(
                alert_id=alert_ids[1],
                customer_id="C1",
                outcome="acknowledged",
                actor="U123",
                source="slack",
                created_at=SCORED_AT,
            )
        )

    found = scrape(api)

    assert found[("churn_alerts", (("state", "pending"),))] == 2
    assert found[("churn_alerts", (("state", "sent"),))] == 1
    assert found[("churn_alert_outcomes", (("outcome", "acknowledged"),))] == 1
    assert found[("churn_scored_customers", (("tier", "high"),))] == 1
    assert found[("churn_scored_customers", (("tier", "low"),))] == 2  # the latest day only
    assert found[("churn_scoring_last_customers", ())] == 3
    assert (
        found[("churn_scoring_last_as_of_timestamp_seconds", ())]
        == datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    )
    assert found[("churn_scoring_last_scored_at_timestamp_seconds", ())] == SCORED_AT.timestamp()
    assert found[("churn_scoring_last_duration_seconds", ())] == 12.5


def test_two_apps_in_one_process_count_their_own_requests(api):
    other, client = open_api(api.settings)
    with client:
        client.get("/healthz")
        client.get("/healthz")
        theirs = samples(client.get("/metrics", headers=other.key("read:scores")).text)
    api.client.get("/healthz")
    ours = scrape(api)

    healthz = ("churn_api_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200")))
    assert theirs[healthz] == 2 and ours[healthz] == 1
