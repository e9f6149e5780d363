"""Scoring speed on PostgreSQL: ``score_day`` for 100,000 customers beside a bare ``booster.predict``.

    python -m benchmarks.scoring [--customers 100000] [--threads 1] [--keep-database]

A small demo company (300 customers, 15 months, fortnightly snapshots) is imported into a throwaway
database and a model trained on it (``training.backtest.train``, no MLflow). Its last snapshot is the
template for a large one: every new customer copies a random demo row, numbers jittered, so the risk
distribution is the demo's. Two consecutive days are written straight into ``customers``,
``feature_snapshots`` and ``snapshot_runs``; on the second, most values move a little and 2% of the
customers take the features of one of the riskiest demo rows, so the policy, jumps, change drivers and
digests do real work. The demo model's risks are low (its highest is about 0.2), so the alert
threshold is the first day's 99.7th risk percentile, and the tiers, re-arm level and jump rise keep
their default ratios to it: a few hundred alerts per 100,000 customers on each day.

Three scorings, each in a fresh process (its peak memory its own): day 1 (no history), day 2 (a
previous scoring), and day 2 again, which must change nothing (checked with a fingerprint of every
scoring table). Baselines, measured in the same run on the same day-2 snapshot: a bare
``booster.predict`` of the model's own matrix (best of 3), and as floors for the unavoidable I/O the
fetch of the day's feature rows (JSON decoded, best of 2) and ``COPY`` of the scores into a table
indexed like ``risk_scores``.

The whole run uses a copy of the code taken at its start (the working tree may change during a run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select, text

from benchmarks.features import scratch_database, server_settings
from benchmarks.ingest_child import peak_memory_mb
from benchmarks.provenance import run_frozen
from churn.config import AlertsConfig, ProductConfig, ScoringConfig, TrainingConfig
from churn.db import make_engine
from churn.demo import generate_demo_company
from churn.demo_pipeline import ingest_demo
from churn.ingest import IngestOptions
from churn.migrate import upgrade_database
from churn.settings import Settings
from churn.tables import customers, snapshot_runs
from features.snapshot import build_snapshots, config_digest, load_snapshots, snapshot_days
from training.dataset import snapshot_dataset
from training.model import ChurnModel

SEED = 1
DEMO_CUSTOMERS, DEMO_MONTHS, DEMO_SEED = 300, 15, 3
DEMO_END = date(2026, 6, 1)
IMPORTED_AT = datetime(2026, 6, 1, 1, tzinfo=UTC)
HISTORY = (date(2025, 6, 2), date(2026, 5, 25), 14)  # first, last, step of the demo's snapshots
DAY_1, DAY_2 = date(2026, 6, 1), date(2026, 6, 2)
ALERT_QUANTILE = 0.997  # the alert threshold: this quantile of the first day's risk
DECLINING = 0.02  # share of customers taking a high-risk demo row's features on day 2
RISKY_QUANTILE = 0.95  # ... from the template rows at or above this quantile of its risk
JITTER_DAY_1, JITTER_DAY_2 = 0.15, 0.03  # log-normal spread of every number against the template
ACCOUNTS_PER_OWNER = 1_000
PREDICT_REPEATS, READ_REPEATS = 3, 2
GOAL = 10.0  # scoring within 10x of the bare predict plus the read and write floors


# --- the company, the model and the synthetic snapshots ---------------------------------------------


def build_demo(engine: Engine, folder: Path, threads: int) -> tuple[ChurnModel, float]:
    """Import and snapshot the small demo company, train on it; the model and the seconds it took."""
    started = time.perf_counter()
    generate_demo_company(
        out_dir=folder, customers=DEMO_CUSTOMERS, months=DEMO_MONTHS, seed=DEMO_SEED, end=DEMO_END
    )
    ingest_demo(engine, folder, options=IngestOptions(), now=IMPORTED_AT)
    config = ProductConfig(training=TrainingConfig(threads=threads))
    build_snapshots(engine, snapshot_days(*HISTORY), config.features, now=IMPORTED_AT)
    with engine.connect() as connection:
        dataset = snapshot_dataset(connection, config.features, config.labels)
    from training.backtest import train  # LightGBM starts its threads on import of the fit

    model = train(dataset, config).model
    return model, time.perf_counter() - started


@dataclass(frozen=True)
class Template:
    """The demo's last snapshot: the rows every synthetic customer copies."""

    names: list[str]
    numbers: list[str]  # the numeric columns, jittered
    frame: pd.DataFrame  # customer_id plus every feature
    segments: np.ndarray  # each template row's customer segment


def read_template(engine: Engine) -> Template:
    last = snapshot_days(*HISTORY)[-1]
    with engine.connect() as connection:
        names = connection.execute(
            select(snapshot_runs.c.feature_names).where(snapshot_runs.c.as_of == last)
        ).scalar_one()
        frame = load_snapshots(connection, [last]).drop(columns="as_of")
        segment = dict(connection.execute(select(customers.c.customer_id, customers.c.segment)).all())
    numbers = [n for n in names if pd.api.types.is_numeric_dtype(frame[n])]
    return Template(names, numbers, frame, frame["customer_id"].map(segment).to_numpy())


def jittered(template: Template, rows: np.ndarray, spread: float, rng: np.random.Generator) -> pd.DataFrame:
    """Template ``rows`` with every number scaled by log-normal noise; whole numbers stay whole."""
    frame = template.frame.iloc[rows].reset_index(drop=True)
    values = frame[template.numbers].to_numpy(dtype=float)
    return frame.assign(**dict(zip(template.numbers, _noisy(values, spread, rng).T, strict=True)))


def _noisy(values: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    whole = np.isfinite(values) & (values == np.round(values))
    moved = values * np.exp(rng.normal(0.0, spread, values.shape))
    return np.where(whole, np.round(moved), np.round(moved, 4))


def synthetic_days(
    template: Template, model: ChurnModel, customers_n: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, float]:
    """Day 1 and day 2 frames (fresh customer ids), each template row's segment, the alert threshold."""
    rows = rng.integers(0, len(template.frame), customers_n)
    ids = np.array([f"S{i:07d}" for i in range(customers_n)], dtype=object)
    day_1 = jittered(template, rows, JITTER_DAY_1, rng)
    day_1["customer_id"] = ids
    threshold = float(np.quantile(model.predict_risk(day_1), ALERT_QUANTILE))

    template_risk = model.predict_risk(template.frame)
    risky = np.flatnonzero(template_risk >= np.quantile(template_risk, RISKY_QUANTILE))
    declining = rng.random(customers_n) < DECLINING
    day_2 = day_1.copy()
    moved = day_1[template.numbers].to_numpy(dtype=float)
    day_2[template.numbers] = _noisy(moved, JITTER_DAY_2, rng)
    worse = jittered(template, rng.choice(risky, int(declining.sum())), JITTER_DAY_1, rng)
    for name in template.names:
        day_2.loc[declining, name] = worse[name].to_numpy()
    segments = pd.Series(template.segments[rows], index=ids)
    return day_1, day_2, segments, threshold


def write_company(engine: Engine, day_1: pd.DataFrame, day_2: pd.DataFrame, segments: pd.Series) -> float:
    """COPY the customers and both days' snapshots into the database; the seconds it took."""
    started = time.perf_counter()
    owners = max(1, len(segments) // ACCOUNTS_PER_OWNER)
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            columns = (
                "customer_id, name, segment, owner_email, created_at, attributes, ingested_at, updated_at"
            )
            with cursor.copy(f"COPY customers ({columns}) FROM STDIN") as copy:
                for number, (customer_id, segment) in enumerate(segments.items()):
                    owner = f"csm{number % owners:03d}@example.com"
                    created = IMPORTED_AT - timedelta(days=30 + number % 900)
                    row = (customer_id, f"Account {customer_id}", segment, owner, created, "{}")
                    copy.write_row((*row, IMPORTED_AT, IMPORTED_AT))
            names = [c for c in day_1.columns if c != "customer_id"]
            for day, frame in ((DAY_1, day_1), (DAY_2, day_2)):
                with cursor.copy("COPY feature_snapshots (as_of, customer_id, features) FROM STDIN") as copy:
                    values = frame[names].astype(object).where(frame[names].notna(), None)
                    for customer_id, features in zip(
                        frame["customer_id"], values.to_numpy().tolist(), strict=True
                    ):
                        copy.write_row((day, customer_id, json.dumps(features)))
                cursor.execute(
                    "INSERT INTO snapshot_runs (as_of, built_at, customers, feature_names, config_digest,"
                    " seconds) VALUES (%s, %s, %s, %s, %s, 0)",
                    (
                        day,
                        _at(day, 5),
                        len(frame),
                        json.dumps(names),
                        config_digest(ProductConfig().features),
                    ),
                )
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, day_time(hour), tzinfo=UTC)


def scoring_config(threshold: float, threads: int) -> ProductConfig:
    """The product's defaults scaled to this model's risks: the defaults' ratios to the threshold kept."""
    at = round(threshold, 3)
    defaults = ProductConfig()
    scale = at / defaults.alerts.threshold
    jump = defaults.alerts.jump.model_copy(update={"rise": round(defaults.alerts.jump.rise * scale, 3)})
    return ProductConfig(
        training=TrainingConfig(threads=threads),
        scoring=ScoringConfig(
            high_risk=round(defaults.scoring.high_risk * scale, 3),
            medium_risk=round(defaults.scoring.medium_risk * scale, 3),
        ),
        alerts=AlertsConfig(
            threshold=at, rearm_below=round(defaults.alerts.rearm_below * scale, 3), jump=jump
        ),
    )


# --- children: each measured run in a fresh process ---------------------------------------------------


def score_child(url: str, model_dir: Path, config_file: Path, as_of: date, now: datetime) -> dict[str, Any]:
    """One ``score_day`` with the saved model: its summary and stages."""
    from serving.scoring import score_day

    model = ChurnModel.load(model_dir)
    config = ProductConfig.model_validate_json(config_file.read_text(encoding="utf-8"))
    engine = make_engine(url)
    settings = Settings(database_url=url)  # with a model given, scoring reads no registry
    started = time.perf_counter()
    summary = score_day(engine, settings, config, as_of=as_of, now=now, model=(model, "1", "bench"))
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        **summary.as_dict(),
        "seconds": seconds,
        "stages": summary.stages,
        "explained": _explained(url, as_of),
    }


def _explained(url: str, as_of: date) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT count(*) FROM risk_scores WHERE as_of = :d AND jsonb_typeof(drivers) = 'object'"),
            {"d": as_of},
        ).scalar_one()
    engine.dispose()
    return int(found)


def floors_child(url: str, model_dir: Path, as_of: date) -> dict[str, Any]:
    return scoring_floors(url, ChurnModel.load(model_dir), as_of)


def scoring_floors(url: str, model: ChurnModel, as_of: date) -> dict[str, Any]:
    """The baselines: bare predict of the model's matrix, fetching the day's rows, COPY of the scores."""
    engine = make_engine(url)
    query = text("SELECT customer_id, features FROM feature_snapshots WHERE as_of = :d ORDER BY customer_id")
    with engine.connect() as connection:
        reads = []
        for _ in range(READ_REPEATS):
            started = time.perf_counter()
            rows = connection.execute(query, {"d": as_of}).all()
            reads.append(time.perf_counter() - started)
        frame = load_snapshots(connection, [as_of])
    matrix = model.prepare(frame)
    predicts = []
    for _ in range(PREDICT_REPEATS):
        started = time.perf_counter()
        raw_scores = model.booster.predict(matrix, raw_score=True)
        predicts.append(time.perf_counter() - started)
    write = _copy_scores(engine, frame["customer_id"].tolist(), raw_scores, as_of)
    engine.dispose()
    return {
        "rows": len(rows),
        "read_seconds": min(reads),
        "read_timings": reads,
        "predict_seconds": min(predicts),
        "predict_timings": predicts,
        "write_seconds": write,
        "matrix": list(matrix.shape),
        "json_mb": _json_mb(url, as_of),
    }


def _copy_scores(engine: Engine, ids: list[str], scores: np.ndarray, as_of: date) -> float:
    """COPY one row per customer into a table shaped and indexed like risk_scores (then dropped)."""
    now = _at(as_of, 6)
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS floor_scores")  # left by an interrupted run
            cursor.execute(
                "CREATE TABLE floor_scores (LIKE risk_scores INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
            raw.commit()
            started = time.perf_counter()
            columns = (
                "as_of, customer_id, risk, tier, model_version, snapshot_built_at, scored_at, updated_at,"
                " change_id"
            )
            with cursor.copy(f"COPY floor_scores ({columns}) FROM STDIN") as copy:
                for change_id, (customer_id, score) in enumerate(zip(ids, scores.tolist(), strict=True)):
                    copy.write_row((as_of, customer_id, score, "low", "1", now, now, now, change_id))
            raw.commit()
            seconds = time.perf_counter() - started
            cursor.execute("DROP TABLE floor_scores")
            raw.commit()
    finally:
        raw.close()
    return seconds


def _json_mb(url: str, as_of: date) -> float:
    engine = make_engine(url)
    with engine.connect() as connection:
        size = connection.execute(
            text("SELECT sum(pg_column_size(features)) FROM feature_snapshots WHERE as_of = :d"), {"d": as_of}
        ).scalar_one()
    engine.dispose()
    return float(size) / 2**20


def child(*args: str) -> dict[str, Any]:
    """Run one measured stage in a fresh process; its JSON report with its own peak memory."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scoring", "--child", *args],
        check=True,
        stdout=subprocess.PIPE,  # the report; errors and warnings pass through to our stderr
        text=True,
    )
    return json.loads(result.stdout)


# --- checks -----------------------------------------------------------------------------------------

# Every column a scoring writes, so that "a re-run changes nothing" means not one byte.
FINGERPRINTS = {
    "risk_scores": "as_of, customer_id, risk, tier, model_version, snapshot_built_at, scored_at,"
    " drivers::text, updated_at",
    "alert_state": "customer_id, armed, last_alert_as_of, evaluated_as_of",
    "alerts": "alert_id, dedupe_key, kind, customer_id, as_of, owner_email, channel, risk, state,"
    " state_reason, digest_id, message::text, created_at, updated_at",
    "scoring_runs": "as_of, model_version, snapshot_built_at, scored_at, customers, alerts, held, seconds",
}


def fingerprint(engine: Engine) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of every scoring table's content."""
    found = {}
    with engine.connect() as connection:
        for table, columns in FINGERPRINTS.items():
            order = columns.split(",")[0] if table == "alerts" else "1, 2"
            rows, digest = connection.execute(
                text(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), ''))"
                    f" FROM (SELECT {columns} FROM {table}) AS t"
                )
            ).one()
            found[table] = (int(rows), str(digest))
    return found


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Row:
    stage: str
    seconds: float
    baseline: str = ""
    baseline_seconds: float | None = None
    peak_mb: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.baseline_seconds is None else self.seconds / self.baseline_seconds


@dataclass
class Results:
    table: list[Row]
    scorings: dict[str, dict[str, Any]]
    floors: dict[str, Any]
    notes: list[str]
    goals: list[str]


STAGES = ("read", "predict", "explain", "facts", "write")


def run(customers_n: int, threads: int, *, keep_database: bool) -> Results:
    notes: list[str] = []
    rng = np.random.default_rng(SEED)
    with (
        scratch_database(keep=keep_database) as url,
        tempfile.TemporaryDirectory(prefix="churn-bench-scoring-") as scratch,
    ):
        folder = Path(scratch)
        engine = make_engine(url)
        try:
            upgrade_database(engine)
            print(f"Demo company ({DEMO_CUSTOMERS} customers) and its model ...", file=sys.stderr)
            model, demo_seconds = build_demo(engine, folder / "demo", threads)
            model.save(folder / "model")
            template = read_template(engine)
            print(f"Synthetic snapshots of {customers_n:,} customers ...", file=sys.stderr)
            day_1, day_2, segments, threshold = synthetic_days(template, model, customers_n, rng)
            config = scoring_config(threshold, threads)
            (folder / "config.json").write_text(config.model_dump_json(), encoding="utf-8")
            written = write_company(engine, day_1, day_2, segments)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                started = time.perf_counter()
                connection.execute(text("VACUUM ANALYZE"))
                vacuum = time.perf_counter() - started
            notes.append(
                f"setup, not measured: demo company imported, {len(snapshot_days(*HISTORY))} snapshots and"
                f" the model trained in {demo_seconds:.0f} s; {customers_n:,} customers and two snapshots"
                f" written with COPY in {written:.0f} s; VACUUM ANALYZE {vacuum:.1f} s"
            )
            settings = server_settings(engine)

            print("Baselines: bare predict, fetch, COPY ...", file=sys.stderr)
            model_dir, config_file = str(folder / "model"), str(folder / "config.json")
            floors = child("floors", url, model_dir, DAY_2.isoformat())
            scorings: dict[str, dict[str, Any]] = {}
            prints = []
            for label, day, now in (
                ("day 1", DAY_1, _at(DAY_1, 6)),
                ("day 2", DAY_2, _at(DAY_2, 6)),
                ("day 2 again", DAY_2, _at(DAY_2, 7)),
            ):
                print(f"score_day, {label} ({day}) ...", file=sys.stderr)
                scorings[label] = child(
                    "score", url, model_dir, config_file, day.isoformat(), now.isoformat()
                )
                prints.append(fingerprint(engine))
            with engine.connect() as connection:
                snapshot_mb = (
                    connection.execute(
                        text("SELECT pg_total_relation_size('feature_snapshots')")
                    ).scalar_one()
                    / 2**20
                )
        finally:
            engine.dispose()

    changed_tables = [table for table in FINGERPRINTS if prints[1][table] != prints[2][table]]
    unchanged = not changed_tables
    rerun = scorings["day 2 again"]
    notes[:0] = [
        settings,
        f"customers: {customers_n:,} ({max(1, customers_n // ACCOUNTS_PER_OWNER)} owners,"
        f" {ACCOUNTS_PER_OWNER:,} accounts each); features: {len(template.names)}"
        f" ({len(template.numbers)} numeric); model: {model.params.get('num_boost_round')} rounds,"
        f" trained on the demo's {DEMO_CUSTOMERS} customers",
        f"day-2 snapshot: {floors['json_mb']:,.0f} MB of JSONB"
        f" ({floors['json_mb'] * 2**20 / floors['rows']:,.0f} bytes a row);"
        f" feature_snapshots with both days and the demo's history {snapshot_mb:,.0f} MB",
        f"alert threshold {config.alerts.threshold} (the day-1 risk's {ALERT_QUANTILE:.1%} quantile),"
        f" rearm below {config.alerts.rearm_below}, jump {config.alerts.jump.rise} within"
        f" {config.alerts.jump.within_days} days; tiers high from {config.scoring.high_risk}, medium from"
        f" {config.scoring.medium_risk}; daily cap {config.alerts.daily_cap_per_owner} per owner",
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, training.threads {threads};"
        f" load average {os.getloadavg()[0]:.1f} at the end",
        f"re-run of {DAY_2}: {rerun['scores_changed']} scores written, {sum(rerun['alerts'].values())} alerts"
        f" queued; md5 of every scoring table's rows: "
        + ("all unchanged" if unchanged else f"CHANGED in {', '.join(changed_tables)}"),
        f"bare predict timings {_list(floors['predict_timings'])} s;"
        f" fetch timings {_list(floors['read_timings'])} s",
    ]
    for label, report in scorings.items():
        tiers = ", ".join(f"{k} {v:,}" for k, v in report["tiers"].items())
        alerted = ", ".join(f"{k} {v}" for k, v in sorted(report["alerts"].items())) or "none"
        kinds: dict[str, int] = {}
        for row in report["alerted"]:
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
        notes.append(
            f"{label}: tiers {tiers}; {report['scores_changed']:,} scores written; alerts {alerted}"
            f" ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'});"
            f" {report['explained']:,} customers with drivers stored"
        )

    predict = floors["predict_seconds"]
    io_floor = predict + floors["read_seconds"] + floors["write_seconds"]
    floor_label = "predict + fetch + COPY"
    table = [
        Row(f"bare booster.predict, {floors['matrix'][0]:,} x {floors['matrix'][1]} (best of 3)", predict),
        Row("floor: fetch the day's feature rows, JSON decoded (best of 2)", floors["read_seconds"]),
        Row("floor: COPY the scores into a table indexed like risk_scores", floors["write_seconds"]),
        Row("floor: predict + fetch + COPY", io_floor),
    ]
    for label, report in scorings.items():
        table.append(Row(f"score_day, {label}", report["seconds"], floor_label, io_floor, report["peak_mb"]))
        for stage in STAGES:
            seconds = report["stages"].get(stage, 0.0)
            table.append(Row(f"  {stage}", seconds, *_stage_baseline(stage, floors)))
    day_2 = scorings["day 2"]
    within = day_2["seconds"] <= GOAL * io_floor
    still = unchanged and not rerun["scores_changed"]
    goals = [
        f"score_day (day 2) within {GOAL:.0f}x of bare predict + fetch + COPY:"
        f" {'met' if within else 'MISSED'} ({_ratio(day_2['seconds'] / io_floor)};"
        f" {_ratio(day_2['seconds'] / predict)} of the bare predict alone)",
        f"a re-run of the same day changes nothing: {'met' if still else 'MISSED'}",
    ]
    return Results(table, scorings, floors, notes, goals)


def _stage_baseline(stage: str, floors: dict[str, Any]) -> tuple[str, float | None]:
    match stage:
        case "read":
            return "fetch", floors["read_seconds"]
        case "predict":
            return "bare predict", floors["predict_seconds"]
        case "write":
            return "COPY", floors["write_seconds"]
    return "", None


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


# --- output -----------------------------------------------------------------------------------------


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 0.995 else f"{ratio:.1f}x"


def print_results(results: Results, customers_n: int, version: str) -> None:
    print(f"\nData: {customers_n:,} synthetic customers from the demo company's snapshot, PostgreSQL.")
    print(f"Code: {version}.")
    for note in results.notes:
        print(f"- {note}")
    print()
    columns = [
        ("stage", lambda r: r.stage, False),
        ("seconds", lambda r: f"{r.seconds:.2f}", True),
        ("baseline", lambda r: r.baseline, False),
        ("baseline s", lambda r: "" if r.baseline_seconds is None else f"{r.baseline_seconds:.2f}", True),
        ("ratio", lambda r: _ratio(r.ratio), True),
        ("peak MB", lambda r: "" if r.peak_mb is None else f"{r.peak_mb:,.0f}", True),
    ]
    texts = [[get(r) for _, get, _ in columns] for r in results.table]
    widths = [max(len(name), *(len(t[i]) for t in texts)) for i, (name, _, _) in enumerate(columns)]

    def line(values: list[str]) -> str:
        cells = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, (_, _, right) in zip(values, widths, columns, strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    print(line([name for name, _, _ in columns]))
    print(
        "| "
        + " | ".join(
            "-" * (w - 1) + (":" if r else "-") for w, (_, _, r) in zip(widths, columns, strict=True)
        )
        + " |"
    )
    for t in texts:
        print(line(t))
    print("\nGoals:")
    for goal in results.goals:
        print(f"- {goal}")


# --- entry point ------------------------------------------------------------------------------------

# Set in the process that runs from the frozen copy: the code version it measures.
_FROZEN = "CHURN_BENCH_SCORING_CODE"
_PACKAGES = ("benchmarks", "churn", "features", "training", "serving")
_PRODUCT = ("churn", "features", "training", "serving")  # the code whose changes would change the figures
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _run_child(args: argparse.Namespace) -> int:
    stage, *rest = args.child
    match stage:
        case "score":
            url, model_dir, config_file, day, now = rest
            report = score_child(
                url, Path(model_dir), Path(config_file), date.fromisoformat(day), datetime.fromisoformat(now)
            )
        case "floors":
            url, model_dir, day = rest
            report = floors_child(url, Path(model_dir), date.fromisoformat(day))
        case _:
            raise SystemExit(f"unknown stage {stage!r} (expected score or floors)")
    print(json.dumps({**report, "peak_mb": peak_memory_mb()}, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for every process and training.threads for the model (0: all cores);"
        " LightGBM's spinning threads are slowed badly by other load on a small machine",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the benchmark database for inspection"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _run_child(args)
    version = os.environ.get(_FROZEN)
    if version is None:
        return _run_frozen(args)
    started = time.perf_counter()
    results = run(args.customers, args.threads, keep_database=args.keep_database)
    print_results(results, args.customers, version)
    print(f"\nWhole run: {time.perf_counter() - started:,.0f} s.")
    return 0


def _run_frozen(args: argparse.Namespace) -> int:
    """Run from a copy of the code taken now, with the thread limits set before anything starts."""
    argv = ["--customers", str(args.customers), "--threads", str(args.threads)]
    if args.keep_database:
        argv.append("--keep-database")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if args.threads:  # LightGBM's num_threads 0 (and predict, which takes none) follows OpenMP's default
        env |= {name: str(args.threads) for name in _THREAD_VARIABLES}
    return run_frozen(
        "benchmarks.scoring", argv, packages=_PACKAGES, product=_PRODUCT, marker=_FROZEN, env=env
    )


if __name__ == "__main__":
    raise SystemExit(main())
