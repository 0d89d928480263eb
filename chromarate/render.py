"""Render localizations into a 2-D density map.

The only method is a histogram: each localization adds one count to the pixel that
contains it. Pixel (0, 0) covers ``[origin_y, origin_y + p) x [origin_x, origin_x + p)``
and the data array is indexed (y, x) = (row, col), as everywhere in chromarate.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._types import DensityMap, Localizations
from .config import RenderConfig
from .errors import StageError

__all__ = ["MAX_PIXELS", "render_density"]

#: Largest number of pixels a rendered grid may have (float32: 800 MB).
MAX_PIXELS = 200_000_000

# Tolerance (in pixels) under which a bounds extent is taken as a whole number of pixels.
_WHOLE_PIXEL_TOL = 1e-9


def render_density(
    locs: Localizations,
    config: RenderConfig = RenderConfig(),
    *,
    bounds_nm: Sequence[Sequence[float]] | None = None,
) -> DensityMap:
    """Histogram localizations into a density map (counts per pixel).

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm`` and ``y_nm`` columns (nanometres).
    config : RenderConfig, optional
        ``pixel_size_nm`` (p), ``padding_nm`` and ``method`` (only ``"histogram"``).
    bounds_nm : ((y0, x0), (y1, x1)), optional
        Region to render, in nm. The grid starts exactly at ``(y0, x0)`` and covers the
        bounds rounded up to whole pixels; localizations outside that grid are dropped
        (and counted in ``meta["n_rendered"]``). ``padding_nm`` is ignored.
        Without bounds the grid covers all localizations plus ``padding_nm`` on every
        side, and its origin is ``floor((min - padding) / p) * p`` per axis, so grid lines
        lie at integer multiples of p (a synthetic grid that starts at 0 lines up).

    Returns
    -------
    DensityMap
        float32 ``(ny, nx)`` counts, ``pixel_size_nm = p``, ``origin_nm = (y0, x0)`` and
        ``meta`` with ``n_localizations`` (input rows), ``n_rendered`` (rows inside the
        grid) and ``method``.

    Raises
    ------
    StageError
        If there are no localizations, a coordinate is not finite, the bounds are
        empty or not finite, or the grid would exceed :data:`MAX_PIXELS` pixels.
    TypeError
        If ``locs`` or ``config`` have the wrong type.

    Examples
    --------
    >>> import pandas as pd
    >>> from chromarate._types import Localizations
    >>> from chromarate.config import RenderConfig
    >>> locs = Localizations(table=pd.DataFrame({"x_nm": [5.0, 25.0, 26.0],
    ...                                          "y_nm": [5.0, 5.0, 45.0]}))
    >>> dm = render_density(locs, RenderConfig(pixel_size_nm=20, padding_nm=0))
    >>> dm.origin_nm, dm.shape
    ((0.0, 0.0), (3, 2))
    >>> dm.data.tolist()
    [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
    """
    if not isinstance(locs, Localizations):
        raise TypeError(f"locs must be a chromarate Localizations, got {type(locs).__name__}")
    if not isinstance(config, RenderConfig):
        raise TypeError(f"config must be a RenderConfig, got {type(config).__name__}")
    table = locs.table
    missing = [c for c in ("x_nm", "y_nm") if c not in table.columns]
    if missing:
        raise StageError(
            f"localization table lacks required column(s) {missing}; "
            f"has {list(map(str, table.columns))}"
        )
    n_total = len(table)
    if n_total == 0:
        raise StageError("cannot render a density map from zero localizations")
    try:
        x = table["x_nm"].to_numpy(dtype=np.float64)
        y = table["y_nm"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StageError(f"x_nm/y_nm must be numeric: {exc}") from exc
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise StageError(
            f"{int(bad.sum())} of {n_total} localizations have non-finite x_nm/y_nm "
            f"(first at row {first}); drop or fix them before rendering"
        )

    p = float(config.pixel_size_nm)
    if bounds_nm is None:
        pad = float(config.padding_nm)
        ky = math.floor((y.min() - pad) / p)
        kx = math.floor((x.min() - pad) / p)
        ny = math.floor((y.max() + pad) / p) - ky + 1
        nx = math.floor((x.max() + pad) / p) - kx + 1
        origin = (ky * p, kx * p)
        _check_size(ny, nx, p)
        # Index from floor(coord / p) so that pixel edges are exactly the multiples of p.
        iy = np.floor(y / p).astype(np.int64) - ky
        ix = np.floor(x / p).astype(np.int64) - kx
    else:
        (y0, x0), (y1, x1) = _parse_bounds(bounds_nm)
        ny = _whole_pixels(y1 - y0, p)
        nx = _whole_pixels(x1 - x0, p)
        origin = (y0, x0)
        _check_size(ny, nx, p)
        fy = np.floor((y - y0) / p)
        fx = np.floor((x - x0) / p)
        keep = (fy >= 0) & (fy < ny) & (fx >= 0) & (fx < nx)  # before casting far values
        iy = fy[keep].astype(np.int64)
        ix = fx[keep].astype(np.int64)

    inside = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    flat = iy[inside] * nx + ix[inside]
    counts = np.bincount(flat, minlength=ny * nx)
    data = counts.astype(np.float32).reshape(ny, nx)
    meta = {
        "n_localizations": int(n_total),
        "n_rendered": int(flat.size),
        "method": config.method,
    }
    return DensityMap(data=data, pixel_size_nm=p, origin_nm=(float(origin[0]), float(origin[1])),
                      meta=meta)


def _parse_bounds(bounds_nm) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        arr = np.asarray(bounds_nm, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StageError(f"bounds_nm must be ((y0, x0), (y1, x1)) in nm: {exc}") from exc
    if arr.shape != (2, 2):
        raise StageError(f"bounds_nm must be ((y0, x0), (y1, x1)) in nm, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise StageError(f"bounds_nm must be finite, got {arr.tolist()}")
    (y0, x0), (y1, x1) = arr.tolist()
    if not (y1 > y0 and x1 > x0):
        raise StageError(f"bounds_nm must satisfy y1 > y0 and x1 > x0, got {arr.tolist()}")
    return (y0, x0), (y1, x1)


def _whole_pixels(extent: float, p: float) -> int:
    n = extent / p
    r = round(n)
    return int(r) if abs(n - r) < _WHOLE_PIXEL_TOL * max(1.0, n) else int(math.ceil(n))


def _check_size(ny: int, nx: int, p: float) -> None:
    n = ny * nx
    if n > MAX_PIXELS:
        suggest = math.ceil(p * math.sqrt(n / MAX_PIXELS))
        raise StageError(
            f"the density grid would be {ny} x {nx} = {n:.3g} pixels at "
            f"pixel_size_nm={p:g}, above the limit of {MAX_PIXELS:.0e}; use "
            f"pixel_size_nm >= {suggest} (or pass bounds_nm to render a smaller region; "
            f"check that the coordinates are in nm)"
        )
