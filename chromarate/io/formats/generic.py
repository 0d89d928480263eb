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
units : {"nm", "um", "mm", "m", "px", ...}
    Unit of the length columns (x, y, z, precision, sigma), any name of the shared unit
    table (:data:`chromarate.io._units.LENGTH_UNITS`). Required: a generic table does not
    say its unit. ``"px"`` needs ``pixel_size_nm``.
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

The text-table machinery it uses is shared with the other text readers and lives in
:mod:`chromarate.io.formats._text`; units in :mod:`chromarate.io._units`.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Mapping

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ConfigError, InputFormatError
from chromarate.io._options import reader_options
from chromarate.io.formats._text import (
    LINE_SPLIT,
    Planner,
    assemble,
    head_text,
    iter_lines,
    parse_table,
    read_body,
    sniff_delimiter,
    split_fields,
)

FORMAT = "generic"

__all__ = ["FORMAT", "detect", "read"]

_LENGTH_CANONICAL = ("x_nm", "y_nm", "z_nm", "precision_nm", "sigma_nm")

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
        lines = LINE_SPLIT.split(text, maxsplit=4)
        header = lines[0]
        delim = sniff_delimiter(header, lines[1:4])
        return _canonical_header(split_fields(header, delim))
    except Exception:  # noqa: BLE001 - detection never raises
        return False


def read(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    units: str | None = None,
    pixel_size_nm: float | None = None,
    frame_base: int | None = None,
    delimiter: str | None = None,
    decimal: str | None = None,
) -> Localizations:
    """Read a generic delimited table.

    Parameters
    ----------
    path : str or pathlib.Path
        The table, plain or gzip-compressed.
    columns, units, pixel_size_nm, frame_base, delimiter, decimal
        See the module docstring. ``columns`` may be omitted only for a table whose header
        names are all canonical (then ``units`` is nm).

    Returns
    -------
    Localizations
        Canonical columns in nm with 0-based frames; ``meta`` adds ``columns_in_file``,
        ``compressed``, ``encoding``, ``delimiter``, ``decimal`` and ``canonical_header``.

    Raises
    ------
    InputFormatError
        The file cannot be read as the table described (message names the file, column, line).
    ConfigError
        An option has an invalid value.
    """
    path = Path(path)
    pixel_size_nm, units, frame_base = reader_options(pixel_size_nm, units, frame_base, 0)
    delim_opt = delimiter
    if delim_opt is not None and delim_opt not in _DELIM_OPTIONS:
        raise ConfigError(f"delimiter must be one of ',', '\\t', ';', 'whitespace', got {delim_opt!r}")
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

    # header and body decoded apart: the whole text is never held next to the body
    tf, header, body, first = read_body(path, what="a delimited text table (CSV/TSV)")
    sample = [ln for ln in itertools.islice(iter_lines(body), 8) if ln.strip()]
    sep = _DELIM_OPTIONS[delim_opt] if delim_opt is not None else sniff_delimiter(header, sample)
    fields = split_fields(header, sep)
    if not any(fields):
        raise InputFormatError("the first line is blank; expected a header line naming the columns",
                               path=path)
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
            raise ConfigError(f"the header names canonical nm columns (x_nm, ...); units={units!r} "
                              "contradicts them")
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
    # A generic file states no unit: ``units`` is passed as each length column's own unit,
    # and the planner has no fallback unit.
    planner = Planner(FORMAT, path, None, pixel_size_nm)
    for canonical in CANONICAL_COLUMNS:
        if canonical not in index or canonical == "frame":
            continue
        i = index[canonical]
        if canonical in _LENGTH_CANONICAL:
            planner.length(canonical, [(i, fields[i], units)])
        else:
            planner.column(canonical, i, fields[i])
    frame = (index["frame"], fields[index["frame"]]) if "frame" in index else None

    numeric = sorted(index.values())
    data, lines = parse_table(path, body, first, sep=sep, ncols=len(fields), numeric=numeric,
                              decimal=decimal, fmt=FORMAT)
    meta = tf.meta(fields, delimiter={"ws": "whitespace"}.get(sep, sep), decimal=decimal,
                   canonical_header=implied)
    spec = planner.assembly(frame, frame_base, meta)
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
