"""`churn serve` as an operator runs it: a real uvicorn process that answers, and never logs a key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from churn.db import make_engine
from churn.migrate import upgrade_database

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_churn_serve_answers_and_keeps_keys_out_of_its_log(tmp_path, run_cli):
    url = f"sqlite:///{tmp_path / 'churn.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()
    created = run_cli("apikey", "create", "crm", "--scope", "read:scores", "--json", CHURN_DATABASE_URL=url)
    secret = __import__("json").loads(created.stdout)["key"]
    port = free_port()
    env = {**os.environ, "CHURN_DATABASE_URL": url, "CHURN_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "churn"), "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        good = httpx.get(base + "/v1/customers/C404/risk", headers={"Authorization": f"Bearer {secret}"})
        wrong = httpx.get(
            base + "/v1/customers/C404/risk", headers={"Authorization": "Bearer chr_wrong-key-123"}
        )
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]

    assert good.status_code == 404 and good.json()["error"]["message"]
    assert wrong.status_code == 401
    assert "Uvicorn running" in log or "Application startup complete" in log
    assert secret not in log and "chr_wrong-key-123" not in log
