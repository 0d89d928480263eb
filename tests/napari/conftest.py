"""Fixtures of the napari plugin tests.

Tests that need a viewer use :func:`viewer`; they are skipped when napari (the ``napari``
extra) is not installed, or on Linux without a display (run them under ``xvfb-run -a``,
as ``.ci/run`` does).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from chromarate._types import ResultStack
from chromarate.export import CHANNELS, SCHEMA_VERSION

TINY_CONFIG = """\
name: napari-test
fit:
  training:
    steps: {steps}
    log_every: {log_every}
  prior:
    # the step count as given (a data-chosen weak prior would train up to 4x as many)
    regularisation: manual
    rate_fourier_features: 8
  network:
    width: 16
    fourier_features: 8
"""


def _need_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        pytest.skip("no display for Qt/OpenGL: run the napari tests under 'xvfb-run -a'")


@pytest.fixture
def viewer(request):
    """A napari viewer (not shown), cleaned up by napari's own fixture."""
    pytest.importorskip("napari", reason="napari is not installed: pip install -e '.[napari]'")
    pytest.importorskip("pytestqt", reason="pytest-qt is not installed")
    _need_display()
    make_napari_viewer = request.getfixturevalue("make_napari_viewer")
    _register_plugin()
    return make_napari_viewer()


@pytest.fixture
def bot(viewer, request):
    """pytest-qt's ``qtbot``, requested only once the viewer exists: naming ``qtbot`` in a
    test would create the (session) QApplication before the display check could skip."""
    return request.getfixturevalue("qtbot")


def _register_plugin() -> None:
    """Make sure npe2 knows the chromarate manifest (normally found via the entry point of
    an installed chromarate; registered from the source tree when that install is stale)."""
    from npe2 import PluginManager

    pm = PluginManager.instance()
    if "chromarate" not in pm:
        from importlib.resources import files

        pm.register(str(files("chromarate._napari") / "napari.yaml"))


@pytest.fixture
def tiny_config(tmp_path):
    """Path of a pipeline config with a 6-step fit of a narrow network."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG.format(steps=6, log_every=2))
    return path


@pytest.fixture
def endless_config(tmp_path):
    """Path of a config whose fit would run for hours, reporting every step."""
    path = tmp_path / "endless.yaml"
    path.write_text(TINY_CONFIG.format(steps=1_000_000, log_every=1))
    return path


def make_result(shape=(30, 40), pixel=20.0, origin=(100.0, 260.0), seed=0) -> ResultStack:
    """A result stack with known values (rate = 1 + x / nx inside an ellipse, NaN outside)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = ((yy - shape[0] / 2) / (shape[0] / 2.5)) ** 2 + \
        ((xx - shape[1] / 2) / (shape[1] / 2.5)) ** 2 < 1
    channels = {name: rng.uniform(0, 1, shape).astype(np.float32) for name in CHANNELS}
    channels["rate"] = np.where(mask, 1.0 + xx / shape[1], np.nan).astype(np.float32)
    channels["residual"] = np.where(mask, channels["residual"] - 0.5, np.nan).astype(np.float32)
    return ResultStack(channels=channels, labels={"nucleus": mask.astype(np.uint8)},
                       pixel_size_nm=pixel, origin_nm=origin,
                       provenance={"schema_version": SCHEMA_VERSION, "nucleus_id": 1,
                                   "n_localizations": 1234,
                                   "fit": {"device": "cpu", "final_loss": 0.25,
                                           "timings": {"fit": 2.5}},
                                   "timings": {"fit": 3.5, "render": 0.5},
                                   "metrics": {"rate_corr_truth": 0.9}})


@pytest.fixture
def store(tmp_path):
    """A result store of :func:`make_result` written to ``tmp_path/cell/1.ome.zarr``."""
    from chromarate.io.zarr_store import write_result

    return write_result(make_result(), tmp_path / "cell" / "1.ome.zarr")
