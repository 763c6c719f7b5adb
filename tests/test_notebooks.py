"""Execute the teaching notebooks ``notebooks/0*.ipynb`` top to bottom in quick mode.

Each notebook runs in a fresh Jupyter kernel (nbclient) with ``KAPPASCOPE_QUICK=1`` in its environment,
which makes it pick tiny maps and short runs. A notebook fails the test when any cell raises (the cell's
source and traceback are in the failure message) or when it exceeds :data:`NOTEBOOK_TIMEOUT_S` in total.
The notebooks are stored without outputs; a cheap test checks that too. ``dashboard_embed.ipynb`` is
tested elsewhere.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("0*.ipynb"))
EXPECTED = ("01_inverse_problem", "02_priors_and_score_matching", "03_annealed_hmc", "04_cosmos")
# Whole-notebook budget. Each runs in ≲ 60–90 s on an idle 2-core CPU (TensorFlow's import alone takes
# 5–15 s); the margin absorbs a CPU shared with other test workers.
NOTEBOOK_TIMEOUT_S = 420


def test_expected_notebooks_present() -> None:
    assert [p.stem for p in NOTEBOOKS] == list(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells and nb.cells[0].cell_type == "markdown", "the first cell must be the markdown introduction"
    assert "KAPPASCOPE_QUICK" in nb.cells[0].source, "the introduction must state the quick/real-run settings"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.xdist_group("notebooks")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPPASCOPE_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S

    def remaining(cell: nbformat.NotebookNode) -> int:
        return max(1, int(deadline - time.monotonic()))

    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout_func=remaining,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        allow_errors=False,
    )
    try:
        client.execute()
    except CellTimeoutError as err:
        pytest.fail(f"{path.name} exceeded its {NOTEBOOK_TIMEOUT_S} s budget: {err}", pytrace=False)
    except (CellExecutionError, DeadKernelError) as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
