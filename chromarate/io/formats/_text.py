"""Text-table machinery shared by the text localization readers (not public).

Used by :mod:`~chromarate.io.formats.generic`, :mod:`~chromarate.io.formats.elyra`,
:mod:`~chromarate.io.formats.nstorm`, :mod:`~chromarate.io.formats.nanoimager` and
:mod:`~chromarate.io.formats.rapidstorm` (the ThunderSTORM reader streams its file instead,
through :mod:`chromarate.io._textscan`):

- sniffing: :func:`head_text`, :func:`first_line`, :func:`detect_first_line` turn the raw
  first bytes a ``detect`` function gets into text (gunzipped when they are gzip);
- reading: :func:`read_text` decodes a whole file (UTF-8, UTF-16 with BOM, else Latin-1),
  within the read limit; :func:`split_header` splits off header lines; :func:`read_header`
  does both for a table with one header line;
- splitting: :func:`sniff_delimiter` and :func:`split_fields`;
- parsing: :func:`parse_table` / :func:`parse_planned` parse the data rows with precise
  messages (line numbers via :class:`LineMap`);
- assembling: :class:`Plan`, :class:`Planner`, :class:`Assembly` and :func:`assemble`
  (defined in :mod:`chromarate.io.formats._plan`, re-exported here) check the values and
  build the canonical table and its ``meta``; :func:`channel_filter` selects one channel.

Units and options come from the shared cores :mod:`chromarate.io._units` and
:mod:`chromarate.io._options`.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from chromarate.errors import ConfigError, InputFormatError
from chromarate.io._textscan import check_last_line, check_text_size, gunzip_limited, is_gzip
from chromarate.io.formats._plan import Assembly, Plan, Planner, assemble, values_of

__all__ = [
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
    "head_text",
    "parse_planned",
    "parse_table",
    "read_header",
    "read_text",
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


def read_text(path: Path, *, keep_nul: bool = False, what: str = "a text table") -> TextFile:
    """Read and decode a whole (possibly gzipped) text file.

    UTF-8 (with or without BOM) and UTF-16 with BOM are decoded as such; other bytes fall
    back to Latin-1, which vendor exports on Windows often use. NUL bytes mark binary data
    and are refused unless ``keep_nul`` (the caller then cuts the text itself).
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise InputFormatError("is a directory; expected a localization file", path=path)
        check_text_size(path, path.stat().st_size, "the file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFormatError("file not found; expected an existing localization file", path=path) from None
    except OSError as exc:
        raise InputFormatError(f"cannot open the file: {exc.strerror or exc}", path=path) from None
    if raw == b"":
        raise InputFormatError("empty file (0 bytes): no localizations", path=path)
    gzipped = is_gzip(raw)
    if gzipped:
        raw = gunzip_limited(raw, path)  # refuses a cut-short stream and a gzip bomb
        if raw == b"":
            raise InputFormatError("empty decompressed gzip data: no localizations", path=path)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return TextFile(path, raw.decode("utf-16"), gzipped, "utf-16")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"invalid UTF-16 text (byte {exc.start}); expected {what}", path=path) from None
    if not keep_nul and b"\x00" in raw:
        where = raw.index(b"\x00")
        raise InputFormatError(
            f"holds binary data (NUL byte at offset {where}); expected {what}", path=path
        )
    try:
        return TextFile(path, raw.decode("utf-8-sig"), gzipped, "utf-8")
    except UnicodeDecodeError:
        return TextFile(path, raw.decode("latin-1"), gzipped, "latin-1")


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
    ``refusal`` (which says what the header should look like).
    """
    tf = read_text(path, what=what)
    (header,), body, first = split_header(tf.text, 1)
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
        for offset, line in enumerate(LINE_SPLIT.split(self.body)):
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
    float64 and the ``text`` columns as str, and a :class:`LineMap` for messages. Refuses a
    table without rows, a first row whose field count differs from the header's, a later
    row with too many fields, a last line with too few (a file cut short), and non-numeric values in numeric columns (naming the value,
    column position and line).
    """
    lines = LineMap(body, first_line)
    first = next((ln for ln in LINE_SPLIT.split(body, maxsplit=64) if ln.strip(" \t")), None)
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
    # All columns are parsed (no usecols): with usecols pandas silently drops the extra
    # fields of a row that has too many, and such a row must be refused.
    dtype: dict[int, Any] = {i: np.float64 for i in numeric}
    dtype.update({i: str for i in text})
    kwargs: dict[str, Any] = dict(
        header=None, engine="c", na_values=NA_TOKENS, keep_default_na=False,
        skip_blank_lines=True, decimal=decimal, low_memory=False, quotechar='"',
    )
    if sep == "ws":
        kwargs["sep"] = r"\s+"
    else:
        kwargs["sep"] = sep
    try:
        data = pd.read_csv(io.StringIO(body), dtype=dtype, **kwargs)
    except pd.errors.EmptyDataError:
        raise InputFormatError("no localizations: the file has a header but no data rows", path=path) from None
    except pd.errors.ParserError as exc:
        raise _ragged_error(path, body, first_line, sep, ncols, exc, fmt) from None
    except (ValueError, OverflowError) as exc:
        raise _non_numeric(path, body, lines, kwargs, numeric, exc) from None
    except csv.Error as exc:  # pragma: no cover - defensive
        raise InputFormatError(f"malformed table: {' '.join(str(exc).split())}", path=path) from None
    if len(data) == 0:
        raise InputFormatError("no localizations: the file has a header but no data rows", path=path)
    if data.shape[1] != ncols:  # pragma: no cover - guarded by the first-row check
        raise InputFormatError(
            f"the data rows have {data.shape[1]} fields but the header names {ncols} columns",
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
    for offset, line in enumerate(LINE_SPLIT.split(body)):
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


def _non_numeric(path, body, lines, kwargs, numeric, exc) -> InputFormatError:
    try:
        raw = pd.read_csv(io.StringIO(body), dtype=str, **{**kwargs, "usecols": list(numeric)})
    except Exception:  # noqa: BLE001 - fall back to pandas' message
        raw = None
    if raw is not None:
        best: tuple[int, int, str] | None = None
        for i in numeric:
            if i not in raw.columns:
                continue
            s = raw[i]
            num = pd.to_numeric(s.str.replace(",", ".", regex=False) if kwargs.get("decimal") == "," else s,
                                errors="coerce")
            bad = np.flatnonzero(num.isna().to_numpy() & s.notna().to_numpy())
            if bad.size and (best is None or bad[0] < best[0]):
                best = (int(bad[0]), i, str(s.iloc[bad[0]]))
        if best is not None:
            row, col, value = best
            return InputFormatError(
                f"non-numeric value {shown(value)!r} in column {col + 1} at line "
                f"{lines.line(row)}; expected a number",
                path=path,
            )
    return InputFormatError(f"non-numeric value in a numeric column ({' '.join(str(exc).split())}); expected numbers", path=path)


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
