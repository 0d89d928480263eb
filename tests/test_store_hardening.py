"""Hostile files in an output folder and beside inputs: FIFOs and links to devices where a
result store, a manifest or a truth file should be, oversized store files, truth files that
declare huge or object arrays, file names that are not valid UTF-8, and a report folder
linked elsewhere.

A FIFO test never hangs: :func:`_watched_fifo` makes the FIFO and a watchdog thread that
opens its writing end whenever a reader waits on it (so a reader that opens it gets an
empty file at once instead of blocking) and records that it did; the tests assert that
nothing opened it.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import threading
import time
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from numpy.lib import format as npy

from chromarate.errors import InputFormatError, ResultStoreError
from chromarate.io.batch_files import batch_log, read_json, write_json, write_text
from chromarate.io.limits import read_limit
from chromarate.io.truth import read_truth, write_truth
from chromarate.io.zarr_store import is_complete_result, open_result, read_result, write_result

from .io.test_zarr_store import make_stack

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")


# --------------------------------------------------------------------------------------
# helpers


class _Watchdog(threading.Thread):
    """Opens the writing end of a FIFO whenever a reader waits on it, so the reader gets
    an empty file instead of blocking; ``opened`` says whether that ever happened."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.opened = False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: no reader waits; ENOENT: removed
                if exc.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
            else:
                self.opened = True
                os.close(fd)
            time.sleep(0.02)


@contextmanager
def _watched_fifo(path: Path):
    """Replace ``path`` with a FIFO for the block; yields the :class:`_Watchdog`."""
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    dog = _Watchdog(path)
    dog.start()
    try:
        yield dog
    finally:
        dog.stop.set()
        dog.join(timeout=5)


def _store(tmp_path: Path, version: str = "0.5") -> Path:
    return write_result(make_stack(), tmp_path / f"cell_{version}" / "1.ome.zarr",
                        ngff_version=version)


def _a_chunk(store: Path) -> Path:
    """One chunk file of the image array of ``store`` (zarr v3 or v2 layout)."""
    files = [p for p in (store / "0").rglob("*") if p.is_file() and not p.name.startswith(".")
             and p.name != "zarr.json"]
    return sorted(files)[0]


# --------------------------------------------------------------------------------------
# 1 (a): the manifest


def test_read_json_treats_a_fifo_as_missing_without_opening_it(tmp_path, caplog):
    path = tmp_path / "input.json"
    with caplog.at_level(logging.WARNING, logger="chromarate.io"):
        with _watched_fifo(path) as dog:
            assert read_json(path) is None
    assert not dog.opened
    assert str(path) in caplog.text and "not a regular file" in caplog.text


def test_read_json_refuses_a_device_and_a_file_over_its_cap(tmp_path, caplog):
    link = tmp_path / "input.json"
    link.symlink_to("/dev/null")  # stands for /dev/zero, which would never end if read
    big = write_json(tmp_path / "big.json", {"nuclei": list(range(100))})
    with caplog.at_level(logging.WARNING, logger="chromarate.io"):
        assert read_json(link) is None
        assert read_json(big, max_bytes=64) is None
        assert read_json(big)["nuclei"][-1] == 99
        assert read_json(tmp_path / "missing.json") is None
    assert "not a regular file" in caplog.text and "more than the 64" in caplog.text


# --------------------------------------------------------------------------------------
# 1 (b) and 2: result stores


@pytest.mark.parametrize(("version", "name"), [("0.5", "zarr.json"), ("0.4", ".zattrs"),
                                               ("0.4", ".zgroup")])
def test_a_fifo_as_root_metadata_is_refused_unopened(tmp_path, version, name):
    store = _store(tmp_path, version)
    with _watched_fifo(store / name) as dog:
        with pytest.raises(ResultStoreError, match="not a regular file") as info:
            open_result(store)
        assert not is_complete_result(store)
    assert not dog.opened
    assert name in str(info.value) and str(store) in str(info.value)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_a_fifo_as_array_metadata_or_chunk_is_refused_unopened(tmp_path, version):
    store = _store(tmp_path, version)
    meta = store / "labels" / "nucleus" / "0" / ("zarr.json" if version == "0.5" else ".zarray")
    with _watched_fifo(meta) as dog:
        with pytest.raises(ResultStoreError, match="not a regular file") as info:
            read_result(store)
    assert not dog.opened and "labels/nucleus/0" in str(info.value)

    store = _store(tmp_path / "again", version)
    chunk = _a_chunk(store)
    with _watched_fifo(chunk) as dog:
        with pytest.raises(ResultStoreError, match="chunk file .* not a regular file") as info:
            read_result(store)
    assert not dog.opened and os.path.relpath(chunk, store) in str(info.value)


def test_links_to_devices_are_refused(tmp_path):
    """/dev/null stands for /dev/zero here: read, it would be an empty file, not an endless
    one, so the test is safe without the check too."""
    store = _store(tmp_path)
    (store / "zarr.json").unlink()
    (store / "zarr.json").symlink_to("/dev/null")
    with pytest.raises(ResultStoreError, match="'zarr.json' is not a regular file"):
        open_result(store)
    store = _store(tmp_path / "chunk")
    chunk = _a_chunk(store)
    chunk.unlink()
    chunk.symlink_to("/dev/null")
    with pytest.raises(ResultStoreError, match="chunk file .* not a regular file"):
        open_result(store)


def test_oversized_metadata_and_chunk_files_are_refused_from_stat(tmp_path):
    store = _store(tmp_path)
    os.truncate(store / "zarr.json", 64 << 20)  # sparse: nothing is allocated
    with pytest.raises(ResultStoreError, match=r"'zarr.json' has 67108864 bytes, expected at most"):
        open_result(store)

    store = _store(tmp_path / "chunk")
    chunk = _a_chunk(store)
    os.truncate(chunk, 64 << 20)
    with pytest.raises(ResultStoreError, match="chunk file .* has 67108864 bytes") as info:
        open_result(store)  # refused before any value is read
    assert os.path.relpath(chunk, store) in str(info.value)


def test_sound_stores_still_read(tmp_path):
    for version in ("0.5", "0.4"):
        store = _store(tmp_path, version)
        assert is_complete_result(store)
        np.testing.assert_array_equal(read_result(store).labels["nucleus"],
                                      make_stack().labels["nucleus"])


def test_info_of_a_store_with_a_fifo_returns(tmp_path):
    from click.testing import CliRunner

    from chromarate.cli import cli

    store = _store(tmp_path)
    with _watched_fifo(store / "zarr.json") as dog:
        res = CliRunner().invoke(cli, ["info", str(store)])
    assert not dog.opened
    assert res.exit_code != 0 and "not a regular file" in str(res.output) + str(res.exception)


# --------------------------------------------------------------------------------------
# 3: truth files


def _truth_arrays(shape=(16, 20)):
    rng = np.random.default_rng(0)
    return dict(rate=rng.random(shape), phi_w=rng.random(shape), phi_d=rng.random(shape),
                mask=rng.random(shape) > 0.5)


def _npy(value) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=True)
    return buf.getvalue()


def _zeros_member(zf: zipfile.ZipFile, name: str, shape, descr: str, itemsize: int) -> None:
    """A member declaring a zero array of ``shape``, streamed (compresses to nearly
    nothing)."""
    with zf.open(name, "w", force_zip64=True) as fh:
        npy.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False,
                                        "shape": shape})
        left, block = int(np.prod(shape)) * itemsize, bytes(1 << 20)
        while left > 0:
            fh.write(block[:min(left, len(block))])
            left -= len(block)


def _hostile_truth(path: Path, replace: dict) -> Path:
    """A truth file written by write_truth with some members replaced: ``replace`` maps a
    member name to bytes, or to (shape, descr, itemsize) of a streamed zero array."""
    good = write_truth(path.with_suffix(".good"), **_truth_arrays(), pixel_size_nm=20.0,
                       origin_nm=(0.0, 0.0), meta={"seed": 1})
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name not in replace:
                dst.writestr(name, src.read(name))
        for name, what in replace.items():
            if isinstance(what, bytes):
                dst.writestr(name, what)
            else:
                _zeros_member(dst, name, *what)
    return path


def test_truth_arrays_beyond_the_read_limit_are_refused_from_their_headers(tmp_path):
    side = (2000, 2000)  # 16 MB per float32 grid, 4 MB of mask: 52 MB declared
    path = _hostile_truth(tmp_path / "big.truth.npz", {
        "rate.npy": (side, "<f4", 4), "phi_w.npy": (side, "<f4", 4),
        "phi_d.npy": (side, "<f4", 4), "mask.npy": (side, "|b1", 1)})
    assert path.stat().st_size < 1 << 20
    with read_limit("8M"):
        with pytest.raises(InputFormatError, match="read limit") as info:
            read_truth(path)
    assert "'rate'" in str(info.value) and "(2000, 2000)" in str(info.value)
    with read_limit("1G"):
        assert read_truth(path)["rate"].shape == side  # a genuine big truth still reads


def test_truth_grid_shapes_are_checked_before_loading(tmp_path):
    path = _hostile_truth(tmp_path / "odd.truth.npz", {"rate.npy": ((3000, 3000), "<f4", 4)})
    tracemalloc.start()
    try:  # one 36 MB array, refused for its shape before it is loaded
        with pytest.raises(InputFormatError, match=r"'phi_w' has shape \(16, 20\), expected "
                                                   r"2-D \(3000, 3000\)"):
            read_truth(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_truth_object_arrays_and_raw_members_are_refused(tmp_path):
    obj = np.array([{"a": 1}], dtype=object)
    path = _hostile_truth(tmp_path / "obj.truth.npz", {"meta.npy": _npy(obj)})
    with pytest.raises(InputFormatError, match="'meta' holds Python objects"):
        read_truth(path)
    # a member that is no .npy array would be read whole as bytes by numpy.load
    path = _hostile_truth(tmp_path / "raw.truth.npz", {"rate": b"\0" * 4096})
    with pytest.raises(InputFormatError, match="'rate' is not a .npy array"):
        read_truth(path)


def test_truth_that_is_a_fifo_is_refused_unopened(tmp_path):
    path = tmp_path / "cell.truth.npz"
    with _watched_fifo(path) as dog:
        with pytest.raises(InputFormatError, match="not a regular file"):
            read_truth(path)
    assert not dog.opened


def test_an_unreadable_truth_is_a_warning_not_a_failed_nucleus(tmp_path, caplog):
    from chromarate.batch.tasks import _with_truth_metrics

    csv = tmp_path / "cell.csv"
    csv.write_text("x,y\n")
    (tmp_path / "cell.truth.npz").write_bytes(b"not a zip archive")
    stack = make_stack()
    result = SimpleNamespace(stack=stack, fit=None)
    with caplog.at_level(logging.WARNING, logger="chromarate.batch"):
        assert _with_truth_metrics(result, csv) is stack
    assert "ground truth not used" in caplog.text and "cell.truth.npz" in caplog.text


# --------------------------------------------------------------------------------------
# 4: file names that are not valid UTF-8


def test_text_with_surrogates_is_written_escaped(tmp_path):
    name = os.fsdecode(b"bad\xff.csv")  # 'bad\udcff.csv'
    path = write_text(tmp_path / "summary.csv", f"input\n{name}\n")
    assert path.read_bytes() == b"input\nbad\\udcff.csv\n"
    assert pd.read_csv(path).input.tolist() == ["bad\\udcff.csv"]


def test_batch_log_writes_names_with_surrogates(tmp_path, capsys):
    logger = logging.getLogger("chromarate.test_store_hardening")
    name = os.fsdecode(b"bad\xff.csv")
    with batch_log(tmp_path / "batch.log", logger) as path:
        logger.info("input %s", name)
    assert "input bad\\udcff.csv" in path.read_text(encoding="utf-8")
    assert "Logging error" not in capsys.readouterr().err


def test_batch_goes_on_with_a_non_utf8_name_and_a_bad_truth(tiny_nucleus, tmp_path):
    """End to end: the summary is written, the nucleus is fitted, the truth left out."""
    from chromarate.batch import run_batch
    from chromarate.config import with_overrides
    from chromarate.presets import resolve_pipeline

    csv, _, _ = tiny_nucleus
    data = tmp_path / "data"
    data.mkdir()
    stem = os.fsdecode(b"bad\xff")
    (data / f"{stem}.csv").write_bytes(Path(csv).read_bytes())
    (data / f"{stem}.truth.npz").write_bytes(b"PK\x05\x06 damaged")
    cfg = with_overrides(resolve_pipeline("quick-cpu")[0], {"fit.method": "direct"})
    out = tmp_path / "out"
    report = run_batch(cfg, [data], out)
    assert report.n_failed == 0, report.rows
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 1 and summary.status[0] in ("ok", "low_confidence")
    assert summary.input[0].endswith("bad\\udcff.csv")
    assert np.isnan(summary.rate_corr_truth[0])
    log = (out / "batch.log").read_text(encoding="utf-8")
    assert "ground truth not used" in log and "bad\\udcff" in log


# --------------------------------------------------------------------------------------
# 5: the report writes only inside its folder


def _batch_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_result(make_stack(), folder / "cell" / "1.ome.zarr")
    return folder


@pytest.mark.parametrize("link", ["report", "nuclei.csv", "report/domains.csv",
                                  "report/index.html", "report/nuclei"])
def test_report_refuses_links_out_of_its_folder(tmp_path, link):
    from chromarate.report import make_report

    folder = _batch_folder(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    target = folder / link
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(victim if "." not in target.name else victim / target.name)
    with pytest.raises(ResultStoreError, match="symbolic link") as info:
        make_report(folder, figures=False)
    assert str(target) in str(info.value)
    assert list(victim.iterdir()) == []


def test_report_does_not_read_an_oversized_summary(tmp_path, monkeypatch, caplog):
    from chromarate.batch import earlier
    from chromarate.report import batch_failures

    folder = tmp_path / "results"
    folder.mkdir()
    rows = "input,nucleus_id,status,error\n" + "a.csv,1,failed,boom\n" * 200
    (folder / "summary.csv").write_text(rows)
    assert len(batch_failures(folder)) == 200
    monkeypatch.setattr(earlier, "MAX_SUMMARY_BYTES", 1000)
    with caplog.at_level(logging.WARNING, logger="chromarate.report"):
        assert batch_failures(folder).empty
    assert "summary.csv" in caplog.text and "more than a summary may take" in caplog.text


def test_a_truth_that_cannot_be_read_is_read_once_for_all_nuclei(tmp_path, monkeypatch):
    """The nuclei of one input share one read of its truth file, also when it fails."""
    from chromarate import data
    from chromarate.errors import InputFormatError
    from chromarate.io import truth as truth_module

    csv = tmp_path / "cell.csv"
    csv.write_text("x,y\n1,2\n")
    (tmp_path / "cell.truth.npz").write_bytes(b"not a zip archive")
    calls = []
    real = truth_module.read_truth

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(truth_module, "read_truth", counting)
    data._read_truth_cached.cache_clear()
    for _ in range(3):
        with pytest.raises(InputFormatError, match="cell.truth.npz"):
            data.read_truth_for(csv)
    assert len(calls) == 1
