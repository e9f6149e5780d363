"""The notebooks: committed without outputs, and each runs top to bottom on the demo company (both databases).

They run in a real Jupyter kernel of this interpreter (nbclient + ipykernel), against a CHURN_HOME that
`churn demo` filled, and only read it: the database and the MLflow store are the same afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from churn.db import make_engine
from churn.tables import metadata
from tests.training_data import DEMO_END

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL = "churn-risk-tests"
# The demo company the training tests use (a fixed end day, so the same company every day).
DEMO = ("--customers", "300", "--months", "15", "--seed", "3")


def saved_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """Where a notebook carries results of a run: code cells with outputs or an execution count."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index}: execution count {cell.execution_count}")
    return found


def test_the_notebooks_are_there():
    assert [path.name for path in NOTEBOOKS] == ["01-demo-company.ipynb", "02-model.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_a_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)

    assert notebook.nbformat == 4
    assert saved_outputs(notebook) == [], f"{path.name}: clear the outputs before committing"


def test_a_notebook_saved_after_a_run_is_caught():
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title"),
            nbformat.v4.new_code_cell(
                "1 + 1",
                execution_count=3,
                outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)],
            ),
        ]
    )

    assert saved_outputs(notebook) == ["cell 1: 1 output(s)", "cell 1: execution count 3"]


def kernel_manager(folder: Path, sockets: Path) -> KernelManager:
    """A kernel of this very interpreter (the project's venv), whatever kernels the machine has installed.

    It listens on Unix sockets in ``sockets``: no TCP ports for parallel test workers to race for. That
    folder must have a short path, since a socket's path is limited to about 100 bytes.
    """
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    return KernelManager(
        kernel_name=KERNEL,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")]),
        connection_file=str(sockets / "connection.json"),
        transport="ipc",
    )


def kernel_env(home: Path, database_url: str, folder: Path) -> dict[str, str]:
    """The environment a data scientist has after `make demo`: where the demo home and its database are."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_", "SLACK_"))}
    env.update(CHURN_HOME=str(home), CHURN_DATABASE_URL=database_url, IPYTHONDIR=str(folder / "ipython"))
    return env


def execute(path: Path, env: dict[str, str], folder: Path) -> nbformat.NotebookNode:
    """Run every cell in order, as "Restart and run all" does; a failing cell fails the test with its traceback."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as sockets:
        manager = kernel_manager(folder, Path(sockets))
        client = NotebookClient(
            notebook, km=manager, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
        )
        try:
            client.execute(env=env)
        finally:  # nbclient leaves a kernel it was handed running
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
    return notebook


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the cells printed and displayed as text or HTML."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            for kind in ("text/plain", "text/html"):
                if kind in output.get("data", {}):
                    parts.append(output.data[kind])
    return "\n".join(parts)


def images(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )


def percent(text: str, pattern: str) -> float:
    found = re.search(pattern, text)
    assert found, f"no line matching {pattern!r} in:\n{text[:3000]}"
    return float(found.group(1)) / 100


def stored_state(database_url: str, home: Path) -> tuple[str, str]:
    """A digest of every row of every table, and of every file in the MLflow store."""
    rows = hashlib.sha256()
    engine = make_engine(database_url)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            order = ", ".join(f'"{c.name}"' for c in (list(table.primary_key.columns) or list(table.columns)))
            # Driver rows, not ORM-typed ones: a tenth of the time over the demo's events.
            for row in connection.exec_driver_sql(f'SELECT * FROM "{table.name}" ORDER BY {order}'):
                rows.update(repr(tuple(row)).encode())
    engine.dispose()
    files = hashlib.sha256()
    for path in sorted((home / "mlruns").rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
            files.update(str(path.relative_to(home)).encode() + hashlib.sha256(path.read_bytes()).digest())
    return rows.hexdigest(), files.hexdigest()


@pytest.mark.slow
def test_the_notebooks_run_top_to_bottom_on_the_demo_company_and_only_read(
    run_cli, env, database_url, tmp_path
):
    env["CHURN_DATABASE_URL"] = database_url
    home = Path(os.environ["CHURN_HOME"])
    made = run_cli("demo-data", *DEMO, "--end", DEMO_END.isoformat(), "--out", home / "demo-data")
    assert made.exit_code == 0, made.output
    demo = run_cli("demo", *DEMO)
    assert demo.exit_code == 0, demo.output
    assert "is now the champion" in demo.output
    before = stored_state(database_url, home)

    runs = {}
    for path in NOTEBOOKS:
        kernel_folder = tmp_path / f"kernel-{path.stem}"
        runs[path.name] = execute(path, kernel_env(home, database_url, kernel_folder), kernel_folder)

    company = runs["01-demo-company.ipynb"]
    text = printed(company)
    assert 0.01 <= percent(text, r"90-day churn rate: ([\d.]+)% of [\d,]+ labelled snapshots") <= 0.25
    assert "Failed payment" in text  # the reasons table speaks the taxonomy's words
    assert images(company) >= 5  # monthly churn, churn over snapshot days, cohorts, reasons, segments

    model = runs["02-model.ipynb"]
    text = printed(model)
    assert "Champion: churn-risk version 1" in text
    assert 0 <= percent(text, r"Calibration error \(.*\): ([\d.]+)%") <= 0.2
    assert re.search(rf"Scored [1-9][\d,]* active customers as of {DEMO_END}", text), text
    assert re.search(r"Raising the risk:\n  - \S", text), text
    assert images(model) >= 6  # gains, lift, folds, calibration, score spread, drivers

    assert stored_state(database_url, home) == before, "a notebook wrote to the database or to mlruns/"
