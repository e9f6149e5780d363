"""Alert dispatch throughput against a fake Slack that allows one message per second per channel.

    python -m benchmarks.dispatch [--channels 4] [--per-channel 30] [--postgres]

Alerts are queued in a fresh database (SQLite file; PostgreSQL with ``--postgres``) and sent by
``dispatch_pending`` to the test suite's fake Slack Web API server on 127.0.0.1, which answers a
second message to a channel within a second with 429 Retry-After, as Slack does. Two runs:

- clean: one pass; throughput as a share of the limit (channels x 1 message/s; goal >= 0.9);
- 20% of requests answered 500/503 at random: passes are repeated (the clock moved past each
  backoff) until nothing is queued; every alert must arrive exactly once, and the goal is the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.provenance import code_version
from churn.config import ProductConfig
from churn.db import make_engine
from churn.migrate import upgrade_database
from churn.settings import Settings, normalise_database_url
from serving.dispatch import dispatch_pending
from serving.outbox import AlertKind, dedupe_key, queue_alerts
from tests.fake_slack import FakeSlack

POSTGRES_URL = normalise_database_url(
    os.environ.get("CHURN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
GOAL = 0.9
NOW = datetime(2024, 12, 2, 7, 0, tzinfo=UTC)


@dataclass
class Result:
    run: str
    alerts: int
    channels: int
    seconds: float
    passes: int
    delivered: int
    duplicates: int
    rate_limited: int

    @property
    def share_of_limit(self) -> float:
        return self.delivered / self.seconds / self.channels


def _config(channels: int) -> ProductConfig:
    names = {f"team-{i}": f"#team-{i}" for i in range(channels)}
    return ProductConfig.model_validate(
        {
            "alerts": {
                "channels": {"cs-alerts": "#cs-alerts", **names},
                "delivery": {"batch_size": 10_000, "retry_base_s": 1, "max_attempts": 50},
            }
        }
    )


def _queue(url: str, channels: int, per_channel: int) -> list[int]:
    engine = make_engine(url)
    upgrade_database(engine)
    rows = []
    for n in range(channels * per_channel):
        customer = f"C{n:05d}"
        rows.append(
            {
                "dedupe_key": dedupe_key(AlertKind.THRESHOLD, NOW.date(), customer),
                "kind": "threshold",
                "customer_id": customer,
                "as_of": NOW.date(),
                "owner_email": "csm@example.com",
                "channel": f"team-{n % channels}",
                "risk": 0.5,
                "message": {"customer_id": customer, "name": f"Company {customer}", "risk": 0.5},
                "state": "pending",
            }
        )
    with engine.begin() as connection:
        ids = queue_alerts(connection, rows, now=NOW)
    engine.dispose()
    return sorted(ids.values())


def run(name: str, url: str, channels: int, per_channel: int, server_error_share: float) -> Result:
    ids = _queue(url, channels, per_channel)
    config = _config(channels)
    with FakeSlack(seed=7) as fake:
        for i in range(channels):
            fake.channels[f"C0TEAM{i:04d}"] = f"team-{i}"
        fake.limit_per_channel(1.0)
        fake.server_error_share = server_error_share
        settings = Settings(SLACK_BOT_TOKEN=fake.token, SLACK_API_URL=fake.url, CHURN_DATABASE_URL=url)
        engine = make_engine(url)
        now, passes = NOW, 0
        started = time.perf_counter()
        while passes < 100:
            passes += 1
            summary = dispatch_pending(engine, settings, config, now=now)
            if summary.kept == 0:
                break
            now += timedelta(minutes=10)  # past every backoff: the next pass retries what is due
        seconds = time.perf_counter() - started
        engine.dispose()
        seen = Counter(fake.alert_ids())
    return Result(
        run=name,
        alerts=len(ids),
        channels=channels,
        seconds=seconds,
        passes=passes,
        delivered=len(set(seen) & set(ids)),
        duplicates=sum(count - 1 for count in seen.values()),
        rate_limited=len(fake.rate_limited),
    )


def print_table(results: list[Result], backend: str) -> None:
    print(f"\nCode: {code_version(['serving'])}. Database: {backend}. Fake Slack: 1 message/s per channel.\n")
    header = (
        f"| {'run':<26} | {'alerts':>6} | {'channels':>8} | {'seconds':>7} | {'msg/s':>5} | "
        f"{'share of limit':>14} | {'passes':>6} | {'lost':>4} | {'duplicates':>10} | {'429s':>4} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for r in results:
        print(
            f"| {r.run:<26} | {r.alerts:>6} | {r.channels:>8} | {r.seconds:>7.1f} | "
            f"{r.delivered / r.seconds:>5.2f} | {r.share_of_limit:>14.2f} | {r.passes:>6} | "
            f"{r.alerts - r.delivered:>4} | {r.duplicates:>10} | {r.rate_limited:>4} |"
        )
    print()
    for r in results:
        whole = r.alerts == r.delivered and not r.duplicates
        verdict = "meets" if r.share_of_limit >= GOAL and whole else "misses"
        delivery = "each alert once" if whole else "alerts lost or sent twice"
        print(f"{r.run}: {r.share_of_limit:.2f} of the limit, {delivery} ({verdict} the goal of {GOAL}).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dispatch", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--per-channel", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="queue in PostgreSQL instead of SQLite")
    args = parser.parse_args(argv)
    runs = [("clean", 0.0), ("20% 5xx injected", 0.2)]
    results = []
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
        for name, share in runs:
            print(f"Dispatching: {name} ...", file=sys.stderr)
            if args.postgres:
                results.append(_on_postgres(name, args.channels, args.per_channel, share))
            else:
                url = f"sqlite:///{Path(scratch) / f'{uuid.uuid4().hex[:8]}.db'}"
                results.append(run(name, url, args.channels, args.per_channel, share))
    print_table(results, "PostgreSQL" if args.postgres else "SQLite file")
    return 0


def _on_postgres(name: str, channels: int, per_channel: int, share: float) -> Result:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    database = f"churn_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        url = make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)
        return run(name, url, channels, per_channel, share)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
