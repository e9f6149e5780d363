"""The leader lock: one holder at a time, who it is, and freed when the holder dies or loses its link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from churn.db import make_engine
from churn.errors import UserFacingError
from serving.job_runs import this_host
from serving.leader import APPLICATION_PREFIX, leader_for

HOLD_LOCK = """
import sys, time
from serving.leader import leader_for
leader = leader_for(sys.argv[1])
assert leader.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_one_leader_at_a_time_and_the_standby_can_tell_who(database_url):
    first, second = leader_for(database_url), leader_for(database_url)
    try:
        assert first.acquire()
        assert not second.acquire()
        assert second.holder() == f"{this_host()} pid {os.getpid()}"
        assert first.held()
        first.release()
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.close()
        second.close()


def test_a_killed_leader_frees_the_lock(database_url):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, database_url], stdout=subprocess.PIPE, text=True
    )
    standby = leader_for(database_url)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not standby.acquire()
        assert standby.holder() == f"{this_host()} pid {holder.pid}"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert _eventually(standby.acquire)
    finally:
        holder.kill()
        holder.wait()
        standby.close()


def test_a_postgres_leader_that_loses_its_connection_steps_down(postgres_database):
    database_url = postgres_database
    leader, standby = leader_for(database_url), leader_for(database_url)
    admin = make_engine(database_url)
    try:
        assert leader.acquire()
        with admin.begin() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": f"{APPLICATION_PREFIX} {this_host()} pid {os.getpid()}"[:63]},
            )
        assert not leader.held()
        assert _eventually(standby.acquire)
        assert not leader.acquire()
    finally:
        leader.close()
        standby.close()
        admin.dispose()


def test_the_scheduler_needs_a_database_file():
    with pytest.raises(UserFacingError, match="in-memory"):
        leader_for("sqlite:///:memory:")


def _eventually(check, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
