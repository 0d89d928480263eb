"""Resolution levels of result stores: which levels, and how each is downsampled.

A result with a side longer than a limit (:data:`chromarate.io.zarr_store.PYRAMID_MAX_SIDE`)
gets levels downsampled 2x each until the coarsest fits; intensities are NaN-ignoring block
means, label images take every ``f``-th pixel (no new label values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Level", "downsample", "pyramid_levels"]


@dataclass(frozen=True)
class Level:
    """One resolution level.

    Attributes
    ----------
    path : str
        Array path inside its group (``"0"``, ``"1"``, ...).
    factor : int
        Downsampling factor relative to full resolution.
    """

    path: str
    factor: int


def pyramid_levels(shape_yx: tuple[int, ...], max_side: int) -> list[Level]:
    """Full resolution, then levels downsampled 2x each while a side exceeds ``max_side``.

    Parameters
    ----------
    shape_yx : tuple of int
        Shape of the full-resolution array; its last two values are (ny, nx).
    max_side : int
        Longest side the coarsest level may have.

    Returns
    -------
    list of Level
        Factors 1, 2, 4, ...; a level of factor ``f`` has ``ceil(n / f)`` pixels per side.

    Examples
    --------
    >>> [lv.factor for lv in pyramid_levels((3000, 500), 1024)]
    [1, 2, 4]
    """
    ny, nx = (int(v) for v in shape_yx[-2:])
    levels = [Level(path="0", factor=1)]
    factor = 1
    while max(-(-ny // factor), -(-nx // factor)) > max_side:
        factor *= 2
        levels.append(Level(path=str(len(levels)), factor=factor))
    return levels


def downsample(data: np.ndarray, factor: int, *, labels: bool) -> np.ndarray:
    """Downsample the last two axes by ``factor``; the result has ceil(n / factor) pixels.

    Parameters
    ----------
    data : numpy.ndarray
        Array of at least two dimensions (the last two are y, x).
    factor : int
        Downsampling factor (1 returns ``data`` itself).
    labels : bool
        Label image: take the top-left pixel of each block. Intensities: the mean of each
        ``factor`` x ``factor`` block, ignoring NaN (a block that is all NaN stays NaN).

    Returns
    -------
    numpy.ndarray
        Of the dtype of ``data``.
    """
    if factor == 1:
        return data
    if labels:
        return np.ascontiguousarray(data[..., ::factor, ::factor])
    ny, nx = data.shape[-2:]
    my, mx = -(-ny // factor), -(-nx // factor)
    padded = np.full(data.shape[:-2] + (my * factor, mx * factor), np.nan, dtype=np.float64)
    padded[..., :ny, :nx] = data
    blocks = padded.reshape(data.shape[:-2] + (my, factor, mx, factor))
    count = np.isfinite(blocks).sum(axis=(-3, -1))
    total = np.where(np.isfinite(blocks), blocks, 0.0).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean.astype(data.dtype)
