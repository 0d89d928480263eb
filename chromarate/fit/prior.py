"""Noise-aware pre-processing of observed phase fields before the physics sees them.

The fourth-order residual multiplies pixel noise by the biharmonic kernel's gain (about
1e3 for a 24 px bump at 10 nm pixels with l = 30 nm), so a few per cent of noise swamps
the reaction term it is meant to reveal. Heterochromatin domains are nearly piecewise
constant with thin interfaces, which is the case total-variation denoising is made for:
it removes noise and keeps the interfaces. The denoised fields anchor the PINN (the
network learns a correction to them) and feed the closed-form inversion; the data term of
the fit still compares with the raw observation.

Also here: the windowed closed form, which solves the weak residual for a lambda that is
constant over a Gaussian window (a local weighted least-squares fit), the counterpart of
the PINN's smooth rate network.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.restoration import denoise_tv_chambolle

__all__ = ["denoise_fields", "departure_ratio", "fill_nearest", "fit_scales", "prior_agreement",
           "rate_variation", "shared_departure", "smooth_taper", "windowed_ratio"]


def denoise_fields(phi_d: np.ndarray, phi_w: np.ndarray, mask: np.ndarray, noise: float, *,
                   method: str = "tv", strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Denoised copies of ``phi_d`` and ``phi_w``.

    Parameters
    ----------
    phi_d, phi_w : ndarray
        Observed fields (same shape).
    mask : ndarray of bool
        Nucleus. Only values inside it are used; outside, each pixel takes the (denoised)
        value of the nearest pixel inside.
    noise : float
        Estimated pixel noise (standard deviation) of ``phi_d``.
    method : {"tv", "none"}
        ``tv``: Chambolle's total-variation denoising with weight ``strength * noise``.
    strength : float
        Multiplier of the estimated noise that sets the TV weight.

    Returns
    -------
    (phi_d, phi_w) : tuple of ndarray
        float64 arrays; the input (with the outside filled) when ``method == "none"`` or
        the noise is zero.
    """
    if method not in ("tv", "none"):
        raise ValueError(f"unknown field prior {method!r}; expected 'tv' or 'none'")
    m = np.asarray(mask, dtype=bool)
    # values outside the nucleus are not data (and may be NaN): they are replaced by the
    # nearest value inside, so that neither TV (which couples every pixel) nor kernels
    # reaching past the envelope ever see them
    nearest = tuple(ndi.distance_transform_edt(~m, return_distances=False, return_indices=True))
    pd = np.asarray(phi_d, dtype=np.float64)[nearest]
    pw = np.asarray(phi_w, dtype=np.float64)[nearest]
    if method == "none" or noise <= 0.0 or strength <= 0.0:
        return pd, pw
    weight = float(strength * noise)
    return denoise_tv_chambolle(pd, weight=weight), denoise_tv_chambolle(pw, weight=weight)


def fit_scales(trusted: np.ndarray, taper_px: float, window_px: float | None
               ) -> tuple[float, float | None]:
    """Taper width and test-window size, capped at a third of the trusted inradius.

    On a small nucleus a fixed taper or window would leave no pixel with full weight and
    constrain lambda only weakly; capping keeps both proportionate to the region scored.
    """
    inradius = float(ndi.distance_transform_edt(np.asarray(trusted, dtype=bool)).max())
    cap = max(1.0, inradius / 3.0)
    return min(float(taper_px), cap), None if window_px is None else min(float(window_px), cap)


def smooth_taper(support: np.ndarray, width_px: float) -> np.ndarray:
    """Weight in [0, 1] that rises smoothly (C-infinity) from 0 on the edge of ``support``
    to 1 at ``width_px`` pixels inside it; 0 outside.

    Why: a residual summed against a weight ``w`` sees the noise through ``B^T w``, with
    ``B`` the fourth-order kernel. A weight that is cut sharply at the edge of the trusted
    region puts the biharmonic of a step there and lets noise through undamped; a smooth
    weight lets integration by parts average it away (measured on a 256^2 steady state at
    10 nm with 1 % noise, windowed closed form: correlation 0.83 with the sharp cut,
    0.94-0.99 with the taper, depending on radius and window; see docs/numerics.md).
    """
    s = np.asarray(support, dtype=bool)
    if width_px <= 0:
        return s.astype(np.float64)
    d = ndi.distance_transform_edt(s) / float(width_px)
    t = np.clip(d, 0.0, 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        a = np.where(t > 0, np.exp(-1.0 / np.where(t > 0, t, 1.0)), 0.0)
        b = np.where(t < 1, np.exp(-1.0 / np.where(t < 1, 1.0 - t, 1.0)), 0.0)
    return np.where(s, a / (a + b), 0.0)


def windowed_ratio(num: np.ndarray, den: np.ndarray, weight: np.ndarray, sigma_px: float,
                   *, min_den: float = 1e-3) -> np.ndarray:
    """Gaussian-windowed ratio ``G * (w num) / G * (w den)`` under the weight ``w``.

    For a residual ``r = den * lambda - num`` this is the lambda that minimises
    ``sum_j G(x - x_j) w_j den_j (lambda - num_j / den_j)^2``: the local least-squares
    rate over a window of standard deviation ``sigma_px``, using samples where the weight
    (a boolean support or a :func:`smooth_taper`) is positive. NaN where the window holds
    too little weight.
    """
    s = np.asarray(weight, dtype=np.float64)
    n = ndi.gaussian_filter(s * np.nan_to_num(num), sigma_px, mode="constant")
    d = ndi.gaussian_filter(s * np.nan_to_num(den), sigma_px, mode="constant")
    w = ndi.gaussian_filter(s, sigma_px, mode="constant")
    ok = (w > 0.05) & (d > min_den * np.maximum(w, 1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, n / np.where(ok, d, 1.0), np.nan)


def domain_spacing_um(phi_h: np.ndarray, mask: np.ndarray, pixel_um: float) -> float:
    """Typical spacing of heterochromatin domains: the wavelength of the peak of the radially
    averaged power spectrum of phi_h inside the nucleus (NaN when there is no peak).

    Examples
    --------
    >>> y, x = np.mgrid[:128, :128]
    >>> stripes = 0.3 + 0.2 * np.cos(2 * np.pi * x / 16)
    >>> round(domain_spacing_um(stripes, np.ones((128, 128), bool), 0.02), 3)
    0.32
    """
    m = np.asarray(mask, dtype=bool)
    if m.sum() < 64:
        return float("nan")
    f = np.where(m, np.asarray(phi_h, float) - float(np.mean(np.asarray(phi_h)[m])), 0.0)
    power = np.abs(np.fft.fft2(f)) ** 2
    ky = np.fft.fftfreq(f.shape[0], d=pixel_um)
    kx = np.fft.fftfreq(f.shape[1], d=pixel_um)
    k = np.hypot(ky[:, None], kx[None, :])
    dk = 1.0 / (max(f.shape) * pixel_um)
    bins = np.rint(k / dk).astype(int)
    radial = np.bincount(bins.ravel(), power.ravel()) / np.maximum(np.bincount(bins.ravel()), 1)
    # ignore the lowest rings (the nucleus' own shape) and frequencies above Nyquist
    lo = max(2, int(np.ceil(1.0 / (np.sqrt(m.sum()) * pixel_um) / dk)))
    hi = int(0.5 / pixel_um / dk)
    if hi <= lo + 1:
        return float("nan")
    peak = lo + int(np.argmax(radial[lo:hi]))
    return float(1.0 / (peak * dk))


def balance_rate(phi_h: np.ndarray, phi_e: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """The local balance estimate of the rate, ``G * (m phi_h) / G * (m phi_e)``.

    At steady state the reaction integrates to zero over a no-flux nucleus
    (``mean(lambda phi_e) = mean(phi_h)``); over a Gaussian window wide enough to average
    the domains out (the fit uses ``fit.prior.balance_window_spacings``, 0.55 domain
    spacings, which pass 0.3 % of a modulation at the spacing) the flux through the
    window's edge is small, so the windowed ratio estimates a smooth lambda without any
    derivative of the data. It is the prior the PINN's rate is
    pulled towards where the physics cannot resolve the flux (noisy fields). Outside the mask
    each pixel takes the value of the nearest pixel inside.
    """
    m = np.asarray(mask, dtype=bool)
    num = ndi.gaussian_filter(np.where(m, phi_h, 0.0), sigma_px, mode="constant")
    den = ndi.gaussian_filter(np.where(m, phi_e, 0.0), sigma_px, mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(den > 1e-9, num / np.where(den > 1e-9, den, 1.0), np.nan)
    return fill_nearest(np.where(m, lam, np.nan))


def prior_agreement(balance: np.ndarray, closed: np.ndarray, where: np.ndarray) -> float:
    """Pearson correlation of the balance estimate and the closed form over ``where``.

    The balance estimate (:func:`balance_rate`) assumes that no chromatin flows through
    the edge of its windows; the closed form keeps the flux terms. Where the two maps do
    not even correlate positively, the flux matters at the scale of the windows and the
    balance estimate is no prior for the rate (``fit.prior.rate_prior="auto"``).

    Parameters
    ----------
    balance, closed : numpy.ndarray
        The two rate maps on one grid.
    where : numpy.ndarray
        bool: the pixels compared (the closed form's reported region).

    Returns
    -------
    float
        The correlation; NaN with fewer than 3 finite pixels or a flat map.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0.0, 1.0, 50).reshape(5, 10)
    >>> round(prior_agreement(x, 2 * x + 1, np.ones_like(x, bool)), 3)
    1.0
    >>> round(prior_agreement(x, -x, np.ones_like(x, bool)), 3)
    -1.0
    """
    from ..quality import map_agreement  # the gate's map correlation, numpy only

    return map_agreement(balance, closed, where)


def rate_variation(rate: np.ndarray, where: np.ndarray) -> float:
    """Relative variation of a rate map: its standard deviation over its mean on ``where``.

    How much the rate varies against its level, read from the windowed closed form: the
    signal side of the smoothness penalty's weight
    (:func:`chromarate.fit.regularise.variation_smoothness_floor`).

    Parameters
    ----------
    rate : numpy.ndarray
        A rate map.
    where : numpy.ndarray
        bool: the pixels read (the fit passes the closed form's reported pixels that it
        reports the rate on).

    Returns
    -------
    float
        NaN with fewer than 16 finite pixels or a mean that is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.9, 1.1] * 8] * 2)
    >>> round(rate_variation(x, np.ones_like(x, bool)), 3)
    0.1
    >>> rate_variation(x, np.zeros_like(x, bool))
    nan
    """
    v = np.asarray(rate, dtype=np.float64)[np.asarray(where, dtype=bool)]
    v = v[np.isfinite(v)]
    if v.size < 16:
        return float("nan")
    mean = float(np.mean(v))
    return float(np.std(v) / mean) if mean > 0.0 else float("nan")


def departure_ratio(balance_halves: tuple[np.ndarray, np.ndarray],
                    closed_halves: tuple[np.ndarray, np.ndarray], where: np.ndarray) -> float:
    """How far the closed form departs from the balance estimate, in the part of the
    departure two independent halves of the data share, relative to the balance
    estimate's own reproducible variation.

    With ``D = closed - balance`` in each half, the figure is
    ``sqrt(max(cov(D_a, D_b), 0) / cov(B_a, B_b))`` over ``where``: the covariance of two
    halves keeps what they share (the signal, and any bias common to both) and drops
    their independent noise. The balance estimate (:func:`balance_rate`) sees the rate at
    scales above its window; where the rate varies at the scale of the domains it is
    nearly flat, and the closed form's departure from it is many times its variation
    (4.5-21 on the validation suite's rendered nuclei with domain-scale or
    heterochromatin-tied rates). Where the rate is smooth, the balance follows it and
    the departure is the fourth-order terms' noise and bias (0-3.1 on the ``simulate``
    seeds; docs/validation-studies.md).

    Parameters
    ----------
    balance_halves, closed_halves : (numpy.ndarray, numpy.ndarray)
        The two halves' balance estimates and closed forms on one grid.
    where : numpy.ndarray
        bool: the pixels compared (where all four maps are reported).

    Returns
    -------
    float
        The ratio (0 when the departures do not covary); NaN with fewer than 3 pixels
        or a balance estimate that does not covary between the halves.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.linspace(1.0, 2.0, 400)
    >>> domains = 0.5 * np.sign(np.sin(np.arange(400) / 5.0))
    >>> b = (smooth, smooth + 0.01 * rng.standard_normal(400))
    >>> c = (smooth + domains + 0.1 * rng.standard_normal(400),
    ...      smooth + domains + 0.1 * rng.standard_normal(400))
    >>> round(departure_ratio(b, c, np.ones(400, bool)), 1)
    1.7
    """
    shared = _shared_covariances(balance_halves, closed_halves, where)
    if shared is None:
        return float("nan")
    departure, balance, _ = shared
    return float(np.sqrt(max(departure, 0.0) / balance))


def shared_departure(balance_halves: tuple[np.ndarray, np.ndarray],
                     closed_halves: tuple[np.ndarray, np.ndarray], where: np.ndarray) -> float:
    """The amplitude of the closed form's departure from the balance estimate that two
    independent halves of the data share, as a fraction of the rate.

    ``sqrt(max(cov(D_a, D_b), 0)) / mean(B)`` with ``D = closed - balance`` in each half
    and ``B`` the halves' mean balance estimate, over ``where``: the same shared
    departure as :func:`departure_ratio`, measured against the rate's level instead of
    the balance estimate's variation. Where the rate is smooth, what the halves share is
    the closed form's own bias, a few per cent of the rate (0-0.137 on the 100 ``simulate``
    seeds 0-99); structure the balance averages out raises it (0.151-0.493 on 26 rendered
    nuclei with domain-scale or heterochromatin-tied rates), but not on every draw: later
    draws had box nuclei with domains, whose closed form is the better estimator, at
    0.117-0.144, inside the seeds' range (docs/validation-studies.md). Unlike the ratio, it does
    not shrink where the balance estimate itself varies much; like it, it grows as the
    localizations thin.

    Parameters
    ----------
    balance_halves, closed_halves, where
        As for :func:`departure_ratio`: the two halves' maps on one grid and the pixels
        compared.

    Returns
    -------
    float
        The fraction (0 when the departures do not covary); NaN with fewer than 3 pixels,
        a balance estimate that does not covary between the halves, or a mean balance
        that is not positive.

    Examples
    --------
    Domains of amplitude 0.3 on a balance of mean 1.5 that both halves see:

    >>> import numpy as np
    >>> x = np.arange(400)
    >>> balance = (1.0 + x / 400, 1.0 + x / 400)
    >>> closed = tuple(b + 0.3 * np.sign(np.sin(x / 5.0)) for b in balance)
    >>> round(shared_departure(balance, closed, np.ones(400, bool)), 2)
    0.2
    """
    shared = _shared_covariances(balance_halves, closed_halves, where)
    if shared is None or not shared[2] > 0:
        return float("nan")
    departure, _, mean = shared
    return float(np.sqrt(max(departure, 0.0)) / mean)


def _shared_covariances(balance_halves: tuple[np.ndarray, np.ndarray],
                        closed_halves: tuple[np.ndarray, np.ndarray],
                        where: np.ndarray) -> tuple[float, float, float] | None:
    """``(cov(D_a, D_b), cov(B_a, B_b), mean(B))`` over ``where`` (see
    :func:`departure_ratio`); None with fewer than 3 pixels, non-finite maps or a balance
    estimate that does not covary between the halves."""
    w = np.asarray(where, dtype=bool)
    maps = [np.asarray(x, dtype=np.float64)[w] for x in (*balance_halves, *closed_halves)]
    if w.sum() < 3 or not all(np.isfinite(x).all() for x in maps):
        return None
    ba, bb, ca, cb = maps

    def cov(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((x - x.mean()) * (y - y.mean())))

    balance = cov(ba, bb)
    if not balance > 0:
        return None
    return cov(ca - ba, cb - bb), balance, float(np.mean(0.5 * (ba + bb)))


def fill_nearest(values: np.ndarray) -> np.ndarray:
    """``values`` with every non-finite pixel replaced by the nearest finite one (all
    finite pixels required to be somewhere; the caller checks)."""
    nearest = tuple(ndi.distance_transform_edt(~np.isfinite(values), return_distances=False,
                                               return_indices=True))
    return values[nearest]
