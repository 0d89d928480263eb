"""Segment nuclei from a density map.

Steps, shared by :func:`segment_nuclei` (every nucleus of a field of view) and
:func:`segment_nucleus` (the single largest one):

1. Gaussian smoothing (``smooth_sigma_nm``);
2. a global threshold: Otsu's, the triangle method, Li's, or a fixed fraction of the
   smoothed maximum;
3. hole filling (``fill_holes``) and an optional binary opening with a disk of radius
   ``opening_nm`` (removes thin bridges and spurs);
4. 8-connected components, optionally split where touching nuclei meet
   (``split_touching``: watershed of the distance transform from its h-maxima, with
   h = ``split_depth_nm``, so that a neck is cut only where it is clearly narrower than
   the nuclei on both sides; an elongated object with a flat ridge stays whole);
5. dropping objects that touch the image border (``exclude_border``) or whose area is
   outside ``[min_area_um2, max_area_um2]``.

Labels are numbered 1..N in raster order of each object's first pixel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_li, threshold_otsu, threshold_triangle
from skimage.morphology import disk, h_maxima
from skimage.segmentation import watershed

from ._types import DensityMap, NucleusCrop, stage_input
from .config import SegmentConfig
from .errors import SegmentationError, StageError

__all__ = ["crop_to_mask", "segment_foreground", "segment_nuclei", "segment_nucleus"]

_EIGHT = np.ones((3, 3), dtype=bool)


def segment_nuclei(
    density: DensityMap, config: SegmentConfig = SegmentConfig()
) -> tuple[np.ndarray, list[NucleusCrop]]:
    """Label every nucleus in a density map (a field of view).

    Parameters
    ----------
    density : DensityMap
        2-D map (counts per pixel), raw or denoised.
    config : SegmentConfig, optional
        ``smooth_sigma_nm``, ``threshold`` (``"otsu"``, ``"triangle"``, ``"li"`` or a
        fraction of the smoothed maximum), ``fill_holes``, ``opening_nm``, ``split_touching`` and
        ``split_depth_nm``, ``exclude_border``, ``min_area_um2`` and ``max_area_um2``,
        ``crop_margin_px`` (see the module docstring).

    Returns
    -------
    labels : numpy.ndarray
        int32 image of the density's shape: 0 background, 1..N one label per nucleus.
    crops : list of NucleusCrop
        One per label, in label order: ``nucleus_id`` (the label), ``slices`` (bounding
        box grown by ``crop_margin_px`` and clipped to the image), ``mask`` (bool, that
        nucleus only, on the crop) and ``origin_nm`` (corner of the crop's pixel (0, 0):
        ``density.origin_nm + (row0, col0) * pixel_size_nm``), so crops map back to the
        parent grid and to localization coordinates.

    Raises
    ------
    SegmentationError
        If the map is empty or flat, no pixel exceeds the threshold, or no object is left
        after the border and area limits (the message says how many objects each limit
        removed and the area range found).
    StageError
        If the map is not 2-D or holds non-finite values.
    TypeError
        If ``density`` or ``config`` have the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate import DensityMap, SegmentConfig
    >>> yy, xx = np.mgrid[:200, :300]
    >>> img = (((yy - 100) ** 2 + (xx - 70) ** 2 < 50 ** 2)
    ...        | ((yy - 100) ** 2 + (xx - 220) ** 2 < 40 ** 2)).astype(np.float32)
    >>> labels, crops = segment_nuclei(DensityMap(img, 20.0, origin_nm=(0.0, 1000.0)),
    ...                                SegmentConfig(smooth_sigma_nm=60, crop_margin_px=5))
    >>> labels.dtype, int(labels.max()), [c.nucleus_id for c in crops]
    (dtype('int32'), 2, [1, 2])
    >>> crops[1].slices, crops[1].origin_nm
    ((slice(56, 145, None), slice(176, 265, None)), (1120.0, 4520.0))
    """
    data, p = stage_input(density, config, SegmentConfig, StageError)
    labels = _labels(data, p, config)
    labels, report = _filter_objects(labels, p, config)
    if report["kept"] == 0:
        raise SegmentationError(_nothing_left_message(report, config))
    crops = _crops(labels, density, p, int(config.crop_margin_px))
    return labels, crops


def segment_nucleus(density: DensityMap, config: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """Find the nucleus in a density map: the largest object that passes the limits.

    Parameters
    ----------
    density : DensityMap
        2-D map (counts per pixel), raw or denoised.
    config : SegmentConfig, optional
        ``smooth_sigma_nm``: Gaussian smoothing before thresholding.
        ``threshold``: ``"otsu"`` (Otsu's threshold of the smoothed map), ``"triangle"``,
        ``"li"`` (scikit-image's triangle and Li thresholds) or a fraction ``f`` in (0, 1):
        pixels above ``f * max(smoothed)`` are foreground.
        ``fill_holes``: fill enclosed holes of the foreground before choosing a component.
        ``min_area_um2``: smallest accepted nucleus area. The other settings
        (``opening_nm``, ``split_touching``, ``exclude_border``, ``max_area_um2``) act as
        in :func:`segment_nuclei`; ``crop_margin_px`` is not used.

    Returns
    -------
    numpy.ndarray
        bool mask of the density's shape, True on the largest remaining object
        (8-connected component, or watershed piece with ``split_touching``).

    Raises
    ------
    SegmentationError
        If the map is empty or flat (no threshold separates anything), no pixel is above
        the threshold, or no object passes the limits, e.g. the largest is smaller than
        ``min_area_um2`` (the message gives the measured area and the limit).
    StageError
        If the map is not 2-D or holds non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate import DensityMap, SegmentConfig
    >>> yy, xx = np.mgrid[:200, :200]
    >>> img = ((yy - 100) ** 2 + (xx - 100) ** 2 < 60 ** 2).astype(np.float32)
    >>> mask = segment_nucleus(DensityMap(img, 20.0), SegmentConfig(smooth_sigma_nm=60))
    >>> mask.dtype, bool(mask[100, 100]), bool(mask[5, 5])
    (dtype('bool'), True, False)
    """
    data, p = stage_input(density, config, SegmentConfig, StageError)
    labels = _labels(data, p, config)
    labels, report = _filter_objects(labels, p, config)
    if report["kept"] == 0:
        raise SegmentationError(_nothing_left_message(report, config))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def segment_foreground(density: DensityMap, config: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """Every object segmentation finds, before the area and border limits drop some.

    Parameters
    ----------
    density : DensityMap
    config : SegmentConfig

    Returns
    -------
    numpy.ndarray
        bool map: the thresholded, filled and opened foreground (what
        :func:`segment_nuclei` labels, the objects it then drops included). Pixels the
        background estimate must keep clear of (:mod:`chromarate.background`).
    """
    data, p = stage_input(density, config, SegmentConfig, StageError)
    return _foreground(data, p, config)


# --------------------------------------------------------------------------------------
# shared steps
# --------------------------------------------------------------------------------------

def _foreground(data: np.ndarray, p: float, config: SegmentConfig) -> np.ndarray:
    """Smooth, threshold, fill holes, open: the bool foreground."""
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
    elif config.threshold == "triangle":
        thresh = float(threshold_triangle(smoothed))
    elif config.threshold == "li":
        thresh = float(threshold_li(smoothed))
    else:
        thresh = float(config.threshold) * vmax
    foreground = smoothed > thresh
    if not foreground.any():
        raise SegmentationError(
            f"no pixel of the smoothed density exceeds the threshold {thresh:.4g}"
        )
    if config.fill_holes:
        foreground = ndimage.binary_fill_holes(foreground)
    radius = int(round(float(config.opening_nm) / p))
    if radius >= 1:
        foreground = ndimage.binary_opening(foreground, structure=disk(radius))
        if not foreground.any():
            raise SegmentationError(
                f"the opening with opening_nm={config.opening_nm:g} ({radius} px) removed "
                f"the whole foreground; use a smaller opening_nm"
            )
    return foreground


def _labels(data: np.ndarray, p: float, config: SegmentConfig) -> np.ndarray:
    """int32 labels of the foreground objects (before the border and area limits)."""
    foreground = _foreground(data, p, config)
    labels, _ = ndimage.label(foreground, structure=_EIGHT)
    if config.split_touching:
        labels = _split_touching(foreground, float(config.split_depth_nm) / p)
    return labels.astype(np.int32, copy=False)


def _split_touching(foreground: np.ndarray, depth_px: float) -> np.ndarray:
    """Watershed of the distance transform, seeded at its h-maxima (h = depth_px)."""
    dist = ndimage.distance_transform_edt(foreground)
    seeds = h_maxima(dist, depth_px).astype(bool) & foreground
    markers, n = ndimage.label(seeds, structure=_EIGHT)
    labels = watershed(-dist, markers, mask=foreground, connectivity=2)
    # objects too thin to hold a seed of height depth_px stay whole
    rest, n_rest = ndimage.label(foreground & (labels == 0), structure=_EIGHT)
    if n_rest:
        labels = np.where(rest > 0, rest + n, labels)
    return labels


def _filter_objects(labels: np.ndarray, p: float, config: SegmentConfig):
    """Drop border-touching and out-of-range objects; renumber 1..N in raster order.

    Each object is counted under the first limit it fails, in the order
    exclude_border, min_area_um2, max_area_um2.
    """
    n = int(labels.max())
    areas_um2 = np.bincount(labels.ravel(), minlength=n + 1) * (p * 1e-3) ** 2
    present = np.flatnonzero(areas_um2[1:] > 0) + 1
    keep = np.zeros(n + 1, bool)
    keep[present] = True
    report = {"found": int(present.size), "border": 0, "min_area": 0, "max_area": 0,
              "field_nm": (labels.shape[0] * p, labels.shape[1] * p),
              "area_range": ((float(areas_um2[present].min()), float(areas_um2[present].max()))
                             if present.size else (0.0, 0.0))}
    if config.exclude_border:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        edge = edge[edge > 0]
        report["border"] = int(keep[edge].sum())
        keep[edge] = False
    small = keep & (areas_um2 < config.min_area_um2)
    report["min_area"] = int(small.sum())
    keep &= ~small
    if config.max_area_um2 is not None:
        large = keep & (areas_um2 > config.max_area_um2)
        report["max_area"] = int(large.sum())
        keep &= ~large
    keep[0] = False
    kept = np.flatnonzero(keep)
    report["kept"] = int(kept.size)
    if kept.size == 0:
        return np.zeros_like(labels, dtype=np.int32), report
    # raster order of each kept object's first pixel
    ids, first = np.unique(labels.ravel(), return_index=True)
    first_of = dict(zip(ids.tolist(), first.tolist()))
    kept = sorted(kept.tolist(), key=first_of.__getitem__)
    lut = np.zeros(n + 1, np.int32)
    lut[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return lut[labels], report


#: A rendered field smaller than this on both sides cannot hold a nucleus: its coordinates
#: were most likely read in the wrong unit.
_FIELD_TOO_SMALL_NM = 2000.0


def _nothing_left_message(report: dict, config: SegmentConfig) -> str:
    lo, hi = report["area_range"]
    n = report["found"]
    parts = []
    if config.exclude_border:
        parts.append(f"exclude_border removed {report['border']}")
    parts.append(f"min_area_um2={config.min_area_um2:g} um^2 removed {report['min_area']}")
    if config.max_area_um2 is not None:
        parts.append(f"max_area_um2={config.max_area_um2:g} um^2 removed {report['max_area']}")
    if n == 1:
        found = f"the only segmented object (area {hi:.3g} um^2)"
    else:
        found = (f"all {n} segmented objects (largest area {hi:.3g} um^2, smallest "
                 f"{lo:.3g} um^2)")
    message = f"no nucleus left: {found} failed the limits: " + "; ".join(parts)
    fy, fx = report.get("field_nm", (np.inf, np.inf))
    if max(fy, fx) < _FIELD_TOO_SMALL_NM:
        message += (f"; the whole field is only {fy:.3g} x {fx:.3g} nm: are the coordinates in "
                    "um or camera pixels rather than nm? (a table whose header states no unit "
                    "is read with read.units, `chromarate run --units`)")
    return message


def _crops(labels: np.ndarray, density: DensityMap, p: float, margin: int) -> list[NucleusCrop]:
    ny, nx = labels.shape
    oy, ox = (float(v) for v in density.origin_nm)
    crops = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:  # cannot happen after renumbering; kept for safety
            continue
        rs = slice(max(sl[0].start - margin, 0), min(sl[0].stop + margin, ny))
        cs = slice(max(sl[1].start - margin, 0), min(sl[1].stop + margin, nx))
        crops.append(NucleusCrop(
            nucleus_id=i,
            mask=np.ascontiguousarray(labels[rs, cs] == i),
            slices=(rs, cs),
            origin_nm=(oy + rs.start * p, ox + cs.start * p),
        ))
    return crops


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
