"""Read and write single-molecule localization tables.

:func:`read_localizations` turns a localization file into a :class:`~chromarate._types.Localizations`
table with the canonical columns of docs/design.md section 4 (coordinates in nanometres, 0-based
frames). :func:`write_thunderstorm_csv` writes such a table back as a ThunderSTORM CSV.

Supported formats
-----------------
Every reader returns nm coordinates and 0-based frames and records the file's conventions in
``meta`` (``format``, ``frame_base``, ``units``, ``column_map``, ``pixel_size_nm`` when pixels
were converted, ...). Options common to most formats: ``pixel_size_nm`` (needed whenever a
file stores coordinates in camera pixels), ``units`` (length unit of columns whose unit the
file does not state or that the reader does not know), ``frame_base`` (number of the file's
first frame, overriding the format's convention).

``"thunderstorm"``
    The CSV written by the ThunderSTORM ImageJ plugin, plain or gzip-compressed (detected from
    the gzip magic bytes, not the file name). Header names carry their unit in brackets, e.g.
    ``"x [nm]"``. Recognised columns (names are matched case-insensitively, units come from the brackets):

    - ``x``, ``y``, ``z`` -> ``x_nm``, ``y_nm``, ``z_nm``; unit nm, um/µm (x 1000) or px
      (x ``pixel_size_nm``, which must then be given)
    - ``frame`` -> ``frame``, made 0-based (ThunderSTORM counts frames from 1)
    - ``intensity [photon]`` -> ``photons``; ``offset [photon]`` -> ``background``
    - ``sigma`` -> ``sigma_nm``; ``uncertainty_xy`` (else ``uncertainty``) -> ``precision_nm``

    Other columns (``id``, ``bkgstd``, ``chi2``, ``sigma1``, ``uncertainty_z``, ...) are
    listed in ``meta["columns_in_file"]`` but not kept. ``intensity`` and ``offset`` are only
    mapped when their unit is ``photon``; in any other unit (ADU, counts) they are left out
    and named in ``meta["skipped_columns"]``. Options: ``pixel_size_nm``, ``units``,
    ``frame_base`` (default 1).

``"elyra"`` (:mod:`chromarate.io.formats.elyra`)
    Zeiss Elyra/ZEN tab-separated export (``Position X [nm]``, ``First Frame``, ``Number
    Photons``, ``Precision [nm]``, ``Channel``, ...; Latin-1 metadata after a NUL byte is
    kept in ``meta["elyra_metadata"]``). nm; frames 1-based (``First Frame``). Options:
    ``channel``, ``frame_base``, ``pixel_size_nm``, ``units``.

``"nanoimager"`` (:mod:`chromarate.io.formats.nanoimager`)
    ONI Nanoimager CSV (``Channel,Frame,X (nm),Y (nm),Z (nm),Photons,Background``). nm;
    frames 0-based. An all-zero ``Z`` is dropped. Options: ``channel``, ``frame_base``,
    ``pixel_size_nm``, ``units``.

``"nstorm"`` (:mod:`chromarate.io.formats.nstorm`)
    Nikon N-STORM tab-separated molecule list (``Channel Name``, ``X``, ``Y``, ``Xc``,
    ``Yc``, ..., ``Frame``, ``Photons``, ``Lateral Localization Accuracy``). nm; the
    drift-corrected ``Xc``/``Yc``/``Zc`` are preferred (``meta["coordinates"]``); frames
    1-based. Options: ``channel``, ``drift_corrected``, ``frame_base``, ``units``,
    ``pixel_size_nm``.

``"rapidstorm"`` (:mod:`chromarate.io.formats.rapidstorm`)
    rapidSTORM whitespace-separated text with a ``# <localizations><field identifier=...
    unit=... />`` XML header; units are read from the header (nanometer, micrometer, meter;
    pixel with ``pixel_size_nm``; others refused unless ``units=`` is given). Frames 0-based.
    Track files (nested ``<localizations>``) give one localization per track, or every
    point with ``tracks="points"``. Options: ``pixel_size_nm``, ``units``, ``frame_base``,
    ``tracks``.

``"picasso"``, ``"smap"``, ``"decode"``, ``"smlm"`` (:mod:`chromarate.io.formats`)
    Binary formats: Picasso HDF5 + YAML sidecar, SMAP ``_sml.mat``, DECODE HDF5, and the
    ``.smlm`` zip of smlm.ai, Locan's ``.asdf``; see each module for units, frame base and options. A module
    that is missing or fails to import (e.g. a missing optional dependency) makes its
    format unavailable without affecting the others.

``"generic"`` (:mod:`chromarate.io.formats.generic`)
    Any CSV/TSV/semicolon/whitespace table, optionally gzipped, with
    ``columns={"x_nm": "X", "y_nm": "Y", "frame": "t", ...}`` (canonical -> file column),
    ``units="nm" | "um" | "px"`` (required; ``"px"`` with ``pixel_size_nm``),
    ``frame_base`` (default 0), ``delimiter`` and ``decimal`` (sniffed by default).

``"auto"`` (default)
    Detects the format from the file's content (never its name), trying in order: the
    binary formats by their signatures (``smlm``, ``smap``, ``decode``, ``picasso``), then
    the text formats by their header line (``rapidstorm``, ``elyra``, ``nstorm``,
    ``nanoimager``, ``thunderstorm``), and last ``generic`` -- only for a table whose header
    names are all canonical (``x_nm``, ``y_nm``, ...), read as nm with 0-based frames. Any
    other table must be read with ``format="generic"``.

Every failure to read a file raises :class:`~chromarate.errors.InputFormatError` whose
message names the file, the column and line where it applies, and what was expected.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import importlib
import io
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ChromarateError, ConfigError, InputFormatError
from chromarate.io._atomic import atomic_binary as _atomic_binary
from chromarate.io._options import check_frame_base as _check_frame_base
from chromarate.io._options import check_options as _check_options
from chromarate.io._options import clean as _clean
from chromarate.io._options import positive_pixel_size as _check_pixel_size
from chromarate.io._textscan import check_last_line as _check_last_line
from chromarate.io._textscan import gzip_error as _gzip_error
from chromarate.io._textscan import scan_text_file as _scan_text_file

__all__ = ["read_localizations", "write_thunderstorm_csv", "SUPPORTED_FORMATS"]

#: Formats :func:`read_localizations` understands (besides ``"auto"``).
SUPPORTED_FORMATS = (
    "thunderstorm", "elyra", "nanoimager", "nstorm", "rapidstorm",
    "picasso", "smap", "decode", "smlm", "asdf", "generic",
)

_GZIP_MAGIC = b"\x1f\x8b"
_HEAD_BYTES = 1 << 20  # the header line must fit in the first MiB
_NA_TOKENS = ["", "NaN", "nan", "NAN", "NA", "N/A", "null", "NULL"]

# Length units: nanometres per unit; None marks camera pixels (needs pixel_size_nm).
_LENGTH_UNITS: dict[str, float | None] = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "nanometres": 1.0,
    "um": 1000.0,
    "\u00b5m": 1000.0,  # micro sign
    "\u03bcm": 1000.0,  # greek mu
    "micron": 1000.0,
    "microns": 1000.0,
    "micrometer": 1000.0,
    "micrometers": 1000.0,
    "micrometre": 1000.0,
    "micrometres": 1000.0,
    "px": None,
    "pixel": None,
    "pixels": None,
}
_PHOTON_UNITS = {"photon", "photons"}

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
_TS_OPTIONS = ("pixel_size_nm", "units", "frame_base")

_HEADER_RE = re.compile(r"^(?P<name>.*?)\s*(?:\[(?P<unit>[^\]]*)\])?\s*$", re.DOTALL)


# --------------------------------------------------------------------------- public API


def read_localizations(path: str | os.PathLike, format: str = "auto", **options: Any) -> Localizations:
    """Read a localization file into a canonical table in nanometres.

    Parameters
    ----------
    path : str or os.PathLike
        The localization file, plain or gzip-compressed.
    format : str, optional
        ``"auto"`` (default) detects the format from the file's content; or one of
        :data:`SUPPORTED_FORMATS` (see the module docstring for each format's units, frame
        base and options). Tables of no known format are read with ``format="generic"``,
        ``columns={"x_nm": ..., "y_nm": ...}`` and ``units=...``.
    **options
        Format options (each format's module documents its own). For ``"thunderstorm"``:

        pixel_size_nm : float, optional
            Camera pixel size used to convert columns in pixels (``[px]``) to nm. Columns in
            pixels are refused without it.
        units : {"nm", "um", "px"}, optional
            Unit of length columns whose header states none (e.g. ``"x"``); it never
            overrides a unit stated in the header. Unitless coordinates are refused without it.
        frame_base : int, optional
            Number of the first frame in the file (default 1, as ThunderSTORM writes);
            frames are returned 0-based.

    Returns
    -------
    Localizations
        ``table`` with float64 ``x_nm``, ``y_nm`` and, when present, ``z_nm``,
        ``photons``, ``precision_nm``, ``sigma_nm``, ``background``, and int64 0-based
        ``frame``; ``meta`` with ``source``, ``format``, ``pixel_size_nm`` (None unless a
        pixel conversion was made), ``frame_base``, ``n_rows``, ``columns_in_file``,
        ``column_map`` (canonical -> file column), ``units`` and ``compressed``.

    Raises
    ------
    InputFormatError
        The file is missing, empty, not a recognised format, or has missing, duplicated,
        non-numeric or non-finite coordinate columns, unknown or missing units, negative
        precisions, or is a truncated gzip stream. The message names the file.
    ConfigError
        An option has an invalid value (e.g. ``pixel_size_nm=-1``).
    TypeError
        An option the format does not know was passed.

    Examples
    --------
    >>> locs = read_localizations("cell_01.csv")  # doctest: +SKIP
    >>> locs.table[["x_nm", "y_nm", "frame"]].head()  # doctest: +SKIP
    >>> read_localizations("cell_01_px.csv", pixel_size_nm=108.0)  # doctest: +SKIP
    >>> read_localizations("table.tsv", format="generic", columns={"x_nm": "X", "y_nm": "Y"},
    ...                    units="um")  # doctest: +SKIP
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if not isinstance(format, str):
        raise TypeError(f"format must be a str, not {type(format).__name__}")
    path = Path(path)
    fmt = format.strip().lower()
    if fmt != "auto" and fmt not in SUPPORTED_FORMATS:
        raise InputFormatError(
            f"unknown localization format {format!r}; expected 'auto' or one of "
            f"{', '.join(repr(f) for f in SUPPORTED_FORMATS)}",
            path=path,
        )
    if fmt == "auto":
        fmt = _detect_format(path, _sniff(path))
    entry = _load_format(fmt)
    if entry is None:
        raise InputFormatError(
            f"format {fmt!r} is not available in this installation ({_UNAVAILABLE.get(fmt, 'no reader')}); "
            f"available formats: {', '.join(_available())}",
            path=path,
        )
    return _call_reader(entry, path, options)


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
        The path written.

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

    with _atomic_binary(path) as raw:
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


# --------------------------------------------------------------------------- file head


@dataclass(frozen=True)
class _Head:
    """The first line of a (decompressed) text file and how to open the file."""

    gzipped: bool
    header_line: str
    header_only: bool  # the file holds nothing after its first line


def _read_head(path: Path) -> _Head:
    """Open ``path``, check that it is a non-empty UTF-8 text file and return its first line."""
    gzipped = _read_start(path, 2) == _GZIP_MAGIC

    try:
        with _open_binary(path, gzipped) as fh:
            chunk = fh.read(_HEAD_BYTES + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise _gzip_error(path, exc) if gzipped else InputFormatError(
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
        codecs.getincrementaldecoder("utf-8")("strict").decode(chunk[:_HEAD_BYTES], final=False)
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"{what} is not UTF-8 text (invalid byte at offset {exc.start}); expected a text "
            "table such as a ThunderSTORM CSV",
            path=path,
        ) from None

    ends = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
    if not ends:
        if len(chunk) > _HEAD_BYTES:
            raise InputFormatError(
                f"no line break in the first {_HEAD_BYTES} bytes; expected a text table with "
                "a header line",
                path=path,
            )
        return _Head(gzipped, _decode_header(chunk, path), header_only=True)
    end = min(ends)
    rest = chunk[end:]
    header_only = rest.strip(b" \t\r\n") == b"" and len(chunk) <= _HEAD_BYTES
    return _Head(gzipped, _decode_header(chunk[:end], path), header_only=header_only)


def _decode_header(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # pragma: no cover - caught by the chunk check
        raise InputFormatError(f"header is not UTF-8 text (byte {exc.start})", path=path) from None


def _open_binary(path: Path, gzipped: bool):
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


# --------------------------------------------------------------------------- header parsing


@dataclass(frozen=True)
class _Column:
    index: int  # 0-based position in the file
    raw: str  # header text as in the file (quotes removed)
    name: str  # lower-case name without unit
    unit: str | None  # text in brackets, stripped; None when absent


def _split_header(line: str, path: Path) -> list[str]:
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


def _foreign_delimiter(line: str, fields: list[str]) -> str | None:
    if len(fields) <= 1:
        for delim, label in ((";", "';' (semicolon)"), ("\t", "tab"), ("|", "'|'")):
            if delim in line:
                return label
    return None


_SNIFF_BYTES = 1 << 20  # the first MiB is what detect() functions see
# auto-detection order: binary signatures first, then text headers, generic (canonical) last
_DETECT_ORDER = (
    "smlm", "smap", "decode", "picasso", "asdf",
    "rapidstorm", "elyra", "nstorm", "nanoimager", "thunderstorm", "generic",
)
_FORMAT_MODULES = {
    name: f"chromarate.io.formats.{name}"
    for name in ("elyra", "nanoimager", "nstorm", "rapidstorm", "generic", "picasso", "smap", "decode", "smlm", "asdf")
}
_BINARY_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"MATLAB", "a MATLAB .mat file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"#ASDF", "an ASDF file (locan's own format)"),
)


@dataclass(frozen=True)
class _Format:
    """One entry of the format registry."""

    name: str
    detect: Callable[[Path, bytes], bool]
    read: Callable[..., Localizations]


_LOADED: dict[str, _Format | None] = {}
_UNAVAILABLE: dict[str, str] = {}


def _load_format(name: str) -> _Format | None:
    """The registry entry of ``name``; None when its module is missing or fails to import."""
    if name in _LOADED:
        return _LOADED[name]
    entry: _Format | None
    if name == "thunderstorm":
        entry = _Format("thunderstorm", _detect_thunderstorm, _read_thunderstorm_path)
    else:
        try:
            module = importlib.import_module(_FORMAT_MODULES[name])
            entry = _Format(name, module.detect, module.read)
            declared = getattr(module, "FORMAT", name)
            if declared != name:
                raise ImportError(f"module {module.__name__} declares FORMAT={declared!r}")
        except Exception as exc:  # noqa: BLE001 - a broken reader must not break the others
            entry = None
            _UNAVAILABLE[name] = f"{type(exc).__name__}: {exc}"
    _LOADED[name] = entry
    return entry


def _available() -> list[str]:
    return [f for f in SUPPORTED_FORMATS if _load_format(f) is not None]


def _sniff(path: Path) -> bytes:
    """The first raw bytes of ``path`` (not decompressed), after the basic file checks."""
    return _read_start(path, _SNIFF_BYTES)


def _read_start(path: Path, n: int) -> bytes:
    """The first ``n`` raw bytes of ``path``; refuses a directory, a missing or empty file."""
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


def _detect_format(path: Path, raw: bytes) -> str:
    """Name of the first format in :data:`_DETECT_ORDER` whose ``detect`` accepts the file."""
    for name in _DETECT_ORDER:
        entry = _load_format(name)
        if entry is None:
            continue
        try:
            hit = bool(entry.detect(path, raw))
        except Exception:  # noqa: BLE001 - a detector that fails just does not claim the file
            hit = False
        if hit:
            return name
    _raise_undetected(path, raw)
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_undetected(path: Path, raw: bytes) -> None:
    unavailable = [f"{n} ({why})" for n, why in _UNAVAILABLE.items()]
    missing = f"; unavailable here: {'; '.join(unavailable)}" if unavailable else ""
    for magic, what in _BINARY_SIGNATURES:
        if raw.startswith(magic):
            raise InputFormatError(
                f"{what} that no localization reader recognises; supported formats: "
                f"{', '.join(SUPPORTED_FORMATS)}{missing}",
                path=path,
            )
    head = _read_head(path)  # refuses binary data, non-UTF-8 text, broken gzip
    fields = _split_header(head.header_line, path)
    delim = _foreign_delimiter(head.header_line, fields)
    if delim:
        raise InputFormatError(
            f"the header is separated by {delim}; expected a comma-separated ThunderSTORM CSV "
            '(header like "id","frame","x [nm]","y [nm]",...) or another supported format; '
            'read other tables with format="generic", columns={"x_nm": ..., "y_nm": ...}, '
            'units="nm" (or "um", "px")',
            path=path,
        )
    shown = head.header_line[:200] + ("..." if len(head.header_line) > 200 else "")
    raise InputFormatError(
        f"not a recognised localization format (header line: {shown!r}); supported formats: "
        f"{', '.join(SUPPORTED_FORMATS)}{missing}; for another table pass "
        'format="generic", columns={"x_nm": "<x column>", "y_nm": "<y column>", ...} and '
        'units="nm" (or "um", or "px" with pixel_size_nm=...)',
        path=path,
    )


def _call_reader(entry: _Format, path: Path, options: dict[str, Any]) -> Localizations:
    """Run a reader; unexpected low-level errors on bad content become InputFormatError."""
    try:
        return entry.read(path, **options)
    except (ChromarateError, TypeError, MemoryError, KeyboardInterrupt):
        raise
    except (ValueError, LookupError, OSError, EOFError, zlib.error, OverflowError, RecursionError) as exc:
        raise InputFormatError(
            f"cannot read the file as format {entry.name!r} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]})",
            path=path,
        ) from exc


def _detect_thunderstorm(path: Path, raw: bytes) -> bool:
    """A comma-separated header in ThunderSTORM's style.

    ThunderSTORM writes lower-case names, with the unit in brackets where there is one;
    "Frame" or "X (nm)" (other vendors) must not be taken for it. A header is taken when a
    column has a bracketed unit, or it names both x and y, or all its names are ThunderSTORM
    names (e.g. a unitless "x,y" table, refused later with a hint on units=).
    """
    data = raw
    if data[:2] == _GZIP_MAGIC:
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, _SNIFF_BYTES)
        except zlib.error:
            return False
    line_bytes = re.split(rb"\r|\n", data, maxsplit=1)[0]
    if b"\x00" in line_bytes:
        return False
    line = line_bytes.decode("utf-8-sig", errors="replace")
    try:
        fields = _split_header(line, path)
    except InputFormatError:
        return False
    cols = _parse_columns(fields)
    if not cols:
        return False
    bases = [c.raw.split("[")[0].strip() for c in cols]
    if any(c.unit is not None for c in cols):
        return True
    return {"x", "y"} <= set(bases) or all(b in _TS_KNOWN for b in bases)


def _read_thunderstorm_path(path: Path, **options: Any) -> Localizations:
    return _read_thunderstorm(path, _read_head(path), options)


# --------------------------------------------------------------------------- ThunderSTORM


def _read_thunderstorm(path: Path, head: _Head, options: dict[str, Any]) -> Localizations:
    _check_options(options, _TS_OPTIONS, "thunderstorm")
    pixel_size_nm = _check_pixel_size(options.get("pixel_size_nm"))
    units = _check_units_option(options.get("units"))
    frame_base = _check_frame_base(options.get("frame_base", 1))

    fields = _split_header(head.header_line, path)
    delim = _foreign_delimiter(head.header_line, fields)
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
    plan: dict[str, tuple[_Column, float]] = {}
    units_used: dict[str, str] = {}
    skipped: dict[str, str] = {}
    used_pixels = False
    for canonical, names in _TS_LENGTH_COLUMNS.items():
        col = next((by_name[n] for n in names if n in by_name), None)
        if col is None:
            continue
        scale, unit, is_px = _length_scale(col, units, pixel_size_nm, path)
        used_pixels |= is_px
        plan[canonical] = (col, scale)
        units_used[canonical] = unit
    for canonical, names in _TS_PHOTON_COLUMNS.items():
        col = next((by_name[n] for n in names if n in by_name), None)
        if col is None:
            continue
        if col.unit is not None and col.unit.lower() in _PHOTON_UNITS:
            plan[canonical] = (col, 1.0)
            units_used[canonical] = "photon"
        else:
            skipped[col.raw] = f"unit {col.unit!r} is not photon" if col.unit else "no unit (photon expected)"
    frame_col = by_name.get("frame")

    if head.header_only:
        raise InputFormatError("no localizations: the file has a header line but no data rows", path=path)

    used = [c for c, _ in plan.values()] + ([frame_col] if frame_col is not None else [])
    data = _read_table(path, head, columns, used)

    table: dict[str, np.ndarray] = {}
    for canonical, (col, scale) in plan.items():
        values = data[col.index].to_numpy(dtype=np.float64)
        if canonical in ("x_nm", "y_nm", "z_nm"):
            _check_finite(values, col, path, head)
        elif canonical in ("precision_nm", "sigma_nm"):
            _check_non_negative(values, col, path, head)
        table[canonical] = values * scale if scale != 1.0 else values
    if frame_col is not None:
        table["frame"] = _frames(data[frame_col.index].to_numpy(dtype=np.float64), frame_col, frame_base, path, head)

    ordered = {c: table[c] for c in CANONICAL_COLUMNS if c in table}
    frame_df = pd.DataFrame(ordered, copy=False)
    column_map = {c: plan[c][0].raw for c in CANONICAL_COLUMNS if c in plan}
    if frame_col is not None:
        column_map["frame"] = frame_col.raw
    meta: dict[str, Any] = {
        "source": str(path),
        "format": "thunderstorm",
        "pixel_size_nm": pixel_size_nm if used_pixels else None,
        "frame_base": frame_base,
        "n_rows": int(len(frame_df)),
        "columns_in_file": [c.raw for c in columns],
        "column_map": column_map,
        "units": units_used,
        "compressed": head.gzipped,
    }
    if skipped:
        meta["skipped_columns"] = skipped
    return Localizations(table=frame_df, meta=meta)


def _check_units_option(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in _LENGTH_UNITS:
        raise ConfigError(
            f"units must be one of 'nm', 'um', 'px' (length unit of unitless columns), got {value!r}"
        )
    return value.strip().lower()


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


def _length_scale(
    col: _Column, units: str | None, pixel_size_nm: float | None, path: Path
) -> tuple[float, str, bool]:
    """Return (nm per file unit, unit name, whether pixels were converted) for a length column."""
    if col.unit is None or col.unit == "":
        if units is None:
            raise InputFormatError(
                f'column "{col.raw}" has no unit in its header; pass units="nm" (or "um"; or '
                'units="px" together with pixel_size_nm=...) to state the unit of unitless '
                "length columns",
                path=path,
            )
        unit = units
    else:
        unit = col.unit.lower()
        if unit not in _LENGTH_UNITS:
            raise InputFormatError(
                f'unknown unit "{col.unit}" in column "{col.raw}"; expected a length unit: '
                "nm, um (µm) or px (with pixel_size_nm=...)",
                path=path,
            )
    factor = _LENGTH_UNITS[unit]
    if factor is None:
        if pixel_size_nm is None:
            raise InputFormatError(
                f'column "{col.raw}" is in camera pixels; pass pixel_size_nm=... to convert it '
                "to nanometres",
                path=path,
            )
        return pixel_size_nm, "px", True
    return factor, ("nm" if factor == 1.0 else "um"), False


def _read_table(path: Path, head: _Head, columns: list[_Column], used: list[_Column]) -> pd.DataFrame:
    """Parse the data rows with pandas' C engine; used columns as float64.

    First the decompressed size is checked against the read limit and the last line
    against the header (a file cut short is refused), see :mod:`chromarate.io._textscan`.
    """
    scan = _scan_text_file(path, head.gzipped)
    _check_last_line(scan.tail, len(columns), ",", path)
    dtype = {c.index: np.float64 for c in used}
    kwargs = dict(
        header=None, skiprows=1, sep=",", engine="c", dtype=dtype, encoding="utf-8",
        compression="gzip" if head.gzipped else None, na_values=_NA_TOKENS,
        keep_default_na=False, skip_blank_lines=True, low_memory=False,
    )
    try:
        data = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise InputFormatError("no localizations: the file has a header line but no data rows", path=path) from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start} of a block); expected a text table",
            path=path,
        ) from None
    except pd.errors.ParserError as exc:
        raise InputFormatError(f"malformed CSV: {_clean(exc)}", path=path) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _gzip_error(path, exc) from None
    except ValueError as exc:
        raise _non_numeric_error(path, head, used, exc) from None
    except OSError as exc:
        if head.gzipped:
            raise _gzip_error(path, exc) from None
        raise InputFormatError(f"cannot read the file: {exc}", path=path) from None
    except (OverflowError, csv.Error) as exc:  # pragma: no cover - defensive
        raise InputFormatError(f"malformed CSV: {_clean(exc)}", path=path) from None

    if len(data) == 0:
        raise InputFormatError("no localizations: the file has a header line but no data rows", path=path)
    if data.shape[1] != len(columns):
        raise InputFormatError(
            f"the first data row (line {_line_of_row(path, head, 0)}) has {data.shape[1]} "
            f"fields but the header names {len(columns)} columns; expected one field per "
            "header column, separated by commas",
            path=path,
        )
    return data


def _non_numeric_error(path: Path, head: _Head, used: list[_Column], exc: BaseException) -> InputFormatError:
    """Find the first value of a used column that is not a number, for a precise message."""
    try:
        text = pd.read_csv(
            path, header=None, skiprows=1, sep=",", engine="c", dtype=str, encoding="utf-8",
            compression="gzip" if head.gzipped else None, usecols=[c.index for c in used],
            na_values=_NA_TOKENS, keep_default_na=False, skip_blank_lines=True, low_memory=False,
        )
    except Exception:  # fall back to pandas' own message  # noqa: BLE001
        text = None
    if text is not None:
        best: tuple[int, _Column, str] | None = None
        for col in used:
            if col.index not in text.columns:
                continue
            s = text[col.index]
            num = pd.to_numeric(s, errors="coerce")
            bad = np.flatnonzero(num.isna().to_numpy() & s.notna().to_numpy())
            if bad.size and (best is None or bad[0] < best[0]):
                best = (int(bad[0]), col, str(s.iloc[bad[0]]))
        if best is not None:
            row, col, value = best
            shown = value if len(value) <= 40 else value[:40] + "..."
            return InputFormatError(
                f'non-numeric value {shown!r} in column "{col.raw}" at line '
                f"{_line_of_row(path, head, row)}; expected a number",
                path=path,
            )
    return InputFormatError(f"non-numeric value in a numeric column: {_clean(exc)}; expected numbers", path=path)


def _line_of_row(path: Path, head: _Head, row: int) -> int:
    """1-based line number in the file of data row ``row`` (blank lines are skipped, as pandas does)."""
    seen = -1
    line_no = 0
    try:
        with _open_binary(path, head.gzipped) as fh:
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


def _check_finite(values: np.ndarray, col: _Column, path: Path, head: _Head) -> None:
    i = _first_bad(~np.isfinite(values))
    if i is not None:
        what = "missing or NaN value" if np.isnan(values[i]) else f"infinite value {values[i]}"
        raise InputFormatError(
            f'{what} in coordinate column "{col.raw}" at line {_line_of_row(path, head, i)}; '
            "expected finite numbers",
            path=path,
        )


def _check_non_negative(values: np.ndarray, col: _Column, path: Path, head: _Head) -> None:
    with np.errstate(invalid="ignore"):
        i = _first_bad((values < 0) | np.isinf(values))
    if i is not None:
        kind = "negative" if values[i] < 0 else "infinite"
        raise InputFormatError(
            f'{kind} value {values[i]} in column "{col.raw}" at line '
            f"{_line_of_row(path, head, i)}; expected a finite, non-negative length",
            path=path,
        )


def _frames(values: np.ndarray, col: _Column, frame_base: int, path: Path, head: _Head) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < frame_base) | (values > 2.0**53)
    i = _first_bad(bad)
    if i is not None:
        raise InputFormatError(
            f'invalid frame number {values[i]} in column "{col.raw}" at line '
            f"{_line_of_row(path, head, i)}; expected integers >= {frame_base} (frames in "
            f"this file are counted from {frame_base}; pass frame_base= if they are not)",
            path=path,
        )
    return values.astype(np.int64) - frame_base


#: Readers by format name (the ThunderSTORM reader here; the others load lazily from
#: :mod:`chromarate.io.formats`, see :func:`_load_format`).
_READERS = {"thunderstorm": _read_thunderstorm_path}
