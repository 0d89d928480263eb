"""Guards for text tables: bounded gzip decompression and detection of a cut-off last line.

Text readers hold the decompressed text and the parsed table in memory at the same time,
about :data:`TEXT_MEMORY_FACTOR` times the size of the text; that much is checked against
the read limit (:mod:`chromarate.io.limits`) before the text is parsed, and gzip streams are
decompressed block by block with a running check, so a small ``.csv.gz`` that inflates to
gigabytes is refused before it fills memory.

A table whose last line has fewer fields than its header was cut short (a copy that did
not finish, a full disk): the readers refuse it with :func:`truncation_error` rather than
fit the part that is left.
"""

from __future__ import annotations

import csv
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InputFormatError
from .limits import check_decoded_size, current_read_limit, size_error

__all__ = [
    "TEXT_MEMORY_FACTOR",
    "TextScan",
    "check_last_line",
    "check_text_size",
    "gunzip_limited",
    "gzip_error",
    "scan_text_file",
]

#: Memory taken by reading a text table, as a multiple of its decompressed size (the
#: bytes, the decoded text and the parsed columns).
TEXT_MEMORY_FACTOR = 3

_BLOCK = 1 << 20
_TAIL = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_LINES = re.compile(r"\r\n|\r|\n")


def check_text_size(path: str | Path, n_text: int, what: str = "the text") -> None:
    """Refuse a text of ``n_text`` bytes whose parsing would pass the read limit."""
    check_decoded_size(path, n_text * TEXT_MEMORY_FACTOR,
                       f"{what} ({n_text} bytes, parsed into a table)")


def _budget_text() -> int:
    return current_read_limit() // TEXT_MEMORY_FACTOR


class _Gunzip:
    """Decompresses a (multi-member) gzip stream fed in pieces, counting what comes out."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.size = 0

    def feed(self, data: bytes, max_out: int) -> Iterator[bytes]:
        """Yield the decompressed blocks of ``data`` one at a time (so that a caller keeping
        none of them holds one block); OverflowError once past ``max_out`` bytes in all."""
        while True:
            if self._d.eof:  # a new member follows (or zero padding, which gzip allows)
                if not data.strip(b"\x00"):
                    return
                if not data.startswith(_GZIP_MAGIC):
                    raise zlib.error("trailing garbage after the gzip stream")
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            block = self._d.decompress(data, _BLOCK)
            self.size += len(block)
            if self.size > max_out:
                raise OverflowError(self.size)
            if block:
                yield block
            if self._d.eof:
                data = self._d.unused_data
            else:
                data = self._d.unconsumed_tail
                if not data and len(block) < _BLOCK:  # all input used, no output pending
                    return

    def finish(self) -> None:
        if not self._d.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def gzip_error(path: str | Path, exc: BaseException) -> InputFormatError:
    """The error for a gzip stream cut short or corrupt.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    exc : BaseException
        What decompressing it raised (``EOFError``, ``zlib.error``, ``gzip.BadGzipFile``).

    Returns
    -------
    InputFormatError
        To be raised by the caller.
    """
    return InputFormatError(
        f"truncated or corrupt gzip stream ({type(exc).__name__}: {exc}); expected a complete "
        ".gz file", path=path)


#: What :class:`_Gunzip` raises for a stream that inflates past its budget (OverflowError)
#: or is cut short or corrupt (the others); :func:`_inflate_error` turns each into the
#: reader's error.
_INFLATE_ERRORS = (OverflowError, EOFError, zlib.error)


def _inflate_error(path: str | Path, g: _Gunzip, exc: BaseException) -> InputFormatError:
    """The error for one of :data:`_INFLATE_ERRORS` raised while ``g`` decompressed ``path``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    g : _Gunzip
        The decompressor (its ``size`` is the text inflated so far).
    exc : BaseException
        The exception raised.

    Returns
    -------
    InputFormatError
        A read-limit error for a stream inflating past the limit, else :func:`gzip_error`.
    """
    if isinstance(exc, OverflowError):
        return size_error(path, f"the gzip stream (inflating to more than {g.size} bytes)",
                          g.size * TEXT_MEMORY_FACTOR, current_read_limit())
    return gzip_error(path, exc)


def gunzip_limited(raw: bytes, path: str | Path) -> bytes:
    """Decompress gzip ``raw`` whose text must fit the read limit (see the module docstring).

    Raises
    ------
    InputFormatError
        For a stream cut short or corrupt, and for one that inflates past the limit (it is
        refused as soon as it does, without decompressing the rest).
    """
    g = _Gunzip()
    budget = _budget_text()
    try:
        blocks = list(g.feed(raw, budget))
        g.finish()
    except _INFLATE_ERRORS as exc:
        raise _inflate_error(path, g, exc) from None
    return b"".join(blocks)


@dataclass(frozen=True)
class TextScan:
    """Size and end of a text file (decompressed when it is gzip)."""

    size: int
    tail: bytes  # the last (up to 64 KiB) bytes of the text


def scan_text_file(path: str | Path, gzipped: bool) -> TextScan:
    """The decompressed size and tail of a text file, checking the size on the way.

    A plain file is not read beyond its tail; a gzip file is decompressed once, block by
    block, keeping only the last block and refusing it as soon as it passes the limit.

    Raises
    ------
    InputFormatError
        If the text exceeds the read limit, or the gzip stream is cut short or corrupt.
    """
    path = Path(path)
    try:
        if not gzipped:
            size = os.stat(path).st_size
            check_text_size(path, size)
            with open(path, "rb") as fh:
                fh.seek(max(0, size - _TAIL))
                return TextScan(size, fh.read(_TAIL))
        g = _Gunzip()
        budget = _budget_text()
        tail = b""
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_BLOCK), b""):
                for block in g.feed(chunk, budget):
                    tail = (tail + block)[-_TAIL:]
        g.finish()
    except _INFLATE_ERRORS as exc:
        raise _inflate_error(path, g, exc) from None
    except OSError as exc:
        raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    return TextScan(g.size, tail)


def _last_line(text: str) -> tuple[str, bool]:
    """The last line that is not blank, and whether a line break follows it."""
    stripped = text.rstrip(" \t\r\n")
    ended = len(stripped) < len(text.rstrip(" \t"))
    lines = _LINES.split(stripped)
    return (lines[-1] if lines else ""), ended


def _count_fields(line: str, sep: str) -> int:
    if sep == "ws":
        return len(line.split())
    try:
        return len(next(csv.reader([line], delimiter=sep), []))
    except csv.Error:
        return len(line.split(sep))


def check_last_line(text: str | bytes, n_columns: int, sep: str, path: str | Path, *,
                    encoding: str = "utf-8") -> None:
    """Refuse a table whose last line has fewer fields than its header names.

    Parameters
    ----------
    text : str or bytes
        The table, or its end (it must hold the whole last line).
    n_columns : int
        Columns the header names.
    sep : str
        Field separator; ``"ws"`` for runs of white space.

    Raises
    ------
    InputFormatError
        Saying that the file looks cut short, with the field counts and whether the file
        ends without a line break.
    """
    if isinstance(text, bytes):
        text = text.decode(encoding, errors="replace")
    line, ended = _last_line(text)
    if not line:
        return
    n = _count_fields(line, sep)
    if n >= n_columns:
        return
    how = "" if ended else " and the file ends without a line break"
    shown = line if len(line) <= 80 else line[:80] + "..."
    raise InputFormatError(
        f"the file looks truncated: its last line ({shown!r}) has {n} of the {n_columns} "
        f"fields the header names{how}; expected a complete table (copy or export the file "
        "again; to use the rows before it, delete that last line)", path=path)
