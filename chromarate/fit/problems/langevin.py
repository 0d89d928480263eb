"""Langevin-type ODE (1st order, 1-D in time): ``du/dt = -u + lambda(t)`` on ``[0, T]``.

``u(0) = u0``. Forward solver: exact exponential integrator for piecewise-linear ``lambda``
on a fine grid (``refine`` sub-steps per sample), sampled on ``n`` points; the only error is
the piecewise-linear interpolation of ``lambda``, O(dt_fine^2).

Residual ``r = du/dt + u - lambda``; closed form ``lambda = du/dt + u``. :data:`LANGEVIN` is
the plug-in the generic fit uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from ..mollifier import apply_1d_numpy
from .backends_1d import mollifier_kernels_1d
from .base import TimeSeries, TimeSeriesPlugin, fine_nodes, register

__all__ = ["LANGEVIN", "LANGEVIN_MODES", "LangevinProblem", "invert_langevin", "langevin_lambda",
           "langevin_rate_closed_form", "langevin_residual", "make_langevin_problem", "solve_langevin"]

#: (amplitude, angular frequency, phase) of the sines of the true forcing.
LANGEVIN_MODES = ((0.5, 0.7, 0.0), (0.3, 1.9, 1.0), (0.2, 3.3, 0.5))


def langevin_lambda(t):
    """True forcing 1.5 + sum of three sines (in [0.5, 2.5])."""
    t = np.asarray(t, dtype=np.float64)
    out = np.full(t.shape, 1.5)
    for a, w, p in LANGEVIN_MODES:
        out = out + a * np.sin(w * t + p)
    return out


def langevin_residual(u, u_t, lam):
    """r = du/dt + u - lambda (numpy or torch)."""
    return u_t + u - lam


def langevin_rate_closed_form(u, u_t):
    """lambda = du/dt + u (numpy or torch)."""
    return u_t + u


def solve_langevin(lam: np.ndarray, dt: float, u0: float = 0.0) -> np.ndarray:
    """Exact solution of du/dt = -u + lambda for piecewise-linear lambda on a uniform grid.

    On each step, with ``lambda = a + b s``::

        u_{k+1} = e^{-dt} u_k + a (1 - e^{-dt}) + b (dt - (1 - e^{-dt}))
    """
    lam = np.asarray(lam, dtype=np.float64)
    e = math.exp(-dt)
    one_m = -math.expm1(-dt)          # 1 - e^{-dt}
    ramp = dt - one_m                 # dt - (1 - e^{-dt}), >= 0
    a = lam[:-1]
    b = np.diff(lam) / dt
    forcing = a * one_m + b * ramp
    u = np.empty_like(lam)
    u[0] = u0
    # linear recurrence u_{k+1} = e u_k + forcing_k: a loop is fast enough for 1e5 steps
    for k in range(len(forcing)):
        u[k + 1] = e * u[k] + forcing[k]
    return u


@dataclass(frozen=True, eq=False)
class LangevinProblem(TimeSeries):
    """Langevin ODE benchmark on ``[0, T]``.

    Attributes
    ----------
    n : int
        Number of samples (``t[0] = 0``, ``t[-1] = T``).
    T : float
    dt : float
        Sample spacing ``T / (n - 1)``.
    t : ndarray (n,)
    u_true, u_obs : ndarray (n,)
        Noise-free solution and observation (noise std ``noise * range(u_true)``).
    lambda_true : ndarray (n,)
    u0 : float
    noise, noise_std : float
    seed : int
    refine : int
        Sub-steps of the exponential integrator per sample.
    t_fine, u_fine, lambda_fine : ndarray
        The fine solve.
    solver : str
    """

    lambda_true: np.ndarray
    u0: float
    noise: float
    noise_std: float
    seed: int
    refine: int
    t_fine: np.ndarray
    u_fine: np.ndarray
    lambda_fine: np.ndarray
    solver: str

    kind = "langevin"


def make_langevin_problem(n: int = 256, *, noise: float = 0.0, seed: int = 0, T: float = 10.0,
                          u0: float = 0.0, refine: int = 64) -> LangevinProblem:
    """Solve du/dt = -u + lambda(t) with the exact exponential integrator and sample it.

    Parameters
    ----------
    n : int
        Number of samples on [0, T] (>= 8).
    noise : float
        Noise std relative to ``range(u)``.
    seed : int
    T : float
    u0 : float
        Initial value.
    refine : int
        Integrator sub-steps per sample (lambda is linear on each sub-step).
    """
    nf = fine_nodes(n, refine, noise, "Langevin problem needs n >= 8 samples")
    t_f = np.linspace(0.0, T, nf)
    lam_f = langevin_lambda(t_f)
    u_f = solve_langevin(lam_f, T / (nf - 1), u0)
    sl = slice(None, None, refine)
    t = t_f[sl].copy()
    u = u_f[sl].copy()
    std = float(noise * np.ptp(u))
    rng = np.random.default_rng(seed)
    u_obs = u + std * rng.standard_normal(u.shape) if std > 0 else u.copy()
    lam = langevin_lambda(t)
    for a in (t, u, u_obs, lam, t_f, u_f, lam_f):
        a.setflags(write=False)
    return LangevinProblem(n=n, T=float(T), dt=float(T / (n - 1)), t=t, u_true=u, u_obs=u_obs,
                           lambda_true=lam, u0=float(u0), noise=float(noise), noise_std=std,
                           seed=int(seed), refine=int(refine), t_fine=t_f, u_fine=u_f,
                           lambda_fine=lam_f,
                           solver="exact exponential integrator, piecewise-linear lambda")


def invert_langevin(problem: LangevinProblem, *, method: str = "mollifier", radius_px: float = 8.0,
                    kernel: str = "bump", degree: int | None = None, use_obs: bool = True) -> np.ndarray:
    """Closed-form forcing ``du/dt + u`` from the samples.

    ``method="mollifier"``: ``eta * u`` and ``eta' * u`` with the grid-exact kernels of
    :func:`mollifier_kernels_1d` (so the estimate is ``eta * lambda``);
    ``"finite-difference"``: central differences. Returns an (n,) array, NaN where the
    stencil does not fit.
    """
    u = np.asarray(problem.u_obs if use_obs else problem.u_true, dtype=np.float64)
    if method == "mollifier":
        k0, k1 = mollifier_kernels_1d(kernel, radius_px, max_order=1, degree=degree, pixel=problem.dt)
    elif method == "finite-difference":
        k0 = np.array([0.0, 1.0, 0.0])
        k1 = np.array([-0.5, 0.0, 0.5]) / problem.dt
    else:
        raise ConfigError(f"unknown closed-form method {method!r}; use mollifier or finite-difference")
    hw = (len(k1) - 1) // 2
    out = np.full(problem.shape, np.nan)
    out[hw:problem.n - hw] = langevin_rate_closed_form(apply_1d_numpy(u, k0), apply_1d_numpy(u, k1))
    return out


class _LangevinPlugin(TimeSeriesPlugin):
    """Plug-in of the Langevin ODE (see the module docstring)."""

    kind = "langevin"
    make_fn = staticmethod(make_langevin_problem)

    def initial_rate(self, problem):
        """Integrating the ODE: ``mean(lambda) = mean(u) + (u(T) - u(0)) / T`` (trapezoid)."""
        u = problem.u_obs
        return float(np.trapezoid(u, problem.t) / problem.T + (u[-1] - u[0]) / problem.T)

    def residual(self, ops, lam, known):
        return langevin_residual(ops["u"], ops["u_t"], lam)

    def residual_scale(self, problem, lam0):
        return lam0

    def closed_form(self, ops, known):
        return langevin_rate_closed_form(ops["u"], ops["u_t"])


#: The Langevin plug-in.
LANGEVIN = register(_LangevinPlugin())
