"""Opening a result the way users do, through napari's own reader choice.

napari picks the reader of a path opened without naming a plugin (drag and drop, File >
Open, ``napari PATH``, ``viewer.open(path, plugin=None)``) from its reader preferences;
chromarate adds ``*.ome.zarr/`` -> chromarate there on activation. These tests go through
napari's code paths (not chromarate's reader functions) and check the readable defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chromarate._napari import _preferences

from .conftest import make_result

MANIFEST = Path(__file__).resolve().parents[2] / "chromarate" / "_napari" / "napari.yaml"


def _need_napari():
    pytest.importorskip("napari", reason="napari is not installed: pip install -e '.[napari]'")


@pytest.fixture
def settings(monkeypatch):
    """napari's settings for this test, never saved to the user's settings file."""
    _need_napari()
    from napari.settings import get_settings

    s = get_settings()
    monkeypatch.setattr(s, "_save_on_change", False)
    monkeypatch.setattr(s.plugins, "extension2reader", {})
    return s


@pytest.fixture
def model():
    """A napari viewer model (no window): napari's reader choice without Qt."""
    _need_napari()
    from napari.components import ViewerModel
    from napari.plugins import _initialize_plugins

    from .conftest import _register_plugin

    _initialize_plugins()  # napari's built-in reader too, as in a running napari
    _register_plugin()
    return ViewerModel()


def test_activation_hook_is_declared_and_respects_the_users_choice(settings):
    npe2 = pytest.importorskip("npe2")
    mf = npe2.PluginManifest.from_file(MANIFEST)
    assert mf.on_activate == "chromarate._napari._preferences:on_activate"

    _preferences.on_activate(None)
    assert settings.plugins.extension2reader[_preferences.RESULT_PATTERN] == "chromarate"
    settings.plugins.extension2reader = {_preferences.RESULT_PATTERN: "napari"}
    assert _preferences.prefer_chromarate_reader(settings) is False
    assert settings.plugins.extension2reader[_preferences.RESULT_PATTERN] == "napari"


def test_napari_asks_without_the_preference_and_uses_it_with(model, settings, store):
    from napari.errors import MultipleReaderError

    with pytest.raises(MultipleReaderError):
        model.open(str(store), plugin=None)
    _preferences.prefer_chromarate_reader(settings)
    layers = model.open(str(store), plugin=None)
    assert [type(layer).__name__ for layer in layers] == ["Image"] * 7 + ["Labels"]
    assert {layer.source.reader_plugin for layer in layers} == {"chromarate"}
    rate = model.layers["cell/1 · rate λ"]
    np.testing.assert_array_equal(rate.data, make_result().channels["rate"])


def test_drag_and_drop_opens_a_result_readably(viewer, settings, store):
    from qtpy.QtCore import QUrl

    _preferences.prefer_chromarate_reader(settings)
    # what QtViewer.dropEvent does with the dropped URLs (a reader dialog would hang here)
    viewer.window._qt_viewer._open_from_list_of_urls_data(
        [QUrl.fromLocalFile(str(store))], stack=False, choose_plugin=False)
    density, rate = viewer.layers["cell/1 · density"], viewer.layers["cell/1 · rate λ"]
    nucleus = viewer.layers["cell/1 · nucleus"]
    assert density.visible and rate.visible and nucleus.visible
    assert str(rate.blending) == "translucent" and rate.opacity < 1.0
    assert rate.colorbar.visible and not density.colorbar.visible
    assert nucleus.contour > 0
    assert viewer.canvas.overlays.scale_bar.visible
    assert all(len(layer.name) <= 24 for layer in viewer.layers), [x.name for x in viewer.layers]
    assert viewer.layers.index(rate) > viewer.layers.index(density)  # rate drawn on top
