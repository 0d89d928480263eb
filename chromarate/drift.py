"""Estimate and correct sample drift by redundant cross-correlation (RCC).

The idea is that of Wang et al., "Localization events-based sample drift correction for
localization microscopy with redundant cross-correlation algorithm", Opt. Express 22,
15982 (2014):

1. split the frames into ``n`` time segments of equal frame span;
2. render each segment into a histogram image on one common grid;
3. cross-correlate every pair of segments ``i < j`` (FFT) and find the shift ``r_ij`` of
   segment ``j`` relative to segment ``i`` with sub-pixel accuracy;
4. solve the overdetermined system ``r_ij = d_j - d_i`` (``d_0 = 0``) in least squares,
   dropping pairs whose residual is an outlier while every segment stays constrained;
5. interpolate ``d`` between segment centres to every frame and subtract it.

Using all n(n-1)/2 pairs instead of only neighbours averages out the error of single
correlations, which is what makes RCC robust for sparse segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft

from ._types import Localizations
from .config import DriftConfig
from .errors import StageError

__all__ = ["DriftEstimate", "apply_drift", "correct_drift", "estimate_drift"]

#: Largest number of pixels of the grid the segments are rendered on.
MAX_PIXELS = 50_000_000
#: Most pixels the pairwise correlations may transform in all (n_segments (n_segments - 1) / 2
#: correlations of the padded grid; the default 10 segments of a 30 um field at 20 nm take
#: about 1.0e8, a few seconds).
MAX_CORRELATION_PIXELS = 2e10
#: Most memory the segments' spectra may take (the default settings take a few MB).
MAX_SPECTRA_BYTES = 2 << 30


@dataclass(frozen=True)
class DriftEstimate:
    """Drift of the sample per time segment, relative to the first segment.

    Attributes
    ----------
    frames : numpy.ndarray
        (n,) centre of each segment: the mean frame of its localizations.
    drift_y_nm, drift_x_nm : numpy.ndarray
        (n,) drift at each segment (``drift[0] == 0``). A localization recorded at frame
        ``f`` sits at ``true + drift(f)``; :meth:`at` interpolates ``drift(f)``.
    segment_edges : numpy.ndarray
        (n + 1,) frame edges; segment ``k`` holds frames ``edges[k] <= frame < edges[k+1]``.
    n_localizations : numpy.ndarray
        (n,) localizations per segment.
    residual_rms_nm : float
        Root-mean-square residual ``|r_ij - (d_j - d_i)|`` over the pairs used: the
        consistency of the pairwise shifts, a measure of their error.
    n_pairs : int
        Pairs used in the final solve.
    n_pairs_rejected : int
        Pairs dropped (correlation peak at the search edge or an outlier residual).
    pixel_size_nm : float
        Pixel of the correlation images.
    """

    frames: np.ndarray
    drift_y_nm: np.ndarray
    drift_x_nm: np.ndarray
    segment_edges: np.ndarray
    n_localizations: np.ndarray
    residual_rms_nm: float
    n_pairs: int
    n_pairs_rejected: int
    pixel_size_nm: float

    def at(self, frames) -> tuple[np.ndarray, np.ndarray]:
        """Drift (dy, dx) in nm at the given frames.

        Linear interpolation between segment centres (``numpy.interp``); before the first
        and after the last centre the end segments' straight line is extended, so a
        steady drift is not frozen for half a segment at either end.

        Parameters
        ----------
        frames : array_like
            Frame numbers (any shape).

        Returns
        -------
        dy, dx : numpy.ndarray
            float64 arrays of the shape of ``frames``.
        """
        f = np.asarray(frames, dtype=np.float64)
        return _interp_extrap(f, self.frames, self.drift_y_nm), \
            _interp_extrap(f, self.frames, self.drift_x_nm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (stored in ``Localizations.meta["drift"]``)."""
        return {
            "method": "rcc",
            "reference": "first segment",
            "frames": [float(v) for v in self.frames],
            "drift_y_nm": [float(v) for v in self.drift_y_nm],
            "drift_x_nm": [float(v) for v in self.drift_x_nm],
            "segment_edges": [float(v) for v in self.segment_edges],
            "n_localizations": [int(v) for v in self.n_localizations],
            "residual_rms_nm": float(self.residual_rms_nm),
            "n_pairs": int(self.n_pairs),
            "n_pairs_rejected": int(self.n_pairs_rejected),
            "pixel_size_nm": float(self.pixel_size_nm),
        }


def _check_budget(n_seg: int, ny: int, nx: int, pixel_nm: float) -> None:
    """Refuse drift settings whose spectra would take more than :data:`MAX_SPECTRA_BYTES`
    or whose pairwise correlations would take hours, before any is computed."""
    spectra = n_seg * ny * (nx // 2 + 1) * 8  # complex64, one per segment
    work = 0.5 * n_seg * (n_seg - 1) * ny * nx
    if spectra > MAX_SPECTRA_BYTES or work > MAX_CORRELATION_PIXELS:
        raise StageError(
            f"drift estimation with n_segments={n_seg} on a {ny} x {nx} correlation grid "
            f"(drift.pixel_size_nm={pixel_nm:g}, padded by drift.max_drift_nm) would hold "
            f"{spectra / 2**30:.3g} GiB of spectra (at most {MAX_SPECTRA_BYTES / 2**30:g} GiB) "
            f"and transform {work:.2g} pixels (at most {MAX_CORRELATION_PIXELS:.0e}); use "
            "fewer segments, a larger drift.pixel_size_nm or a smaller drift.max_drift_nm")

def estimate_drift(locs: Localizations, config: DriftConfig = DriftConfig()) -> DriftEstimate:
    """Estimate lateral drift by redundant cross-correlation of time segments.

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm``, ``y_nm`` and ``frame``.
    config : DriftConfig, optional
        ``n_segments``, correlation ``pixel_size_nm``, ``blur_nm``, ``subpixel`` method,
        ``max_drift_nm``, ``outlier_sigma`` and ``min_localizations_per_segment``.

    Returns
    -------
    DriftEstimate
        Drift per segment relative to the first one, with an interpolating
        :meth:`~DriftEstimate.at`.

    Raises
    ------
    StageError
        If the table has no ``frame`` column (or x/y), non-finite values, fewer distinct
        frames than segments, a segment with fewer than ``min_localizations_per_segment``
        localizations, a grid too large for the pixel size, or if too few segment pairs
        correlate within ``max_drift_nm`` to determine every segment's drift.

    Notes
    -----
    Each segment image is blurred by a Gaussian of ``blur_nm`` (in Fourier space) and has
    its mean removed before zero-padded FFT correlation, so the correlation peak is smooth
    and sits on a flat background. The shift of each pair is searched within
    ``max_drift_nm``; a peak on the border of that window is taken as "not found" and the
    pair is dropped. The cost is one FFT per segment plus one inverse FFT per pair, i.e.
    it grows as ``n_segments**2``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from chromarate._types import Localizations
    >>> from chromarate.config import DriftConfig
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.uniform(0, 4000, (300, 2))
    >>> k = rng.integers(0, 300, 60_000)
    >>> frame = rng.integers(0, 1000, k.size)
    >>> x = centres[k, 0] + rng.normal(0, 10, k.size) + 0.05 * frame   # 50 nm drift in x
    >>> y = centres[k, 1] + rng.normal(0, 10, k.size)
    >>> locs = Localizations(pd.DataFrame({"x_nm": x, "y_nm": y, "frame": frame}))
    >>> est = estimate_drift(locs, DriftConfig(n_segments=5))
    >>> bool(abs(est.drift_x_nm[-1] - 40.0) < 3.0)   # centres of segments 0 and 4: frames 100, 900
    True
    """
    if not isinstance(locs, Localizations):
        raise TypeError(f"locs must be a chromarate Localizations, got {type(locs).__name__}")
    if not isinstance(config, DriftConfig):
        raise TypeError(f"config must be a DriftConfig, got {type(config).__name__}")
    x, y, frame = _columns(locs)
    n_seg = int(config.n_segments)
    p = float(config.pixel_size_nm)

    # ---- time segments (equal frame spans over the frames present)
    f0, f1 = float(frame.min()), float(frame.max())
    n_distinct = np.unique(frame).size
    if n_distinct < n_seg:
        raise StageError(
            f"drift estimation needs at least n_segments={n_seg} distinct frames, the table "
            f"has {n_distinct}; lower drift.n_segments"
        )
    edges = np.linspace(f0, f1 + 1.0, n_seg + 1)
    seg = np.clip(np.searchsorted(edges, frame, side="right") - 1, 0, n_seg - 1)
    counts = np.bincount(seg, minlength=n_seg)
    low = np.flatnonzero(counts < config.min_localizations_per_segment)
    if low.size:
        k = int(low[0])
        raise StageError(
            f"drift estimation needs >= {config.min_localizations_per_segment} localizations "
            f"per segment; segment {k} (frames {edges[k]:g}-{edges[k + 1]:g}) has "
            f"{int(counts[k])} ({low.size} of {n_seg} segments are short); use fewer "
            f"segments (drift.n_segments) or more localizations"
        )
    centres = np.bincount(seg, weights=frame, minlength=n_seg) / counts

    # ---- common grid and padded FFT size
    ky0, kx0 = math.floor(y.min() / p), math.floor(x.min() / p)
    ny = math.floor(y.max() / p) - ky0 + 1
    nx = math.floor(x.max() / p) - kx0 + 1
    if ny * nx > MAX_PIXELS:
        raise StageError(
            f"the drift correlation grid would be {ny} x {nx} pixels at pixel_size_nm={p:g}; "
            f"use a larger drift.pixel_size_nm (check that coordinates are in nm)"
        )
    m_y = min(int(math.ceil(config.max_drift_nm / p)), ny)
    m_x = min(int(math.ceil(config.max_drift_nm / p)), nx)
    blur_px = config.blur_nm / p
    margin = int(math.ceil(4.0 * blur_px))
    Ny = sfft.next_fast_len(ny + m_y + margin + 1, real=True)
    Nx = sfft.next_fast_len(nx + m_x + margin + 1, real=True)
    _check_budget(n_seg, Ny, Nx, p)
    iy = np.floor(y / p).astype(np.int64) - ky0
    ix = np.floor(x / p).astype(np.int64) - kx0

    fy = sfft.fftfreq(Ny)[:, None]
    fx = sfft.rfftfreq(Nx)[None, :]
    # Blur both images by sigma -> the cross-power spectrum by exp(-4 pi^2 sigma^2 f^2).
    transfer = np.exp(-4.0 * np.pi**2 * blur_px**2 * (fy**2 + fx**2)).astype(np.float32)

    spectra = []
    order = np.argsort(seg, kind="stable")
    bounds = np.r_[0, np.cumsum(counts)]
    for k in range(n_seg):
        sel = order[bounds[k]:bounds[k + 1]]
        img = np.bincount(iy[sel] * nx + ix[sel], minlength=ny * nx).astype(np.float32)
        img -= img.mean()
        padded = np.zeros((Ny, Nx), np.float32)
        padded[:ny, :nx] = img.reshape(ny, nx)
        spectra.append(sfft.rfft2(padded, workers=-1))

    # ---- pairwise shifts
    win_rows = np.r_[Ny - m_y:Ny, 0:m_y + 1]
    win_cols = np.r_[Nx - m_x:Nx, 0:m_x + 1]
    pairs, shifts = [], []
    n_edge = 0
    for i in range(n_seg):
        for j in range(i + 1, n_seg):
            cross = np.conj(spectra[i]) * spectra[j] * transfer
            cc = sfft.irfft2(cross, s=(Ny, Nx), workers=-1)
            win = cc[np.ix_(win_rows, win_cols)]
            r, c = np.unravel_index(int(np.argmax(win)), win.shape)
            if r in (0, win.shape[0] - 1) or c in (0, win.shape[1] - 1) or win[r, c] <= 0:
                n_edge += 1
                continue
            sy, sx = int(win_rows[r]), int(win_cols[c])
            sy = sy - Ny if sy > Ny // 2 else sy
            sx = sx - Nx if sx > Nx // 2 else sx
            if config.subpixel == "gaussian":
                dy, dx = _gaussian_peak(cc, sy, sx)
            else:
                dy, dx = _upsampled_peak(cross, sy, sx, Ny, Nx, config.upsample_factor)
            pairs.append((i, j))
            shifts.append((sy + dy, sx + dx))

    if not pairs:
        raise StageError(_no_solution_message(n_seg, n_edge, config))
    pairs_arr = np.asarray(pairs, dtype=np.int64)
    r_ij = np.asarray(shifts, dtype=np.float64) * p  # (P, 2) nm, (y, x)

    d, used, res = _solve(pairs_arr, r_ij, n_seg, config, p)
    if d is None:
        raise StageError(_no_solution_message(n_seg, n_edge, config))
    rms = float(np.sqrt(np.mean(np.sum(res[used] ** 2, axis=1)))) if used.any() else 0.0
    return DriftEstimate(
        frames=centres,
        drift_y_nm=d[:, 0],
        drift_x_nm=d[:, 1],
        segment_edges=edges,
        n_localizations=counts.astype(np.int64),
        residual_rms_nm=rms,
        n_pairs=int(used.sum()),
        n_pairs_rejected=int(n_edge + (~used).sum()),
        pixel_size_nm=p,
    )


def apply_drift(locs: Localizations, estimate: DriftEstimate) -> Localizations:
    """Subtract an estimated drift from every localization (by its frame).

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm``, ``y_nm`` and ``frame``.
    estimate : DriftEstimate

    Returns
    -------
    Localizations
        A copy with corrected ``x_nm``/``y_nm`` and ``meta["drift"] = estimate.to_dict()``.
    """
    if not isinstance(locs, Localizations):
        raise TypeError(f"locs must be a chromarate Localizations, got {type(locs).__name__}")
    if not isinstance(estimate, DriftEstimate):
        raise TypeError(f"estimate must be a DriftEstimate, got {type(estimate).__name__}")
    x, y, frame = _columns(locs)
    dy, dx = estimate.at(frame)
    table = locs.table.copy()
    table["x_nm"] = x - dx
    table["y_nm"] = y - dy
    meta = dict(locs.meta)
    meta["drift"] = estimate.to_dict()
    return Localizations(table=table, meta=meta)


def correct_drift(locs: Localizations, config: DriftConfig = DriftConfig()) -> Localizations:
    """Estimate drift with :func:`estimate_drift` and subtract it (:func:`apply_drift`).

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm``, ``y_nm`` and ``frame``.
    config : DriftConfig, optional

    Returns
    -------
    Localizations
        Drift-corrected copy, brought onto the positions of the first time segment;
        ``meta["drift"]`` holds the drift curve (segment centre ``frames``,
        ``drift_y_nm``, ``drift_x_nm``) and the fit's diagnostics.

    Raises
    ------
    StageError
        As :func:`estimate_drift`.
    """
    return apply_drift(locs, estimate_drift(locs, config))


# --------------------------------------------------------------------------- helpers


def _columns(locs: Localizations):
    table = locs.table
    for name in ("x_nm", "y_nm", "frame"):
        if name not in table.columns:
            hint = " (drift is estimated over time)" if name == "frame" else ""
            raise StageError(
                f"drift correction needs column {name!r}{hint}; the localization table has "
                f"{list(map(str, table.columns))}"
            )
    try:
        x = table["x_nm"].to_numpy(dtype=np.float64)
        y = table["y_nm"].to_numpy(dtype=np.float64)
        f = table["frame"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StageError(f"x_nm, y_nm and frame must be numeric: {exc}") from exc
    if len(table) == 0:
        raise StageError("drift correction needs localizations; the table is empty")
    bad = ~(np.isfinite(x) & np.isfinite(y) & np.isfinite(f))
    if bad.any():
        raise StageError(
            f"{int(bad.sum())} localizations have non-finite x_nm, y_nm or frame (first at "
            f"row {int(np.flatnonzero(bad)[0])}); drop them before drift correction"
        )
    return x, y, f


def _interp_extrap(f: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    out = np.interp(f, xp, fp)
    if xp.size >= 2:
        lo = f < xp[0]
        hi = f > xp[-1]
        if lo.any():
            slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
            out[lo] = fp[0] + slope * (f[lo] - xp[0])
        if hi.any():
            slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
            out[hi] = fp[-1] + slope * (f[hi] - xp[-1])
    return out


def _gaussian_peak(cc: np.ndarray, sy: int, sx: int) -> tuple[float, float]:
    """Sub-pixel offset of the peak by a 3-point Gaussian (log-parabola) fit per axis."""
    Ny, Nx = cc.shape

    def fit(a: float, b: float, c: float) -> float:
        if a > 0 and b > 0 and c > 0:
            la, lb, lc = math.log(a), math.log(b), math.log(c)
            den = la - 2.0 * lb + lc
        else:  # fall back to a parabola on the values
            la, lb, lc = a, b, c
            den = a - 2.0 * b + c
        if den >= 0:
            return 0.0
        return float(np.clip(0.5 * (la - lc) / den, -0.5, 0.5))

    b = cc[sy % Ny, sx % Nx]
    dy = fit(cc[(sy - 1) % Ny, sx % Nx], b, cc[(sy + 1) % Ny, sx % Nx])
    dx = fit(cc[sy % Ny, (sx - 1) % Nx], b, cc[sy % Ny, (sx + 1) % Nx])
    return dy, dx


def _upsampled_peak(cross: np.ndarray, sy: int, sx: int, Ny: int, Nx: int,
                    factor: int) -> tuple[float, float]:
    """Sub-pixel offset of the correlation peak by DFT upsampling around it.

    Evaluates the inverse DFT of the (half, real-signal) cross spectrum on a grid of step
    1/factor pixel within +-1.5 px of the integer peak by two matrix products (the idea of
    Guizar-Sicairos et al., Opt. Lett. 33, 156 (2008)), then refines the best sample by a
    parabola, i.e. to well below 1/factor pixel.
    """
    if factor <= 1:
        return 0.0, 0.0
    half = int(math.ceil(1.5 * factor))
    offs = np.arange(-half, half + 1) / factor
    ky = sfft.fftfreq(Ny) * Ny  # signed integer frequencies
    kx = np.arange(cross.shape[1], dtype=np.float64)
    # Hermitian weights of the rfft half-spectrum: double every column but 0 and Nyquist.
    w = np.full(kx.size, 2.0)
    w[0] = 1.0
    if Nx % 2 == 0:
        w[-1] = 1.0
    ey = np.exp(2j * np.pi * np.outer(sy + offs, ky) / Ny)              # (U, Ny)
    ex = np.exp(2j * np.pi * np.outer(kx, sx + offs) / Nx) * w[:, None]  # (Nxh, U)
    up = np.real(ey @ cross.astype(np.complex128) @ ex)
    r, c = np.unravel_index(int(np.argmax(up)), up.shape)
    step = 1.0 / factor

    def vertex(a: float, b: float, cc: float) -> float:
        den = a - 2.0 * b + cc
        return 0.0 if den >= 0 else float(np.clip(0.5 * (a - cc) / den, -0.5, 0.5))

    dy = offs[r] + (step * vertex(up[r - 1, c], up[r, c], up[r + 1, c])
                    if 0 < r < up.shape[0] - 1 else 0.0)
    dx = offs[c] + (step * vertex(up[r, c - 1], up[r, c], up[r, c + 1])
                    if 0 < c < up.shape[1] - 1 else 0.0)
    return float(dy), float(dx)


def _design(pairs: np.ndarray, n_seg: int) -> np.ndarray:
    a = np.zeros((len(pairs), n_seg), dtype=np.float64)
    rows = np.arange(len(pairs))
    a[rows, pairs[:, 1]] = 1.0
    a[rows, pairs[:, 0]] = -1.0
    return a[:, 1:]  # d_0 = 0


def _solve(pairs, r_ij, n_seg, config: DriftConfig, p: float):
    """Least-squares drift with iterative rejection of the worst outlier pair."""
    a_full = _design(pairs, n_seg)
    used = np.ones(len(pairs), dtype=bool)
    if np.linalg.matrix_rank(a_full) < n_seg - 1:
        return None, used, None
    while True:
        a = a_full[used]
        sol, *_ = np.linalg.lstsq(a, r_ij[used], rcond=None)
        res = r_ij - a_full @ sol
        if config.outlier_sigma is None or used.sum() <= n_seg - 1:
            break
        norm = np.hypot(res[:, 0], res[:, 1])
        scale = np.median(norm[used]) / math.sqrt(2.0 * math.log(2.0))
        thresh = max(config.outlier_sigma * scale, 0.1 * p)
        cand = np.flatnonzero(used & (norm > thresh))
        if cand.size == 0:
            break
        dropped = False
        for k in cand[np.argsort(-norm[cand])]:
            trial = used.copy()
            trial[k] = False
            if np.linalg.matrix_rank(a_full[trial]) == n_seg - 1:
                used = trial
                dropped = True
                break
        if not dropped:
            break
    d = np.vstack([np.zeros((1, 2)), sol])
    return d, used, res


def _no_solution_message(n_seg: int, n_edge: int, config: DriftConfig) -> str:
    return (
        f"drift could not be determined: {n_edge} of {n_seg * (n_seg - 1) // 2} segment pairs "
        f"had no correlation peak within max_drift_nm={config.max_drift_nm:g}, leaving some "
        f"segments unconstrained; raise drift.max_drift_nm, use fewer segments, or check "
        f"that the sample has structure that persists over time"
    )
