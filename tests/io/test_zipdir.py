"""Zip archives (.smlm, truth .npz) whose central directory is far larger than theirs can
be are refused from the directory's end record, before zipfile parses it
(chromarate.io._zipdir)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from chromarate.errors import InputFormatError
from chromarate.io._zipdir import check_zip_directory, zip_directory_size


def _archive(path, entries: int, first: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in first.items():
            zf.writestr(name, data)
        for i in range(entries):
            zf.writestr(f"e{i}", b"")


def test_the_directory_size_is_read_from_the_end_record(tmp_path):
    path = tmp_path / "a.zip"
    _archive(path, 10, {"x": b"1"})
    with open(path, "rb") as fh:
        entries, nbytes = zip_directory_size(fh)
        assert entries == 11 and 11 * 46 < nbytes < 11 * 100
        assert fh.tell() > 0  # left where it read
        fh.seek(0)
        check_zip_directory(fh, path, "an archive")  # small: no error
        assert fh.tell() == 0  # position restored
    assert zip_directory_size(io.BytesIO(b"not a zip")) is None
    with open(path, "rb") as fh, pytest.raises(InputFormatError, match="11 entries"):
        check_zip_directory(fh, path, "an archive", max_bytes=100)
    big = tmp_path / "big.zip"  # over 65535 entries: the counts are in the zip64 record
    _archive(big, 70_000, {})
    with open(big, "rb") as fh:
        assert zip_directory_size(fh)[0] == 70_000


def test_an_smlm_or_truth_file_listing_many_entries_is_refused(tmp_path):
    from chromarate.io.localizations import read_localizations
    from chromarate.io.truth import read_truth

    smlm = tmp_path / "many.smlm"
    _archive(smlm, 30_000, {"manifest.json": json.dumps({"formats": {}, "files": []}).encode()})
    with pytest.raises(InputFormatError, match="zip directory lists 30001 entries"):
        read_localizations(smlm)
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2)))
    truth = tmp_path / "cell.truth.npz"
    _archive(truth, 30_000, {"rate.npy": buf.getvalue()})
    with pytest.raises(InputFormatError, match="zip directory lists 30001 entries"):
        read_truth(truth)
