"""One scheduler at a time: the leader lock that replicas of `churn scheduler` compete for.

On PostgreSQL it is a session advisory lock held by a dedicated connection, so it is released the
moment the leader's process or connection dies. On SQLite it is an OS file lock beside the database
file, released by the kernel when the process dies.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import suppress
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout
from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from churn.clock import utc_now
from churn.db import make_engine
from churn.errors import UserFacingError
from serving.job_runs import this_host

log = logging.getLogger("churn.scheduler")

# pg_try_advisory_lock's key: "chrn" as a number. Advisory locks are per database, so schedulers of
# different product databases on one server do not compete.
LOCK_KEY = int.from_bytes(b"chrn", "big")
# Name the leader connection so standbys (and pg_stat_activity) can tell who leads.
APPLICATION_PREFIX = "churn scheduler"
# A leader cut off from the server should notice within about a minute, not a TCP timeout of hours.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "connect_timeout": "10",
}


class Leader(Protocol):
    """The lock only one scheduler holds."""

    def acquire(self) -> bool:
        """Take the lock if it is free; True if this process now leads."""
        ...

    def held(self) -> bool:
        """Whether this process still leads (False once the lock is lost)."""
        ...

    def holder(self) -> str | None:
        """Who leads, as 'host pid N', if it can be told."""
        ...

    def release(self) -> None:
        """Give the lock up (safe to call when not holding it)."""
        ...

    def close(self) -> None:
        """Give the lock up and let go of what holding it needed."""
        ...


def leader_for(database_url: str) -> Leader:
    """The leader lock for the product database at ``database_url``."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return PostgresLeader(database_url)
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UserFacingError("the scheduler needs a database file, not an in-memory SQLite database")
        return FileLeader(Path(url.database))
    raise UserFacingError(f"the scheduler supports SQLite and PostgreSQL databases, not {backend}")


def _identity() -> str:
    return f"{this_host()} pid {os.getpid()}"


class PostgresLeader:
    """pg_try_advisory_lock held on a connection of its own, outside the pool the jobs use."""

    def __init__(self, database_url: str, key: int = LOCK_KEY) -> None:
        url = make_url(database_url).update_query_dict(KEEPALIVES)
        self._engine: Engine = make_engine(url.render_as_string(hide_password=False), poolclass=NullPool)
        self._key = key
        self._connection: Connection | None = None

    def _connect(self) -> Connection:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        name = f"{APPLICATION_PREFIX} {_identity()}"[:63]
        connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
        return connection

    def acquire(self) -> bool:
        try:
            connection = self._connection or self._connect()
            self._connection = connection
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar()
        except DBAPIError as exc:
            log.warning("cannot reach the database for the leader lock: %s", _reason(exc))
            self._drop()
            return False
        return bool(got)

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            # The lock lives as long as this session: a live session means it is still ours.
            self._connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            log.error("lost the connection that holds the leader lock: %s", _reason(exc))
            self._drop()
            return False
        return True

    def holder(self) -> str | None:
        if self._connection is None:
            return None
        try:
            name = self._connection.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND l.classid = :hi AND l.objid = :lo "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"hi": self._key >> 32, "lo": self._key & 0xFFFFFFFF},
            ).scalar()
        except DBAPIError:
            return None
        if not name or not name.startswith(APPLICATION_PREFIX):
            return None
        return name.removeprefix(APPLICATION_PREFIX).strip()

    def release(self) -> None:
        if self._connection is not None:
            # If the session is gone, the lock went with it.
            with suppress(DBAPIError):
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with suppress(DBAPIError):
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        self.release()
        self._engine.dispose()


def _reason(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)


class FileLeader:
    """An OS file lock beside the SQLite database file; who holds it is written to a file beside it."""

    def __init__(self, database: Path) -> None:
        self.lock_path = database.with_name(database.name + ".scheduler-lock")
        # Not the lock file itself: a standby opening that file to try the lock would truncate it.
        self.holder_path = database.with_name(database.name + ".scheduler-leader")
        self._lock = FileLock(self.lock_path, thread_local=False)

    def acquire(self) -> bool:
        try:
            self._lock.acquire(timeout=0, blocking=False)
        except Timeout:
            return False
        payload = {"host": this_host(), "pid": os.getpid(), "since": utc_now().isoformat()}
        self.holder_path.write_text(json.dumps(payload), encoding="utf-8")
        return True

    def held(self) -> bool:
        return self._lock.is_locked

    def holder(self) -> str | None:
        try:
            payload = json.loads(self.holder_path.read_text(encoding="utf-8"))
            return f"{payload['host']} pid {payload['pid']}"
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._lock.is_locked:
            self.holder_path.unlink(missing_ok=True)
            self._lock.release(force=True)

    def close(self) -> None:
        self.release()
