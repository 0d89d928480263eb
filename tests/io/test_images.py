"""Tests of chromarate.io.images.read_density_image on TIFFs written here with tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from chromarate._types import DensityMap
from chromarate.errors import ChromarateError, InputFormatError
from chromarate.io.images import read_density_image

SHARED_SMLM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "smlm"


def _img(shape=(20, 30), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 50).astype(dtype)


def test_imagej_micron_calibration(tmp_path):
    f = tmp_path / "ij.tif"
    a = _img()
    tifffile.imwrite(f, a, imagej=True, resolution=(1 / 0.08, 1 / 0.08),
                     metadata={"unit": "micron"})
    dm = read_density_image(f)
    assert isinstance(dm, DensityMap)
    assert dm.pixel_size_nm == pytest.approx(80.0)
    assert dm.origin_nm == (0.0, 0.0)
    assert dm.data.dtype == np.float32 and dm.shape == (20, 30)
    np.testing.assert_array_equal(dm.data, a)
    assert dm.meta["pixel_size_source"] == "imagej"
    assert dm.meta["source"] == str(f) and dm.meta["format"] == "tiff"


# ImageJ writes the micro sign escaped as "\u00B5m" (its description is ASCII)
@pytest.mark.parametrize("unit, per_unit_nm", [("um", 1000.0), ("\\u00B5m", 1000.0),
                                               ("micron", 1000.0), ("nm", 1.0), ("mm", 1e6)])
def test_imagej_units(tmp_path, unit, per_unit_nm):
    f = tmp_path / "ij.tif"
    size_in_unit = 16.0 / per_unit_nm  # a 16 nm pixel
    tifffile.imwrite(f, _img(dtype=np.uint16), imagej=True,
                     resolution=(1 / size_in_unit, 1 / size_in_unit), metadata={"unit": unit})
    assert read_density_image(f).pixel_size_nm == pytest.approx(16.0, rel=1e-5)


def test_imagej_spacing_is_not_the_pixel_size(tmp_path):
    # 'spacing' is ImageJ's z step; without an xy calibration the reader must refuse
    f = tmp_path / "ij_spacing.tif"
    tifffile.imwrite(f, _img(), imagej=True, metadata={"spacing": 0.1, "unit": "pixel"})
    with pytest.raises(InputFormatError, match="pixel_size_nm="):
        read_density_image(f)


def test_ome_physical_size(tmp_path):
    f = tmp_path / "img.ome.tif"
    tifffile.imwrite(f, _img(), ome=True, metadata={
        "PhysicalSizeX": 0.02, "PhysicalSizeXUnit": "\u00b5m",
        "PhysicalSizeY": 0.02, "PhysicalSizeYUnit": "\u00b5m"})
    dm = read_density_image(f)
    assert dm.pixel_size_nm == pytest.approx(20.0)
    assert dm.meta["pixel_size_source"] == "ome"
    g = tmp_path / "nm.ome.tif"
    tifffile.imwrite(g, _img(), ome=True, metadata={
        "PhysicalSizeX": 12.5, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 12.5, "PhysicalSizeYUnit": "nm"})
    assert read_density_image(g).pixel_size_nm == pytest.approx(12.5)
    h = tmp_path / "default_unit.ome.tif"  # OME's default unit is the micrometre
    tifffile.imwrite(h, _img(), ome=True, metadata={"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1})
    assert read_density_image(h).pixel_size_nm == pytest.approx(100.0)


def test_plain_tiff_resolution_in_centimetres(tmp_path):
    f = tmp_path / "cm.tif"
    tifffile.imwrite(f, _img(), resolution=(1e7 / 25.0, 1e7 / 25.0), resolutionunit="CENTIMETER")
    dm = read_density_image(f)
    assert dm.pixel_size_nm == pytest.approx(25.0)
    assert dm.meta["pixel_size_source"] == "tiff-resolution"


def test_print_resolution_in_inches_is_refused(tmp_path):
    f = tmp_path / "dpi.tif"
    tifffile.imwrite(f, _img(), resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(InputFormatError, match=r"dots per inch.*pixel_size_nm="):
        read_density_image(f)
    assert read_density_image(f, pixel_size_nm=10.0).pixel_size_nm == 10.0


def test_argument_overrides_the_file(tmp_path):
    f = tmp_path / "ij.tif"
    tifffile.imwrite(f, _img(), imagej=True, resolution=(12.5, 12.5), metadata={"unit": "um"})
    dm = read_density_image(f, pixel_size_nm=33.0)
    assert dm.pixel_size_nm == 33.0 and dm.meta["pixel_size_source"] == "argument"


def test_unknown_pixel_size_is_refused_naming_the_option(tmp_path):
    f = tmp_path / "plain.tif"
    tifffile.imwrite(f, _img())
    with pytest.raises(InputFormatError, match="pixel_size_nm=") as info:
        read_density_image(f)
    assert str(f) in str(info.value) and info.value.path == str(f)
    assert read_density_image(f, pixel_size_nm=20.0).pixel_size_nm == 20.0


def test_non_square_pixels_are_refused(tmp_path):
    f = tmp_path / "rect.tif"
    tifffile.imwrite(f, _img(), resolution=(1e7 / 20.0, 1e7 / 30.0), resolutionunit="CENTIMETER")
    with pytest.raises(InputFormatError, match="non-square"):
        read_density_image(f)


def test_stack_needs_a_page_and_the_page_selects_a_plane(tmp_path):
    f = tmp_path / "stack.tif"
    stack = np.stack([np.full((8, 9), k, np.uint16) for k in range(5)])
    tifffile.imwrite(f, stack, imagej=True, resolution=(50.0, 50.0), metadata={"unit": "um"})
    with pytest.raises(InputFormatError, match=r"not 2-D.*5 planes.*page="):
        read_density_image(f)
    dm = read_density_image(f, page=3)
    assert dm.shape == (8, 9) and np.all(dm.data == 3)
    assert dm.pixel_size_nm == pytest.approx(20.0) and dm.meta["page"] == 3
    with pytest.raises(InputFormatError, match="page=5 is out of range"):
        read_density_image(f, page=5)
    for bad in (-1, 1.5, True):
        with pytest.raises(InputFormatError, match="page="):
            read_density_image(f, page=bad)


def test_singleton_axes_are_dropped(tmp_path):
    f = tmp_path / "one.tif"
    tifffile.imwrite(f, _img(shape=(1, 12, 14)))
    dm = read_density_image(f, pixel_size_nm=10.0)
    assert dm.shape == (12, 14)
    assert read_density_image(f, pixel_size_nm=10.0, page=0).shape == (12, 14)


def test_rgb_is_refused(tmp_path):
    f = tmp_path / "rgb.tif"
    tifffile.imwrite(f, np.zeros((10, 12, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputFormatError, match="samples per pixel"):
        read_density_image(f, pixel_size_nm=10.0)


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, np.nan], [0.0, 2.0]], np.float32),
     r"1 NaN value\(s\) \(first at row 0, column 1\)"),
    (np.array([[1.0, np.inf], [0.0, 2.0]], np.float32), "infinite"),
    (np.array([[1, -3], [0, 2]], np.int16), "negative"),
    (np.array([[1 + 1j, 0], [0, 2]], np.complex64), "not a number type"),
])
def test_bad_values_are_refused(tmp_path, bad, match):
    f = tmp_path / "bad.tif"
    tifffile.imwrite(f, bad)
    with pytest.raises(InputFormatError, match=match) as info:
        read_density_image(f, pixel_size_nm=10.0)
    assert str(f) in str(info.value)


def test_integer_and_float64_data_become_float32(tmp_path):
    for dtype in (np.uint8, np.uint16, np.int32, np.float64):
        f = tmp_path / f"{np.dtype(dtype).name}.tif"
        a = _img(dtype=dtype)
        tifffile.imwrite(f, a)
        dm = read_density_image(f, pixel_size_nm=10.0)
        assert dm.data.dtype == np.float32
        np.testing.assert_allclose(dm.data, a.astype(np.float32))
        assert dm.meta["dtype"] == np.dtype(dtype).name


def test_missing_and_non_tiff_files(tmp_path):
    with pytest.raises(InputFormatError, match="not found"):
        read_density_image(tmp_path / "nope.tif", pixel_size_nm=10.0)
    txt = tmp_path / "notes.tif"
    txt.write_text("x,y\n1,2\n")
    with pytest.raises(InputFormatError, match="not a readable TIFF") as info:
        read_density_image(txt, pixel_size_nm=10.0)
    assert isinstance(info.value, ChromarateError) and isinstance(info.value, ValueError)
    with pytest.raises(InputFormatError, match="directory"):
        read_density_image(tmp_path, pixel_size_nm=10.0)


def test_bad_pixel_size_argument(tmp_path):
    f = tmp_path / "plain.tif"
    tifffile.imwrite(f, _img())
    for bad in (0.0, -2.0, float("nan"), "20", True):
        with pytest.raises(InputFormatError, match="pixel_size_nm="):
            read_density_image(f, pixel_size_nm=bad)


@pytest.mark.skipif(not (SHARED_SMLM / "colicoords" / "binary_storm.tif").is_file(),
                    reason="shared SMLM data (../shared/data/smlm/colicoords) not present")
def test_reads_a_plane_of_the_colicoords_mask_stack():
    f = SHARED_SMLM / "colicoords" / "binary_storm.tif"
    with pytest.raises(InputFormatError, match="9 planes"):
        read_density_image(f, pixel_size_nm=80.0)
    with pytest.raises(InputFormatError, match="pixel_size_nm="):  # no calibration stored
        read_density_image(f, page=0)
    dm = read_density_image(f, page=0, pixel_size_nm=80.0)
    assert dm.shape == (512, 512) and set(np.unique(dm.data)) <= {0.0, 1.0}
    assert dm.data.sum() > 1000
