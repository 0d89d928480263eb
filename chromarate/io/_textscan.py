"""Byte-level access to text tables: gzip recognition, the file's first line, bounded gzip
decompression and detection of a cut-off last line.

:data:`GZIP_MAGIC` is the one definition of the gzip signature in chromarate; every reader
recognises gzip by it (from the content, never the file name). :func:`read_start` and
:func:`read_text_head` give the first bytes and the first line of a localization file with
the checks every reader shares (missing, empty, directory, binary data, not UTF-8).

Reading a text table takes up to :data:`TEXT_MEMORY_FACTOR` times the size of its text
(measured, see there); that much is checked against the read limit
(:mod:`chromarate.io.limits`) from the file's size before the text is read, and gzip
streams are decompressed block by block with a running check, so a small ``.csv.gz`` that
inflates to gigabytes is refused before it fills memory.

A folder, FIFO, socket or device is refused from its ``stat`` before it is opened
(:func:`require_regular_file`, :func:`open_regular`): opening a FIFO waits for a writer,
and a device such as ``/dev/zero`` never ends.

A table whose last line has fewer fields than its header was cut short (a copy that did
not finish, a full disk): the readers refuse it with :func:`check_last_line` rather than
fit the part that is left. Only the end of the text is looked at, but the whole last line
(up to :data:`MAX_LAST_LINE` bytes), so a long genuine line is not taken for a cut one.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from .._readfile import NotReadableError, open_checked, special_file_kind
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
    "open_regular",
    "read_start",
    "read_text_head",
    "require_regular_file",
    "scan_text_file",
    "special_file_kind",
]

#: Memory a text table is assumed to take when it is read, as a multiple of its
#: decompressed size, in the check made from its size before reading: the text the readers
#: of :mod:`~.formats._text` hold (up to twice: the decompressed bytes and the str) and
#: columns as large as the text. Real tables take less (measured peak RSS above the
#: interpreter's per byte of a 100 MB table: real ThunderSTORM rows 1.0, read as generic
#: 2.0). Tables of shorter rows have more values per byte (one-digit x, y, "1,1": 4.3 as
#: ThunderSTORM, 5.5 as generic; "1,1,,,,": 6.5 and 7.5): the parser stops such a table
#: once its columns pass what is left of the read limit
#: (:func:`~.formats._text.read_csv_columns`), so the limit holds without refusing every
#: real table above a sixth of it.
TEXT_MEMORY_FACTOR = 3

_BLOCK = 1 << 20
_TAIL = 1 << 16
#: The first two bytes of every gzip stream (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"
#: How far into a file readers look for its header line (and detectors for its format).
HEAD_BYTES = 1 << 20


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


def gunzip_limited(raw: bytes, path: str | Path) -> bytearray:
    """Decompress gzip ``raw`` whose text must fit the read limit (see the module docstring).

    The blocks are appended to one buffer as they come (no list of blocks joined at the
    end, which held the text twice).

    Returns
    -------
    bytearray
        The decompressed text.

    Raises
    ------
    InputFormatError
        For a stream cut short or corrupt, and for one that inflates past the limit (it is
        refused as soon as it does, without decompressing the rest).
    """
    g = _Gunzip()
    budget = _budget_text()
    out = bytearray()
    try:
        for block in g.feed(raw, budget):
            out += block
        g.finish()
    except _INFLATE_ERRORS as exc:
        raise _inflate_error(path, g, exc) from None
    return out


#: The longest last line that is checked against the header (bytes); a longer one is not
#: checked, so that finding it stays bounded work (a line of 90 000 fields is ~200 KiB).
MAX_LAST_LINE = 16 << 20

_BLANK = b" \t\r\n"


def _last_break(data: bytes | bytearray) -> int:
    """Index of the last line break (CR or LF) in ``data``; -1 when there is none."""
    return max(data.rfind(b"\n"), data.rfind(b"\r"))


@dataclass(frozen=True)
class TextScan:
    """Size and end of a text file (decompressed when it is gzip).

    ``tail`` starts at the start of the text's last non-blank line (or of the text) and runs
    to its end, so it holds that whole line; it is empty when that line is longer than
    :data:`MAX_LAST_LINE` (then it is not checked).
    """

    size: int
    tail: bytes


class _LastLine:
    """The last non-blank line of a stream fed block by block, in bounded memory.

    Each block is looked at once (linear work); a line longer than ``cap`` bytes is
    dropped (remembered only as "too long").
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.done: bytes | None = b""  # last non-blank line followed by a break (None: too long)
        self.cur = bytearray()  # the line after the last break seen
        self.cur_long = False

    def _extend(self, data: bytes) -> None:
        if self.cur_long:
            return
        self.cur += data
        if len(self.cur) > self.cap:
            self.cur_long, self.cur = True, bytearray()

    def feed(self, block: bytes) -> None:
        k = _last_break(block)
        if k < 0:
            self._extend(block)
            return
        before = block[:k].rstrip(_BLANK)
        j = _last_break(before)
        if j >= 0:  # a whole non-blank line ends inside this block
            line = before[j + 1:]
            self.done = line if len(line) <= self.cap else None
        else:  # the line begun before this block (``cur``) ends here
            self._extend(before)
            if self.cur_long:
                self.done = None
            elif self.cur.strip(_BLANK):
                self.done = bytes(self.cur)
        self.cur, self.cur_long = bytearray(), False
        self._extend(block[k + 1:])

    def tail(self) -> bytes:
        """The last non-blank line, followed by a line break when one follows it in the
        stream (empty when it is too long)."""
        if self.cur_long:
            return b""
        if self.cur.strip(_BLANK):
            return bytes(self.cur)
        return b"" if self.done is None else self.done + b"\n"


def _plain_tail(fh: IO[bytes], size: int) -> bytes:
    """The end of a plain file from the start of its last non-blank line (see
    :class:`TextScan`), read backwards in growing windows up to :data:`MAX_LAST_LINE`."""
    n = _TAIL
    while True:
        start = max(0, size - n)
        fh.seek(start)
        data = fh.read(size - start)
        if start == 0:
            return data
        k = _last_break(data.rstrip(_BLANK))
        if k >= 0:
            return data[k + 1:]
        if n >= MAX_LAST_LINE + _TAIL:
            return b""  # the last line is too long to check
        n = min(n * 4, MAX_LAST_LINE + _TAIL)


def scan_text_file(path: str | Path, gzipped: bool) -> TextScan:
    """The decompressed size and tail of a text file, checking the size on the way.

    A plain file is not read beyond its last line; a gzip file is decompressed once, block
    by block, keeping only its last line (:class:`_LastLine`) and refusing it as soon as it
    passes the limit.

    Raises
    ------
    InputFormatError
        If the text exceeds the read limit, the gzip stream is cut short or corrupt, or the
        file is no regular file.
    """
    path = Path(path)
    try:
        if not gzipped:
            with open_regular(path) as fh:
                size = os.fstat(fh.fileno()).st_size
                check_text_size(path, size)
                return TextScan(size, _plain_tail(fh, size))
        g = _Gunzip()
        budget = _budget_text()
        last = _LastLine(MAX_LAST_LINE)
        with open_regular(path) as fh:
            for chunk in iter(lambda: fh.read(_BLOCK), b""):
                for block in g.feed(chunk, budget):
                    last.feed(block)
        g.finish()
    except _INFLATE_ERRORS as exc:
        raise _inflate_error(path, g, exc) from None
    except OSError as exc:
        raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    return TextScan(g.size, last.tail())


def _last_line(text: str) -> tuple[str, bool]:
    """The last line that is not blank, and whether a line break follows it.

    Only the end of ``text`` is looked at (its trailing blanks and its last line): no copy
    of the whole text is made, whatever its size.
    """
    end = len(text)
    while end > 0:  # skip trailing blanks, a window at a time
        start = max(0, end - _TAIL)
        kept = len(text[start:end].rstrip(" \t\r\n"))
        if kept:
            end = start + kept
            break
        end = start
    if end == 0:
        return "", False
    begin = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
    ended = text.find("\n", end) >= 0 or text.find("\r", end) >= 0
    return text[begin:end], ended


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


def _refuse_mode(path: str | Path, mode: int, what: str) -> None:
    if stat.S_ISDIR(mode):
        raise InputFormatError(f"is a directory; expected a {what}", path=path)
    kind = special_file_kind(mode)
    if kind is not None:
        raise InputFormatError(
            f"is {kind}, not a regular file; expected a {what} (such a file is not opened: "
            "reading it could wait forever or never end)", path=path)


def require_regular_file(path: str | Path, what: str = "localization file") -> int:
    """Refuse ``path`` unless it is an existing regular file, from its ``stat`` alone.

    A folder, FIFO, socket or device is refused before it is opened: opening a FIFO blocks
    until another process writes to it, and a device such as ``/dev/zero`` never ends.
    A symbolic link is judged by what it points to.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    what : str
        What was expected, for messages (``"localization file"``, ``"Picasso file"``).

    Returns
    -------
    int
        The file's size in bytes.

    Raises
    ------
    InputFormatError
        The file is missing, cannot be examined, or is no regular file.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputFormatError(f"file not found; expected an existing {what}", path=path) from None
    except OSError as exc:
        raise InputFormatError(f"cannot open the file: {exc.strerror or exc}", path=path) from None
    _refuse_mode(path, st.st_mode, what)
    return int(st.st_size)


def open_regular(path: str | Path, what: str = "localization file") -> IO[bytes]:
    """Open ``path`` for reading bytes, refusing anything but a regular file.

    The file is opened without blocking (``O_NONBLOCK``, which changes nothing for a regular
    file) and checked on the open descriptor (:func:`chromarate._readfile.open_checked`), so
    a FIFO or device is refused, never waited on, with the messages of
    :func:`require_regular_file`.

    Raises
    ------
    InputFormatError
        As :func:`require_regular_file`, or the file cannot be opened.
    """
    try:
        fd = open_checked(path)
    except NotReadableError as exc:
        _refuse_mode(path, exc.mode or 0, what)
        raise InputFormatError(f"{exc}; expected a {what}", path=path) from None
    except FileNotFoundError:
        raise InputFormatError(f"file not found; expected an existing {what}", path=path) from None
    except OSError as exc:
        raise InputFormatError(f"cannot open the file: {exc.strerror or exc}", path=path) from None
    return os.fdopen(fd, "rb")


def read_start(path: Path, n: int) -> bytes:
    """The first ``n`` raw bytes of ``path`` (not decompressed).

    Raises
    ------
    InputFormatError
        ``path`` is a directory, a FIFO, socket or device (refused before it is opened), is
        missing, cannot be opened, or is empty.
    """
    try:
        with open_regular(path) as fh:
            raw = fh.read(n)
    except OSError as exc:
        raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
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
