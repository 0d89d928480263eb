"""Tests of chromarate.io.localizations: real ThunderSTORM files, round trips, bad inputs."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io.localizations import read_localizations, write_thunderstorm_csv

SMLM = Path(__file__).parents[2].parent / "shared" / "data" / "smlm"
needs_smlm = pytest.mark.skipif(
    not SMLM.is_dir(), reason=f"shared real-data folder {SMLM} is absent (see docs/design.md section 10)"
)

HEADER = '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]","offset [photon]","bkgstd [photon]","chi2","uncertainty_xy [nm]"'
ROW1 = "1,1,7057.682,31836.993,236.96,4933.487,0,6.576,14270506.039,9.476"
ROW2 = "2,3,7271.647,31422.428,49.651,148.889,90.469,6.991,16130940.02,14.641"


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _csv_facts(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV read with Python's csv module (independent of the reader)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    return rows[0], rows[1:]


# --------------------------------------------------------------------------- real data


@needs_smlm
def test_colicoords_storm_csv():
    path = SMLM / "colicoords" / "01_storm.csv"
    header, rows = _csv_facts(path)
    col = {name: i for i, name in enumerate(header)}
    locs = read_localizations(path)

    assert isinstance(locs, Localizations)
    assert len(locs) == len(rows) == 29_995
    t = locs.table
    assert list(t.columns) == [c for c in CANONICAL_COLUMNS if c in t.columns]
    assert set(t.columns) == {"x_nm", "y_nm", "frame", "photons", "precision_nm", "sigma_nm", "background"}
    assert t["x_nm"].dtype == np.float64 and t["y_nm"].dtype == np.float64
    assert t["frame"].dtype == np.int64
    min_frame = min(int(r[col["frame"]]) for r in rows)
    assert int(t["frame"].min()) == min_frame - 1
    assert int(t["frame"].max()) == max(int(r[col["frame"]]) for r in rows) - 1

    first = rows[0]
    assert t["x_nm"].iloc[0] == float(first[col["x [nm]"]]) == 7057.682
    assert t["y_nm"].iloc[0] == float(first[col["y [nm]"]]) == 31836.993
    assert t["photons"].iloc[0] == float(first[col["intensity [photon]"]])
    assert t["precision_nm"].iloc[0] == float(first[col["uncertainty_xy [nm]"]])
    assert t["sigma_nm"].iloc[0] == float(first[col["sigma [nm]"]])
    assert t["background"].iloc[0] == float(first[col["offset [photon]"]])
    # coordinates are nm (a field of view of tens of micrometres), not um or px
    xs = np.array([float(r[col["x [nm]"]]) for r in rows])
    np.testing.assert_array_equal(t["x_nm"].to_numpy(), xs)
    assert 1_000 < xs.max() < 200_000

    m = locs.meta
    assert m["source"] == str(path)
    assert m["format"] == "thunderstorm"
    assert m["pixel_size_nm"] is None
    assert m["frame_base"] == 1
    assert m["n_rows"] == 29_995
    assert m["columns_in_file"] == header


@needs_smlm
def test_pyme_ts3d_keeps_z():
    path = SMLM / "pyme_ts3d" / "ThunderSTORM_TS3D.csv"
    header, rows = _csv_facts(path)
    locs = read_localizations(path, format="thunderstorm")
    assert len(locs) == len(rows) == 11_195
    assert "z_nm" in locs.table.columns
    zi = header.index("z [nm]")
    np.testing.assert_array_equal(locs.table["z_nm"].to_numpy(), [float(r[zi]) for r in rows])
    # uncertainty_xy (not uncertainty_z) is the lateral precision
    ui = header.index("uncertainty_xy [nm]")
    assert locs.table["precision_nm"].iloc[-1] == float(rows[-1][ui])
    assert "sigma_nm" not in locs.table.columns  # only sigma1/sigma2 in this file
    assert int(locs.table["frame"].min()) == min(int(r[header.index("frame")]) for r in rows) - 1


@needs_smlm
def test_locan_thunderstorm_whole_header_quoted():
    path = SMLM / "locan" / "Thunderstorm_dstorm_data.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    # this file's header is one quoted field holding the comma-separated names
    names = next(csv.reader([rows[0][0]])) if len(rows[0]) == 1 else rows[0]
    data = rows[1:]
    locs = read_localizations(path)
    assert len(locs) == len(data) == 19
    assert locs.meta["columns_in_file"][:3] == ["id", "frame", "x [nm]"]
    xi, fi, ui = names.index("x [nm]"), names.index("frame"), names.index("uncertainty [nm]")
    assert locs.table["x_nm"].iloc[0] == float(data[0][xi])
    assert locs.table["frame"].iloc[0] == int(float(data[0][fi])) - 1  # frames written as 2001.0
    assert locs.table["precision_nm"].iloc[0] == float(data[0][ui])


@needs_smlm
def test_other_vendor_file_is_not_taken_for_thunderstorm():
    # "Frame", "X (nm)": ONI Nanoimager, which has its own reader since it was added
    path = SMLM / "locan" / "Nanoimager_dstorm_data.csv"
    assert read_localizations(path).meta["format"] == "nanoimager"
    with pytest.raises(InputFormatError, match="no x column"):
        read_localizations(path, format="thunderstorm")


# --------------------------------------------------------------------------- synthetic files


def test_minimal_file_and_meta(tmp_path):
    p = _write(tmp_path / "a.csv", f"{HEADER}\n{ROW1}\n{ROW2}\n")
    locs = read_localizations(p)
    t = locs.table
    assert t["frame"].tolist() == [0, 2]
    assert t["x_nm"].tolist() == [7057.682, 7271.647]
    assert locs.meta["column_map"]["precision_nm"] == "uncertainty_xy [nm]"
    assert locs.meta["compressed"] is False


def test_unquoted_header_crlf_and_other_extension(tmp_path):
    header = HEADER.replace('"', "")
    p = _write(tmp_path / "a.txt", f"{header}\r\n{ROW1}\r\n{ROW2}\r\n")
    locs = read_localizations(p)
    assert locs.table["x_nm"].tolist() == [7057.682, 7271.647]
    assert locs.meta["columns_in_file"][:3] == ["id", "frame", "x [nm]"]


def test_units_um_and_px(tmp_path):
    p = _write(tmp_path / "um.csv", '"frame","x [µm]","y [um]","uncertainty [nm]"\n1,1.5,2.25,10\n')
    t = read_localizations(p).table
    assert t["x_nm"].tolist() == [1500.0] and t["y_nm"].tolist() == [2250.0]
    assert t["precision_nm"].tolist() == [10.0]

    p = _write(tmp_path / "px.csv", '"frame","x [px]","y [px]","sigma [px]"\n1,2,3,1.5\n')
    locs = read_localizations(p, pixel_size_nm=100)
    assert locs.table["x_nm"].tolist() == [200.0]
    assert locs.table["sigma_nm"].tolist() == [150.0]
    assert locs.meta["pixel_size_nm"] == 100.0


def test_units_option_for_unitless_columns(tmp_path):
    p = _write(tmp_path / "plain.csv", "frame,x,y\n1,10,20\n2,11,21\n")
    t = read_localizations(p, units="nm").table
    assert t["x_nm"].tolist() == [10.0, 11.0]
    t = read_localizations(p, units="um").table
    assert t["y_nm"].tolist() == [20000.0, 21000.0]
    locs = read_localizations(p, units="px", pixel_size_nm=160.0)
    assert locs.table["x_nm"].tolist() == [1600.0, 1760.0]
    # a unit stated in the header is never overridden by units=
    p2 = _write(tmp_path / "mixed.csv", '"x [nm]","y"\n5,6\n')
    t = read_localizations(p2, units="um").table
    assert t["x_nm"].tolist() == [5.0] and t["y_nm"].tolist() == [6000.0]


def test_photon_columns_only_mapped_in_photons(tmp_path):
    p = _write(tmp_path / "adu.csv", '"x [nm]","y [nm]","intensity [ADU]","offset [photon]"\n1,2,300,4\n')
    locs = read_localizations(p)
    assert "photons" not in locs.table.columns
    assert locs.table["background"].tolist() == [4.0]
    assert "intensity [ADU]" in locs.meta["skipped_columns"]


def test_optional_nan_is_kept_and_no_frame_column(tmp_path):
    p = _write(tmp_path / "a.csv", '"x [nm]","y [nm]","uncertainty_xy [nm]","intensity [photon]"\n1,2,,5\n3,4,7,\n')
    t = read_localizations(p).table
    assert "frame" not in t.columns
    assert math.isnan(t["precision_nm"].iloc[0]) and t["precision_nm"].iloc[1] == 7.0
    assert math.isnan(t["photons"].iloc[1])


def test_frame_base_option(tmp_path):
    p = _write(tmp_path / "zero.csv", '"frame","x [nm]","y [nm]"\n0,1,2\n4,1,2\n')
    with pytest.raises(InputFormatError, match="frame_base"):
        read_localizations(p)
    locs = read_localizations(p, frame_base=0)
    assert locs.table["frame"].tolist() == [0, 4]
    assert locs.meta["frame_base"] == 0


def test_gzip_detected_by_magic_not_name(tmp_path):
    p = tmp_path / "compressed.csv"  # no .gz suffix
    p.write_bytes(gzip.compress(f"{HEADER}\n{ROW1}\n".encode()))
    locs = read_localizations(p)
    assert len(locs) == 1 and locs.meta["compressed"] is True


def test_line_numbers_count_blank_lines(tmp_path):
    p = _write(tmp_path / "blank.csv", f"{HEADER}\n{ROW1}\n\n\n{ROW2.replace('7271.647', 'oops')}\n")
    with pytest.raises(InputFormatError, match="line 5"):
        read_localizations(p)
    p = _write(tmp_path / "blank_nan.csv", f"{HEADER}\r\n\r\n{ROW1}\r\n{ROW2.replace('31422.428', 'nan')}\r\n")
    with pytest.raises(InputFormatError, match=r'"y \[nm\]" at line 4'):
        read_localizations(p)


def test_ragged_rows_are_refused(tmp_path):
    p = _write(tmp_path / "long.csv", f"{HEADER}\n{ROW1}\n{ROW2},99\n")
    with pytest.raises(InputFormatError, match="line 3"):
        read_localizations(p)
    p = _write(tmp_path / "long_first.csv", f"{HEADER}\n{ROW1},99\n{ROW2},99\n")
    with pytest.raises(InputFormatError, match="header names 10 columns"):
        read_localizations(p)


def test_bad_options(tmp_path):
    p = _write(tmp_path / "a.csv", f"{HEADER}\n{ROW1}\n")
    with pytest.raises(TypeError, match="pixelsize"):
        read_localizations(p, pixelsize=100)
    with pytest.raises(ConfigError):
        read_localizations(p, pixel_size_nm=-3)
    with pytest.raises(ConfigError):
        read_localizations(p, units="furlong")
    with pytest.raises(InputFormatError, match="unknown localization format"):
        read_localizations(p, format="csv-of-doom")


# --------------------------------------------------------------------------- round trip


def _table(n=200, seed=0, z=True):
    rng = np.random.default_rng(seed)
    cols = {
        "x_nm": np.round(rng.uniform(0, 40_000, n), 1),
        "y_nm": np.round(rng.uniform(0, 40_000, n), 1),
        "frame": rng.integers(0, 5000, n).astype(np.int64),
        "photons": np.round(rng.uniform(100, 5000, n), 1),
        "precision_nm": np.round(rng.uniform(2, 30, n), 1),
        "sigma_nm": np.round(rng.uniform(80, 300, n), 1),
        "background": np.round(rng.uniform(0, 100, n), 1),
    }
    if z:
        cols["z_nm"] = np.round(rng.uniform(-500, 500, n), 1)
    ordered = {c: cols[c] for c in CANONICAL_COLUMNS if c in cols}
    return Localizations(pd.DataFrame(ordered), meta={"source": "memory"})


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz"])
def test_round_trip(tmp_path, name):
    locs = _table()
    written = write_thunderstorm_csv(locs, tmp_path / name)
    assert written == tmp_path / name
    back = read_localizations(written)
    pd.testing.assert_frame_equal(back.table, locs.table, check_exact=False, rtol=0, atol=1e-9)
    assert back.table["frame"].dtype == np.int64
    assert back.meta["compressed"] == name.endswith(".gz")
    text = gzip.decompress(written.read_bytes()) if name.endswith(".gz") else written.read_bytes()
    lines = text.decode().splitlines()
    assert lines[0] == ('"id","frame","x [nm]","y [nm]","z [nm]","sigma [nm]","intensity [photon]",'
                        '"offset [photon]","uncertainty_xy [nm]"')
    first = lines[1].split(",")
    assert first[0] == "1" and int(first[1]) == locs.table["frame"].iloc[0] + 1  # 1-based frames
    assert list(tmp_path.iterdir()) == [written]  # no temporary file left behind


def test_write_only_present_columns_and_decimals(tmp_path):
    t = pd.DataFrame({"x_nm": [1.23456, 2.0], "y_nm": [3.0, np.nan]})
    p = write_thunderstorm_csv(Localizations(t), tmp_path / "xy.csv", decimals=3)
    assert p.read_text().splitlines() == ['"id","x [nm]","y [nm]"', "1,1.235,3.000", "2,2.000,"]


def test_gzip_output_is_reproducible(tmp_path):
    locs = _table(seed=3)
    a = write_thunderstorm_csv(locs, tmp_path / "a.csv.gz").read_bytes()
    b = write_thunderstorm_csv(locs, tmp_path / "sub_b.csv.gz").read_bytes()
    c = write_thunderstorm_csv(locs, tmp_path / "a.csv.gz").read_bytes()  # overwrite
    assert a == b == c
    assert a[4:8] == b"\0\0\0\0"  # gzip mtime field


def test_write_rejects_missing_xy(tmp_path):
    with pytest.raises(ValueError, match="y_nm"):
        write_thunderstorm_csv(Localizations(pd.DataFrame({"x_nm": [1.0]})), tmp_path / "bad.csv")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad inputs


def _gz_truncated() -> bytes:
    data = gzip.compress((HEADER + "\n" + (ROW1 + "\n") * 200).encode())
    return data[: len(data) // 2]


_RNG_BYTES = bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8))

BAD_INPUTS = [
    # id, file name, content (None = do not create), phrase expected in the message, options
    ("missing file", "nope.csv", None, "file not found", {}),
    ("empty file", "empty.csv", b"", "empty file", {}),
    ("header only", "header.csv", HEADER + "\n", "no localizations", {}),
    ("header only no newline", "header2.csv", HEADER, "no localizations", {}),
    ("missing x", "nox.csv", '"frame","y [nm]"\n1,2\n', "no x column", {}),
    ("missing y", "noy.csv", '"frame","x [nm]"\n1,2\n', "no y column", {}),
    ("duplicated", "dup.csv", '"x [nm]","y [nm]","x [nm]"\n1,2,3\n', "duplicated column", {}),
    ("non-numeric", "text.csv", f"{HEADER}\n{ROW1}\n{ROW2.replace('7271.647', 'abc')}\n", "non-numeric value 'abc' in column \"x [nm]\" at line 3", {}),
    ("NaN coordinate", "nan.csv", f"{HEADER}\n{ROW1}\n{ROW2.replace('31422.428', 'NaN')}\n", 'NaN value in coordinate column "y [nm]" at line 3', {}),
    ("empty coordinate", "hole.csv", f"{HEADER}\n{ROW1.replace('7057.682', '')}\n", 'missing or NaN value in coordinate column "x [nm]" at line 2', {}),
    ("inf coordinate", "inf.csv", f"{HEADER}\n{ROW1}\n{ROW2.replace('7271.647', 'inf')}\n", 'infinite value inf in coordinate column "x [nm]" at line 3', {}),
    ("negative precision", "neg.csv", f"{HEADER}\n{ROW1}\n{ROW2.replace('14.641', '-2.5')}\n", "negative value -2.5 in column \"uncertainty_xy [nm]\" at line 3", {}),
    ("unknown unit", "furlong.csv", '"x [furlong]","y [nm]"\n1,2\n', 'unknown unit "furlong"', {}),
    ("no unit", "nounit.csv", "x,y\n1,2\n", 'units="nm"', {}),
    ("pixels without size", "px.csv", '"x [px]","y [px]"\n1,2\n', "pixel_size_nm=", {}),
    ("binary garbage", "garbage.bin", b"\x00" + _RNG_BYTES, "binary data", {}),
    ("invalid utf-8", "latin.csv", b'"x [nm]","y [nm]"\n1,2\n\xff\xfe\xfd,3\n', "not UTF-8", {}),
    ("truncated gzip", "cut.csv.gz", _gz_truncated(), "truncated or corrupt gzip", {}),
    ("semicolon delimiter", "semi.csv", '"x [nm]";"y [nm]";"frame"\n1;2;3\n', "semicolon", {}),
    ("semicolon explicit format", "semi2.csv", "x [nm];y [nm]\n1;2\n", "semicolon", {"format": "thunderstorm"}),
    ("unrecognised header", "other.csv", "a,b,c\n1,2,3\n", "not a recognised localization format", {}),
    ("non-integer frame", "frame.csv", '"frame","x [nm]","y [nm]"\n1.5,1,2\n', 'invalid frame number 1.5 in column "frame" at line 2', {}),
]


@pytest.mark.parametrize(("name", "content", "phrase", "options"),
                         [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs(tmp_path, name, content, phrase, options):
    path = tmp_path / name
    if content is not None:
        _write(path, content)
    with pytest.raises(InputFormatError) as info:
        read_localizations(path, **options)
    message = str(info.value)
    assert name in message
    assert phrase in message
    assert info.value.path == str(path)


def test_truncated_gzip_beyond_header_block(tmp_path):
    # large enough that the cut falls after the first MiB of decompressed text
    rows = "\n".join(f"{i},{i},{i * 1.5:.3f},{i * 2.5:.3f},1,1,1,1,1,1" for i in range(1, 60_000))
    data = gzip.compress(f"{HEADER}\n{rows}\n".encode())
    p = _write(tmp_path / "big.csv.gz", data[: int(len(data) * 0.9)])
    with pytest.raises(InputFormatError, match="truncated or corrupt gzip"):
        read_localizations(p)


def test_directory_is_refused(tmp_path):
    with pytest.raises(InputFormatError, match="directory"):
        read_localizations(tmp_path)


# --------------------------------------------------------------------------- fuzzing


_HEADER_WORDS = st.sampled_from(['"x [nm]"', '"y [nm]"', "frame", "x", "y [um]", '"uncertainty [nm]"',
                                 "z [px]", "intensity [photon]", "1.5", "nan", "inf", "", '"', ",", ";"])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.lists(st.lists(_HEADER_WORDS, max_size=6).map(",".join), min_size=1, max_size=6).map("\n".join),
    st.binary(max_size=200).map(gzip.compress),
    # nearly valid files: a good header and rows of number-like or bad tokens
    st.lists(st.lists(st.sampled_from(["1", "2.5", "", "nan", "abc", "-3", "1e3", "inf", '"7"']),
                      min_size=2, max_size=4).map(",".join), max_size=4)
      .map(lambda rows: "\n".join(['"x [nm]","y [nm]","uncertainty [nm]"', *rows])),
))
def test_fuzz_only_localizations_or_input_format_error(tmp_path, payload):
    path = tmp_path / "fuzz.csv"
    _write(path, payload)
    try:
        result = read_localizations(path)
    except InputFormatError as err:
        assert "fuzz.csv" in str(err)
    else:
        assert isinstance(result, Localizations)
        assert {"x_nm", "y_nm"} <= set(result.table.columns)
        assert np.isfinite(result.xy_nm).all()
        assert len(result) == result.meta["n_rows"] > 0
