"""Text-table machinery shared by the text localization readers (not public).

Used by :mod:`~chromarate.io.formats.generic`, :mod:`~chromarate.io.formats.elyra`,
:mod:`~chromarate.io.formats.nstorm`, :mod:`~chromarate.io.formats.nanoimager` and
:mod:`~chromarate.io.formats.rapidstorm` (the ThunderSTORM reader streams its file instead,
through :mod:`chromarate.io._textscan`):

- sniffing: :func:`head_text`, :func:`first_line`, :func:`detect_first_line` turn the raw
  first bytes a ``detect`` function gets into text (gunzipped when they are gzip);
- reading: :func:`read_text` decodes a whole file (UTF-8, UTF-16 with BOM, else Latin-1),
  within the read limit; :func:`split_header` splits off header lines; :func:`read_body`
  gives the first line and the rest without ever holding the whole text, and
  :func:`read_header` splits that first line into names; only regular files are opened;
- splitting: :func:`sniff_delimiter` and :func:`split_fields`;
- parsing: :func:`parse_table` / :func:`parse_planned` parse the data rows with precise
  messages (line numbers via :class:`LineMap`), through :func:`read_csv_columns`, which
  keeps only the columns used, a block of rows at a time;
- assembling: :class:`Plan`, :class:`Planner`, :class:`Assembly` (defined in
  :mod:`chromarate.io.formats._plan`, re-exported here) and :func:`assemble` (``_plan``'s,
  after refusing frame numbers above 2**53 by name) check the values and build the
  canonical table and its ``meta``; :func:`channel_filter` selects one channel.

Units and options come from the shared cores :mod:`chromarate.io._units` and
:mod:`chromarate.io._options`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from chromarate._types import Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io._textscan import (
    check_last_line,
    check_text_size,
    gunzip_limited,
    is_gzip,
    open_regular,
)
from chromarate.io.limits import current_read_limit, format_size, size_error
from chromarate.io.formats._binary import MAX_FRAME, frame_limit_error
from chromarate.io.formats._plan import Assembly, Plan, Planner, values_of
from chromarate.io.formats._plan import assemble as _assemble

__all__ = [
    "CSV_BLOCK_ROWS",
    "LINE_SPLIT",
    "NA_TOKENS",
    "Assembly",
    "LineMap",
    "Plan",
    "Planner",
    "TextFile",
    "assemble",
    "channel_filter",
    "detect_first_line",
    "first_line",
    "first_non_numeric",
    "head_text",
    "iter_lines",
    "parse_planned",
    "parse_table",
    "read_header",
    "read_body",
    "read_csv_columns",
    "read_text",
    "release_text",
    "shown",
    "sniff_delimiter",
    "split_fields",
    "split_header",
    "values_of",
]

#: Fields read as missing values (NaN) by every text reader.
NA_TOKENS = ["", "NaN", "nan", "NAN", "NA", "N/A", "null", "NULL", "-nan", "-NaN"]
LINE_SPLIT = re.compile(r"\r\n|\r|\n")


def head_text(head: bytes, limit: int = 1 << 16) -> str | None:
    """Decoded start of a text file from its first raw bytes (gunzipped if needed), or None.

    Returns None when the bytes do not look like text (NUL byte in the first line, or a gzip
    stream that does not decompress). Used by ``detect`` functions, which must never raise.
    """
    data = head
    if is_gzip(data):
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit)
        except zlib.error:
            return None
    data = data[:limit]
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="ignore")
    end = len(data)
    for sep in (b"\n", b"\r"):
        i = data.find(sep)
        if 0 <= i < end:
            end = i
    if b"\x00" in data[:end]:
        return None
    try:
        return data.decode("utf-8-sig", errors="strict")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the head is fine
        if exc.start >= len(data) - 3 and exc.reason.startswith("unexpected end"):
            return data[: exc.start].decode("utf-8-sig", errors="replace")
        return data.decode("latin-1")


def first_line(head: bytes, limit: int = 1 << 16) -> str | None:
    """First line of a text file from its raw head bytes, or None when it is not text.

    ``limit`` bounds how many bytes of a gzip stream are decompressed (see :func:`head_text`).
    """
    text = head_text(head, limit)
    if text is None:
        return None
    return LINE_SPLIT.split(text, maxsplit=1)[0]


def detect_first_line(head: bytes, sep: str, probe: Callable[[str], Any]) -> bool:
    """``probe(line)`` on the first line of a text file when that line contains ``sep``;
    False when it does not, when the file is not text, or when anything fails (``detect``
    functions never raise)."""
    try:
        line = first_line(head)
        if line is None or sep not in line:
            return False
        return bool(probe(line))
    except Exception:  # noqa: BLE001 - detection never raises
        return False


@dataclass(frozen=True)
class TextFile:
    """A whole text file, decoded."""

    path: Path
    text: str
    gzipped: bool
    encoding: str

    def meta(self, columns: Sequence[str], **more: Any) -> dict[str, Any]:
        """The ``meta`` entries every text reader gives: ``columns_in_file``, ``compressed``
        and ``encoding``, then ``more``."""
        return {"columns_in_file": list(columns), "compressed": self.gzipped, "encoding": self.encoding,
                **more}


def _read_raw(path: Path) -> tuple[bytes | bytearray, bool]:
    """The bytes of a (possibly gzipped) text file, decompressed, and whether it was gzip.

    The file's size is checked against the read limit before it is read
    (:func:`~chromarate.io._textscan.check_text_size`); a folder, FIFO, socket or device is
    refused before it is opened; a gzip stream is decompressed within the limit.
    """
    try:
        with open_regular(path) as fh:
            check_text_size(path, os.fstat(fh.fileno()).st_size, "the file")
            raw = fh.read()
    except OSError as exc:
        raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    if raw == b"":
        raise InputFormatError("empty file (0 bytes): no localizations", path=path)
    gzipped = is_gzip(raw)
    if gzipped:
        raw = gunzip_limited(raw, path)  # refuses a cut-short stream and a gzip bomb
        if not raw:
            raise InputFormatError("empty decompressed gzip data: no localizations", path=path)
    return raw, gzipped


def _is_utf16(raw: bytes | bytearray) -> bool:
    return raw[:2] in (b"\xff\xfe", b"\xfe\xff")


def _refuse_nul(raw: bytes | bytearray, path: Path, what: str) -> None:
    if b"\x00" in raw:
        where = raw.index(b"\x00")
        raise InputFormatError(
            f"holds binary data (NUL byte at offset {where}); expected {what}", path=path
        )


def _check_held(path: Path, text: str, n_raw: int, what: str = "the decoded text") -> None:
    """A str takes 2 or 4 bytes per character once one character needs it (one emoji in an
    ASCII file): check the text as it is held, before anything else is made of it."""
    if _str_bytes(text) > n_raw:
        check_text_size(path, _str_bytes(text), what)


def read_text(path: Path, *, keep_nul: bool = False, what: str = "a text table") -> TextFile:
    """Read and decode a whole (possibly gzipped) text file.

    UTF-8 (with or without BOM) and UTF-16 with BOM are decoded as such; other bytes fall
    back to Latin-1, which vendor exports on Windows often use. NUL bytes mark binary data
    and are refused unless ``keep_nul`` (the caller then cuts the text itself).

    The file's size is checked against the read limit before it is read
    (:func:`~chromarate.io._textscan.check_text_size`); a folder, FIFO, socket or device is
    refused before it is opened. The raw bytes are released as soon as the text is decoded.
    A reader that wants the header line and the rest apart uses :func:`read_body`, which
    never holds the whole text.
    """
    path = Path(path)
    raw, gzipped = _read_raw(path)
    if _is_utf16(raw):
        try:
            text, encoding = raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"invalid UTF-16 text (byte {exc.start}); expected {what}",
                                   path=path) from None
    else:
        if not keep_nul:
            _refuse_nul(raw, path, what)
        try:
            text, encoding = raw.decode("utf-8-sig"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = raw.decode("latin-1"), "latin-1"
    n_raw = len(raw)
    del raw
    _check_held(path, text, n_raw)
    return TextFile(path, text, gzipped, encoding)


def read_body(path: Path, *, what: str = "a text table") -> tuple[TextFile, str, str, int]:
    """Read a (possibly gzipped) text table as its first line and the rest.

    What :func:`read_text` followed by ``split_header(text, 1)`` gives -- the same decoding
    rules, the same refusals -- but the header line and the body are decoded apart from
    the raw bytes, so the whole text is never held next to the body (the bytes and the
    body are, briefly).

    Returns
    -------
    tf : TextFile
        The file, without its text (see :func:`release_text`).
    header : str
        The first line.
    body : str
        The text after the first line break.
    first : int
        The 1-based line number of the body's first line (2).
    """
    path = Path(path)
    raw, gzipped = _read_raw(path)
    if _is_utf16(raw):  # line breaks are two bytes there: decode it whole
        del raw
        tf = read_text(path, what=what)
        (header,), body, first = split_header(tf.text, 1)
        return release_text(tf), header, body, first
    _refuse_nul(raw, path, what)
    breaks = [i for i in (raw.find(b"\n"), raw.find(b"\r")) if i >= 0]
    end = min(breaks) if breaks else len(raw)
    start = end + (2 if raw[end:end + 2] == b"\r\n" else 1)
    view = memoryview(raw)
    try:
        header, body = str(view[:end], "utf-8-sig"), str(view[start:], "utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        header, body = str(view[:end], "latin-1"), str(view[start:], "latin-1")
        encoding = "latin-1"
    n_raw = len(raw)
    view.release()
    del view, raw
    _check_held(path, body, n_raw)
    return TextFile(path, "", gzipped, encoding), header, body, 2


def _str_bytes(text: str) -> int:
    """Bytes CPython holds for the characters of ``text``: 1 per character for ASCII and
    Latin-1 text, 2 or 4 once one character needs it."""
    if text.isascii():
        return len(text)
    return max(len(text), sys.getsizeof(text) - sys.getsizeof(""))


def release_text(tf: TextFile) -> TextFile:
    """``tf`` without its text (an empty string), once the caller holds what it needs of
    it (the header and the body): the whole text is then not held twice while the body is
    parsed. :meth:`TextFile.meta` still works."""
    return dataclasses.replace(tf, text="")


def iter_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` (split at CR LF, CR or LF), one at a time.

    Gives what ``LINE_SPLIT.split(text)`` gives, without building the list of every line.
    """
    pos = 0
    for m in LINE_SPLIT.finditer(text):
        yield text[pos:m.start()]
        pos = m.end()
    yield text[pos:]


def split_header(text: str, n: int = 1) -> tuple[list[str], str, int]:
    """Split off the first ``n`` lines; return (lines, rest, 1-based line number of rest)."""
    lines: list[str] = []
    pos = 0
    for _ in range(n):
        m = LINE_SPLIT.search(text, pos)
        if m is None:
            lines.append(text[pos:])
            pos = len(text)
            break
        lines.append(text[pos:m.start()])
        pos = m.end()
    return lines, text[pos:], len(lines) + 1


def read_header(
    path: Path, *, what: str, fields: Callable[[str], list[Any]], refusal: str
) -> tuple[TextFile, list[Any], str, int]:
    """Read a table with one header line: (file, ``fields(header)``, body, body's first line).

    A header that ``fields`` splits into fewer than two fields is refused with the message
    ``refusal`` (which says what the header should look like). The returned
    :class:`TextFile` no longer holds the text (see :func:`release_text`): the body does.
    """
    tf, header, body, first = read_body(path, what=what)
    names = fields(header)
    if len(names) < 2:
        raise InputFormatError(refusal, path=path)
    return tf, names, body, first


class LineMap:
    """Maps a data-row index (as pandas counts, blank lines skipped) to a 1-based file line."""

    def __init__(self, body: str, first_line: int) -> None:
        self.body = body
        self.first_line = first_line

    def line(self, row: int) -> int:
        seen = -1
        for offset, line in enumerate(iter_lines(self.body)):
            if line.strip(" \t") == "":
                continue
            seen += 1
            if seen == row:
                return self.first_line + offset
        return self.first_line + row  # pragma: no cover - row out of range


def shown(value: str, n: int = 40) -> str:
    return value if len(value) <= n else value[:n] + "..."


def sniff_delimiter(header: str, sample: Sequence[str]) -> str:
    """Delimiter of a table: tab, comma, semicolon, else whitespace ("ws").

    A delimiter is chosen when it splits the header into more than one field and the sample
    rows into as many fields; otherwise the first delimiter present in the header wins.
    """
    candidates = ("\t", ",", ";")
    for delim in candidates:
        n = len(split_fields(header, delim))
        if n > 1 and all(len(split_fields(r, delim)) == n for r in sample if r.strip()):
            return delim
    for delim in candidates:
        if delim in header:
            return delim
    return "ws"


def split_fields(line: str, delim: str) -> list[str]:
    """Fields of one line (quotes removed, blanks stripped); ``"ws"`` means runs of whitespace."""
    if delim == "ws":
        return [f.strip('"') for f in line.split()]
    try:
        fields = next(csv.reader([line], delimiter=delim), [])
    except csv.Error:
        fields = line.split(delim)
    return [f.strip().strip('"').strip() for f in fields]


_DELIM_NAMES = {",": "commas", "\t": "tabs", ";": "semicolons", "ws": "whitespace"}


#: Rows pandas parses at a time in :func:`read_csv_columns` (each block's columns that are
#: not kept are dropped at once, so they cost one block's memory, not the file's).
CSV_BLOCK_ROWS = 1 << 16


#: Elements a numeric column of :func:`read_csv_columns` starts with: 32 MiB of float64,
#: the size above which the C library always maps memory of its own (``mmap``) rather than
#: taking it from its heap, so the column is grown by remapping (no copy) and its memory is
#: given back when it is freed. Pages never written are never resident.
_FIRST_CAPACITY = (32 << 20) // 8


class _Growing:
    """One column gathered block by block into a single array, grown in place.

    A numeric column is copied into one array (:data:`_FIRST_CAPACITY` elements at first)
    that is enlarged by ``ndarray.resize`` (``realloc``: a mapped array is remapped, not
    copied) by a quarter at a time, then cut to its length: the column takes at most ~1.25
    times its size while it grows. (A list of blocks joined at the end needs the blocks and
    the joined copy at once, and the freed blocks stay in the process's heap.) Other columns
    (text) keep a list of blocks.
    """

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.n = 0
        self.blocks: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        k = len(values)
        if values.dtype.kind not in "biuf" or self.blocks:
            self.blocks.append(np.array(values, copy=True))
        elif self.array is None:
            self.array = np.empty(max(k, _FIRST_CAPACITY), dtype=values.dtype)
            self.array[:k] = values
        elif values.dtype != self.array.dtype:  # e.g. int blocks then a float block
            self.blocks = [self.array[:self.n], np.array(values, copy=True)]
            self.array = None
        else:
            if self.n + k > len(self.array):
                self.array.resize(max(self.n + k, len(self.array) + len(self.array) // 4 + k),
                                  refcheck=False)
            self.array[self.n:self.n + k] = values
        self.n += k

    def held(self) -> int:
        """Bytes of values this column holds (the filled part of its array -- the rest of a
        mapped array's capacity is not touched, so not resident -- and its blocks)."""
        array = 0 if self.array is None else self.n * self.array.itemsize
        return array + sum(b.nbytes for b in self.blocks)

    def result(self) -> np.ndarray | None:
        if self.blocks:
            if self.array is not None:  # pragma: no cover - add() never keeps both
                self.blocks.insert(0, self.array[:self.n])
            return self.blocks[0] if len(self.blocks) == 1 else np.concatenate(self.blocks)
        if self.array is not None and len(self.array) != self.n:
            self.array.resize(self.n, refcheck=False)
        return self.array


class ColumnsOverBudget(Exception):
    """The columns :func:`read_csv_columns` gathered passed its ``budget``."""

    def __init__(self, held: int, rows: int, budget: int) -> None:
        super().__init__(f"{held} bytes of columns after {rows} rows, over {budget}")
        self.held, self.rows, self.budget = held, rows, budget


def column_budget(text_held: int, n_fields: int, n_text: int) -> int:
    """What the gathered columns of a table may take: the read limit less the text held
    (``text_held`` bytes) and room for the parser's block of rows (its tokens: at most
    ``n_fields`` per row and one per byte of the ``n_text`` bytes of text, and a few MB of
    buffers)."""
    block = min(CSV_BLOCK_ROWS * max(1, n_fields), n_text) * 24 + (8 << 20)
    return max(0, current_read_limit() - text_held - block)


def columns_over_budget(path: Path, exc: ColumnsOverBudget) -> InputFormatError:
    """The read-limit error for a table whose parsed columns passed their budget: what they
    hold plus what the budget left aside (the text held and the parser's buffers)."""
    limit = current_read_limit()
    return size_error(path, f"the table (its columns passed {format_size(exc.held)} after "
                            f"{exc.rows} rows, with the text and the parser's buffers)",
                      exc.held + max(0, limit - exc.budget), limit)


def read_csv_columns(source: Any, keep: Sequence[int], *, budget: int | None = None,
                     **kwargs: Any) -> tuple[pd.DataFrame, int]:
    """Parse a table with pandas, a block of rows at a time, keeping only columns ``keep``.

    Every field of every row is still tokenized, so pandas refuses a row with more fields
    than the first as it does for a whole-file parse (``usecols`` would silently drop such
    fields); but only the kept columns are held -- each block's others are dropped at once
    -- and each kept column is gathered into one array grown in place (:class:`_Growing`).
    Memory is then about 1.25 times the kept columns plus one block, where
    ``pd.read_csv(low_memory=True)`` holds every column about twice over and
    ``low_memory=False`` every token of the file at once.

    Parameters
    ----------
    source : str, path or file-like
        What ``pd.read_csv`` reads.
    keep : sequence of int
        Positions of the columns to keep.
    budget : int, optional
        Most bytes the gathered columns may take; checked after each block of rows, so a
        table whose rows are shorter than the size check before reading assumed is stopped
        within one block of the budget.
    **kwargs
        Passed to ``pd.read_csv`` (``chunksize`` is set here).

    Returns
    -------
    data : pandas.DataFrame
        The kept columns, labelled by position (those beyond the rows' width are absent).
    width : int
        Fields per row, as pandas counted them (0 when there are no rows).

    Raises
    ------
    ColumnsOverBudget
        The columns passed ``budget``.
    Whatever ``pd.read_csv`` raises (``EmptyDataError``, ``ParserError``, ``ValueError``).
    """
    gathered = {i: _Growing() for i in keep}
    width = rows = 0
    with pd.read_csv(source, chunksize=CSV_BLOCK_ROWS, **kwargs) as reader:
        for chunk in reader:
            width = max(width, chunk.shape[1])
            rows += len(chunk)
            for i, column in gathered.items():
                if i in chunk.columns:
                    column.add(chunk[i].to_numpy())
            del chunk
            if budget is not None:
                held = sum(column.held() for column in gathered.values())
                if held > budget:
                    raise ColumnsOverBudget(held, rows, budget)
    columns = {}
    for i in keep:
        values = gathered.pop(i).result()
        if values is not None:
            columns[i] = values
    return pd.DataFrame(columns, copy=False), width


class _StrReader(io.TextIOBase):
    """A read-only text stream over a str that hands out slices as pandas asks for them.

    ``io.StringIO(body)`` copies the whole body into a buffer of its own (up to 4 bytes per
    character); this reader copies only the piece asked for (pandas reads 256 KiB at a time).
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            size = len(self._text) - self._pos
        out = self._text[self._pos:self._pos + size]
        self._pos += len(out)
        return out


def parse_table(
    path: Path,
    body: str,
    first_line: int,
    *,
    sep: str,
    ncols: int,
    numeric: Sequence[int],
    text: Sequence[int] = (),
    decimal: str = ".",
    fmt: str,
) -> tuple[pd.DataFrame, LineMap]:
    """Parse the data rows of a delimited table.

    Returns a DataFrame indexed by column position holding the ``numeric`` columns as
    float64 and the ``text`` columns as str (and no other column), and a :class:`LineMap`
    for messages. Refuses a
    table without rows, a first row whose field count differs from the header's, a later
    row with too many fields, a last line with too few (a file cut short), and non-numeric
    values in numeric columns (naming the value, column position and line).
    """
    lines = LineMap(body, first_line)
    first = next((ln for ln in iter_lines(body) if ln.strip(" \t")), None)
    if first is None:
        raise InputFormatError("no localizations: the file has a header but no data rows", path=path)
    n_first = len(split_fields(first, sep))
    if n_first != ncols:
        raise InputFormatError(
            f"the first data row (line {lines.line(0)}) has {n_first} fields but the header "
            f"names {ncols} columns; expected one field per header column, separated by "
            f"{_DELIM_NAMES.get(sep, repr(sep))} (format {fmt!r})",
            path=path,
        )
    check_last_line(body, ncols, sep, path)
    # All columns are tokenized (no usecols): with usecols pandas silently drops the extra
    # fields of a row that has too many, and such a row must be refused. Only the numeric
    # and text columns asked for are kept (read_csv_columns); the body is handed to pandas
    # a piece at a time (_StrReader), never copied whole.
    dtype: dict[int, Any] = {i: np.float64 for i in numeric}
    dtype.update({i: str for i in text})
    kwargs: dict[str, Any] = dict(
        header=None, engine="c", na_values=NA_TOKENS, keep_default_na=False,
        skip_blank_lines=True, decimal=decimal, low_memory=True, quotechar='"',
    )
    if sep == "ws":
        kwargs["sep"] = r"\s+"
    else:
        kwargs["sep"] = sep
    text_bytes = sys.getsizeof(body)
    try:
        data, width = read_csv_columns(_StrReader(body), sorted({*numeric, *text}), dtype=dtype,
                                       budget=column_budget(2 * text_bytes, ncols, len(body)),
                                       **kwargs)
    except ColumnsOverBudget as exc:
        raise columns_over_budget(path, exc) from None
    except pd.errors.EmptyDataError:
        raise InputFormatError("no localizations: the file has a header but no data rows",
                               path=path) from None
    except pd.errors.ParserError as exc:
        raise _ragged_error(path, body, first_line, sep, ncols, exc, fmt) from None
    except (ValueError, OverflowError) as exc:
        raise _non_numeric(path, body, lines, kwargs, numeric, exc) from None
    except csv.Error as exc:  # pragma: no cover - defensive
        raise InputFormatError(f"malformed table: {' '.join(str(exc).split())}", path=path) from None
    if width == 0 or len(data) == 0:
        raise InputFormatError("no localizations: the file has a header but no data rows", path=path)
    if width != ncols:  # pragma: no cover - guarded by the first-row check
        raise InputFormatError(
            f"the data rows have {width} fields but the header names {ncols} columns",
            path=path,
        )
    return data, lines


def parse_planned(
    path: Path,
    body: str,
    first_line: int,
    *,
    sep: str,
    names: Sequence[str],
    plans: Sequence[Plan],
    frame: tuple[int, str] | None,
    fmt: str,
    channel_col: int | None = None,
    channel: Any = None,
    channel_header: str = "Channel",
) -> tuple[pd.DataFrame, LineMap, np.ndarray | None, list[Any] | None]:
    """:func:`parse_table` for a table with header ``names``, reading the columns of
    ``plans`` and ``frame`` as numbers; with a ``channel_col``, also select the rows of
    ``channel`` (see :func:`channel_filter`). Returns (data, lines, keep, channels).

    A ``channel`` asked for in a table without channel column (named ``channel_header`` in
    the message) is refused before the rows are parsed.
    """
    if channel is not None and channel_col is None:
        raise InputFormatError(f'channel= was given but the file has no "{channel_header}" column', path=path)
    numeric = sorted({i for p in plans for i in p.sources} | ({frame[0]} if frame else set()))
    data, lines = parse_table(path, body, first_line, sep=sep, ncols=len(names), numeric=numeric,
                              text=[channel_col] if channel_col is not None else [], fmt=fmt)
    keep, channels = (None, None)
    if channel_col is not None:
        keep, channels = channel_filter(path, data[channel_col], channel, names[channel_col])
    return data, lines, keep, channels


def _ragged_error(path, body, first_line, sep, ncols, exc, fmt) -> InputFormatError:
    for offset, line in enumerate(iter_lines(body)):
        if line.strip(" \t") == "":
            continue
        n = len(split_fields(line, sep))
        if n > ncols:
            return InputFormatError(
                f"line {first_line + offset} has {n} fields but the header names {ncols} "
                f"columns; expected one field per header column (format {fmt!r})",
                path=path,
            )
    return InputFormatError(f"malformed table: {' '.join(str(exc).split())}", path=path)


def first_non_numeric(source: Any, columns: Sequence[int], *, decimal_comma: bool = False,
                      **kwargs: Any) -> tuple[int, int, str] | None:
    """The first value of ``columns`` that is not a number: (data row, column, value).

    The table is read as text a block of rows at a time (:data:`CSV_BLOCK_ROWS`) and the
    search stops at the first block holding one, so finding a bad value at the end of a
    large file holds one block of strings, not a string per field of the file.

    Parameters
    ----------
    source : str, path or file-like
        What ``pd.read_csv`` reads.
    columns : sequence of int
        Positions of the columns that must hold numbers.
    decimal_comma : bool
        Numbers use a decimal comma.
    **kwargs
        Passed to ``pd.read_csv`` (``dtype``, ``usecols`` and ``chunksize`` are set here).

    Returns
    -------
    tuple or None
        None when every value is a number (or missing).
    """
    offset = 0
    with pd.read_csv(source, **{**kwargs, "dtype": str, "usecols": list(columns),
                                "chunksize": CSV_BLOCK_ROWS}) as reader:
        for chunk in reader:
            best: tuple[int, int, str] | None = None
            for i in columns:
                if i not in chunk.columns:
                    continue
                s = chunk[i]
                num = pd.to_numeric(s.str.replace(",", ".", regex=False) if decimal_comma else s,
                                    errors="coerce")
                bad = np.flatnonzero(num.isna().to_numpy() & s.notna().to_numpy())
                if bad.size and (best is None or bad[0] < best[0]):
                    best = (int(bad[0]), i, str(s.iloc[bad[0]]))
            if best is not None:
                return best[0] + offset, best[1], best[2]
            offset += len(chunk)
    return None


def _non_numeric(path, body, lines, kwargs, numeric, exc) -> InputFormatError:
    try:
        best = first_non_numeric(_StrReader(body), list(numeric),
                                 decimal_comma=kwargs.get("decimal") == ",",
                                 **{k: v for k, v in kwargs.items() if k != "low_memory"})
    except Exception:  # noqa: BLE001 - fall back to pandas' message
        best = None
    if best is not None:
        row, col, value = best
        return InputFormatError(
            f"non-numeric value {shown(value)!r} in column {col + 1} at line "
            f"{lines.line(row)}; expected a number",
            path=path,
        )
    return InputFormatError(f"non-numeric value in a numeric column ({' '.join(str(exc).split())}); "
                            "expected numbers", path=path)


def assemble(
    path: Path,
    data: pd.DataFrame | dict[int, np.ndarray],
    lines: Callable[[int], int],
    spec: Assembly,
    *,
    keep: np.ndarray | None = None,
) -> Localizations:
    """:func:`chromarate.io.formats._plan.assemble`, after refusing frame numbers above
    2**53 with a message that says so (see :func:`~chromarate.io.formats._binary.frame_limit_error`).

    Parameters
    ----------
    path, data, lines, spec, keep
        As for :func:`chromarate.io.formats._plan.assemble`.

    Returns
    -------
    Localizations
        The checked canonical table and its ``meta``.

    Raises
    ------
    InputFormatError
        A frame number is beyond the largest one read exactly, or any refusal of
        :func:`chromarate.io.formats._plan.assemble`.
    """
    if spec.frame is not None:
        idx, name = spec.frame
        values = np.asarray(data[idx], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            big = values > MAX_FRAME
        if big.any():
            i = int(np.argmax(big))
            raise frame_limit_error(values[i], f'column "{name}" at line {lines(i)}', path)
    return _assemble(path, data, lines, spec, keep=keep)


def channel_filter(
    path: Path, raw: pd.Series, wanted: Any, name: str
) -> tuple[np.ndarray | None, list[Any]]:
    """Rows of channel ``wanted`` (None: all rows) and the sorted channels present.

    Channels that look numeric are compared as numbers, others as stripped strings.
    """
    labels = raw.fillna("").astype(str).str.strip()
    num = pd.to_numeric(labels, errors="coerce")
    numeric = bool(len(labels)) and not num.isna().any()
    if numeric:
        present: list[Any] = sorted({int(v) if float(v).is_integer() else float(v) for v in num.unique()})
    else:
        present = sorted(labels.unique().tolist())
    if wanted is None:
        return None, present
    if numeric:
        try:
            target = float(wanted)
        except (TypeError, ValueError):
            raise ConfigError(f"channel must be one of {present}, got {wanted!r}") from None
        keep = (num == target).to_numpy()
    else:
        keep = (labels == str(wanted).strip()).to_numpy()
    if not keep.any():
        raise InputFormatError(
            f'no localizations in channel {wanted!r} (column "{name}"); channels in the file: '
            f"{', '.join(map(str, present))}",
            path=path,
        )
    return keep, present
