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
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from chromarate.errors import InputFormatError
from chromarate.io._atomic import atomic_binary as _atomic_binary

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
        The file is missing, not an ``.npz`` archive, lacks keys, has arrays of the wrong
        shape, or its ``meta`` is not a JSON object. The message names the file.

    Examples
    --------
    >>> truth = read_truth("nucleus.truth.npz")  # doctest: +SKIP
    >>> truth["rate"].shape  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "file not found"
        raise InputFormatError(f"{what}; expected a chromarate ground-truth .npz file", path=path)
    try:
        # Open the file ourselves so that it is closed even when numpy fails half-way.
        with open(path, "rb") as fh:
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise InputFormatError(
                    "holds a single .npy array, expected a ground-truth .npz archive", path=path
                )
            with loaded as npz:
                missing = [k for k in _KEYS if k not in npz.files]
                if missing:
                    raise InputFormatError(
                        f"not a chromarate ground-truth file: missing key(s) {', '.join(missing)}; "
                        f"expected keys {', '.join(_KEYS)}",
                        path=path,
                    )
                raw = {k: npz[k] for k in _KEYS}
    except InputFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputFormatError(
            f"cannot read the file as a ground-truth .npz archive ({type(exc).__name__}: {exc})",
            path=path,
        ) from None

    if raw["format"].shape != () or str(raw["format"]) != TRUTH_FORMAT:
        raise InputFormatError(f"format key is {raw['format']!r}, expected {TRUTH_FORMAT!r}", path=path)
    try:
        version = int(raw["version"])
    except (TypeError, ValueError):
        version = None
    if version != TRUTH_VERSION:
        raise InputFormatError(
            f"unsupported truth file version {raw['version']!r}; this chromarate reads version {TRUTH_VERSION}",
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
