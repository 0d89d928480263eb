"""Summaries of a rate map over a region, and the steady-state balance estimate of its mean."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["finite_values", "rate_balance", "rate_quantiles", "rate_summary"]


def finite_values(rate: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The finite values of ``rate`` inside the boolean ``region`` (float64, 1-D)."""
    v = np.asarray(rate, dtype=np.float64)[np.asarray(region, dtype=bool)]
    return v[np.isfinite(v)]


def rate_summary(rate: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean, median and 5 % / 95 % quantiles of the finite rate values inside ``mask``.

    Examples
    --------
    >>> import numpy as np
    >>> rate_summary(np.array([[1.0, 2.0], [3.0, np.nan]]), np.ones((2, 2), bool))["rate_mean"]
    2.0
    """
    q = rate_quantiles(rate, mask, (0.05, 0.95))
    return {k: q[k] for k in ("rate_mean", "rate_median", "rate_q05", "rate_q95")}


def rate_quantiles(rate: np.ndarray, region: np.ndarray,
                   quantiles: Sequence[float] = (0.05, 0.25, 0.75, 0.95),
                   *, prefix: str = "rate") -> dict[str, float]:
    """Mean, median, spatial standard deviation and ``quantiles`` of the rate in ``region``.

    Keys are ``<prefix>_mean``, ``<prefix>_median``, ``<prefix>_std`` and
    ``<prefix>_q05`` ... (the quantile in percent, two digits); NaN when the region holds
    no finite value.
    """
    v = finite_values(rate, region)
    keys = [f"{prefix}_mean", f"{prefix}_median", f"{prefix}_std"] + [
        f"{prefix}_q{round(q * 100):02d}" for q in quantiles]
    if v.size == 0:
        return {k: float("nan") for k in keys}
    vals = [v.mean(), np.median(v), v.std()] + list(np.quantile(v, list(quantiles)))
    return {k: float(x) for k, x in zip(keys, vals)}


def rate_balance(phi_h: np.ndarray, phi_e: np.ndarray, mask: np.ndarray) -> float:
    """Steady-state balance estimate of the nucleus-mean rate: sum(phi_h) / sum(phi_e).

    Integrating the steady state 0 = M lap(mu_d) + 2 (lambda phi_e - phi_h) over a nucleus
    with a no-flux envelope removes the transport term, so the phi_e-weighted mean of
    lambda equals sum(phi_h) / sum(phi_e) over the nucleus (docs/design.md section 5; with
    constant euchromatin phi_e = phi_e0 it is the plain mean). It needs no derivatives, so
    it is a noise-robust reference for the mean of an inferred map; it is only as good as
    the observation model's calibration of phi_h.

    Returns
    -------
    float
        NaN when the euchromatin sum is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.ones((4, 4), bool)
    >>> rate_balance(np.full((4, 4), 0.25), np.full((4, 4), 0.125), m)
    2.0
    """
    m = np.asarray(mask, dtype=bool)
    h = np.asarray(phi_h, dtype=np.float64)[m]
    e = np.asarray(phi_e, dtype=np.float64)[m]
    ok = np.isfinite(h) & np.isfinite(e)
    den = float(e[ok].sum())
    return float(h[ok].sum()) / den if den > 0 else float("nan")
