"""Machinery for the fault drills: real `churn` processes, a private PostgreSQL cluster, waiting and counting."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, and_, func, or_, select

from churn.config import ScheduleConfig
from churn.tables import subscriptions
from serving.scheduled_jobs import configured_jobs
from serving.scheduler import build_scheduler, stop_scheduler, sync_jobs


def eventually(
    check: Callable[[], object],
    *,
    timeout_s: float = 60.0,
    what: str = "condition",
    log: Callable[[], str] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail naming ``what`` (and the log)."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            tail = "\n".join(log().splitlines()[-30:]) if log else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tail}".rstrip())
        time.sleep(0.02)
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChurnProcess:
    """`python -m churn ARGS` in its own process, its output in a log file the test reads while it runs."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._handle = log.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "churn", *args],
            cwd=log.parent,  # not the checkout: no stray .env or mlruns/ of its own
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        self.pid = self.popen.pid

    def text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: no handler, no clean-up, no goodbye: what a power cut or the OOM killer does."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def stop(self, timeout_s: float = 60.0) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout_s)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._handle.close()


def store_jobs_due(database_url: str, schedule: ScheduleConfig, *due: str) -> None:
    """Store the configured jobs as a scheduler would, with ``due`` ones fallen due a moment ago.

    That is the state a scheduler that was down at the job's time leaves behind: the next
    `churn scheduler` runs the job at once (it is within ``misfire_grace_s``), without the drill
    waiting for a crontab minute.
    """
    scheduler = build_scheduler(database_url, schedule)
    scheduler.start(paused=True)
    try:
        sync_jobs(scheduler, configured_jobs(schedule), schedule)
        for job_id in due:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC) - timedelta(seconds=1))
    finally:
        stop_scheduler(scheduler)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, *, timeout_s: float = 60.0, quiet_s: float = 1.0) -> None:
    """Wait until the process has used (almost) no CPU for ``quiet_s``: it is blocked, e.g. on a lock."""
    deadline = time.monotonic() + timeout_s
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - before < 0.05 * quiet_s:
            return
        before = now
    raise AssertionError(f"process {pid} kept working for {timeout_s:.0f} s")


def active_customers(engine: Engine, day: date) -> set[str]:
    """Customers a subscription covers on ``day``, counted straight from the subscriptions table."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    covers = and_(
        subscriptions.c.started_at < start + timedelta(days=1),
        or_(subscriptions.c.ended_at.is_(None), subscriptions.c.ended_at > start),
    )
    with engine.connect() as connection:
        return set(connection.execute(select(subscriptions.c.customer_id).where(covers).distinct()).scalars())


def count_rows(engine: Engine, table: Table, *where: ColumnElement[bool]) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian/Ubuntu layout), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster of the drill's own (initdb + pg_ctl) on a free port, which it may stop at will.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` OS user. Its
    folder lives under /tmp (pytest's tmp_path is not reachable by another user).
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="churn-drill-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120, cwd=self.folder)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are cut off, as in a failover or a restart for an upgrade."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # it was not running
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
