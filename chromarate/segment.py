"""Segment the nucleus from a density map.

Steps: Gaussian smoothing (``smooth_sigma_nm``), a global threshold (Otsu's, or a fixed
fraction of the smoothed maximum), hole filling, and keeping the largest 8-connected
component. A nucleus smaller than ``min_area_um2`` is rejected.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from ._types import DensityMap
from .config import SegmentConfig
from .errors import SegmentationError, StageError

__all__ = ["crop_to_mask", "segment_nucleus"]

_EIGHT = np.ones((3, 3), dtype=bool)


def segment_nucleus(density: DensityMap, config: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """Find the nucleus in a density map.

    Parameters
    ----------
    density : DensityMap
        2-D map (counts per pixel), raw or denoised.
    config : SegmentConfig, optional
        ``smooth_sigma_nm``: Gaussian smoothing before thresholding.
        ``threshold``: ``"otsu"`` (Otsu's threshold of the smoothed map) or a fraction
        ``f`` in (0, 1): pixels above ``f * max(smoothed)`` are foreground.
        ``fill_holes``: fill enclosed holes of the foreground before choosing a component.
        ``min_area_um2``: smallest accepted nucleus area.

    Returns
    -------
    numpy.ndarray
        bool mask of the density's shape, True on the largest connected foreground
        component (8-connectivity).

    Raises
    ------
    SegmentationError
        If the map is empty or flat (no threshold separates anything), no pixel is above
        the threshold, or the largest component is smaller than ``min_area_um2`` (the
        message gives the measured area and the limit).
    StageError
        If the map is not 2-D or holds non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate._types import DensityMap
    >>> from chromarate.config import SegmentConfig
    >>> yy, xx = np.mgrid[:200, :200]
    >>> img = ((yy - 100) ** 2 + (xx - 100) ** 2 < 60 ** 2).astype(np.float32)
    >>> mask = segment_nucleus(DensityMap(img, 20.0), SegmentConfig(smooth_sigma_nm=60))
    >>> mask.dtype, bool(mask[100, 100]), bool(mask[5, 5])
    (dtype('bool'), True, False)
    """
    if not isinstance(density, DensityMap):
        raise TypeError(f"density must be a DensityMap, got {type(density).__name__}")
    if not isinstance(config, SegmentConfig):
        raise TypeError(f"config must be a SegmentConfig, got {type(config).__name__}")
    data = np.asarray(density.data)
    if data.ndim != 2 or data.size == 0:
        raise StageError(f"density map must be a non-empty 2-D array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise StageError("density map holds non-finite values (NaN or inf)")
    p = float(density.pixel_size_nm)
    if not (np.isfinite(p) and p > 0):
        raise StageError(f"density pixel_size_nm must be positive, got {density.pixel_size_nm}")

    smoothed = ndimage.gaussian_filter(
        data.astype(np.float64), sigma=float(config.smooth_sigma_nm) / p, mode="reflect"
    )
    vmin, vmax = float(smoothed.min()), float(smoothed.max())
    if vmax <= 0.0:
        raise SegmentationError("density map is empty (no localizations): no nucleus to segment")
    if vmax - vmin <= 1e-6 * abs(vmax):
        raise SegmentationError(
            "density map is flat after smoothing: no threshold separates a nucleus "
            "from the background"
        )
    if config.threshold == "otsu":
        thresh = float(threshold_otsu(smoothed))
    else:
        thresh = float(config.threshold) * vmax
    foreground = smoothed > thresh
    if not foreground.any():
        raise SegmentationError(
            f"no pixel of the smoothed density exceeds the threshold {thresh:.4g}"
        )
    if config.fill_holes:
        foreground = ndimage.binary_fill_holes(foreground)

    labels, n = ndimage.label(foreground, structure=_EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    mask = labels == largest

    area_um2 = float(sizes[largest]) * (p * 1e-3) ** 2
    if area_um2 < config.min_area_um2:
        raise SegmentationError(
            f"largest segmented object has area {area_um2:.3g} um^2, below the minimum "
            f"nucleus area min_area_um2={config.min_area_um2:g} um^2"
        )
    return mask


def crop_to_mask(mask: np.ndarray, margin_px: int = 0) -> tuple[slice, slice]:
    """Bounding box of a mask, grown by a margin and clipped to the image.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D array; nonzero pixels are inside.
    margin_px : int, optional
        Pixels added on every side (>= 0).

    Returns
    -------
    tuple of slice
        ``(rows, cols)`` such that ``mask[rows, cols]`` holds every True pixel with
        ``margin_px`` pixels around it, as far as the image allows.

    Raises
    ------
    SegmentationError
        If the mask is empty.
    StageError
        If the mask is not 2-D or the margin is negative.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((10, 10), bool); m[2:4, 5:9] = True
    >>> crop_to_mask(m, 2)
    (slice(0, 6, None), slice(3, 10, None))
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise StageError(f"mask must be 2-D, got shape {mask.shape}")
    if int(margin_px) != margin_px or margin_px < 0:
        raise StageError(f"margin_px must be a non-negative integer, got {margin_px!r}")
    margin = int(margin_px)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise SegmentationError("mask is empty: no bounding box")
    ny, nx = mask.shape
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, ny)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, nx)),
    )
