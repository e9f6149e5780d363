"""Which code a benchmark measured: the commit, and a frozen copy so every stage runs the same code."""

from __future__ import annotations

import shutil
import subprocess
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
