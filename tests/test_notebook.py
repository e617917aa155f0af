"""The lesson as a notebook: stored without outputs, executed end to end in a fresh python3 kernel,
every figure it draws checked to be there and not blank."""

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REASON = "the notebook runs with nbclient, nbformat and ipykernel: pip install -e '.[notebook]'"
nbformat = pytest.importorskip("nbformat", reason=REASON)
nbclient = pytest.importorskip("nbclient", reason=REASON)
kernelspec = pytest.importorskip("ipykernel.kernelspec", reason=REASON)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "softmax_regression_from_scratch.ipynb"


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells(nb))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook after a run in a python3 kernel of this very Python (a kernelspec written into a
    private JUPYTER_PATH, so no other installed kernel is picked), in a scratch folder."""
    root = tmp_path_factory.mktemp("notebook")
    kernelspec.write_kernel_spec(root / "jupyter" / "kernels" / "python3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "jupyter"))
        nb = nbformat.read(NOTEBOOK, as_version=4)
        start = time.perf_counter()
        nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=120,
                                resources={"metadata": {"path": str(root)}}).execute()
        print(f"notebook executed in {time.perf_counter() - start:.1f} s")
    return nb


def pngs(cell) -> list:
    return [Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"]))) for out in cell.outputs
            if "image/png" in out.get("data", {})]


def test_the_notebook_runs_and_draws_every_figure(executed):
    assert all(out.output_type != "error" for cell in code_cells(executed) for out in cell.outputs)
    figures = [cell for cell in code_cells(executed) if "figure" in cell.metadata.get("tags", [])]
    assert len(figures) == 10
    for cell in figures:
        images = pngs(cell)
        assert len(images) == 1, cell.source
        assert min(images[0].size) > 150 and np.asarray(images[0].convert("L")).std() > 10, cell.source
    untagged = [cell for cell in code_cells(executed) if cell not in figures]
    assert not any(pngs(cell) for cell in untagged)                   # every figure is checked


def test_the_live_curve_leaves_one_figure_and_the_last_epochs_line(executed):
    (cell,) = [cell for cell in code_cells(executed) if "plot=True" in cell.source]
    text = "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")
    assert text.startswith("epoch 10/10  train_loss") and text.count("\n") == 1   # earlier ones were cleared
    assert len(pngs(cell)) == 1
