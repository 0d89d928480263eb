"""Tests of the binary localization readers in chromarate.io.formats.

Real files from ../shared/data/smlm are checked against facts computed here directly with
h5py, zipfile, yaml and numpy (independent of the readers); malformed files are built in
tmp_path and must raise InputFormatError naming the file.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io.formats import decode, picasso, smap, smlm

from .shared_data import head as _head, real_file as _real

h5py = pytest.importorskip("h5py")

MODULES = {"picasso": picasso, "smap": smap, "decode": decode, "smlm": smlm}


def _check_canonical(locs: Localizations, fmt: str, path: Path) -> None:
    t = locs.table
    assert list(t.columns) == [c for c in CANONICAL_COLUMNS if c in t.columns]
    for c in t.columns:
        assert t[c].dtype == (np.int64 if c == "frame" else np.float64), c
    assert np.isfinite(t["x_nm"]).all() and np.isfinite(t["y_nm"]).all()
    if "frame" in t:
        assert (t["frame"] >= 0).all()
    m = locs.meta
    assert m["source"] == str(path)
    assert m["format"] == fmt
    assert m["n_rows"] == len(t)
    assert "pixel_size_nm" in m and "frame_base" in m


def _raises(exc_type, path: Path, *fragments: str, call=None):
    """Run ``call`` and check the error type, that the message names the file and holds fragments."""
    with pytest.raises(exc_type) as info:
        call()
    msg = str(info.value)
    assert path.name in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


# =========================================================================== Picasso


def _yaml_pixelsize(path: Path) -> float:
    """Pixelsize from the sidecar, by a plain regex over top-level keys."""
    values = re.findall(r"^Pixelsize:\s*([0-9.]+)\s*$", path.read_text(), flags=re.M)
    assert len(set(values)) == 1
    return float(values[0])


def test_picasso_egfr_mols_real():
    path = _real("picasso/egfr_mols.hdf5")
    with h5py.File(path, "r") as fh:
        raw = fh["locs"][()]
    px = _yaml_pixelsize(path.with_suffix(".yaml"))
    assert px == 130.0

    locs = picasso.read(path)
    _check_canonical(locs, "picasso", path)
    t = locs.table
    assert len(t) == raw.shape[0] == 4230
    np.testing.assert_array_equal(t["x_nm"].to_numpy(), raw["x"].astype(np.float64) * px)
    np.testing.assert_array_equal(t["y_nm"].to_numpy(), raw["y"].astype(np.float64) * px)
    assert t["x_nm"].min() == pytest.approx(float(raw["x"].min()) * 130.0)
    assert t["y_nm"].max() == pytest.approx(float(raw["y"].max()) * 130.0)
    np.testing.assert_allclose(
        t["precision_nm"], (raw["lpx"].astype(float) + raw["lpy"].astype(float)) / 2 * px, rtol=1e-12
    )
    np.testing.assert_allclose(
        t["sigma_nm"], (raw["sx"].astype(float) + raw["sy"].astype(float)) / 2 * px, rtol=1e-12
    )
    np.testing.assert_array_equal(t["photons"], raw["photons"].astype(float))
    np.testing.assert_array_equal(t["background"], raw["bg"].astype(float))
    # a "molecules" table: frame holds mean frames (floats), which are not kept
    assert not np.array_equal(raw["frame"], np.round(raw["frame"]))
    assert "frame" not in t and "frame" in locs.meta["dropped_columns"]
    assert "z_nm" not in t
    assert locs.meta["pixel_size_nm"] == 130.0 and locs.meta["frame_base"] == 0
    assert locs.meta["units"]["x_nm"] == "px"


def test_picasso_raw_movie_real():
    path = _real("picasso/raw_movie_locs.hdf5")
    with h5py.File(path, "r") as fh:
        raw = fh["locs"][()]
    px = _yaml_pixelsize(path.with_suffix(".yaml"))

    locs = picasso.read(path)
    _check_canonical(locs, "picasso", path)
    t = locs.table
    assert len(t) == raw.shape[0] == 2399
    # Picasso frames are 0-based: kept as they are
    np.testing.assert_array_equal(t["frame"].to_numpy(), raw["frame"].astype(np.int64))
    assert int(t["frame"].min()) == int(raw["frame"].min())
    np.testing.assert_array_equal(t["x_nm"].to_numpy(), raw["x"].astype(np.float64) * px)
    assert t.loc[0, "x_nm"] == pytest.approx(25.577694 * 130.0, rel=1e-6)
    assert t.loc[0, "y_nm"] == pytest.approx(23.390852 * 130.0, rel=1e-6)
    assert t["x_nm"].max() <= 32 * 130.0  # a 32 x 32 px simulated movie
    assert locs.meta["pixel_size_source"].startswith("sidecar YAML")


def test_picasso_pixel_size_option_overrides_yaml():
    path = _real("picasso/raw_movie_locs.hdf5")
    with h5py.File(path, "r") as fh:
        x = fh["locs"]["x"].astype(np.float64)
    locs = picasso.read(path, pixel_size_nm=100)
    np.testing.assert_array_equal(locs.table["x_nm"].to_numpy(), x * 100.0)
    assert locs.meta["pixel_size_nm"] == 100.0
    assert locs.meta["yaml_pixel_size_nm"] == 130.0
    assert locs.meta["pixel_size_source"] == "option pixel_size_nm"


def _picasso_locs(n: int = 5, **overrides) -> np.ndarray:
    dtype = [("frame", "<u4"), ("x", "<f4"), ("y", "<f4"), ("photons", "<f4"), ("sx", "<f4"),
             ("sy", "<f4"), ("bg", "<f4"), ("lpx", "<f4"), ("lpy", "<f4")]
    locs = np.zeros(n, dtype=dtype)
    locs["frame"] = np.arange(n)
    locs["x"] = 10 + np.arange(n)
    locs["y"] = 20 + np.arange(n)
    locs["photons"] = 1000
    locs["sx"] = locs["sy"] = 1.0
    locs["bg"] = 5
    locs["lpx"] = locs["lpy"] = 0.1
    for k, v in overrides.items():
        locs[k] = v
    return locs


def _write_picasso(tmp_path: Path, name: str = "cell_locs", locs=None, yaml_text: str | None =
                   "Generated by: Picasso Localize\nPixelsize: 100\n") -> Path:
    path = tmp_path / f"{name}.hdf5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("locs", data=_picasso_locs() if locs is None else locs)
    if yaml_text is not None:
        path.with_suffix(".yaml").write_text(yaml_text)
    return path


def test_a_batchs_pixel_size_fills_only_a_picasso_file_without_one(tmp_path):
    """``read_localizations(defaults={"pixel_size_nm": ...})``: a Picasso file whose YAML
    gives the pixel size keeps it; one without its YAML takes the default (an explicit
    option still replaces the YAML's)."""
    from chromarate.io.localizations import read_localizations

    with_yaml = _write_picasso(tmp_path, "a")  # Pixelsize: 100
    without = _write_picasso(tmp_path, "b", yaml_text=None)
    defaults = {"pixel_size_nm": 130.0, "units": "nm"}
    kept = read_localizations(with_yaml, defaults=defaults)
    np.testing.assert_array_equal(kept.table["x_nm"], (10 + np.arange(5)) * 100.0)
    filled = read_localizations(without, defaults=defaults)
    np.testing.assert_array_equal(filled.table["x_nm"], (10 + np.arange(5)) * 130.0)
    given = read_localizations(with_yaml, defaults=defaults, pixel_size_nm=130.0)
    np.testing.assert_array_equal(given.table["x_nm"], (10 + np.arange(5)) * 130.0)


def test_picasso_synthetic_roundtrip(tmp_path):
    path = _write_picasso(tmp_path)
    locs = picasso.read(path)
    np.testing.assert_array_equal(locs.table["x_nm"], (10 + np.arange(5)) * 100.0)
    np.testing.assert_array_equal(locs.table["frame"], np.arange(5))
    np.testing.assert_allclose(locs.table["precision_nm"], 10.0, rtol=1e-6)
    assert picasso.detect(path, _head(path))


def test_picasso_z_is_nm_and_multidoc_yaml_with_python_tags(tmp_path):
    base = _picasso_locs()
    dtype = base.dtype.descr + [("z", "<f4")]
    locs = np.zeros(5, dtype=dtype)
    for name in base.dtype.names:
        locs[name] = base[name]
    locs["z"] = [-300, -100, 0, 100, 300]
    yaml_text = (
        "Camera: Sim\nROI: !!python/tuple [1, 2]\n---\nGenerated by: Picasso Localize\n"
        "Pixelsize: 108\n---\nGenerated by: Picasso Filter\n"
    )
    path = _write_picasso(tmp_path, locs=locs, yaml_text=yaml_text)
    out = picasso.read(path)
    np.testing.assert_array_equal(out.table["z_nm"], [-300, -100, 0, 100, 300])
    np.testing.assert_array_equal(out.table["x_nm"], (10 + np.arange(5)) * 108.0)
    assert "nm" in out.meta["units"]["z_nm"]
    assert out.meta["picasso_steps"] == ["Picasso Localize", "Picasso Filter"]


def test_picasso_without_locs(tmp_path):
    path = tmp_path / "nolocs.hdf5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("other", data=np.arange(3))
    path.with_suffix(".yaml").write_text("Generated by: Picasso Localize\nPixelsize: 100\n")
    _raises(InputFormatError, path, "'locs' table is missing", "'other'", call=lambda: picasso.read(path))
    # detection still claims it (Picasso sidecar) so the user gets this message
    assert picasso.detect(path, _head(path))


def test_picasso_missing_yaml(tmp_path):
    path = _write_picasso(tmp_path, yaml_text=None)
    _raises(InputFormatError, path, "pixel_size_nm", "cell_locs.yaml", "missing",
            call=lambda: picasso.read(path))
    locs = picasso.read(path, pixel_size_nm=160.0)
    assert locs.meta["pixel_size_nm"] == 160.0 and locs.meta["sidecar_yaml"] is None


def test_picasso_yaml_without_pixel_size(tmp_path):
    path = _write_picasso(tmp_path, yaml_text="Generated by: Picasso Localize\n---\nBox Size: 7\n")
    msg = _raises(InputFormatError, path, "pixel_size_nm", "no Pixelsize", call=lambda: picasso.read(path))
    assert "2 document(s)" in msg
    assert picasso.read(path, pixel_size_nm=90).meta["pixel_size_nm"] == 90.0


@pytest.mark.parametrize(
    "yaml_text, fragment",
    [
        ("Pixelsize: [unclosed\n", "not valid YAML"),
        ("Pixelsize: -5\n", "not a positive number"),
        ("Pixelsize: 100\n---\nPixelsize: 130\n", "different pixel sizes"),
    ],
)
def test_picasso_bad_yaml(tmp_path, yaml_text, fragment):
    path = _write_picasso(tmp_path, yaml_text=yaml_text)
    _raises(InputFormatError, path, "pixel_size_nm", fragment, call=lambda: picasso.read(path))


def test_picasso_truncated_hdf5(tmp_path):
    src = _real("picasso/egfr_mols.hdf5")
    path = tmp_path / "egfr_cut.hdf5"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    shutil.copy(src.with_suffix(".yaml"), path.with_suffix(".yaml"))
    _raises(InputFormatError, path, "truncated or corrupt HDF5", call=lambda: picasso.read(path))
    assert picasso.detect(path, _head(path)) is False


def test_picasso_nan_coordinate(tmp_path):
    locs = _picasso_locs()
    locs["y"][3] = np.nan
    path = _write_picasso(tmp_path, locs=locs)
    _raises(InputFormatError, path, "NaN", "'y'", "row 3", call=lambda: picasso.read(path))
    locs["y"][3] = np.inf
    path = _write_picasso(tmp_path, name="inf", locs=locs)
    _raises(InputFormatError, path, "infinite", call=lambda: picasso.read(path))


def test_picasso_other_malformed(tmp_path):
    empty = _write_picasso(tmp_path, name="empty", locs=_picasso_locs(0))
    _raises(InputFormatError, empty, "contains no localizations", call=lambda: picasso.read(empty))

    no_x = tmp_path / "nox.hdf5"
    with h5py.File(no_x, "w") as fh:
        fh.create_dataset("locs", data=np.zeros(3, dtype=[("frame", "<u4"), ("y", "<f4")]))
    _raises(InputFormatError, no_x, "no field 'x'", call=lambda: picasso.read(no_x, pixel_size_nm=1))

    not_table = tmp_path / "plain.hdf5"
    with h5py.File(not_table, "w") as fh:
        fh.create_dataset("locs", data=np.zeros((3, 2)))
    _raises(InputFormatError, not_table, "not a table", call=lambda: picasso.read(not_table, pixel_size_nm=1))

    neg = _picasso_locs()
    neg["lpx"][1] = -0.1
    neg_path = _write_picasso(tmp_path, name="neg", locs=neg)
    _raises(InputFormatError, neg_path, "negative", "'lpx'", call=lambda: picasso.read(neg_path))

    text = tmp_path / "text.hdf5"
    text.write_text("frame,x,y\n1,2,3\n")
    _raises(InputFormatError, text, "not an HDF5 file", call=lambda: picasso.read(text))

    gz = tmp_path / "gz.hdf5"
    gz.write_bytes(gzip.compress(_write_picasso(tmp_path, name="g").read_bytes()))
    _raises(InputFormatError, gz, "gzip", call=lambda: picasso.read(gz))

    missing = tmp_path / "absent.hdf5"
    _raises(InputFormatError, missing, "not found", call=lambda: picasso.read(missing))
    zero = tmp_path / "zero.hdf5"
    zero.write_bytes(b"")
    _raises(InputFormatError, zero, "empty file", call=lambda: picasso.read(zero))


def test_picasso_options(tmp_path):
    path = _write_picasso(tmp_path)
    with pytest.raises(TypeError, match="frame_base"):
        picasso.read(path, frame_base=1)
    with pytest.raises(ConfigError, match="pixel_size_nm"):
        picasso.read(path, pixel_size_nm=-1)


# =========================================================================== SMAP


def test_smap_real():
    path = _real("locan/smap_dstorm_data.mat")
    assert _head(path).startswith(b"MATLAB 7.3 MAT-file")
    with h5py.File(path, "r") as fh:
        loc = fh["saveloc/loc"]
        raw = {k: loc[k][()].astype(np.float64).ravel() for k in
               ("xnm", "ynm", "znm", "frame", "phot", "bg", "locprecnm", "PSFxnm", "PSFynm")}
        assert loc["xnm"].shape == (1, 4884)  # MATLAB row vector, stored transposed
        cam_um = fh["saveloc/file/info/cam_pixelsize_um"][()].ravel()

    locs = smap.read(path)
    _check_canonical(locs, "smap", path)
    t = locs.table
    assert len(t) == 4884
    np.testing.assert_array_equal(t["x_nm"], raw["xnm"])
    np.testing.assert_array_equal(t["y_nm"], raw["ynm"])
    np.testing.assert_array_equal(t["z_nm"], raw["znm"])
    assert t["x_nm"].min() == pytest.approx(333.86734, rel=1e-6)
    assert t["x_nm"].max() == pytest.approx(26891.121, rel=1e-6)
    # SMAP frames are 1-based: the file's smallest frame is 1 and there is no frame 0
    assert raw["frame"].min() == 1.0 and raw["frame"].max() == 1001.0
    np.testing.assert_array_equal(t["frame"], raw["frame"].astype(np.int64) - 1)
    assert t["frame"].min() == 0
    np.testing.assert_array_equal(t["photons"], raw["phot"])
    np.testing.assert_array_equal(t["background"], raw["bg"])
    np.testing.assert_array_equal(t["precision_nm"], raw["locprecnm"])
    np.testing.assert_array_equal(t["sigma_nm"], (raw["PSFxnm"] + raw["PSFynm"]) / 2)
    assert locs.meta["frame_base"] == 1
    assert locs.meta["pixel_size_nm"] is None  # already nm: no conversion
    assert locs.meta["camera_pixel_size_nm"] == pytest.approx(cam_um[0] * 1000) == pytest.approx(104.0)


def _write_smap(path: Path, fields: dict[str, np.ndarray], saveloc: bool = True) -> Path:
    """A minimal MATLAB v7.3-like SMAP file: 512-byte text header + HDF5."""
    with h5py.File(path, "w", userblock_size=512) as fh:
        if saveloc:
            loc = fh.create_group("saveloc").create_group("loc")
            for k, v in fields.items():
                loc.create_dataset(k, data=np.asarray(v, dtype=np.float32).reshape(1, -1))
        else:
            fh.create_dataset("something", data=np.arange(3))
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    return path


def test_smap_synthetic_and_malformed(tmp_path):
    good = _write_smap(tmp_path / "ok_sml.mat", {"xnm": [1, 2, 3], "ynm": [4, 5, 6], "frame": [1, 1, 2],
                                                   "znm": [0, 0, 0]})
    assert smap.detect(good, _head(good))
    locs = smap.read(good)
    np.testing.assert_array_equal(locs.table["frame"], [0, 0, 1])
    assert "z_nm" not in locs.table and "znm" in locs.meta["dropped_columns"]  # all-zero z of a 2-D fit

    frame0 = _write_smap(tmp_path / "f0_sml.mat", {"xnm": [1, 2], "ynm": [3, 4], "frame": [0, 1]})
    _raises(InputFormatError, frame0, "below 1", call=lambda: smap.read(frame0))

    no_y = _write_smap(tmp_path / "noy_sml.mat", {"xnm": [1, 2]})
    _raises(InputFormatError, no_y, "no field 'ynm'", call=lambda: smap.read(no_y))

    empty = _write_smap(tmp_path / "empty_sml.mat", {"xnm": [], "ynm": []})
    _raises(InputFormatError, empty, "contains no localizations", call=lambda: smap.read(empty))

    uneven = _write_smap(tmp_path / "uneven_sml.mat", {"xnm": [1, 2], "ynm": [1, 2], "phot": [1, 2, 3]})
    _raises(InputFormatError, uneven, "saveloc.loc.phot has 3 values", call=lambda: smap.read(uneven))

    nan = _write_smap(tmp_path / "nan_sml.mat", {"xnm": [1, np.nan], "ynm": [1, 2]})
    _raises(InputFormatError, nan, "NaN", "saveloc.loc.xnm", call=lambda: smap.read(nan))

    other = _write_smap(tmp_path / "other.mat", {}, saveloc=False)
    _raises(InputFormatError, other, "no struct 'saveloc'", call=lambda: smap.read(other))
    assert not smap.detect(other, _head(other))

    src = _real("locan/smap_dstorm_data.mat")
    cut = tmp_path / "cut_sml.mat"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    _raises(InputFormatError, cut, "HDF5", call=lambda: smap.read(cut))


def test_smap_refuses_matlab_v5(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    path = tmp_path / "old_sml.mat"
    scipy_io.savemat(path, {"saveloc": {"loc": {"xnm": np.arange(3.0), "ynm": np.arange(3.0)}}})
    assert _head(path).startswith(b"MATLAB 5.0 MAT-file")
    _raises(InputFormatError, path, "v7.3", call=lambda: smap.read(path))
    assert not smap.detect(path, _head(path))


# =========================================================================== DECODE


def test_decode_real():
    path = _real("locan/decode_dstorm_data.h5")
    with h5py.File(path, "r") as fh:
        xyz = fh["data/xyz"][()].astype(np.float64)
        sig = fh["data/xyz_sig"][()].astype(np.float64)
        frame_ix = fh["data/frame_ix"][()]
        phot = fh["data/phot"][()].astype(np.float64)
        bg = fh["data/bg"][()].astype(np.float64)
        unit = fh["meta"].attrs["xy_unit"]
        px_size = fh["meta"].attrs["px_size"].astype(np.float64)
    assert unit == "px" and list(px_size) == [127.0, 117.0]

    locs = decode.read(path)
    _check_canonical(locs, "decode", path)
    t = locs.table
    assert len(t) == xyz.shape[0] == 96
    np.testing.assert_array_equal(t["x_nm"], xyz[:, 0] * 127.0)
    np.testing.assert_array_equal(t["y_nm"], xyz[:, 1] * 117.0)
    np.testing.assert_array_equal(t["z_nm"], xyz[:, 2])  # z stays nm
    assert t["y_nm"].min() == pytest.approx(xyz[:, 1].min() * 117.0)
    assert t["y_nm"].max() == pytest.approx(xyz[:, 1].max() * 117.0)
    np.testing.assert_array_equal(t["frame"], frame_ix)  # DECODE frame_ix is 0-based
    assert int(t["frame"].min()) == 294
    np.testing.assert_array_equal(t["photons"], phot)
    np.testing.assert_array_equal(t["background"], bg)
    np.testing.assert_allclose(t["precision_nm"], (sig[:, 0] * 127.0 + sig[:, 1] * 117.0) / 2, rtol=1e-12)
    assert locs.meta["pixel_size_nm"] == (127.0, 117.0)
    assert locs.meta["frame_base"] == 0 and locs.meta["decode_version"] == "0.10.0"


def test_decode_empty_real():
    path = _real("locan/decode_dstorm_data_empty.h5")
    with h5py.File(path, "r") as fh:
        assert fh["data/xyz"].shape == (0, 3)
    assert decode.detect(path, _head(path))
    _raises(InputFormatError, path, "contains no localizations", call=lambda: decode.read(path))


def _write_decode(path: Path, xyz, meta: dict | None = None, **data) -> Path:
    with h5py.File(path, "w") as fh:
        g = fh.create_group("data")
        g.create_dataset("xyz", data=np.asarray(xyz, dtype=np.float32))
        g.create_dataset("frame_ix", data=np.arange(len(xyz), dtype=np.int64))
        g.create_dataset("xyz_cr", data=h5py.Empty("f"))
        for k, v in data.items():
            g.create_dataset(k, data=v)
        m = fh.create_group("meta")
        for k, v in (meta or {}).items():
            m.attrs[k] = v
        fh.create_group("decode").attrs["version"] = "0.10.0"
    return path


def test_a_batchs_defaults_fill_a_decode_file_one_at_a_time(tmp_path):
    """A DECODE file that gives px_size but no xy_unit asks for the unit only: a batch's
    ``units: px`` is added, its pixel size is not, and the file's px_size is used; without
    px_size the pixel size is asked for next and added."""
    from chromarate.io.localizations import read_localizations

    xyz = [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]
    defaults = {"units": "px", "pixel_size_nm": 130.0}
    with_px = _write_decode(tmp_path / "a.h5", xyz, {"px_size": np.array([100.0, 100.0])})
    locs = read_localizations(with_px, defaults=defaults)
    np.testing.assert_array_equal(locs.table["x_nm"], [100.0, 300.0])
    assert locs.meta["pixel_size_nm"] == 100.0
    alone = read_localizations(with_px, defaults={"units": "px"})  # read.units: px alone
    np.testing.assert_array_equal(alone.table["x_nm"], [100.0, 300.0])
    without = _write_decode(tmp_path / "b.h5", xyz)
    with pytest.raises(InputFormatError, match="pixel_size_nm"):
        read_localizations(without, defaults={"units": "px"})
    np.testing.assert_array_equal(read_localizations(without, defaults=defaults).table["x_nm"],
                                  [130.0, 390.0])
    with pytest.raises(InputFormatError, match="pass units="):
        read_localizations(without, defaults={"pixel_size_nm": 130.0})


def test_decode_units(tmp_path):
    xyz = [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]
    nm = _write_decode(tmp_path / "nm.h5", xyz, {"xy_unit": "nm", "px_size": np.array([100.0, 100.0])})
    locs = decode.read(nm)
    np.testing.assert_array_equal(locs.table["x_nm"], [1.0, 3.0])
    assert locs.meta["pixel_size_nm"] is None and "z_nm" not in locs.table  # z all 0: 2-D

    iso = _write_decode(tmp_path / "iso.h5", xyz, {"xy_unit": "px", "px_size": np.array([100.0, 100.0])})
    assert decode.read(iso).meta["pixel_size_nm"] == 100.0
    np.testing.assert_array_equal(decode.read(iso, pixel_size_nm=50).table["y_nm"], [100.0, 200.0])

    no_px = _write_decode(tmp_path / "nopx.h5", xyz, {"xy_unit": "px"})
    _raises(InputFormatError, no_px, "pixel_size_nm", call=lambda: decode.read(no_px))
    np.testing.assert_array_equal(decode.read(no_px, pixel_size_nm=10).table["x_nm"], [10.0, 30.0])

    no_unit = _write_decode(tmp_path / "nounit.h5", xyz, {"px_size": np.array([100.0, 100.0])})
    _raises(InputFormatError, no_unit, "units=", call=lambda: decode.read(no_unit))
    assert decode.read(no_unit, units="px").meta["xy_unit_source"] == "option units"

    bad_unit = _write_decode(tmp_path / "badunit.h5", xyz, {"xy_unit": "furlong"})
    _raises(InputFormatError, bad_unit, "furlong", call=lambda: decode.read(bad_unit))
    with pytest.raises(ConfigError):
        decode.read(nm, units="inch")


def test_decode_malformed(tmp_path):
    nan = _write_decode(tmp_path / "nan.h5", [[1.0, np.nan, 0.0]], {"xy_unit": "nm"})
    _raises(InputFormatError, nan, "NaN", "data/xyz column 1", call=lambda: decode.read(nan))

    uneven = _write_decode(tmp_path / "uneven.h5", [[1.0, 2.0, 0.0]], {"xy_unit": "nm"},
                           phot=np.ones(4, dtype=np.float32))
    _raises(InputFormatError, uneven, "data/phot has 4 values", call=lambda: decode.read(uneven))

    no_xyz = tmp_path / "noxyz.h5"
    with h5py.File(no_xyz, "w") as fh:
        fh.create_group("data").create_dataset("frame_ix", data=np.arange(3))
    _raises(InputFormatError, no_xyz, "data/xyz", call=lambda: decode.read(no_xyz))

    src = _real("locan/decode_dstorm_data.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(src.read_bytes()[:3000])
    _raises(InputFormatError, cut, "HDF5", call=lambda: decode.read(cut))
    assert decode.detect(cut, _head(cut)) is False


# =========================================================================== SMLM


def _smlm_facts(path: Path):
    """Manifest and columns of the first table, parsed here with zipfile + numpy."""
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        info = manifest["files"][0]
        fmt = manifest["formats"][info["format"]]
        dtype = np.dtype([(h, "<" + np.dtype(d).str[1:]) for h, d in zip(fmt["headers"], fmt["dtype"])])
        table = np.frombuffer(zf.read(info["name"]), dtype=dtype)
    return manifest, info, table


def test_smlm_real():
    path = _real("locan/SMLM_dstorm_data.smlm")
    manifest, info, table = _smlm_facts(path)
    assert int(info["rows"]) == len(table) == 10
    # the row-interleaved reading agrees with the manifest's own min/max
    for col in ("position_x", "position_y", "frame"):
        assert float(table[col].min()) == pytest.approx(info["min"][col], rel=1e-5)
        assert float(table[col].max()) == pytest.approx(info["max"][col], rel=1e-5)

    locs = smlm.read(path)
    _check_canonical(locs, "smlm", path)
    t = locs.table
    assert len(t) == 10
    np.testing.assert_array_equal(t["x_nm"], table["position_x"].astype(np.float64))
    np.testing.assert_array_equal(t["y_nm"], table["position_y"].astype(np.float64))
    assert t["x_nm"].min() == pytest.approx(1653.34, rel=1e-6)
    assert t["y_nm"].max() == pytest.approx(18577.3, rel=1e-6)
    # all frames are 0 in the file, so it counts from 0
    assert (table["frame"] == 0).all() and (t["frame"] == 0).all()
    assert locs.meta["frame_base"] == 0 and locs.meta["pixel_size_nm"] is None
    assert locs.meta["units"]["x_nm"] == "nm"
    assert set(locs.meta["skipped_columns"]) == {"intensity", "local_background"}  # unit not photon


def _write_smlm(path: Path, columns: dict[str, tuple[str, np.ndarray, str]], *, offset=None,
                channel="default", extra_files=(), manifest_text: str | None = None,
                rows: int | None = None, mode="binary") -> Path:
    """An SMLM archive with one table; columns: header -> (dtype, values, unit)."""
    headers = list(columns)
    dtype = np.dtype([(h, "<" + np.dtype(d).str[1:]) for h, (d, _, _) in columns.items()])
    n = len(next(iter(columns.values()))[1])
    arr = np.zeros(n, dtype=dtype)
    for h, (_, v, _) in columns.items():
        arr[h] = v
    manifest = {
        "format_version": "0.2",
        "formats": {"t": {"type": "table", "mode": mode, "columns": len(headers), "headers": headers,
                          "dtype": [d for d, _, _ in columns.values()], "shape": [1] * len(headers),
                          "units": [u for _, _, u in columns.values()]}},
        "files": [{"name": "table.bin", "type": "table", "format": "t", "channel": channel,
                   "rows": n if rows is None else rows, "offset": offset or {}}],
    }
    manifest["files"].extend(extra_files)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", manifest_text if manifest_text is not None else json.dumps(manifest))
        zf.writestr("table.bin", arr.tobytes())
    return path


def _xy(unit="nm"):
    return {"frame": ("uint32", np.array([1, 2, 3]), "frame"),
            "x": ("float32", np.array([1.5, 2.5, 3.5]), unit),
            "y": ("float32", np.array([4.0, 5.0, 6.0]), unit)}


def test_smlm_units_offsets_and_options(tmp_path):
    um = _write_smlm(tmp_path / "um.smlm", _xy("um"))
    assert smlm.detect(um, _head(um))
    locs = smlm.read(um)
    np.testing.assert_array_equal(locs.table["x_nm"], [1500.0, 2500.0, 3500.0])
    np.testing.assert_array_equal(locs.table["frame"], [1, 2, 3])  # default frame_base 0
    np.testing.assert_array_equal(smlm.read(um, frame_base=1).table["frame"], [0, 1, 2])

    px = _write_smlm(tmp_path / "px.smlm", _xy("px"))
    _raises(InputFormatError, px, "pixel_size_nm", call=lambda: smlm.read(px))
    locs = smlm.read(px, pixel_size_nm=100)
    np.testing.assert_allclose(locs.table["y_nm"], [400.0, 500.0, 600.0])
    assert locs.meta["pixel_size_nm"] == 100.0

    cols = _xy("")
    cols["intensity"] = ("float32", np.array([10.0, 20.0, 30.0]), "photon")
    cols["uncertainty"] = ("float32", np.array([5.0, 6.0, 7.0]), "nm")
    off = _write_smlm(tmp_path / "off.smlm", cols, offset={"x": -1.0, "y": 100})
    locs = smlm.read(off)
    np.testing.assert_array_equal(locs.table["x_nm"], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(locs.table["y_nm"], [104.0, 105.0, 106.0])
    np.testing.assert_array_equal(locs.table["photons"], [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(locs.table["precision_nm"], [5.0, 6.0, 7.0])
    assert "default" in locs.meta["units"]["x_nm"]  # empty unit -> nm by the specification

    with pytest.raises(TypeError, match="units"):
        smlm.read(um, units="nm")


def test_smlm_channels(tmp_path):
    second = {"name": "table.bin", "type": "table", "format": "t", "channel": "cy3", "rows": 3, "offset": {}}
    path = _write_smlm(tmp_path / "two.smlm", _xy(), channel="a647", extra_files=[second])
    _raises(InputFormatError, path, "channel=", "'a647'", "'cy3'", call=lambda: smlm.read(path))
    assert len(smlm.read(path, channel="cy3")) == 3
    _raises(InputFormatError, path, "'dapi'", call=lambda: smlm.read(path, channel="dapi"))


def test_smlm_vector_column_and_tiles(tmp_path):
    """A column of shape [2, 2] (e.g. an image patch) is skipped but counted in the row size;
    two tables of one channel (tiles) are concatenated."""
    n = 3
    row = np.dtype([("x", "<f8"), ("patch", "<u1", (2, 2)), ("y", "<f4")])  # packed: 8 + 4 + 4 bytes
    arr = np.zeros(n, dtype=row)
    arr["x"], arr["y"], arr["patch"] = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 7
    fmt = {"type": "table", "mode": "binary", "columns": "3", "headers": ["x", "patch", "y"],
           "dtype": ["float64", "uint8", "float32"], "shape": ["1", [2, 2], 1], "units": ["nm", "", "nm"]}
    files = [{"name": name, "type": "table", "format": "f", "channel": "c", "rows": str(n)}
             for name in ("a.bin", "b.bin")]
    path = tmp_path / "tiles.smlm"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format_version": "0.2", "formats": {"f": fmt}, "files": files}))
        zf.writestr("a.bin", arr.tobytes())
        zf.writestr("b.bin", arr.tobytes())
    assert row.itemsize == 16
    locs = smlm.read(str(path))
    np.testing.assert_array_equal(locs.table["x_nm"], [1.0, 2.0, 3.0] * 2)
    np.testing.assert_array_equal(locs.table["y_nm"], [4.0, 5.0, 6.0] * 2)
    assert [t["rows"] for t in locs.meta["tables"]] == [3, 3]


def test_smlm_malformed(tmp_path):
    no_manifest = tmp_path / "nomanifest.smlm"
    with zipfile.ZipFile(no_manifest, "w") as zf:
        zf.writestr("table.bin", b"\0" * 8)
    _raises(InputFormatError, no_manifest, "no manifest.json", call=lambda: smlm.read(no_manifest))
    assert not smlm.detect(no_manifest, _head(no_manifest))

    bad_json = _write_smlm(tmp_path / "badjson.smlm", _xy(), manifest_text='{"formats": {,}')
    _raises(InputFormatError, bad_json, "not valid JSON", "line 1", call=lambda: smlm.read(bad_json))
    assert smlm.detect(bad_json, _head(bad_json))  # claimed, so that read() reports the damage

    not_obj = _write_smlm(tmp_path / "list.smlm", _xy(), manifest_text="[1, 2]")
    _raises(InputFormatError, not_obj, "expected an object", call=lambda: smlm.read(not_obj))

    no_files = _write_smlm(tmp_path / "nofiles.smlm", _xy(), manifest_text='{"formats": {}}')
    _raises(InputFormatError, no_files, "'files'", call=lambda: smlm.read(no_files))

    short = _write_smlm(tmp_path / "short.smlm", _xy(), rows=5)
    _raises(InputFormatError, short, "holds 36 bytes", "5 rows", call=lambda: smlm.read(short))

    missing_table = _write_smlm(tmp_path / "missing.smlm", _xy(), extra_files=[
        {"name": "gone.bin", "type": "table", "format": "t", "channel": "default", "rows": 3}])
    _raises(InputFormatError, missing_table, "'gone.bin'", call=lambda: smlm.read(missing_table))

    text_mode = _write_smlm(tmp_path / "text.smlm", _xy(), mode="text")
    _raises(InputFormatError, text_mode, "only binary", call=lambda: smlm.read(text_mode))

    bad_unit = _write_smlm(tmp_path / "furlong.smlm", _xy("furlong"))
    _raises(InputFormatError, bad_unit, "unknown unit 'furlong'", call=lambda: smlm.read(bad_unit))

    cols = _xy()
    cols["x"] = ("float32", np.array([1.0, np.inf, 2.0]), "nm")
    inf = _write_smlm(tmp_path / "inf.smlm", cols)
    _raises(InputFormatError, inf, "infinite", "column 'x'", call=lambda: smlm.read(inf))

    no_y = _write_smlm(tmp_path / "noy.smlm", {"x": ("float32", np.array([1.0]), "nm")})
    _raises(InputFormatError, no_y, "no y column", call=lambda: smlm.read(no_y))

    good = _write_smlm(tmp_path / "good.smlm", _xy())
    cut = tmp_path / "cut.smlm"
    cut.write_bytes(good.read_bytes()[:-30])
    _raises(InputFormatError, cut, "zip", call=lambda: smlm.read(cut))

    crc = tmp_path / "crc.smlm"
    data = bytearray(_write_smlm(tmp_path / "stored.smlm", _xy()).read_bytes())
    with zipfile.ZipFile(tmp_path / "stored.smlm") as zf:
        info = zf.getinfo("table.bin")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start] ^= 0xFF  # damage the compressed table data
    crc.write_bytes(bytes(data))
    _raises(InputFormatError, crc, "'table.bin'", call=lambda: smlm.read(crc))

    not_zip = tmp_path / "plain.smlm"
    not_zip.write_text("x,y\n1,2\n")
    _raises(InputFormatError, not_zip, "not a zip archive", call=lambda: smlm.read(not_zip))


# =========================================================================== detection


REAL_FILES = {
    "picasso/egfr_mols.hdf5": "picasso",
    "picasso/raw_movie_locs.hdf5": "picasso",
    "locan/smap_dstorm_data.mat": "smap",
    "locan/decode_dstorm_data.h5": "decode",
    "locan/decode_dstorm_data_empty.h5": "decode",
    "locan/SMLM_dstorm_data.smlm": "smlm",
    "locan/Thunderstorm_dstorm_data.csv": None,
    "colicoords/01_storm.csv": None,
    "pyme_ts3d/ThunderSTORM_TS3D.csv": None,
    "locan/npc_gp210.asdf": None,
    "locan/rapidSTORM_dstorm_data.txt": None,
}


@pytest.mark.parametrize("rel, owner", sorted(REAL_FILES.items()))
def test_detect_real_files(rel, owner):
    path = _real(rel)
    head = _head(path)
    claimed = {name for name, mod in MODULES.items() if mod.detect(path, head)}
    assert claimed == ({owner} if owner else set())


def test_detect_gzipped_csv_and_garbage(tmp_path):
    src = _real("locan/Thunderstorm_dstorm_data.csv")
    gz = tmp_path / "ts.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    for path in (gz, tmp_path / "does_not_exist.h5"):
        head = _head(path) if path.exists() else b""
        assert not any(mod.detect(path, head) for mod in MODULES.values())
    # a head that claims HDF5 for a file that is not must not raise
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert not any(mod.detect(fake, _head(fake)) for mod in MODULES.values())


def test_format_names():
    assert {name: mod.FORMAT for name, mod in MODULES.items()} == {n: n for n in MODULES}
