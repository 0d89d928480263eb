"""Closed-form inversion of the chromatin model from mollified observations."""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage as ndi

from .._types import FitResult, PhaseFields
from ..config import FitConfig
from ..errors import StageError
from .mollifier import apply_2d_numpy, make_kernels
from .physics import ChromatinParams, chromatin_rate_closed_form, chromatin_weak_rate
from .width import choose_radius, estimate_noise, trusted_mask

__all__ = ["check_fields", "invert_direct", "mollified_derivatives", "resolve_radius"]


def check_fields(fields: PhaseFields) -> None:
    """Raise StageError unless the phase fields are consistent, finite and physical."""
    if fields.phi_d.shape != fields.phi_w.shape or fields.phi_d.shape != fields.mask.shape:
        raise StageError("phi_d, phi_w and mask must have the same shape")
    if not np.asarray(fields.mask).any():
        raise StageError("the nucleus mask is empty")
    for name in ("phi_d", "phi_w"):
        a = np.asarray(getattr(fields, name))[np.asarray(fields.mask, bool)]
        if not np.all(np.isfinite(a)):
            raise StageError(f"{name} has non-finite values inside the nucleus")
        if np.max(np.abs(a)) > 2.0:
            raise StageError(f"{name} has values outside the physical range [-1, 1] inside the "
                             f"nucleus (max |{name}| = {np.max(np.abs(a)):.3g})")


def resolve_radius(fields: PhaseFields, config: FitConfig) -> tuple[float, float]:
    """(radius in pixels, noise estimate of phi_d) for a fit: manual or automatic."""
    noise = estimate_noise(fields.phi_d, fields.mask)
    m = config.mollifier
    if m.radius_px != "auto":
        return float(m.radius_px), noise
    pixel_um = fields.pixel_size_nm / 1000.0
    phi_e = fields.phi_e[fields.mask]
    reaction = 2.0 * float(np.mean(fields.phi_h[fields.mask]))  # = 2 lambda phi_e on average
    r_min = max(4.0, ((m.degree or 6) + 2) / 2.0)  # enough samples for the polynomial degree
    # keep a trusted interior: the kernel (radius + stencil) must fit well inside the nucleus
    inradius = float(ndi.distance_transform_edt(np.asarray(fields.mask, bool)).max())
    r_max = float(np.clip(np.floor(0.6 * inradius) - 3.0, r_min, 24.0))
    radius = choose_radius(noise, pixel_um=pixel_um, kind=m.kernel, degree=m.degree,
                           interface_um=config.physics.interface_um,
                           mobility=config.physics.mobility,
                           reaction_scale=max(reaction, 2.0 * float(np.mean(phi_e)) * 0.1),
                           r_min=r_min, r_max=r_max)
    return radius, noise


def mollified_derivatives(field: np.ndarray, kernels) -> dict[str, np.ndarray]:
    """u, u_x, u_y, lap, bilap of a field (same shape, mirrored at the border)."""
    return {n: apply_2d_numpy(field, kernels, n, mode="same")
            for n in ("u", "u_x", "u_y", "lap", "bilap")}


def invert_direct(fields: PhaseFields, config: FitConfig = FitConfig()) -> FitResult:
    """Rate map from the closed form lambda = (phi_h - (M/2) lap mu_d) / phi_e.

    All fields and derivatives come from the mollifier kernels applied to the observed
    phase fields; no fitting. With ``residual_form="weak"`` (default) the derivatives are
    moved onto the kernels (:func:`~chromarate.fit.physics.chromatin_weak_rate`). The result is pointwise (no smoothness prior), so it shows
    how much the fourth-order derivatives amplify noise.

    Parameters
    ----------
    fields : PhaseFields
    config : FitConfig
        Physics and mollifier settings are used; the network settings are ignored.

    Returns
    -------
    FitResult
        ``rate`` is NaN outside the trusted interior; ``residual`` is zero there.
    """
    check_fields(fields)
    t0 = time.perf_counter()
    radius, noise = resolve_radius(fields, config)
    pixel_um = fields.pixel_size_nm / 1000.0
    ks = make_kernels(config.mollifier.kernel, radius, degree=config.mollifier.degree,
                      max_order=4, pixel=pixel_um)
    params = ChromatinParams.from_config(config.physics)
    d = mollified_derivatives(fields.phi_d, ks)
    if config.residual_form == "weak":
        rate = chromatin_weak_rate(lambda name, f: apply_2d_numpy(f, ks, name, mode="same"),
                                   fields.phi_d, fields.phi_w, params)
    else:
        w = mollified_derivatives(fields.phi_w, ks)
        rate = chromatin_rate_closed_form(d, w, params)
    trusted = trusted_mask(fields.mask, ks.half_width)
    rate = np.where(trusted, rate, np.nan)
    residual = np.where(trusted, 0.0, np.nan)
    return FitResult(
        rate=rate.astype(np.float32),
        phi_d_fit=d["u"].astype(np.float32),
        residual=residual.astype(np.float32),
        trusted=trusted,
        timings={"fit": time.perf_counter() - t0},
        device="cpu",
        config=config.model_dump(mode="json"),
        meta={"method": "direct", "mollifier_radius_px": radius, "noise_phi_d": noise},
    )
