"""Image resolution of a localization table by Fourier ring correlation (FRC).

The localizations are split into two statistically independent halves, each half is
rendered on the same grid, and the normalised correlation of their Fourier transforms is
averaged over rings of equal spatial frequency (Nieuwenhuizen et al., "Measuring image
resolution in optical nanoscopy", Nat. Methods 10, 557 (2013); Banterle et al., J. Struct.
Biol. 183, 363 (2013)). The resolution is the inverse of the frequency where the smoothed
curve first drops below the fixed threshold 1/7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter1d
from scipy.signal.windows import tukey

from ._types import Localizations
from .errors import StageError

__all__ = ["FRC_THRESHOLD", "FRCResult", "fourier_ring_correlation", "split_halves",
           "suggest_smoothing_nm"]

#: Fixed FRC threshold of Nieuwenhuizen et al. (2013).
FRC_THRESHOLD = 1.0 / 7.0

#: Largest number of pixels of the square FRC grid.
MAX_PIXELS = 100_000_000

# Fraction of each image side tapered by the Tukey window.
_TUKEY_ALPHA = 0.25


@dataclass(frozen=True)
class FRCResult:
    """Fourier ring correlation of two halves of a localization table.

    Attributes
    ----------
    frequencies : numpy.ndarray
        (n,) ring centres in 1/nm, from 0 to the Nyquist frequency 1/(2 pixel).
    frc : numpy.ndarray
        (n,) raw ring correlation (NaN for an empty ring).
    frc_smoothed : numpy.ndarray
        (n,) the curve after Gaussian smoothing along frequency.
    resolution_nm : float
        1 / (frequency of the first crossing of :data:`FRC_THRESHOLD` by the smoothed
        curve), linearly interpolated between rings; NaN when the curve stays above the
        threshold up to Nyquist (render with a smaller pixel) or never rises above it.
    threshold : float
    pixel_size_nm : float
    n_localizations : tuple of int
        Localizations in the two halves.
    split : str
        ``"frame_blocks"`` (blocks of ``block_frames`` frames assigned at random to the
        halves) or ``"localizations"`` (each localization at random; no frame column).
    block_frames : int or None
    """

    frequencies: np.ndarray
    frc: np.ndarray
    frc_smoothed: np.ndarray
    resolution_nm: float
    threshold: float
    pixel_size_nm: float
    n_localizations: tuple[int, int]
    split: str
    block_frames: int | None


def fourier_ring_correlation(
    locs: Localizations,
    *,
    pixel_size_nm: float = 5.0,
    n_bins: int | None = None,
    block_frames: int | None = None,
    smoothing: float = 0.01,
    seed: int = 0,
) -> FRCResult:
    """Fourier ring correlation resolution of a localization table.

    Parameters
    ----------
    locs : Localizations
        Table with ``x_nm`` and ``y_nm``; ``frame`` is used for the split when present.
    pixel_size_nm : float
        Pixel of the two rendered histograms; it must be well below the resolution
        (the curve is measured up to 1/(2 pixel)). Default 5 nm.
    n_bins : int, optional
        Number of equal-width frequency rings from 0 to Nyquist. Default: one ring per
        frequency step 1/(N pixel) of the N x N grid (N/2 + 1 rings).
    block_frames : int, optional
        Length of the frame blocks that are assigned as a whole to one half, so that the
        repeated localizations of one blinking event fall in the same half (otherwise they
        correlate the halves and make the resolution look too good). Default: the frame
        span / 100 (at least 1 frame), i.e. about 100 blocks.
    smoothing : float
        Standard deviation of the Gaussian that smooths the curve, as a fraction of the
        number of rings (default 0.01, at least one ring).
    seed : int
        Seed of the random split.

    Returns
    -------
    FRCResult

    Raises
    ------
    StageError
        If ``x_nm``/``y_nm`` are missing or not finite, there are fewer than 2
        localizations (or frame blocks cannot give two non-empty halves), or the grid
        would exceed :data:`MAX_PIXELS`.
    ValueError
        For a non-positive ``pixel_size_nm``, ``n_bins < 2`` or ``block_frames < 1``.

    Notes
    -----
    Both halves are histogrammed on one grid covering all localizations, multiplied by a
    separable Tukey window (alpha 0.25) over that box to suppress edge leakage, and
    zero-padded to a square N x N FFT so the rings are round. Per ring,
    ``FRC = sum Re(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2)``. No correction for
    spurious correlations of repeated localizations is applied besides the frame-block
    split.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from chromarate._types import Localizations
    >>> rng = np.random.default_rng(1)
    >>> c = rng.uniform(0, 3000, (2000, 2))
    >>> k = rng.integers(0, 2000, 200_000)
    >>> t = pd.DataFrame({"x_nm": c[k, 0] + rng.normal(0, 10, k.size),
    ...                   "y_nm": c[k, 1] + rng.normal(0, 10, k.size),
    ...                   "frame": rng.integers(0, 10_000, k.size)})
    >>> res = fourier_ring_correlation(Localizations(t))
    >>> bool(20 < res.resolution_nm < 60)
    True
    """
    if not isinstance(locs, Localizations):
        raise TypeError(f"locs must be a chromarate Localizations, got {type(locs).__name__}")
    p = float(pixel_size_nm)
    if not (p > 0 and math.isfinite(p)):
        raise ValueError(f"pixel_size_nm must be positive, got {pixel_size_nm}")
    if n_bins is not None and int(n_bins) < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    if block_frames is not None and int(block_frames) < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    if not smoothing >= 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    table = locs.table
    for name in ("x_nm", "y_nm"):
        if name not in table.columns:
            raise StageError(
                f"FRC needs column {name!r}; the table has {list(map(str, table.columns))}"
            )
    try:
        x = table["x_nm"].to_numpy(dtype=np.float64)
        y = table["y_nm"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StageError(f"x_nm/y_nm must be numeric: {exc}") from exc
    if len(x) < 2:
        raise StageError(f"FRC needs at least 2 localizations, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StageError("FRC needs finite x_nm/y_nm; drop non-finite rows first")

    rng = np.random.default_rng(seed)
    half, split, block = _split(table, rng, block_frames)
    n1 = int(np.count_nonzero(half == 0))
    n2 = int(half.size - n1)
    if n1 == 0 or n2 == 0:
        raise StageError(
            f"the FRC split left an empty half ({n1} / {n2} localizations); use smaller "
            f"block_frames"
        )

    # ---- render both halves on one grid
    ky0, kx0 = math.floor(y.min() / p), math.floor(x.min() / p)
    ny = math.floor(y.max() / p) - ky0 + 1
    nx = math.floor(x.max() / p) - kx0 + 1
    N = sfft.next_fast_len(max(ny, nx, 8), real=True)
    if N * N > MAX_PIXELS:
        raise StageError(
            f"the FRC grid would be {N} x {N} pixels at pixel_size_nm={p:g}; use a larger "
            f"pixel_size_nm or restrict the region (check that coordinates are in nm)"
        )
    iy = np.floor(y / p).astype(np.int64) - ky0
    ix = np.floor(x / p).astype(np.int64) - kx0
    window = np.outer(tukey(ny, _TUKEY_ALPHA) if ny > 2 else np.ones(ny),
                      tukey(nx, _TUKEY_ALPHA) if nx > 2 else np.ones(nx)).astype(np.float32)
    spectra = []
    for h in (0, 1):
        sel = half == h
        img = np.bincount(iy[sel] * nx + ix[sel], minlength=ny * nx).reshape(ny, nx)
        padded = np.zeros((N, N), np.float32)  # complex64 spectra: half the memory
        padded[:ny, :nx] = img * window
        spectra.append(sfft.rfft2(padded, workers=-1))
    f1, f2 = spectra

    # ---- ring sums (rfft half-plane: columns other than 0 and Nyquist count twice)
    kyf = sfft.fftfreq(N) * N
    kxf = np.arange(f1.shape[1], dtype=np.float64)
    radius = np.hypot(kyf[:, None], kxf[None, :])
    weight = np.full(kxf.size, 2.0)
    weight[0] = 1.0
    if N % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight, f1.shape)
    nyq = N // 2
    if n_bins is None:
        n_rings = nyq + 1
        ring = np.rint(radius).astype(np.int64)
        freqs = np.arange(n_rings) / (N * p)
    else:
        n_rings = int(n_bins)
        ring = np.floor(radius / nyq * n_rings).astype(np.int64)
        freqs = (np.arange(n_rings) + 0.5) / n_rings / (2.0 * p)
    inside = ring < n_rings
    r = ring[inside]
    w = weight[inside]
    a, b = f1[inside], f2[inside]
    a = a.astype(np.complex128)
    b = b.astype(np.complex128)
    num = np.bincount(r, weights=w * (a.real * b.real + a.imag * b.imag), minlength=n_rings)
    p1 = np.bincount(r, weights=w * (a.real**2 + a.imag**2), minlength=n_rings)
    p2 = np.bincount(r, weights=w * (b.real**2 + b.imag**2), minlength=n_rings)
    den = np.sqrt(p1 * p2)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    smoothed = _smooth(frc, smoothing)
    resolution = _first_crossing(freqs, smoothed, FRC_THRESHOLD)
    return FRCResult(
        frequencies=freqs,
        frc=frc,
        frc_smoothed=smoothed,
        resolution_nm=resolution,
        threshold=FRC_THRESHOLD,
        pixel_size_nm=p,
        n_localizations=(n1, n2),
        split=split,
        block_frames=block,
    )


def suggest_smoothing_nm(resolution_nm: float) -> float:
    """Gaussian smoothing sigma (nm) that matches an FRC resolution.

    The FRC resolution is read as the full width at half maximum of the effective point
    spread of the rendered image, so the matching Gaussian has
    ``sigma = resolution / (2 sqrt(2 ln 2)) = resolution / 2.355``. Blurring a density map
    by this sigma removes detail finer than the data can resolve while keeping what it
    does resolve (usable as ``DenoiseConfig.sigma_nm``).

    Parameters
    ----------
    resolution_nm : float
        FRC resolution in nm (finite, > 0).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``resolution_nm`` is not a positive finite number (e.g. an undetermined NaN).

    Examples
    --------
    >>> round(suggest_smoothing_nm(47.1), 2)
    20.0
    """
    r = float(resolution_nm)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(
            f"resolution_nm must be a positive finite number, got {resolution_nm} (an FRC "
            f"that did not cross the threshold has no resolution to smooth by)"
        )
    return r / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def split_halves(table, *, seed: int = 0, block_frames: int | None = None) -> np.ndarray:
    """Half label (0 or 1) per localization, the split FRC uses.

    With a ``frame`` column, blocks of ``block_frames`` consecutive frames (default: the
    frame span / 100) go to one half as a whole, half of the blocks to each, so that the
    repeated localizations of one blinking molecule stay together; without one, a random
    half of the localizations.

    Parameters
    ----------
    table : pandas.DataFrame
    seed : int
        Seed of the random assignment.
    block_frames : int, optional

    Returns
    -------
    numpy.ndarray
        int8 labels, one per row.

    Raises
    ------
    StageError
        If the frames are not numeric and finite, or span fewer than two blocks.
    """
    return _split(table, np.random.default_rng(seed), block_frames)[0]


# --------------------------------------------------------------------------- helpers


def _split(table, rng: np.random.Generator, block_frames: int | None):
    """Half label (0/1) per localization, the split kind and the block length used."""
    n = len(table)
    if "frame" in table.columns:
        try:
            frame = table["frame"].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise StageError(f"column 'frame' must be numeric: {exc}") from exc
        if not np.isfinite(frame).all():
            raise StageError("column 'frame' has non-finite values; drop them before FRC")
        if n == 0:
            raise StageError("no localizations to split")
        lo, hi = float(np.floor(frame.min())), float(np.floor(frame.max()))
        if max(abs(lo), abs(hi)) >= 2.0 ** 53:
            raise StageError(f"column 'frame' holds numbers beyond 2^53 ({hi:g}); frames are "
                             f"acquisition frame indices")
        span = int(hi - lo) + 1
        block = int(block_frames) if block_frames is not None else max(1, span // 100)
        if block < 1:
            raise StageError(f"block_frames must be at least 1 (got {block_frames})")
        # Occupied blocks only (np.unique): at most one per localization, however the
        # frames are spread, and every block in the draw holds localizations.
        occupied, blocks = np.unique((np.floor(frame) - lo) // block, return_inverse=True)
        n_blocks = int(occupied.size)
        if n_blocks < 2:
            raise StageError(
                f"FRC frame-block split needs at least 2 blocks; the frames span {span} "
                f"frame(s) and block_frames={block}; use smaller block_frames"
            )
        # Balanced random assignment: a random half of the blocks go to each half.
        perm = rng.permutation(n_blocks)
        side = np.empty(n_blocks, dtype=np.int8)
        side[perm[: n_blocks // 2]] = 0
        side[perm[n_blocks // 2:]] = 1
        return side[blocks], "frame_blocks", block
    side = np.zeros(n, dtype=np.int8)
    side[rng.permutation(n)[: n // 2]] = 1
    return side, "localizations", None


def _smooth(frc: np.ndarray, fraction: float) -> np.ndarray:
    valid = np.isfinite(frc)
    filled = np.where(valid, frc, 0.0)
    if fraction == 0:
        return np.where(valid, frc, np.nan)
    sigma = max(1.0, fraction * frc.size)
    num = gaussian_filter1d(filled, sigma, mode="nearest")
    den = gaussian_filter1d(valid.astype(np.float64), sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(den > 1e-12, out, np.nan)


def _first_crossing(freqs: np.ndarray, curve: np.ndarray, threshold: float) -> float:
    """1 / frequency of the first downward crossing of ``threshold`` after ring 0."""
    c = curve[1:]
    q = freqs[1:]
    above = c >= threshold
    if not np.any(above):
        return float("nan")
    start = int(np.argmax(above))  # curve starts below: skip to where it first rises above
    below = np.flatnonzero(~(c[start:] >= threshold))
    if below.size == 0:
        return float("nan")
    k = start + int(below[0])
    c0, c1 = c[k - 1], c[k]
    q0, q1 = q[k - 1], q[k]
    qc = q0 + (c0 - threshold) * (q1 - q0) / (c0 - c1) if np.isfinite(c1) and c0 != c1 else q1
    return float(1.0 / qc)
