"""The wheel: presets, the sample nucleus and the napari manifest ship inside the package.

The wheel is built from a copy of the package sources (nothing is written into the
checkout), without build isolation (the installed setuptools builds it, no download).
The slow test installs it into a fresh virtual environment outside the checkout and runs
the command line from there, as a user who ran ``pip install chromarate`` would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Package data that must be in the wheel (paths inside it).
DATA_FILES = (
    "chromarate/pipelines/default.yaml",
    "chromarate/pipelines/quick-cpu.yaml",
    "chromarate/pipelines/publication.yaml",
    "chromarate/sample_data/sample_nucleus.csv.gz",
    "chromarate/sample_data/sample_nucleus.truth.npz",
    "chromarate/_napari/napari.yaml",
    "chromarate/py.typed",
)


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of pyproject.toml, README.md and chromarate/."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "chromarate", src / "chromarate",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", dist], timeout=300)
    (whl,) = dist.glob("chromarate-*.whl")
    return whl


def test_wheel_carries_presets_sample_and_manifest(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in DATA_FILES if f not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    # one source of truth: no second copy of the presets or the sample outside the package
    assert not any(n.startswith(("pipelines/", "sample_data/")) for n in names)
    assert not (REPO / "pipelines").exists() and not (REPO / "sample_data").exists()


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_runs_config_and_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    # --ignore-installed: the checkout's editable install is visible through the system
    # site-packages; chromarate must come from the wheel all the same
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q",
          wheel], timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"

    where = _run([py, "-c", "import chromarate, chromarate.data as d; "
                  "print(chromarate.__file__); print(d.sample_paths()[0])"],
                 cwd=work, env=env, timeout=120).stdout.split()
    for path in where:
        assert Path(path).resolve().is_relative_to(venv.resolve()), where
    exe = bindir / "chromarate"
    shown = _run([exe, "config", "show", "quick-cpu"], cwd=work, env=env, timeout=120).stdout
    assert "name: quick-cpu" in shown and "# config hash" in shown
    demo = _run([exe, "demo", "--out", work / "demo", "--steps", "3", "--device", "cpu"],
                cwd=work, env=env, timeout=600)
    assert "1 fitted" in demo.stdout, demo.stdout
    stores = list((work / "demo").glob("sample_nucleus/*.ome.zarr"))
    assert len(stores) == 1 and (work / "demo" / "summary.csv").is_file()
