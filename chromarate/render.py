"""Render localizations into a 2-D density map.

Pixel (0, 0) covers ``[origin_y, origin_y + p) x [origin_x, origin_x + p)`` and the data
array is indexed (y, x) = (row, col), as everywhere in chromarate.

Methods
-------
``"histogram"`` (default)
    Each localization adds one count to the pixel that contains it.
``"gaussian"``
    Each localization is a unit-mass 2-D Gaussian of standard deviation ``sigma`` (its
    ``precision_nm``, or ``RenderConfig.fixed_sigma_nm``), integrated over the pixels.
    Splatting every localization separately costs O(n sigma^2); instead the sigmas are
    put on a geometric lattice ``q**j`` pixels (anchored at 1 px, so the classes do not
    depend on the rest of the data) and each localization is split between the two
    lattice sigmas around its own, ``c <= sigma < q c``, with weights ``w`` and ``1 - w``
    chosen so that its mass and its variance stay exact (``w c^2 + (1 - w) q^2 c^2 =
    sigma^2``). Each class is histogrammed with these weights, convolved with the
    pixel-integrated Gaussian of the class sigma (separable; directly for short kernels, by
    FFT for long ones, or splatted localization by localization when the class is sparse;
    all three give the same numbers) and the classes are summed. Cost: one weighted
    histogram per class plus one convolution of the grid per dense class.

    Error bound. The variance-matched mixture of Gaussians of sigmas c and q c differs
    from the Gaussian of sigma s by at most ``0.62 (q - 1)^2`` of the localization's mass
    in L1 norm (computed numerically; the supremum is the limit q -> 1). ``q`` is chosen
    as ``1 + sqrt(sigma_tolerance / 0.62)``, so the L1 error per localization is at most
    ``RenderConfig.sigma_tolerance`` (default 1 %; ``meta["sigma_l1_error_max"]``). One
    sigma for all (e.g. ``fixed_sigma_nm``) is rendered exactly. Sigmas below 0.1 grid
    pixel are rendered as points: their pixel-integrated Gaussian puts more than
    ``1 - 6e-7`` of the mass into the centre pixel. As with the histogram, a
    localization's position is known to its pixel (half a pixel per axis); averaged over
    sub-pixel positions the rendered profile equals that of exact splatting. Mass that
    the Gaussians carry across the border of the grid is lost (``meta["edge_loss"]``);
    otherwise the map sums to the number of rendered localizations.

``RenderConfig.supersample`` = s renders either method on a grid of pixel ``p / s``: the
output's ``pixel_size_nm`` is then ``p / s`` and its shape s times larger per axis.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage
from scipy.special import ndtr

from ._types import DensityMap, Localizations
from .config import RenderConfig
from .errors import StageError

__all__ = ["FALLBACK_SIGMA_NM", "MAX_PIXELS", "render_density"]

#: Largest number of pixels a rendered grid may have (float32: 800 MB).
MAX_PIXELS = 200_000_000

#: Largest localization precision (nm) a Gaussian is rendered with, and that counts in the
#: recorded blur: a micrometre is no localization (failed fits report 1e5 nm and more).
MAX_PRECISION_NM = 1000.0

#: Sigma (nm) of ``method="gaussian"`` when the table has no ``precision_nm`` column and
#: ``RenderConfig.fixed_sigma_nm`` is not set (recorded in ``meta["sigma_source"]``).
FALLBACK_SIGMA_NM = 20.0

# Tolerance (in pixels) under which a bounds extent is taken as a whole number of pixels.
_WHOLE_PIXEL_TOL = 1e-9

# Sigmas below this many grid pixels are rendered as points (see the module docstring).
_POINT_SIGMA_PX = 0.1

# Gaussian kernels are truncated at this many sigmas (and renormalised to unit sum).
_TRUNCATE = 4.0

# L1 error of the variance-matched two-class mixture per (q - 1)^2 (see _class_ratio).
_MIX_L1_CONSTANT = 0.62

# Cost model of the three ways to render a sigma class (ns; measured with numpy 2.4 and
# scipy 1.16 on one core): a separable direct convolution of the grid per pixel and per
# tap, one FFT pass per pixel, a splatted tap per localization. Only speed depends on it.
_NS_DIRECT_PIXEL = 17.0
_NS_DIRECT_TAP = 1.3
_NS_FFT_PIXEL = 22.0
_NS_SPLAT_ENTRY = 40.0
_NS_SPLAT_PIXEL = 8.0
_FORCE_PATH: str | None = None  # tests set "direct", "fft" or "splat"
# Largest number of taps splatted at once (memory: about 40 bytes each).
_SPLAT_CHUNK = 2_000_000


def render_density(
    locs: Localizations,
    config: RenderConfig = RenderConfig(),
    *,
    bounds_nm: Sequence[Sequence[float]] | None = None,
) -> DensityMap:
    """Render localizations into a density map (localizations per pixel).

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm`` and ``y_nm`` columns (nanometres); ``method="gaussian"`` also
        reads ``precision_nm`` unless ``fixed_sigma_nm`` is set.
    config : RenderConfig, optional
        ``pixel_size_nm`` (P), ``padding_nm``, ``method`` (``"histogram"`` or
        ``"gaussian"``), ``supersample`` (s; the grid pixel is p = P / s) and, for
        ``"gaussian"``, ``fixed_sigma_nm``, ``min_sigma_nm`` and ``sigma_tolerance``.
    bounds_nm : ((y0, x0), (y1, x1)), optional
        Region to render, in nm. The grid starts exactly at ``(y0, x0)`` and covers the
        bounds rounded up to whole pixels p; localizations outside that grid are dropped
        (and not counted in ``meta["n_rendered"]``). ``padding_nm`` is ignored.
        Without bounds the grid covers all localizations plus ``padding_nm`` on every
        side, and its origin is ``floor((min - padding) / P) * P`` per axis, so grid lines
        lie at integer multiples of P (a synthetic grid that starts at 0 lines up), and
        the supersampled grid subdivides that grid.

    Returns
    -------
    DensityMap
        float32 ``(ny, nx)`` map, ``pixel_size_nm = P / s``, ``origin_nm = (y0, x0)`` and
        ``meta`` with ``n_localizations`` (input rows), ``n_rendered`` (rows inside the
        grid), ``method`` and ``supersample``. ``"gaussian"`` adds ``sigma_source``
        (``"precision_nm"``, ``"fixed_sigma_nm"`` or the fallback used), ``sigma_nm``
        (min and max used), ``sigma_classes``, ``sigma_class_ratio`` (None when one sigma
        is used), ``sigma_l1_error_max`` (bound of the shape error per localization) and
        ``edge_loss`` (rendered mass lost across the grid border).

    Raises
    ------
    StageError
        If there are no localizations, a coordinate is not finite, a ``precision_nm``
        used as sigma is negative or not finite, the bounds are empty or not finite, or
        the grid would exceed :data:`MAX_PIXELS` pixels.
    TypeError
        If ``locs`` or ``config`` have the wrong type.

    Examples
    --------
    >>> import pandas as pd
    >>> from chromarate import Localizations, RenderConfig
    >>> locs = Localizations(table=pd.DataFrame({"x_nm": [5.0, 25.0, 26.0],
    ...                                          "y_nm": [5.0, 5.0, 45.0]}))
    >>> dm = render_density(locs, RenderConfig(pixel_size_nm=20, padding_nm=0))
    >>> dm.origin_nm, dm.shape
    ((0.0, 0.0), (3, 2))
    >>> dm.data.tolist()
    [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]

    A Gaussian rendering keeps the total (here far from the border):

    >>> locs = Localizations(table=pd.DataFrame({"x_nm": [500.0], "y_nm": [500.0],
    ...                                          "precision_nm": [30.0]}))
    >>> g = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=10))
    >>> round(float(g.data.sum()), 5), g.meta["sigma_source"]
    (1.0, 'precision_nm')
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
    del bad
    # Sigmas are validated before the (possibly large) grid is built.
    sigma, sigma_source = (_sigmas_nm(table, config) if config.method == "gaussian"
                           else (None, None))

    P = float(config.pixel_size_nm)
    s = int(config.supersample)
    p = P / s if s > 1 else P
    keep = None  # rows that land on the grid (None: all of them)
    if bounds_nm is None:
        pad = float(config.padding_nm)
        ky = math.floor((y.min() - pad) / P)
        kx = math.floor((x.min() - pad) / P)
        lo_y, hi_y, lo_x, hi_x = float(y.min()), float(y.max()), float(x.min()), float(x.max())

        def grid_at(q: float) -> tuple[int, int]:  # the grid at config pixel q
            return ((math.floor((hi_y + pad) / q) - math.floor((lo_y - pad) / q) + 1) * s,
                    (math.floor((hi_x + pad) / q) - math.floor((lo_x - pad) / q) + 1) * s)

        ny, nx = grid_at(P)
        origin = (ky * P, kx * P)
        _check_size(ny, nx, p, f" (the localizations span y {lo_y:.6g} ... {hi_y:.6g} nm, "
                               f"x {lo_x:.6g} ... {hi_x:.6g} nm)", s, grid_at)
        # Index from floor(coord / p) so that pixel edges are exactly the multiples of p.
        iy = np.floor(y / p).astype(np.int64)
        iy -= ky * s
        ix = np.floor(x / p).astype(np.int64)
        ix -= kx * s
    else:
        (y0, x0), (y1, x1) = _parse_bounds(bounds_nm)
        ny = _whole_pixels(y1 - y0, p)
        nx = _whole_pixels(x1 - x0, p)
        origin = (y0, x0)
        _check_size(ny, nx, p, supersample=s,
                    grid_at=lambda q: (_whole_pixels(y1 - y0, q / s), _whole_pixels(x1 - x0, q / s)))
        fy = np.floor((y - y0) / p)
        fx = np.floor((x - x0) / p)
        keep = (fy >= 0) & (fy < ny) & (fx >= 0) & (fx < nx)  # before casting far values
        iy = fy[keep].astype(np.int64)
        ix = fx[keep].astype(np.int64)
        del fy, fx

    inside = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    all_inside = bool(inside.all())
    flat = iy * nx
    flat += ix
    del iy, ix
    if not all_inside:
        flat = flat[inside]
    meta = {
        "n_localizations": int(n_total),
        "n_rendered": int(flat.size),
        "method": config.method,
        "supersample": s,
        "blur_nm": _blur_nm(table, sigma, p),
    }
    if config.method == "histogram":
        counts = np.bincount(flat, minlength=ny * nx)
        data = counts.astype(np.float32).reshape(ny, nx)
    else:
        if sigma.ndim == 1:  # per-localization sigmas: follow the rows that were kept
            if keep is not None:
                sigma = sigma[keep]
            if not all_inside:
                sigma = sigma[inside]
        data, gmeta = _render_gaussian(flat, sigma, ny, nx, p, float(config.sigma_tolerance))
        meta.update({"sigma_source": sigma_source, **gmeta})
        meta["edge_loss"] = float(flat.size - data.sum(dtype=np.float64))
    return DensityMap(data=data, pixel_size_nm=p, origin_nm=(float(origin[0]), float(origin[1])),
                      meta=meta)


def _sigmas_nm(table, config: RenderConfig) -> tuple[np.ndarray, str]:
    """Sigma of every localization (nm): an (n,) array, or a 0-d array when constant."""
    floor = float(config.min_sigma_nm)
    if config.fixed_sigma_nm is not None:
        return np.asarray(max(float(config.fixed_sigma_nm), floor)), "fixed_sigma_nm"
    if "precision_nm" not in table.columns:
        source = (f"fallback {FALLBACK_SIGMA_NM:g} nm: the table has no precision_nm column "
                  f"(set fixed_sigma_nm to choose the sigma)")
        return np.asarray(max(FALLBACK_SIGMA_NM, floor)), source
    try:
        sig = table["precision_nm"].to_numpy(dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise StageError(f"precision_nm must be numeric to render Gaussians: {exc}") from exc
    _refuse_precisions(sig, ~np.isfinite(sig) | (sig < 0), "missing, non-finite or negative",
                       "drop them")
    _refuse_precisions(sig, sig > MAX_PRECISION_NM, f"above {MAX_PRECISION_NM:g} nm",
                       "failed fits, or a precision in another unit: drop them with "
                       "filter.max_precision_nm (e.g. 100)")
    if floor > 0:
        np.maximum(sig, floor, out=sig)
    return sig, "precision_nm"


def _refuse_precisions(sig: np.ndarray, bad: np.ndarray, what: str, remedy: str) -> None:
    """Refuse the table if any localization's precision is ``bad`` (``what`` it is)."""
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise StageError(
            f"{int(bad.sum())} of {sig.size} localizations have a precision_nm {what} "
            f"(first at row {first}, value {float(sig[first])!r}); {remedy}, or set "
            f"render.fixed_sigma_nm to render every localization with one sigma")


def _blur_nm(table, sigma: np.ndarray | None, pixel_nm: float) -> float:
    """Standard deviation (nm) of the blur between the molecules and the rendered map.

    In quadrature: the localization error (rms ``precision_nm``; taken as none when the
    table has no usable precision), the rendered Gaussians (rms sigma; none for
    histograms) and the pixel (``p^2 / 12``). Recorded as ``meta["blur_nm"]`` for the
    fit's blur correction (:mod:`chromarate.fit.blur`).
    """
    var = pixel_nm**2 / 12.0
    if "precision_nm" in table.columns:
        try:
            prec = table["precision_nm"].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):  # not numeric: no usable precision
            prec = np.empty(0)
        prec = prec[np.isfinite(prec) & (prec >= 0) & (prec <= MAX_PRECISION_NM)]
        if prec.size:
            var += float(np.mean(prec**2))
    if sigma is not None:
        var += float(np.mean(np.square(sigma, dtype=np.float64)))
    return float(math.sqrt(var))


def _gauss_kernel(sigma_px: float) -> np.ndarray:
    """Pixel-integrated, truncated, unit-sum 1-D Gaussian centred on the middle tap."""
    r = max(1, int(math.ceil(_TRUNCATE * sigma_px)))
    edges = (np.arange(-r, r + 2, dtype=np.float64) - 0.5) / sigma_px
    k = np.diff(ndtr(edges))
    return k / k.sum()


def _class_ratio(tol: float) -> float:
    """Ratio q of neighbouring class sigmas for an L1 shape error of at most ``tol``.

    The L1 distance between a 2-D Gaussian of sigma s and the variance-matched mixture of
    Gaussians of sigmas c and q c (c <= s <= q c) is at most 0.62 (q - 1)^2 of its mass
    (computed numerically; the worst case is at the limit q -> 1).
    """
    return 1.0 + math.sqrt(tol / _MIX_L1_CONSTANT)


def _render_gaussian(flat: np.ndarray, sigma: np.ndarray, ny: int, nx: int, p: float,
                     tol: float) -> tuple[np.ndarray, dict]:
    """Sum of pixel-integrated Gaussians at the flat pixel indices (see module docstring)."""
    if flat.size == 0:
        return np.zeros((ny, nx), np.float32), {"sigma_nm": None, "sigma_classes": 0,
                                                "sigma_class_ratio": None,
                                                "sigma_l1_error_max": 0.0}
    if sigma.ndim == 1 and sigma.min() == sigma.max():
        sigma = np.asarray(sigma[0])
    if sigma.ndim == 0:  # one sigma for all: a single, exact class
        s_nm = float(sigma)
        classes = [(s_nm / p, [(flat, None)])]
        sig_range = (s_nm, s_nm)
        q = None
    else:
        q = _class_ratio(tol)
        sig_range = (float(sigma.min()), float(sigma.max()))
        classes = _sigma_classes(flat, sigma / p, q)

    out = np.zeros((ny, nx), np.float32)
    plans = []
    for s_px, members in classes:
        if s_px < _POINT_SIGMA_PX:
            plans.append(("point", None))
            continue
        k = _gauss_kernel(s_px)
        m = sum(idx.size for idx, _ in members)
        plans.append((_cheapest_path(ny * nx, m, k.size), k))
    fft = _FFTAccumulator(ny, nx, [k for how, k in plans if how == "fft"])
    for (s_px, members), (how, k) in zip(classes, plans):
        if how == "splat":
            _splat(out, *_concat(members), k)
            continue
        hist = _weighted_hist(members, ny * nx).reshape(ny, nx)
        if how == "point":
            out += hist
        elif how == "fft":
            fft.add(hist, k)
        else:
            tmp = ndimage.correlate1d(hist, k, axis=0, mode="constant", output=np.float32)
            out += ndimage.correlate1d(tmp, k, axis=1, mode="constant", output=np.float32)
        del hist
    fft.add_result_to(out)
    meta = {"sigma_nm": {"min": sig_range[0], "max": sig_range[1]},
            "sigma_classes": len(classes),
            "sigma_class_ratio": q,
            "sigma_l1_error_max": 0.0 if q is None else _MIX_L1_CONSTANT * (q - 1.0) ** 2}
    return out, meta


def _cheapest_path(npx: int, m: int, taps: int) -> str:
    """Cheapest way to render one class: "direct", "fft" or "splat" (cost model in ns)."""
    if _FORCE_PATH is not None:
        return _FORCE_PATH
    costs = {
        "direct": npx * (_NS_DIRECT_PIXEL + _NS_DIRECT_TAP * taps),
        "fft": npx * _NS_FFT_PIXEL,
        "splat": m * taps * taps * _NS_SPLAT_ENTRY + npx * _NS_SPLAT_PIXEL,
    }
    return min(costs, key=costs.get)


def _concat(members) -> tuple[np.ndarray, np.ndarray | None]:
    """One (flat indices, weights or None) pair from several."""
    if len(members) == 1:
        return members[0]
    idx = np.concatenate([i for i, _ in members])
    w = np.concatenate([np.ones(i.size) if wi is None else wi for i, wi in members])
    return idx, w


def _weighted_hist(members, npx: int) -> np.ndarray:
    """float32 histogram of (flat indices, weights or None) pairs, in one bincount."""
    idx, w = _concat(members)
    return np.bincount(idx, weights=w, minlength=npx).astype(np.float32)


def _splat(out: np.ndarray, idx: np.ndarray, w: np.ndarray | None, k: np.ndarray) -> None:
    """Add outer(k, k) * w at every flat index into ``out`` (zero boundary), in chunks."""
    ny, nx = out.shape
    r = (k.size - 1) // 2
    off = np.arange(-r, r + 1)
    chunk = max(1, _SPLAT_CHUNK // (k.size * k.size))
    flat_out = out.reshape(-1)
    for a in range(0, idx.size, chunk):
        f = idx[a: a + chunk]
        iy, ix = np.divmod(f, nx)
        rows = iy[:, None] + off[None, :]                       # (m, T)
        cols = ix[:, None] + off[None, :]
        wy = np.where((rows >= 0) & (rows < ny), k[None, :], 0.0)
        wx = np.where((cols >= 0) & (cols < nx), k[None, :], 0.0)
        if w is not None:
            wy = wy * w[a: a + chunk, None]
        np.clip(rows, 0, ny - 1, out=rows)
        np.clip(cols, 0, nx - 1, out=cols)
        target = (rows[:, :, None] * nx + cols[:, None, :]).ravel()
        weight = (wy[:, :, None] * wx[:, None, :]).ravel()
        flat_out += np.bincount(target, weights=weight, minlength=flat_out.size).astype(
            np.float32)


def _sigma_classes(flat: np.ndarray, s_px: np.ndarray, q: float):
    """Split every localization between the two lattice sigmas around its own.

    The lattice is ``q**j`` pixels (integer j, anchored at 1 px, independent of the data).
    A localization of sigma s with ``q**j <= s < q**(j+1)`` goes to class j with weight
    ``w = (c_hi^2 - s^2) / (c_hi^2 - c_lo^2)`` and to class j + 1 with weight 1 - w, which
    keeps its mass and its variance exact. Sigmas below 0.1 px go to a point class.

    Returns ``[(class sigma in px, [(flat indices, weights or None), ...]), ...]``.
    """
    log_q = math.log(q)
    point = s_px < _POINT_SIGMA_PX
    work = np.maximum(s_px, _POINT_SIGMA_PX)
    np.log(work, out=work)
    work /= log_q
    np.floor(work, out=work)                   # lower lattice index j
    j_min = int(work.min())
    work -= j_min - 1                          # codes from 1; 0 is the point class
    work[point] = 0.0
    n_codes = int(work.max()) + 1
    code = work.astype(np.int16 if n_codes < 2**15 - 2 else np.int32)
    del work
    del point
    counts = np.bincount(code, minlength=n_codes)
    order = np.argsort(code, kind="stable")    # radix sort for small integer codes
    del code
    flat_sorted = flat[order]
    s_sorted = s_px[order]
    del order
    starts = np.concatenate(([0], np.cumsum(counts)))
    # weight of the lower lattice sigma c_lo = q^j: (c_hi^2 - s^2) / (c_hi^2 - c_lo^2)
    w_lo = np.ones_like(s_sorted)
    for c in range(1, n_codes):
        sl = slice(int(starts[c]), int(starts[c + 1]))
        if sl.start == sl.stop:
            continue
        lo2 = q ** (2.0 * (c - 1 + j_min))
        hi2 = lo2 * q * q
        w = np.square(s_sorted[sl])
        np.subtract(hi2, w, out=w)
        w /= hi2 - lo2
        np.clip(w, 0.0, 1.0, out=w)
        w_lo[sl] = w
    del s_sorted
    w_up = 1.0 - w_lo
    classes = []
    if counts[0]:
        classes.append((0.0, [(flat_sorted[: starts[1]], None)]))
    for c in range(1, n_codes + 1):
        members = []
        if c < n_codes and counts[c]:                       # lower end of its interval
            sl = slice(int(starts[c]), int(starts[c + 1]))
            members.append((flat_sorted[sl], w_lo[sl]))
        if c - 1 >= 1 and counts[c - 1]:                    # upper end of the one below
            sl = slice(int(starts[c - 1]), int(starts[c]))
            members.append((flat_sorted[sl], w_up[sl]))
        if members:
            classes.append((q ** (c - 1 + j_min), members))
    return classes


class _FFTAccumulator:
    """Accumulates the spectra of 2-D linear (zero-boundary) convolutions hist * (k outer k).

    Gives the same numbers as ``correlate1d(..., mode="constant")`` along both axes (the
    kernels are symmetric), up to float rounding, with one real FFT per class and one
    inverse FFT in all. The padded size is chosen for the longest kernel given.
    """

    def __init__(self, ny: int, nx: int, kernels: list[np.ndarray]) -> None:
        self.ny, self.nx = ny, nx
        r = max(((k.size - 1) // 2 for k in kernels), default=0)
        # no wrap-around into the kept region when the period is >= n + r
        self.ly = sp_fft.next_fast_len(ny + r, real=True)
        self.lx = sp_fft.next_fast_len(nx + r, real=True)
        self.acc = None

    def _spectrum(self, k: np.ndarray, n: int, real: bool) -> np.ndarray:
        rk = (k.size - 1) // 2
        circ = np.zeros(n, np.float64)
        circ[: rk + 1] = k[rk:]          # centre at index 0, negative taps wrapped round
        circ[n - rk:] = k[:rk]
        spec = sp_fft.rfft(circ) if real else sp_fft.fft(circ)
        return spec.real.astype(np.float32)  # symmetric kernel: real spectrum

    def add(self, hist: np.ndarray, k: np.ndarray) -> None:
        spec = sp_fft.rfft2(hist, s=(self.ly, self.lx), workers=-1)
        spec *= self._spectrum(k, self.ly, real=False)[:, None]
        spec *= self._spectrum(k, self.lx, real=True)[None, :]
        if self.acc is None:
            self.acc = spec
        else:
            self.acc += spec

    def add_result_to(self, out: np.ndarray) -> None:
        if self.acc is None:
            return
        res = sp_fft.irfft2(self.acc, s=(self.ly, self.lx), workers=-1)[: self.ny, : self.nx]
        self.acc = None
        np.maximum(res, 0.0, out=res)  # true values are >= 0: drop float32 rounding noise
        out += res


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


def _max_config_pixel_nm() -> float:
    """The largest ``render.pixel_size_nm`` a pipeline config takes (its ``le`` bound): a
    larger pixel is never the way out of a grid too large to render."""
    bounds = [m.le for m in RenderConfig.model_fields["pixel_size_nm"].metadata
              if getattr(m, "le", None) is not None]
    return float(min(bounds)) if bounds else math.inf


def _check_size(ny: int, nx: int, p: float, span: str = "", supersample: int = 1,
                grid_at=None) -> None:
    """Refuse a grid above :data:`MAX_PIXELS`, saying how large the data spread and what to
    change (``span``: the coordinates' extent, for the message; ``p`` the rendered pixel,
    ``supersample`` times smaller than the config's ``pixel_size_nm`` the advice is for;
    ``grid_at(q)``, the grid's shape at config pixel ``q``, makes the suggested pixel one
    whose grid, padding and rounding included, fits)."""
    n = ny * nx
    if n > MAX_PIXELS:
        suggest = math.ceil(p * supersample * math.sqrt(n / MAX_PIXELS))
        cap = _max_config_pixel_nm()
        while grid_at is not None and suggest <= cap and math.prod(grid_at(suggest)) > MAX_PIXELS:
            suggest += max(1, math.ceil(0.01 * suggest))
        coarser = (f"use pixel_size_nm >= {suggest} (render.pixel_size_nm in a pipeline "
                   "config), or " if suggest <= cap else "")
        finer = f" (supersampled {supersample} x)" if supersample > 1 else ""
        raise StageError(
            f"the density grid would be {ny} x {nx} = {n:.3g} pixels at "
            f"pixel_size_nm={p * supersample:g}{finer}, above the limit of "
            f"{MAX_PIXELS:.0e}{span}; {coarser}"
            f"keep a smaller region (filter.region_nm in a pipeline config, bounds_nm here) "
            f"or remove the outlying rows; check that the coordinates are in nm"
        )
