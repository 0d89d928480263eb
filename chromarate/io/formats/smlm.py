"""The SMLM file format (``.smlm``): a zip archive with ``manifest.json`` and binary tables.

Layout
------
The archive (specification 0.2 of the SMLM file format, as used by ShareLoc.XYZ and locan)
holds ``manifest.json`` at its root and one or more table files. The manifest's ``formats``
maps a format name to its description -- ``type: "table"``, ``mode: "binary"``, ``headers``
(column names), ``dtype`` (``uint8`` ... ``float64``), ``shape`` (values per row and column,
normally 1) and ``units`` -- and its ``files`` list gives, per table file, its ``name`` in
the archive, its ``format``, ``channel``, ``rows`` and per-column ``offset`` values. A binary
table stores its rows one after another, each row being the columns' values in header order,
little-endian and packed (no padding): the row size is the sum of the columns' sizes. A value
is ``stored + offset[column]`` (the specification's way of storing signed values in unsigned
types).

Column mapping (header names are matched case-insensitively)
------------------------------------------------------------
- ``x``/``position_x``, ``y``/``position_y``, ``z``/``position_z`` -> ``x_nm, y_nm, z_nm``
- ``frame`` -> ``frame`` (see frame base below)
- ``x_precision``+``y_precision`` or ``uncertainty_x``+``uncertainty_y`` (mean), else
  ``uncertainty_xy``/``uncertainty``/``precision``/``localization_precision`` -> ``precision_nm``
- ``psf_sigma_x``+``psf_sigma_y`` or ``sigma_x``+``sigma_y`` (mean), else ``sigma``/``psf_sigma``
  -> ``sigma_nm``
- ``intensity`` -> ``photons`` and ``background``/``local_background``/``bg`` ->
  ``background``, only when their unit is ``photon``; otherwise they are named in
  ``meta["skipped_columns"]``.

Units
-----
Length columns are converted with their unit from the manifest: nm, um (x 1000),
angstrom (x 0.1), mm, m, or px (x ``pixel_size_nm``, taken from the option or from a
``pixel_size``/``pixelSize`` entry of the file info or manifest; refused without one). An empty
unit means nm -- the specification's default for lengths -- unless the locan metadata block
(``locdata_meta.unit``) states another; what was assumed is recorded in ``meta["units"]``.

Frame base
----------
The specification does not fix where frame numbers start. Files written by Python tools
(locan, ShareLoc) count from 0 -- the sample file's frames are 0 -- so ``frame_base`` defaults
to 0; pass ``frame_base=1`` for a 1-based file. Non-integer frames are not kept.

Options
-------
pixel_size_nm : float, optional
    Pixel size for length columns in px (overrides a size given in the manifest).
frame_base : int, optional
    First frame number in the file (default 0).
channel : str, optional
    Read only the table(s) of this channel. Required when the archive holds tables of more
    than one channel; tables of one channel (tiles) are concatenated.

Every failure raises :class:`~chromarate.errors.InputFormatError` naming the file: not a zip,
truncated or corrupt archive, no ``manifest.json``, invalid JSON, a manifest that misses or
contradicts required fields, a table file that is absent or whose size does not match
``rows`` x row size, text tables (not supported), NaN/inf coordinates.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import InputFormatError
from chromarate.io._zipdir import MAX_ZIP_DIRECTORY_BYTES, check_zip_directory, zip_directory_size
from chromarate.io.limits import check_decoded_size

from . import _binary as b
from ._docs import BINARY, reader_doc
from chromarate.io.formats._smlm_columns import ColumnContext, canonical_columns

__all__ = ["FORMAT", "detect", "read"]

#: Name of the format.
FORMAT = "smlm"

_WHAT = "SMLM (.smlm zip)"
_MANIFEST = "manifest.json"
#: Largest manifest.json read (decompressed bytes, checked from the zip header before it is
#: inflated). Real manifests are a few kB (one entry per table file and some metadata; the
#: locan sample's is 2.6 kB); JSON builds up to ~24 bytes of Python objects per byte of text
#: (``[{},{},...]``), so 1 MiB bounds the decoded manifest to some 25 MB, where 64 MiB let
#: a 58 KB archive decode to 1.8 GB of objects.
_MAX_MANIFEST = 1 << 20
_MEMBER_BLOCK = 1 << 20  # bytes decompressed at a time

_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in (
    "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")}


def detect(path: Path, head: bytes) -> bool:
    """True for a zip archive with ``manifest.json`` at its root that describes SMLM tables
    (or that cannot be parsed, so that reading reports the damage)."""
    try:
        if head[:4] not in b.ZIP_MAGICS:
            return False
        with open(path, "rb") as fh:
            found = zip_directory_size(fh)
        if found is not None and found[1] > MAX_ZIP_DIRECTORY_BYTES:
            return True  # never parsed here; read() says the directory is too large
        with zipfile.ZipFile(Path(path)) as zf:
            try:
                info = zf.getinfo(_MANIFEST)
            except KeyError:
                return False
            if info.file_size > _MAX_MANIFEST:
                return True  # never inflated here; read() says the manifest is too large
            try:
                manifest = json.loads(zf.read(info).decode("utf-8-sig"))
            except Exception:  # noqa: BLE001 - damaged manifest: let read() explain
                return True
            return isinstance(manifest, dict) and ("formats" in manifest or "files" in manifest)
    except Exception:  # noqa: BLE001 - detection never raises
        return False


@reader_doc(BINARY, frame_base=0, channel=("str, optional", "Read only the table(s) of this channel."))
def read(path: str | Path, *, pixel_size_nm: float | None = None, frame_base: int = 0,
         channel: Any = None) -> Localizations:
    """Read an SMLM ``.smlm`` archive (see the module docstring)."""
    path = Path(path)
    option_px = b.check_pixel_size(pixel_size_nm)
    frame_base = b.check_frame_base(frame_base)
    if channel is not None:
        channel = str(channel)
    b.check_regular_file(path, _WHAT)
    with open(path, "rb") as fh:
        check_zip_directory(fh, path, "an SMLM file")

    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        head = b.read_head(path, 4)
        what = (
            "a truncated or corrupt zip archive" if head[:4] in b.ZIP_MAGICS else "not a zip archive"
        )
        raise InputFormatError(
            f"{what} ({exc}); expected an SMLM file: a zip archive holding manifest.json",
            path=path,
        ) from None
    except OSError as exc:
        raise InputFormatError(f"cannot open the file: {exc.strerror or exc}", path=path) from None

    with zf:
        manifest = _manifest(zf, path)
        tables = _select_tables(manifest, channel, path)
        px_manifest = _manifest_pixel_size(manifest, tables)
        px = option_px if option_px is not None else px_manifest
        locan_units = _locan_units(manifest)
        layouts = [_table_layout(manifest, info, path) for info in tables]
        _check_tables_size(layouts, path)
        parsed = [_read_table(zf, layout, info, path) for layout, info in zip(layouts, tables)]

    per_table = []
    ctx = ColumnContext(path=path, pixel_size=px, locan_units=locan_units, frame_base=frame_base)
    for info, (headers, units, values, _rows) in zip(tables, parsed):
        per_table.append(canonical_columns(info, headers, units, values, ctx))

    common = [c for c in CANONICAL_COLUMNS if all(c in t for t in per_table)]
    for c in CANONICAL_COLUMNS:
        if c not in common and any(c in t for t in per_table):
            ctx.dropped[c] = "present in only some of the tables; not kept"
    columns = {c: np.concatenate([t[c] for t in per_table]) for c in common}
    if "x_nm" not in columns or "y_nm" not in columns:  # pragma: no cover - _canonical ensures it
        raise InputFormatError("no x/y columns in the tables", path=path)
    if len(columns["x_nm"]) == 0:
        raise InputFormatError("contains no localizations: the table(s) have 0 rows", path=path)
    if "z_nm" in columns and b.z_is_trivial(columns["z_nm"]):
        del columns["z_nm"]
        ctx.dropped["z"] = "0 in every row (a 2-D table); not kept"

    extra = {
        "tables": [
            {"name": t.get("name"), "channel": t.get("channel"), "rows": p[3]}
            for t, p in zip(tables, parsed)
        ],
        "format_version": manifest.get("format_version"),
        "manifest_name": manifest.get("name"),
    }
    return b.localizations(
        path, columns, fmt=FORMAT, pixel_size_nm=px if ctx.used_pixels else None, frame_base=frame_base,
        columns_in_file=parsed[0][0],
        column_map={c: ctx.column_map[c] for c in columns if c in ctx.column_map},
        units={c: ctx.units[c] for c in columns if c in ctx.units}, extra=extra, skipped=ctx.skipped,
        dropped=ctx.dropped,
    )


# --------------------------------------------------------------------------- manifest


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        info = zf.getinfo(_MANIFEST)
    except KeyError:
        names = zf.namelist()
        shown = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
        raise InputFormatError(
            f"no manifest.json in the zip archive (found: {shown or 'nothing'}); expected an "
            "SMLM file whose manifest.json describes its tables",
            path=path,
        ) from None
    if info.file_size > _MAX_MANIFEST:  # from the zip header, before inflating anything
        raise InputFormatError(
            f"manifest.json is {info.file_size} bytes (decompressed); expected a small JSON "
            f"text of at most {_MAX_MANIFEST} bytes (real manifests are a few kB)", path=path
        )
    raw = _read_member(zf, info.filename, path, limit=_MAX_MANIFEST,
                       what="allowed for manifest.json")
    try:
        manifest = json.loads(bytes(raw).decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"manifest.json is not UTF-8 text (invalid byte at offset {exc.start})", path=path
        ) from None
    except json.JSONDecodeError as exc:
        raise InputFormatError(
            f"manifest.json is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno})",
            path=path,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise InputFormatError(f"manifest.json is not valid JSON ({exc})", path=path) from None
    if not isinstance(manifest, dict):
        raise InputFormatError(
            f"manifest.json holds a JSON {type(manifest).__name__}; expected an object with "
            "'formats' and 'files'",
            path=path,
        )
    for key, kind in (("formats", dict), ("files", list)):
        if not isinstance(manifest.get(key), kind):
            raise InputFormatError(
                f"manifest.json has no valid '{key}' entry (expected a JSON "
                f"{'object' if kind is dict else 'list'})",
                path=path,
            )
    return manifest


def _read_member(zf: zipfile.ZipFile, name: str, path: Path, *, limit: int,
                 what: str = "manifest.json declares for it") -> memoryview:
    """The member ``name`` decompressed into a buffer of ``limit`` bytes, streamed in blocks.

    Reading stops as soon as the member passes ``limit`` bytes (the size the manifest
    declares, or :data:`_MAX_MANIFEST`), whatever the zip headers say, so a member that
    inflates far beyond it never fills memory; the data is read straight into one buffer
    (no second copy). ``what`` names the limit in the message.

    Returns
    -------
    memoryview
        The member's bytes (possibly fewer than ``limit``).
    """
    try:
        buf = bytearray(limit)
        view = memoryview(buf)
        n = 0
        with zf.open(name) as fh:
            while n < limit:
                got = fh.readinto(view[n:n + _MEMBER_BLOCK])
                if not got:
                    break
                n += got
            if n == limit and fh.read(1):
                raise InputFormatError(
                    f"'{name}' in the zip archive inflates to more than the {limit} bytes "
                    f"{what}; the archive is corrupt or the manifest is wrong", path=path)
        return view[:n]
    except KeyError:
        raise InputFormatError(
            f"the manifest lists '{name}' but the zip archive has no such file", path=path
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputFormatError(
            f"cannot read '{name}' from the zip archive: truncated or corrupt ({exc})", path=path
        ) from None
    except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encryption
        raise InputFormatError(f"cannot read '{name}' from the zip archive: {exc}", path=path) from None


def _select_tables(manifest: dict[str, Any], channel: str | None, path: Path) -> list[dict[str, Any]]:
    tables = [f for f in manifest["files"] if isinstance(f, dict) and f.get("type", "table") == "table"]
    if not tables:
        raise InputFormatError(
            "manifest.json lists no table file; expected at least one localization table",
            path=path,
        )
    channels = []
    for t in tables:
        c = str(t.get("channel", "default"))
        if c not in channels:
            channels.append(c)
    if channel is not None:
        chosen = [t for t in tables if str(t.get("channel", "default")) == channel]
        if not chosen:
            raise InputFormatError(
                f"no table of channel {channel!r}; channels in this file: "
                f"{', '.join(repr(c) for c in channels)}",
                path=path,
            )
        return chosen
    if len(channels) > 1:
        raise InputFormatError(
            f"the file holds tables of {len(channels)} channels ({', '.join(repr(c) for c in channels)}); "
            "pass channel=... to choose one",
            path=path,
        )
    return tables


def _manifest_pixel_size(manifest: dict[str, Any], tables: list[dict[str, Any]]) -> float | None:
    for source in [*tables, manifest]:
        for key in ("pixel_size", "pixelSize", "pixel_size_nm", "pixelsize"):
            p = b.positive_number(source.get(key))
            if p is not None:
                return p
    return None


def _locan_units(manifest: dict[str, Any]) -> dict[str, str]:
    """Units that locan records in its metadata block, by lower-case property name."""
    out: dict[str, str] = {}
    block = manifest.get("locdata_meta")
    entries = block.get("unit") if isinstance(block, dict) else None
    if isinstance(entries, list):
        for e in entries:
            if isinstance(e, dict) and isinstance(e.get("property"), str) and isinstance(e.get("unit"), str):
                out[e["property"].strip().lower()] = e["unit"].strip()
    return out


# --------------------------------------------------------------------------- tables


def _listed(fmt: dict[str, Any], key: str, n: int, default: Any, where: str, path: Path) -> list[Any]:
    value = fmt.get(key)
    if value is None:
        return [default] * n
    if not isinstance(value, list) or len(value) != n:
        raise InputFormatError(
            f"{where}: '{key}' must be a list of {n} entries (one per header)", path=path
        )
    return value


def _count(value: Any) -> int | None:
    """A non-negative integer from an int or a numeric string (manifests use both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


@dataclass(frozen=True)
class _Layout:
    """One binary table as manifest.json describes it (nothing of it read yet)."""

    name: str
    headers: list[str]
    units: list[str]
    row_dtype: np.dtype
    rows: int

    @property
    def nbytes(self) -> int:
        """Bytes of the table file: rows x row size."""
        return self.rows * self.row_dtype.itemsize

    @property
    def decoded_bytes(self) -> int:
        """Memory reading the table takes: its bytes, then 16 bytes per scalar value (the
        float64 column, and its share of the canonical columns made of it)."""
        n_scalar = sum(self.row_dtype[h].shape == () for h in self.headers)
        return self.nbytes + self.rows * n_scalar * 16


def _table_layout(manifest: dict[str, Any], info: dict[str, Any], path: Path) -> _Layout:
    """The :class:`_Layout` of the table file ``info`` lists, checked against the manifest."""
    name = info.get("name")
    if not isinstance(name, str) or not name:
        raise InputFormatError("a table entry in manifest.json has no file 'name'", path=path)
    fmt_name = info.get("format")
    fmt = manifest["formats"].get(fmt_name) if isinstance(fmt_name, str) else None
    where = f"manifest.json format {fmt_name!r} of table '{name}'"
    if not isinstance(fmt, dict):
        raise InputFormatError(
            f"table '{name}' refers to format {fmt_name!r}, which manifest.json does not define "
            f"(defined: {', '.join(repr(k) for k in manifest['formats']) or 'none'})",
            path=path,
        )
    mode = fmt.get("mode", "binary")
    if mode != "binary":
        raise InputFormatError(
            f"{where} has mode {mode!r}; only binary SMLM tables are supported", path=path
        )
    headers = fmt.get("headers")
    if not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers):
        raise InputFormatError(f"{where}: 'headers' must be a non-empty list of names", path=path)
    n = len(headers)
    if len(set(headers)) != n:
        raise InputFormatError(f"{where}: duplicated header names", path=path)
    declared = fmt.get("columns")
    if declared is not None and _count(declared) != n:
        raise InputFormatError(
            f"{where}: 'columns' is {declared!r} but there are {n} headers", path=path
        )
    dtypes = _listed(fmt, "dtype", n, None, where, path)
    shapes = _listed(fmt, "shape", n, 1, where, path)
    units = [str(u) if u is not None else "" for u in _listed(fmt, "units", n, "", where, path)]

    fields = []
    for h, dt, shape in zip(headers, dtypes, shapes):
        np_dt = _DTYPES.get(str(dt).strip().lower()) if dt is not None else None
        if np_dt is None:
            raise InputFormatError(
                f"{where}: column '{h}' has dtype {dt!r}; expected one of {', '.join(_DTYPES)}",
                path=path,
            )
        dims = _shape(shape)
        if dims is None:
            raise InputFormatError(
                f"{where}: column '{h}' has shape {shape!r}; expected a positive integer or a "
                "list of them",
                path=path,
            )
        fields.append((h, np_dt, dims) if dims != (1,) else (h, np_dt))
    row_dtype = np.dtype(fields)  # packed: no alignment padding

    rows = _count(info.get("rows"))
    if rows is None:
        raise InputFormatError(
            f"table '{name}' has no valid 'rows' count in manifest.json (got {info.get('rows')!r})",
            path=path,
        )
    return _Layout(name, list(headers), units, row_dtype, rows)


def _check_tables_size(layouts: list[_Layout], path: Path) -> None:
    """Refuse tables whose decoded sizes, summed, pass the read limit -- before any is read.

    The tables are all held until they are joined, so the limit applies to their sum (a
    manifest listing one table file 25 times reads it 25 times).
    """
    total = sum(t.decoded_bytes for t in layouts)
    if len(layouts) == 1:
        t = layouts[0]
        what = (f"table '{t.name}' ({t.rows} rows of {t.row_dtype.itemsize} bytes, as "
                "manifest.json declares)")
    else:
        rows = sum(t.rows for t in layouts)
        names = {t.name for t in layouts}
        what = (f"the {len(layouts)} tables manifest.json lists ({rows} rows in all, from "
                f"{len(names)} distinct table file(s))")
    check_decoded_size(path, total, what)


def _read_table(
    zf: zipfile.ZipFile, layout: _Layout, info: dict[str, Any], path: Path
) -> tuple[list[str], list[str], dict[str, np.ndarray], int]:
    """(headers, units, column values with offsets applied, rows) of one binary table file
    (its size already checked, see :func:`_check_tables_size`)."""
    name, headers, row_dtype, rows = layout.name, layout.headers, layout.row_dtype, layout.rows
    expected = layout.nbytes
    raw = _read_member(zf, name, path, limit=expected)
    if len(raw) != expected:
        raise InputFormatError(
            f"table '{name}' holds {len(raw)} bytes but manifest.json describes {rows} rows of "
            f"{row_dtype.itemsize} bytes ({expected} bytes); the table is truncated or the "
            "manifest is wrong",
            path=path,
        )
    data = np.frombuffer(raw, dtype=row_dtype, count=rows)

    offsets = info.get("offset") or {}
    if not isinstance(offsets, dict):
        raise InputFormatError(f"table '{name}': 'offset' must be a JSON object", path=path)
    values: dict[str, np.ndarray] = {}
    for h in headers:
        if row_dtype[h].shape != ():
            continue  # image patches and other vector columns are not localization properties
        col = data[h].astype(np.float64)
        off = _number(offsets.get(h, 0))
        if off is None:
            raise InputFormatError(
                f"table '{name}': offset of column '{h}' is {offsets.get(h)!r}; expected a finite "
                "number",
                path=path,
            )
        values[h] = col + off if off != 0 else col
    return list(headers), layout.units, values, rows


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric string (None -> 0); None if it is not one."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, list):
        dims = [_count(v) for v in value]
        if not dims or any(d is None or d == 0 for d in dims):
            return None
        return tuple(dims)  # type: ignore[arg-type]
    d = _count(value)
    return None if d is None or d == 0 else (d,)
