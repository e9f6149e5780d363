"""Which code a benchmark measured: the commit, and a frozen copy so every stage runs the same code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_version(packages: Sequence[str]) -> str:
    """The commit measured, and whether ``packages`` had uncommitted changes (read-only git calls)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *packages],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    where = ", ".join(f"{p}/" for p in packages)
    return commit + (f" with {len(changed)} uncommitted files in {where}" if changed else "")


def frozen_code(into: Path, packages: Sequence[str]) -> Path:
    """A copy of ``packages`` taken now: later edits to the working tree do not reach the runs."""
    for package in packages:
        shutil.copytree(ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__", ".data"))
    return into


def run_frozen(
    module: str,
    argv: Sequence[str],
    *,
    packages: Sequence[str],
    product: Sequence[str],
    marker: str,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``python -m module argv`` from a copy of ``packages`` taken now; its exit code.

    A run takes long and the working tree may change meanwhile; each stage starts a fresh Python,
    which would otherwise import whatever the files say by then. The copy is found first because
    ``python -m`` puts the working directory at the front of ``sys.path``. The environment variable
    ``marker`` tells the run it is the frozen one, and which code it measures (``product``'s commit).
    """
    with tempfile.TemporaryDirectory(prefix="churn-bench-code-") as frozen:
        version = code_version(product)
        frozen_code(Path(frozen), packages)
        run_env = {
            **(os.environ if env is None else env),
            marker: f"{version}, copied at the start of the run",
        }
        result = subprocess.run([sys.executable, "-m", module, *argv], cwd=frozen, env=run_env, check=False)
    return result.returncode
