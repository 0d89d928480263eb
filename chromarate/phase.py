"""Turn a density map into phase fields (observation model of docs/design.md section 6).

H2B localization density is proportional to the chromatin fraction ``1 - phi_w``. The
euchromatin fraction is a constant ``phi_e0`` and heterochromatin carries the excess over
the euchromatin baseline density ``rho_eu``::

    phi_h = clip(phi_e0 * (rho / rho_eu - 1), 0, phi_max)
    phi_d = phi_h - phi_e0
    phi_w = 1 - phi_h - phi_e0

``rho_eu`` is ``baseline_scale`` times a low percentile of the density inside the nucleus,
taken over the mask eroded by ``erode_nm`` so that the blurred envelope does not pull it
down. Outside the
mask ``phi_h = 0``, so ``phi_d = -phi_e0`` and ``phi_w = 1 - phi_e0``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ._types import DensityMap, PhaseFields
from .config import PhaseConfig, PhysicsConfig
from .errors import StageError

__all__ = ["phase_fields"]


def phase_fields(
    density: DensityMap, mask: np.ndarray, config: PhaseConfig = PhaseConfig(), *,
    phi_max: float | None = None,
) -> PhaseFields:
    """Map a density to heterochromatin/euchromatin/nucleoplasm fractions.

    Parameters
    ----------
    density : DensityMap
        2-D density (usually denoised), counts per pixel.
    mask : numpy.ndarray
        bool (or 0/1) array of the density's shape, True inside the nucleus.
    config : PhaseConfig, optional
        ``phi_e0``, ``baseline_percentile``, ``baseline_scale`` and ``erode_nm``
        (``calibration`` is the pipeline's business, see
        :func:`chromarate.calibrated_phase.calibrated_phase_fields`).
    phi_max : float, optional
        Upper clip of ``phi_h``: the model's ``fit.physics.phi_max``, which the pipeline
        passes; None (default) takes the default of
        :class:`~chromarate.config.PhysicsConfig` (0.7).

    Returns
    -------
    PhaseFields
        float64 ``phi_w`` and ``phi_d``, the bool mask, the density's grid, and ``meta``
        with ``phi_e0``, ``phi_max``, ``rho_eu``, ``baseline_percentile``, ``erode_nm``,
        ``baseline_eroded`` (False when erosion emptied the mask and the whole mask was
        used), ``n_baseline_pixels`` and the fractions of mask pixels clipped at 0
        (``fraction_clipped_low``) and at ``phi_max`` (``fraction_clipped_high``).

    Raises
    ------
    StageError
        If the shapes differ, the mask is empty or not boolean, the density inside the
        mask is not finite, or the baseline ``rho_eu`` is not positive.

    Warns
    -----
    RuntimeWarning
        When erosion by ``erode_nm`` leaves no pixel and the whole mask gives the baseline.

    Examples
    --------
    >>> import numpy as np
    >>> from chromarate._types import DensityMap
    >>> rho = np.array([[0, 0, 0, 0], [0, 10, 20, 0], [0, 10, 40, 0], [0, 0, 0, 0]], float)
    >>> mask = rho > 0
    >>> cfg = PhaseConfig(baseline_percentile=0, erode_nm=0)
    >>> f = phase_fields(DensityMap(rho.astype(np.float32), 20.0), mask, cfg)
    >>> f.meta["rho_eu"], np.round(f.phi_d[1:3, 1:3], 6).tolist()
    (10.0, [[-0.2, 0.0], [-0.2, 0.4]])
    """
    if not isinstance(density, DensityMap):
        raise TypeError(f"density must be a DensityMap, got {type(density).__name__}")
    if not isinstance(config, PhaseConfig):
        raise TypeError(f"config must be a PhaseConfig, got {type(config).__name__}")
    rho = np.asarray(density.data, dtype=np.float64)
    if rho.ndim != 2:
        raise StageError(f"density map must be 2-D, got shape {rho.shape}")
    mask = _as_bool_mask(mask)
    if mask.shape != rho.shape:
        raise StageError(
            f"mask shape {mask.shape} differs from density shape {rho.shape}"
        )
    if not mask.any():
        raise StageError("nucleus mask is empty: no phase fields to compute")
    if not np.isfinite(rho[mask]).all():
        raise StageError("density holds non-finite values inside the nucleus mask")
    p = float(density.pixel_size_nm)
    if not (np.isfinite(p) and p > 0):
        raise StageError(f"density pixel_size_nm must be positive, got {density.pixel_size_nm}")

    phi_e0 = float(config.phi_e0)
    phi_max = float(PhysicsConfig().phi_max if phi_max is None else phi_max)
    if not (np.isfinite(phi_max) and 0.0 < phi_max <= 1.0):
        raise StageError(f"phi_max must be in (0, 1], got {phi_max}")
    baseline_region = _erode(mask, float(config.erode_nm) / p)
    eroded = bool(baseline_region.any())
    if not eroded:
        warnings.warn(
            f"eroding the nucleus mask by erode_nm={config.erode_nm:g} nm leaves no pixel; "
            "the euchromatin baseline is taken over the whole mask",
            RuntimeWarning,
            stacklevel=2,
        )
        baseline_region = mask
    rho_eu = float(config.baseline_scale) * float(
        np.percentile(rho[baseline_region], config.baseline_percentile))
    if not (np.isfinite(rho_eu) and rho_eu > 0.0):
        raise StageError(
            f"euchromatin baseline density rho_eu = {rho_eu:.4g} (the "
            f"{config.baseline_percentile:g}th percentile inside the nucleus) is not "
            "positive: the density inside the nucleus is too sparse for its pixels. Render "
            "with larger pixels and smooth more, e.g. --set render.pixel_size_nm=40 --set "
            "denoise.sigma_nm=40 (config keys render.pixel_size_nm, denoise.sigma_nm), and "
            "with pixels that large also --set fit.mollifier.radius_px=8 so the nucleus "
            "still spans enough mollifier radii"
        )

    raw = phi_e0 * (rho[mask] / rho_eu - 1.0)
    n_mask = raw.size
    frac_low = float(np.count_nonzero(raw < 0.0)) / n_mask
    frac_high = float(np.count_nonzero(raw > phi_max)) / n_mask

    phi_h = np.zeros(rho.shape, dtype=np.float64)
    phi_h[mask] = np.clip(raw, 0.0, phi_max)
    phi_d = phi_h - phi_e0
    phi_w = 1.0 - phi_h - phi_e0

    meta = {
        "observation_model": "euchromatin_baseline",
        "phi_e0": phi_e0,
        "phi_max": phi_max,
        "rho_eu": rho_eu,
        "baseline_percentile": float(config.baseline_percentile),
        "baseline_scale": float(config.baseline_scale),
        "erode_nm": float(config.erode_nm),
        "baseline_eroded": eroded,
        "n_baseline_pixels": int(np.count_nonzero(baseline_region)),
        "fraction_clipped_low": frac_low,
        "fraction_clipped_high": frac_high,
    }
    if "blur_nm" in density.meta:  # the map's blur, for the fit's correction (fit.blur)
        meta["blur_nm"] = float(density.meta["blur_nm"])
    return PhaseFields(
        phi_w=phi_w,
        phi_d=phi_d,
        mask=mask.copy(),
        pixel_size_nm=p,
        origin_nm=tuple(float(v) for v in density.origin_nm),
        meta=meta,
    )


def _as_bool_mask(mask) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == bool:
        return m
    if m.dtype.kind in "iuf" and np.isin(m, (0, 1)).all():
        return m.astype(bool)
    raise StageError(
        f"mask must be boolean (or 0/1), got dtype {m.dtype}; pass labels == nucleus_id "
        "for one nucleus of a label image"
    )


def _erode(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels whose centre lies at least ``radius_px`` inside the mask edge.

    The image border counts as outside the mask. A boundary pixel's centre is half a
    pixel from the edge, so the distance to the edge is the Euclidean distance to the
    nearest outside pixel centre minus 0.5.
    """
    if radius_px <= 0.0:
        return mask
    dist = ndimage.distance_transform_edt(np.pad(mask, 1, constant_values=False))[1:-1, 1:-1]
    return mask & (dist - 0.5 >= radius_px)
