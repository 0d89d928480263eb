"""Byte-level access to text tables: gzip recognition, the file's first line, bounded gzip
decompression and detection of a cut-off last line.

:data:`GZIP_MAGIC` is the one definition of the gzip signature in chromarate; every reader
recognises gzip by it (from the content, never the file name). :func:`read_start` and
:func:`read_text_head` give the first bytes and the first line of a localization file with
the checks every reader shares (missing, empty, directory, binary data, not UTF-8).

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

import codecs
import csv
import gzip
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from ..errors import InputFormatError
from .limits import check_decoded_size, current_read_limit, size_error

__all__ = [
    "GZIP_MAGIC",
    "HEAD_BYTES",
    "TEXT_MEMORY_FACTOR",
    "TextHead",
    "TextScan",
    "check_last_line",
    "check_text_size",
    "gunzip_limited",
    "gzip_error",
    "is_gzip",
    "open_binary",
    "read_start",
    "read_text_head",
    "scan_text_file",
]

#: Memory taken by reading a text table, as a multiple of its decompressed size (the
#: bytes, the decoded text and the parsed columns).
TEXT_MEMORY_FACTOR = 3

_BLOCK = 1 << 20
_TAIL = 1 << 16
#: The first two bytes of every gzip stream (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"
#: How far into a file readers look for its header line (and detectors for its format).
HEAD_BYTES = 1 << 20
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
                if not data.startswith(GZIP_MAGIC):
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


# --------------------------------------------------------------------------- the file's start


def is_gzip(head: bytes) -> bool:
    """Whether raw bytes start a gzip stream (:data:`GZIP_MAGIC`)."""
    return head[:2] == GZIP_MAGIC


def open_binary(path: str | Path, gzipped: bool) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing it when ``gzipped``."""
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_start(path: Path, n: int) -> bytes:
    """The first ``n`` raw bytes of ``path`` (not decompressed).

    Raises
    ------
    InputFormatError
        ``path`` is a directory, is missing, cannot be opened, or is empty.
    """
    try:
        if path.is_dir():
            raise InputFormatError("is a directory; expected a localization file", path=path)
        with open(path, "rb") as fh:
            raw = fh.read(n)
    except FileNotFoundError:
        raise InputFormatError(
            "file not found; expected an existing localization file (e.g. ThunderSTORM CSV)", path=path
        ) from None
    except OSError as exc:
        raise InputFormatError(f"cannot open the file: {exc.strerror or exc}", path=path) from None
    if raw == b"":
        raise InputFormatError("empty file (0 bytes): no localizations", path=path)
    return raw


@dataclass(frozen=True)
class TextHead:
    """The first line of a (decompressed) UTF-8 text file and how to open the file."""

    gzipped: bool
    header_line: str
    header_only: bool  # the file holds nothing after its first line


def read_text_head(path: Path) -> TextHead:
    """Check that ``path`` is a non-empty UTF-8 text file (plain or gzip) and return its first line.

    Raises
    ------
    InputFormatError
        The file is missing or empty, its gzip stream is broken, it holds NUL bytes or
        invalid UTF-8 in its first :data:`HEAD_BYTES`, or it has no line break there.
    """
    gzipped = is_gzip(read_start(path, 2))
    try:
        with open_binary(path, gzipped) as fh:
            chunk = fh.read(HEAD_BYTES + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise gzip_error(path, exc) if gzipped else InputFormatError(
            f"cannot read the file: {exc}", path=path
        ) from None

    what = "decompressed gzip data" if gzipped else "file"
    if chunk == b"":
        raise InputFormatError(f"empty {what}: no localizations", path=path)
    if b"\x00" in chunk:
        raise InputFormatError(
            f"{what} holds binary data (NUL bytes); expected a text table such as a "
            "ThunderSTORM CSV",
            path=path,
        )
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(chunk[:HEAD_BYTES], final=False)
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"{what} is not UTF-8 text (invalid byte at offset {exc.start}); expected a text "
            "table such as a ThunderSTORM CSV",
            path=path,
        ) from None

    ends = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
    if not ends:
        if len(chunk) > HEAD_BYTES:
            raise InputFormatError(
                f"no line break in the first {HEAD_BYTES} bytes; expected a text table with "
                "a header line",
                path=path,
            )
        return TextHead(gzipped, _decode_header(chunk, path), header_only=True)
    end = min(ends)
    rest = chunk[end:]
    header_only = rest.strip(b" \t\r\n") == b"" and len(chunk) <= HEAD_BYTES
    return TextHead(gzipped, _decode_header(chunk[:end], path), header_only=header_only)


def _decode_header(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # pragma: no cover - caught by the chunk check
        raise InputFormatError(f"header is not UTF-8 text (byte {exc.start})", path=path) from None
