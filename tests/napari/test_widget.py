"""The "Infer reaction rates" and "Nucleus statistics" widgets in a headless viewer."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._napari._layers import METADATA_KEY
from chromarate.io.zarr_store import read_result

WAIT_MS = 180_000  # a tiny fit takes seconds; leave room for a loaded machine


@pytest.fixture
def widgets(viewer):
    from chromarate._napari._stats_widget import StatisticsWidget
    from chromarate._napari._widget import InferenceWidget

    infer, stats = InferenceWidget(viewer), StatisticsWidget(viewer)
    viewer.window.add_dock_widget(infer, name="Infer reaction rates")
    viewer.window.add_dock_widget(stats, name="Nucleus statistics")
    return viewer, infer, stats


@pytest.fixture
def notifications(monkeypatch):
    """Messages sent to napari's notifications, by kind."""
    import napari.utils.notifications as nt

    seen = {"error": [], "warning": [], "info": []}
    for kind in seen:
        monkeypatch.setattr(nt, f"show_{kind}", seen[kind].append)
    return seen


def test_widget_runs_a_tiny_pipeline_and_adds_the_layers(widgets, notifications, bot,
                                                         tiny_nucleus, tiny_config, tmp_path):
    viewer, infer, stats = widgets
    csv, _, _ = tiny_nucleus
    assert infer.preset.value == "quick-cpu" and infer.device.value == "auto"
    infer.file.value = csv
    infer.config_file.value = tiny_config
    infer.device.value = "cpu"
    infer.out_dir.value = tmp_path
    infer.run_button.clicked.emit()  # like a click
    assert infer.running and not infer.run_button.enabled and infer.cancel_button.enabled
    bot.waitUntil(lambda: not infer.running, timeout=WAIT_MS)

    assert notifications["error"] == [] and notifications["warning"] == []
    assert infer.status.value == "done: 1 nuclei"
    assert infer.n_progress == 3  # steps 2, 4 and 6: the live loss readout was fed
    assert infer.progress.value == infer.progress.max == 6
    assert infer.loss.value.split()[0] == f"{infer.results[0].fit.history['loss'][-1]:.4g}"
    names = [layer.name for layer in viewer.layers]
    assert "tiny/1 · rate λ" in names and "tiny/1 · nucleus" in names
    stack = infer.results[0].stack
    rate = viewer.layers["tiny/1 · rate λ"]
    np.testing.assert_array_equal(rate.data, stack.channels["rate"])
    np.testing.assert_allclose(rate.scale, [20.0, 20.0])
    np.testing.assert_allclose(rate.translate, np.add(stack.origin_nm, 10.0))
    saved = read_result(tmp_path / "tiny" / "1.ome.zarr")
    np.testing.assert_array_equal(saved.channels["rate"], stack.channels["rate"])
    # the statistics widget follows the new result
    assert stats.current == "tiny/1"
    table = dict(stats.table.data.to_list())  # rows of (statistic, value)
    assert table["nucleus_id"] == "1"
    # the statistics are over the pixels where the rate is trusted, outlined as a layer
    trusted = stack.labels["trusted"] > 0
    assert float(table["rate_mean"]) == pytest.approx(
        float(np.nanmean(stack.channels["rate"][trusted])), rel=1e-3)
    assert "tiny/1 · trusted rate" in names
    assert table["device"] == "cpu" and table["name"] == "tiny"
    stats.domains_button.clicked.emit()
    domains = viewer.layers["tiny/1 · domains"]
    assert type(domains).__name__ == "Labels" and domains.data.shape == rate.data.shape
    np.testing.assert_allclose(domains.translate, rate.translate)
    assert stats.current == "tiny/1"  # the domains layer belongs to the same result


def test_widget_runs_on_a_localization_layer(widgets, notifications, bot, tiny_nucleus,
                                             tiny_config):
    viewer, infer, _ = widgets
    csv, _, _ = tiny_nucleus
    viewer.open(str(csv), plugin="chromarate")
    density = viewer.layers[0]
    assert [c for c in infer.source.choices if c is not None] == [density, viewer.layers[1]]
    infer.source.value = density
    infer.config_file.value = tiny_config
    infer.device.value = "cpu"
    infer.start()
    bot.waitUntil(lambda: not infer.running, timeout=WAIT_MS)
    assert notifications["error"] == []
    assert infer.status.value == "done: 1 nuclei"
    assert "tiny/1 · nucleus" in [layer.name for layer in viewer.layers]
    assert density.metadata[METADATA_KEY]["localizations"] is not None


def test_cancel_stops_the_worker(widgets, notifications, bot, tiny_nucleus, endless_config):
    viewer, infer, _ = widgets
    csv, _, _ = tiny_nucleus
    infer.file.value = csv
    infer.config_file.value = endless_config
    infer.device.value = "cpu"
    infer.start()
    bot.waitUntil(lambda: infer.n_progress >= 2, timeout=WAIT_MS)
    n_layers = len(viewer.layers)
    infer.cancel_button.clicked.emit()
    bot.waitUntil(lambda: not infer.running, timeout=60_000)
    assert infer.status.value.startswith("cancelled")
    steps_at_stop = infer.n_progress
    bot.wait(500)
    assert infer.n_progress == steps_at_stop  # nothing arrives after the stop
    assert steps_at_stop < 100 and infer.results == []
    assert len(viewer.layers) == n_layers and infer.run_button.enabled
    assert notifications["error"] == []


def test_errors_become_notifications(widgets, notifications, bot, tmp_path, tiny_config):
    viewer, infer, _ = widgets
    infer.start()  # nothing chosen
    assert notifications["error"] == ["choose a localization layer or a localization file"]
    assert not infer.running

    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("fit:\n  training:\n    steps: -3\n")
    notes = tmp_path / "notes.csv"
    notes.write_text("a,b\n1,2\n")
    infer.file.value = notes
    infer.config_file.value = bad_config
    infer.start()
    assert "bad.yaml" in notifications["error"][-1] and "fit.training.steps" in notifications["error"][-1]

    infer.config_file.value = tiny_config
    infer.start()  # the file is read in the worker: the error arrives as an event
    bot.waitUntil(lambda: not infer.running, timeout=WAIT_MS)
    message = notifications["error"][-1]
    assert str(notes) in message and "Traceback" not in message
    assert infer.status.value.startswith("failed")
    assert len(viewer.layers) == 0
