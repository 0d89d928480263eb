"""Tests of the text localization formats and the format dispatcher.

Real vendor files come from ../shared/data/smlm/locan; every fact asserted about them is
computed here with Python's csv module or plain string parsing, independently of the readers.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chromarate.io import registry
from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io.localizations import SUPPORTED_FORMATS, read_localizations

SMLM = Path(__file__).resolve().parents[3] / "shared" / "data" / "smlm"
LOCAN = SMLM / "locan"
needs_locan = pytest.mark.skipif(
    not LOCAN.is_dir(), reason=f"shared real-data folder {LOCAN} is absent (see docs/design.md section 10)"
)


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _check_canonical(locs: Localizations) -> None:
    t = locs.table
    assert list(t.columns) == [c for c in CANONICAL_COLUMNS if c in t.columns]
    assert {"x_nm", "y_nm"} <= set(t.columns)
    assert t["x_nm"].dtype == np.float64 and t["y_nm"].dtype == np.float64
    if "frame" in t.columns:
        assert t["frame"].dtype == np.int64 and (t["frame"] >= 0).all()
    assert locs.meta["n_rows"] == len(t)
    assert locs.meta["units"]["x_nm"] == "nm"


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) of a UTF-8 CSV file, blank lines left out."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    return rows[0], rows[1:]


def _read_real(path: Path, fmt: str, rows: list[list[str]], fields: dict[str, int]) -> Localizations:
    """Read a real sample and check it: canonical, of format ``fmt``, one localization per
    row of ``rows`` (the file's data, split), each canonical column of ``fields`` equal to
    that field of the rows."""
    locs = read_localizations(path)
    _check_canonical(locs)
    assert locs.meta["format"] == fmt
    assert len(locs) == len(rows)
    for canonical, i in fields.items():
        np.testing.assert_array_equal(locs.table[canonical], [float(r[i]) for r in rows])
    return locs


# =========================================================================== real files


@needs_locan
def test_elyra_real_file():
    path = LOCAN / "Elyra_dstorm_data.txt"
    raw = path.read_bytes()
    table = raw.split(b"\x00")[0].decode("latin-1")
    lines = [ln for ln in table.splitlines() if ln.strip()]
    header = lines[0].split("\t")
    rows = [ln.split("\t") for ln in lines[1:]]
    col = {h: i for i, h in enumerate(header)}

    assert len(rows) == 15
    locs = _read_real(path, "elyra", rows, {
        "x_nm": col["Position X [nm]"], "y_nm": col["Position Y [nm]"],
        "precision_nm": col["Precision [nm]"], "photons": col["Number Photons"],
    })
    t = locs.table
    assert t["x_nm"].iloc[0] == 15850.6 and t["y_nm"].iloc[-1] == 8439.4
    # ZEN's First Frame is 1-based; every localization of the sample is in frame 1
    assert {int(r[col["First Frame"]]) for r in rows} == {1}
    assert t["frame"].tolist() == [0] * 15
    assert locs.meta["frame_base"] == 1
    # nm over a 3200 x 97 nm field of view, not um or px
    assert 5000 < t["x_nm"].min() and t["x_nm"].max() < 3200 * 97.1
    assert "sigma_nm" not in t.columns and "z_nm" not in t.columns
    md = locs.meta["elyra_metadata"]
    assert md["VoxelSizeX"].startswith("0.0970873786") and md["SizeX"] == "3200"
    assert locs.meta["channels"] == [1]


@needs_locan
def test_nanoimager_real_file():
    path = LOCAN / "Nanoimager_dstorm_data.csv"
    header, data = _csv_rows(path)
    col = {h: i for i, h in enumerate(header)}

    assert len(data) == 14
    locs = _read_real(path, "nanoimager", data,
                      {"x_nm": col["X (nm)"], "y_nm": col["Y (nm)"], "photons": col["Photons"]})
    t = locs.table
    # NimOS frames are 0-based: the file holds frame 0, which stays 0
    frames = [int(r[col["Frame"]]) for r in data]
    assert min(frames) == 0
    assert t["frame"].tolist() == frames
    assert locs.meta["frame_base"] == 0
    assert t["x_nm"].iloc[0] == 40918.949219
    # all Z are 0 in this 2-D file: dropped
    assert {float(r[col["Z (nm)"]]) for r in data} == {0.0}
    assert "z_nm" not in t.columns and "Z (nm)" in locs.meta["skipped_columns"]
    assert locs.meta["channels"] == [0, 1]

    ch1 = read_localizations(path, channel=1)
    expected = [float(r[col["X (nm)"]]) for r in data if r[col["Channel"]] == "1"]
    assert ch1.table["x_nm"].tolist() == expected and len(expected) == 5
    with pytest.raises(InputFormatError, match="no localizations in channel 7"):
        read_localizations(path, channel=7)


def _rapidstorm_facts(path: Path):
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    ids = re.findall(r'identifier="([^"]+)"', lines[0])
    return lines[0], ids, [ln.split() for ln in lines[1:]]


@needs_locan
def test_rapidstorm_real_file():
    path = LOCAN / "rapidSTORM_dstorm_data.txt"
    header, ids, rows = _rapidstorm_facts(path)
    assert ids[:3] == ["Position-0-0", "Position-1-0", "ImageNumber-0-0"]
    assert 'unit="nanometer"' in header

    assert len(rows) == 14
    locs = _read_real(path, "rapidstorm", rows, {"x_nm": 0, "y_nm": 1})
    t = locs.table
    assert t["x_nm"].iloc[0] == 9657.4 and t["y_nm"].iloc[0] == 24533.5
    # rapidSTORM frames are 0-based (header min="0 fr"; the data holds frame 0)
    assert 'min="0 fr"' in header and min(int(r[2]) for r in rows) == 0
    assert t["frame"].tolist() == [int(r[2]) for r in rows]
    assert locs.meta["frame_base"] == 0
    # Amplitude is in A/D counts: not photons
    assert "photons" not in t.columns and "Amplitude-0-0" in locs.meta["skipped_columns"]
    # max declared 3.27165e-005 m = 32716.5 nm
    assert t["x_nm"].max() <= 32716.5 and t["x_nm"].max() > 30000


@needs_locan
def test_rapidstorm_from_images_psf_width_to_sigma():
    path = LOCAN / "rapidSTORM_from_images.txt"
    header, ids, rows = _rapidstorm_facts(path)
    wx, wy = ids.index("PSFWidth-0-0"), ids.index("PSFWidth-1-0")
    locs = read_localizations(path)
    assert locs.meta["format"] == "rapidstorm" and len(locs) == len(rows) == 12
    fwhm = np.array([(float(r[wx]) + float(r[wy])) / 2 for r in rows])
    np.testing.assert_allclose(locs.table["sigma_nm"], fwhm / (2 * math.sqrt(2 * math.log(2))), rtol=1e-12)
    assert locs.table["frame"].tolist() == [int(r[ids.index("ImageNumber-0-0")]) for r in rows]
    assert locs.table["frame"].iloc[0] == 1


@needs_locan
def test_rapidstorm_track_file_merged_and_points():
    path = LOCAN / "rapidSTORM_dstorm_track_data.txt"
    header, ids, rows = _rapidstorm_facts(path)
    assert header.count("<localizations") == 2
    n_outer, n_inner = 4, 8  # outer fields before the nested element, inner fields
    assert ids[:n_outer] == ["Position-0-0", "Position-1-0", "ImageNumber-0-0", "Amplitude-0-0"]
    counts = [int(r[n_outer]) for r in rows]
    assert all(len(r) == n_outer + 1 + k * n_inner for r, k in zip(rows, counts))

    merged = read_localizations(path)
    _check_canonical(merged)
    assert merged.meta["format"] == "rapidstorm" and merged.meta["tracks"] == "merged"
    assert len(merged) == len(rows) == 14
    np.testing.assert_array_equal(merged.table["x_nm"], [float(r[0]) for r in rows])
    assert merged.table["frame"].tolist() == [int(r[2]) for r in rows]

    points = read_localizations(path, tracks="points")
    _check_canonical(points)
    assert len(points) == sum(counts) == 91
    assert points.meta["track_sizes"] == counts
    inner_x = [float(r[n_outer + 1 + j * n_inner]) for r, k in zip(rows, counts) for j in range(k)]
    inner_f = [int(r[n_outer + 1 + j * n_inner + 4]) for r, k in zip(rows, counts) for j in range(k)]
    np.testing.assert_array_equal(points.table["x_nm"], inner_x)
    assert points.table["frame"].tolist() == inner_f
    assert (points.table["precision_nm"] == 25.0).all()  # x and y uncertainties are 25 nm


@needs_locan
def test_thunderstorm_real_file_via_auto():
    path = LOCAN / "Thunderstorm_dstorm_data.csv"
    locs = read_localizations(path)
    assert locs.meta["format"] == "thunderstorm" and len(locs) == 19
    assert locs.meta["frame_base"] == 1


@needs_locan
def test_five_blobs_is_not_auto_detected_but_reads_as_generic():
    path = LOCAN / "five_blobs.txt"
    header, data = _csv_rows(path)
    assert header == ["index", "position_x", "position_y", "cluster_label", "frame"]
    with pytest.raises(InputFormatError, match='format="generic"') as info:
        read_localizations(path)
    assert "units=" in str(info.value) and "five_blobs.txt" in str(info.value)

    locs = read_localizations(path, format="generic", units="nm",
                              columns={"x_nm": "position_x", "y_nm": "position_y", "frame": "frame"})
    _check_canonical(locs)
    assert len(locs) == len(data) == 50
    np.testing.assert_array_equal(locs.table["x_nm"], [float(r[1]) for r in data])
    assert locs.table["frame"].tolist() == [int(r[4]) for r in data]  # " 0" with a blank
    assert locs.meta["format"] == "generic" and locs.meta["frame_base"] == 0


# =========================================================================== N-STORM

NSTORM_HEADER = ("Channel Name\tX\tY\tXc\tYc\tHeight\tArea\tWidth\tPhi\tAx\tBG\tI\tFrame\tLength\t"
                 "Link\tValid\tZ\tZc\tPhotons\tLateral Localization Accuracy\tXw\tYw\tXwc\tYwc")


def _nstorm_row(ch, x, y, xc, yc, frame, z, zc, photons, acc):
    vals = [ch, x, y, xc, yc, 1520.3, 9120.1, 310.2, 0.0, 1.02, 812.0, 9120.1, frame, 1, -1, 1,
            z, zc, photons, acc, x, y, xc, yc]
    return "\t".join(str(v) for v in vals)


NSTORM_ROWS = [
    ("647", 10512.5, 20230.25, 10500.5, 20220.25, 1, 12.5, 10.0, 2310.4, 9.8),
    ("647", 11000.0, 21000.0, 10990.0, 20995.0, 2, -40.0, -42.0, 1200.0, 14.1),
    ("561", 5000.0, 6000.0, 4995.5, 5990.5, 2, 0.0, 1.5, 800.0, 20.3),
    ("647", 7000.25, 8000.75, 6990.25, 7990.75, 17, 3.0, 2.0, 3100.0, 8.2),
]


def _nstorm_file(tmp_path: Path, rows=NSTORM_ROWS, header=NSTORM_HEADER, name="molecules.txt") -> Path:
    body = "\r\n".join(_nstorm_row(*r) for r in rows)
    return _write(tmp_path / name, f"{header}\r\n{body}\r\n")


def test_nstorm_synthetic(tmp_path):
    path = _nstorm_file(tmp_path)
    locs = read_localizations(path)
    _check_canonical(locs)
    assert locs.meta["format"] == "nstorm"
    t = locs.table
    assert t["x_nm"].tolist() == [r[3] for r in NSTORM_ROWS]  # drift-corrected Xc
    assert t["y_nm"].tolist() == [r[4] for r in NSTORM_ROWS]
    assert t["z_nm"].tolist() == [r[7] for r in NSTORM_ROWS]  # Zc
    assert t["frame"].tolist() == [r[5] - 1 for r in NSTORM_ROWS]  # 1-based in the file
    assert t["photons"].tolist() == [r[8] for r in NSTORM_ROWS]
    assert t["precision_nm"].tolist() == [r[9] for r in NSTORM_ROWS]
    assert locs.meta["frame_base"] == 1
    assert "drift-corrected" in locs.meta["coordinates"]
    assert locs.meta["column_map"]["x_nm"] == "Xc"
    assert locs.meta["channels"] == [561, 647]

    raw = read_localizations(path, drift_corrected=False)
    assert raw.table["x_nm"].tolist() == [r[1] for r in NSTORM_ROWS]
    assert raw.table["z_nm"].tolist() == [r[6] for r in NSTORM_ROWS]
    assert raw.meta["column_map"]["x_nm"] == "X" and "raw" in raw.meta["coordinates"]

    one = read_localizations(path, channel="647")
    assert len(one) == 3 and one.table["x_nm"].tolist() == [r[3] for r in NSTORM_ROWS if r[0] == "647"]


def test_nstorm_without_corrected_columns_and_gzip(tmp_path):
    keep = [i for i, h in enumerate(NSTORM_HEADER.split("\t")) if h not in ("Xc", "Yc", "Zc")]
    header = "\t".join(NSTORM_HEADER.split("\t")[i] for i in keep)
    rows = ["\t".join(_nstorm_row(*r).split("\t")[i] for i in keep) for r in NSTORM_ROWS]
    path = _write(tmp_path / "m.txt.gz", gzip.compress(("\n".join([header, *rows]) + "\n").encode()))
    locs = read_localizations(path)
    assert locs.meta["format"] == "nstorm" and locs.meta["compressed"] is True
    assert locs.table["x_nm"].tolist() == [r[1] for r in NSTORM_ROWS]
    assert "raw" in locs.meta["coordinates"]


def test_nstorm_frame_zero_is_refused(tmp_path):
    rows = [NSTORM_ROWS[0][:5] + (0,) + NSTORM_ROWS[0][6:]]
    path = _nstorm_file(tmp_path, rows)
    with pytest.raises(InputFormatError, match=r'invalid frame number 0.0 in column "Frame" at line 2.*frame_base'):
        read_localizations(path)
    assert read_localizations(path, frame_base=0).table["frame"].tolist() == [0]


# =========================================================================== Elyra / Nanoimager synthetic

ELYRA_HEADER = ("Index\tFirst Frame\tNumber Frames\tFrames Missing\tPosition X [nm]\tPosition Y [nm]\t"
                "Precision [nm]\tNumber Photons\tBackground variance\tChi square\tPSF half width [nm]\t"
                "Channel\tZ Slice")


def test_elyra_without_nul_trailer_gzip_and_um(tmp_path):
    header = ELYRA_HEADER.replace("Position X [nm]", "Position X [µm]").replace("Position Y [nm]", "Position Y [µm]")
    rows = ["1\t3\t1\t0\t1.5\t2.25\t8.6\t472\t5.33\t0.28\t110.0\t2\t1",
            "2\t4\t2\t0\t3.0\t4.5\t9.5\t529\t4.38\t0.31\t129.8\t2\t1"]
    text = "\r\n".join([header, *rows, "", "VoxelSizeX : 0.1 µm", "SizeX : 256"]) + "\r\n"
    path = _write(tmp_path / "e.txt.gz", gzip.compress(text.encode("latin-1")))
    locs = read_localizations(path)
    assert locs.meta["format"] == "elyra"
    assert locs.table["x_nm"].tolist() == [1500.0, 3000.0]
    assert locs.table["y_nm"].tolist() == [2250.0, 4500.0]
    assert locs.table["frame"].tolist() == [2, 3]
    assert locs.meta["units"]["x_nm"] == "um"
    assert locs.meta["elyra_metadata"] == {"VoxelSizeX": "0.1 µm", "SizeX": "256"}


def test_elyra_bad_value_names_line(tmp_path):
    rows = ["1\t1\t1\t0\t10\t20\t8.6\t472\t5.33\t0.28\t110.0\t1\t1",
            "2\t1\t1\t0\tabc\t20\t8.6\t472\t5.33\t0.28\t110.0\t1\t1"]
    path = _write(tmp_path / "e.txt", "\n".join([ELYRA_HEADER, *rows]) + "\n")
    with pytest.raises(InputFormatError, match="non-numeric value 'abc' in column 5 at line 3"):
        read_localizations(path)


def test_nanoimager_pixel_columns_need_pixel_size(tmp_path):
    text = "Channel,Frame,X (pix),Y (pix),Photons\n0,0,10.5,20.25,100\n0,3,11,21,120\n"
    path = _write(tmp_path / "oni.csv", text)
    with pytest.raises(InputFormatError, match="pixel_size_nm"):
        read_localizations(path)
    locs = read_localizations(path, pixel_size_nm=117.0)
    assert locs.meta["format"] == "nanoimager" and locs.meta["pixel_size_nm"] == 117.0
    assert locs.table["x_nm"].tolist() == [10.5 * 117.0, 11 * 117.0]


@pytest.mark.parametrize(("z_header", "options"), [
    ("Z (pix)", {"pixel_size_nm": 100.0}),
    ("Z", {"units": "px", "pixel_size_nm": 100.0}),
])
def test_nanoimager_dropped_pixel_z_sets_no_pixel_size(tmp_path, z_header, options):
    # x and y in nm, z in pixels: the pixel size is in meta only when z is kept, i.e. it
    # describes the table returned, not the columns planned before a 2-D z was dropped
    flat = _write(tmp_path / "flat.csv", f"Channel,Frame,X (nm),Y (nm),{z_header}\n0,0,1,2,0\n0,1,3,4,0\n")
    locs = read_localizations(flat, format="nanoimager", **options)
    assert "z_nm" not in locs.table.columns
    assert locs.meta["skipped_columns"] == {z_header: "0 in every row (2-D acquisition)"}
    assert locs.meta["units"] == {"x_nm": "nm", "y_nm": "nm"}
    assert locs.meta["pixel_size_nm"] is None

    deep = _write(tmp_path / "deep.csv", f"Channel,Frame,X (nm),Y (nm),{z_header}\n0,0,1,2,0\n0,1,3,4,0.5\n")
    locs = read_localizations(deep, format="nanoimager", **options)
    assert locs.table["z_nm"].tolist() == [0.0, 50.0]
    assert locs.meta["units"]["z_nm"] == "px" and locs.meta["pixel_size_nm"] == 100.0


# =========================================================================== rapidSTORM synthetic


def _rs_header(x_unit="nanometer", y_unit="nanometer", extra=""):
    def field(ident, unit):
        return (f'<field identifier="{ident}" syntax="floating point with . for decimals and optional '
                f'scientific e-notation" semantic="x" unit="{unit}" />')
    return ("# <localizations insequence=\"true\" repetitions=\"variable\">" + field("Position-0-0", x_unit)
            + field("Position-1-0", y_unit)
            + '<field identifier="ImageNumber-0-0" syntax="integer" semantic="frame number" unit="frame" min="0 fr" />'
            + extra + "</localizations>")


@pytest.mark.parametrize(("unit", "scale"), [("nanometer", 1.0), ("micrometer", 1e3), ("meter", 1e9)])
def test_rapidstorm_units_from_header(tmp_path, unit, scale):
    path = _write(tmp_path / "r.txt", f"{_rs_header(unit, unit)}\n1.5e-06 2.5 0\n3 4 7\n")
    locs = read_localizations(path)
    assert locs.table["x_nm"].tolist() == [1.5e-06 * scale, 3 * scale]
    assert locs.table["y_nm"].tolist() == [2.5 * scale, 4 * scale]
    assert locs.table["frame"].tolist() == [0, 7]


def test_rapidstorm_pixel_and_unknown_units(tmp_path):
    px = _write(tmp_path / "px.txt", f"{_rs_header('pixel', 'pixel')}\n1 2 0\n")
    with pytest.raises(InputFormatError, match="pixel_size_nm"):
        read_localizations(px)
    assert read_localizations(px, pixel_size_nm=100).table["x_nm"].tolist() == [100.0]
    odd = _write(tmp_path / "odd.txt", f"{_rs_header('furlong', 'furlong')}\n1 2 0\n")
    with pytest.raises(InputFormatError, match=r'unknown unit "furlong".*units="nm".*pixel_size_nm'):
        read_localizations(odd)
    assert read_localizations(odd, units="um").table["y_nm"].tolist() == [2000.0]


@pytest.mark.parametrize(("content", "phrase"), [
    ("# <localizations><field identifier=\"Position-0-0\" unit=\"nanometer\" ></localizations>\n1 2\n", "not valid XML"),
    (_rs_header() + "\n1 2\n", "has 2 fields but the header names 3"),
    (_rs_header() + "\n1 2 0\n1 2 0 4\n", "line 3 has 4 fields"),
    (_rs_header() + "\n", "no localizations"),
    (_rs_header() + "\n1 2 0.5\n", "invalid frame number 0.5"),
    ("# <localizations><field identifier=\"Position-0-0\" unit=\"nanometer\" /></localizations>\n1\n", 'no "Position-1-0"'),
])
def test_rapidstorm_bad_files(tmp_path, content, phrase):
    path = _write(tmp_path / "bad.txt", content)
    with pytest.raises(InputFormatError, match=re.escape(phrase)) as info:
        read_localizations(path)
    assert "bad.txt" in str(info.value)


def test_rapidstorm_malformed_track_row(tmp_path):
    inner = '<localizations><field identifier="Position-0-0" unit="nanometer" /><field identifier="Position-1-0" unit="nanometer" /></localizations>'
    header = _rs_header(extra=inner)
    good = "1 2 3 2 1.1 2.1 0.9 1.9"
    path = _write(tmp_path / "t.txt", f"{header}\n{good}\n1 2 3 2 1.1 2.1 0.9\n")
    with pytest.raises(InputFormatError, match="line 3 has 7 fields but declares 2 track points"):
        read_localizations(path)
    ok = _write(tmp_path / "ok.txt", f"{header}\n{good}\n")
    assert read_localizations(ok, tracks="points").table["x_nm"].tolist() == [1.1, 0.9]
    with pytest.raises(ConfigError, match="tracks"):
        read_localizations(ok, tracks="all")


# =========================================================================== generic


def test_generic_csv_nm_mapping(tmp_path):
    text = "id,X_pos,Y_pos,t,phot,prec\n1,100.5,200.25,1,500,10\n2,110,210,2,600,12\n"
    path = _write(tmp_path / "g.csv", text)
    locs = read_localizations(path, format="generic", units="nm", frame_base=1,
                              columns={"x_nm": "X_pos", "y_nm": "Y_pos", "frame": "t",
                                       "photons": "phot", "precision_nm": "prec"})
    _check_canonical(locs)
    t = locs.table
    assert t["x_nm"].tolist() == [100.5, 110.0] and t["y_nm"].tolist() == [200.25, 210.0]
    assert t["frame"].tolist() == [0, 1] and t["photons"].tolist() == [500.0, 600.0]
    assert t["precision_nm"].tolist() == [10.0, 12.0]
    assert locs.meta["frame_base"] == 1 and locs.meta["delimiter"] == ","
    assert locs.meta["column_map"] == {"x_nm": "X_pos", "y_nm": "Y_pos", "frame": "t",
                                       "photons": "phot", "precision_nm": "prec"}


def test_generic_tsv_um_case_insensitive_names(tmp_path):
    path = _write(tmp_path / "g.tsv", "X Pos\tY Pos\tSigma\n1.5\t2.5\t0.1\n3\t4\t0.2\n")
    locs = read_localizations(path, format="generic", units="um",
                              columns={"x_nm": "x pos", "y_nm": "Y POS", "sigma_nm": "sigma"})
    assert locs.table["x_nm"].tolist() == [1500.0, 3000.0]
    assert locs.table["sigma_nm"].tolist() == [100.0, 200.0]
    assert locs.meta["delimiter"] == "\t" and locs.meta["units"]["x_nm"] == "um"


def test_generic_whitespace_px_and_gzip(tmp_path):
    text = "x y frame\n  1.0   2.0 0\n 3.5 4.5 5\n"
    path = _write(tmp_path / "g.dat.gz", gzip.compress(text.encode()))
    cols = {"x_nm": "x", "y_nm": "y", "frame": "frame"}
    with pytest.raises(InputFormatError, match="pixel_size_nm"):
        read_localizations(path, format="generic", columns=cols, units="px")
    locs = read_localizations(path, format="generic", columns=cols, units="px", pixel_size_nm=160)
    assert locs.table["x_nm"].tolist() == [160.0, 560.0]
    assert locs.table["frame"].tolist() == [0, 5]
    assert locs.meta["delimiter"] == "whitespace" and locs.meta["compressed"] is True
    assert locs.meta["pixel_size_nm"] == 160.0


def test_generic_semicolon_decimal_comma(tmp_path):
    path = _write(tmp_path / "eu.csv", "X;Y\n1,5;2,25\n3;4\n")
    locs = read_localizations(path, format="generic", columns={"x_nm": "X", "y_nm": "Y"}, units="nm")
    assert locs.table["x_nm"].tolist() == [1.5, 3.0] and locs.table["y_nm"].tolist() == [2.25, 4.0]
    assert locs.meta["delimiter"] == ";" and locs.meta["decimal"] == ","


def test_canonical_header_is_auto_read_as_generic_nm(tmp_path):
    table = pd.DataFrame({"x_nm": [1.0, 2.5], "y_nm": [3.0, 4.5], "frame": [0, 3]})
    plain = tmp_path / "canon.csv"
    table.to_csv(plain, index=False)
    locs = read_localizations(plain)
    assert locs.meta["format"] == "generic" and locs.meta["canonical_header"] is True
    pd.testing.assert_frame_equal(locs.table, table.astype({"frame": np.int64}))
    with_index = tmp_path / "canon_index.csv"
    table.to_csv(with_index)  # pandas writes a leading unnamed index column
    assert read_localizations(with_index).table["x_nm"].tolist() == [1.0, 2.5]
    # a header that is not all canonical is not auto-read
    _write(tmp_path / "near.csv", "x_nm,y_nm,cluster\n1,2,3\n")
    with pytest.raises(InputFormatError, match="not a recognised localization format"):
        read_localizations(tmp_path / "near.csv")


GENERIC_ERRORS = [
    # id, content, options, error type, phrase
    ("no units", "a,b\n1,2\n", {"columns": {"x_nm": "a", "y_nm": "b"}}, InputFormatError, "units="),
    ("no columns", "a,b\n1,2\n", {"units": "nm"}, InputFormatError, "columns="),
    ("missing column", "a,b\n1,2\n", {"columns": {"x_nm": "a", "y_nm": "Y_pos"}, "units": "nm"},
     InputFormatError, 'columns["y_nm"] = "Y_pos" is not a column of the file; columns found: "a", "b"'),
    ("unknown canonical", "a,b\n1,2\n", {"columns": {"x_nm": "a", "y": "b"}, "units": "nm"}, ConfigError,
     "unknown canonical name"),
    ("no y mapping", "a,b\n1,2\n", {"columns": {"x_nm": "a"}, "units": "nm"}, ConfigError, "y_nm"),
    ("bad units", "a,b\n1,2\n", {"columns": {"x_nm": "a", "y_nm": "b"}, "units": "parsec"}, ConfigError, "units"),
    ("non-numeric", "a,b\n1,2\n3,x\n", {"columns": {"x_nm": "a", "y_nm": "b"}, "units": "nm"},
     InputFormatError, "non-numeric value 'x' in column 2 at line 3"),
    ("ragged", "a,b\n1,2\n\n3,4,5\n", {"columns": {"x_nm": "a", "y_nm": "b"}, "units": "nm"},
     InputFormatError, "line 4 has 3 fields"),
    ("header only", "a,b\n", {"columns": {"x_nm": "a", "y_nm": "b"}, "units": "nm"}, InputFormatError,
     "no localizations"),
    ("frame below base", "a,b,f\n1,2,0\n", {"columns": {"x_nm": "a", "y_nm": "b", "frame": "f"},
                                           "units": "nm", "frame_base": 1}, InputFormatError,
     'invalid frame number 0.0 in column "f" at line 2'),
    ("nan coordinate", "a,b\n1,2\nnan,3\n", {"columns": {"x_nm": "a", "y_nm": "b"}, "units": "nm"},
     InputFormatError, 'NaN value in coordinate column "a" at line 3'),
    ("unknown option", "a,b\n1,2\n", {"columns": {"x_nm": "a", "y_nm": "b"}, "units": "nm", "pixelsize": 3},
     TypeError, "pixelsize"),
]


@pytest.mark.parametrize(("content", "options", "error", "phrase"), [c[1:] for c in GENERIC_ERRORS],
                         ids=[c[0] for c in GENERIC_ERRORS])
def test_generic_errors(tmp_path, content, options, error, phrase):
    path = _write(tmp_path / "g.csv", content)
    with pytest.raises(error) as info:
        read_localizations(path, format="generic", **options)
    assert phrase in str(info.value)
    if error is InputFormatError:
        assert info.value.path == str(path)


# =========================================================================== dispatcher


def test_registry_names_order_and_explicit_override(tmp_path):
    assert set(SUPPORTED_FORMATS) == {"thunderstorm", "elyra", "nanoimager", "nstorm", "rapidstorm",
                                      "picasso", "smap", "decode", "smlm", "asdf", "generic"}
    assert set(registry.registered_formats()) == set(SUPPORTED_FORMATS)
    assert registry.registered_formats()[-1] == "generic"
    for name in ("elyra", "nanoimager", "nstorm", "rapidstorm", "generic", "thunderstorm"):
        assert registry.get_reader(name) is not None, registry.unavailable_formats().get(name)
    # an explicit format wins over detection: an N-STORM file read as generic
    path = _nstorm_file(tmp_path)
    locs = read_localizations(path, format="GENERIC", columns={"x_nm": "X", "y_nm": "Y"}, units="nm")
    assert locs.meta["format"] == "generic" and locs.table["x_nm"].tolist() == [r[1] for r in NSTORM_ROWS]
    with pytest.raises(InputFormatError, match="unknown localization format 'storm'"):
        read_localizations(path, format="storm")


def test_missing_reader_module_is_skipped(tmp_path, monkeypatch):
    broken = registry.ModuleReader("picasso", "chromarate.io.formats._no_such_module")
    monkeypatch.setitem(registry._READERS, "picasso", broken)
    path = _write(tmp_path / "a.csv", '"x [nm]","y [nm]"\n1,2\n')
    assert read_localizations(path).meta["format"] == "thunderstorm"
    with pytest.raises(InputFormatError, match="format 'picasso' is not available"):
        read_localizations(path, format="picasso")
    with pytest.raises(InputFormatError, match="unavailable here: picasso"):
        read_localizations(_write(tmp_path / "b.csv", "a,b\n1,2\n"))


def test_undetectable_file_lists_formats_and_suggests_generic(tmp_path):
    path = _write(tmp_path / "mystery.txt", "alpha;beta\n1;2\n")
    with pytest.raises(InputFormatError) as info:
        read_localizations(path)
    msg = str(info.value)
    assert "mystery.txt" in msg and 'format="generic"' in msg and "units=" in msg


def test_text_readers_refuse_wrong_files(tmp_path):
    path = _write(tmp_path / "ts.csv", '"x [nm]","y [nm]"\n1,2\n')
    for fmt in ("elyra", "nanoimager", "nstorm", "rapidstorm"):
        with pytest.raises(InputFormatError) as info:
            read_localizations(path, format=fmt)
        assert "ts.csv" in str(info.value)
    with pytest.raises(InputFormatError, match="file not found"):
        read_localizations(tmp_path / "nope.txt", format="elyra")
    with pytest.raises(InputFormatError, match="empty file"):
        read_localizations(_write(tmp_path / "empty.txt", b""), format="rapidstorm")
    with pytest.raises(InputFormatError, match="binary data"):
        read_localizations(_write(tmp_path / "bin.csv", b"x_nm,y_nm\n1,\x002\n"), format="generic")


# =========================================================================== fuzzing

_LINES = st.sampled_from([
    ELYRA_HEADER, NSTORM_HEADER, _rs_header(), "Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background",
    "x_nm,y_nm,frame", "x_nm\ty_nm", '"x [nm]","y [nm]"', "1\t2\t3", "1,2,3", "1 2 3", "nan,inf,-1",
    "0,0,1e400,2", "\x00", "# <localizations>", "abc\tdef", ";;", "", "1,5;2", "VoxelSizeX : 1 µm",
])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=300),
        st.lists(_LINES, min_size=1, max_size=6).map("\n".join),
        st.tuples(_LINES, st.lists(st.lists(st.sampled_from(["1", "2.5", "", "nan", "x", "-3", "1e3", "inf", "0"]),
                                            max_size=26).map("\t".join), max_size=4))
          .map(lambda hr: "\n".join([hr[0], *hr[1]])),
        st.binary(max_size=200).map(gzip.compress),
    ),
    fmt=st.sampled_from(["auto", "auto", "auto", "elyra", "nanoimager", "nstorm", "rapidstorm"]),
)
def test_fuzz_text_formats_raise_only_input_format_error(tmp_path, payload, fmt):
    path = tmp_path / "fuzz.txt"
    _write(path, payload)
    try:
        result = read_localizations(path, format=fmt)
    except InputFormatError as err:
        assert "fuzz.txt" in str(err)
    else:
        assert isinstance(result, Localizations)
        assert np.isfinite(result.xy_nm).all()
        assert len(result) == result.meta["n_rows"] > 0
