"""`churn alerts`: send queued alerts to Slack, and see, retry, release or discard them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from churn.cli.common import UserError, console, errors, load_context, open_engine, print_error, user_errors
from churn.cli.replay import replay
from churn.clock import utc_now

if TYPE_CHECKING:
    from serving.dispatch import DispatchSummary

alerts_app = typer.Typer(
    help=(
        "Alerts to customer-success reps: send the queued ones to Slack, list them, retry, release "
        "or discard the ones that are stuck, and replay the alert policy over the backtest."
    ),
    no_args_is_help=True,
)

ERRORS_SHOWN = 20
CREDENTIALS = {"slack": "SLACK_BOT_TOKEN", "webhook": "SLACK_WEBHOOK_URL"}


@alerts_app.command("send")
def send(
    limit: Annotated[
        int | None, typer.Option(help="Send at most this many alerts (default from config: 100).", min=1)
    ] = None,
) -> None:
    """Send the alerts that are due to Slack now (the scheduler does this every few minutes).

    Each alert is posted once, even if an earlier send was interrupted. An alert Slack cannot take
    (unknown channel, Slack down) stays queued with the reason: see `churn alerts list --failed`.
    Without SLACK_BOT_TOKEN the alerts are printed here instead.
    Exit code 1 if some alerts failed for good, 2 if Slack refused the bot token.
    """
    from serving.dispatch import dispatch_pending

    with user_errors():
        settings, config = load_context()
        engine = open_engine(settings)
        to_console = settings.slack_bot_token is None and settings.slack_webhook_url is None
        progress = Progress(
            TextColumn("Sending alerts"), BarColumn(), MofNCompleteColumn(), console=errors, transient=True
        )
        with progress if not to_console else nullcontext():
            task = progress.add_task("alerts", total=None)
            summary = dispatch_pending(
                engine,
                settings,
                config,
                now=utc_now(),
                limit=limit,
                console=console,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        print_dispatch(summary)


def print_dispatch(summary: DispatchSummary) -> None:
    where = {"slack": "Slack", "webhook": "the Slack webhook", "console": "the console"}[summary.sink]
    table = Table(title=Text(f"Alerts sent to {where} in {summary.seconds:.1f} s"))
    for column in ("sent", "already in Slack", "retry later", "failed", "still queued"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.sent),
        str(summary.reconciled),
        str(summary.retried),
        str(summary.failed),
        str(summary.kept),
    )
    console.print(table)
    for problem in summary.errors[:ERRORS_SHOWN]:
        errors.print(Text(f"  {problem}"), highlight=False)
    if len(summary.errors) > ERRORS_SHOWN:
        errors.print(f"  ... and {len(summary.errors) - ERRORS_SHOWN} more", highlight=False)
    if summary.stopped:
        variable = CREDENTIALS.get(summary.sink, "the Slack settings")
        print_error(f"{summary.stopped}: check {variable}; {summary.kept} alerts kept")
        raise typer.Exit(2)
    if summary.failed:
        errors.print(
            f"{summary.failed} alert(s) failed: fix the cause, then `churn alerts retry`.", highlight=False
        )
        raise typer.Exit(1)


@alerts_app.command("list")
def list_command(
    failed: Annotated[bool, typer.Option("--failed", help="Only alerts that could not be sent.")] = False,
    held: Annotated[
        bool, typer.Option("--held", help="Only alerts held back because their data was stale.")
    ] = False,
    state: Annotated[
        str | None,
        typer.Option(
            help="Only alerts in this state: pending, sending, sent, failed, held, digested, suppressed, "
            "discarded."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List alerts, newest first: who they are about, where they go, and what went wrong if anything."""
    from serving.dispatch import list_alerts
    from serving.outbox import AlertState

    with user_errors():
        states = [s.value for s in AlertState]
        wanted = [name for name, on in (("failed", failed), ("held", held)) if on]
        if state is not None:
            if state not in states:
                raise UserError(f"--state {state!r}: unknown state (one of {', '.join(states)})")
            wanted.append(state)
        settings, _ = load_context()
        rows = list_alerts(open_engine(settings), states=wanted or None, limit=limit)
        if as_json:
            typer.echo(json.dumps(rows, default=str, indent=2))
            return
        console.print(_alerts_table(rows, wanted))


def _alerts_table(rows: Sequence[dict[str, Any]], states: Sequence[str]) -> Table:
    title = f"{len(rows)} alert(s)" + (f" ({', '.join(states)})" if states else "")
    table = Table(title=Text(title))
    for column in ("id", "customer", "kind", "state", "risk", "channel", "attempts"):
        numeric = column in ("id", "risk", "attempts")
        limit = 24 if column == "customer" else None
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis", max_width=limit
        )
    table.add_column("last error", ratio=1, min_width=20)
    for row in rows:
        customer = row.get("name") or row["customer_id"] or row["owner_email"] or ""
        risk = f"{row['risk'] * 100:.0f}%" if row["risk"] is not None else ""
        table.add_row(
            str(row["alert_id"]),
            Text(customer),
            row["kind"],
            row["state"],
            risk,
            Text(row["channel"]),
            str(row["attempts"]),
            Text(row["last_error"] or row["state_reason"] or ""),
        )
    return table


IdsArgument = Annotated[
    list[int] | None, typer.Argument(help="Alert ids (see `churn alerts list`); none means all of them.")
]


def _change(ids: list[int] | None, from_state: str, verb: str, what: str) -> None:
    """Move alerts out of ``from_state``; given ids must all be in it, or nothing changes."""
    from serving import dispatch

    with user_errors():
        settings, _ = load_context()
        engine = open_engine(settings)
        if ids:
            states = dispatch.alert_states(engine, ids)
            missing = [str(i) for i in ids if i not in states]
            if missing:
                raise UserError(f"no alert with id {', '.join(missing)}; nothing changed")
            wrong = [f"{i} is {states[i]}" for i in ids if states[i] != from_state]
            if wrong:
                raise UserError(
                    f"only {from_state} alerts can be {verb}: {'; '.join(wrong)}; nothing changed"
                )
        change = {"retried": dispatch.retry_failed, "released": dispatch.release_held}.get(
            verb, dispatch.discard_held
        )
        moved = change(engine, utc_now(), ids or None)
        console.print(f"{moved} {from_state} alert(s) {what}.", highlight=False)


@alerts_app.command("retry")
def retry(ids: IdsArgument = None) -> None:
    """Queue failed alerts again, with a fresh set of attempts (after fixing what made them fail)."""
    _change(ids, "failed", "retried", "queued again: `churn alerts send` sends them now")


@alerts_app.command("release")
def release(ids: IdsArgument = None) -> None:
    """Send held alerts after all: they were held because a data source looked stale."""
    _change(ids, "held", "released", "released: `churn alerts send` sends them now")


@alerts_app.command("discard")
def discard(ids: IdsArgument = None) -> None:
    """Never send held alerts (they stay listed as discarded)."""
    _change(ids, "held", "discarded", "discarded")


# The replay lives with the policy it replays (churn/cli/replay.py); it is a command of this group.
alerts_app.command("replay")(replay)
