"""The scoring job: a risk history per customer and day, alerts queued with it, and re-runs that change nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from churn.config import JumpRule, ProductConfig
from churn.db import make_engine
from churn.settings import Settings
from churn.tables import alert_state, alerts, risk_scores, scoring_runs
from features.snapshot import load_snapshots
from serving.dispatch import discard_held
from serving.outbox import AlertKind, AlertState
from serving.policy import Decision
from serving.scoring import ScoringError, score_day
from tests.scoring_data import copy_demo_snapshots, snapshot_days_of

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scored_world(database_url, demo_history, demo_training):
    """The demo's last three snapshot days in a fresh database, and a policy that alerts the riskiest tenth."""
    days = snapshot_days_of(demo_history)[-3:]
    copy_demo_snapshots(demo_history, database_url, days)
    engine = make_engine(database_url)
    model = (demo_training.model, "1", "run-1")
    risk = demo_training.predictions["lightgbm"].to_numpy()
    threshold = float(np.quantile(risk, 0.9))
    config = ProductConfig.model_validate(
        {
            "scoring": {"high_risk": threshold, "medium_risk": threshold / 2},
            "alerts": {
                "threshold": threshold,
                "rearm_below": threshold * 0.6,
                "stale_after_days": {},
                "daily_cap_per_owner": 50,
                "jump": None,
            },
        }
    )
    yield engine, days, model, config
    engine.dispose()


def score(engine, config, model, day):
    return score_day(engine, Settings(), config, as_of=day, now=NOW, model=model)


def table_rows(engine, table):
    with engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(select(table)))


def test_scoring_stores_every_active_customer_with_tier_model_and_snapshot_time(scored_world):
    engine, days, model, config = scored_world

    summary = score(engine, config, model, days[-1])

    with engine.connect() as connection:
        rows = connection.execute(select(risk_scores).where(risk_scores.c.as_of == days[-1])).all()
    assert len(rows) == summary.customers > 100
    assert {r.model_version for r in rows} == {"1"}
    assert all(0 < r.risk < 1 for r in rows)
    for r in rows:
        expected = (
            "high"
            if r.risk >= config.scoring.high_risk
            else "medium"
            if r.risk >= config.scoring.medium_risk
            else "low"
        )
        assert r.tier == expected
        # Drivers are kept for those a rep will read about, and only them.
        assert (r.drivers is not None) == (
            r.tier == "high" or r.customer_id in {a["customer_id"] for a in summary.alerted}
        )
    high = next(r for r in rows if r.tier == "high")
    assert high.drivers["raising"][0]["sentence"]
    assert summary.tiers["high"] == sum(r.tier == "high" for r in rows)


def test_re_running_the_same_scoring_changes_nothing(scored_world):
    engine, days, model, config = scored_world
    for day in days:
        score(engine, config, model, day)
    before = {
        table.name: table_rows(engine, table) for table in (risk_scores, alert_state, alerts, scoring_runs)
    }

    again = score(engine, config, model, days[-1])

    assert again.changed == 0 and again.alerted == []
    assert {
        table.name: table_rows(engine, table) for table in (risk_scores, alert_state, alerts, scoring_runs)
    } == before


def test_customers_crossing_the_threshold_are_queued_once_with_their_change_and_its_drivers(scored_world):
    engine, days, model, config = scored_world
    first = score(engine, config, model, days[0])
    second = score(engine, config, model, days[1])

    assert first.alerted, "the riskiest tenth of the first day alert"
    with engine.connect() as connection:
        queued = connection.execute(select(alerts).where(alerts.c.as_of == days[1])).all()
        first_ids = {
            row.customer_id
            for row in connection.execute(select(alerts.c.customer_id).where(alerts.c.as_of == days[0]))
        }
    assert len(queued) == len(second.alerted)
    # Nobody who alerted on the first day alerts again on the next (hysteresis and cooldown).
    assert not first_ids & {row.customer_id for row in queued}
    for row in queued:
        assert row.state == AlertState.PENDING and row.risk >= config.alerts.threshold
        message = row.message
        assert message["previous_risk"] is not None and message["previous_as_of"] == days[0].isoformat()
        assert message["name"] and message["owner_email"]
        for driver in message["change_drivers"]:
            assert driver["effect"] > 0 and driver["sentence"] and driver["previous_sentence"]
    assert any(row.message["change_drivers"] for row in queued)


def test_an_owner_over_the_daily_cap_gets_one_digest_with_the_rest(scored_world):
    engine, days, model, config = scored_world
    capped = config.model_copy(update={"alerts": config.alerts.model_copy(update={"daily_cap_per_owner": 1})})

    score(engine, capped, model, days[0])

    with engine.connect() as connection:
        rows = connection.execute(select(alerts)).all()
    by_owner: dict[str, list] = {}
    for row in rows:
        by_owner.setdefault(row.owner_email, []).append(row)
    for owner, owned in by_owner.items():
        on_their_own = [r for r in owned if r.kind in ("threshold", "jump") and r.state == AlertState.PENDING]
        assert len(on_their_own) <= 1, owner
        digests = [r for r in owned if r.kind == "digest"]
        carried = [r for r in owned if r.state == AlertState.DIGESTED]
        assert len(digests) == (1 if carried else 0)
        if carried:
            assert {r.digest_id for r in carried} == {digests[0].alert_id}
            listed = {entry["alert_id"] for entry in digests[0].message["customers"]}
            assert listed == {r.alert_id for r in carried}
            assert min(r.risk for r in on_their_own) >= max(r.risk for r in carried)


def test_a_stale_source_holds_the_alerts_and_names_the_source(database_url, demo_history, demo_training):
    days = snapshot_days_of(demo_history)[-1:]
    copy_demo_snapshots(demo_history, database_url, days, events=False)
    engine = make_engine(database_url)
    config = ProductConfig.model_validate(
        {"alerts": {"threshold": 0.01, "rearm_below": 0.005, "stale_after_days": {"events": 3}}}
    )

    summary = score(engine, config, (demo_training.model, "1", "run-1"), days[0])

    assert [s.source for s in summary.stale] == ["events"]
    with engine.connect() as connection:
        states = {
            row.state for row in connection.execute(select(alerts.c.state).where(alerts.c.kind != "digest"))
        }
        reasons = {
            row.state_reason
            for row in connection.execute(select(alerts.c.state_reason).where(alerts.c.state == "held"))
        }
    assert states <= {AlertState.HELD, AlertState.DIGESTED} and AlertState.HELD in states
    assert reasons == {"stale data: events: no rows at all"}
    engine.dispose()


def test_scoring_a_day_without_a_snapshot_is_a_clear_error_and_writes_nothing(scored_world):
    engine, days, model, config = scored_world
    missing = days[-1].replace(day=1) if days[-1].day != 1 else days[-1].replace(day=2)

    with pytest.raises(
        ScoringError,
        match=f"no feature snapshot as of {missing}: run `churn features build --as-of {missing}`",
    ):
        score(engine, config, model, missing)

    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(risk_scores)).scalar() == 0


@pytest.mark.slow
def test_a_scoring_killed_at_any_moment_leaves_all_of_it_or_none_and_the_re_run_completes_it(
    scored_world, tmp_path
):
    engine, days, model, config = scored_world
    model[0].save(tmp_path / "model")
    command = [sys.executable, "-m", "tests.scoring_child", engine.url.render_as_string(hide_password=False)]
    command += [str(tmp_path / "model"), days[0].isoformat(), config.model_dump_json()]
    interrupted = 0
    # Doubling delays: the first kills land before the commit whatever the machine's speed, the later
    # ones inside the work, until one run gets to finish.
    for delay in [0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12]:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert child.stdout.readline().strip() == "scoring"  # imports done: the scoring itself starts now
        time.sleep(delay)
        child.kill()
        child.wait()
        with engine.connect() as connection:
            runs = connection.execute(select(func.count()).select_from(scoring_runs)).scalar()
            scores = connection.execute(select(func.count()).select_from(risk_scores)).scalar()
            queued = connection.execute(select(func.count()).select_from(alerts)).scalar()
        if runs == 0:
            interrupted += 1
            assert (scores, queued) == (0, 0), f"killed after {delay:.2f}s: a half-written scoring"
        else:
            break
    assert interrupted >= 2, "no kill landed before the scoring committed"

    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    assert "done" in finished.stdout
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(scoring_runs)).scalar() == 1
        risks = [row.risk for row in connection.execute(select(risk_scores.c.risk))]
        keys = [row.dedupe_key for row in connection.execute(select(alerts.c.dedupe_key))]
    # Every customer at or above the threshold on this first scored day alerted, once.
    assert len(keys) == len(set(keys)) == sum(r >= config.alerts.threshold for r in risks) > 0


def test_score_without_a_champion_or_for_a_future_day_is_one_clear_line_and_writes_nothing(
    run_cli, env, database_url, demo_history
):
    day = snapshot_days_of(demo_history)[-1]
    copy_demo_snapshots(demo_history, database_url, [day])

    no_champion = run_cli("score", "--as-of", day, CHURN_DATABASE_URL=database_url)
    future = run_cli("score", "--as-of", "2099-01-01", CHURN_DATABASE_URL=database_url)
    bad_day = run_cli("score", "--as-of", "01/02/2026", CHURN_DATABASE_URL=database_url)

    assert no_champion.exit_code == 2
    assert "error: no champion model yet: run `churn train --promote`" in no_champion.stderr
    assert future.exit_code == 2 and "--as-of 2099-01-01: is in the future" in future.stderr
    assert bad_day.exit_code == 2 and "Invalid value for '--as-of'" in " ".join(bad_day.stderr.split())
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(risk_scores)).scalar() == 0
    engine.dispose()


def test_discarded_held_alerts_let_their_customers_alert_at_the_next_scoring(
    database_url, demo_history, demo_training
):
    days = snapshot_days_of(demo_history)[-2:]
    copy_demo_snapshots(demo_history, database_url, days, events=False)
    engine = make_engine(database_url)
    model = (demo_training.model, "1", "run-1")
    policy = {"threshold": 0.05, "rearm_below": 0.01, "jump": None, "daily_cap_per_owner": 500}
    stale = ProductConfig.model_validate({"alerts": {**policy, "stale_after_days": {"events": 3}}})
    fresh = ProductConfig.model_validate({"alerts": {**policy, "stale_after_days": {}}})

    held = {a["customer_id"] for a in score(engine, stale, model, days[0]).alerted if a["state"] == "held"}
    discard_held(engine, NOW)
    again = {a["customer_id"] for a in score(engine, fresh, model, days[1]).alerted}

    with engine.connect() as connection:
        still_high = {
            row.customer_id
            for row in connection.execute(
                select(risk_scores.c.customer_id).where(
                    risk_scores.c.as_of == days[1], risk_scores.c.risk >= 0.05
                )
            )
        }
    assert held and (held & still_high) and (held & still_high) <= again
    engine.dispose()


def test_a_new_champion_is_not_compared_with_the_old_models_risks(scored_world):
    engine, days, model, config = scored_world
    jumpy = config.model_copy(
        update={"alerts": config.alerts.model_copy(update={"jump": JumpRule(rise=0.01, within_days=60)})}
    )
    score(engine, jumpy, model, days[0])
    same_model = score(engine, jumpy, model, days[1])
    new_model = score(engine, jumpy, (model[0], "2", "run-2"), days[2])

    assert any(a["kind"] == "jump" for a in same_model.alerted)
    assert new_model.alerted and all(a["kind"] == "threshold" for a in new_model.alerted)
    assert all(a["previous_risk"] is None for a in new_model.alerted)


def test_a_later_run_of_the_day_adds_to_the_owners_digest_or_starts_a_new_one(engine):
    from serving.alerting import CustomerFacts, plan_alerts
    from serving.policy import decide_day
    from serving.score_store import queue_plan

    policy = ProductConfig().alerts.model_copy(update={"daily_cap_per_owner": 1, "stale_after_days": {}})
    day = NOW.date()

    def run(customers: list[str]):
        facts = {
            c: CustomerFacts(c, f"Company {c}", "SMB", "ana@x.example", "high", 100.0, 30.0)
            for c in customers
        }
        decisions, _ = decide_day(day, {c: 0.9 - i / 100 for i, c in enumerate(customers)}, {}, policy)
        sent = 0 if customers[0] == "A" else 1
        plan = plan_alerts(
            decisions,
            facts,
            as_of=day,
            model_version="1",
            policy=policy,
            freshness=[],
            already_sent={"ana@x.example": sent},
        )
        with engine.begin() as connection:
            queue_plan(connection, plan, now=NOW)

    def digests():
        with engine.connect() as connection:
            rows = connection.execute(
                select(alerts).where(alerts.c.kind == "digest").order_by(alerts.c.alert_id)
            ).all()
        return [(row.state, sorted(e["customer_id"] for e in row.message["customers"])) for row in rows]

    run(["A", "B", "C"])
    run(["D", "E"])
    assert digests() == [("pending", ["B", "C", "D", "E"])]
    with engine.begin() as connection:
        connection.execute(alerts.update().where(alerts.c.kind == "digest").values(state="sent"))
    run(["F", "G"])
    assert digests() == [("sent", ["B", "C", "D", "E"]), ("pending", ["F", "G"])]


def _likely_reason_model(demo_history, config):
    """A likely-reason model fitted on the demo's snapshot rows, with reasons that follow their tickets."""
    from features.snapshot import load_snapshots
    from training.likely_reason import fit_likely_reason

    source = make_engine(demo_history)
    with source.connect() as connection:
        rows = load_snapshots(connection, snapshot_days_of(demo_history)[:6])
    source.dispose()
    rows = rows.sort_values("as_of", kind="stable").reset_index(drop=True).copy()
    tickets = rows["tickets_opened_90d"].fillna(0) if "tickets_opened_90d" in rows else rows.index % 3
    rows = rows.assign(
        reason_code=np.where(np.asarray(tickets) > 0, "support", "price"),
        churned_at=pd.to_datetime(rows["as_of"]).dt.tz_localize("UTC"),
    )
    return fit_likely_reason(rows, config)


def test_alerts_carry_the_likely_reason_and_its_play_only_when_there_is_a_model(scored_world, demo_history):
    from rich.console import Console

    from serving.alert_facts import gather_facts
    from serving.alerting import plan_alerts
    from serving.message import console_rendering

    engine, days, model, config = scored_world
    summary = score(engine, config, model, days[0])
    with engine.connect() as connection:
        queued = connection.execute(select(alerts).where(alerts.c.as_of == days[0])).all()
    assert summary.alerted and all(
        row.message["likely_reason"] is None and row.message["suggested_play"] is None for row in queued
    )

    likely = _likely_reason_model(demo_history, config)
    with engine.connect() as connection:
        features = load_snapshots(connection, [days[0]])
    decisions = [
        Decision(row.customer_id, days[0], AlertKind(row.kind), row.risk, None)
        for row in queued
        if row.customer_id
    ]
    scores = features[["customer_id"]].assign(tier="high")
    with engine.connect() as connection:
        facts = gather_facts(
            connection, model[0], features, scores, pd.DataFrame(), {}, decisions, days[0], config, likely
        )
    plan = plan_alerts(
        decisions,
        facts,
        as_of=days[0],
        model_version="1",
        policy=config.alerts,
        freshness=[],
        already_sent={},
    )

    messages = [row["message"] for row in plan.individual]
    assert messages and len(messages) == len(decisions)
    taxonomy = config.reasons.taxonomy
    for message in messages:
        reason = message["likely_reason"]
        assert reason["code"] in {"support", "price"} and reason["label"] == taxonomy[reason["code"]].label
        assert 0.5 <= reason["probability"] <= 1
        assert message["suggested_play"] == taxonomy[reason["code"]].play
    shown = Console(width=200, record=True)
    shown.print(console_rendering({"kind": messages[0]["kind"], "message": messages[0]}))
    text = shown.export_text()
    assert "Likely reason" in text and "Suggested play" in text
