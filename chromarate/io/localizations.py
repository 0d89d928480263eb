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

``"thunderstorm"`` (:mod:`chromarate.io.formats.thunderstorm`)
    The CSV written by the ThunderSTORM ImageJ plugin, plain or gzip-compressed; header names
    carry their unit in brackets (``"x [nm]"``). ``x``, ``y``, ``z``, ``frame``,
    ``intensity [photon]``, ``offset [photon]``, ``sigma``, ``uncertainty_xy`` are mapped;
    frames are 1-based. Options: ``pixel_size_nm``, ``units``, ``frame_base`` (default 1).

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

Units
-----
Every text format converts length columns with the one unit table of
:mod:`chromarate.io._units` (nm, um/µm, mm, m; px with ``pixel_size_nm``), so a column unit is
accepted or refused the same way in every format.

Readers
-------
The formats are readers in :mod:`chromarate.io.registry` (one module per format under
:mod:`chromarate.io.formats`); :func:`read_localizations` only dispatches: it detects the
format (``format="auto"``), checks the options against those the reader declares, and
calls it. :func:`~chromarate.io.registry.register_reader` adds a format without changing
this module.

Every failure to read a file raises :class:`~chromarate.errors.InputFormatError` whose
message names the file, the column and line where it applies, and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, NoReturn

from chromarate._types import Localizations
from chromarate.errors import InputFormatError
from chromarate.io import registry
from chromarate.io._textscan import HEAD_BYTES, read_start, read_text_head, require_regular_file
from chromarate.io.formats._binary import open_hdf5
from chromarate.io.formats.thunderstorm import foreign_delimiter, header_fields
from chromarate.io.formats.thunderstorm import write_thunderstorm_csv, xy_table

__all__ = ["read_localizations", "write_thunderstorm_csv", "xy_table", "SUPPORTED_FORMATS"]

#: The built-in formats :func:`read_localizations` understands (besides ``"auto"``); formats
#: added with :func:`chromarate.io.registry.register_reader` are listed by
#: :func:`chromarate.io.registry.registered_formats`.
SUPPORTED_FORMATS = (
    "thunderstorm", "elyra", "nanoimager", "nstorm", "rapidstorm",
    "picasso", "smap", "decode", "smlm", "asdf", "generic",
)

# Containers that no reader claimed, described for the message.
_BINARY_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"MATLAB", "a MATLAB .mat file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"#ASDF", "an ASDF file (locan's own format)"),
)


def read_localizations(path: str | os.PathLike, format: str = "auto", *,
                       defaults: Mapping[str, Any] | None = None, **options: Any) -> Localizations:
    """Read a localization file into a canonical table in nanometres.

    Parameters
    ----------
    path : str or os.PathLike
        The localization file, plain or gzip-compressed.
    format : str, optional
        ``"auto"`` (default) detects the format from the file's content; or one of
        the registered formats (:func:`chromarate.io.registry.registered_formats`; see the
        module docstring for each built-in format's units, frame base and options).
        Tables of no known format are read with ``format="generic"``,
        ``columns={"x_nm": ..., "y_nm": ...}`` and ``units=...``.
    defaults : mapping, optional
        Options for what a file leaves open (a batch's ``units`` and ``pixel_size_nm``,
        ``read`` of the pipeline config): the file is read without them first, and each is
        added only once the reader refuses the file asking for it (``pass units=...``,
        ``pass pixel_size_nm=...``), so they never replace what a file states (a unit in
        its header, a Picasso YAML's or a DECODE file's pixel size). Only options the
        format declares are passed (a reader taking any ``**options`` gets none), never one
        that ``options`` gives; None values are left out.
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
        The file is missing, empty, a folder, FIFO, socket or device (refused before it is
        opened), not a recognised format, or has missing, duplicated,
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
    known = registry.registered_formats()
    if fmt != "auto" and fmt not in known:
        raise InputFormatError(
            f"unknown localization format {format!r}; expected 'auto' or one of "
            f"{', '.join(repr(f) for f in known)}",
            path=path,
        )
    # a folder, FIFO, socket or device is refused here, from its stat, before any reader
    # opens it (a FIFO would block the open, a device might never end)
    require_regular_file(path)
    if fmt == "auto":
        head = read_start(path, HEAD_BYTES)
        fmt = registry.detect_format(path, head) or _raise_undetected(path, head)
    reader = registry.get_reader(fmt)
    if reader is None:
        why = registry.unavailable_formats().get(fmt, "no reader")
        raise InputFormatError(
            f"format {fmt!r} is not available in this installation ({why}); "
            f"available formats: {', '.join(registry.available_formats())}",
            path=path,
        )
    accepted = registry.accepted_options(reader) if defaults else None
    extra = {k: v for k, v in (defaults or {}).items()
             if v is not None and accepted is not None and k in accepted and k not in options}
    given = dict(options)
    while True:  # fill only what the file leaves open: each default once the reader asks for it
        try:
            return registry.read_with(reader, path, given)
        except InputFormatError as exc:
            asked = [key for key in extra if f"pass {key}=" in exc.message]
            if not asked:
                raise
            given.update({key: extra.pop(key) for key in asked})


def _raise_undetected(path: Path, raw: bytes) -> NoReturn:
    """Raise the error for a file no reader claims, saying what it looks like."""
    unavailable = [f"{n} ({why})" for n, why in registry.unavailable_formats().items()]
    formats = ", ".join(registry.registered_formats())
    missing = f"; unavailable here: {'; '.join(unavailable)}" if unavailable else ""
    for magic, what in _BINARY_SIGNATURES:
        if raw.startswith(magic):
            if magic == _BINARY_SIGNATURES[0][0]:
                # one h5py cannot open is named as truncated or corrupt (open_hdf5 says so)
                with open_hdf5(path, "Picasso, DECODE or SMAP HDF5"):
                    pass
            raise InputFormatError(
                f"{what} that no localization reader recognises; supported formats: "
                f"{formats}{missing}",
                path=path,
            )
    head = read_text_head(path)  # refuses binary data, non-UTF-8 text, broken gzip
    fields = header_fields(head.header_line, path)
    delim = foreign_delimiter(head.header_line, fields)
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
        f"{formats}{missing}; for another table pass "
        'format="generic", columns={"x_nm": "<x column>", "y_nm": "<y column>", ...} and '
        'units="nm" (or "um", or "px" with pixel_size_nm=...)',
        path=path,
    )
