"""`churn serve` and `churn apikey`: run the REST API, and manage the keys that call it."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from churn.cli.common import console, load_context, open_engine, user_errors
from churn.clock import utc_now

apikey_app = typer.Typer(
    help="API keys for CRM syncs and integrations: create (shown once), list, revoke.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add `serve` and `apikey` to the root app."""
    app.command("serve")(serve)
    app.add_typer(apikey_app, name="apikey")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).", min=1, max=64)] = 1,
) -> None:
    """Run the REST API (FastAPI on uvicorn) against the configured database.

    Routes: /v1/customers/{id}/risk and its history, /v1/risk-scores (incremental sync, CSV
    export), batch ingest and cancellations, alert outcomes, /slack/interactions, /metrics, and
    /healthz and /readyz. The interactive docs are at /docs, the OpenAPI spec at /openapi.json.
    Every route but health needs an API key (`churn apikey create`). The scheduler runs on its own
    (`churn scheduler`), never inside these workers.
    """
    import uvicorn

    with user_errors():
        settings, _ = load_context()
        open_engine(settings).dispose()  # the schema must be this version's before serving
    uvicorn.run(
        "serving.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,  # the metrics count requests; keys never reach a log line
    )


@apikey_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. salesforce-sync.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="read:scores, write:ingest, write:feedback or admin (repeatable).",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its record as JSON.")] = False,
) -> None:
    """Create an API key. The key is printed once: store it now, only its hash is kept."""
    from serving.api_keys import create_key, parse_scopes

    with user_errors():
        settings, _ = load_context()
        secret, key = create_key(open_engine(settings), name, parse_scopes(scope), now=utc_now())
    if as_json:
        sys.stdout.write(json.dumps({"key": secret, **key.as_dict()}, indent=2) + "\n")
        return
    console.print(f"Created API key {key.key_id} ({key.name}) with {', '.join(key.scopes)}:", highlight=False)
    console.print(Text(secret, style="bold"))
    console.print("Store it now: it is not shown again. Send it as `Authorization: Bearer <key>`.")


@apikey_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
) -> None:
    """List API keys (never the keys themselves): name, scopes, when created, last used, revoked."""
    from serving.api_keys import list_keys

    with user_errors():
        settings, _ = load_context()
        keys = list_keys(open_engine(settings))
    if as_json:
        sys.stdout.write(json.dumps([k.as_dict() for k in keys], indent=2) + "\n")
        return
    table = Table(title=f"{len(keys)} API key(s)")
    for column in ("id", "name", "starts with", "scopes", "created", "last used", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            str(key.key_id),
            Text(key.name),
            key.prefix + "…",
            ", ".join(key.scopes),
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never",
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "",
        )
    console.print(table)


@apikey_app.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id, as `churn apikey list` shows it.")],
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from serving.api_keys import revoke_key

    with user_errors():
        settings, _ = load_context()
        key = revoke_key(open_engine(settings), key_id, now=utc_now())
    console.print(f"API key {key.key_id} ({key.name}) is revoked.", highlight=False)
