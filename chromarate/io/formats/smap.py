"""SMAP localization files (``*_sml.mat``) saved as MATLAB v7.3, i.e. HDF5.

Layout
------
SMAP (Ries lab) saves a MATLAB struct ``saveloc`` whose field ``loc`` is a struct of equally
long vectors, one per localization property: ``xnm, ynm, znm, frame, phot, bg, locprecnm,
PSFxnm, PSFynm, channel, filenumber, ...``. MATLAB v7.3 files are HDF5 files behind a 512-byte
text header; ``saveloc/loc`` is an HDF5 group whose datasets are stored transposed, as
``(1, n)`` (or ``(n, 1)``) arrays -- both are accepted. Empty MATLAB arrays carry the
attribute ``MATLAB_empty``. Camera metadata lives in ``saveloc/file/info``
(``cam_pixelsize_um`` is reported as ``meta["camera_pixel_size_nm"]``).

Units and conversion
--------------------
Coordinates are already in nm, so nothing is scaled (``meta["pixel_size_nm"]`` is None):
``xnm, ynm, znm`` -> ``x_nm, y_nm, z_nm``; ``locprecnm`` -> ``precision_nm``; ``mean(PSFxnm,
PSFynm)`` -> ``sigma_nm`` (PSF sigma); ``phot`` -> ``photons``; ``bg`` -> ``background``
(photons per pixel). A ``znm`` that is 0 everywhere (2-D fit) is left out and named in
``meta["dropped_columns"]``.

Frames are **1-based** in SMAP (MATLAB counting; the sample file's frames run 1..1001 with no
frame 0): ``frame = frame_in_file - 1`` and ``meta["frame_base"] == 1``. Non-integer frames are
not kept (``meta["dropped_columns"]["frame"]`` says why); a frame number below 1 is refused.

Localizations of every channel and file number are returned; the distinct values are listed in
``meta["channels"]`` and ``meta["file_numbers"]`` when there is more than one.

Options
-------
pixel_size_nm : float, optional
    Accepted for uniformity with the other readers and ignored (coordinates are in nm);
    noted in ``meta["ignored_options"]``.

Only v7.3 (HDF5) MAT-files can be read; an older MAT-file (v5/v7) is refused with a message
saying how to re-save it. Every failure raises :class:`~chromarate.errors.InputFormatError`
naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chromarate._types import Localizations
from chromarate.errors import InputFormatError

from . import _binary as b
from ._docs import BINARY, reader_doc

__all__ = ["FORMAT", "detect", "read"]

#: Name of the format.
FORMAT = "smap"

_WHAT = "SMAP _sml.mat"
_MAT_V73 = b"MATLAB 7.3 MAT-file"
_MAT_TEXT = b"MATLAB 5.0 MAT-file"  # header text of v5, v6 and v7 MAT-files
_FRAME_BASE = 1


def detect(path: Path, head: bytes) -> bool:
    """True for an HDF5 (MATLAB v7.3) file holding the struct ``saveloc`` with ``loc`` inside."""
    return b.detect_hdf5(path, head, _WHAT, _is_smap)


def _is_smap(path: Path, h5py: Any, fh: Any) -> bool:
    # look-ups stay inside the file (b.hdf5_get): one that would leave it raises
    # UnsafeHDF5Error, which claims the file so that read() explains the refusal
    saveloc = b.hdf5_get(fh, "saveloc", path)
    return isinstance(saveloc, h5py.Group) and isinstance(b.hdf5_get(saveloc, "loc", path), h5py.Group)


@reader_doc(BINARY)
def read(path: str | Path, *, pixel_size_nm: float | None = None) -> Localizations:
    """Read a SMAP ``_sml.mat`` (MATLAB v7.3) localization file (see the module docstring)."""
    path = Path(path)
    ignored = b.check_pixel_size(pixel_size_nm)
    b.check_regular_file(path, _WHAT)
    head = b.read_head(path, 128)
    if head.startswith(_MAT_TEXT) and not b.is_hdf5(b.read_head(path, 1 << 12)):
        raise InputFormatError(
            "is a MATLAB v5/v7 MAT-file, which is not HDF5-based; only SMAP files saved as "
            "MATLAB v7.3 can be read (re-save it in MATLAB with S = load(old); "
            "save(new, '-struct', 'S', '-v7.3'))",
            path=path,
        )

    with b.open_hdf5(path, _WHAT) as fh:
        h5py = b.import_h5py(path, _WHAT)
        # links and dataset storage outside the file are refused (b.hdf5_get)
        saveloc = b.hdf5_get(fh, "saveloc", path)
        if not isinstance(saveloc, h5py.Group):
            found = ", ".join(repr(k) for k in fh.keys() if not k.startswith("#")) or "nothing"
            raise InputFormatError(
                f"no struct 'saveloc' (found: {found}); expected a SMAP _sml.mat file whose "
                "localizations are in saveloc.loc",
                path=path,
            )
        loc = b.hdf5_get(saveloc, "loc", path)
        if not isinstance(loc, h5py.Group):
            raise InputFormatError(
                "the struct 'saveloc' has no field 'loc'; expected SMAP localizations in saveloc.loc",
                path=path,
            )
        members = b.hdf5_members(loc, path)
        fields = [k for k, v in members.items() if isinstance(v, h5py.Dataset)]
        b.require_fields(sorted(fields), ("xnm", "ynm"), "saveloc.loc",
                         "SMAP coordinates xnm, ynm in nm", path)
        wanted = ("xnm", "ynm", "znm", "frame", "phot", "bg", "locprecnm", "PSFxnm", "PSFynm",
                  "channel", "filenumber")
        vectors = {name: _vector(members[name], name, path) for name in wanted if name in fields}
        camera_px = _camera_pixel_size_nm(saveloc, h5py, path)

    n = len(vectors["xnm"])
    b.check_same_length(vectors, n, "saveloc.loc.{}", f"saveloc.loc.xnm has {n}", "vectors of equal length",
                        path)
    if n == 0:
        raise InputFormatError("contains no localizations: saveloc.loc.xnm is empty", path=path)

    cols = b.ColumnSet(path)
    for canonical, name in (("x_nm", "xnm"), ("y_nm", "ynm")):
        b.check_finite_coordinates(vectors[name], f"saveloc.loc.{name}", path)
        cols.add(canonical, vectors[name], name, "nm")
    if "znm" in vectors:
        cols.add_z(vectors["znm"], "saveloc.loc.znm", "znm", "nm")
    if "frame" in vectors:
        cols.add_frames(vectors["frame"], _FRAME_BASE, "saveloc.loc.frame", "frame")
    if "phot" in vectors:
        cols.add("photons", vectors["phot"], "phot", "photon")
    if "bg" in vectors:
        cols.add("background", vectors["bg"], "bg", "photon")
    if "locprecnm" in vectors:
        b.check_non_negative(vectors["locprecnm"], "saveloc.loc.locprecnm", path)
        cols.add("precision_nm", vectors["locprecnm"], "locprecnm", "nm")
    psf = [name for name in ("PSFxnm", "PSFynm") if name in vectors]
    if psf:
        for name in psf:
            b.check_non_negative(vectors[name], f"saveloc.loc.{name}", path)
        cols.add("sigma_nm", b.mean_of([vectors[name] for name in psf]),
                 f"mean({', '.join(psf)})" if len(psf) > 1 else psf[0], "nm")

    extra: dict[str, Any] = {"camera_pixel_size_nm": camera_px}
    for key, name in (("channels", "channel"), ("file_numbers", "filenumber")):
        if name in vectors:
            distinct = np.unique(vectors[name][np.isfinite(vectors[name])])
            if distinct.size > 1:
                extra[key] = [float(v) for v in distinct]
    if ignored is not None:
        extra["ignored_options"] = {"pixel_size_nm": "SMAP coordinates are stored in nm"}
    return cols.localizations(FORMAT, pixel_size_nm=None, frame_base=_FRAME_BASE,
                              columns_in_file=sorted(fields), **extra)


def _vector(ds: Any, name: str, path: Path) -> np.ndarray:
    """A MATLAB vector stored as an HDF5 dataset, as 1-D float64."""
    if "MATLAB_empty" in ds.attrs and bool(np.asarray(ds.attrs["MATLAB_empty"]).any()):
        return np.empty(0, dtype=np.float64)
    if ds.shape is None:
        return np.empty(0, dtype=np.float64)
    shape = tuple(ds.shape)
    if len(shape) > 2 or (len(shape) == 2 and min(shape) > 1):
        raise InputFormatError(
            f"saveloc.loc.{name} is a {'x'.join(map(str, shape))} array; expected a vector "
            "(one value per localization)",
            path=path,
        )
    return b.as_float(b.read_dataset(ds, f"saveloc.loc.{name}", path), f"saveloc.loc.{name}", path)


def _camera_pixel_size_nm(saveloc: Any, h5py: Any, path: Path) -> float | list[float] | None:
    """Camera pixel size from saveloc.file.info.cam_pixelsize_um (None if not readable).

    Raises
    ------
    UnsafeHDF5Error
        The metadata is reached through a link to another file or stored outside the file
        (refused like any data, although the metadata is optional).
    """
    try:
        ds: Any = saveloc
        for name in ("file", "info", "cam_pixelsize_um"):
            ds = b.hdf5_get(ds, name, path) if isinstance(ds, h5py.Group) else None
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "iuf" or ds.size > 16:
            return None
        values = np.asarray(ds[()], dtype=np.float64).reshape(-1) * 1000.0
    except b.UnsafeHDF5Error:
        raise
    except Exception:  # noqa: BLE001 - optional metadata; several files make it a reference array
        return None
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    if np.allclose(values, values[0]):
        return float(values[0])
    return [float(v) for v in values]
