"""Steady heat (2nd order, 2-D): ``0 = lambda(x, y) lap(u) + m(x, y)`` on the unit square.

Nodes ``x_i = i h``, ``h = 1 / (n - 1)``, boundary nodes included, ``u = 0`` on the
boundary. Forward solver: ``lap_h(u) = -m / lambda`` with the 5-point Laplacian on the
``(n - 2)^2`` interior nodes, solved exactly (to round-off) by the type-I discrete sine
transform (``scipy.fft.dstn``) with the exact eigenvalues of the 5-point operator,
``-(4 / h^2) sin^2(pi k / (2 (n - 1)))``. :func:`heat_discrete_residual` uses the same
5-point operator, so the solver's own residual is at round-off level. The discrete solution
differs from the continuous one by O(h^2) (``refine`` solves on a finer grid and subsamples
to shrink that).

Residual ``r = lambda lap(u) + m``; closed form ``lambda = -m / lap(u)``. :data:`HEAT` is the
plug-in (:class:`~chromarate.fit.problems.base.ProblemPlugin`) the generic fit uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import ConfigError
from ..mollifier import apply_2d_numpy, finite_difference_kernels, make_kernels
from .base import fine_nodes, interior_mask, register

__all__ = ["HEAT", "HeatProblem", "heat_discrete_residual", "heat_lambda", "heat_rate_closed_form",
           "heat_residual", "heat_source", "invert_heat", "make_heat_problem", "solve_poisson_dst"]


def heat_lambda(x, y):
    """True conductivity: 1 plus a positive and a negative Gaussian bump; in [0.7, 1.5]."""
    g1 = np.exp(-((x - 0.30) ** 2 + (y - 0.65) ** 2) / (2 * 0.15**2))
    g2 = np.exp(-((x - 0.70) ** 2 + (y - 0.30) ** 2) / (2 * 0.12**2))
    return 1.0 + 0.5 * g1 - 0.3 * g2


def heat_source(x, y):
    """Heat source m(x, y) = 1 + 0.4 cos(pi x) cos(2 pi y) (in [0.6, 1.4])."""
    return 1.0 + 0.4 * np.cos(np.pi * x) * np.cos(2 * np.pi * y)


def heat_residual(lam, lap_u, m):
    """r = lambda lap(u) + m (numpy or torch)."""
    return lam * lap_u + m


def heat_rate_closed_form(lap_u, m):
    """lambda = -m / lap(u) (numpy or torch; no guard against lap(u) = 0)."""
    return -m / lap_u


def solve_poisson_dst(f: np.ndarray, h: float) -> np.ndarray:
    """Solve the 5-point ``lap_h(u) = f`` with ``u = 0`` on the boundary.

    Parameters
    ----------
    f : ndarray (n, n)
        Right-hand side on all nodes (boundary rows/columns are ignored).
    h : float
        Node spacing.

    Returns
    -------
    ndarray (n, n)
        Solution with zero boundary rows/columns; exact to round-off for the 5-point operator
        (type-I sine transform diagonalises it with eigenvalues ``-(4/h^2) sin^2(pi k / (2 (N+1)))``).
    """
    from scipy.fft import dstn, idstn

    f = np.asarray(f, dtype=np.float64)
    ny, nx = f.shape
    inner = f[1:-1, 1:-1]
    ky = np.arange(1, ny - 1)
    kx = np.arange(1, nx - 1)
    ev_y = -4.0 / h**2 * np.sin(np.pi * ky / (2 * (ny - 1))) ** 2
    ev_x = -4.0 / h**2 * np.sin(np.pi * kx / (2 * (nx - 1))) ** 2
    spec = dstn(inner, type=1) / (ev_y[:, None] + ev_x[None, :])
    u = np.zeros_like(f)
    u[1:-1, 1:-1] = idstn(spec, type=1)
    return u


def heat_discrete_residual(u: np.ndarray, lam: np.ndarray, m: np.ndarray, h: float) -> np.ndarray:
    """Residual ``lambda lap_h(u) + m`` with the solver's 5-point operator, on interior nodes."""
    lap = (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4.0 * u[1:-1, 1:-1]) / h**2
    return heat_residual(lam[1:-1, 1:-1], lap, m[1:-1, 1:-1])


@dataclass(frozen=True, eq=False)
class HeatProblem:
    """Steady-heat benchmark on the unit square (arrays indexed ``[iy, ix]``).

    Attributes
    ----------
    n : int
        Nodes per side, boundary included.
    h : float
        Node spacing ``1 / (n - 1)``.
    x, y : ndarray (n,)
        Node coordinates.
    u_true, u_obs : ndarray (n, n)
        Noise-free solution and observation (``u_true`` + Gaussian noise of std
        ``noise * range(u_true)``).
    m, lambda_true : ndarray (n, n)
        Source and true conductivity.
    noise : float
        Relative noise level.
    noise_std : float
        Absolute noise standard deviation.
    seed : int
    refine : int
        Refinement factor of the solve grid.
    solver : str
        Description of the forward solver.
    solver_residual : float
        max |lambda lap_h(u) + m| / max |m| on the solve grid (the solver's own operator).
    """

    n: int
    h: float
    x: np.ndarray
    y: np.ndarray
    u_true: np.ndarray
    u_obs: np.ndarray
    m: np.ndarray
    lambda_true: np.ndarray
    noise: float
    noise_std: float
    seed: int
    refine: int
    solver: str
    solver_residual: float

    kind = "heat"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)


def make_heat_problem(n: int = 64, *, noise: float = 0.0, seed: int = 0, refine: int = 4) -> HeatProblem:
    """Solve the steady-heat forward problem for the known conductivity.

    Parameters
    ----------
    n : int
        Nodes per side (boundary included), >= 8.
    noise : float
        Noise std relative to ``range(u)``.
    seed : int
        Seed of the noise.
    refine : int
        Solve on ``refine (n - 1) + 1`` nodes per side and subsample (shrinks the O(h^2)
        discretisation error of the 5-point solve by ``refine^2``).
    """
    nf = fine_nodes(n, refine, noise, "heat problem needs n >= 8 nodes per side")
    hf = 1.0 / (nf - 1)
    xf = np.linspace(0.0, 1.0, nf)
    yyf, xxf = np.meshgrid(xf, xf, indexing="ij")
    lam_f = heat_lambda(xxf, yyf)
    m_f = heat_source(xxf, yyf)
    u_f = solve_poisson_dst(-m_f / lam_f, hf)
    res = float(np.max(np.abs(heat_discrete_residual(u_f, lam_f, m_f, hf))) / np.max(np.abs(m_f)))
    sl = slice(None, None, refine)
    u = u_f[sl, sl].copy()
    x = xf[sl].copy()
    yy, xx = np.meshgrid(x, x, indexing="ij")
    std = float(noise * np.ptp(u))
    rng = np.random.default_rng(seed)
    u_obs = u + std * rng.standard_normal(u.shape) if std > 0 else u.copy()
    arrays = [x, u, u_obs]
    for a in arrays:
        a.setflags(write=False)
    lam = heat_lambda(xx, yy)
    m = heat_source(xx, yy)
    lam.setflags(write=False)
    m.setflags(write=False)
    return HeatProblem(n=n, h=1.0 / (n - 1), x=x, y=x, u_true=u, u_obs=u_obs, m=m, lambda_true=lam,
                       noise=float(noise), noise_std=std, seed=int(seed), refine=int(refine),
                       solver="5-point Laplacian, exact type-I DST solve (scipy.fft.dstn)",
                       solver_residual=res)

def invert_heat(problem: HeatProblem, *, method: str = "mollifier", radius_px: float = 6.0,
                kernel: str = "bump", degree: int | None = None, use_obs: bool = True) -> np.ndarray:
    """Closed-form conductivity ``-m / lap(u)`` from the gridded data.

    ``method="mollifier"`` takes ``lap`` from the grid-exact mollifier kernels (so the noise is
    smoothed over ``radius_px``), ``"finite-difference"`` from second-order central differences.
    Returns an (n, n) map, NaN where the stencil does not fit.
    """
    u = problem.u_obs if use_obs else problem.u_true
    if method == "mollifier":
        ks = make_kernels(kernel, radius_px, degree=degree, max_order=2, pixel=problem.h)
    elif method == "finite-difference":
        ks = finite_difference_kernels(problem.h)
    else:
        raise ConfigError(f"unknown closed-form method {method!r}; use mollifier or finite-difference")
    lap = apply_2d_numpy(u, ks, "lap", mode="same")
    out = np.full(problem.shape, np.nan)
    hw = ks.half_width
    valid = interior_mask(problem.shape, hw)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[valid] = heat_rate_closed_form(lap[valid], problem.m[valid])
    return out


class _HeatPlugin:
    """Plug-in of the steady-heat problem (see the module docstring)."""

    kind = "heat"
    ndim = 2
    derivatives = ("u", "lap")
    max_order = 2
    #: residual weight: measured best of 1, 0.1, 0.01, 1e-3 on the noise-free problem (with
    #: weight 1 the residual pulls u off the data faster than lambda adapts and the fit stalls)
    defaults = {"radius_px": 6.0, "fourier_scale": 1.0, "rate_fourier": 0, "rate_scale": 1.0,
                "residual_weight": 0.01}

    def make(self, n=None, *, noise=0.0, seed=0):
        return make_heat_problem(64 if n is None else n, noise=noise, seed=seed)

    def spacing(self, problem):
        return problem.h

    def extent(self, problem):
        return (0.5, 0.5), 0.5, 1.0

    def initial_rate(self, problem):
        """Least squares of ``u_obs ~ u_1 / lambda``, ``u_1`` the solution for lambda = 1."""
        u1 = solve_poisson_dst(-problem.m, problem.h)
        return float(np.sum(u1 * u1) / max(np.sum(u1 * problem.u_obs), 1e-30))

    def known(self, problem, device, dtype):
        return {"m": torch.tensor(np.array(problem.m), device=device, dtype=dtype)}

    def residual(self, ops, lam, known):
        return heat_residual(lam, ops["lap"], known["m"])

    def residual_scale(self, problem, lam0):
        return float(np.mean(np.abs(problem.m)))

    def closed_form(self, ops, known):
        return heat_rate_closed_form(ops["lap"], known["m"])


#: The steady-heat plug-in.
HEAT = register(_HeatPlugin())
