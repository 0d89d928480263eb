"""The size of a zip archive's central directory, read from its end record before
:class:`zipfile.ZipFile` parses the directory.

``zipfile`` reads the whole central directory into memory and builds one object per entry
as it opens an archive, so an archive of a few MB can list millions of entries and cost
memory in proportion before any of them is looked at. The end-of-central-directory record
(and its zip64 version) states the directory's size and entry count in the last bytes of
the file: :func:`check_zip_directory` reads them and refuses a directory larger than the
archive kind can need (a ``.smlm`` or ``.npz`` lists a handful of members).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from ..errors import InputFormatError

__all__ = ["MAX_ZIP_DIRECTORY_BYTES", "check_zip_directory", "zip_directory_size"]

#: Largest central directory read (bytes): about 20,000 entries of short names, where the
#: archives chromarate reads list a few.
MAX_ZIP_DIRECTORY_BYTES = 1 << 20

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF


def zip_directory_size(fh: BinaryIO) -> tuple[int, int] | None:
    """(entries, bytes) of the central directory of the zip archive open in ``fh``, from
    its end record (zip64 where the classic record says so); None if there is none (not a
    zip archive, or cut short: :mod:`zipfile` then says what is wrong)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    start = max(0, size - _EOCD_SIZE - _MAX_COMMENT)
    fh.seek(start)
    tail = fh.read(size - start)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        return None
    entries, nbytes = struct.unpack("<HI", tail[at + 10:at + 16])
    if entries == 0xFFFF or nbytes == 0xFFFFFFFF:
        loc = at - 20
        if loc < 0 or tail[loc:loc + 4] != _EOCD64_LOCATOR:
            return entries, nbytes
        (offset,) = struct.unpack("<Q", tail[loc + 8:loc + 16])
        fh.seek(offset)
        record = fh.read(56)
        if len(record) < 56 or record[:4] != _EOCD64:
            return entries, nbytes
        entries, nbytes = struct.unpack("<QQ", record[32:48])
    return int(entries), int(nbytes)


def check_zip_directory(fh: BinaryIO, path: str | Path, what: str, *,
                        max_bytes: int = MAX_ZIP_DIRECTORY_BYTES) -> None:
    """Refuse a zip archive whose central directory is larger than ``max_bytes``.

    Parameters
    ----------
    fh : binary file
        The archive, open and seekable (its position is restored).
    path : str or Path
        For the message.
    what : str
        What the archive should be (``"an SMLM file"``).

    Raises
    ------
    InputFormatError
        Naming the entry count and the directory's size.
    """
    position = fh.tell()
    try:
        found = zip_directory_size(fh)
    finally:
        fh.seek(position)
    if found is not None and found[1] > max_bytes:
        entries, nbytes = found
        raise InputFormatError(
            f"its zip directory lists {entries} entries in {nbytes} bytes, more than the "
            f"{max_bytes >> 20} MiB {what} can need (it lists a few members); not read",
            path=path)
