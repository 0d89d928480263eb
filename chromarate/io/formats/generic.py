"""Generic delimited text tables (CSV, TSV, semicolon or whitespace separated, optionally gzipped).

The user states which file column feeds each canonical column and the length unit::

    read_localizations("t.tsv", format="generic",
                       columns={"x_nm": "X_pos", "y_nm": "Y_pos", "frame": "t"},
                       units="um", frame_base=1)

Options
-------
columns : dict
    Canonical name (``x_nm``, ``y_nm``, ``z_nm``, ``frame``, ``photons``, ``precision_nm``,
    ``sigma_nm``, ``background``) -> file column name. ``x_nm`` and ``y_nm`` are required.
    Names are matched exactly, then ignoring case and surrounding blanks.
units : {"nm", "um", "px"}
    Unit of the length columns (x, y, z, precision, sigma). Required: a generic table does
    not say its unit. ``"px"`` needs ``pixel_size_nm``.
pixel_size_nm : float
    Camera pixel size, for ``units="px"``.
frame_base : {0, 1}
    Number of the first frame in the file (default 0); frames are returned 0-based.
delimiter : {",", "\\t", ";", "whitespace"}
    Overrides the sniffed delimiter.
decimal : {".", ","}
    Decimal mark (default: "," for semicolon-separated files whose numbers use a comma,
    else ".").

Generic tables are never auto-detected, with one exception: a table whose header names are
all canonical names (``x_nm``, ``y_nm`` and optionally the others, plus an optional unnamed
leading index column as pandas writes it) is read by ``format="auto"`` as generic with
units nm and 0-based frames -- the canonical names state both.

This module also holds the text-table machinery shared by the other text readers (Elyra,
N-STORM, Nanoimager, rapidSTORM): reading and decoding the file, splitting the header,
parsing numeric columns with precise error messages, and assembling the canonical table.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io._options import check_options as _check_options
from chromarate.io._options import check_pixel_size
from chromarate.io._textscan import check_last_line, check_text_size, gunzip_limited
from chromarate.io.formats._binary import first_bad_length

FORMAT = "generic"

__all__ = ["FORMAT", "detect", "read"]

_GZIP_MAGIC = b"\x1f\x8b"
_NA_TOKENS = ["", "NaN", "nan", "NAN", "NA", "N/A", "null", "NULL", "-nan", "-NaN"]
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")

#: nanometres per unit of length; None marks camera pixels (needs pixel_size_nm)
LENGTH_UNITS: dict[str, float | None] = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1000.0, "\u00b5m": 1000.0, "\u03bcm": 1000.0, "micron": 1000.0, "microns": 1000.0,
    "micrometer": 1000.0, "micrometers": 1000.0, "micrometre": 1000.0, "micrometres": 1000.0,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "m": 1e9, "meter": 1e9, "meters": 1e9, "metre": 1e9, "metres": 1e9,
    "px": None, "pix": None, "pixel": None, "pixels": None, "camera pixel": None,
}
_LENGTH_CANONICAL = ("x_nm", "y_nm", "z_nm", "precision_nm", "sigma_nm")
_COORDINATES = ("x_nm", "y_nm", "z_nm")
_NON_NEGATIVE = ("precision_nm", "sigma_nm")


# =========================================================================== shared machinery


def head_text(head: bytes, limit: int = 1 << 16) -> str | None:
    """Decoded start of a text file from its first raw bytes (gunzipped if needed), or None.

    Returns None when the bytes do not look like text (NUL byte in the first line, or a gzip
    stream that does not decompress). Used by ``detect`` functions, which must never raise.
    """
    data = head
    if data[:2] == _GZIP_MAGIC:
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


def first_line(head: bytes) -> str | None:
    """First line of a text file from its raw head bytes, or None when it is not text."""
    text = head_text(head)
    if text is None:
        return None
    return _LINE_SPLIT.split(text, maxsplit=1)[0]


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
    gzipped = raw[:2] == _GZIP_MAGIC
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
        m = _LINE_SPLIT.search(text, pos)
        if m is None:
            lines.append(text[pos:])
            pos = len(text)
            break
        lines.append(text[pos:m.start()])
        pos = m.end()
    return lines, text[pos:], len(lines) + 1


def check_options(fmt: str, options: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Raise TypeError for options the format does not know (as the ThunderSTORM reader does)."""
    _check_options(options, accepted, fmt)


def check_units(value: Any) -> str | None:
    """Validate a ``units=`` option; returns a key of :data:`LENGTH_UNITS` or None."""
    if value is None:
        return None
    if not isinstance(value, str) or unit_factor(value) is False:
        raise ConfigError(f"units must be one of 'nm', 'um', 'px' (length unit of the file), got {value!r}")
    return value.strip().lower()


def check_frame_base(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"frame_base must be a non-negative integer (0 or 1), got {value!r}")
    return int(value)


def check_reader_options(
    fmt: str, path: Path, options: Mapping[str, Any], accepted: Iterable[str], frame_base: int
) -> tuple[Path, float | None, str | None, int]:
    """Check the options the text readers share; return (path, pixel_size_nm, units,
    frame_base), ``frame_base`` being the format's default when the option is not given."""
    check_options(fmt, options, accepted)
    path = Path(path)
    pixel_size_nm = check_pixel_size(options.get("pixel_size_nm"))
    units = check_units(options.get("units"))
    return path, pixel_size_nm, units, check_frame_base(options.get("frame_base"), frame_base)


def unit_factor(unit: str) -> float | None | bool:
    """nm per ``unit``; None for pixels; False when the unit is not a known length unit."""
    key = " ".join(unit.strip().lower().split())
    if key in LENGTH_UNITS:
        return LENGTH_UNITS[key]
    return False


def length_scale(
    unit: str | None,
    *,
    column: str,
    units: str | None,
    pixel_size_nm: float | None,
    path: Path,
    fmt: str,
) -> tuple[float, str, bool]:
    """(nm per file unit, unit name for meta, pixels converted?) of a length column.

    ``unit`` is the unit the file states (None when it states none). The ``units=`` option
    applies to columns without a recognised unit and never overrides a known one.
    """
    factor = unit_factor(unit) if unit else False
    if factor is False:
        if units is None:
            said = f'the unknown unit "{unit}"' if unit else "no unit"
            raise InputFormatError(
                f'column "{column}" has {said}; expected a length unit (nm, um, m, or pixels '
                f'with pixel_size_nm=...); pass units="nm" (or "um", or units="px" with '
                f"pixel_size_nm=...) to read it as format={fmt!r}",
                path=path,
            )
        unit = units
        factor = unit_factor(units)
    if factor is None:
        if pixel_size_nm is None:
            raise InputFormatError(
                f'column "{column}" is in camera pixels; pass pixel_size_nm=... to convert it '
                "to nanometres",
                path=path,
            )
        return pixel_size_nm, "px", True
    assert isinstance(factor, float)
    name = {1.0: "nm", 1000.0: "um", 1e6: "mm", 1e9: "m"}.get(factor, str(unit))
    return factor, name, False


class LineMap:
    """Maps a data-row index (as pandas counts, blank lines skipped) to a 1-based file line."""

    def __init__(self, body: str, first_line: int) -> None:
        self.body = body
        self.first_line = first_line

    def line(self, row: int) -> int:
        seen = -1
        for offset, line in enumerate(_LINE_SPLIT.split(self.body)):
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
    first = next((ln for ln in _LINE_SPLIT.split(body, maxsplit=64) if ln.strip(" \t")), None)
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
        header=None, engine="c", na_values=_NA_TOKENS, keep_default_na=False,
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
) -> tuple[pd.DataFrame, LineMap, np.ndarray | None, list[Any] | None]:
    """:func:`parse_table` for a table with header ``names``, reading the columns of
    ``plans`` and ``frame`` as numbers; with a ``channel_col``, also select the rows of
    ``channel`` (see :func:`channel_filter`). Returns (data, lines, keep, channels)."""
    numeric = sorted({i for p in plans for i in p.sources} | ({frame[0]} if frame else set()))
    data, lines = parse_table(path, body, first_line, sep=sep, ncols=len(names), numeric=numeric,
                              text=[channel_col] if channel_col is not None else [], fmt=fmt)
    keep, channels = (None, None)
    if channel_col is not None:
        keep, channels = channel_filter(path, data[channel_col], channel, names[channel_col])
    return data, lines, keep, channels


def _ragged_error(path, body, first_line, sep, ncols, exc, fmt) -> InputFormatError:
    for offset, line in enumerate(_LINE_SPLIT.split(body)):
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


@dataclass
class Plan:
    """How one canonical column is computed: mean of source columns times a scale."""

    canonical: str
    sources: tuple[int, ...]
    names: tuple[str, ...]
    scale: float = 1.0
    unit: str | None = None


@dataclass
class Assembly:
    """Everything :func:`assemble` needs besides the parsed data."""

    fmt: str
    plans: list[Plan]
    frame: tuple[int, str] | None = None  # (column position, header name)
    frame_base: int = 0
    pixel_size_nm: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def values_of(data: pd.DataFrame | Mapping[int, np.ndarray], plan: Plan) -> np.ndarray:
    arrays = [np.asarray(data[i], dtype=np.float64) for i in plan.sources]
    out = arrays[0] if len(arrays) == 1 else np.mean(np.vstack(arrays), axis=0)
    return out * plan.scale if plan.scale != 1.0 else out


def assemble(
    path: Path,
    data: pd.DataFrame | Mapping[int, np.ndarray],
    lines: Callable[[int], int],
    spec: Assembly,
    *,
    keep: np.ndarray | None = None,
) -> Localizations:
    """Check values and build the canonical table and meta.

    ``lines(row)`` gives the file line of a row for messages; ``keep`` optionally selects
    rows (e.g. one channel) after all rows were checked.
    """
    table: dict[str, np.ndarray] = {}
    for plan in spec.plans:
        values = values_of(data, plan)
        label = " + ".join(f'"{n}"' for n in plan.names)
        if plan.canonical in _COORDINATES:
            bad = ~np.isfinite(values)
            if bad.any():
                i = int(np.argmax(bad))
                what = "missing or NaN value" if np.isnan(values[i]) else f"infinite value {values[i]}"
                raise InputFormatError(
                    f"{what} in coordinate column {label} at line {lines(i)}; expected finite numbers",
                    path=path,
                )
        elif plan.canonical in _NON_NEGATIVE:
            bad_length = first_bad_length(values)
            if bad_length is not None:
                i, kind = bad_length
                raise InputFormatError(
                    f"{kind} value {values[i]} in column {label} at line {lines(i)}; expected a "
                    "finite, non-negative length",
                    path=path,
                )
        table[plan.canonical] = values
    if spec.frame is not None:
        idx, name = spec.frame
        values = np.asarray(data[idx], dtype=np.float64)
        base = spec.frame_base
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (values < base) | (values > 2.0**53)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputFormatError(
                f'invalid frame number {values[i]} in column "{name}" at line {lines(i)}; expected '
                f"integers >= {base} (format {spec.fmt!r} counts frames from {base}; pass "
                "frame_base= if this file does not)",
                path=path,
            )
        table["frame"] = values.astype(np.int64) - base

    if keep is not None:
        table = {k: v[keep] for k, v in table.items()}
    ordered = {c: table[c] for c in CANONICAL_COLUMNS if c in table}
    frame_df = pd.DataFrame(ordered, copy=False)
    column_map = {p.canonical: " + ".join(p.names) for p in spec.plans}
    if spec.frame is not None:
        column_map["frame"] = spec.frame[1]
    column_map = {c: column_map[c] for c in CANONICAL_COLUMNS if c in column_map}
    units = {p.canonical: p.unit for p in spec.plans if p.unit is not None}
    meta: dict[str, Any] = {
        "source": str(path),
        "format": spec.fmt,
        "pixel_size_nm": spec.pixel_size_nm,
        "frame_base": spec.frame_base,
        "n_rows": int(len(frame_df)),
        "column_map": column_map,
        "units": units,
    }
    meta.update(spec.meta)
    return Localizations(table=frame_df, meta=meta)


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


# =========================================================================== generic format

_OPTIONS = ("columns", "units", "pixel_size_nm", "frame_base", "delimiter", "decimal")
_DELIM_OPTIONS = {",": ",", "\t": "\t", "tab": "\t", ";": ";", "whitespace": "ws", " ": "ws", "ws": "ws"}


def _canonical_header(fields: list[str]) -> bool:
    names = [f for f in fields]
    if names and names[0] in ("", "Unnamed: 0", "index"):
        names = names[1:]
    return (
        len(names) >= 2
        and {"x_nm", "y_nm"} <= set(names)
        and set(names) <= set(CANONICAL_COLUMNS)
        and len(set(names)) == len(names)
    )


def detect(path: Path, head: bytes) -> bool:
    """True only for a table whose header names are all canonical (x_nm, y_nm, ...)."""
    try:
        text = head_text(head)
        if text is None:
            return False
        lines = _LINE_SPLIT.split(text, maxsplit=4)
        header = lines[0]
        delim = sniff_delimiter(header, lines[1:4])
        return _canonical_header(split_fields(header, delim))
    except Exception:  # noqa: BLE001 - detection never raises
        return False


def read(path: Path, **options: Any) -> Localizations:
    """Read a generic delimited table; see the module docstring for the options."""
    check_options(FORMAT, options, _OPTIONS)
    path = Path(path)
    columns = options.get("columns")
    units = check_units(options.get("units"))
    pixel_size_nm = check_pixel_size(options.get("pixel_size_nm"))
    frame_base = check_frame_base(options.get("frame_base"), 0)
    delim_opt = options.get("delimiter")
    if delim_opt is not None and delim_opt not in _DELIM_OPTIONS:
        raise ConfigError(f"delimiter must be one of ',', '\\t', ';', 'whitespace', got {delim_opt!r}")
    decimal = options.get("decimal")
    if decimal is not None and decimal not in (".", ","):
        raise ConfigError(f"decimal must be '.' or ',', got {decimal!r}")
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise ConfigError(
                "columns must be a dict of canonical name -> file column, e.g. "
                f"{{'x_nm': 'X', 'y_nm': 'Y'}}, got {type(columns).__name__}"
            )
        bad_keys = [k for k in columns if k not in CANONICAL_COLUMNS]
        if bad_keys:
            raise ConfigError(
                f"columns has unknown canonical name(s) {bad_keys}; expected keys among "
                f"{', '.join(CANONICAL_COLUMNS)}"
            )
        bad_values = [k for k, v in columns.items() if not isinstance(v, str) or not v.strip()]
        if bad_values:
            raise ConfigError(f"columns[{bad_values[0]!r}] must be a non-empty column name string")
        missing = [k for k in ("x_nm", "y_nm") if k not in columns]
        if missing:
            raise ConfigError(f"columns must map {' and '.join(missing)} to a file column")

    tf = read_text(path, what="a delimited text table (CSV/TSV)")
    (header,), body, first = split_header(tf.text, 1)
    sample = [ln for ln in _LINE_SPLIT.split(body, maxsplit=8)[:8] if ln.strip()]
    sep = _DELIM_OPTIONS[delim_opt] if delim_opt is not None else sniff_delimiter(header, sample)
    fields = split_fields(header, sep)
    if not any(fields):
        raise InputFormatError("the first line is blank; expected a header line naming the columns", path=path)
    if decimal is None:
        decimal = "," if sep == ";" and _uses_decimal_comma(sample, sep) else "."

    if columns is None:
        if not _canonical_header(fields):
            shown_fields = ", ".join(f'"{f}"' for f in fields[:20])
            raise InputFormatError(
                f"format 'generic' needs a column mapping: pass columns={{'x_nm': ..., 'y_nm': "
                f"...}} (canonical name -> file column) and units=...; columns found: {shown_fields}",
                path=path,
            )
        columns = {f: f for f in fields if f in CANONICAL_COLUMNS}
        if units not in (None, "nm", "nanometer", "nanometre"):
            raise ConfigError(f"the header names canonical nm columns (x_nm, ...); units={units!r} contradicts them")
        units = "nm"
        implied = True
    else:
        implied = False
        if units is None:
            raise InputFormatError(
                'format "generic" needs the length unit of the file: pass units="nm", "um" or '
                '"px" (with pixel_size_nm=...)',
                path=path,
            )

    index = _resolve_columns(path, fields, columns)
    plans: list[Plan] = []
    used_px = False
    for canonical in CANONICAL_COLUMNS:
        if canonical not in index or canonical == "frame":
            continue
        i = index[canonical]
        if canonical in _LENGTH_CANONICAL:
            scale, unit, px = length_scale(units, column=fields[i], units=None,
                                           pixel_size_nm=pixel_size_nm, path=path, fmt=FORMAT)
            used_px |= px
        else:
            scale, unit = 1.0, None
        plans.append(Plan(canonical, (i,), (fields[i],), scale, unit))
    frame = (index["frame"], fields[index["frame"]]) if "frame" in index else None

    numeric = sorted(index.values())
    data, lines = parse_table(path, body, first, sep=sep, ncols=len(fields), numeric=numeric,
                              decimal=decimal, fmt=FORMAT)
    spec = Assembly(
        fmt=FORMAT, plans=plans, frame=frame, frame_base=frame_base,
        pixel_size_nm=pixel_size_nm if used_px else None,
        meta={
            "columns_in_file": fields,
            "compressed": tf.gzipped,
            "encoding": tf.encoding,
            "delimiter": {"ws": "whitespace"}.get(sep, sep),
            "decimal": decimal,
            "canonical_header": implied,
        },
    )
    return assemble(path, data, lines.line, spec)


def _uses_decimal_comma(sample: list[str], sep: str) -> bool:
    pattern = re.compile(r"^\s*[-+]?\d+,\d+([eE][-+]?\d+)?\s*$")
    for row in sample:
        for f in split_fields(row, sep):
            if pattern.match(f):
                return True
            if re.match(r"^\s*[-+]?\d*\.\d+", f):
                return False
    return False


def _resolve_columns(path: Path, fields: list[str], columns: Mapping[str, str]) -> dict[str, int]:
    exact = {}
    for i, f in enumerate(fields):
        exact.setdefault(f, i)
    folded: dict[str, list[int]] = {}
    for i, f in enumerate(fields):
        folded.setdefault(f.strip().lower(), []).append(i)
    out: dict[str, int] = {}
    for canonical, name in columns.items():
        if name in exact:
            out[canonical] = exact[name]
            continue
        hits = folded.get(name.strip().lower(), [])
        if len(hits) == 1:
            out[canonical] = hits[0]
            continue
        found = ", ".join(f'"{f}"' for f in fields[:30]) + (", ..." if len(fields) > 30 else "")
        reason = "matches several columns" if hits else "is not a column of the file"
        raise InputFormatError(
            f'columns["{canonical}"] = "{name}" {reason}; columns found: {found}',
            path=path,
        )
    dup = {}
    for canonical, i in out.items():
        if i in dup:
            raise ConfigError(
                f'columns maps both {dup[i]!r} and {canonical!r} to the same file column "{fields[i]}"'
            )
        dup[i] = canonical
    return out
