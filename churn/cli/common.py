"""What every command shares: the consoles, one-line errors for mistakes a user can fix, and the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InternalError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)

from churn.config import ConfigError, ProductConfig, load_config
from churn.errors import UserFacingError
from churn.ingest import IngestError
from churn.settings import Settings, get_settings

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

DAY_FORMATS = ["%Y-%m-%d"]


class UserError(Exception):
    """Something the user can fix; shown as one line, exit code 2."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one clear line and exit code 2, never a traceback."""
    try:
        yield
    except IngestError as exc:
        for problem in exc.problems:
            print_error(problem)
        if exc.total > len(exc.problems):
            errors.print(f"... and {exc.total - len(exc.problems)} more problems", highlight=False)
        if exc.total > 1 or (exc.problems and "rejected" not in exc.problems[0]):
            errors.print(f"{exc.total} problem(s) found; nothing was imported.", highlight=False)
        raise typer.Exit(2) from None
    except (UserError, UserFacingError, ConfigError, FileNotFoundError) as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    except (OperationalError, InternalError) as exc:
        problem = database_problem(exc)
        if problem is None:
            raise  # an internal error of the database itself: its traceback is the report
        print_error(problem)
        raise typer.Exit(2) from None
    except ProgrammingError as exc:
        print_error(f"database error: {exc.orig}")
        raise typer.Exit(2) from None


def database_problem(exc: DBAPIError) -> str | None:
    """One line for a database that cannot do what was asked: unreachable, read-only or out of space.

    None for an internal error other than a read-only transaction (not something a user can fix).
    """
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    # PostgreSQL's SQLSTATE or SQLite's error name: a database taking no writes (read-only default,
    # a hot standby, a read-only file) or one whose disk is full.
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None) or ""
    if code == "25006" or code.startswith("SQLITE_READONLY"):
        return f"the database {_database_name()} is read-only: {reason}"
    if code in ("53100", "SQLITE_FULL"):
        return f"the database {_database_name()} is out of disk space: {reason}"
    if isinstance(exc, InternalError):
        return None
    return f"cannot use the database: {reason}"


def _database_name() -> str:
    try:
        return make_url(get_settings().resolved_database_url).render_as_string(hide_password=True)
    except (ValueError, ArgumentError):  # broken settings: the reason still says what happened
        return "(CHURN_DATABASE_URL)"


def print_error(message: str) -> None:
    # Messages quote file names and cell values: print them as plain text, never as Rich markup.
    errors.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def load_context() -> tuple[Settings, ProductConfig]:
    """The settings from the environment and the product config they point to."""
    settings = get_settings()
    return settings, load_config(settings.config_path)


def create_engine_for(settings: Settings) -> Engine:
    """The engine for CHURN_DATABASE_URL; a malformed URL is the user's error, named as such."""
    from churn.db import engine_for

    try:
        return engine_for(settings)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise UserError(f"CHURN_DATABASE_URL: {exc}") from None


def open_engine(settings: Settings, *, require_schema: bool = True) -> Engine:
    """The engine, after checking the schema is this version's (or saying to run `churn db upgrade`)."""
    from churn.migrate import current_revision, head_revision

    engine = create_engine_for(settings)
    if require_schema:
        current, head = current_revision(engine), head_revision()
        if current != head:
            where = engine.url.render_as_string(hide_password=True)
            state = "is empty" if current is None else f"is at schema {current}, this version needs {head}"
            raise UserError(f"the database {where} {state}: run `churn db upgrade`")
    return engine


@contextmanager
def spinner(*, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current step, with the time taken; yields the callback that moves it."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=errors,
        disable=not enabled,
    )
    with progress:
        task = progress.add_task("starting", total=None)
        yield lambda message: progress.update(task, description=message)
