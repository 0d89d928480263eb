"""Picasso localization files: an HDF5 ``locs`` table plus a YAML sidecar.

Layout
------
Picasso (Jungmann lab) writes ``<name>.hdf5`` holding one compound dataset ``locs`` (one row per
localization, fields such as ``frame, x, y, photons, sx, sy, bg, lpx, lpy, ...``) and
``<name>.yaml`` next to it, a multi-document YAML file with one document per processing step.
The camera pixel size in nm is the top-level key ``Pixelsize`` of one of those documents.

Units and conversion
--------------------
- ``x``, ``y`` are camera pixels: ``x_nm = x * pixel_size_nm`` (same for ``y``).
- ``lpx``, ``lpy`` (localization precision) and ``sx``, ``sy`` (PSF width) are pixels:
  ``precision_nm = mean(lpx, lpy) * pixel_size_nm`` and ``sigma_nm = mean(sx, sy) *
  pixel_size_nm`` (a single one of the pair is used alone).
- ``z`` (3-D astigmatic fits) is taken to be in **nm** already -- Picasso stores z in nm while
  x, y stay in pixels (its renderer divides z by the pixel size). This assumption is recorded
  as ``meta["units"]["z_nm"] == "nm (Picasso stores z in nm)"``. A z column that is 0
  everywhere carries no information and is left out (named in ``meta["dropped_columns"]``).
- ``photons`` -> ``photons``; ``bg`` -> ``background`` (photons per pixel, as Picasso reports).
- ``frame`` is 0-based in Picasso (``frame_base`` 0). Tables of merged localizations
  (e.g. Picasso "molecules" files) store the *mean* frame as a float; such non-integer frames
  are not kept and ``meta["dropped_columns"]["frame"]`` says why.

Options
-------
pixel_size_nm : float, optional
    Camera pixel size in nm. It overrides the YAML ``Pixelsize`` and is required when the
    sidecar is missing or holds no pixel size.

Errors (all :class:`~chromarate.errors.InputFormatError`, message naming the file): not HDF5,
truncated/corrupt HDF5, no ``locs`` dataset, ``locs`` without ``x``/``y``, an empty table,
NaN/inf coordinates, negative precisions/widths, and -- without ``pixel_size_nm=`` -- a missing
or unreadable sidecar, a sidecar without ``Pixelsize``, or sidecar documents that disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chromarate._types import Localizations
from chromarate._yaml_guard import YamlLimitError, check_yaml_tree, read_yaml_text
from chromarate.errors import InputFormatError

from . import _binary as b
from ._docs import BINARY, reader_doc

__all__ = ["FORMAT", "detect", "read"]

#: Name of the format.
FORMAT = "picasso"

_YAML_SUFFIXES = (".yaml", ".yml")
_WHAT = "Picasso"
# fields of 'locs' that are read (the others are never decoded)
_FIELDS_READ = ("x", "y", "z", "frame", "photons", "bg", "lpx", "lpy", "sx", "sy")


def detect(path: Path, head: bytes) -> bool:
    """True for an HDF5 file with a dataset ``locs``; also for an HDF5 file of no other known
    layout whose sidecar YAML was written by Picasso, so that reading it explains what is
    missing."""
    return b.detect_hdf5(path, head, _WHAT, _is_picasso)


def _is_picasso(path: Path, h5py: Any, fh: Any) -> bool:
    # looked up without leaving the file: an external link or external storage in 'locs'
    # raises UnsafeHDF5Error, which claims the file so that read() explains the refusal
    if isinstance(b.hdf5_get(fh, "locs", path), h5py.Dataset):
        return True
    if "saveloc" in fh or ("data" in fh and "meta" in fh):  # SMAP, DECODE
        return False
    yaml_path = _sidecar(path)
    if yaml_path is None:
        return False
    with open(yaml_path, "rb") as yaml_fh:
        return b"Picasso" in yaml_fh.read(1 << 16)


@reader_doc(BINARY)
def read(path: str | Path, *, pixel_size_nm: float | None = None) -> Localizations:
    """Read a Picasso ``.hdf5`` localization file (see the module docstring)."""
    path = Path(path)
    option_px = b.check_pixel_size(pixel_size_nm)

    with b.open_hdf5(path, _WHAT) as fh:
        h5py = b.import_h5py(path, _WHAT)
        obj = b.hdf5_get(fh, "locs", path)  # refuses links and storage outside the file
        if obj is None:
            found = ", ".join(repr(k) for k in fh.keys()) or "nothing"
            raise InputFormatError(
                f"the 'locs' table is missing: this HDF5 file has no dataset 'locs' (found: "
                f"{found}); expected a Picasso localization file with its table in 'locs'",
                path=path,
            )
        if not isinstance(obj, h5py.Dataset) or obj.dtype.names is None:
            raise InputFormatError(
                "'locs' is not a table (expected a compound HDF5 dataset with fields frame, x, "
                "y, photons, ...)",
                path=path,
            )
        names = tuple(obj.dtype.names)
        b.require_fields(list(names), ("x", "y"), "the 'locs' table",
                         "Picasso fields x, y in camera pixels", path)
        n_rows = int(obj.size)
        if n_rows == 0:
            raise InputFormatError("contains no localizations: the 'locs' table has 0 rows", path=path)
        px, px_meta = _pixel_size(path, option_px)
        wanted = tuple(n for n in names if n in _FIELDS_READ)
        locs = b.read_dataset(obj, "'locs'", path, fields=wanted).reshape(-1)

    def field(name: str) -> np.ndarray:
        return b.as_float(locs[name], f"field '{name}' of 'locs'", path)

    cols = b.ColumnSet(path)
    for axis in ("x", "y"):
        values = field(axis)
        b.check_finite_coordinates(values, f"field '{axis}' of 'locs'", path)
        cols.add(f"{axis}_nm", values * px, axis, "px")
    if "z" in names:
        cols.add_z(field("z"), "field 'z' of 'locs'", "z", "nm (Picasso stores z in nm)")
    if "frame" in names:
        cols.add_frames(field("frame"), 0, "field 'frame' of 'locs'", "frame")
    if "photons" in names:
        cols.add("photons", field("photons"), "photons", "photon")
    if "bg" in names:
        cols.add("background", field("bg"), "bg", "photon")
    for canonical, pair in (("precision_nm", ("lpx", "lpy")), ("sigma_nm", ("sx", "sy"))):
        present = [n for n in pair if n in names]
        if not present:
            continue
        parts = []
        for n in present:
            v = field(n)
            b.check_non_negative(v, f"field '{n}' of 'locs'", path)
            parts.append(v)
        cols.add(canonical, b.mean_of(parts) * px,
                 f"mean({', '.join(present)})" if len(present) > 1 else present[0], "px")

    return cols.localizations(FORMAT, pixel_size_nm=px, frame_base=0, columns_in_file=list(names), **px_meta)


# --------------------------------------------------------------------------- YAML sidecar


def _sidecar(path: Path) -> Path | None:
    for suffix in _YAML_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


class _NoPixelSize(Exception):
    """The sidecar does not give a usable pixel size (message says why)."""


def _pixel_size(path: Path, option_px: float | None) -> tuple[float, dict[str, Any]]:
    """Pixel size (nm) to use and meta entries describing where it came from."""
    yaml_path = _sidecar(path)
    meta: dict[str, Any] = {"sidecar_yaml": str(yaml_path) if yaml_path else None}
    try:
        yaml_px = _yaml_pixel_size(path, yaml_path, meta)
    except _NoPixelSize as exc:
        if option_px is None:
            raise InputFormatError(
                f"{exc}; pass pixel_size_nm=... (camera pixel size in nm) to read this Picasso "
                "file",
                path=path,
            ) from None
        yaml_px = None
    if yaml_px is not None:
        meta["yaml_pixel_size_nm"] = yaml_px
    if option_px is not None:
        meta["pixel_size_source"] = "option pixel_size_nm"
        return option_px, meta
    meta["pixel_size_source"] = f"sidecar YAML Pixelsize ({yaml_path.name})"  # type: ignore[union-attr]
    return yaml_px, meta  # type: ignore[return-value]


def _yaml_pixel_size(path: Path, yaml_path: Path | None, meta: dict[str, Any]) -> float:
    if yaml_path is None:
        raise _NoPixelSize(
            f"the sidecar YAML '{path.with_suffix('.yaml').name}' is missing; it holds the camera "
            "pixel size (Pixelsize) needed to convert x, y from pixels to nm"
        )
    try:
        docs = _load_yaml(yaml_path)
    except InputFormatError as exc:
        raise _NoPixelSize(exc.message) from None
    steps = [d.get("Generated by") for d in docs if isinstance(d, dict) and d.get("Generated by")]
    if steps:
        meta["picasso_steps"] = [str(g) for g in steps]
    raw = [
        v for d in docs if isinstance(d, dict)
        for k, v in d.items() if isinstance(k, str) and k.strip().lower() == "pixelsize"
    ]
    if not raw:
        raise _NoPixelSize(
            f"the sidecar YAML '{yaml_path.name}' has no Pixelsize entry in any of its "
            f"{len(docs)} document(s)"
        )
    values = []
    for v in raw:
        p = b.positive_number(v)
        if p is None:
            raise _NoPixelSize(
                f"the sidecar YAML '{yaml_path.name}' has Pixelsize {v!r}, not a positive number "
                "of nm"
            )
        values.append(p)
    if len(set(values)) > 1:
        raise _NoPixelSize(
            f"the sidecar YAML '{yaml_path.name}' gives different pixel sizes "
            f"({', '.join(f'{v:g}' for v in values)} nm) in different documents"
        )
    return values[0]


def _load_yaml(yaml_path: Path) -> list[Any]:
    import yaml  # noqa: PLC0415

    class _Loader(yaml.SafeLoader):
        """Safe loader that reads unknown tags (e.g. !!python/tuple) as plain data."""

    def _plain(loader: Any, _suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    _Loader.add_multi_constructor("", _plain)
    try:
        text = read_yaml_text(yaml_path)
        check_yaml_tree(text, loader=_Loader)
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except (OSError, UnicodeDecodeError, YamlLimitError) as exc:
        raise InputFormatError(f"cannot read the sidecar YAML '{yaml_path.name}': {exc}",
                               path=yaml_path) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise InputFormatError(
            f"the sidecar YAML '{yaml_path.name}' is not valid YAML{at}", path=yaml_path
        ) from None
    except Exception as exc:  # noqa: BLE001 - e.g. unhashable keys in a hand-edited file
        raise InputFormatError(
            f"the sidecar YAML '{yaml_path.name}' cannot be parsed ({type(exc).__name__})", path=yaml_path
        ) from None
