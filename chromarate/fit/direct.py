"""Closed-form inversion of the chromatin model from mollified observations."""

from __future__ import annotations

import time

import numpy as np

from .._types import FitResult, PhaseFields
from ..config import FitConfig
from .mollifier import apply_2d_numpy, make_kernels
from .physics import ChromatinParams, chromatin_rate_closed_form, chromatin_weak_rate
from .width import choose_radius, estimate_noise, trusted_mask

__all__ = ["invert_direct", "mollified_derivatives", "resolve_radius"]


def resolve_radius(fields: PhaseFields, config: FitConfig) -> tuple[float, float]:
    """(radius in pixels, noise estimate of phi_d) for a fit: manual or automatic."""
    noise = estimate_noise(fields.phi_d, fields.mask)
    m = config.mollifier
    if m.radius_px != "auto":
        return float(m.radius_px), noise
    pixel_um = fields.pixel_size_nm / 1000.0
    phi_e = fields.phi_e[fields.mask]
    reaction = 2.0 * float(np.mean(fields.phi_h[fields.mask]))  # = 2 lambda phi_e on average
    r_min = max(4.0, ((m.degree or 6) + 2) / 2.0)
    radius = choose_radius(noise, pixel_um=pixel_um, kind=m.kernel, degree=m.degree,
                           interface_um=config.physics.interface_um,
                           mobility=config.physics.mobility,
                           reaction_scale=max(reaction, 2.0 * float(np.mean(phi_e)) * 0.1),
                           r_min=r_min)
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
    trusted = trusted_mask(fields.mask, radius)
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
