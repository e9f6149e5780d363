"""What the product does: the optional YAML config file, with defaults that work."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """The config file cannot be used; the message names the file and the setting."""


class _Section(BaseModel):
    # A misspelt key should fail loudly rather than silently keep its default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Section):
    # The CSV reader keeps a few dozen chunks in flight, so this sets the memory an import needs.
    chunk_mb: int = Field(
        default=4, ge=1, le=256, description="Megabytes of a file read and checked at a time."
    )
    timezone: str = Field(default="UTC", description="Time zone for timestamps written without an offset.")
    max_problems_shown: int = Field(default=20, ge=1, description="Problems printed before the count.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        check_timezone(value)
        return value


class DemoConfig(_Section):
    customers: int = Field(default=2_000, ge=10)
    months: int = Field(default=18, ge=3)
    seed: int = 7


class ProductConfig(_Section):
    """Every product behaviour a team may want to change, with its default."""

    ingest: IngestConfig = IngestConfig()
    demo: DemoConfig = DemoConfig()


def check_timezone(name: str) -> ZoneInfo:
    """Return the IANA time zone, or say clearly that it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
        ) from None


def load_config(path: Path | None) -> ProductConfig:
    """Read the config file if there is one; defaults otherwise."""
    if path is None:
        return ProductConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (set by CHURN_CONFIG)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        return ProductConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
