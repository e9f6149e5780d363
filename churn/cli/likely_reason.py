"""`churn reasons likely-train`: learn which reason an at-risk customer would give, from past churners."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from churn.cli.common import console, load_context, open_engine, spinner, user_errors


def register(reasons_app: typer.Typer) -> None:
    """Add the likely-reason command to the `churn reasons` group."""
    reasons_app.command("likely-train")(likely_train)


def likely_train(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the evaluation as JSON for scripts.")
    ] = False,
) -> None:
    """Train the likely-reason model on past voluntary churners (features before they left, the reason
    they gave) and register it as a new version of `churn-likely-reason`; scoring then puts the likely
    reason and its play in alerts, and the API in a customer's risk.

    The latest quarter of churns is held out: the model's accuracy and macro-F1 are shown beside always
    guessing the most common reason, and a model that does not beat that guess is flagged low confidence.
    """
    from training.likely_reason import train_likely_reason

    with user_errors():
        settings, config = load_context()
        engine = open_engine(settings)
        try:
            with spinner(enabled=not as_json) as say:
                say("learning the likely reason from past churners")
                result = train_likely_reason(settings, config, engine)
        finally:
            engine.dispose()
    if as_json:
        console.print_json(json.dumps(result.as_dict()))
        return
    _print(result.as_dict())


def _print(evaluation: dict[str, Any]) -> None:
    table = Table(title="Likely reason on the held-out latest churns", title_justify="left")
    for column in ("", "accuracy", "macro-F1"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("model", f"{evaluation['accuracy']:.1%}", f"{evaluation['macro_f1']:.3f}")
    table.add_row(
        f"always '{evaluation['majority_reason']}'",
        f"{evaluation['majority_accuracy']:.1%}",
        f"{evaluation['majority_macro_f1']:.3f}",
    )
    console.print(table)
    classes = ", ".join(f"{code} {n}" for code, n in evaluation["classes"].items())
    console.print(
        f"{evaluation['examples']} past churners ({classes}); trained on churns up to "
        f"{evaluation['train_until']}, tested on the {evaluation['test_examples']} "
        f"from {evaluation['test_from']}."
    )
    if evaluation["left_out"]:
        rare = ", ".join(f"{code} {n}" for code, n in evaluation["left_out"].items())
        console.print(f"Too rare to learn, left out: {rare}.")
    if evaluation["beats_majority"]:
        console.print(f"Registered as churn-likely-reason version {evaluation['version']}.")
    else:
        console.print(
            f"[yellow]Low confidence:[/] it does not beat always guessing '{evaluation['majority_reason']}'. "
            f"Registered as churn-likely-reason version {evaluation['version']} anyway; alerts and the "
            "API mark its reasons low_confidence."
        )
