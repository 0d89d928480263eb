"""Tests of the locan ASDF reader (chromarate.io.formats.asdf).

The real sample ``locan/npc_gp210.asdf`` from ../shared/data/smlm is checked against values
decoded here straight from the file's bytes (YAML header + binary block, without the asdf
package) and against the asdf package itself; other files are written in tmp_path with asdf
in locan's layout (``data``, ``columns``, ``meta`` JSON, ``properties``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from chromarate._types import CANONICAL_COLUMNS
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io import registry
from chromarate.io.formats import asdf as asdf_reader
from chromarate.io.localizations import SUPPORTED_FORMATS, read_localizations

from .shared_data import DATA, head as _head, real_file

SAMPLE = "locan/npc_gp210.asdf"
HAVE_ASDF = importlib.util.find_spec("asdf") is not None
needs_asdf = pytest.mark.skipif(
    not HAVE_ASDF, reason="the optional asdf package is not installed (pip install asdf)"
)


def _real(rel: str = SAMPLE) -> Path:
    return real_file(rel)


def _raw_sample(path: Path) -> tuple[list[str], np.ndarray]:
    """Columns and (rows, columns) values of the sample, decoded from its bytes directly."""
    raw = path.read_bytes()
    end = raw.index(b"\n...\n") + len(b"\n...\n")
    header = raw[:end].decode("utf-8")
    block = raw[end:]
    m = re.search(r"columns: \[(.*?)\]", header, re.DOTALL)
    columns = [c.strip() for c in " ".join(m.group(1).split()).split(",")]
    assert "datatype: float32" in header and "byteorder: little" in header
    rows, ncols = map(int, re.search(r"shape: \[(\d+), (\d+)\]", header).groups())
    s_row, s_col = map(int, re.search(r"strides: \[(\d+), (\d+)\]", header).groups())
    assert block[:4] == b"\xd3BLK"
    header_size = struct.unpack(">H", block[4:6])[0]
    flags, compression = struct.unpack(">I4s", block[6:14])
    assert compression == b"\0\0\0\0"  # not compressed
    _allocated, used, _size = struct.unpack(">QQQ", block[14:38])
    payload = block[6 + header_size: 6 + header_size + used]
    values = np.empty((rows, ncols), dtype=np.float64)
    for i in range(rows):
        for j in range(ncols):
            off = i * s_row + j * s_col
            values[i, j] = struct.unpack("<f", payload[off:off + 4])[0]
    assert len(columns) == ncols
    return columns, values


def _write_locan(path: Path, columns, data, meta=None, **extra) -> Path:
    """An ASDF file in locan's layout, written with the asdf package."""
    import asdf

    tree = {"data": np.asarray(data), "columns": list(columns), "properties": {},
            "meta": json.dumps(meta or {"identifier": "1", "source": "SIMULATION"}), **extra}
    asdf.AsdfFile(tree).write_to(path)
    return path


def _check_error(path: Path, *fragments: str, **options):
    with pytest.raises(InputFormatError) as info:
        read_localizations(path, **options)
    msg = str(info.value)
    assert info.value.path == str(path) and path.name in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


# =========================================================================== real sample


@needs_asdf
def test_real_sample_auto_detected_and_values():
    path = _real()
    locs = read_localizations(path)
    t, m = locs.table, locs.meta
    columns, raw = _raw_sample(path)
    assert columns == ["position_x", "position_y", "frame", "intensity", "two_kernel_improvement",
                       "chi_square", "local_background"]

    assert m["format"] == "asdf" and len(locs) == m["n_rows"] == 202 == raw.shape[0]
    assert list(t.columns) == ["x_nm", "y_nm", "frame"]
    assert t["x_nm"].dtype == np.float64 and t["frame"].dtype == np.int64
    # locan's history: the set was cut to 5500 < x < 5750.93 and 6500 < y < 6750.98 (nm)
    assert 5500 < t["x_nm"].min() < t["x_nm"].max() < 5750.93
    assert 6500 < t["y_nm"].min() < t["y_nm"].max() < 6750.98
    assert t["frame"].min() == 24 and t["frame"].max() == 24909
    for i in (0, 1, 101, 201):
        assert t["x_nm"].iloc[i] == raw[i, 0] and t["y_nm"].iloc[i] == raw[i, 1]
        assert t["frame"].iloc[i] == int(raw[i, 2])
    assert t["x_nm"].iloc[0] == pytest.approx(5631.71, abs=0.01)
    assert t["y_nm"].iloc[0] == pytest.approx(6555.85, abs=0.01)
    assert t["frame"].iloc[:3].tolist() == [24, 25, 26]
    np.testing.assert_array_equal(t["x_nm"].to_numpy(), raw[:, 0])
    np.testing.assert_array_equal(t["frame"].to_numpy(), raw[:, 2].astype(np.int64))

    assert m["source"] == str(path) and m["pixel_size_nm"] is None and m["frame_base"] == 0
    assert m["columns_in_file"] == columns
    assert m["column_map"] == {"x_nm": "position_x", "y_nm": "position_y", "frame": "frame"}
    assert set(m["units"]) == {"x_nm", "y_nm"} and all(u.startswith("nm") for u in m["units"].values())
    # rapidSTORM amplitudes/backgrounds in A/D counts, no unit in the file: not photons
    assert set(m["skipped_columns"]) == {"intensity", "local_background"}
    assert m["locan_meta"]["elementCount"] == "202"
    assert "load_rapidSTORM_file" in m["locan_meta"]["history"][0]["name"]


@needs_asdf
def test_real_sample_matches_asdf_package_and_explicit_format():
    import asdf

    path = _real()
    with asdf.open(path) as af:
        cols = list(af.tree["columns"])
        data = np.array(af.tree["data"], dtype=np.float64)
    locs = read_localizations(path, format="asdf", frame_base=0)
    np.testing.assert_array_equal(locs.table["y_nm"].to_numpy(), data[:, cols.index("position_y")])
    shifted = read_localizations(path, format="ASDF", frame_base=1)
    assert shifted.table["frame"].iloc[0] == 23 and shifted.meta["frame_base"] == 1


def test_detect_is_content_based_and_never_raises(tmp_path):
    assert "asdf" in SUPPORTED_FORMATS and "asdf" in registry.registered_formats()
    assert asdf_reader.FORMAT == "asdf"
    renamed = tmp_path / "locs.csv"
    renamed.write_bytes(b"#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n")
    assert asdf_reader.detect(renamed, _head(renamed))
    fake = tmp_path / "fake.asdf"
    fake.write_text('"x [nm]","y [nm]"\n1,2\n')
    assert not asdf_reader.detect(fake, _head(fake))
    for head in (b"", b"#ASD", b"\x89HDF\r\n\x1a\n", None, 12):
        assert asdf_reader.detect(tmp_path / "missing.asdf", head) is False
    if (DATA / SAMPLE).is_file():
        assert asdf_reader.detect(DATA / SAMPLE, _head(DATA / SAMPLE))
        for other in ("locan/SMLM_dstorm_data.smlm", "locan/decode_dstorm_data.h5",
                      "locan/Thunderstorm_dstorm_data.csv", "locan/rapidSTORM_dstorm_data.txt"):
            if (DATA / other).is_file():
                assert not asdf_reader.detect(DATA / other, _head(DATA / other)), other


# =========================================================================== damaged files


@needs_asdf
def test_truncated_or_corrupt_sample_raises_naming_file(tmp_path):
    src = _real().read_bytes()
    yaml_end = src.index(b"\n...\n") + 5
    for n, cut in enumerate((12, 400, yaml_end, yaml_end + 60, len(src) - 2000)):
        path = tmp_path / f"cut_{n}.asdf"
        path.write_bytes(src[:cut])
        _check_error(path, "truncated")
    damaged = bytearray(src)
    damaged[yaml_end + 200] ^= 0xFF  # one byte of the data block: the block checksum fails
    path = tmp_path / "flipped.asdf"
    path.write_bytes(bytes(damaged))
    _check_error(path, "corrupt")


@needs_asdf
def test_units_and_size_are_checked_before_the_data_block_is_read(tmp_path):
    """A file refused for its unit or its declared size is refused before its data block is
    read: a corrupt block is not what the error names (it would be, read eagerly)."""
    from chromarate.io.limits import read_limit

    meta = {"unit": [{"property": "position_x", "unit": "px"}, {"property": "position_y", "unit": "px"}]}
    path = _write_locan(tmp_path / "px.asdf", ["position_x", "position_y"],
                        np.arange(4000.0).reshape(-1, 2), meta)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"\n...\n") + 200] ^= 0xFF  # a byte of the data block: its checksum fails
    path.write_bytes(bytes(raw))
    _check_error(path, "pixel_size_nm")
    with read_limit("4KB"):
        _check_error(path, "read limit", pixel_size_nm=100)
    _check_error(path, "corrupt", pixel_size_nm=100)


@needs_asdf
def test_not_asdf_or_not_locan_layout(tmp_path):
    text = tmp_path / "plain.asdf"
    text.write_text("x,y\n1,2\n")
    _check_error(text, "not an ASDF file", format="asdf")
    empty = tmp_path / "empty.asdf"
    empty.write_bytes(b"")
    _check_error(empty, "empty", format="asdf")
    import asdf

    other = tmp_path / "other.asdf"
    asdf.AsdfFile({"image": np.zeros((2, 2))}).write_to(other)
    _check_error(other, "'data'", "'columns'")
    no_y = _write_locan(tmp_path / "no_y.asdf", ["position_x", "frame"], [[1.0, 0], [2.0, 1]])
    _check_error(no_y, "position_y")
    bad_shape = _write_locan(tmp_path / "shape.asdf", ["position_x", "position_y", "frame"],
                             [[1.0, 2.0], [3.0, 4.0]])
    _check_error(bad_shape, "shape (2, 2)", "3 column")
    nan = _write_locan(tmp_path / "nan.asdf", ["position_x", "position_y"], [[1.0, np.nan]])
    _check_error(nan, "NaN", "position_y")
    none = _write_locan(tmp_path / "none.asdf", ["position_x", "position_y"], np.empty((0, 2)))
    _check_error(none, "no localizations")


def test_missing_asdf_package_names_it(tmp_path, monkeypatch):
    path = tmp_path / "a.asdf"
    path.write_bytes(b"#ASDF 1.0.0\n%YAML 1.1\n--- {}\n...\n")
    monkeypatch.setitem(sys.modules, "asdf", None)  # import asdf now raises ImportError
    with pytest.raises(InputFormatError, match=r"pip install asdf") as info:
        read_localizations(path)
    assert info.value.path == str(path)


# =========================================================================== units and mapping


@needs_asdf
def test_units_photons_precision_and_z_from_locan_metadata(tmp_path):
    cols = ["position_x", "position_y", "position_z", "frame", "intensity", "local_background",
            "uncertainty_x", "uncertainty_y", "cluster_label"]
    data = np.array([[1.5, 2.0, 0.25, 1, 900.0, 12.0, 0.010, 0.020, 3],
                     [2.5, 3.0, -0.5, 7, 1100.0, 14.0, 0.030, 0.050, 4]])
    meta = {"identifier": "7", "localizationProperties": [
        {"name": "position_x", "unit": "um", "type": "float"},
        {"name": "position_y", "unit": "um", "type": "float"},
        {"name": "position_z", "unit": "um", "type": "float"},
        {"name": "uncertainty_x", "unit": "um"}, {"name": "uncertainty_y", "unit": "um"},
        {"name": "intensity", "unit": "photons"}]}
    path = _write_locan(tmp_path / "um.asdf", cols, data, meta)
    locs = read_localizations(path, frame_base=1)
    t, m = locs.table, locs.meta
    assert list(t.columns) == [c for c in CANONICAL_COLUMNS if c in t.columns]
    assert t["x_nm"].tolist() == [1500.0, 2500.0] and t["y_nm"].tolist() == [2000.0, 3000.0]
    assert t["z_nm"].tolist() == [250.0, -500.0]
    assert t["frame"].tolist() == [0, 6]
    assert t["photons"].tolist() == [900.0, 1100.0]
    assert t["precision_nm"].to_numpy() == pytest.approx([15.0, 40.0])
    assert "background" not in t and "local_background" in m["skipped_columns"]
    assert m["units"]["x_nm"] == "um" and m["units"]["photons"] == "photon"
    assert m["column_map"]["precision_nm"] == "mean(uncertainty_x, uncertainty_y)"
    assert m["column_map"]["z_nm"] == "position_z"


@needs_asdf
def test_unitless_units_option_pixels_and_option_errors(tmp_path):
    cols = ["position_x", "position_y", "position_z", "frame"]
    path = _write_locan(tmp_path / "px.asdf", cols, [[1.0, 2.0, 0.0, 0.5], [3.0, 4.0, 0.0, 2.0]])
    locs = read_localizations(path, units="um")
    assert locs.table["x_nm"].tolist() == [1000.0, 3000.0] and "z_nm" not in locs.table
    assert "position_z" in locs.meta["dropped_columns"] and "frame" in locs.meta["dropped_columns"]
    _check_error(path, "pixel_size_nm", units="px")
    px = read_localizations(path, units="px", pixel_size_nm=100)
    assert px.table["y_nm"].tolist() == [200.0, 400.0] and px.meta["pixel_size_nm"] == 100.0
    meta = {"unit": [{"property": "position_x", "unit": "parsec"}]}
    odd = _write_locan(tmp_path / "odd.asdf", cols[:2], [[1.0, 2.0]], meta)
    _check_error(odd, "parsec", "position_x")
    with pytest.raises(ConfigError):
        read_localizations(path, format="asdf", units="furlong")
    with pytest.raises(TypeError, match="channel"):
        read_localizations(path, channel="a")


@needs_asdf
def test_an_array_stored_in_another_file_is_refused_without_opening_it(tmp_path):
    """asdf's external array storage names another file as the data's source; it could be a
    pipe (the read would hang) or any file. Nothing but the tree is read. (The external
    file is a plain one here, so that without the check the file is read and the test
    fails, rather than waiting on a pipe.)"""
    import asdf

    path = tmp_path / "loc.asdf"
    asdf.AsdfFile({"columns": ["position_x", "position_y"], "data": np.ones((4, 2)),
                   "meta": "{}"}).write_to(path, all_array_storage="external")
    assert (tmp_path / "loc0000.asdf").exists()
    _check_error(path, "stored in another file", "loc0000.asdf")
