"""`churn reasons report`: the HTML page that shows where churn comes from and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from churn.cli.common import console, load_context, open_engine, user_errors


def register(reasons_app: typer.Typer) -> None:
    """Add the `report` command to `churn reasons`."""
    reasons_app.command("report")(report)


def report(
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the HTML (default: reports/reasons.html in CHURN_HOME)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report's path and gaps as JSON.")
    ] = False,
) -> None:
    """Write the reasons report: the reason mix over time and by segment, what the classifier recovered,
    and the signals behind each reason."""
    from training.reasons_report import write_reasons_report

    with user_errors():
        settings, config = load_context()
        open_engine(settings).dispose()  # a missing or old schema is one line, not a traceback
        written = write_reasons_report(settings, config, out=out)
    if as_json:
        print(json.dumps({"report": str(written.path), "churns": written.churns, "missing": written.missing}))
        return
    for line in written.missing:
        console.print(Text.assemble(("note:", "yellow"), " ", line), highlight=False)
    console.print(f"Reasons report ({written.churns:,} churns) written to {written.path}", highlight=False)
