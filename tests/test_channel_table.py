"""chromarate.export.CHANNEL_TABLE is the one source of channel names and display settings.

The OME-Zarr store (``omero`` colours and active channels), the ImageJ TIFF export (LUTs),
the OME-TIFF density export (unit) and the napari layers (titles, colormaps, contrast
rules, visibility) all agree with the table -- and follow it when it changes.
"""

from __future__ import annotations

import html
import types

import numpy as np
import pytest
import tifffile
import zarr

from chromarate import export
from chromarate._napari._layers import (METADATA_KEY, contrast_limits, density_layer_data,
                                        result_layer_data, truth_layer_data)
from chromarate._types import DensityMap
from chromarate.export import CHANNEL_TABLE, CHANNELS, ChannelSpec, channel_color, channel_spec
from chromarate.io.ome_tiff import write_density_ome_tiff
from chromarate.io.tiff_export import write_result_tiff
from chromarate.io.zarr_store import write_result

from .io.test_zarr_store import make_stack


def _omero_channels(path, version: str) -> list[dict]:
    attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    ome = attrs["ome"] if version == "0.5" else attrs
    return ome["omero"]["channels"]


def _tiff_lut_colours(path) -> list[str]:
    with tifffile.TiffFile(path) as tif:
        luts = tif.imagej_metadata["LUTs"]
    return ["".join(f"{int(v):02X}" for v in lut[:, -1]) for lut in luts]


def _layers_by_channel(stack) -> dict:
    return {kw["metadata"][METADATA_KEY]["channel"]: (data, kw)
            for data, kw, kind in result_layer_data(stack, name="r") if kind == "image"}


def test_the_table_lists_the_stored_channels_in_order():
    assert CHANNELS == tuple(CHANNEL_TABLE)
    assert all(isinstance(s, ChannelSpec) and s.name == n for n, s in CHANNEL_TABLE.items())
    assert all(len(s.color) == 6 and int(s.color, 16) >= 0 for s in CHANNEL_TABLE.values())
    assert {s.contrast for s in CHANNEL_TABLE.values()} <= {"percentile", "symmetric"}
    assert all(s.unit for s in CHANNEL_TABLE.values())
    with pytest.raises(TypeError):
        CHANNEL_TABLE["rate"] = CHANNEL_TABLE["density"]  # read-only


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_store_tiff_and_napari_agree_with_the_table(tmp_path, version):
    stack = make_stack()
    store = write_result(stack, tmp_path / "n.ome.zarr", ngff_version=version)
    channels = _omero_channels(store, version)
    assert [c["label"] for c in channels] == list(CHANNELS)
    assert [c["color"] for c in channels] == [CHANNEL_TABLE[n].color for n in CHANNELS]
    assert [c["active"] for c in channels] == [CHANNEL_TABLE[n].active for n in CHANNELS]

    tif = write_result_tiff(stack, tmp_path / "n.tif", include_labels=False)
    assert _tiff_lut_colours(tif) == [CHANNEL_TABLE[n].color for n in CHANNELS]

    layers = _layers_by_channel(stack)
    assert list(layers) == list(CHANNELS)
    for name, (data, kw) in layers.items():
        spec = CHANNEL_TABLE[name]
        assert kw["colormap"] == spec.colormap
        assert kw["visible"] == spec.visible
        assert kw["name"] == f"r · {spec.title}"
        assert kw["contrast_limits"] == contrast_limits(data, spec.contrast)


def test_density_and_truth_layers_use_the_table():
    dm = DensityMap(np.arange(12, dtype=np.float32).reshape(3, 4), 10.0)
    assert density_layer_data(dm, name="d")[1]["colormap"] == CHANNEL_TABLE["density"].colormap
    truth = {"rate": np.ones((2, 2)), "mask": np.eye(2, dtype=bool), "pixel_size_nm": 20.0,
             "origin_nm": (0.0, 0.0)}
    assert truth_layer_data(truth, name="t")[1]["colormap"] == CHANNEL_TABLE["rate"].colormap


def test_changing_the_table_changes_every_consumer(tmp_path, monkeypatch):
    """One edit of the table reaches the store, the TIFF and the napari layers."""
    changed = dict(CHANNEL_TABLE)
    changed["rate"] = ChannelSpec("rate", "λ map", "ratio", "123456", "viridis",
                                  "symmetric", visible=False, active=False)
    changed["density"] = ChannelSpec("density", "density", "counts", "FFFFFF", "gray")
    monkeypatch.setattr(export, "CHANNEL_TABLE", types.MappingProxyType(changed))
    stack = make_stack()
    rate_index = CHANNELS.index("rate")

    store = write_result(stack, tmp_path / "n.ome.zarr")
    rate = _omero_channels(store, "0.5")[rate_index]
    assert (rate["color"], rate["active"]) == ("123456", False)
    tif = write_result_tiff(stack, tmp_path / "n.tif", include_labels=False)
    assert _tiff_lut_colours(tif)[rate_index] == "123456"
    data, kw = _layers_by_channel(stack)["rate"]
    assert (kw["colormap"], kw["visible"], kw["name"]) == ("viridis", False, "r · λ map")
    assert kw["contrast_limits"] == contrast_limits(data, "symmetric")

    dm = DensityMap(np.ones((3, 4), np.float32), 10.0)
    out = write_density_ome_tiff(dm, tmp_path / "d.ome.tif")
    with tifffile.TiffFile(out) as tif:
        assert '"values": "counts"' in html.unescape(tif.ome_metadata)


def test_unknown_channels_fall_back():
    assert channel_spec("extra").colormap == "gray" and not channel_spec("extra").visible
    assert channel_color("extra", 0) != channel_color("extra", 1)
    assert channel_color("rate", 5) == CHANNEL_TABLE["rate"].color
