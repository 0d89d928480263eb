"""Locan's ASDF localization files (``.asdf``).

Layout
------
Locan (``locan.save_asdf``) writes a :class:`LocData` as an ASDF file (Advanced Scientific Data
Format: a ``#ASDF 1.0.0`` line, a YAML tree, then binary blocks). The tree holds:

- ``columns``: the dataframe's column names (locan property names such as ``position_x``,
  ``position_y``, ``position_z``, ``frame``, ``intensity``, ``local_background``,
  ``uncertainty_x``, ``chi_square``, ``two_kernel_improvement``, ...);
- ``data``: one 2-D array, ``(rows, len(columns))``, the dataframe's values in column order
  (a single dtype, float32 in the public sample ``npc_gp210.asdf``);
- ``meta``: locan's metadata protobuf as a JSON string (``identifier``, ``source``, ``state``,
  ``history``, ``elementCount``, ``frameCount``, ``file``, ``creationTime``, ... and, when
  locan knows them, units: ``localizationProperties`` -- ``[{"name", "unit", "type"}]`` -- in
  newer locan versions, ``unit`` -- ``[{"property", "unit"}]`` -- in older ones);
- ``properties``: locan's summary properties of the whole set (centroid, counts, ...), not
  used here.

Column mapping
--------------
- ``position_x``, ``position_y``, ``position_z`` -> ``x_nm``, ``y_nm``, ``z_nm`` (a z that is 0
  in every row is dropped)
- ``frame`` -> ``frame`` (see frame base)
- ``uncertainty_x`` + ``uncertainty_y`` (mean), else ``uncertainty`` -> ``precision_nm``
- ``psf_sigma_x`` + ``psf_sigma_y`` (mean), else ``psf_sigma`` -> ``sigma_nm``
- ``intensity`` -> ``photons`` and ``local_background`` (else ``background``) ->
  ``background``, only when the locan metadata gives them the unit ``photon(s)``; otherwise
  they are named in ``meta["skipped_columns"]``. Locan keeps these values in the unit of the
  software that fitted them (rapidSTORM's amplitude, the source of ``npc_gp210.asdf``, is in
  A/D counts), so without a unit they are not taken for photons.

Other columns are listed in ``meta["columns_in_file"]`` but not kept.

Units
-----
Length columns use the unit the locan metadata states for them (nm, um, mm, m; px with
``pixel_size_nm``). Locan itself does not convert units: it keeps the values of the file it
loaded, and its loaders of nm-based formats (rapidSTORM, ThunderSTORM, Elyra, SMLM) record
``nm`` when they record anything. The public sample stores no units at all (its ``meta`` has
no ``localizationProperties``/``unit`` entries; its history says it was loaded from a
rapidSTORM file, which is in nm), so a length column without a stated unit is read as nm,
or in the unit given with ``units=``. What was used is recorded in ``meta["units"]``.

Frame base
----------
Locan keeps the frame numbers of the file it loaded; its own convention (Python tools,
rapidSTORM) is 0-based, so ``frame_base`` defaults to 0. Pass ``frame_base=1`` for data that
came from a 1-based source. Non-integer frames are not kept (``meta["dropped_columns"]``).

Options
-------
frame_base : int, optional
    First frame number in the file (default 0).
units : {"nm", "um", "px"}, optional
    Length unit of length columns whose unit the metadata does not state (default nm); it
    never overrides a stated unit.
pixel_size_nm : float, optional
    Pixel size in nm, needed when a length column is in pixels.

Reading needs the optional ``asdf`` package (``pip install asdf``); it is imported only when a
file is read. Every failure raises :class:`~chromarate.errors.InputFormatError` naming the
file: not an ASDF file, truncated or corrupt (including a checksum mismatch of the data
block), no ``data``/``columns`` in the tree, a data array whose shape does not match the
columns, missing ``position_x``/``position_y``, non-finite coordinates, no rows.
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from chromarate._types import Localizations
from chromarate._yaml_guard import MAX_YAML_BYTES, YamlLimitError, check_yaml_tree
from chromarate.errors import ChromarateError, InputFormatError

from chromarate.io._units import LENGTH_UNITS, PHOTON_UNITS, check_units
from chromarate.io.limits import check_decoded_size
from . import _binary as b
from ._docs import BINARY, reader_doc

__all__ = ["FORMAT", "detect", "read"]

#: Name of the format.
FORMAT = "asdf"

_WHAT = "locan ASDF (.asdf)"
_MAGIC = b"#ASDF"

_COORDS = {"x_nm": "position_x", "y_nm": "position_y", "z_nm": "position_z"}
_LENGTHS = (
    ("precision_nm", ("uncertainty_x", "uncertainty_y"), "uncertainty"),
    ("sigma_nm", ("psf_sigma_x", "psf_sigma_y"), "psf_sigma"),
)
_PHOTON_COLUMNS = {"photons": ("intensity",), "background": ("local_background", "background")}


def detect(path: Path, head: bytes) -> bool:
    """True for a file that starts with the ASDF signature ``#ASDF``."""
    try:
        return bytes(head[: len(_MAGIC)]) == _MAGIC
    except Exception:  # noqa: BLE001 - detection never raises
        return False


@reader_doc(BINARY, frame_base=0)
def read(path: str | Path, *, frame_base: int = 0, units: str | None = None,
         pixel_size_nm: float | None = None) -> Localizations:
    """Read a locan ASDF localization file (see the module docstring)."""
    path = Path(path)
    frame_base = b.check_frame_base(frame_base)
    units_option = check_units(units)
    pixel_size = b.check_pixel_size(pixel_size_nm)
    b.check_regular_file(path, _WHAT)
    if b.read_head(path, len(_MAGIC)) != _MAGIC:
        raise InputFormatError(
            "not an ASDF file (it does not start with '#ASDF'); expected a locan .asdf file",
            path=path,
        )
    asdf = _import_asdf(path)
    _check_tree_text(path)

    def check_lengths(columns: list[str], meta_raw: Any) -> None:
        """Refuse a length column the options cannot convert before the data block is read."""
        stated = _locan_units(_parse_meta(meta_raw))
        present = {c.lower(): c for c in columns}
        lengths = [n for n in _COORDS.values()] + [
            n for _, pair, single in _LENGTHS for n in (*pair, single)]
        for name in lengths:
            if name in present:
                _length_scale(present[name], stated, units_option, pixel_size, path)

    columns, data, meta_raw, writer, asdf_warnings = _load_tree(asdf, path, check_lengths)
    locan_meta = _parse_meta(meta_raw)
    stated_units = _locan_units(locan_meta)

    n = data.shape[0]
    if n == 0:
        raise InputFormatError("contains no localizations: the data array has 0 rows", path=path)
    by_name = {c.lower(): i for i, c in enumerate(columns)}

    column_map: dict[str, str] = {}
    units_used: dict[str, str] = {}
    skipped: dict[str, str] = {}
    dropped: dict[str, str] = {}
    used_pixels = False

    def length(canonical: str, name: str, coordinate: bool) -> np.ndarray:
        nonlocal used_pixels
        header = columns[by_name[name]]
        values = data[:, by_name[name]]
        where = f"column '{header}'"
        if coordinate:
            b.check_finite_coordinates(values, where, path)
        else:
            b.check_non_negative(values, where, path)
        scale, unit, is_px = _length_scale(header, stated_units, units_option, pixel_size, path)
        used_pixels |= is_px
        units_used.setdefault(canonical, unit)
        return values * scale if scale != 1.0 else values

    out: dict[str, np.ndarray] = {}
    for canonical, name in _COORDS.items():
        if name not in by_name:
            if canonical != "z_nm":
                raise InputFormatError(
                    f"no '{name}' column (columns: {', '.join(columns) or '(none)'}); expected "
                    "locan's position_x and position_y",
                    path=path,
                )
            continue
        out[canonical] = length(canonical, name, coordinate=True)
        column_map[canonical] = columns[by_name[name]]
    if "z_nm" in out and b.z_is_trivial(out["z_nm"]):
        del out["z_nm"], column_map["z_nm"], units_used["z_nm"]
        dropped["position_z"] = "0 in every row (a 2-D data set); not kept"

    for canonical, pair, single in _LENGTHS:
        if all(p in by_name for p in pair):
            out[canonical] = b.mean_of([length(canonical, p, coordinate=False) for p in pair])
            column_map[canonical] = f"mean({columns[by_name[pair[0]]]}, {columns[by_name[pair[1]]]})"
        elif single in by_name:
            out[canonical] = length(canonical, single, coordinate=False)
            column_map[canonical] = columns[by_name[single]]

    for canonical, names in _PHOTON_COLUMNS.items():
        name = next((c for c in names if c in by_name), None)
        if name is None:
            continue
        header = columns[by_name[name]]
        unit = stated_units.get(name, "")
        if unit.lower() in PHOTON_UNITS:
            out[canonical] = data[:, by_name[name]]
            column_map[canonical] = header
            units_used[canonical] = "photon"
        else:
            skipped[header] = (
                f"unit {unit!r} is not photon" if unit
                else "no unit in the locan metadata (photon expected)"
            )

    if "frame" in by_name:
        header = columns[by_name["frame"]]
        frames, reason = b.frames_zero_based(
            data[:, by_name["frame"]], frame_base, f"column '{header}'", path,
            hint=" (pass frame_base= if the data count frames differently)",
        )
        if frames is None:
            dropped[header] = reason  # type: ignore[assignment]
        else:
            out["frame"] = frames
            column_map["frame"] = header

    extra: dict[str, Any] = {"writer": writer, "locan_meta": locan_meta}
    if asdf_warnings:
        extra["asdf_warnings"] = asdf_warnings
    return b.localizations(
        path, out, fmt=FORMAT, pixel_size_nm=pixel_size if used_pixels else None, frame_base=frame_base,
        columns_in_file=list(columns), column_map={c: column_map[c] for c in out if c in column_map},
        units={c: units_used[c] for c in out if c in units_used}, extra=extra, skipped=skipped,
        dropped=dropped,
    )


# --------------------------------------------------------------------------- asdf access


def _import_asdf(path: Path):
    try:
        import asdf  # noqa: PLC0415 - optional dependency, imported only to read a file
    except ImportError:
        raise InputFormatError(
            "reading locan ASDF files needs the asdf package; install it with 'pip install asdf'",
            path=path,
        ) from None
    return asdf


def _open_kwargs(asdf: Any) -> dict[str, Any]:
    """Read the tree at once and each data block only when it is asked for (so its declared
    size is checked before it is read), without memory maps, verifying block checksums --
    with the keywords this version of asdf knows."""
    wanted = {"validate_checksums": True, "lazy_load": True, "memmap": False,
              "lazy_tree": False, "copy_arrays": True}
    try:
        params = inspect.signature(asdf.open).parameters
    except (TypeError, ValueError):  # pragma: no cover - asdf.open is a plain function
        return {"validate_checksums": True}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {"validate_checksums": True, "lazy_load": True}
    kwargs = {k: v for k, v in wanted.items() if k in params}
    if "memmap" in kwargs:
        kwargs.pop("copy_arrays", None)  # the older spelling of memmap=False
    return kwargs


def _load_tree(
    asdf: Any, path: Path, check_columns: Callable[[list[str], Any], None],
) -> tuple[list[str], np.ndarray, Any, str | None, list[str]]:
    """(column names, 2-D float64 data, raw meta, writer, warnings) from the file's tree.

    ``check_columns(columns, raw meta)`` runs, and the data array's declared size is checked,
    before its block is read.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with asdf.open(path, **_open_kwargs(asdf)) as af:
                tree = af.tree
                keys = [str(k) for k in tree.keys()]
                raw_columns = tree.get("columns")
                raw_data = tree.get("data")
                if not keys:
                    raise InputFormatError(
                        f"truncated or empty ASDF file: its tree holds nothing{_damage(caught)}; "
                        "expected a locan localization file with 'data' and 'columns'",
                        path=path,
                    )
                if raw_columns is None or raw_data is None:
                    missing = [k for k in ("data", "columns") if tree.get(k) is None]
                    damaged = _damage(caught)
                    raise InputFormatError(
                        f"the ASDF tree has no {' or '.join(repr(m) for m in missing)} entry "
                        f"(entries: {', '.join(keys) or 'none'}){damaged}; expected a locan "
                        "localization file with 'data' and 'columns'",
                        path=path,
                    )
                if not isinstance(raw_data, np.ndarray) and not _is_ndarray_like(raw_data):
                    raise InputFormatError(
                        f"truncated or corrupt ASDF file: the 'data' array cannot be read"
                        f"{_damage(caught) or f' (it is a {type(raw_data).__name__})'}; expected "
                        "a complete locan .asdf file",
                        path=path,
                    )
                columns = _column_names(raw_columns, path)
                meta_raw = tree.get("meta")
                meta_raw = meta_raw if isinstance(meta_raw, str) else _plain(meta_raw)
                check_columns(columns, meta_raw)
                _check_source(raw_data, path)
                _check_declared_size(raw_data, path)
                data = np.asarray(raw_data)  # reads the block; _as_table copies it to float64
                writer = _writer(tree.get("asdf_library"))
    except ChromarateError:
        raise
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # noqa: BLE001 - asdf, yaml and numpy raise many kinds
        raise InputFormatError(
            f"truncated or corrupt ASDF file ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
            "; expected a complete locan .asdf file",
            path=path,
        ) from None
    data = _as_table(data, columns, path)
    notes = [" ".join(str(w.message).split())[:300] for w in caught]
    return columns, data, meta_raw, writer, notes


#: Largest YAML tree read (locan keeps its data in binary blocks: its trees are a few kB).
MAX_TREE_BYTES = MAX_YAML_BYTES  # the public sample's tree is 2.3 kB
_TREE_END = (b"\n...\n", b"\n...\r\n")
_BLOCK_MAGIC = b"\xd3BLK"


def _check_tree_text(path: Path) -> None:
    """Refuse a file whose YAML tree is larger than :data:`MAX_TREE_BYTES` or whose aliases
    stand for a huge tree (:func:`chromarate._yaml_guard.check_yaml_tree`), before the asdf
    package parses it (it walks the expanded tree, and reads a tree without an end whole)."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_TREE_BYTES + 1)
    ends = [i + len(m) for m in _TREE_END if (i := head.find(m)) >= 0]
    block = head.find(_BLOCK_MAGIC)
    if ends:
        tree = head[:min(ends)]
    elif block >= 0:
        tree = head[:block]
    elif len(head) > MAX_TREE_BYTES:
        raise InputFormatError(
            f"its YAML tree has no end ('...') within the first {MAX_TREE_BYTES >> 20} MiB; "
            "expected a locan .asdf file, whose data are in binary blocks after a small tree",
            path=path)
    else:
        tree = head
    try:
        check_yaml_tree(tree.decode("utf-8", errors="replace"))
    except YamlLimitError as exc:
        raise InputFormatError(f"its YAML tree is not usable: {exc}; expected a locan .asdf "
                               "file", path=path) from None
    except Exception:  # noqa: BLE001 - not valid YAML: asdf names what is wrong
        return


def _check_source(raw_data: Any, path: Path) -> None:
    """Refuse a 'data' array stored in another file (asdf's external array storage names a
    file by its ``source``): reading it would open whatever that name is, a pipe included."""
    source = getattr(raw_data, "_source", None)
    if isinstance(source, str):
        raise InputFormatError(
            f"its 'data' array is stored in another file ({source!r}), which is not read; "
            "expected a locan .asdf file that holds its data", path=path)


def _check_declared_size(raw_data: Any, path: Path) -> None:
    """Refuse a 'data' array whose declared shape needs more than the read limit (the
    copy read here plus its float64 columns), before its block is decoded."""
    shape = tuple(int(n) for n in getattr(raw_data, "shape", ()) or ())
    dtype = np.dtype(getattr(raw_data, "dtype", np.float64))
    n = math.prod(shape)
    shown = " x ".join(str(v) for v in shape) or "scalar"
    check_decoded_size(path, n * (dtype.itemsize + 16),
                       f"the ASDF 'data' array ({shown} {dtype})")


def _is_ndarray_like(value: Any) -> bool:
    return hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype")


def _damage(caught: list[warnings.WarningMessage]) -> str:
    """The conversion warnings asdf gives for a damaged tree, as a message suffix."""
    msgs = [" ".join(str(w.message).split())[:200] for w in caught
            if "conver" in type(w.message).__name__.lower() or "failed to convert" in str(w.message)]
    return f" (asdf: {'; '.join(msgs)})" if msgs else ""


def _column_names(raw: Any, path: Path) -> list[str]:
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
        raise InputFormatError(
            f"'columns' is a {type(raw).__name__}; expected a list of column names", path=path
        )
    names = [str(c) for c in raw]
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise InputFormatError(f"column '{name}' appears more than once in 'columns'", path=path)
        seen.add(name.lower())
    return names


def _as_table(data: np.ndarray, columns: list[str], path: Path) -> np.ndarray:
    """The data as a 2-D float64 array with one column per name."""
    if data.dtype.names:  # a structured array: one field per column
        missing = [c for c in columns if c not in data.dtype.names]
        if missing:
            raise InputFormatError(
                f"the data array has no field(s) {', '.join(missing)} named in 'columns'",
                path=path,
            )
        fields = [_numeric(np.asarray(data[c]).reshape(-1), f"field '{c}'", path) for c in columns]
        return np.column_stack(fields) if fields else np.empty((len(data), 0))
    if data.ndim == 1 and len(columns) == 1:
        data = data.reshape(-1, 1)
    if data.ndim != 2 or data.shape[1] != len(columns):
        raise InputFormatError(
            f"the data array has shape {tuple(data.shape)} but 'columns' names {len(columns)} "
            "column(s); expected an array of (rows, columns)",
            path=path,
        )
    return _numeric(data, "'data'", path)


def _numeric(values: np.ndarray, what: str, path: Path) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise InputFormatError(f"{what} holds {values.dtype} data; expected numbers", path=path)
    return values.astype(np.float64)


def _plain(value: Any) -> Any:
    """A tree node as plain dicts, lists and scalars (for meta)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _writer(lib: Any) -> str | None:
    if isinstance(lib, dict) and lib.get("name"):
        return f"{lib.get('name')} {lib.get('version', '')}".strip()
    return None


# --------------------------------------------------------------------------- metadata


def _parse_meta(raw: Any) -> dict[str, Any] | None:
    """Locan's metadata (a JSON string in the tree) as a dict; None when absent or not JSON."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _locan_units(meta: dict[str, Any] | None) -> dict[str, str]:
    """Units locan records, by lower-case property name."""
    out: dict[str, str] = {}
    if not meta:
        return out
    for key in ("localizationProperties", "localization_properties"):
        entries = meta.get(key)
        if isinstance(entries, list):
            for e in entries:
                if isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("unit"), str):
                    if e["unit"].strip():
                        out.setdefault(e["name"].strip().lower(), e["unit"].strip())
    entries = meta.get("unit")
    if isinstance(entries, list):
        for e in entries:
            if isinstance(e, dict) and isinstance(e.get("property"), str) and isinstance(e.get("unit"), str):
                if e["unit"].strip():
                    out.setdefault(e["property"].strip().lower(), e["unit"].strip())
    return out


def _length_scale(
    header: str, stated: dict[str, str], units_option: str | None, pixel_size: float | None,
    path: Path,
) -> tuple[float, str, bool]:
    """(nm per stored unit, unit for meta, pixels converted?) of a length column."""
    unit = stated.get(header.lower())
    if unit is not None:
        key = unit.lower()
        if key not in LENGTH_UNITS:
            raise InputFormatError(
                f"unknown unit {unit!r} of column '{header}' in the locan metadata; expected a "
                "length unit: nm, um, mm, m or px",
                path=path,
            )
        label = unit
    elif units_option is not None:
        key, label = units_option, f"{units_option} (units= option; no unit in the file)"
    else:
        key, label = "nm", "nm (no unit in the file; locan's nm assumed)"
    factor = LENGTH_UNITS[key]
    if factor is None:
        if pixel_size is None:
            raise InputFormatError(
                f"column '{header}' is in camera pixels; pass pixel_size_nm=... to convert it to "
                "nanometres",
                path=path,
            )
        return pixel_size, "px", True
    return factor, label, False
