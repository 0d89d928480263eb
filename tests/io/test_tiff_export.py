"""Tests of chromarate.io.tiff_export: ImageJ hyperstacks for Fiji."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from chromarate._types import ResultStack
from chromarate.errors import ResultStoreError
from chromarate.export import SCHEMA_VERSION
from chromarate.io.images import read_density_image
from chromarate.io.tiff_export import write_result_tiff

from .test_zarr_store import ORIGIN, PIXEL, SHAPE, make_stack


def test_hyperstack_layout_calibration_and_names(tmp_path):
    stack = make_stack()
    path = write_result_tiff(stack, tmp_path / "sub" / "n.tif")
    assert path == tmp_path / "sub" / "n.tif"
    names = list(stack.channels) + ["nucleus (label)"]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        series = tif.series[0]
        assert series.axes == "CYX" and series.shape == (len(names), *SHAPE)
        data = series.asarray()
        ij = tif.imagej_metadata
        xres = tif.pages[0].tags["XResolution"].value
        yres = tif.pages[0].tags["YResolution"].value
    assert data.dtype == np.float32
    for i, name in enumerate(stack.channels):
        np.testing.assert_array_equal(data[i], stack.channels[name])  # NaN where NaN
    np.testing.assert_array_equal(data[-1], stack.labels["nucleus"])
    assert ij["hyperstack"] and ij["channels"] == len(names) and ij["mode"] == "color"
    assert ij["Labels"] == names
    # calibration: pixels per micrometre, and the origin in pixels (ImageJ's convention:
    # calibrated x = (pixel - xorigin) * pixel width)
    assert ij["unit"] == "micron"
    assert xres[0] / xres[1] == pytest.approx(1000.0 / PIXEL)
    assert yres[0] / yres[1] == pytest.approx(1000.0 / PIXEL)
    assert (0 - ij["xorigin"]) * PIXEL == pytest.approx(ORIGIN[1])
    assert (0 - ij["yorigin"]) * PIXEL == pytest.approx(ORIGIN[0])
    # display ranges and LUTs, one per channel
    ranges = np.asarray(ij["Ranges"]).reshape(-1, 2)
    assert ranges.shape == (len(names), 2) and np.all(ranges[:, 0] < ranges[:, 1])
    assert len(ij["LUTs"]) == len(names)
    assert all(np.asarray(lut).shape == (3, 256) for lut in ij["LUTs"])
    rate_lut = np.asarray(ij["LUTs"][names.index("rate")])
    assert tuple(rate_lut[:, -1]) == (255, 255, 0) and tuple(rate_lut[:, 0]) == (0, 0, 0)
    # provenance as JSON in the Info
    info = json.loads(ij["Info"])
    assert info["chromarate"]["config_hash"] == "abc123"
    assert info["chromarate"]["schema_version"] == SCHEMA_VERSION
    assert info["channels"] == names and info["origin_nm"] == list(ORIGIN)


def test_chromarate_reads_the_calibration_back(tmp_path):
    """chromarate's own TIFF reader (the ImageJ path) finds the pixel size."""
    path = write_result_tiff(make_stack(), tmp_path / "n.tif")
    label_plane = read_density_image(path, page=7)
    assert label_plane.pixel_size_nm == pytest.approx(PIXEL)
    assert label_plane.meta["pixel_size_source"] == "imagej"


def test_without_labels_and_overwrite(tmp_path):
    stack = make_stack()
    path = tmp_path / "n.tif"
    write_result_tiff(stack, path, include_labels=False)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["Labels"] == list(stack.channels)
    before = path.read_bytes()
    with pytest.raises(ResultStoreError, match="exists") as info:
        write_result_tiff(stack, path, overwrite=False)
    assert info.value.path == str(path)
    assert path.read_bytes() == before
    write_result_tiff(stack, path)  # overwrite=True by default
    assert path.read_bytes() != before  # now with the label channel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.tif"]


def test_failed_write_keeps_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "n.tif"
    write_result_tiff(make_stack(0), path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", boom)
    with pytest.raises(ResultStoreError, match="disk full"):
        write_result_tiff(make_stack(1), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.tif"]


def test_invalid_stack_is_refused(tmp_path):
    stack = make_stack()
    bad = ResultStack(stack.channels, {"nucleus": np.ones((3, 3), np.uint8)}, PIXEL, ORIGIN)
    with pytest.raises(ResultStoreError, match="label 'nucleus'"):
        write_result_tiff(bad, tmp_path / "n.tif")
    clash = ResultStack({"nucleus (label)": stack.channels["rate"]}, stack.labels, PIXEL, ORIGIN)
    with pytest.raises(ResultStoreError, match="not unique"):
        write_result_tiff(clash, tmp_path / "n.tif")
    assert list(tmp_path.iterdir()) == []


def test_a_result_store_given_by_its_path_is_written(tmp_path):
    from chromarate.io.zarr_store import write_result

    store = write_result(make_stack(), tmp_path / "cell" / "1.ome.zarr")
    out = write_result_tiff(str(store), tmp_path / "n.tif")
    with tifffile.TiffFile(out) as tif:
        assert tif.imagej_metadata["Labels"][0] == "density"
    with pytest.raises(ResultStoreError, match="2.ome.zarr"):
        write_result_tiff(tmp_path / "cell" / "2.ome.zarr", tmp_path / "m.tif")
    with pytest.raises(TypeError, match="ResultStack"):
        write_result_tiff({"rate": None}, tmp_path / "m.tif")
    assert not (tmp_path / "m.tif").exists()

