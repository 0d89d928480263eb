"""Finding a batch's inputs (files, folders, globs) and naming their output folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from chromarate.batch import discover_inputs
from chromarate.batch.inputs import output_names
from chromarate.errors import InputFormatError
from chromarate.io.names import input_stem


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    return path


def test_folders_are_searched_recursively_for_supported_files(tmp_path):
    data = tmp_path / "data"
    files = [_touch(data / "ctrl" / "cell1.csv"), _touch(data / "ctrl" / "cell2.csv.gz"),
             _touch(data / "treated" / "cell1.hdf5"), _touch(data / "treated" / "img.tif"),
             _touch(data / "b.smlm")]
    _touch(data / "ctrl" / "cell1.truth.npz")        # truth files are not inputs
    _touch(data / "treated" / "cell1.yaml")          # Picasso sidecar
    _touch(data / ".hidden" / "x.csv")               # hidden folders are skipped
    _touch(data / "old.ome.zarr" / "0" / "c.csv")    # so are result stores
    found = discover_inputs([data])
    assert sorted(found) == sorted(files)


def test_output_folder_is_excluded(tmp_path):
    data = tmp_path / "data"
    cell = _touch(data / "cell.csv")
    _touch(data / "results" / "summary.csv")
    assert discover_inputs([data], exclude=[data / "results"]) == [cell]
    # the output folder itself, or a folder inside it, as the input folder is named
    for inside in (data, data / "results"):
        with pytest.raises(InputFormatError, match=r"the batch's output folder \(--out\)"):
            discover_inputs([inside], exclude=[inside if inside == data else data])


def test_one_input_given_alone_is_one_input(tmp_path):
    """A str or path in place of a list is one input, not its characters (a str 'data/'
    once searched '/' and 'a' and 't')."""
    data = tmp_path / "data"
    cell = _touch(data / "cell.csv")
    assert discover_inputs(str(data)) == [cell] == discover_inputs(data)
    assert discover_inputs(str(cell)) == [cell]


def test_an_earlier_batchs_output_folder_is_not_searched(tmp_path):
    """A folder holding summary.csv and batch.log is results: skipped inside a data
    folder, refused (naming what it is) when given as the input folder."""
    data = tmp_path / "data"
    cell = _touch(data / "cell.csv")
    old = data / "old-results"
    for name in ("summary.csv", "batch.log", "nuclei.csv", "report/domains.csv"):
        _touch(old / name)
    _touch(data / "notes" / "summary.csv")  # one marker alone is a plain folder
    assert sorted(discover_inputs([data])) == sorted([cell, data / "notes" / "summary.csv"])
    with pytest.raises(InputFormatError, match="a chromarate output folder") as info:
        discover_inputs([old])
    assert str(old) in str(info.value)
    assert output_names(["x/report.csv"])[Path("x/report.csv")] == "report-input"


def test_globs_files_and_duplicates(tmp_path):
    a = _touch(tmp_path / "a" / "c1.csv")
    b = _touch(tmp_path / "b" / "c2.csv")
    missing = tmp_path / "nope.csv"
    found = discover_inputs([str(tmp_path / "*" / "c*.csv"), a, missing])
    assert found == [a, b, missing]  # a once; a missing file is kept (the batch reports it)
    assert discover_inputs([str(tmp_path / "**" / "*.csv")]) == [a, b]


@pytest.mark.parametrize("spec", ["empty_folder", "*.nothing"])
def test_empty_folder_or_pattern_is_an_error(tmp_path, spec):
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(InputFormatError, match="no input file|matches no file"):
        discover_inputs([str(tmp_path / spec)])


def test_stems_and_distinct_output_names():
    assert input_stem("x/cell_1.csv.gz") == "cell_1"
    assert input_stem("cell.hdf5") == "cell" and input_stem("a.b.tiff") == "a.b"
    names = output_names([Path("/d/ctrl/cell1.csv"), Path("/d/treated/cell1.csv"),
                          Path("/d/ctrl/cell2.csv"), Path("/e/ctrl/cell3.csv.gz"),
                          Path("/f/ctrl/cell3.csv")])
    assert list(names.values()) == ["ctrl__cell1", "treated__cell1", "cell2", "e__ctrl__cell3",
                                    "f__ctrl__cell3"]
    # the same list gives the same names, so a resumed batch finds its results
    assert output_names(list(names)) == names


@pytest.mark.parametrize("name", ["cell.tif", "cell.TIFF", "cell.mat", "cell.smlm",
                                  "cell.asdf", "cell.txt.gz", "cell.csv.gz", "cell.h5"])
def test_truth_file_is_found_beside_every_input_format(tmp_path, name):
    from chromarate.batch.inputs import INPUT_SUFFIXES
    from chromarate.data import truth_path_for
    from chromarate.io.names import input_stem as io_input_stem

    assert input_stem is io_input_stem  # one definition, re-exported by batch
    assert name.lower().endswith(INPUT_SUFFIXES)
    inp = tmp_path / name
    inp.write_bytes(b"")
    assert truth_path_for(inp) is None  # nothing beside it yet
    truth = tmp_path / "cell.truth.npz"
    truth.write_bytes(b"")
    assert truth_path_for(inp) == truth


def test_truth_is_read_once_for_all_nuclei_of_an_input(tmp_path, monkeypatch):
    import numpy as np

    import chromarate.io.truth as truth_io
    from chromarate.data import read_truth_for

    inp = tmp_path / "cell.tif"
    inp.write_bytes(b"")
    assert read_truth_for(inp) is None
    rate = np.full((4, 4), 1.5, np.float32)
    truth_io.write_truth(tmp_path / "cell.truth.npz", rate=rate, phi_w=rate, phi_d=rate,
                         mask=np.ones((4, 4), bool), pixel_size_nm=20.0, origin_nm=(0.0, 0.0),
                         meta={})
    calls = []
    real = truth_io.read_truth
    monkeypatch.setattr(truth_io, "read_truth", lambda p: calls.append(p) or real(p))
    first, second = read_truth_for(inp), read_truth_for(inp)
    assert len(calls) == 1  # one read, shared by every nucleus of the input
    np.testing.assert_array_equal(first["rate"], rate)
    assert second["rate"] is first["rate"] and not first["rate"].flags.writeable


def test_earlier_failed_rows_are_kept_only_while_their_input_is_there(tmp_path):
    from chromarate.batch.earlier import earlier_rows, merged_rows

    there = _touch(tmp_path / "bad.csv")
    summary = tmp_path / "out" / "summary.csv"
    summary.parent.mkdir()
    summary.write_text("input,name,nucleus_id,status,error\n"
                       f"{there},bad,,failed,no x column\n"
                       f"{tmp_path / 'gone.csv'},gone,,failed,no x column\n"
                       f"{there},ok,1,ok,\n")  # its result store is not there: dropped
    rows = earlier_rows(summary, summary.parent)
    assert [r["name"] for r in rows] == ["bad"]
    now = [{"name": "new", "nucleus_id": 1, "status": "ok"}]
    assert [r["name"] for r in merged_rows(now, rows, {"new": 0})] == ["new", "bad"]
    assert [r["name"] for r in merged_rows(now + [{"name": "bad", "nucleus_id": None,
                                                   "status": "failed"}], rows,
                                           {"new": 0, "bad": 1})] == ["new", "bad"]


def test_a_summary_whose_rows_would_pass_the_read_limit_is_not_read_back(tmp_path):
    from chromarate.batch.earlier import SUMMARY_MEMORY_FACTOR, readable_summary
    from chromarate.io.limits import read_limit

    summary = tmp_path / "summary.csv"
    summary.write_text("input,name,nucleus_id,status\n" + "a.csv,a,1,ok\n" * 200)
    assert readable_summary(summary)
    with read_limit(summary.stat().st_size * SUMMARY_MEMORY_FACTOR - 1):
        assert not readable_summary(summary)
    assert not readable_summary(tmp_path / "missing.csv")
