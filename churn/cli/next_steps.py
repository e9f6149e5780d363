"""What to open after `churn demo`: the report, MLflow, the API, the scheduler, the notebooks."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.table import Table
from rich.text import Text

from churn.settings import Settings


def command_prefix() -> str:
    """How to call our executables from here: `.venv/bin/` when they live in a folder under the cwd."""
    folder = Path(sys.executable).parent
    try:
        return f"{folder.relative_to(Path.cwd())}/"
    except ValueError:
        return ""


def demo_next_steps(settings: Settings, report: Path | None) -> Table:
    """A table of what to look at next, each with the command or path that opens it."""
    bin_ = command_prefix()
    table = Table(title="What to open next", show_lines=False, title_justify="left")
    table.add_column("to see")
    table.add_column("open or run")
    if report is not None:
        table.add_row("the model's evaluation and the alert replay", Text(str(report)))
    table.add_row(
        "every training run in MLflow",
        Text(f"{bin_}mlflow ui --backend-store-uri {settings.resolved_mlflow_tracking_uri}"),
    )
    table.add_row(
        "risk scores over the REST API",
        Text(
            f"{bin_}churn apikey create crm --scope read:scores, then {bin_}churn serve"
            " (docs at http://127.0.0.1:8000/docs)"
        ),
    )
    table.add_row("scoring daily, alerts every 5 minutes", Text(f"{bin_}churn scheduler"))
    table.add_row("what the alert policy would have sent", Text(f"{bin_}churn alerts replay"))
    table.add_row("any customer's signals in words", Text(f"{bin_}churn features show CUSTOMER_ID"))
    table.add_row("cancellation reasons", Text(f"{bin_}churn reasons report"))
    table.add_row("exploration notebooks", Text("notebooks/ (see notebooks/README.md)"))
    table.add_row("your own data", Text(f"{bin_}churn ingest --help"))
    return table
