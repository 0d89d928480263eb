"""Noise estimate, automatic mollifier width, and the trusted interior of a nucleus."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import StageError
from .mollifier import make_kernels

__all__ = ["estimate_noise", "noise_map", "choose_radius", "trusted_mask"]


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


def trusted_mask(mask: np.ndarray, half_width: int) -> np.ndarray:
    """Pixels whose whole kernel support lies inside ``mask``.

    The 2-D operators are tensor products of 1-D kernels, so their support is the square of
    half-width ``half_width`` around a pixel; a pixel is trusted when that square is inside
    the nucleus (values outside the envelope never reach a trusted residual). Pixels on the
    image border are not trusted either.
    """
    m = np.asarray(mask, dtype=bool)
    size = 2 * int(half_width) + 1
    return ndi.minimum_filter(m, size=size, mode="constant", cval=False)
