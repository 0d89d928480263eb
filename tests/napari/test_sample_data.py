"""Sample data: the bundled nucleus and its result."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._napari import _sample_data as sd
from chromarate.batch.tasks import file_sha256
from chromarate.data import sample_paths
from chromarate.io.zarr_store import write_result
from chromarate._types import ResultStack

from .conftest import make_result


@pytest.fixture
def no_stored_result(tmp_path, monkeypatch):
    """An empty cache and a working folder without chromarate-demo/."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(sd.ENV_RESULT, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sample_store(path, sha):
    stack = make_result()
    prov = {**stack.provenance, "input": {"path": "sample_nucleus.csv.gz", "sha256": sha}}
    return write_result(ResultStack(stack.channels, stack.labels, stack.pixel_size_nm,
                                    stack.origin_nm, prov), path)


def test_sample_nucleus_layers():
    (density, truth) = sd.sample_nucleus()  # 250,000 localizations: no points layer
    assert density[2] == "image" and density[1]["scale"] == (20.0, 20.0)
    assert density[0].sum() > 1e5
    assert truth[1]["name"] == "sample_nucleus · true rate λ"
    assert np.nanmin(truth[0]) >= 1.0 - 1e-6  # the sample's rates lie in [1, 2.4]


def test_find_sample_result(no_stored_result, monkeypatch):
    assert sd.find_sample_result() is None
    sha = file_sha256(sample_paths()[0])
    other = _sample_store(sd.cache_dir() / "sample_nucleus" / "1.ome.zarr", "0" * 64)
    assert sd.find_sample_result() is None  # a result of another input does not count
    demo = _sample_store(no_stored_result / "chromarate-demo" / "sample_nucleus" / "1.ome.zarr",
                         sha)
    assert sd.find_sample_result() == demo.relative_to(no_stored_result)
    monkeypatch.setenv(sd.ENV_RESULT, str(other))
    assert sd.find_sample_result() == other  # named explicitly


def test_stored_sample_result_is_loaded(no_stored_result, monkeypatch):
    store = _sample_store(no_stored_result / "r.ome.zarr", "x")
    monkeypatch.setenv(sd.ENV_RESULT, str(store))
    layers = sd.sample_nucleus_result()
    assert [t for _, _, t in layers] == ["image"] * 7 + ["labels", "image"]
    assert layers[-1][1]["name"] == "sample_nucleus · true rate λ"


def test_viewer_sample_data(viewer, no_stored_result, bot, monkeypatch):
    from chromarate._napari import _widget
    from chromarate.config import with_overrides

    # report every fit step, so that the cancel below takes effect within a step
    real = _widget.resolve_config
    monkeypatch.setattr(_widget, "resolve_config", lambda preset, file: with_overrides(
        real(preset, file), {"fit.training.log_every": 1}))
    viewer.open_sample("chromarate", "sample_nucleus")
    assert [layer.name for layer in viewer.layers] == [
        "sample_nucleus · density (20 nm pixels)", "sample_nucleus · true rate λ"]
    np.testing.assert_allclose(viewer.layers[0].scale, [20.0, 20.0])

    # no stored result: the sample shows at once and its fit starts in the docked widget
    viewer.layers.clear()
    viewer.open_sample("chromarate", "sample_nucleus_result")
    assert len(viewer.layers) == 2
    _, infer = viewer.window.add_plugin_dock_widget("chromarate", "Infer reaction rates")
    assert infer.running and infer.out_dir.value == sd.cache_dir()
    assert infer.preset.value == "quick-cpu"
    assert infer.file.value == sample_paths()[0]
    infer.cancel()
    bot.waitUntil(lambda: not infer.running, timeout=120_000)
    assert infer.status.value.startswith("cancelled")
