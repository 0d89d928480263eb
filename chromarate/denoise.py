"""Denoise a density map.

Methods (``DenoiseConfig.method``):

``"gaussian"`` (default)
    A Gaussian filter with reflecting boundaries: it keeps the grid and, because mass
    that would leave the image is mirrored back, conserves the total count. Its width is
    ``sigma_nm``, or with ``sigma_nm="auto"`` the resolution of the map
    (``meta["resolution_nm"]``, e.g. from Fourier ring correlation, a FWHM) divided by
    2 sqrt(2 ln 2) = 2.355, or 20 nm when the map carries no resolution.
``"nl_means"``
    Non-local means (:func:`skimage.restoration.denoise_nl_means`): patch size and search
    distance given in nm and converted to pixels; noise level from
    :func:`skimage.restoration.estimate_sigma` unless ``noise_sigma`` is given.
``"tv"``
    Total-variation denoising (:func:`skimage.restoration.denoise_tv_chambolle`), which
    keeps edges (nuclear envelope, domain boundaries) sharp; its weight is given in units
    of the noise level, so it does not depend on the count scale.
``"none"``
    An unchanged copy.

``nl_means`` and ``tv`` do not conserve the total count exactly (a few per cent at most
on count maps); ``meta["denoise"]`` records the sum before and after.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, estimate_sigma

from ._types import DensityMap, stage_input
from .config import DenoiseConfig
from .errors import StageError

__all__ = ["AUTO_DEFAULT_SIGMA_NM", "FWHM_PER_SIGMA", "denoise_density"]

#: Gaussian sigma (nm) of ``sigma_nm="auto"`` when the map carries no resolution.
AUTO_DEFAULT_SIGMA_NM = 20.0

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def denoise_density(density: DensityMap, config: DenoiseConfig = DenoiseConfig()) -> DensityMap:
    """Denoise a density map.

    Parameters
    ----------
    density : DensityMap
        2-D map (counts per pixel).
    config : DenoiseConfig, optional
        ``method="gaussian"`` filters with a Gaussian of standard deviation
        ``sigma_nm / pixel_size_nm`` pixels (``mode="reflect"``, truncated at 4 sigma);
        ``sigma_nm="auto"`` takes ``density.meta["resolution_nm"] / 2.355`` when present
        (else :data:`AUTO_DEFAULT_SIGMA_NM`). ``method="nl_means"`` and ``method="tv"``
        run the scikit-image denoisers (see the module docstring). ``method="none"`` (or a
        Gaussian of ``sigma_nm=0``) returns an unchanged copy.

    Returns
    -------
    DensityMap
        float32 map on the same grid (shape, pixel size, origin). ``meta`` is the input's
        plus ``denoise``: for ``gaussian`` and ``none`` ``{"method", "sigma_nm",
        "sigma_px"}`` (and ``sigma_source`` with ``sigma_nm="auto"``); for ``nl_means``
        the patch size and distance (px), ``h``, ``noise_sigma`` and its source; for
        ``tv`` the absolute ``weight``, ``noise_sigma`` and its source; for both also
        ``sum_in`` and ``sum_out``.

    Raises
    ------
    StageError
        If the map is not 2-D, is empty, holds non-finite values, or its
        ``meta["resolution_nm"]`` (used by ``sigma_nm="auto"``) is not a positive number.
    TypeError
        If ``density`` or ``config`` have the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate import DenoiseConfig, DensityMap
    >>> img = np.zeros((21, 21), np.float32); img[10, 10] = 1
    >>> out = denoise_density(DensityMap(img, 20.0), DenoiseConfig(sigma_nm=40))
    >>> out.meta["denoise"]["sigma_px"]
    2.0
    >>> round(float(out.data.sum()), 6)
    1.0
    >>> auto = denoise_density(DensityMap(img, 20.0, meta={"resolution_nm": 47.1}),
    ...                        DenoiseConfig(sigma_nm="auto"))
    >>> round(auto.meta["denoise"]["sigma_nm"], 2), auto.meta["denoise"]["sigma_source"]
    (20.0, 'resolution_nm')
    """
    data, p = stage_input(density, config, DenoiseConfig, StageError)

    if config.method in ("gaussian", "none"):
        out, info = _gaussian(data, p, config, density.meta)
    elif config.method == "nl_means":
        out, info = _nl_means(data, p, config)
    else:  # "tv"
        out, info = _tv(data, config)
    meta = dict(density.meta)
    meta["denoise"] = info
    if "blur_nm" in meta and info.get("method") == "gaussian":
        # a Gaussian filter adds its variance to the rendered map's blur (fit.blur); the
        # edge-keeping denoisers are not a fixed blur and leave it as it was
        meta["blur_nm"] = float(math.hypot(float(meta["blur_nm"]), float(info["sigma_nm"])))
    return DensityMap(data=out, pixel_size_nm=p, origin_nm=tuple(density.origin_nm), meta=meta)


def _gaussian(data: np.ndarray, p: float, config: DenoiseConfig, meta) -> tuple[np.ndarray, dict]:
    if config.method == "none":
        return data.astype(np.float32, copy=True), {"method": "none", "sigma_nm": 0.0,
                                                    "sigma_px": 0.0}
    extra = {}
    if config.sigma_nm == "auto":
        sigma_nm, extra["sigma_source"] = _auto_sigma_nm(meta)
    else:
        sigma_nm = float(config.sigma_nm)
    sigma_px = sigma_nm / p
    if sigma_px == 0.0:
        out = data.astype(np.float32, copy=True)
    else:
        out = ndimage.gaussian_filter(
            data.astype(np.float32, copy=False), sigma=sigma_px, mode="reflect",
            truncate=4.0, output=np.float32,
        )
    return out, {"method": "gaussian", "sigma_nm": sigma_nm, "sigma_px": sigma_px, **extra}


def _auto_sigma_nm(meta) -> tuple[float, str]:
    """sigma for ``sigma_nm="auto"``: resolution / 2.355, or the default."""
    res = meta.get("resolution_nm") if meta is not None else None
    if res is None:
        return AUTO_DEFAULT_SIGMA_NM, (f"default {AUTO_DEFAULT_SIGMA_NM:g} nm "
                                       f"(the density map has no meta['resolution_nm'])")
    try:
        res_f = float(res)
    except (TypeError, ValueError):
        raise StageError(
            f"sigma_nm='auto' needs meta['resolution_nm'] to be a number of nm, got {res!r}; "
            f"set denoise.sigma_nm to a number instead"
        ) from None
    if math.isnan(res_f):  # e.g. an FRC curve that never crossed its threshold
        return AUTO_DEFAULT_SIGMA_NM, (f"default {AUTO_DEFAULT_SIGMA_NM:g} nm "
                                       f"(meta['resolution_nm'] is {res!r})")
    if not (math.isfinite(res_f) and res_f > 0):
        raise StageError(
            f"sigma_nm='auto' needs meta['resolution_nm'] to be a positive number of nm, "
            f"got {res!r}; set denoise.sigma_nm to a number instead"
        )
    return res_f / FWHM_PER_SIGMA, "resolution_nm"


def _noise_sigma(data: np.ndarray, config: DenoiseConfig) -> tuple[float, str]:
    """Noise standard deviation: given, or estimated (value, how it was obtained)."""
    if config.noise_sigma is not None:
        return float(config.noise_sigma), "config"
    img = data.astype(np.float64)
    try:
        sigma = float(estimate_sigma(img, channel_axis=None))
        source = "estimate_sigma"
    except ImportError:
        # skimage's estimator needs PyWavelets; the same estimator (Donoho's median
        # absolute deviation of the finest diagonal wavelet details / 0.6745) with the
        # Haar wavelet needs nothing else.
        sigma = _haar_mad_sigma(img)
        source = "MAD of Haar diagonal details (PyWavelets not installed)"
    if not (np.isfinite(sigma) and sigma > 0):
        # The median is zero on mostly empty count maps: use the standard deviation of
        # the same details instead (never zero on a non-constant map).
        sigma = _haar_details(img).std()
        source = "std of Haar diagonal details (median estimate was 0)"
    if not (np.isfinite(sigma) and sigma > 0):
        raise StageError("cannot estimate the noise of a constant density map; set "
                         "denoise.noise_sigma")
    return float(sigma), source


def _haar_details(img: np.ndarray) -> np.ndarray:
    """Finest diagonal Haar wavelet coefficients (orthonormal: pixel noise variance)."""
    ny, nx = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    if ny == 0 or nx == 0:
        return np.zeros(1)
    d = img[:ny, :nx]
    return 0.5 * (d[0::2, 0::2] - d[1::2, 0::2] - d[0::2, 1::2] + d[1::2, 1::2])


def _haar_mad_sigma(img: np.ndarray) -> float:
    return float(np.median(np.abs(_haar_details(img))) / 0.6745)


def _nl_means(data: np.ndarray, p: float, config: DenoiseConfig) -> tuple[np.ndarray, dict]:
    sigma, source = _noise_sigma(data, config)
    patch = max(1, int(round(config.nlm_patch_size_nm / p)))
    dist = max(1, int(round(config.nlm_patch_distance_nm / p)))
    h = float(config.nlm_h) * sigma
    img = data.astype(np.float64)
    out = denoise_nl_means(img, patch_size=patch, patch_distance=dist, h=h, sigma=sigma,
                           fast_mode=True, channel_axis=None, preserve_range=True)
    out = np.asarray(out, dtype=np.float32)
    return out, {"method": "nl_means", "patch_size_px": patch, "patch_distance_px": dist,
                 "h": h, "noise_sigma": sigma, "noise_sigma_source": source,
                 "sum_in": float(img.sum()), "sum_out": float(out.sum(dtype=np.float64))}


def _tv(data: np.ndarray, config: DenoiseConfig) -> tuple[np.ndarray, dict]:
    sigma, source = _noise_sigma(data, config)
    weight = float(config.tv_weight) * sigma
    img = data.astype(np.float64)
    out = np.asarray(denoise_tv_chambolle(img, weight=weight, channel_axis=None),
                     dtype=np.float32)
    return out, {"method": "tv", "weight": weight, "tv_weight": float(config.tv_weight),
                 "noise_sigma": sigma, "noise_sigma_source": source,
                 "sum_in": float(img.sum()), "sum_out": float(out.sum(dtype=np.float64))}
