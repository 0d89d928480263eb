"""Standard deviation of a windowed rate estimate from its own residuals (no ensemble).

A rate fitted against a residual ``r = den * lambda - num`` and smoothed over a Gaussian
test window of standard deviation ``s`` is, near a pixel ``x``, the local least-squares
solution

    lambda_hat(x) = sum_j g_j w_j num_j / sum_j g_j w_j den_j      (g: the window at x)

so its error is ``sum_j g_j w_j e_j / sum_j g_j w_j den_j`` with ``e = num - lambda den``.
The sandwich (heteroscedasticity-robust) variance of that sum uses the residuals ``e``
observed with the fitted map, so it grows with the pixel noise that passes the kernels and
with the part of the true map that varies inside one window (both leave residuals the
fitted map does not explain). Residuals are correlated over the kernel support; the sum of
squares is scaled by the correlation area, the integral of the central lobe of their
autocorrelation, and divided by the share of the noise variance the residuals keep (the
fitted map absorbs the noise that is smooth on the window's scale).

A smooth estimate is also biased where the true map curves inside a window:
:func:`smoothing_bias` gives the size of that bias from the curvature of the estimate, and
the interval a rate map carries adds the two in quadrature
(:func:`interval_std`).

Where two independent halves of the data exist (localizations with frames), the noise part
is measured instead of modelled (:func:`split_half_std`): the two halves' maps differ only
by their noise, at every spatial frequency, including the low frequencies that a fitted
map absorbs and its residuals therefore cannot show. This module is pure numpy and runs in
well under a second per nucleus.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["CALIBRATION_REL_STD", "correlation_area", "interval_std", "local_rms",
           "nearest_estimator_noise", "smoothing_bias", "split_half_std", "windowed_rate_std"]

#: The squared difference of the halves' maps is averaged over a Gaussian of this many
#: test windows (one window leaves the estimate noisy; 1, 2 and 4 windows gave coverage
#: within 0.02 of each other on the development nuclei).
SPLIT_HALF_SMOOTHING_WINDOWS = 2.0

#: Relative standard deviation of the error of the absolute rate that the density-scale
#: calibration leaves, by ``fields.meta["calibration"]["method"]``: the RMS relative bias
#: of the mean rate over the development nuclei, measured, not modelled. ``"physics"``:
#: ``simulate`` seeds 0-5 and the development suite's two calibrated localization cases
#: (+4.4, +2.8, -1.1, +4.4, +1.2, +1.5, -2.8, +4.7 %); ``"none"`` (the calibration was
#: skipped on a nucleus too small for it): the development suite's four such cases
#: (-18, -8, +41, -41 %). The halves cannot show this error: each half is calibrated on
#: the same structure and errs the same way (docs/numerics.md).
CALIBRATION_REL_STD = {"physics": 0.032, "none": 0.31}


def correlation_area(e: np.ndarray, support: np.ndarray) -> float:
    """Integral (pixels) of the autocorrelation of ``e`` out to the first zero of its
    radial average.

    Parameters
    ----------
    e : numpy.ndarray
        Residual map (values outside ``support`` are ignored).
    support : numpy.ndarray
        bool, where ``e`` is observed.

    Returns
    -------
    float
        At least 1 (uncorrelated pixels).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> white = rng.normal(size=(128, 128))
    >>> round(correlation_area(white, np.ones((128, 128), bool)), 1) < 1.5
    True
    >>> smooth = ndi.gaussian_filter(white, 3.0)  # correlation area 4 pi sigma^2 = 113
    >>> 80 < correlation_area(smooth, np.ones((128, 128), bool)) < 140
    True
    """
    m = np.asarray(support, dtype=bool)
    if m.sum() < 16:
        return 1.0
    x = np.where(m, np.asarray(e, dtype=np.float64), 0.0)
    x = np.where(m, x - x[m].mean(), 0.0)
    shape = [2 * s for s in x.shape]
    fx = np.fft.rfft2(x, shape)
    fm = np.fft.rfft2(m.astype(np.float64), shape)
    acov = np.fft.irfft2(np.abs(fx) ** 2, shape)
    count = np.fft.irfft2(np.abs(fm) ** 2, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        acf = np.where(count > 0.05 * m.sum(), acov / np.maximum(count, 1e-12), 0.0)
    if acf[0, 0] <= 0:
        return 1.0
    acf = np.fft.fftshift(acf / acf[0, 0])
    cy, cx = (s // 2 for s in acf.shape)
    yy, xx = np.indices(acf.shape)
    dist = np.rint(np.hypot(yy - cy, xx - cx)).astype(int)
    # radial average: single lags far out fluctuate about zero, the average does not
    radial = np.bincount(dist.ravel(), acf.ravel()) / np.maximum(np.bincount(dist.ravel()), 1)
    negative = np.nonzero(radial <= 0)[0]
    r0 = int(negative[0]) if negative.size else len(radial)
    return float(max(1.0, acf[dist < r0].sum()))


def windowed_rate_std(num: np.ndarray, den: np.ndarray, weight: np.ndarray, sigma_px: float,
                      rate: np.ndarray, *, min_den: float = 1e-3) -> np.ndarray:
    """Standard deviation of the windowed rate estimate at every pixel.

    Parameters
    ----------
    num, den : numpy.ndarray
        Terms of the residual ``r = den * lambda - num`` (e.g. the weak-form terms of
        :func:`chromarate.fit.physics.chromatin_weak_terms`).
    weight : numpy.ndarray
        Residual weight in [0, 1] (the fit's smooth taper over its trusted pixels).
    sigma_px : float
        Standard deviation of the test window in pixels.
    rate : numpy.ndarray
        The fitted rate map (NaN where it is not defined).
    min_den : float
        Windows whose mean ``den`` is below this get NaN.

    Returns
    -------
    numpy.ndarray
        Same shape; NaN where the window holds too little weight.
    """
    w = np.asarray(weight, dtype=np.float64)
    lam = np.asarray(rate, dtype=np.float64)
    ok_px = (w > 0) & np.isfinite(lam) & np.isfinite(num) & np.isfinite(den)
    e = np.where(ok_px, np.nan_to_num(num) - np.nan_to_num(lam) * np.nan_to_num(den), 0.0)
    area = correlation_area(e, ok_px & (w > 0.5))
    s = float(sigma_px)
    w = np.where(ok_px, w, 0.0)
    d = ndi.gaussian_filter(w * np.nan_to_num(den), s, mode="constant")
    ww = ndi.gaussian_filter(w, s, mode="constant")
    # sum_j g_j^2 f_j = G_{s/sqrt 2} * f / (4 pi s^2) for a normalised Gaussian window g
    sq = ndi.gaussian_filter((w * e) ** 2, s / np.sqrt(2.0), mode="constant") / (4 * np.pi * s * s)
    # the fitted map follows the part of the noise that is smooth on the window's scale, so
    # the residuals miss it: to first order a fraction 3 A / (4 pi s^2) of their variance
    kept = max(1.0 - 3.0 * area / (4.0 * np.pi * s * s), 0.25)
    ok = (ww > 0.05) & (d > min_den * np.maximum(ww, 1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, np.sqrt(area * sq / kept) / np.where(ok, d, 1.0), np.nan)


def smoothing_bias(rate: np.ndarray, support: np.ndarray, sigma_px: float, *,
                   passes: int = 1) -> np.ndarray:
    """Size of the bias of a rate estimated over Gaussian windows, from its own curvature.

    A map seen through a Gaussian of variance ``v`` (pixels^2) differs from the pointwise
    map by about ``(v / 2) lap(lambda)`` (second-order Taylor expansion). The windowed
    closed form averages over one test window (``v = s^2``, ``passes=1``); the PINN's rate
    answers a residual that is itself tested against the window, so it sees the window
    twice (``v = 2 s^2``, ``passes=2``). The curvature is that of the estimate, smoothed
    over half a window so that its pixel-scale ripple does not count; it underestimates
    the curvature of the truth where the estimate is flatter than the truth. Beyond
    ``support`` the map is extended flat, so near its edge the bias is about the gradient
    times the window, the shift of a one-sided window.

    Parameters
    ----------
    rate : numpy.ndarray
        The estimate (NaN where undefined).
    support : numpy.ndarray
        bool, pixels where the estimate is used (values elsewhere are ignored; the
        nearest supported value stands in for them).
    sigma_px : float
        Standard deviation of the test window in pixels.
    passes : int
        How many times the window smooths the estimate (see above).

    Returns
    -------
    numpy.ndarray
        ``|bias|`` (same shape, non-negative); NaN outside ``support``.

    Examples
    --------
    >>> y, x = np.mgrid[:64, :64].astype(float)
    >>> ramp = 1.0 + 0.01 * x       # no curvature, no bias (away from the edge, where
    >>> bias = smoothing_bias(ramp, np.ones((64, 64), bool), 4.0)   # the map is extended flat)
    >>> float(bias[12:-12, 12:-12].max()) < 1e-9
    True
    >>> bowl = 1.0 + 1e-3 * ((x - 32) ** 2 + (y - 32) ** 2)   # lap = 4e-3 per px^2
    >>> round(float(smoothing_bias(bowl, np.ones((64, 64), bool), 4.0)[32, 32]), 3)
    0.032
    """
    m = np.asarray(support, dtype=bool) & np.isfinite(rate)
    if not m.any():
        return np.full(np.shape(rate), np.nan)
    nearest = tuple(ndi.distance_transform_edt(~m, return_distances=False, return_indices=True))
    filled = np.asarray(rate, dtype=np.float64)[nearest]
    smooth = ndi.gaussian_filter(filled, max(0.5 * float(sigma_px), 1.0), mode="nearest")
    curvature = ndi.laplace(smooth, mode="nearest")
    bias = 0.5 * passes * float(sigma_px) ** 2 * np.abs(curvature)
    return np.where(m, bias, np.nan)


def interval_std(noise_std: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Standard deviation of the interval a rate map carries: the noise part and the
    smoothing bias added in quadrature (``sqrt(std^2 + bias^2)``); NaN where either is."""
    return np.hypot(np.asarray(noise_std, dtype=np.float64), np.asarray(bias, dtype=np.float64))


def split_half_std(map_a: np.ndarray, map_b: np.ndarray, support: np.ndarray,
                   sigma_px: float) -> np.ndarray:
    """Noise standard deviation of a whole map, measured with two independent halves.

    Each half holds half the counts, so its map's noise variance is about twice the whole
    map's ``v``, and the difference of two independent halves has variance ``4 v``. The
    squared difference is averaged over a Gaussian of ``sigma_px`` (normalised over the
    pixels where both maps are defined), and ``v`` is a quarter of it. The estimate holds
    where the map's noise is about linear in the data's; where a half is so noisy that
    its map is not (a ratio of small numbers), it errs on the wide side.

    Parameters
    ----------
    map_a, map_b : numpy.ndarray
        The same estimator applied to the two halves (NaN where undefined).
    support : numpy.ndarray
        bool, pixels where the figure is wanted.
    sigma_px : float
        Width (pixels) over which the squared difference is averaged.

    Returns
    -------
    numpy.ndarray
        Standard deviation of the whole map's noise; NaN outside ``support`` and where no
        pixel with both maps defined lies within about ``sigma_px``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> truth = np.ones((96, 96))
    >>> a = truth + rng.normal(0, 0.2 * np.sqrt(2), truth.shape)   # a half: twice the
    >>> b = truth + rng.normal(0, 0.2 * np.sqrt(2), truth.shape)   # whole's variance
    >>> std = split_half_std(a, b, np.ones((96, 96), bool), 8.0)
    >>> 0.18 < float(np.median(std)) < 0.22
    True
    """
    d = np.asarray(map_a, dtype=np.float64) - np.asarray(map_b, dtype=np.float64)
    return 0.5 * local_rms(d, support, sigma_px)


def nearest_estimator_noise(rate: np.ndarray,
                            estimators: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]],
                            support: np.ndarray, sigma_px: float) -> np.ndarray:
    """Noise part of a fitted map's interval from the estimators it can be compared with.

    For each estimator (a map of the whole data and the maps of two independent halves),
    the fit's error is the estimator's error plus the fit's departure from it, so the
    larger of the estimator's measured noise (:func:`split_half_std`) and the local RMS of
    the departure (:func:`local_rms`) stands for the fit's noise; of the estimators, the
    one the fit stays nearest to gives the figure, pixel by pixel (the smaller). A fit that
    follows a smooth prior is then not charged with the noise of an estimator it does not
    follow. An estimator gives no figure where either part is undefined.

    Parameters
    ----------
    rate : numpy.ndarray
        The fitted map.
    estimators : list of (whole, (half_a, half_b))
        Each estimator's map of the whole data and of the two halves (NaN where undefined).
    support : numpy.ndarray
        bool, pixels where the figure is wanted.
    sigma_px : float
        Width (pixels) of the local averages.

    Returns
    -------
    numpy.ndarray
        NaN outside ``support`` and where no estimator gives a figure.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> truth = np.ones((96, 96)); m = np.ones((96, 96), bool)
    >>> noisy = [truth + rng.normal(0, 0.3, truth.shape) for _ in range(3)]   # whole, halves
    >>> quiet = [truth + rng.normal(0, 0.02, truth.shape) for _ in range(3)]
    >>> fit = quiet[0] + 0.01                      # follows the quiet estimator
    >>> both = nearest_estimator_noise(fit, [(noisy[0], tuple(noisy[1:])),
    ...                                      (quiet[0], tuple(quiet[1:]))], m, 6.0)
    >>> bool(np.nanmedian(both) < 0.05)
    True
    """
    best = np.full(np.shape(rate), np.nan)
    fitted = np.asarray(rate, dtype=np.float64)
    for whole, (a, b) in estimators:
        noise = split_half_std(a, b, support, sigma_px)
        apart = local_rms(fitted - np.asarray(whole, dtype=np.float64), support, sigma_px)
        best = np.fmin(best, np.maximum(noise, apart))  # NaN: this estimator gives no figure
    return np.where(np.asarray(support, dtype=bool), best, np.nan)


def local_mean(x: np.ndarray, support: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian-weighted local mean of ``x`` over the pixels of ``support`` where it is finite.

    Parameters
    ----------
    x : numpy.ndarray
        A map (NaN where undefined).
    support : numpy.ndarray
        bool, pixels where the figure is wanted (and where ``x`` counts).
    sigma_px : float
        Width (pixels) of the Gaussian weight; at least one pixel.

    Returns
    -------
    numpy.ndarray
        NaN outside ``support`` and where no finite ``x`` in the support lies within about
        ``sigma_px``.

    Examples
    --------
    >>> x = np.zeros((20, 20)); x[:, 10:] = 2.0
    >>> m = local_mean(x, np.ones((20, 20), bool), 50.0)   # wider than the map: its mean
    >>> round(float(m[0, 0]), 3), round(float(m[-1, -1]), 3)
    (1.0, 1.0)
    """
    m = np.asarray(support, dtype=bool)
    x = np.asarray(x, dtype=np.float64)
    ok = m & np.isfinite(x)
    s = max(float(sigma_px), 1.0)
    w = ndi.gaussian_filter(ok.astype(np.float64), s)
    v = ndi.gaussian_filter(np.where(ok, x, 0.0), s)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(w > 1e-3, v / w, np.nan)
    return np.where(m, mean, np.nan)


def local_rms(x: np.ndarray, support: np.ndarray, sigma_px: float) -> np.ndarray:
    """Root of :func:`local_mean` of ``x**2`` (same parameters, same NaN rules).

    Examples
    --------
    >>> x = np.full((20, 20), 3.0); x[:, ::2] = -3.0
    >>> round(float(local_rms(x, np.ones((20, 20), bool), 2.0)[10, 10]), 9)
    3.0
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(local_mean(x * x, support, sigma_px))
