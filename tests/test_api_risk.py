"""Reading risk scores over the API: a customer's latest score and history, and the CRM change feed."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, time, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from churn.config import ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from churn.tables import customers, risk_scores, usage_events
from serving.scoring import score_day
from tests.api_support import open_api
from tests.scoring_data import copy_demo_snapshots, snapshot_days_of

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
READ = "read:scores"


@pytest.fixture
def world(database_url, env, tmp_path, demo_history, demo_training):
    """The demo's last three snapshot days in the API's database, the first scored; the riskiest tenth is high."""
    days = snapshot_days_of(demo_history)[-3:]
    copy_demo_snapshots(demo_history, database_url, days)
    high = float(np.quantile(demo_training.predictions["lightgbm"].to_numpy(), 0.9))
    config = ProductConfig.model_validate(
        {
            "scoring": {"high_risk": high, "medium_risk": high / 2},
            "alerts": {"threshold": high, "rearm_below": high * 0.6},
        }
    )
    settings = Settings(CHURN_DATABASE_URL=database_url, CHURN_HOME=str(tmp_path))
    api, client = open_api(settings, config)
    with client:
        world = World(api, database_url, days, (demo_training.model, "1", "run-1"))
        world.score(days[0])
        yield world


class World:
    def __init__(self, api, database_url, days, model):
        self.api, self.database_url, self.days, self.model = api, database_url, days, model
        self.headers = api.key(READ, name="crm")

    def score(self, day, model=None, now=NOW):
        engine = make_engine(self.database_url)
        config = self.api.client.app.state.config
        try:
            return score_day(engine, self.api.settings, config, as_of=day, now=now, model=model or self.model)
        finally:
            engine.dispose()

    def get(self, path, **params):
        return self.api.client.get(path, params=params, headers=self.headers)

    def rows(self):
        with self.api.engine.connect() as connection:
            return connection.execute(select(risk_scores)).all()

    def sync(self, limit=50, **filters):
        """Page the change feed to its end; every row seen, in order."""
        seen, cursor = [], None
        while True:
            params = {"limit": limit, **filters, **({"cursor": cursor} if cursor else {})}
            page = self.get("/v1/risk-scores", **params).json()
            seen += page["changes"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return seen, cursor


def a_customer(world, tier):
    return next(r for r in sorted(world.rows(), key=lambda r: -r.risk) if r.tier == tier)


# --- One customer's latest score ---


def test_latest_risk_says_tier_model_times_freshness_and_the_stored_drivers(world):
    day = world.days[1]
    last_login = datetime.combine(day, time.min, tzinfo=UTC) - timedelta(hours=36)
    with world.api.engine.begin() as connection:
        customer = connection.execute(select(customers.c.customer_id)).scalars().first()
        connection.execute(
            usage_events.insert().values(
                event_id="E-1",
                customer_id=customer,
                event_type="login",
                occurred_at=last_login,
                quantity=1.0,
                ingested_at=NOW,
                updated_at=NOW,
            )
        )
    world.score(day)
    high = next(r for r in world.rows() if r.tier == "high" and r.as_of == day)

    body = world.get(f"/v1/customers/{high.customer_id}/risk").json()

    assert body["as_of"] == world.days[1].isoformat() and body["risk"] == pytest.approx(high.risk)
    assert body["tier"] == "high" and body["model_version"] == "1"
    assert body["scored_at"] == NOW.isoformat().replace("+00:00", "Z")
    assert body["drivers_source"] == "stored" and body["drivers"] == high.drivers
    assert body["drivers"]["raising"][0]["sentence"]
    freshness = {f["source"]: f for f in body["freshness"]}
    assert set(freshness) == {"events", "tickets", "surveys", "subscriptions"}
    assert freshness["events"] == {
        "source": "events",
        "newest": last_login.isoformat().replace("+00:00", "Z"),
        "age_days": 1.5,
        "limit_days": 3,
        "stale": False,
    }
    assert freshness["tickets"] == {
        "source": "tickets",
        "newest": None,
        "age_days": None,
        "limit_days": None,
        "stale": False,
    }


def test_the_freshness_shown_is_what_the_scoring_saw_not_rows_imported_since(world):
    """A score comes with the freshness of the data it was made on, read from its scoring run."""
    day = world.days[1]
    start = datetime.combine(day, time.min, tzinfo=UTC)
    with world.api.engine.begin() as connection:
        customer = connection.execute(select(customers.c.customer_id)).scalars().first()

    def add_login(event_id, at):
        with world.api.engine.begin() as connection:
            connection.execute(
                usage_events.insert().values(
                    event_id=event_id,
                    customer_id=customer,
                    event_type="login",
                    occurred_at=at,
                    quantity=1.0,
                    ingested_at=NOW,
                    updated_at=NOW,
                )
            )

    add_login("E-1", start - timedelta(hours=36))
    world.score(day)
    add_login("E-2", start - timedelta(hours=1))  # a late import of that day, after the scoring

    body = world.get(f"/v1/customers/{customer}/risk").json()

    events = next(f for f in body["freshness"] if f["source"] == "events")
    assert events["age_days"] == 1.5 and events["newest"] == (
        start - timedelta(hours=36)
    ).isoformat().replace("+00:00", "Z")


def test_drivers_that_were_not_stored_are_unavailable_without_a_champion_and_say_so(world):
    low = a_customer(world, "low")

    response = world.get(f"/v1/customers/{low.customer_id}/risk")

    assert response.status_code == 200
    body = response.json()
    assert body["drivers"] is None and body["drivers_source"] == "unavailable"
    assert "no champion model" in body["drivers_note"]


@pytest.mark.slow
def test_drivers_that_were_not_stored_are_computed_by_the_champion_which_makes_the_api_ready(
    world, demo_training, demo_dataset
):
    from training.registry import promote
    from training.tracking import log_training_run

    logged = log_training_run(
        world.api.settings,
        demo_training,
        demo_dataset,
        ProductConfig(),
        report_html="",
        figures={},
        tuned=False,
    )
    promote(world.api.settings, logged.version, ProductConfig().promotion)
    low = a_customer(world, "low")

    first = world.get(f"/v1/customers/{low.customer_id}/risk").json()
    again = world.get(f"/v1/customers/{low.customer_id}/risk").json()

    assert logged.version == "1" and first["drivers_source"] == "computed"
    assert first["drivers"]["lowering"] and all(d["sentence"] for d in first["drivers"]["lowering"])
    assert all(d["direction"] == "lowers risk" for d in first["drivers"]["lowering"])
    assert again["drivers"] == first["drivers"]
    # The same champion, loaded once, makes the API ready.
    assert world.api.client.get("/readyz").json() == {"status": "ready", "model_version": "1"}


def test_an_unknown_customer_and_one_never_scored_are_404s_that_say_which(world):
    with world.api.engine.begin() as connection:
        connection.execute(
            customers.insert().values(customer_id="NEW-1", attributes={}, ingested_at=NOW, updated_at=NOW)
        )

    unknown = world.get("/v1/customers/NOPE/risk")
    unscored = world.get("/v1/customers/NEW-1/risk")

    assert unknown.status_code == 404
    assert unknown.json() == {"error": {"status": 404, "message": "customer 'NOPE' is not known"}}
    assert unscored.status_code == 404
    assert "customer 'NEW-1' has no risk score yet" in unscored.json()["error"]["message"]


# --- History ---


def test_history_lists_every_scored_day_oldest_first_within_from_and_to(world):
    world.score(world.days[2])
    world.score(world.days[1])
    customer = a_customer(world, "high").customer_id
    path = f"/v1/customers/{customer}/risk/history"

    everything = world.get(path).json()
    later = world.get(path, **{"from": world.days[1].isoformat()}).json()
    middle = world.get(path, **{"from": world.days[1].isoformat(), "to": world.days[1].isoformat()}).json()
    first_page = world.get(path, limit=2).json()

    assert [d["as_of"] for d in everything["days"]] == [d.isoformat() for d in world.days]
    assert everything["has_more"] is False and everything["next_from"] is None
    assert [d["as_of"] for d in later["days"]] == [d.isoformat() for d in world.days[1:]]
    assert [d["as_of"] for d in middle["days"]] == [world.days[1].isoformat()]
    assert len(first_page["days"]) == 2 and first_page["has_more"] is True
    assert first_page["next_from"] == (world.days[1] + timedelta(days=1)).isoformat()
    assert world.get("/v1/customers/NOPE/risk/history").status_code == 404


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "2026-02-30"}, "query.from"),
        ({"to": "yesterday"}, "query.to"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 5001}, "query.limit"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "query.from"),
    ],
)
def test_history_with_a_bad_parameter_is_a_422_naming_it(world, params, named):
    response = world.get(f"/v1/customers/{a_customer(world, 'low').customer_id}/risk/history", **params)

    assert response.status_code == 422
    assert any(problem.startswith(named) for problem in response.json()["error"]["problems"])


# --- The change feed ---


def test_a_sync_paging_to_the_end_sees_every_score_once_in_change_order(world):
    seen, _ = world.sync(limit=37)

    keys = [(row["customer_id"], row["as_of"]) for row in seen]
    assert len(keys) == len(set(keys)) == len(world.rows()) > 100
    assert [row["change_id"] for row in seen] == sorted(row["change_id"] for row in seen)
    assert {row["as_of"] for row in seen} == {world.days[0].isoformat()}


def test_a_sync_sees_every_change_exactly_once_when_a_new_day_is_scored_between_pages(world):
    first = world.get("/v1/risk-scores", limit=40).json()
    world.score(world.days[1])
    rest, _ = world.sync(limit=40, cursor=first["next_cursor"])

    keys = [(row["customer_id"], row["as_of"]) for row in first["changes"] + rest]
    stored = {(row.customer_id, row.as_of.isoformat()) for row in world.rows()}
    assert len(keys) == len(set(keys)) and set(keys) == stored
    assert {row["as_of"] for row in rest} == {world.days[0].isoformat(), world.days[1].isoformat()}


def test_a_sync_sees_every_change_exactly_once_while_a_scoring_of_a_new_day_runs(world):
    first = world.get("/v1/risk-scores", limit=20).json()
    scoring = threading.Thread(target=world.score, args=(world.days[1],))
    scoring.start()
    seen, cursor = list(first["changes"]), first["next_cursor"]
    pages = 1
    while True:
        # Whether the scoring had finished before this page was read: only then is "no more" the end.
        finished = not scoring.is_alive()
        page = world.get("/v1/risk-scores", limit=20, cursor=cursor).json()
        seen += page["changes"]
        cursor, pages = page["next_cursor"], pages + 1
        if not page["has_more"] and finished:
            break
    scoring.join()
    rest = world.get("/v1/risk-scores", cursor=cursor).json()

    keys = [(row["customer_id"], row["as_of"]) for row in seen]
    stored = {(row.customer_id, row.as_of.isoformat()) for row in world.rows()}
    assert len(keys) == len(set(keys)) and set(keys) == stored
    assert {row["as_of"] for row in seen} == {world.days[0].isoformat(), world.days[1].isoformat()}
    assert rest["changes"] == [] and rest["has_more"] is False and rest["next_cursor"] == cursor
    assert pages > 2


def test_a_rerun_that_changes_nothing_adds_nothing_and_a_rescored_day_comes_again(world):
    _, cursor = world.sync()

    world.score(world.days[0], now=NOW + timedelta(hours=1))
    after_rerun = world.get("/v1/risk-scores", cursor=cursor).json()
    world.score(world.days[0], model=(world.model[0], "2", "run-2"), now=NOW + timedelta(hours=2))
    after_new_model, _ = world.sync(limit=100, cursor=cursor)

    assert after_rerun["changes"] == [] and after_rerun["next_cursor"] == cursor
    assert len(after_new_model) == len(world.rows())
    assert {row["model_version"] for row in after_new_model} == {"2"}


def test_feed_filters_by_tier_risk_segment_owner_and_update_time(world):
    rows = {row.customer_id: row for row in world.rows()}
    with world.api.engine.connect() as connection:
        accounts = {row.customer_id: row for row in connection.execute(select(customers))}
    segment = next(a.segment for a in accounts.values() if a.segment)
    owner = next(a.owner_email for a in accounts.values() if a.owner_email)
    median = sorted(r.risk for r in rows.values())[len(rows) // 2]

    def ids(**filters):
        seen, _ = world.sync(limit=5000, **filters)
        return {row["customer_id"] for row in seen}

    assert ids(tier=["high", "medium"]) == {c for c, r in rows.items() if r.tier in ("high", "medium")}
    assert ids(min_risk=median) == {c for c, r in rows.items() if r.risk >= median}
    assert ids(segment=segment) == {c for c in rows if accounts[c].segment == segment}
    assert ids(owner=owner.upper()) == {c for c in rows if accounts[c].owner_email == owner}
    assert ids(updated_since=NOW.isoformat()) == set(rows)
    assert ids(updated_since=(NOW + timedelta(seconds=1)).isoformat().replace("+00:00", "")) == set()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"cursor": "eyJ2IjoxLCJhZnRlciI6LTF9"}, "query.cursor"),  # {"v":1,"after":-1}
        ({"tier": "critical"}, "query.tier"),
        ({"min_risk": 1.5}, "query.min_risk"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 5001}, "query.limit"),
        ({"updated_since": "2026-06-01T25:00"}, "query.updated_since"),
        ({"owner": "not an e-mail"}, "query.owner"),
        ({"format": "xml"}, "query.format"),
    ],
)
def test_feed_with_a_bad_parameter_is_a_422_naming_it(world, params, named):
    response = world.get("/v1/risk-scores", **params)

    assert response.status_code == 422
    assert any(problem.startswith(named) for problem in response.json()["error"]["problems"])


def test_the_csv_export_is_the_same_page_with_the_cursor_in_a_header(world):
    page = world.get("/v1/risk-scores", limit=30).json()

    exported = world.get("/v1/risk-scores.csv", limit=30)
    negotiated = world.api.client.get(
        "/v1/risk-scores", params={"limit": 30}, headers={**world.headers, "Accept": "text/csv"}
    )
    asked = world.get("/v1/risk-scores", limit=30, format="csv")
    following = world.get("/v1/risk-scores.csv", limit=30, cursor=exported.headers["X-Next-Cursor"])

    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert (
        exported.headers["X-Next-Cursor"] == page["next_cursor"] and exported.headers["X-Has-More"] == "true"
    )
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert [line["customer_id"] for line in lines] == [row["customer_id"] for row in page["changes"]]
    assert float(lines[0]["risk"]) == pytest.approx(page["changes"][0]["risk"])
    assert lines[0]["as_of"] == world.days[0].isoformat()
    assert negotiated.text == asked.text == exported.text
    following_ids = [line["change_id"] for line in csv.DictReader(io.StringIO(following.text))]
    assert int(following_ids[0]) > page["changes"][-1]["change_id"]
    bad = world.get("/v1/risk-scores.csv", cursor="%%%")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/json"


# --- Auth ---


@pytest.mark.parametrize(
    "path",
    ["/v1/customers/C1/risk", "/v1/customers/C1/risk/history", "/v1/risk-scores", "/v1/risk-scores.csv"],
)
def test_every_risk_route_needs_a_key_with_read_scores(api, path):
    missing = api.client.get(path)
    wrong = api.client.get(path, headers=api.key("write:ingest"))
    right = api.client.get(path, headers=api.key(READ))

    assert missing.status_code == 401 and "an API key is required" in missing.json()["error"]["message"]
    assert wrong.status_code == 403 and "lacks the scope read:scores" in wrong.json()["error"]["message"]
    assert right.status_code in (200, 404)
    assert right.status_code == (404 if "customers" in path else 200)


# --- The likely reason ---


def test_without_a_likely_reason_model_the_risk_says_why_there_is_none(world):
    low = a_customer(world, "low")

    body = world.get(f"/v1/customers/{low.customer_id}/risk").json()

    assert body["likely_reason"] is None
    assert "churn reasons likely-train" in body["likely_reason_note"]


def test_reads_arriving_together_ask_mlflow_for_a_likely_reason_model_once(world, monkeypatch):
    """Each look asks MLflow for most of a second: many at once backed every read up by seconds."""
    from serving.api import risk

    looks = []

    def counted(settings):
        looks.append(threading.get_ident())
        return real(settings)

    real = risk.load_likely_reason
    monkeypatch.setattr(risk, "load_likely_reason", counted)
    low = a_customer(world, "low")
    answers = []

    def read():
        answers.append(world.get(f"/v1/customers/{low.customer_id}/risk").status_code)

    readers = [threading.Thread(target=read) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()

    assert answers == [200] * 8
    assert len(looks) == 1


@pytest.mark.slow
def test_with_a_likely_reason_model_the_risk_names_the_reason_its_probability_and_play(world, demo_history):
    from training.likely_reason import train_likely_reason

    config = ProductConfig()
    history = make_engine(demo_history)
    try:
        # The demo history is small: learn from every reason at least two churners gave.
        trained = train_likely_reason(world.api.settings, config, history, min_examples=2)
    finally:
        history.dispose()
    high = a_customer(world, "high")

    body = world.get(f"/v1/customers/{high.customer_id}/risk").json()

    reason = body["likely_reason"]
    taxonomy = config.reasons.taxonomy
    assert reason["code"] in trained.model.codes and reason["label"] == taxonomy[reason["code"]].label
    assert reason["play"] == taxonomy[reason["code"]].play and 0 < reason["probability"] <= 1
    assert reason["low_confidence"] == trained.model.low_confidence and body["likely_reason_note"] is None
