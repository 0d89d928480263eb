"""Ground truth of a synthetic nucleus, stored as one compressed ``.npz`` file.

A truth file lets a pipeline run on synthetic localizations be scored against the rate map
and phase fields it was generated from. It is a NumPy ``.npz`` archive (written with
:func:`numpy.savez_compressed`, readable without pickle) holding these keys:

==================  ==========================  ===============================================
key                 dtype / shape               meaning
==================  ==========================  ===============================================
``format``          str, 0-d                    ``"chromarate-truth"``
``version``         int64, 0-d                  schema version, currently ``1``
``rate``            float32 (ny, nx)            true lambda = Gamma_me / Gamma_ac per pixel
``phi_w``           float32 (ny, nx)            nucleoplasm ("water") fraction
``phi_d``           float32 (ny, nx)            phi_h - phi_e
``mask``            bool (ny, nx)               True inside the nucleus
``pixel_size_nm``   float64, 0-d                side of a square pixel in nm
``origin_nm``       float64 (2,)                (y, x) of the corner of pixel (0, 0), nm
``meta``            str, 0-d                    JSON object: generator parameters, seed, ...
==================  ==========================  ===============================================

All arrays share one (y, x) grid. :func:`read_truth` returns them as a dict with the same
keys except ``format``/``version`` (``meta`` decoded to a dict, ``origin_nm`` a tuple).
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from numpy.lib import format as _npy

from chromarate.errors import InputFormatError
from chromarate.io._atomic import atomic_binary as _atomic_binary
from chromarate.io._zipdir import check_zip_directory
from chromarate.io.limits import check_decoded_size

__all__ = ["read_truth", "write_truth", "TRUTH_FORMAT", "TRUTH_VERSION"]

TRUTH_FORMAT = "chromarate-truth"
TRUTH_VERSION = 1
_GRID_KEYS = ("rate", "phi_w", "phi_d", "mask")
_KEYS = ("format", "version", *_GRID_KEYS, "pixel_size_nm", "origin_nm", "meta")


def write_truth(
    path: str | os.PathLike,
    *,
    rate: np.ndarray,
    phi_w: np.ndarray,
    phi_d: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float,
    origin_nm: tuple[float, float],
    meta: Mapping[str, Any],
) -> Path:
    """Write the ground truth of a synthetic nucleus to ``path`` (an ``.npz`` archive).

    The file is written to a temporary file in the same folder and moved into place, so it
    appears complete or not at all. It is written at exactly ``path`` (no ``.npz`` suffix
    is added).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; its folder must exist.
    rate, phi_w, phi_d : numpy.ndarray
        2-D arrays of one shape; stored as float32.
    mask : numpy.ndarray
        2-D array of the same shape; stored as bool.
    pixel_size_nm : float
        Positive pixel size in nm.
    origin_nm : tuple of float
        (y, x) of the corner of pixel (0, 0) in nm.
    meta : mapping
        JSON-serialisable provenance (generator parameters, seed, ...).

    Returns
    -------
    pathlib.Path
        ``path``, the ``.npz`` archive of the truth now complete.

    Raises
    ------
    ValueError
        Arrays are not 2-D or differ in shape, the pixel size is not positive, the origin
        is not two finite numbers.
    TypeError
        ``meta`` is not a JSON-serialisable mapping.

    Examples
    --------
    >>> write_truth("nucleus.truth.npz", rate=lam, phi_w=pw, phi_d=pd, mask=m,
    ...             pixel_size_nm=20.0, origin_nm=(0.0, 0.0), meta={"seed": 1})  # doctest: +SKIP
    """
    arrays = {
        "rate": np.asarray(rate, dtype=np.float32),
        "phi_w": np.asarray(phi_w, dtype=np.float32),
        "phi_d": np.asarray(phi_d, dtype=np.float32),
        "mask": np.asarray(mask).astype(bool, copy=False),
    }
    shape = arrays["rate"].shape
    for name, arr in arrays.items():
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {shape} like rate")
    p = float(pixel_size_nm)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"pixel_size_nm must be a positive finite number, got {pixel_size_nm!r}")
    origin = np.asarray(origin_nm, dtype=np.float64)
    if origin.shape != (2,) or not np.all(np.isfinite(origin)):
        raise ValueError(f"origin_nm must be two finite numbers (y, x), got {origin_nm!r}")
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a mapping, not {type(meta).__name__}")
    meta_json = json.dumps(dict(meta), sort_keys=True, allow_nan=True)

    path = Path(path)
    with _atomic_binary(path) as fh:
        np.savez_compressed(
            fh,
            format=np.array(TRUTH_FORMAT),
            version=np.array(TRUTH_VERSION, dtype=np.int64),
            pixel_size_nm=np.array(p, dtype=np.float64),
            origin_nm=origin,
            meta=np.array(meta_json),
            **arrays,
        )
    return path


def read_truth(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ground-truth file written by :func:`write_truth`.

    Only a regular file is read. The declared shape and dtype of every array (from its
    ``.npy`` header) are checked before any array is loaded: object arrays are refused
    (nothing is unpickled) and the arrays together must fit the read limit
    (:func:`chromarate.io.limits.check_decoded_size`), so a small archive that declares a
    huge array is refused without allocating it.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` truth file.

    Returns
    -------
    dict
        ``rate``, ``phi_w``, ``phi_d`` (float32 arrays), ``mask`` (bool array),
        ``pixel_size_nm`` (float), ``origin_nm`` (tuple of two floats), ``meta`` (dict).

    Raises
    ------
    InputFormatError
        The file is missing, not a regular file, not an ``.npz`` archive, lacks keys,
        holds object arrays or arrays beyond the read limit, has arrays of the wrong shape,
        or its ``meta`` is not a JSON object. The message names the file.

    Examples
    --------
    >>> truth = read_truth("nucleus.truth.npz")  # doctest: +SKIP
    >>> truth["rate"].shape  # doctest: +SKIP
    """
    path = Path(path)
    try:
        with _open_regular(path) as fh:
            _refuse_single_array(fh, path)
            check_zip_directory(fh, path, "a ground-truth .npz archive")
            with zipfile.ZipFile(fh) as zf:
                members = _member_names(zf, path)
                _check_headers(zf, members, path)
                raw = {key: _load_member(zf, name) for key, name in members.items()}
    except InputFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        raise InputFormatError(
            f"cannot read the file as a ground-truth .npz archive ({type(exc).__name__}: {exc})",
            path=path,
        ) from None
    return _validated(raw, path)


def _open_regular(path: Path):
    """``path`` opened for binary reading if it is a regular file.

    The file is opened without waiting (a FIFO would wait for a writer) and checked on the
    open descriptor, so what is read is the file that was checked.

    Raises
    ------
    InputFormatError
        It is missing, a directory, or not a regular file (a FIFO, device or socket).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputFormatError("file not found; expected a chromarate ground-truth .npz file",
                               path=path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "is a directory" if stat.S_ISDIR(mode) else \
                "not a regular file (a FIFO, device or socket)"
            raise InputFormatError(f"{what}; expected a chromarate ground-truth .npz file",
                                   path=path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_single_array(fh, path: Path) -> None:
    """Refuse a file that is one ``.npy`` array rather than an ``.npz`` archive."""
    head = fh.read(len(_npy.MAGIC_PREFIX))
    fh.seek(0)
    if head == _npy.MAGIC_PREFIX:
        raise InputFormatError(
            "holds a single .npy array, expected a ground-truth .npz archive", path=path)


def _member_names(zf: zipfile.ZipFile, path: Path) -> dict[str, str]:
    """Key -> archive member of every key of a truth file (``<key>`` before ``<key>.npy``,
    as :func:`numpy.load` resolves them).

    Raises
    ------
    InputFormatError
        Keys are missing.
    """
    names = set(zf.namelist())
    members = {}
    for key in _KEYS:
        for name in (key, f"{key}.npy"):
            if name in names:
                members[key] = name
                break
    missing = [k for k in _KEYS if k not in members]
    if missing:
        raise InputFormatError(
            f"not a chromarate ground-truth file: missing key(s) {', '.join(missing)}; "
            f"expected keys {', '.join(_KEYS)}",
            path=path,
        )
    return members


def _member_header(zf: zipfile.ZipFile, name: str, key: str, path: Path
                   ) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) the ``.npy`` header of member ``name`` declares; no data is read.

    Raises
    ------
    InputFormatError
        The member is not a ``.npy`` array (version 1.0 or 2.0 header) or holds objects.
    """
    with zf.open(name) as fh:
        if fh.read(len(_npy.MAGIC_PREFIX)) != _npy.MAGIC_PREFIX:
            raise InputFormatError(f"key {key!r} is not a .npy array", path=path)
        fh.seek(0)
        version = _npy.read_magic(fh)
        readers = {(1, 0): _npy.read_array_header_1_0, (2, 0): _npy.read_array_header_2_0}
        if version not in readers:
            raise InputFormatError(f"key {key!r}: .npy format version {version} is not "
                                   "supported (expected 1.0 or 2.0)", path=path)
        shape, _, dtype = readers[version](fh)
    if dtype.hasobject:
        raise InputFormatError(f"key {key!r} holds Python objects (dtype {dtype}); a "
                               "ground-truth file holds numbers and text only", path=path)
    return tuple(int(n) for n in shape), dtype


def _check_headers(zf: zipfile.ZipFile, members: dict[str, str], path: Path) -> None:
    """Check the declared arrays of every key before loading: plain ``.npy`` arrays, grid
    arrays 2-D of one shape, and all of them together within the read limit.

    Raises
    ------
    InputFormatError
        A member is not a plain ``.npy`` array, the grid arrays differ in shape, or the
        arrays together would take more memory than the read limit.
    """
    declared = []
    for key, name in members.items():
        shape, dtype = _member_header(zf, name, key, path)
        declared.append((math.prod(shape) * dtype.itemsize, key, shape, dtype))
    _check_grid_shapes({key: shape for _, key, shape, _ in declared}, path)
    _, key, shape, dtype = max(declared, key=lambda d: d[0])
    check_decoded_size(path, sum(d[0] for d in declared),
                       f"the ground-truth arrays (largest: {key!r}, shape {shape}, {dtype})")


def _check_grid_shapes(shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """Refuse grid arrays that are not 2-D of one shape, from their declared shapes.

    Raises
    ------
    InputFormatError
        Naming the first array whose shape differs from ``rate``'s or is not 2-D.
    """
    expected = shapes["rate"]
    for key in _GRID_KEYS:
        if len(shapes[key]) != 2 or shapes[key] != expected:
            raise InputFormatError(f"array {key!r} has shape {shapes[key]}, expected 2-D "
                                   f"{expected} (all of {', '.join(_GRID_KEYS)} share one "
                                   "grid)", path=path)


def _load_member(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """The array of member ``name`` (header already checked; never unpickled)."""
    with zf.open(name) as fh:
        return _npy.read_array(fh, allow_pickle=False)


def _validated(raw: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """The truth dict of :func:`read_truth` from the loaded keys, after checking them."""
    if raw["format"].shape != () or str(raw["format"]) != TRUTH_FORMAT:
        raise InputFormatError(f"format key is {raw['format']!r}, expected {TRUTH_FORMAT!r}", path=path)
    try:
        version = int(raw["version"])
    except (TypeError, ValueError):
        version = None
    if version != TRUTH_VERSION:
        raise InputFormatError(
            f"unsupported truth file version {raw['version']!r}; this chromarate reads "
            f"version {TRUTH_VERSION}",
            path=path,
        )
    shape = raw["rate"].shape
    for key in _GRID_KEYS:
        arr = raw[key]
        if arr.ndim != 2 or arr.shape != shape:
            raise InputFormatError(f"array {key!r} has shape {arr.shape}, expected 2-D {shape}", path=path)
        kind_ok = arr.dtype == bool if key == "mask" else np.issubdtype(arr.dtype, np.floating)
        if not kind_ok:
            raise InputFormatError(f"array {key!r} has dtype {arr.dtype}, expected "
                                   f"{'bool' if key == 'mask' else 'float'}", path=path)
    try:
        pixel_size_nm = float(raw["pixel_size_nm"])
        origin = tuple(float(v) for v in np.asarray(raw["origin_nm"], dtype=np.float64).reshape(-1))
    except (TypeError, ValueError):
        raise InputFormatError("pixel_size_nm and origin_nm must be numbers", path=path) from None
    if not (math.isfinite(pixel_size_nm) and pixel_size_nm > 0) or len(origin) != 2:
        raise InputFormatError(
            f"pixel_size_nm={pixel_size_nm} / origin_nm={origin}: expected a positive pixel size "
            "and two origin coordinates",
            path=path,
        )
    try:
        meta = json.loads(str(raw["meta"]))
    except ValueError as exc:
        raise InputFormatError(f"meta is not valid JSON ({exc})", path=path) from None
    if not isinstance(meta, dict):
        raise InputFormatError("meta must be a JSON object", path=path)
    return {
        "rate": raw["rate"].astype(np.float32, copy=False),
        "phi_w": raw["phi_w"].astype(np.float32, copy=False),
        "phi_d": raw["phi_d"].astype(np.float32, copy=False),
        "mask": raw["mask"],
        "pixel_size_nm": pixel_size_nm,
        "origin_nm": origin,
        "meta": meta,
    }
