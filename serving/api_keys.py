"""API keys with scopes: created once (the key is shown then and never again), stored hashed, revoked."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, select

from churn.db import WRITES
from churn.errors import UserFacingError
from churn.tables import api_keys

KEY_PREFIX = "chr_"


class Scope(StrEnum):
    READ_SCORES = "read:scores"
    WRITE_INGEST = "write:ingest"
    WRITE_FEEDBACK = "write:feedback"
    ADMIN = "admin"  # every scope


class ApiKeyError(UserFacingError):
    """A key that cannot be created, found or revoked as asked."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: Scope) -> bool:
        return self.revoked_at is None and (scope.value in self.scopes or Scope.ADMIN.value in self.scopes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def parse_scopes(values: list[str]) -> tuple[str, ...]:
    """Scopes as given on the command line, checked; at least one."""
    known = [s.value for s in Scope]
    if not values:
        raise ApiKeyError(f"--scope: give at least one of {', '.join(known)}")
    for value in values:
        if value not in known:
            raise ApiKeyError(f"--scope {value!r}: unknown scope (expected one of {', '.join(known)})")
    return tuple(dict.fromkeys(values))


def create_key(engine: Engine, name: str, scopes: tuple[str, ...], *, now: datetime) -> tuple[str, ApiKey]:
    """A new key: the secret (to show once) and its stored record."""
    if not name.strip() or len(name) > 128:
        raise ApiKeyError(f"key name {name!r}: give a name of 1 to 128 characters")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        key_id = connection.execute(
            api_keys.insert()
            .values(
                name=name.strip(),
                prefix=secret[: len(KEY_PREFIX) + 6],
                key_hash=hash_key(secret),
                scopes=list(scopes),
                created_at=now,
            )
            .returning(api_keys.c.key_id)
        ).scalar_one()
        return secret, _key(connection, key_id)


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key, newest first, revoked ones included."""
    with engine.connect() as connection:
        rows = connection.execute(select(api_keys).order_by(api_keys.c.key_id.desc())).all()
    return [_from_row(row) for row in rows]


def revoke_key(engine: Engine, key_id: int, *, now: datetime) -> ApiKey:
    """Revoke a key at once; revoking it again changes nothing."""
    with engine.connect().execution_options(**WRITES) as connection, connection.begin():
        key = _key(connection, key_id)
        if key.revoked_at is None:
            connection.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked_at=now))
        return _key(connection, key_id)


def find_key(connection: Connection, secret: str) -> ApiKey | None:
    """The stored key for a secret a request presented, if any (revoked keys are returned: callers refuse)."""
    row = connection.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(secret))).first()
    return _from_row(row) if row else None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _key(connection: Connection, key_id: int) -> ApiKey:
    row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise ApiKeyError(f"no API key with id {key_id} (`churn apikey list` shows them)")
    return _from_row(row)


def _from_row(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
