"""Exports for other tools, each read back by that tool's conventions.

The readers here are written from the formats' documentation, independently of
chromarate's own readers: ThunderSTORM's CSV (quoted ``name [unit]`` headers, 1-based
frames), Picasso's HDF5 ``locs`` table in camera pixels with its YAML sidecar, and
OME-TIFF's OME-XML (physical pixel size and plane position). The localizations written
are the ones after filtering and drift correction.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from click.testing import CliRunner

from chromarate import read_localizations, render_density
from chromarate._types import Localizations
from chromarate.cli import cli
from chromarate.config import DriftConfig, FilterConfig, RenderConfig
from chromarate.drift import correct_drift
from chromarate.filtering import filter_localizations
from chromarate.io import (read_density_image, write_density_ome_tiff, write_picasso,
                           write_thunderstorm_csv)

THUNDERSTORM_HEADER = ["id", "frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]",
                       "offset [photon]", "uncertainty_xy [nm]"]


def _locs(n=3000, seed=0, drift_nm=0.0) -> Localizations:
    """Localizations on a 4 x 3 um field away from 0, with a linear drift in x."""
    rng = np.random.default_rng(seed)
    frame = np.sort(rng.integers(0, 2000, n))
    centres = rng.uniform([500, 500], [3500, 2500], (40, 2))
    pick = rng.integers(0, 40, n)
    xy = centres[pick] + rng.normal(0, 15, (n, 2))
    table = pd.DataFrame({
        "x_nm": xy[:, 0] + drift_nm * frame / 2000, "y_nm": xy[:, 1], "frame": frame,
        "photons": rng.uniform(300, 3000, n).round(), "precision_nm": rng.uniform(5, 30, n),
        "sigma_nm": rng.uniform(110, 150, n), "background": rng.uniform(5, 20, n),
    })
    return Localizations(table=table, meta={"source": "test", "frame_base": 0})


@pytest.fixture(scope="module")
def filtered() -> Localizations:
    locs = filter_localizations(_locs(), FilterConfig(max_precision_nm=20.0))
    assert 0 < len(locs) < 3000
    return locs


def test_thunderstorm_csv_by_thunderstorm_conventions(filtered, tmp_path):
    path = write_thunderstorm_csv(filtered, tmp_path / "cell.csv")
    assert path.read_text().splitlines()[0] == ",".join(f'"{h}"' for h in THUNDERSTORM_HEADER)
    df = pd.read_csv(path)
    assert list(df.columns) == THUNDERSTORM_HEADER
    t = filtered.table
    np.testing.assert_array_equal(df["id"], np.arange(1, len(t) + 1))
    np.testing.assert_array_equal(df["frame"], t["frame"].to_numpy() + 1)  # 1-based
    np.testing.assert_allclose(df["x [nm]"], t["x_nm"], atol=0.05)
    np.testing.assert_allclose(df["y [nm]"], t["y_nm"], atol=0.05)
    np.testing.assert_allclose(df["uncertainty_xy [nm]"], t["precision_nm"], atol=0.05)
    np.testing.assert_allclose(df["intensity [photon]"], t["photons"], atol=0.05)
    assert df["uncertainty_xy [nm]"].max() <= 20.0  # the filter's cut survived the export


def test_picasso_by_picasso_conventions(filtered, tmp_path):
    h5, yml = write_picasso(filtered, tmp_path / "cell.hdf5", pixel_size_nm=108.0)
    assert yml == tmp_path / "cell.yaml"
    meta = list(yaml.safe_load_all(yml.read_text()))
    assert len(meta) == 1 and meta[0]["Pixelsize"] == 108.0
    with h5py.File(h5, "r") as fh:
        locs = fh["locs"][...]
    for name in ("frame", "x", "y", "photons", "sx", "sy", "bg", "lpx", "lpy"):
        assert name in locs.dtype.names
    assert locs.dtype["frame"].kind == "u" and locs.dtype["x"] == np.float32
    t = filtered.table
    np.testing.assert_array_equal(locs["frame"], t["frame"])  # 0-based, as Picasso counts
    np.testing.assert_allclose(locs["x"] * 108.0, t["x_nm"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(locs["y"] * 108.0, t["y_nm"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(locs["lpx"] * 108.0, t["precision_nm"], rtol=1e-6)
    np.testing.assert_allclose(locs["sy"] * 108.0, t["sigma_nm"], rtol=1e-6)
    np.testing.assert_allclose(locs["bg"], t["background"], rtol=1e-6)
    # the camera holds every localization
    assert meta[0]["Width"] > locs["x"].max() and meta[0]["Height"] > locs["y"].max()
    assert meta[0]["Frames"] == int(t["frame"].max()) + 1

    back = read_localizations(h5)  # and chromarate's own reader agrees
    assert back.meta["format"] == "picasso"
    np.testing.assert_allclose(back.table["x_nm"], t["x_nm"], rtol=1e-6, atol=1e-3)


def test_picasso_refuses_what_it_cannot_store(filtered, tmp_path):
    shifted = Localizations(filtered.table.assign(x_nm=filtered.table["x_nm"] - 1000.0), {})
    with pytest.raises(ValueError, match="negative"):
        write_picasso(shifted, tmp_path / "a.hdf5", pixel_size_nm=100.0)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        write_picasso(filtered, tmp_path / "a.hdf5", pixel_size_nm=0.0)
    with pytest.raises(ValueError, match="width"):
        write_picasso(filtered, tmp_path / "a.hdf5", pixel_size_nm=100.0, width=3)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_density_ome_tiff_by_ome_conventions(tmp_path):
    locs = correct_drift(_locs(n=20000, drift_nm=60.0), DriftConfig(n_segments=4))
    density = render_density(locs, RenderConfig(pixel_size_nm=25.0))
    path = write_density_ome_tiff(density, tmp_path / "cell.ome.tif")
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome
        data = tf.pages[0].asarray()
        root = ET.fromstring(tf.ome_metadata)
    np.testing.assert_array_equal(data, density.data)
    ns = {"ome": root.tag.split("}")[0].strip("{")}
    pixels = root.find("ome:Image/ome:Pixels", ns)
    assert (int(pixels.get("SizeX")), int(pixels.get("SizeY"))) == density.data.shape[::-1]
    for axis in ("X", "Y"):
        assert float(pixels.get(f"PhysicalSize{axis}")) == 25.0
        assert pixels.get(f"PhysicalSize{axis}Unit") == "nm"
    plane = pixels.find("ome:Plane", ns)
    assert float(plane.get("PositionX")) == pytest.approx(density.origin_nm[1])
    assert float(plane.get("PositionY")) == pytest.approx(density.origin_nm[0])
    assert plane.get("PositionXUnit") == "nm"
    assert read_density_image(path).pixel_size_nm == pytest.approx(25.0)


def test_cli_export_applies_the_filter(tmp_path):
    src = write_thunderstorm_csv(_locs(), tmp_path / "in.csv")
    run = CliRunner().invoke
    res = run(cli, ["export", str(src), "--out", str(tmp_path / "f.csv"),
                    "--set", "filter.max_precision_nm=20"])
    assert res.exit_code == 0, res.output
    n = len(pd.read_csv(tmp_path / "f.csv"))
    assert f"{n} of 3000 localizations" in res.output and n < 3000

    res = run(cli, ["export", str(src), "--out", str(tmp_path / "f.hdf5")])
    assert res.exit_code != 0 and "--camera-pixel-nm" in res.output
    res = run(cli, ["export", str(src), "--out", str(tmp_path / "f.hdf5"),
                    "--camera-pixel-nm", "100"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((tmp_path / "f.yaml").read_text())["Pixelsize"] == 100.0

    res = run(cli, ["export", str(src), "--out", str(tmp_path / "d.ome.tif")])
    assert res.exit_code == 0, res.output
    assert read_density_image(tmp_path / "d.ome.tif").pixel_size_nm == 20.0
    res = run(cli, ["export", str(src), "--out", str(tmp_path / "d.png")])
    assert res.exit_code != 0 and "--out" in res.output
    # never over the input; a missing folder for the output is made
    before = src.read_bytes()
    res = run(cli, ["export", str(src), "--out", str(src)])
    assert res.exit_code != 0 and "replace the input" in res.output and src.read_bytes() == before
    res = run(cli, ["export", str(src), "--out", str(tmp_path / "new" / "g.csv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "g.csv").is_file()
