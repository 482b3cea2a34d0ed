"""Execute the tutorial notebooks top to bottom in smoke-test mode (tiny settings)."""

import os
import sys
import time
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = [
    "01_quickstart.ipynb",
    "02_why_imputation_matters.ipynb",
    "03_explaining_a_black_box.ipynb",
    "04_bayesian_selector.ipynb",
    "05_lex_inside_a_larger_model.ipynb",
]
#: Notebooks that show figures, with how many.
FIGURES = {"02_why_imputation_matters.ipynb": 3}
SMOKE_ENV = {
    "LEXPPL_SMOKE_TEST": "1",
    "MPLBACKEND": "Agg",
    # One thread per kernel, also for the libraries started before torch.set_num_threads.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@pytest.fixture
def smoke_env():
    saved = {key: os.environ.get(key) for key in SMOKE_ENV}
    os.environ.update(SMOKE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_the_kernel_runs_this_interpreter():
    # jupyter_client starts a kernel spec whose argv[0] is "python" with sys.executable, so
    # the notebooks run in the environment that runs the tests (and sees lexppl).
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec("python3").argv
    assert argv[0] in {"python", "python3", sys.executable}, argv


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, smoke_env):
    path = NOTEBOOKS_DIR / name
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{name} is committed with outputs; clear them."
    )
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    start = time.perf_counter()
    client.execute()
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    if name in FIGURES:  # lexppl.plots' figures render as images, not as a text repr
        images = [
            output
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert len(images) == FIGURES[name], f"{name}: {len(images)} images"
