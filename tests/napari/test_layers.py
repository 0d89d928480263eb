"""Layer data of results and localizations (pure: no napari needed)."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._napari._layers import (METADATA_KEY, contrast_limits, density_layer_data,
                                        localization_layer_data, result_layer_data,
                                        truth_layer_data)
from chromarate._types import DensityMap, Localizations
from chromarate.export import CHANNEL_TABLE

from .conftest import make_result


def test_result_layers_names_scale_and_placement():
    stack = make_result(pixel=20.0, origin=(100.0, 260.0))
    layers = result_layer_data(stack, name="cell/1", source="x.ome.zarr")
    assert [t for _, _, t in layers] == ["image"] * 7 + ["labels"]
    names = [kw["name"] for _, kw, _ in layers]
    assert names[4] == "cell/1 · rate λ"
    assert names[-1] == "cell/1 · nucleus"
    assert len(set(names)) == len(names)
    for data, kw, _ in layers:
        assert kw["scale"] == (20.0, 20.0)
        # napari centres pixel i at translate + i * scale; pixel 0 covers [origin, origin + p)
        assert kw["translate"] == (110.0, 270.0)
        assert kw["units"] == ("nm", "nm")
        meta = kw["metadata"][METADATA_KEY]
        assert meta["stack"] is stack and meta["result"] == "cell/1"
        assert meta["source"] == "x.ome.zarr"
    by_channel = {kw["metadata"][METADATA_KEY].get("channel"): (d, kw) for d, kw, _ in layers}
    np.testing.assert_array_equal(by_channel["rate"][0], stack.channels["rate"])
    assert by_channel["rate"][1]["colormap"] == "inferno"
    assert by_channel["density"][1]["colormap"] == "gray"
    visible = [c for c, (_, kw) in by_channel.items() if c and kw["visible"]]
    assert visible == ["density", "rate"]
    lo, hi = by_channel["rate"][1]["contrast_limits"]
    assert 1.0 <= lo < hi <= 2.0  # rate = 1 + x / nx inside the nucleus
    lo, hi = by_channel["residual"][1]["contrast_limits"]
    assert lo == -hi and 0 < hi <= 0.5
    assert set(CHANNEL_TABLE) == set(stack.channels)


def test_result_layers_multiscale():
    stack = make_result()
    levels = {name: [a, a[::2, ::2]] for name, a in stack.channels.items()}
    layers = result_layer_data(stack, name="r", levels=levels)
    data, kw, _ = layers[0]
    assert kw["multiscale"] is True and isinstance(data, list) and len(data) == 2
    single = result_layer_data(stack, name="r", levels={k: [v] for k, v in levels.items()})
    assert "multiscale" not in single[0][1]


@pytest.mark.parametrize(("values", "rule", "expected"), [
    (np.full((3, 3), np.nan), "percentile", (0.0, 1.0)),
    (np.full((3, 3), 2.0), "percentile", (2.0, 3.0)),
    (np.zeros((3, 3)), "symmetric", (-1.0, 1.0)),
])
def test_contrast_limits_degenerate(values, rule, expected):
    assert contrast_limits(values, rule) == expected


def test_density_points_and_truth_layers():
    import pandas as pd

    dm = DensityMap(np.arange(12, dtype=np.float32).reshape(3, 4), 10.0, (50.0, -20.0))
    locs = Localizations(pd.DataFrame({"x_nm": [1.0, 2.0], "y_nm": [3.0, 4.0],
                                       "precision_nm": [5.0, 50.0], "frame": [0, 1]}))
    data, kw, kind = density_layer_data(dm, name="d", locs=locs, source="f.csv")
    assert kind == "image" and kw["scale"] == (10.0, 10.0) and kw["translate"] == (55.0, -15.0)
    assert kw["metadata"][METADATA_KEY]["localizations"] is locs
    pts, pkw, kind = localization_layer_data(locs, name="p")
    assert kind == "points"
    np.testing.assert_array_equal(pts, [[3.0, 1.0], [4.0, 2.0]])  # (y, x) in nm
    np.testing.assert_array_equal(pkw["size"], [10.0, 100.0])
    assert list(pkw["features"]) == ["frame", "precision_nm"]
    truth = {"rate": np.ones((2, 2)), "mask": np.eye(2, dtype=bool), "pixel_size_nm": 20.0,
             "origin_nm": (0.0, 0.0)}
    tdata, tkw, _ = truth_layer_data(truth, name="t")
    assert np.isnan(tdata[0, 1]) and tdata[0, 0] == 1.0 and tkw["translate"] == (10.0, 10.0)
