"""Noise estimate, automatic mollifier width, and the trusted interior of a nucleus."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import StageError
from .mollifier import make_kernels

__all__ = ["MAX_KERNEL_LEAK", "MIN_WINDOW_SUPPORT", "choose_radius", "estimate_noise", "noise_map",
           "trusted_mask", "window_support"]


def _highpass(f: np.ndarray) -> np.ndarray:
    """Immerkaer's 3x3 Laplacian-of-differences response; std = 6 sigma for white noise."""
    kern = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    return ndi.convolve(np.asarray(f, dtype=np.float64), kern, mode="reflect")


def _inner(mask: np.ndarray) -> np.ndarray:
    """The mask eroded by two pixels (the mask itself when that leaves fewer than 16)."""
    inner = ndi.binary_erosion(mask, iterations=2)
    return mask if inner.sum() < 16 else inner


def estimate_noise(field: np.ndarray, mask: np.ndarray) -> float:
    """Standard deviation of pixel noise of ``field`` inside ``mask``.

    Uses the median absolute value of the normalised 3x3 Laplacian-of-differences
    (Immerkaer's estimator) over the interior, which ignores smooth structure.
    """
    hp = _highpass(field)
    inner = _inner(np.asarray(mask, dtype=bool))
    if inner.sum() == 0:
        raise StageError("cannot estimate noise: empty mask")
    # for white noise, std(hp) = 6 sigma; MAD -> std factor 1.4826
    return float(1.4826 * np.median(np.abs(hp[inner])) / 6.0)


def noise_map(field: np.ndarray, mask: np.ndarray, window_px: float) -> np.ndarray:
    """Local pixel-noise standard deviation of ``field``, pixel by pixel.

    The same high-pass response as :func:`estimate_noise`, squared and averaged over a
    Gaussian window of ``window_px`` (inside ``mask`` only), so noise that varies across
    the nucleus is seen where it is. Outside the mask the global estimate is used. Squared
    averaging is less robust to structure than the median: near sharp interfaces the map
    is somewhat above the true noise.
    """
    f = np.asarray(field, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    hp2 = (_highpass(f) / 6.0) ** 2
    inner = _inner(m)
    num = ndi.gaussian_filter(np.where(inner, hp2, 0.0), window_px, mode="constant")
    den = ndi.gaussian_filter(inner.astype(np.float64), window_px, mode="constant")
    glob = estimate_noise(f, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.sqrt(np.where(den > 0.05, num / np.where(den > 0.05, den, 1.0), glob**2))
    return np.where(m, local, glob)


def choose_radius(noise: float, *, pixel_um: float, kind: str, degree: int, interface_um: float,
                  mobility: float, reaction_scale: float, r_min: float = 4.0,
                  r_max: float = 24.0) -> float:
    """Smallest mollifier radius (pixels) whose noise amplification is tolerable.

    The bias of the derivative kernels grows with the radius and their noise gain falls,
    so the best radius is the smallest one for which pixel noise ``noise``, propagated
    through the fourth-order term of the residual (``M l^2 ||B_eps||_2 noise``, with
    ``B_eps`` the 2-D biharmonic kernel), stays below a quarter of ``reaction_scale``
    (the size of the reaction term ``2 lambda phi_e``).
    """
    target = 0.25 * reaction_scale
    r = r_min
    best = r_max
    while r <= r_max + 1e-9:
        ks = make_kernels(kind, r, degree=degree, max_order=4, pixel=pixel_um)
        k0, k2, k4 = ks.kernels[0], ks.kernels[2], ks.kernels[4]
        bilap = np.outer(k0, k4) + 2.0 * np.outer(k2, k2) + np.outer(k4, k0)
        gain = mobility * interface_um**2 * float(np.sqrt(np.sum(bilap**2)))
        if gain * noise <= target:
            best = r
            break
        r += 1.0
    return float(best)


#: Largest share of an operator's absolute kernel weight that may fall outside the envelope
#: at a trusted pixel (see :func:`trusted_mask`).
MAX_KERNEL_LEAK = 1e-3


def _operator_weights(kernels) -> list[np.ndarray]:
    """Normalised absolute 2-D weights of the operators the residual uses (u, lap, bilap)."""
    k = kernels.kernels
    ops = [np.outer(k[0], k[0])]
    if len(k) > 2:
        ops.append(np.outer(k[2], k[0]) + np.outer(k[0], k[2]))
    if len(k) > 4:
        ops.append(np.outer(k[0], k[4]) + 2.0 * np.outer(k[2], k[2]) + np.outer(k[4], k[0]))
    return [np.abs(op) / np.abs(op).sum() for op in ops]


def trusted_mask(mask: np.ndarray, kernels, *, max_leak: float = MAX_KERNEL_LEAK) -> np.ndarray:
    """Pixels whose residual the values outside the nucleus cannot reach.

    With a :class:`~chromarate.fit.mollifier.MollifierKernels`, a pixel is trusted when,
    for every operator of the residual (the mollifier itself, its Laplacian and its
    bilaplacian), at most ``max_leak`` of the operator's absolute weight lies outside
    ``mask`` or beyond the image border. The operators are tensor products of 1-D kernels
    that fall smoothly to zero at their half-width, so the corners of their square support
    carry almost no weight: on a 2 um nucleus at 20 nm this trusts about twice as many
    pixels as requiring the whole square inside the envelope, while what lies outside
    still moves a trusted residual by at most 0.1 % of the operator's weight.

    With a number ``kernels`` (a half-width in pixels), a pixel is trusted when the whole
    square of that half-width around it lies inside the mask (the strict criterion).

    Parameters
    ----------
    mask : numpy.ndarray
        bool nucleus mask.
    kernels : MollifierKernels or int
    max_leak : float
        Largest share of absolute kernel weight allowed outside the nucleus.

    Returns
    -------
    numpy.ndarray
        bool, same shape.
    """
    m = np.asarray(mask, dtype=bool)
    if isinstance(kernels, (int, float, np.integer, np.floating)):
        size = 2 * int(kernels) + 1
        return ndi.minimum_filter(m, size=size, mode="constant", cval=False)
    from scipy.signal import fftconvolve

    h = int(kernels.half_width)
    outside = np.pad((~m).astype(np.float64), h, mode="constant", constant_values=1.0)
    ok = m.copy()
    for op in _operator_weights(kernels):
        leak = fftconvolve(outside, op[::-1, ::-1], mode="valid")
        ok &= leak <= max_leak
    return ok


#: Share of a test window's residual weight that must lie on scored pixels for the rate
#: at its centre to be reported as trusted (:func:`window_support`).
MIN_WINDOW_SUPPORT = 0.5


def window_support(weight: np.ndarray, sigma_px: float, *,
                   min_share: float = MIN_WINDOW_SUPPORT) -> np.ndarray:
    """Pixels where the data determine a windowed rate: at least ``min_share`` of the
    Gaussian test window centred there falls on the residual weight.

    The rate is fitted against a residual weighted by ``weight`` (1 inside the trusted
    region, a smooth taper to 0 at its edge) and tested against Gaussian windows. Near the
    edge of the trusted region most of a window lies where the residual has little or no
    weight, so the rate there is carried by the prior and the network's extrapolation, not
    by the data. Reporting it as trusted mixes guesses into the map's statistics (on the
    development cases the band within one window of the edge held the worst errors and
    most of the bias of the mean).

    Parameters
    ----------
    weight : numpy.ndarray
        Residual weight in [0, 1] (zero outside the scored pixels).
    sigma_px : float
        Standard deviation of the test window in pixels.
    min_share : float
        Required share of the window's weight, ``(G * weight)(x) >= min_share``.

    Returns
    -------
    numpy.ndarray
        bool, same shape; a subset of ``weight > 0``.

    Examples
    --------
    >>> w = np.zeros((64, 64)); w[8:-8, 8:-8] = 1.0
    >>> s = window_support(w, 4.0)
    >>> bool(s[32, 32]), bool(s[8, 8]), bool(s[12, 12])   # centre, corner, a window in
    (True, False, True)
    """
    w = np.asarray(weight, dtype=np.float64)
    share = ndi.gaussian_filter(w, float(sigma_px), mode="constant")
    return (share >= min_share) & (w > 0)
