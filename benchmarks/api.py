"""API latency on PostgreSQL with 100,000 scored customers, at a fixed request rate, beside ``/healthz``.

    python -m benchmarks.api [--customers 100000] [--rate 200] [--page-rate 10] [--seconds 25]

``customers`` and two scored days of ``risk_scores`` (drivers stored for every row, so no model is
involved) are written with ``COPY`` into a throwaway database, then ``VACUUM ANALYZE``. ``uvicorn``
serves ``create_app`` (one worker) in one process; the load generator runs in another, open loop: request
*i* is sent at ``start + i / rate`` whatever happened to the ones before, from a pool of threads, and its
latency counts from that planned time, so a slow server is not hidden by a client that waits for it.
Three runs, one route each: ``/healthz`` (the baseline: the same server, framework and client, no
database), ``GET /v1/customers/{id}/risk`` for random ids, and a 1,000-row page of ``/v1/risk-scores``
from a random cursor at a lower rate. The first two seconds of each run warm up and are not counted.
Goal: p99 of the single-customer read under 25 ms at 200 requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.features import scratch_database, server_settings, vacuum_analyze
from benchmarks.provenance import code_version
from churn.db import make_engine
from churn.migrate import upgrade_database
from serving.api.sync_cursor import encode_cursor
from serving.api_keys import create_key

SEED = 1
DAYS = (date(2026, 6, 1), date(2026, 6, 2))
SCORED_AT = datetime(2026, 6, 2, 6, tzinfo=UTC)
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
WARM_UP_S = 2.0
THREADS = 64
GOAL_P99_MS = 25.0
FEATURES = ("logins_30d", "open_tickets", "last_nps", "seats_used_share", "days_to_renewal", "csat_90d")


def customer_ids(n: int) -> list[str]:
    return [f"S{i:07d}" for i in range(n)]


def write_scores(url: str, customers_n: int) -> float:
    """COPY the customers and two scored days for each; the seconds it took."""
    rng = np.random.default_rng(SEED)
    ids = customer_ids(customers_n)
    started = time.perf_counter()
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor:
            columns = (
                "customer_id, name, segment, owner_email, created_at, attributes, ingested_at, updated_at"
            )
            with cursor.copy(f"COPY customers ({columns}) FROM STDIN") as copy:
                for number, customer_id in enumerate(ids):
                    owner = f"csm{number % 100:03d}@example.com"
                    created = SCORED_AT - timedelta(days=30 + number % 900)
                    segment = SEGMENTS[number % len(SEGMENTS)]
                    row = (customer_id, f"Account {customer_id}", segment, owner, created, "{}")
                    copy.write_row((*row, SCORED_AT, SCORED_AT))
            risk = rng.beta(1.2, 9.0, customers_n)  # mostly low, a long tail of risky accounts
            change_id = 0
            columns = (
                "as_of, customer_id, risk, tier, model_version, snapshot_built_at, scored_at, drivers,"
                " updated_at, change_id"
            )
            with cursor.copy(f"COPY risk_scores ({columns}) FROM STDIN") as copy:
                for day in DAYS:
                    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
                    for customer_id, value in zip(ids, risk.tolist(), strict=True):
                        change_id += 1
                        tier = "high" if value >= 0.4 else "medium" if value >= 0.2 else "low"
                        copy.write_row(
                            (day, customer_id, value, tier, "1", at, at, _drivers(rng), at, change_id)
                        )
                    risk = np.clip(risk * np.exp(rng.normal(0, 0.05, customers_n)), 0, 1)
            for day in DAYS:
                cursor.execute(
                    "INSERT INTO scoring_runs (as_of, model_version, model_run_id, snapshot_built_at,"
                    " scored_at, customers, alerts, held, seconds)"
                    " VALUES (%s, '1', 'bench', %s, %s, %s, 0, 0, 1)",
                    (day, SCORED_AT, SCORED_AT, customers_n),
                )
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return time.perf_counter() - started


def _drivers(rng: np.random.Generator) -> str:
    """Three drivers each way, shaped as ``training.explain`` stores them."""
    picked = rng.permutation(len(FEATURES))

    def driver(index: int, effect: float) -> dict[str, Any]:
        name = FEATURES[index]
        value = int(rng.integers(0, 50))
        direction = "raises risk" if effect > 0 else "lowers risk"
        return {
            "feature": name,
            "value": value,
            "sentence": f"{name} {value}",
            "effect": effect,
            "direction": direction,
        }

    raising = [driver(i, round(0.5 - 0.1 * k, 3)) for k, i in enumerate(picked[:3])]
    lowering = [driver(i, round(-0.4 + 0.1 * k, 3)) for k, i in enumerate(picked[3:])]
    return json.dumps({"raising": raising, "lowering": lowering})


# --- the server and the load generator, each in its own process --------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(url: str, home: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """uvicorn serving the app on ``port``, in ``env`` (default: ours) with the database and home set."""
    env = {**(os.environ if env is None else env), "CHURN_DATABASE_URL": url, "CHURN_HOME": str(home)}
    command = [
        *("-m", "uvicorn", "serving.api.app:create_app", "--factory", "--host", "127.0.0.1"),
        *("--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"),
    ]
    server = subprocess.Popen([sys.executable, *command], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the API server did not answer /healthz within 60 s")


@dataclass
class Run:
    route: str
    rate: float
    sent: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def load_child(
    base: str, key: str, route: str, rate: float, seconds: float, ids: list[str], last_change: int
) -> dict[str, Any]:
    """Send ``rate`` requests a second for ``seconds`` (open loop); latencies from each planned send time.

    ``/risk`` asks for random customers of ``ids``; a page starts at a random cursor below ``last_change``.
    """
    rng = random.Random(SEED)
    total = int(rate * seconds)
    paths = []
    for _ in range(total):
        if route == "healthz":
            paths.append("/healthz")
        elif route == "risk":
            paths.append(f"/v1/customers/{rng.choice(ids)}/risk")
        else:
            cursor = encode_cursor(rng.randrange(0, max(1, last_change - 1_000)))
            paths.append(f"/v1/risk-scores?limit=1000&cursor={cursor}")
    local = threading.local()
    headers = {"Authorization": f"Bearer {key}"}

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, headers=headers, timeout=30)
        return local.client

    latencies = [float("nan")] * total
    statuses = [0] * total

    def send(i: int, planned: float) -> None:
        try:
            response = client().get(paths[i])
            response.read()
            statuses[i] = response.status_code
        except httpx.HTTPError:
            statuses[i] = -1
        latencies[i] = time.perf_counter() - planned

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        start = time.perf_counter() + 0.5
        for i in range(total):
            planned = start + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i, planned)
    counted = int(WARM_UP_S * rate)
    kept = np.array(latencies[counted:]) * 1_000
    slow = np.flatnonzero(kept > GOAL_P99_MS) / rate + WARM_UP_S
    return {
        "slow_at_s": [round(float(t), 1) for t in slow],
        "route": route,
        "rate": rate,
        "sent": total - counted,
        "errors": sum(1 for s in statuses[counted:] if s != 200),
        "p50_ms": float(np.percentile(kept, 50)),
        "p99_ms": float(np.percentile(kept, 99)),
        "max_ms": float(kept.max()),
    }


def load(
    base: str, key: str, route: str, rate: float, seconds: float, ids: list[str], last_change: int
) -> Run:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.api",
            "--child",
        ],
        # The key goes on stdin, never on a command line.
        input=json.dumps([base, key, route, rate, seconds, ids, last_change]),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    report = json.loads(result.stdout)
    slow = report.pop("slow_at_s")
    if slow:
        print(
            f"  {len(slow)} requests over {GOAL_P99_MS:.0f} ms, planned at {_spans(slow)} s", file=sys.stderr
        )
    return Run(**report)


def _spans(times: list[float]) -> str:
    """Planned send times as runs of seconds: '3.1-3.6, 14.0'."""
    spans: list[list[float]] = []
    for t in times:
        if spans and t - spans[-1][1] <= 0.5:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return ", ".join(f"{a:.1f}" if a == b else f"{a:.1f}-{b:.1f}" for a, b in spans[:12])


# --- the run --------------------------------------------------------------------------------------------

LABELS = {
    "healthz": "GET /healthz (baseline)",
    "risk": "GET /v1/customers/{id}/risk",
    "page": "GET /v1/risk-scores, 1,000 rows",
}


def print_table(runs: list[Run], notes: list[str]) -> None:
    base = next(r for r in runs if r.route == "healthz")
    print()
    for note in notes:
        print(note)
    print()
    header = (
        f"| {'route':<32} | {'req/s':>5} | {'requests':>8} | {'errors':>6} | {'p50 ms':>7} | {'p99 ms':>7} "
        f"| {'max ms':>7} | {'p50 / base':>10} | {'p99 / base':>10} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for r in runs:
        print(
            f"| {LABELS[r.route]:<32} | {r.rate:>5.0f} | {r.sent:>8,} | {r.errors:>6} | {r.p50_ms:>7.1f} "
            f"| {r.p99_ms:>7.1f} | {r.max_ms:>7.1f} | {r.p50_ms / base.p50_ms:>9.1f}x "
            f"| {r.p99_ms / base.p99_ms:>9.1f}x |"
        )
    risk = next(r for r in runs if r.route == "risk")
    verdict = "met" if risk.p99_ms < GOAL_P99_MS and not risk.errors else "NOT met"
    print(
        f"\nGoal: p99 of the single-customer read under {GOAL_P99_MS:.0f} ms at {risk.rate:.0f} requests/s: "
        f"{verdict} ({risk.p99_ms:.1f} ms, {risk.errors} errors)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s for /healthz and /risk")
    parser.add_argument("--page-rate", type=float, default=10.0, help="requests/s for the 1,000-row page")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each run")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(load_child(*json.loads(sys.stdin.read()))))
        return 0
    notes = [f"Code: {code_version(['serving', 'churn'])}."]
    with (
        scratch_database(keep=args.keep_database) as url,
        tempfile.TemporaryDirectory(prefix="churn-bench-api-") as scratch,
    ):
        engine = make_engine(url)
        upgrade_database(engine)
        print(f"Writing {args.customers:,} customers and two scored days ...", file=sys.stderr)
        written = write_scores(url, args.customers)
        vacuum_analyze(url)
        key, _ = create_key(engine, "bench", ("read:scores",), now=datetime.now(UTC))
        notes.append(server_settings(engine) + ".")
        engine.dispose()
        notes.append(
            f"Data: {args.customers:,} customers x {len(DAYS)} scored days in risk_scores"
            f" (written by COPY in {written:.1f} s); uvicorn, 1 worker; open-loop load from another"
            f" process, {THREADS} threads; {args.seconds:.0f} s per run, the first {WARM_UP_S:.0f} s"
            " not counted."
        )
        port = free_port()
        server = start_server(url, Path(scratch), port)
        base = f"http://127.0.0.1:{port}"
        try:
            runs = []
            for route, rate in (("healthz", args.rate), ("risk", args.rate), ("page", args.page_rate)):
                print(
                    f"{LABELS[route]} at {rate:.0f} requests/s for {args.seconds:.0f} s ...", file=sys.stderr
                )
                ids = customer_ids(args.customers)
                runs.append(load(base, key, route, rate, args.seconds, ids, args.customers * len(DAYS)))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print_table(runs, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
