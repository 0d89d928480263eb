"""Comparison of inferred rate maps with a ground truth given on another grid."""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
from scipy import ndimage as ndi

__all__ = ["resample_to_grid", "rate_correlation"]


def resample_to_grid(values: np.ndarray, *, src_pixel_nm: float, src_origin_nm, shape,
                     pixel_nm: float, origin_nm, order: int = 1) -> np.ndarray:
    """Sample a map given on one grid at the pixel centres of another (NaN outside)."""
    ny, nx = shape
    yc = origin_nm[0] + (np.arange(ny) + 0.5) * pixel_nm
    xc = origin_nm[1] + (np.arange(nx) + 0.5) * pixel_nm
    iy = (yc - src_origin_nm[0]) / src_pixel_nm - 0.5
    ix = (xc - src_origin_nm[1]) / src_pixel_nm - 0.5
    yy, xx = np.meshgrid(iy, ix, indexing="ij")
    return ndi.map_coordinates(np.asarray(values, dtype=np.float64), [yy, xx], order=order,
                               mode="constant", cval=np.nan)


def rate_correlation(rate: np.ndarray, trusted: np.ndarray, *, pixel_nm: float, origin_nm,
                     truth: Mapping[str, Any] | str | os.PathLike) -> float:
    """Pearson correlation of an inferred rate map with the true one over ``trusted``.

    ``truth`` is what :func:`chromarate.io.truth.read_truth` returns, or the path of a
    ``.truth.npz`` file it reads; the true rate is resampled (bilinear) onto the result
    grid.
    """
    if isinstance(truth, (str, os.PathLike)):
        from ..io.truth import read_truth  # noqa: PLC0415 - only for a truth given by path

        truth = read_truth(truth)
    if not isinstance(truth, Mapping):
        raise TypeError(f"truth must be what chromarate.io.truth.read_truth returns or the "
                        f"path of a .truth.npz file, not a {type(truth).__name__}")
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=rate.shape,
                            pixel_nm=pixel_nm, origin_nm=origin_nm)
    sel = np.asarray(trusted, bool) & np.isfinite(rate) & np.isfinite(true)
    if sel.sum() < 3 or np.std(rate[sel]) == 0 or np.std(true[sel]) == 0:
        return float("nan")
    return float(np.corrcoef(rate[sel], true[sel])[0, 1])
