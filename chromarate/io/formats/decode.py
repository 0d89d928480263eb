"""DECODE emitter files (``.h5``).

Layout
------
DECODE (Turaga/Ries labs) saves an emitter set as HDF5 with three groups:

- ``data``: one dataset per property -- ``xyz`` (n, 3), ``xyz_sig`` / ``xyz_cr`` (n, 3;
  predicted uncertainty / Cramer-Rao bound), ``frame_ix`` (n,), ``phot``, ``bg``, ``prob``,
  ``id``, ``*_sig``, ``*_cr``. A property DECODE did not compute is an empty dataset (HDF5 NULL
  dataspace).
- ``meta`` (attributes): ``xy_unit`` (``'px'`` or ``'nm'``) and ``px_size`` (pixel size in
  nm, ``[x, y]`` -- it may differ between x and y).
- ``decode`` (attributes): ``version``.

Units and conversion
--------------------
- x and y are converted with the file's own metadata: with ``xy_unit == 'px'``,
  ``x_nm = x * px_size[0]`` and ``y_nm = y * px_size[1]``; with ``'nm'`` nothing is scaled.
  ``meta["pixel_size_nm"]`` is the pixel size used (a float, or an ``(x, y)`` tuple when the
  two differ), None for nm files.
- z (third column of ``xyz``) is in nm in DECODE whatever ``xy_unit`` says (DECODE converts
  only x and y between px and nm); a z that is 0 everywhere is left out.
- ``precision_nm = mean(sig_x_nm, sig_y_nm)`` from ``xyz_sig`` (else ``xyz_cr``), x and y
  converted like the coordinates.
- ``phot`` -> ``photons``; ``bg`` -> ``background`` (photons per pixel).
- ``frame_ix`` is DECODE's 0-based frame index (Python indexing of the frame stack), so
  ``frame_base`` is 0. DECODE has no PSF width, hence no ``sigma_nm``.

An emitter set with no emitters (``data/xyz`` of 0 rows) is refused with an InputFormatError
saying the file "contains no localizations": an empty table would only fail later, further
from its cause. DECODE's CSV export is not read by this module.

Options
-------
pixel_size_nm : float, optional
    Pixel size in nm for both axes; overrides ``meta/px_size`` and is required for a file in
    pixels without ``px_size``.
units : {"px", "nm"}, optional
    Unit of x, y for a file whose ``meta`` lacks ``xy_unit``; it never overrides a stated unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chromarate._types import Localizations
from chromarate.errors import ConfigError, InputFormatError

from . import _binary as b
from ._docs import BINARY, reader_doc

__all__ = ["FORMAT", "detect", "read"]

#: Name of the format.
FORMAT = "decode"

_WHAT = "DECODE h5"
_NM_UNITS = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_PX_UNITS = {"px", "pixel", "pixels"}


def detect(path: Path, head: bytes) -> bool:
    """True for an HDF5 file with a group ``data`` holding ``xyz`` and ``frame_ix`` next to a
    group ``meta`` or ``decode``."""
    return b.detect_hdf5(path, head, _WHAT, _is_decode)


def _is_decode(path: Path, h5py: Any, fh: Any) -> bool:
    # every look-up stays inside the file (b.hdf5_get); one that would leave it raises
    # UnsafeHDF5Error, which claims the file so that read() explains the refusal
    data = b.hdf5_get(fh, "data", path)
    return (
        isinstance(data, h5py.Group)
        and isinstance(b.hdf5_get(data, "xyz", path), h5py.Dataset)
        and isinstance(b.hdf5_get(data, "frame_ix", path), h5py.Dataset)
        and (isinstance(b.hdf5_get(fh, "meta", path), h5py.Group)
             or isinstance(b.hdf5_get(fh, "decode", path), h5py.Group))
    )


@reader_doc(BINARY)
def read(path: str | Path, *, pixel_size_nm: float | None = None,
         units: str | None = None) -> Localizations:
    """Read a DECODE ``.h5`` emitter file (see the module docstring)."""
    path = Path(path)
    option_px = b.check_pixel_size(pixel_size_nm)
    option_units = _check_units(units)

    with b.open_hdf5(path, _WHAT) as fh:
        h5py = b.import_h5py(path, _WHAT)
        # links and dataset storage outside the file are refused (b.hdf5_get)
        data = b.hdf5_get(fh, "data", path)
        xyz_ds = b.hdf5_get(data, "xyz", path) if isinstance(data, h5py.Group) else None
        if not isinstance(xyz_ds, h5py.Dataset):
            found = ", ".join(repr(k) for k in fh.keys()) or "nothing"
            raise InputFormatError(
                f"no dataset 'data/xyz' (found: {found}); expected a DECODE emitter file with "
                "groups 'data' (xyz, frame_ix, phot, ...) and 'meta' (xy_unit, px_size)",
                path=path,
            )
        meta_group = b.hdf5_get(fh, "meta", path)
        file_meta = (
            {k: b.attr_value(v) for k, v in meta_group.attrs.items()}
            if isinstance(meta_group, h5py.Group) else {}
        )
        decode_group = b.hdf5_get(fh, "decode", path)
        version = (b.attr_value(decode_group.attrs.get("version"))
                   if isinstance(decode_group, h5py.Group) else None)
        datasets = {k: v for k, v in b.hdf5_members(data, path).items() if isinstance(v, h5py.Dataset)}
        present = [k for k, v in datasets.items() if v.shape is not None]
        empty = sorted(k for k, v in datasets.items() if v.shape is None)

        # the unit and pixel size first: a file that needs an option fails before its data
        # are read
        unit = _xy_unit(file_meta.get("xy_unit"), option_units, path)
        file_px = _file_px_size(file_meta.get("px_size"))
        if unit == "px":
            if option_px is not None:
                px_xy = (option_px, option_px)
            elif file_px is not None:
                px_xy = file_px
            else:
                raise InputFormatError(
                    "x, y are in pixels (meta xy_unit 'px') but the file gives no usable px_size; "
                    "pass pixel_size_nm=... (camera pixel size in nm) to convert them to nm",
                    path=path,
                )
        else:
            px_xy = (1.0, 1.0)

        xyz = _table(xyz_ds, "data/xyz", path)
        n = xyz.shape[0]
        if n == 0:
            raise InputFormatError(
                "contains no localizations: the DECODE emitter set is empty (data/xyz has 0 rows)",
                path=path,
            )
        arrays: dict[str, np.ndarray] = {}
        for name in ("frame_ix", "phot", "bg"):
            if name in present:
                arrays[name] = b.as_float(b.read_dataset(datasets[name], f"data/{name}", path),
                                        f"data/{name}", path)
        sig_name = next((s for s in ("xyz_sig", "xyz_cr") if s in present), None)
        sig = _table(datasets[sig_name], f"data/{sig_name}", path) if sig_name else None

    b.check_same_length(arrays, n, "data/{}", f"data/xyz has {n} rows", "one value per emitter", path)
    if sig is not None and sig.shape[0] != n:
        raise InputFormatError(
            f"data/{sig_name} has {sig.shape[0]} rows but data/xyz has {n}; expected one row per "
            "emitter",
            path=path,
        )

    cols = b.ColumnSet(path)
    for i, axis in enumerate(("x", "y")):
        values = xyz[:, i]
        b.check_finite_coordinates(values, f"data/xyz column {i} ({axis})", path)
        cols.add(f"{axis}_nm", values * px_xy[i] if unit == "px" else values, f"xyz[:, {i}]", unit)
    if xyz.shape[1] >= 3:
        cols.add_z(xyz[:, 2], "data/xyz column 2 (z)", "xyz[:, 2]", "nm (DECODE keeps z in nm)",
                   reason="z is 0 in every row (a 2-D fit); not kept")
    if "frame_ix" in arrays:
        cols.add_frames(arrays["frame_ix"], 0, "data/frame_ix", "frame_ix")
    if "phot" in arrays:
        cols.add("photons", arrays["phot"], "phot", "photon")
    if "bg" in arrays:
        cols.add("background", arrays["bg"], "bg", "photon")
    if sig is not None and sig.shape[1] >= 2:
        parts = []
        for i in range(2):
            values = sig[:, i]
            b.check_non_negative(values, f"data/{sig_name} column {i}", path)
            parts.append(values * px_xy[i] if unit == "px" else values)
        cols.add("precision_nm", b.mean_of(parts), f"mean({sig_name}[:, 0], {sig_name}[:, 1])", unit)

    if unit == "px":
        used_px: float | tuple[float, float] | None = (
            px_xy[0] if px_xy[0] == px_xy[1] else (px_xy[0], px_xy[1])
        )
    else:
        used_px = None
    extra: dict[str, Any] = {
        "xy_unit": unit,
        "xy_unit_source": "file" if _xy_unit_in_file(file_meta.get("xy_unit")) else "option units",
        "file_px_size_nm": None if file_px is None else list(file_px),
        "decode_version": version,
    }
    if unit == "px":
        extra["pixel_size_source"] = "option pixel_size_nm" if option_px is not None else "file meta px_size"
    if empty:
        extra["empty_datasets"] = empty
    return cols.localizations(FORMAT, pixel_size_nm=used_px, frame_base=0, columns_in_file=sorted(present),
                              **extra)


def _table(ds: Any, name: str, path: Path) -> np.ndarray:
    """An (n, k) float64 array from a dataset of shape (n, k) or (n,) (k = 1)."""
    if ds.shape is None:
        return np.empty((0, 3), dtype=np.float64)
    arr = b.read_dataset(ds, name, path)
    if arr.dtype.kind not in "biuf":
        raise InputFormatError(f"{name} holds {arr.dtype} data; expected numbers", path=path)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise InputFormatError(
            f"{name} has shape {arr.shape}; expected a table of shape (n, 3)", path=path
        )
    if name == "data/xyz" and arr.shape[0] > 0 and arr.shape[1] < 2:
        raise InputFormatError(
            f"{name} has {arr.shape[1]} column(s); expected x, y (and z) columns", path=path
        )
    return arr.astype(np.float64)


def _check_units(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _NM_UNITS:
            return "nm"
        if v in _PX_UNITS:
            return "px"
    raise ConfigError(f"units must be 'px' or 'nm' (unit of x, y in a DECODE file), got {value!r}")


def _xy_unit_in_file(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() not in ("", "none", "null")


def _xy_unit(value: Any, option_units: str | None, path: Path) -> str:
    if not _xy_unit_in_file(value):
        if option_units is None:
            raise InputFormatError(
                "the file does not state the unit of x, y (meta attribute xy_unit is missing or "
                "None); pass units='px' (with pixel_size_nm=... unless the file has px_size) or "
                "units='nm'",
                path=path,
            )
        return option_units
    v = value.strip().lower()
    if v in _NM_UNITS:
        return "nm"
    if v in _PX_UNITS:
        return "px"
    raise InputFormatError(
        f"unknown xy_unit {value!r} in the file's meta; expected 'px' or 'nm'", path=path
    )


def _file_px_size(value: Any) -> tuple[float, float] | None:
    """The file's px_size as (x, y) nm, or None when absent or unusable."""
    if value is None:
        return None
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        p = b.positive_number(arr[0])
        return None if p is None else (p, p)
    if arr.size == 2:
        px, py = b.positive_number(arr[0]), b.positive_number(arr[1])
        return None if px is None or py is None else (px, py)
    return None
