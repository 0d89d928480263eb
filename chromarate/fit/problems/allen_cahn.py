"""Allen-Cahn relaxation (1st order, 1-D in time): a plug-in written as one module.

The order parameter at a point relaxes in the double well ``W(u) = (u^2 - 1)^2 / 4`` with
an unknown, time-dependent mobility ``lambda(t) > 0`` and a known drive ``s(t)``::

    du/dt = -lambda(t) W'(u) + s(t),     W'(u) = u^3 - u,     t in [0, T]

Residual ``r = du/dt + lambda W'(u) - s``; closed form ``lambda = (s - du/dt) / W'(u)``.
The drive is manufactured from ``u*(t) = 0.78 + 0.12 sin(0.9 t + 0.3)``: ``s = du*/dt +
lambda W'(u*)``, so the solution stays in ``u > 1/sqrt(3)``, where the relaxation is stable
(``-lambda W''(u) < 0``) and ``|W'(u)| >= 0.17`` keeps the closed form well conditioned.
Forward solver: classical RK4 from ``u*(0)`` on ``refine`` sub-steps per sample (error
O(dt_fine^4); the data come from the solver, not from ``u*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from .base import TimeSeries, TimeSeriesPlugin, register

__all__ = ["ALLEN_CAHN", "AllenCahnProblem", "allen_cahn_lambda", "make_allen_cahn_problem"]


def allen_cahn_lambda(t):
    """True mobility 1.2 + 0.4 sin(0.6 t) + 0.2 cos(1.7 t) (in [0.6, 1.8])."""
    t = np.asarray(t, dtype=np.float64)
    return 1.2 + 0.4 * np.sin(0.6 * t) + 0.2 * np.cos(1.7 * t)


def _u_star(t):
    return 0.78 + 0.12 * np.sin(0.9 * t + 0.3), 0.108 * np.cos(0.9 * t + 0.3)


def allen_cahn_drive(t):
    """The known drive s(t) = du*/dt + lambda W'(u*)."""
    u, u_t = _u_star(t)
    return u_t + allen_cahn_lambda(t) * (u**3 - u)


@dataclass(frozen=True, eq=False)
class AllenCahnProblem(TimeSeries):
    """Samples ``t`` (spacing ``dt``) of the solution (``u_true``), its observation with
    Gaussian noise of std ``noise * range(u_true)`` (``u_obs``), the drive and the truth."""

    drive: np.ndarray
    lambda_true: np.ndarray
    noise: float
    seed: int
    refine: int

    kind = "allen-cahn"


def make_allen_cahn_problem(n: int = 256, *, noise: float = 0.0, seed: int = 0, T: float = 10.0,
                            refine: int = 16) -> AllenCahnProblem:
    """Integrate the relaxation with RK4 (``refine`` sub-steps per sample) and sample it."""
    if n < 8 or refine < 1 or noise < 0:
        raise ConfigError(f"Allen-Cahn problem needs n >= 8, refine >= 1, noise >= 0 "
                          f"(got {n}, {refine}, {noise})")

    def rhs(t, u):
        return -allen_cahn_lambda(t) * (u**3 - u) + allen_cahn_drive(t)

    nf = refine * (n - 1) + 1
    tf, h = np.linspace(0.0, T, nf), T / (nf - 1)
    u = np.empty(nf)
    u[0] = _u_star(0.0)[0]
    for k in range(nf - 1):
        t, y = tf[k], u[k]
        k1 = rhs(t, y)
        k2 = rhs(t + h / 2, y + h / 2 * k1)
        k3 = rhs(t + h / 2, y + h / 2 * k2)
        k4 = rhs(t + h, y + h * k3)
        u[k + 1] = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    t, u = tf[::refine].copy(), u[::refine].copy()
    std = float(noise * np.ptp(u))
    u_obs = u + std * np.random.default_rng(seed).standard_normal(n) if std > 0 else u.copy()
    return AllenCahnProblem(n=n, T=float(T), dt=float(T / (n - 1)), t=t, u_true=u, u_obs=u_obs,
                            drive=allen_cahn_drive(t), lambda_true=allen_cahn_lambda(t),
                            noise=float(noise), seed=int(seed), refine=int(refine))


class _AllenCahnPlugin(TimeSeriesPlugin):
    """Plug-in of the Allen-Cahn relaxation (see the module docstring)."""

    kind = "allen-cahn"
    make_fn = staticmethod(make_allen_cahn_problem)

    def initial_rate(self, problem):
        """Integrated ODE with constant lambda: ``lambda = (int s - u(T) + u(0)) / int W'(u)``."""
        u, t = problem.u_obs, problem.t
        well = np.trapezoid(u**3 - u, t)
        return float((np.trapezoid(problem.drive, t) - u[-1] + u[0]) / well)

    def known(self, problem, device, dtype):
        import torch

        return {"s": torch.as_tensor(np.asarray(problem.drive), device=device, dtype=dtype)}

    def residual(self, ops, lam, known):
        u = ops["u"]
        return ops["u_t"] + lam * (u**3 - u) - known["s"]

    def residual_scale(self, problem, lam0):
        u = problem.u_obs
        return lam0 * float(np.mean(np.abs(u**3 - u)))

    def closed_form(self, ops, known):
        u = ops["u"]
        return (known["s"] - ops["u_t"]) / (u**3 - u)


#: The Allen-Cahn plug-in.
ALLEN_CAHN = register(_AllenCahnPlugin())
