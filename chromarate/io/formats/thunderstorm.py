"""ThunderSTORM CSV: reader and writer.

The CSV written by the ThunderSTORM ImageJ plugin, plain or gzip-compressed (detected from
the gzip magic bytes, not the file name). Header names carry their unit in brackets, e.g.
``"x [nm]"``. Recognised columns (names are matched case-insensitively, units come from the
brackets and are converted with the shared unit table of :mod:`chromarate.io._units`):

- ``x``, ``y``, ``z`` -> ``x_nm``, ``y_nm``, ``z_nm``; unit nm, um/µm (x 1000), mm, m or px
  (x ``pixel_size_nm``, which must then be given)
- ``frame`` -> ``frame``, made 0-based (ThunderSTORM counts frames from 1)
- ``intensity [photon]`` -> ``photons``; ``offset [photon]`` -> ``background``
- ``sigma`` -> ``sigma_nm``; ``uncertainty_xy`` (else ``uncertainty``) -> ``precision_nm``

Other columns (``id``, ``bkgstd``, ``chi2``, ``sigma1``, ``uncertainty_z``, ...) are listed in
``meta["columns_in_file"]`` but not kept. ``intensity`` and ``offset`` are only mapped when
their unit is ``photon``; in any other unit (ADU, counts) they are left out and named in
``meta["skipped_columns"]``. Options: ``pixel_size_nm``, ``units``, ``frame_base`` (default 1).

The file is streamed by pandas' C parser (it is never held as one string), after
:mod:`chromarate.io._textscan` checked its size against the read limit and its last line
against the header. :func:`write_thunderstorm_csv` writes the inverse.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import InputFormatError
from chromarate.io._atomic import atomic_binary
from chromarate.io._options import check_frame_base, clean, positive_pixel_size
from chromarate.io._textscan import (
    HEAD_BYTES,
    TextHead,
    check_last_line,
    gzip_error,
    open_binary,
    open_regular,
    read_text_head,
    scan_text_file,
)
from chromarate.io._units import PHOTON_UNITS, check_units
from chromarate.io.formats._binary import MAX_FRAME, frame_limit_error
from chromarate.io.formats._text import (
    NA_TOKENS,
    ColumnsOverBudget,
    Planner,
    column_budget,
    columns_over_budget,
    first_line,
    first_non_numeric,
    read_csv_columns,
)

FORMAT = "thunderstorm"

__all__ = ["FORMAT", "detect", "read", "write_thunderstorm_csv", "xy_table"]

# ThunderSTORM column names (lower case, without unit), used to recognise the format.
_TS_KNOWN = frozenset({
    "id", "frame", "x", "y", "z", "sigma", "sigma1", "sigma2", "intensity", "offset",
    "bkgstd", "chi2", "uncertainty", "uncertainty_xy", "uncertainty_z", "detections",
})
# canonical column -> accepted file names, in order of preference
_TS_LENGTH_COLUMNS = {
    "x_nm": ("x",),
    "y_nm": ("y",),
    "z_nm": ("z",),
    "sigma_nm": ("sigma",),
    "precision_nm": ("uncertainty_xy", "uncertainty"),
}
_TS_PHOTON_COLUMNS = {"photons": ("intensity",), "background": ("offset",)}

_HEADER_RE = re.compile(r"^(?P<name>.*?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$", re.DOTALL)


# --------------------------------------------------------------------------- recognition


def detect(path: Path, head: bytes) -> bool:
    """A comma-separated header in ThunderSTORM's style.

    ThunderSTORM writes lower-case names, with the unit in brackets where there is one;
    "Frame" or "X (nm)" (other vendors) must not be taken for it. A header is taken when a
    column has a bracketed unit, or it names both x and y, or all its names are ThunderSTORM
    names (e.g. a unitless "x,y" table, refused later with a hint on units=).
    """
    line = first_line(head, HEAD_BYTES)
    if line is None:
        return False
    try:
        fields = header_fields(line, path)
    except InputFormatError:
        return False
    cols = _parse_columns(fields)
    if not cols:
        return False
    bases = [c.raw.split("[")[0].strip() for c in cols]
    if any(c.unit is not None for c in cols):
        return True
    return {"x", "y"} <= set(bases) or all(b in _TS_KNOWN for b in bases)


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class _Column:
    index: int  # 0-based position in the file
    raw: str  # header text as in the file (quotes removed)
    name: str  # lower-case name without unit
    unit: str | None  # text in brackets, stripped; None when absent


def header_fields(line: str, path: Path) -> list[str]:
    """The comma-separated names of a header line, quotes and blanks removed.

    Raises
    ------
    InputFormatError
        The line cannot be split as CSV.
    """
    try:
        fields = next(csv.reader([line]), [])
        # Some tools write the whole header as one quoted field: "id,""frame"",""x [nm]""".
        if len(fields) == 1 and "," in fields[0]:
            fields = next(csv.reader([fields[0]]), [])
    except csv.Error as exc:
        raise InputFormatError(f"cannot parse the header line: {exc}", path=path) from None
    return [f.strip().strip('"').strip() for f in fields]


def _parse_columns(fields: list[str]) -> list[_Column]:
    cols = []
    for i, raw in enumerate(fields):
        m = _HEADER_RE.match(raw)
        name, unit = (m.group("name"), m.group("unit")) if m else (raw, None)
        cols.append(_Column(i, raw, name.strip().lower(), None if unit is None else unit.strip()))
    return cols


def foreign_delimiter(line: str, fields: list[str]) -> str | None:
    """How a header that is one field is separated instead of by commas, or None.

    Returns a label for messages (``"';' (semicolon)"``, ``"tab"``, ``"'|'"``).
    """
    if len(fields) <= 1:
        for delim, label in ((";", "';' (semicolon)"), ("\t", "tab"), ("|", "'|'")):
            if delim in line:
                return label
    return None


# --------------------------------------------------------------------------- reader


def read(
    path: str | Path,
    *,
    pixel_size_nm: float | None = None,
    units: str | None = None,
    frame_base: int = 1,
) -> Localizations:
    """Read a ThunderSTORM CSV (see the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV, plain or gzip-compressed.
    pixel_size_nm : float, optional
        Camera pixel size used to convert columns in pixels (``[px]``) to nm. Columns in
        pixels are refused without it.
    units : str, optional
        Unit of length columns whose header states none or an unknown one (e.g. ``"x"``);
        it never overrides a known unit stated in the header.
    frame_base : int, optional
        Number of the first frame in the file (default 1, as ThunderSTORM writes); frames
        are returned 0-based.

    Returns
    -------
    Localizations
        Canonical columns in nm with 0-based frames; ``meta`` as documented in
        :func:`chromarate.io.localizations.read_localizations`.

    Raises
    ------
    InputFormatError
        The file is not a readable ThunderSTORM CSV (the message names file, column, line).
    ConfigError
        An option has an invalid value.
    """
    path = Path(path)
    head = read_text_head(path)
    pixel_size_nm = positive_pixel_size(pixel_size_nm)
    units = check_units(units)
    frame_base = check_frame_base(frame_base)

    fields = header_fields(head.header_line, path)
    delim = foreign_delimiter(head.header_line, fields)
    if delim:
        raise InputFormatError(
            f"the header is separated by {delim}; expected a comma-separated ThunderSTORM CSV",
            path=path,
        )
    columns = _parse_columns(fields)
    _check_duplicates(columns, path)
    by_name = {c.name: c for c in columns}

    for required in ("x", "y"):
        if required not in by_name:
            found = ", ".join(f'"{c.raw}"' for c in columns) or "(none)"
            raise InputFormatError(
                f"no {required} column; columns found: {found}; expected a column named "
                f'"{required} [nm]" (or "{required} [um]", "{required} [px]")',
                path=path,
            )

    # Decide which file column feeds each canonical column and its scale to nm.
    planner = Planner(FORMAT, path, units, pixel_size_nm)
    skipped: dict[str, str] = {}
    for canonical, names in _TS_LENGTH_COLUMNS.items():
        col = next((by_name[n] for n in names if n in by_name), None)
        if col is not None:
            planner.length(canonical, [(col.index, col.raw, col.unit)])
    for canonical, names in _TS_PHOTON_COLUMNS.items():
        col = next((by_name[n] for n in names if n in by_name), None)
        if col is None:
            continue
        if col.unit is not None and col.unit.lower() in PHOTON_UNITS:
            planner.column(canonical, col.index, col.raw, "photon")
        else:
            skipped[col.raw] = f"unit {col.unit!r} is not photon" if col.unit else "no unit (photon expected)"
    frame_col = by_name.get("frame")

    if head.header_only:
        raise InputFormatError("no localizations: the file has a header line but no data rows", path=path)

    # each plan has one source column; ``columns`` is indexed by file position
    planned = [(p, columns[p.sources[0]]) for p in planner.plans]
    used = [col for _, col in planned] + ([frame_col] if frame_col is not None else [])
    data = _read_table(path, head, columns, used)

    table: dict[str, np.ndarray] = {}
    for p, col in planned:
        # checked in the file's unit (messages quote the file's value), then scaled to nm
        values = data[col.index].to_numpy(dtype=np.float64)
        if p.canonical in ("x_nm", "y_nm", "z_nm"):
            _check_finite(values, col, path, head)
        elif p.canonical in ("precision_nm", "sigma_nm"):
            _check_non_negative(values, col, path, head)
        table[p.canonical] = values * p.scale if p.scale != 1.0 else values
    if frame_col is not None:
        table["frame"] = _frames(data[frame_col.index].to_numpy(dtype=np.float64), frame_col, frame_base,
                                 path, head)

    # Table and meta are built here, not by the text readers' ``assemble``: the file is
    # streamed (no ``TextFile``, so no ``encoding`` entry), values are checked before scaling,
    # and the frame message and the meta's key order are this reader's own.
    ordered = {c: table[c] for c in CANONICAL_COLUMNS if c in table}
    frame_df = pd.DataFrame(ordered, copy=False)
    sources = {p.canonical: col.raw for p, col in planned}
    column_map = {c: sources[c] for c in CANONICAL_COLUMNS if c in sources}
    if frame_col is not None:
        column_map["frame"] = frame_col.raw
    meta: dict[str, Any] = {
        "source": str(path),
        "format": FORMAT,
        "pixel_size_nm": pixel_size_nm if planner.used_pixels else None,
        "frame_base": frame_base,
        "n_rows": int(len(frame_df)),
        "columns_in_file": [c.raw for c in columns],
        "column_map": column_map,
        "units": {p.canonical: p.unit for p in planner.plans},
        "compressed": head.gzipped,
    }
    if skipped:
        meta["skipped_columns"] = skipped
    return Localizations(table=frame_df, meta=meta)


def _check_duplicates(columns: list[_Column], path: Path) -> None:
    seen: dict[str, _Column] = {}
    for col in columns:
        if col.name in seen:
            first = seen[col.name]
            raise InputFormatError(
                f'duplicated column: "{first.raw}" (column {first.index + 1}) and "{col.raw}" '
                f"(column {col.index + 1}); expected each column name once",
                path=path,
            )
        seen[col.name] = col


def _read_table(path: Path, head: TextHead, columns: list[_Column], used: list[_Column]) -> pd.DataFrame:
    """Parse the data rows with pandas' C engine; only the used columns, as float64.

    First the decompressed size is checked against the read limit and the last line
    against the header (a file cut short is refused), see :mod:`chromarate.io._textscan`.
    """
    scan = scan_text_file(path, head.gzipped)
    check_last_line(scan.tail, len(columns), ",", path)
    dtype = {c.index: np.float64 for c in used}
    # The file is parsed a block of rows at a time and only the used columns are kept
    # (read_csv_columns): pandas' whole-file parse (low_memory=False) held every token of
    # the file at once, about 10 times the text for a table of short numbers, and every
    # column, used or not.
    kwargs = dict(
        header=None, skiprows=1, sep=",", engine="c", dtype=dtype, encoding="utf-8",
        compression="gzip" if head.gzipped else None, na_values=NA_TOKENS,
        keep_default_na=False, skip_blank_lines=True, low_memory=True,
    )
    try:
        with open_regular(path) as fh:  # streamed: no copy of the text is held
            data, width = read_csv_columns(fh, sorted({c.index for c in used}),
                                           budget=column_budget(0, len(columns), scan.size),
                                           **kwargs)
    except ColumnsOverBudget as exc:
        raise columns_over_budget(path, exc) from None
    except pd.errors.EmptyDataError:
        raise InputFormatError("no localizations: the file has a header line but no data rows",
                               path=path) from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start} of a block); expected a text table",
            path=path,
        ) from None
    except pd.errors.ParserError as exc:
        raise InputFormatError(f"malformed CSV: {clean(exc)}", path=path) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise gzip_error(path, exc) from None
    except ValueError as exc:
        raise _non_numeric_error(path, head, used, exc) from None
    except OSError as exc:
        if head.gzipped:
            raise gzip_error(path, exc) from None
        raise InputFormatError(f"cannot read the file: {exc}", path=path) from None
    except (OverflowError, csv.Error) as exc:  # pragma: no cover - defensive
        raise InputFormatError(f"malformed CSV: {clean(exc)}", path=path) from None

    if width == 0 or len(data) == 0:
        raise InputFormatError("no localizations: the file has a header line but no data rows", path=path)
    if width != len(columns):
        raise InputFormatError(
            f"the first data row (line {_line_of_row(path, head, 0)}) has {width} "
            f"fields but the header names {len(columns)} columns; expected one field per "
            "header column, separated by commas",
            path=path,
        )
    return data


def _non_numeric_error(path: Path, head: TextHead, used: list[_Column],
                       exc: BaseException) -> InputFormatError:
    """Find the first value of a used column that is not a number, for a precise message
    (reading the file a block at a time, see :func:`~._text.first_non_numeric`)."""
    by_index = {c.index: c for c in used}
    try:
        with open_regular(path) as fh:
            best = first_non_numeric(
                fh, sorted(by_index), header=None, skiprows=1, sep=",", engine="c",
                encoding="utf-8", compression="gzip" if head.gzipped else None,
                na_values=NA_TOKENS, keep_default_na=False, skip_blank_lines=True)
    except Exception:  # fall back to pandas' own message  # noqa: BLE001
        best = None
    if best is not None:
        row, index, value = best
        shown = value if len(value) <= 40 else value[:40] + "..."
        return InputFormatError(
            f'non-numeric value {shown!r} in column "{by_index[index].raw}" at line '
            f"{_line_of_row(path, head, row)}; expected a number",
            path=path,
        )
    return InputFormatError(f"non-numeric value in a numeric column: {clean(exc)}; expected numbers",
                            path=path)


def _line_of_row(path: Path, head: TextHead, row: int) -> int:
    """1-based line number in the file of data row ``row`` (blank lines are skipped, as pandas does)."""
    seen = -1
    line_no = 0
    try:
        with open_binary(path, head.gzipped) as fh:
            for raw in fh:
                raw = raw[:-1] if raw.endswith(b"\n") else raw
                raw = raw[:-1] if raw.endswith(b"\r") else raw
                for piece in raw.split(b"\r"):  # old Mac line ends
                    line_no += 1
                    if line_no == 1:
                        continue  # header
                    if piece.strip(b" \t") == b"":
                        continue
                    seen += 1
                    if seen == row:
                        return line_no
    except (OSError, EOFError, zlib.error):  # pragma: no cover - file changed under us
        pass
    return row + 2  # no blank lines: header is line 1, first data row line 2


def _first_bad(mask: np.ndarray) -> int | None:
    if not mask.any():
        return None
    return int(np.argmax(mask))


def _check_finite(values: np.ndarray, col: _Column, path: Path, head: TextHead) -> None:
    i = _first_bad(~np.isfinite(values))
    if i is not None:
        what = "missing or NaN value" if np.isnan(values[i]) else f"infinite value {values[i]}"
        raise InputFormatError(
            f'{what} in coordinate column "{col.raw}" at line {_line_of_row(path, head, i)}; '
            "expected finite numbers",
            path=path,
        )


def _check_non_negative(values: np.ndarray, col: _Column, path: Path, head: TextHead) -> None:
    with np.errstate(invalid="ignore"):
        i = _first_bad((values < 0) | np.isinf(values))
    if i is not None:
        kind = "negative" if values[i] < 0 else "infinite"
        raise InputFormatError(
            f'{kind} value {values[i]} in column "{col.raw}" at line '
            f"{_line_of_row(path, head, i)}; expected a finite, non-negative length",
            path=path,
        )


def _frames(values: np.ndarray, col: _Column, frame_base: int, path: Path, head: TextHead) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        big = values > MAX_FRAME
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < frame_base) | big
    i = _first_bad(bad)
    if i is not None and big[i]:
        raise frame_limit_error(values[i], f'column "{col.raw}" at line {_line_of_row(path, head, i)}', path)
    if i is not None:
        raise InputFormatError(
            f'invalid frame number {values[i]} in column "{col.raw}" at line '
            f"{_line_of_row(path, head, i)}; expected integers >= {frame_base} (frames in "
            f"this file are counted from {frame_base}; pass frame_base= if they are not)",
            path=path,
        )
    return values.astype(np.int64) - frame_base


# --------------------------------------------------------------------------- writer


def xy_table(locs: Localizations) -> pd.DataFrame:
    """The table of ``locs``, checked to hold the coordinates a writer needs.

    Shared by the localization writers (:func:`write_thunderstorm_csv`,
    :func:`chromarate.io.picasso_export.write_picasso`), after their own argument checks.

    Parameters
    ----------
    locs : Localizations
        The localizations to write.

    Returns
    -------
    pandas.DataFrame
        ``locs.table`` itself (not a copy).

    Raises
    ------
    ValueError
        ``x_nm`` or ``y_nm`` is missing.
    """
    table = locs.table
    missing = [c for c in ("x_nm", "y_nm") if c not in table.columns]
    if missing:
        raise ValueError(f"localization table lacks required column(s) {missing}")
    return table


def write_thunderstorm_csv(locs: Localizations, path: str | os.PathLike, *, decimals: int = 1) -> Path:
    """Write localizations as a ThunderSTORM CSV (gzip-compressed when the name ends in .gz).

    Canonical columns that are present are written under quoted ThunderSTORM headers, in the
    order ``"id","frame","x [nm]","y [nm]","z [nm]","sigma [nm]","intensity [photon]",
    "offset [photon]","uncertainty_xy [nm]"``; ``id`` counts rows from 1 and frames are
    written 1-based. Missing values are written as empty fields. The file is written to a
    temporary file in the same folder and moved into place, so it appears complete or not
    at all; gzip output has a fixed header (mtime 0, no file name) and is reproducible.

    Parameters
    ----------
    locs : Localizations
        Table with at least ``x_nm`` and ``y_nm``.
    path : str or os.PathLike
        Output file; its folder must exist.
    decimals : int, optional
        Digits after the decimal point for float columns (default 1, i.e. 0.1 nm).

    Returns
    -------
    pathlib.Path
        ``path``, the ThunderSTORM CSV now complete.

    Raises
    ------
    TypeError
        ``locs`` is not a :class:`Localizations`.
    ValueError
        ``x_nm`` or ``y_nm`` is missing, ``frame`` holds non-integers, or ``decimals`` is
        out of range.
    OSError
        The file cannot be written (e.g. its folder does not exist); nothing is left behind.

    Examples
    --------
    >>> write_thunderstorm_csv(locs, "out.csv.gz", decimals=2)  # doctest: +SKIP
    """
    if not isinstance(locs, Localizations):
        raise TypeError(f"locs must be a Localizations, not {type(locs).__name__}")
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or not 0 <= decimals <= 17:
        raise ValueError(f"decimals must be an integer in [0, 17], got {decimals!r}")
    table = xy_table(locs)
    path = Path(path)
    n = len(table)

    out: dict[str, Any] = {"id": np.arange(1, n + 1, dtype=np.int64)}
    if "frame" in table.columns:
        frame = table["frame"].to_numpy()
        if not np.issubdtype(frame.dtype, np.integer):
            f = frame.astype(np.float64)
            if not np.all(np.isfinite(f) & (f == np.round(f))):
                raise ValueError("column 'frame' must hold integers to be written")
            frame = f.astype(np.int64)
        out["frame"] = frame.astype(np.int64) + 1
    for canonical, header in _WRITE_COLUMNS:
        if canonical in table.columns:
            out[header] = table[canonical].to_numpy(dtype=np.float64)
    frame_out = pd.DataFrame(out, copy=False)
    header_line = ",".join(f'"{name}"' for name in frame_out.columns) + "\n"
    compress = path.name.lower().endswith(".gz")

    with atomic_binary(path) as raw:
        if compress:
            stream: Any = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        else:
            stream = raw
        with contextlib.ExitStack() as stack:
            if compress:
                stack.enter_context(stream)
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
            try:
                text.write(header_line)
                frame_out.to_csv(
                    text, header=False, index=False, float_format=f"%.{int(decimals)}f",
                    na_rep="", lineterminator="\n",
                )
                text.flush()
            finally:
                text.detach()  # leave closing the binary streams to their owners
    return path


# ThunderSTORM names of canonical columns for writing (frame and id handled separately).
_WRITE_COLUMNS = (
    ("x_nm", "x [nm]"),
    ("y_nm", "y [nm]"),
    ("z_nm", "z [nm]"),
    ("sigma_nm", "sigma [nm]"),
    ("photons", "intensity [photon]"),
    ("background", "offset [photon]"),
    ("precision_nm", "uncertainty_xy [nm]"),
)
