"""Residuals of the physics models, written once for numpy arrays and torch tensors.

Each function takes fields and their derivatives as plain arrays (or tensors) and uses
only arithmetic, so the same code scores a PINN (torch), the closed-form inversion and the
forward simulator (numpy). Lengths are in micrometres, time in units of 1/Gamma_ac.

Chromatin model (docs/design.md section 5), with phi_h = (1 - phi_w + phi_d)/2 and
phi_e = (1 - phi_w - phi_d)/2::

    mu_d = -phi_e + f'(phi_h) - l^2 lap(phi_d),   f'(p) = p (pm - p)(pm - 2 p)
    r    = M lap(mu_d) + 2 (lambda phi_e - phi_h)

``lap(mu_d)`` is expanded with the chain rule so that only linear derivatives of the fields
are needed (one pass of the mollifier layer)::

    lap(mu_d) = -lap(phi_e) + f''(phi_h) lap(phi_h) + f'''(phi_h) |grad phi_h|^2 - l^2 bilap(phi_d)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "ChromatinParams",
    "chromatin_lap_mu",
    "chromatin_rate_closed_form",
    "chromatin_residual",
    "chromatin_strong_terms",
    "chromatin_weak_operator_terms",
    "chromatin_weak_rate",
    "chromatin_weak_terms",
    "f_prime",
    "f_second",
    "f_third",
    "rate_ratio",
]


@dataclass(frozen=True)
class ChromatinParams:
    """phi_max, interface length l (um) and mobility M of the chromatin model."""

    phi_max: float = 0.7
    interface_um: float = 0.03
    mobility: float = 1.0

    @classmethod
    def from_config(cls, physics) -> "ChromatinParams":
        return cls(phi_max=physics.phi_max, interface_um=physics.interface_um,
                   mobility=physics.mobility)


def f_prime(p, phi_max: float):
    """Derivative of the double well, p (pm - p)(pm - 2 p)."""
    return p * (phi_max - p) * (phi_max - 2.0 * p)


def f_second(p, phi_max: float):
    """pm^2 - 6 pm p + 6 p^2."""
    return phi_max**2 - 6.0 * phi_max * p + 6.0 * p * p


def f_third(p, phi_max: float):
    """-6 pm + 12 p."""
    return -6.0 * phi_max + 12.0 * p


def chromatin_lap_mu(d: Mapping[str, Any], w: Mapping[str, Any], params: ChromatinParams):
    """Laplacian of the chemical potential mu_d.

    Parameters
    ----------
    d : mapping
        Derivatives of phi_d: ``u``, ``u_x``, ``u_y``, ``lap``, ``bilap``.
    w : mapping
        Derivatives of phi_w: ``u``, ``u_x``, ``u_y``, ``lap``.
    params : ChromatinParams
    """
    pm = params.phi_max
    phi_h = 0.5 * (1.0 - w["u"] + d["u"])
    hx = 0.5 * (d["u_x"] - w["u_x"])
    hy = 0.5 * (d["u_y"] - w["u_y"])
    lap_h = 0.5 * (d["lap"] - w["lap"])
    lap_e = -0.5 * (d["lap"] + w["lap"])
    return (
        -lap_e
        + f_second(phi_h, pm) * lap_h
        + f_third(phi_h, pm) * (hx * hx + hy * hy)
        - params.interface_um**2 * d["bilap"]
    )


def chromatin_residual(d: Mapping[str, Any], w: Mapping[str, Any], rate, params: ChromatinParams):
    """Steady-state residual r = M lap(mu_d) + 2 (lambda phi_e - phi_h)."""
    phi_h = 0.5 * (1.0 - w["u"] + d["u"])
    phi_e = 0.5 * (1.0 - w["u"] - d["u"])
    return params.mobility * chromatin_lap_mu(d, w, params) + 2.0 * (rate * phi_e - phi_h)


def chromatin_strong_terms(d: Mapping[str, Any], w: Mapping[str, Any], params: ChromatinParams):
    """``(num, den)`` with ``r = 2 (lambda den - num)``: ``num = phi_h - (M/2) lap(mu_d)``,
    ``den = phi_e`` (the strong-form counterpart of :func:`chromatin_weak_terms`)."""
    phi_h = 0.5 * (1.0 - w["u"] + d["u"])
    phi_e = 0.5 * (1.0 - w["u"] - d["u"])
    return phi_h - 0.5 * params.mobility * chromatin_lap_mu(d, w, params), phi_e


def rate_ratio(num, den, *, min_phi_e: float = 1e-3):
    """The rate ``num / den`` that zeroes a residual ``2 (lambda den - num)`` pointwise;
    NaN where ``den <= min_phi_e`` (numpy)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > min_phi_e, num / np.where(den > min_phi_e, den, 1.0), np.nan)


def chromatin_rate_closed_form(d: Mapping[str, Any], w: Mapping[str, Any], params: ChromatinParams,
                               *, min_phi_e: float = 1e-3):
    """lambda = (phi_h - (M/2) lap(mu_d)) / phi_e, where phi_e > min_phi_e (NaN elsewhere)."""
    return rate_ratio(*chromatin_strong_terms(d, w, params), min_phi_e=min_phi_e)


def chromatin_weak_operator_terms(phi_d, phi_w, rate, params: ChromatinParams):
    """The mollified (weak-form) residual as ``[(operator, pointwise field, coef), ...]``::

        r_eps = sum coef * (K_operator * field)
              = M (lap_eps * (f'(phi_h) - phi_e) - l^2 bilap_eps * phi_d) + eta_eps * 2 (lambda phi_e - phi_h)

    Every derivative is on the kernels: this equals ``eta_eps * r`` for smooth fields
    (integration by parts against the mollifier), but no derivative of the (noisy) fields
    is formed, so noise enters linearly and averages out. A caller sums the terms with its
    own convolution (one inverse FFT in ``MollifierBackend.combine``).
    """
    phi_h = 0.5 * (1.0 - phi_w + phi_d)
    phi_e = 0.5 * (1.0 - phi_w - phi_d)
    M = params.mobility
    return [("lap", f_prime(phi_h, params.phi_max) - phi_e, M),
            ("bilap", phi_d, -M * params.interface_um**2),
            ("u", 2.0 * (rate * phi_e - phi_h), 1.0)]


def chromatin_weak_terms(conv, phi_d, phi_w, params: ChromatinParams):
    """``(num, den)`` with ``r_eps = 2 (lambda den - num)`` for a locally constant lambda:

    num = eta * phi_h - (M/2)(lap_eps * (f' - phi_e) - l^2 bilap_eps * phi_d),  den = eta * phi_e
    """
    phi_h = 0.5 * (1.0 - phi_w + phi_d)
    phi_e = 0.5 * (1.0 - phi_w - phi_d)
    flux = conv("lap", f_prime(phi_h, params.phi_max) - phi_e) \
        - params.interface_um**2 * conv("bilap", phi_d)
    return conv("u", phi_h) - 0.5 * params.mobility * flux, conv("u", phi_e)


def chromatin_weak_rate(conv, phi_d, phi_w, params: ChromatinParams, *, min_phi_e: float = 1e-3):
    """Rate that zeroes the weak residual pointwise, ``num / den`` of
    :func:`chromatin_weak_terms` (NaN where ``den <= min_phi_e``)."""
    return rate_ratio(*chromatin_weak_terms(conv, phi_d, phi_w, params), min_phi_e=min_phi_e)
