"""The two benchmark inverse problems of the mollifier-layer paper besides the chromatin one.

docs/design.md section 7 lists them (TMLR 2025, "Mollifier Layers: Enabling Efficient High-Order
Derivatives in Inverse PDE Learning"). Each comes with a forward solver (ground truth with a
known parameter), its residual, the closed-form inversion and a PINN fit that works with any
derivative backend.

Steady heat (2nd order, 2-D)
    ``0 = lambda(x, y) lap(u) + m(x, y)`` on the unit square ``[0, 1]^2`` (arbitrary length
    unit), ``u = 0`` on the boundary. Nodes ``x_i = i h``, ``h = 1 / (n - 1)``, boundary nodes
    included. Forward solver: ``lap_h(u) = -m / lambda`` with the 5-point Laplacian on the
    ``(n - 2)^2`` interior nodes, solved exactly (to round-off) by the type-I discrete sine
    transform (``scipy.fft.dstn``) with the exact eigenvalues of the 5-point operator,
    ``-(4 / h^2) sin^2(pi k / (2 (n - 1)))``. :func:`heat_discrete_residual` uses the same
    5-point operator, so the solver's own residual is at round-off level. The discrete
    solution differs from the continuous one by O(h^2) (``refine`` solves on a finer grid and
    subsamples to shrink that).

    Residual ``r = lambda lap(u) + m``; closed form ``lambda = -m / lap(u)``.

Langevin-type ODE (1st order, 1-D in time)
    ``du/dt = -u + lambda(t)`` on ``[0, T]``, ``u(0) = u0``. Forward solver: exact
    exponential integrator for piecewise-linear ``lambda`` on a fine grid (``refine``
    sub-steps per sample), sampled on ``n`` points; the only error is the piecewise-linear
    interpolation of ``lambda``, O(dt_fine^2).

    Residual ``r = du/dt + u - lambda``; closed form ``lambda = du/dt + u``.

PINN fit (:func:`fit_problem`)
    A coordinate network ``u_theta`` (tanh MLP, optionally with random Fourier features; its
    inputs are scaled to [-1, 1] and its output to the data range) and a separate positive
    network ``lambda_theta`` (softplus, started at a constant estimate that needs no
    derivative of the data: least squares against the lambda = 1 solution for heat, the
    integrated ODE for Langevin). Loss, each term dimensionless::

        data     = mean |u_fit - u_obs|^2 / range(u_obs)^2   (u_fit mollified for the mollifier backend)
        residual = mean_interior r^2 / s^2                   (s: mean |m| heat, lambda0 Langevin)
        smooth   = mean |grad lambda|^2 L^2 / lambda0^2      (L: domain length)
        loss     = data_weight data + residual_weight residual + smooth_weight smooth

    Derivatives come from a backend: in 2-D :func:`chromarate.fit.derivatives.make_backend`
    ("autograd", "finite-difference", "spectral") or, for "mollifier", a
    :class:`~chromarate.fit.derivatives.MollifierBackend` with kernels up to the second
    order only (``make_backend`` builds orders up to 4 for the chromatin problem, i.e. a
    higher polynomial degree and wider kernels than a second-order problem needs); in 1-D
    this module's own backends (:func:`make_backend_1d`: "mollifier", "autograd",
    "finite-difference") with the same ``fields(net, grid, names) -> {name: (C, n)}``
    interface. Every backend gets the same networks, seeds, steps and collocation points:
    the residual is scored, and the metrics computed, on the nodes at least
    :func:`problem_margin` (one kernel radius, or the mollifier kernels' half-width if
    larger) from the boundary; the data term uses every node.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import resolve_device
from ..errors import ConfigError, FitDivergedError
from .derivatives import Grid, MollifierBackend, make_backend
from .mollifier import apply_1d_numpy, apply_2d_numpy, finite_difference_kernels, kernel_1d, make_kernels
from .networks import FourierMLP, RateNetwork

__all__ = [
    "BACKENDS_1D",
    "AutogradBackend1D",
    "FiniteDifferenceBackend1D",
    "Grid1D",
    "HeatProblem",
    "LangevinProblem",
    "Mollifier1DBackend",
    "ProblemFit",
    "fit_problem",
    "heat_discrete_residual",
    "heat_lambda",
    "heat_rate_closed_form",
    "heat_residual",
    "heat_source",
    "interior_mask",
    "invert_heat",
    "invert_langevin",
    "langevin_lambda",
    "langevin_rate_closed_form",
    "langevin_residual",
    "make_backend_1d",
    "mollifier_kernels_1d",
    "problem_margin",
    "make_heat_problem",
    "make_langevin_problem",
    "metrics",
    "solve_langevin",
    "solve_poisson_dst",
]


# --------------------------------------------------------------------------------------
# Steady heat: truth, forward solver, residual, closed form
# --------------------------------------------------------------------------------------

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
    if n < 8:
        raise ConfigError(f"heat problem needs n >= 8 nodes per side, got {n}")
    if refine < 1:
        raise ConfigError(f"refine must be >= 1, got {refine}")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    nf = refine * (n - 1) + 1
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


def interior_mask(shape, margin: int) -> np.ndarray:
    """bool array, True at nodes at least ``margin`` nodes from every edge (1-D or 2-D)."""
    mask = np.zeros(shape, dtype=bool)
    sl = tuple(slice(margin, s - margin) for s in shape)
    mask[sl] = True
    return mask


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


# --------------------------------------------------------------------------------------
# Langevin ODE: truth, forward solver, residual, closed form
# --------------------------------------------------------------------------------------

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
class LangevinProblem:
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

    n: int
    T: float
    dt: float
    t: np.ndarray
    u_true: np.ndarray
    u_obs: np.ndarray
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

    @property
    def shape(self) -> tuple[int]:
        return (self.n,)


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
    if n < 8:
        raise ConfigError(f"Langevin problem needs n >= 8 samples, got {n}")
    if refine < 1:
        raise ConfigError(f"refine must be >= 1, got {refine}")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    nf = refine * (n - 1) + 1
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


# --------------------------------------------------------------------------------------
# 1-D derivative backends (same interface as chromarate.fit.derivatives)
# --------------------------------------------------------------------------------------

#: Derivative names of the 1-D backends and their orders.
DERIVATIVES_1D = {"u": 0, "u_t": 1, "u_tt": 2}

#: Names accepted by :func:`make_backend_1d`.
BACKENDS_1D = ("mollifier", "autograd", "finite-difference")


@dataclass(frozen=True)
class Grid1D:
    """``n`` nodes starting at ``t0`` with spacing ``h``."""

    n: int
    h: float
    t0: float = 0.0

    def padded(self, halo: int) -> "Grid1D":
        return Grid1D(self.n + 2 * halo, self.h, self.t0 - halo * self.h)

    def coords(self, device, dtype) -> torch.Tensor:
        """(n, 1) tensor of node coordinates."""
        return (self.t0 + self.h * torch.arange(self.n, device=device, dtype=dtype)).unsqueeze(-1)


def _check_names_1d(names, max_order: int) -> None:
    for n in names:
        if n not in DERIVATIVES_1D:
            raise ConfigError(f"unknown 1-D derivative {n!r}; known: {sorted(DERIVATIVES_1D)}")
        if DERIVATIVES_1D[n] > max_order:
            raise ConfigError(f"derivative {n!r} not built for this backend (max order {max_order})")


def mollifier_kernels_1d(kind: str, radius_px: float, *, max_order: int, degree: int | None = None,
                         pixel: float = 1.0) -> list[np.ndarray]:
    """Grid-exact 1-D kernels of orders 0 .. ``max_order``, zero-padded to one common length.

    Each is :func:`chromarate.fit.mollifier.kernel_1d` of polynomial degree ``degree``
    (default ``max_order + 2``), per unit of ``pixel``; the common length lets one halo
    serve every order.
    """
    deg = max_order + 2 if degree is None else int(degree)
    ks = [np.asarray(kernel_1d(kind, radius_px, a, deg, pixel=pixel)) for a in range(max_order + 1)]
    length = max(len(k) for k in ks)
    return [np.pad(k, ((length - len(k)) // 2,) * 2) for k in ks]


class Mollifier1DBackend:
    """1-D fields by ``conv1d`` with grid-exact mollifier kernels (orders 0 .. max_order).

    The network is evaluated once on the grid plus a halo of the kernel half-width and
    correlated with the kernels of :func:`mollifier_kernels_1d` (no nested autograd).
    """

    name = "mollifier"

    def __init__(self, kernels, device, dtype) -> None:
        lengths = {len(k) for k in kernels}
        if len(lengths) != 1 or len(kernels[0]) % 2 != 1:
            raise ConfigError("the 1-D kernels must all have the same odd length")
        self.halo = (len(kernels[0]) - 1) // 2
        self._k = [torch.tensor(np.array(k), device=device, dtype=dtype).view(1, 1, -1) for k in kernels]

    @classmethod
    def from_radius(cls, radius_px: float, *, pixel: float, device, dtype, kernel: str = "bump",
                    degree: int | None = None, max_order: int = 1) -> "Mollifier1DBackend":
        return cls(mollifier_kernels_1d(kernel, radius_px, max_order=max_order, degree=degree,
                                        pixel=pixel), device, dtype)

    def convolve(self, g: torch.Tensor, names) -> dict[str, torch.Tensor]:
        """Apply named operators to a (C, n + 2 halo) field; outputs (C, n)."""
        _check_names_1d(names, len(self._k) - 1)
        x = g.unsqueeze(1)
        return {n: F.conv1d(x, self._k[DERIVATIVES_1D[n]])[:, 0] for n in names}

    def fields(self, net: nn.Module, grid: Grid1D, names) -> dict[str, torch.Tensor]:
        p = next(net.parameters())
        t = grid.padded(self.halo).coords(p.device, p.dtype)
        return self.convolve(net(t).T, names)


class FiniteDifferenceBackend1D(Mollifier1DBackend):
    """Second-order central differences of the network sampled on the grid plus one node."""

    name = "finite-difference"

    def __init__(self, pixel: float, device, dtype) -> None:
        ks = [np.array([0.0, 1.0, 0.0]), np.array([-0.5, 0.0, 0.5]) / pixel,
              np.array([1.0, -2.0, 1.0]) / pixel**2]
        super().__init__(ks, device, dtype)


class AutogradBackend1D:
    """1-D fields by nested ``torch.autograd.grad`` at the nodes (the standard PINN)."""

    name = "autograd"
    halo = 0

    def fields(self, net: nn.Module, grid: Grid1D, names) -> dict[str, torch.Tensor]:
        _check_names_1d(names, 2)
        p = next(net.parameters())
        t = grid.coords(p.device, p.dtype).requires_grad_(True)
        u = net(t)
        top = max(DERIVATIVES_1D[n] for n in names)
        out: dict[str, list] = {n: [] for n in names}
        for ch in range(u.shape[1]):
            ders = [u[:, ch]]
            for _ in range(top):
                (g,) = torch.autograd.grad(ders[-1].sum(), t, create_graph=True)
                ders.append(g[:, 0])
            for n in names:
                out[n].append(ders[DERIVATIVES_1D[n]])
        return {n: torch.stack(v) for n, v in out.items()}


def make_backend_1d(name: str, *, pixel: float, device, dtype, kernel: str = "bump",
                    radius_px: float = 8.0, degree: int | None = None, max_order: int = 1):
    """Build a 1-D derivative backend by name (see :data:`BACKENDS_1D`).

    ``max_order`` (1 or 2) is the highest derivative the mollifier backend builds; its
    kernels have polynomial degree ``max_order + 2`` unless ``degree`` is given.
    """
    if name == "mollifier":
        return Mollifier1DBackend.from_radius(radius_px, pixel=pixel, device=device, dtype=dtype,
                                              kernel=kernel, degree=degree, max_order=max_order)
    if name == "autograd":
        return AutogradBackend1D()
    if name == "finite-difference":
        return FiniteDifferenceBackend1D(pixel, device, dtype)
    raise ConfigError(f"unknown 1-D derivative backend {name!r}; choose one of {BACKENDS_1D}")


# --------------------------------------------------------------------------------------
# PINN fit
# --------------------------------------------------------------------------------------

class _Scaled(nn.Module):
    """``out_offset + out_scale * inner((x - centre) / half_width)``; 1-D inputs get a zero column.

    Keeps the networks' inputs in [-1, 1] and outputs O(1) while the backends differentiate
    with respect to the physical coordinates. ``FourierMLP`` takes 2-D inputs; a 1-D
    coordinate is lifted to ``(s, 0)`` (the zero column only adds unused weights).
    """

    def __init__(self, inner: nn.Module, centre, half_width: float, out_scale: float = 1.0,
                 out_offset: float = 0.0) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("centre", torch.as_tensor(np.asarray(centre, dtype=np.float64)).view(1, -1))
        self.half_width = float(half_width)
        self.out_scale = float(out_scale)
        self.out_offset = float(out_offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x - self.centre) / self.half_width
        if s.shape[-1] == 1:
            s = torch.cat([s, torch.zeros_like(s)], dim=-1)
        return self.out_offset + self.out_scale * self.inner(s)


@dataclass(frozen=True, eq=False)
class ProblemFit:
    """Outcome of :func:`fit_problem`.

    Attributes
    ----------
    problem : str
        "heat" or "langevin".
    backend, network : str
    lambda_hat : ndarray
        Estimated parameter on the problem grid (all nodes).
    u_fit : ndarray
        Fitted field on the grid (mollified for the mollifier backend).
    lambda_from_u : ndarray
        The closed form applied to the fitted u with the backend's derivatives
        (heat ``-m / lap(u_theta)``, Langevin ``du_theta/dt + u_theta``): a diagnostic of how
        much of the error comes from the u fit and how much from the lambda network.
    interior : ndarray of bool
        Nodes at least one kernel radius from the boundary: residual collocation points and
        where the metrics are computed.
    correlation, rel_l2 : float
        Pearson correlation and ||lambda_hat - lambda|| / ||lambda|| over ``interior``.
    correlation_from_u, rel_l2_from_u : float
        The same for ``lambda_from_u``.
    time_per_step_s, train_s, total_s : float
        Mean optimiser step time, training time, total time including setup.
    history : dict of list
        ``step``, ``loss``, ``data``, ``residual``, ``smooth`` every ``log_every`` steps.
    steps, seed : int
    radius_px : float
    device, dtype : str
    settings : dict
        The remaining fit settings.
    """

    problem: str
    backend: str
    network: str
    lambda_hat: np.ndarray
    u_fit: np.ndarray
    lambda_from_u: np.ndarray
    interior: np.ndarray
    correlation: float
    rel_l2: float
    correlation_from_u: float
    rel_l2_from_u: float
    time_per_step_s: float
    train_s: float
    total_s: float
    history: dict
    steps: int
    seed: int
    radius_px: float
    device: str
    dtype: str
    settings: dict = field(default_factory=dict)


def metrics(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(Pearson correlation, relative L2 error) of ``estimate`` vs ``truth`` over ``mask``."""
    e = np.asarray(estimate, dtype=np.float64)[mask]
    t = np.asarray(truth, dtype=np.float64)[mask]
    if not np.all(np.isfinite(e)):
        return float("nan"), float("nan")
    corr = float(np.corrcoef(e, t)[0, 1]) if np.std(e) > 0 else float("nan")
    return corr, float(np.linalg.norm(e - t) / np.linalg.norm(t))


#: Defaults per problem: radius (nodes), u-network Fourier scale (cycles per unit of the
#: scaled input in [-1, 1]), rate-network Fourier features and scale, residual weight
#: (measured best of 1, 0.1, 0.01, 1e-3 on the noise-free problems: with weight 1 the heat
#: residual pulls u off the data faster than lambda adapts and the fit stalls).
_DEFAULTS = {
    "heat": {"radius_px": 6.0, "fourier_scale": 1.0, "rate_fourier": 0, "rate_scale": 1.0,
             "residual_weight": 0.01},
    "langevin": {"radius_px": 8.0, "fourier_scale": 2.0, "rate_fourier": 16, "rate_scale": 2.0,
                 "residual_weight": 1.0},
}


def problem_margin(problem, radius_px: float, *, kernel: str = "bump", degree: int | None = None) -> int:
    """Interior margin (nodes) for a mollifier radius: ``max(ceil(radius), kernel half-width)``.

    The half-width is that of the mollifier kernels the fit uses for this problem (orders up
    to 2 in 2-D, 1 in 1-D, each a central difference composed with the mollifier, so a few
    nodes wider than the radius). Every backend scores the residual and the metrics on the
    nodes at least this far from the boundary.
    """
    if problem.kind == "heat":
        half = make_kernels(kernel, radius_px, degree=degree, max_order=2, pixel=problem.h).half_width
    else:
        half = (len(mollifier_kernels_1d(kernel, radius_px, max_order=1, degree=degree)[0]) - 1) // 2
    return max(int(math.ceil(radius_px)), half)


def _resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"unsupported dtype {dtype}; use float32 or float64")
        return dtype
    table = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in table:
        raise ConfigError(f"unsupported dtype {dtype!r}; use float32 or float64")
    return table[dtype]


def _initial_rate(problem) -> float:
    """Constant-parameter estimate (no derivatives of the data).

    Heat: least squares of ``u_obs ~ u_1 / lambda`` with ``u_1`` the solution for lambda = 1.
    Langevin: integrating the ODE, ``mean(lambda) = mean(u) + (u(T) - u(0)) / T`` (trapezoid).
    """
    if problem.kind == "heat":
        u1 = solve_poisson_dst(-problem.m, problem.h)
        return float(np.sum(u1 * u1) / max(np.sum(u1 * problem.u_obs), 1e-30))
    u = problem.u_obs
    return float(np.trapezoid(u, problem.t) / problem.T + (u[-1] - u[0]) / problem.T)


def fit_problem(problem, *, backend: str, network: str = "mlp", steps: int = 1000, lr: float = 1e-2,
                seed: int = 0, radius_px: float | None = None, kernel: str = "bump",
                degree: int | None = None, device="cpu", dtype=torch.float32, width: int = 64,
                depth: int = 3, n_fourier: int = 32, fourier_scale: float | None = None,
                data_weight: float = 1.0, residual_weight: float | None = None,
                smooth_weight: float = 1e-4,
                lbfgs_steps: int = 0, log_every: int = 50) -> ProblemFit:
    """Fit a PINN (u network + positive lambda network) to a benchmark problem.

    Parameters
    ----------
    problem : HeatProblem or LangevinProblem
    backend : str
        Derivative backend: 2-D "mollifier", "autograd", "finite-difference", "spectral";
        1-D "mollifier", "autograd", "finite-difference".
    network : {"mlp", "fourier"}
        u network: plain tanh MLP on the scaled coordinates, or with ``n_fourier`` random
        Fourier features of std ``fourier_scale``.
    steps, lr, seed
        Adam steps (cosine decay to 5 % of ``lr``), learning rate, seed of the initial weights.
    radius_px : float, optional
        Mollifier radius in nodes (default 6 for heat, 8 for Langevin). Also sets the
        interior margin (:func:`problem_margin`) for every backend, so all backends share
        the collocation points and the scored region.
    kernel, degree
        Mollifier weight and polynomial degree (see :mod:`chromarate.fit.mollifier`).
    device, dtype
        Where and in which precision to train (``device``: a torch device or a string for
        :func:`chromarate.device.resolve_device`, e.g. "cpu", "cuda", "auto"; ``dtype``: a
        torch dtype or "float32"/"float64").
    width, depth : int
        u network size (the lambda network is 32 wide, 2 deep).
    data_weight, residual_weight, smooth_weight : float
        Loss weights (terms defined in the module docstring); ``residual_weight`` defaults to
        0.01 for heat and 1 for Langevin (see ``_DEFAULTS``).
    lbfgs_steps : int
        Optional L-BFGS iterations after the Adam steps (0: none).
    log_every : int
        History interval.
    """
    if problem.kind not in _DEFAULTS:
        raise ConfigError(f"unknown problem kind {problem.kind!r}")
    if network not in ("mlp", "fourier"):
        raise ConfigError(f"unknown network {network!r}; use mlp or fourier")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    t_start = time.perf_counter()
    defaults = _DEFAULTS[problem.kind]
    radius = float(defaults["radius_px"] if radius_px is None else radius_px)
    fscale = float(defaults["fourier_scale"] if fourier_scale is None else fourier_scale)
    if residual_weight is None:
        residual_weight = defaults["residual_weight"]
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    dt = _resolve_dtype(dtype)
    gen = torch.Generator().manual_seed(int(seed))
    heat = problem.kind == "heat"

    margin = problem_margin(problem, radius, kernel=kernel, degree=degree)
    interior_np = interior_mask(problem.shape, margin)
    if interior_np.sum() < 16:
        raise ConfigError(f"radius {radius:g} leaves fewer than 16 interior nodes on a grid of {problem.shape}")
    interior = torch.as_tensor(interior_np, device=dev)
    obs = torch.tensor(np.array(problem.u_obs), device=dev, dtype=dt)
    u_range = float(np.ptp(problem.u_obs)) or 1.0
    u_mean = float(np.mean(problem.u_obs))
    lam0 = max(_initial_rate(problem), 1e-2)

    if heat:
        pixel = problem.h
        grid = Grid(problem.n, problem.n, pixel, 0.0, 0.0)
        if backend == "mollifier":
            # kernels up to the second order only (degree 4 by default): make_backend builds
            # orders up to 4 (degree 6, wider and noisier) for the chromatin problem
            be = MollifierBackend(make_kernels(kernel, radius, degree=degree, max_order=2, pixel=pixel),
                                  dev, dt)
        else:
            be = make_backend(backend, pixel=pixel, device=dev, dtype=dt, kernel=kernel,
                              radius_px=radius, degree=degree)
        centre, half, length = (0.5, 0.5), 0.5, 1.0
        m = torch.tensor(np.array(problem.m), device=dev, dtype=dt)
        names = ("u", "lap")
        r_scale = float(np.mean(np.abs(problem.m)))
    else:
        pixel = problem.dt
        grid = Grid1D(problem.n, pixel, 0.0)
        be = make_backend_1d(backend, pixel=pixel, device=dev, dtype=dt, kernel=kernel,
                             radius_px=radius, degree=degree)
        centre, half, length = (0.5 * problem.T,), 0.5 * problem.T, problem.T
        names = ("u", "u_t")
        r_scale = lam0

    n_f = n_fourier if network == "fourier" else 0
    u_net = _Scaled(FourierMLP(1, width=width, depth=depth, n_fourier=n_f, scale_per_um=fscale,
                               generator=gen), centre, half, out_scale=u_range, out_offset=u_mean)
    rate_net = _Scaled(RateNetwork(initial_rate=lam0, width=32, depth=2, n_fourier=defaults["rate_fourier"],
                                   scale_per_um=defaults["rate_scale"], generator=gen), centre, half)
    u_net = u_net.to(device=dev, dtype=dt)
    rate_net = rate_net.to(device=dev, dtype=dt)
    coords = grid.coords(dev, dt)

    params = list(u_net.parameters()) + list(rate_net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.05 * lr)

    def losses(closed_form: bool = False):
        f = be.fields(u_net, grid, names)
        u = f["u"][0]
        if heat:
            lam = rate_net(coords).view(problem.n, problem.n)
            r = heat_residual(lam, f["lap"][0], m)
            gy = (lam[1:, :] - lam[:-1, :]) / pixel
            gx = (lam[:, 1:] - lam[:, :-1]) / pixel
            smooth = 0.5 * ((gy**2).mean() + (gx**2).mean())
        else:
            lam = rate_net(coords).view(problem.n)
            r = langevin_residual(u, f["u_t"][0], lam)
            smooth = (((lam[1:] - lam[:-1]) / pixel) ** 2).mean()
        data = ((u - obs) ** 2).mean() / u_range**2
        res = (r[interior] ** 2).mean() / r_scale**2
        smooth = smooth * length**2 / lam0**2
        total = data_weight * data + residual_weight * res + smooth_weight * smooth
        closed = None
        if closed_form:
            closed = (heat_rate_closed_form(f["lap"][0], m) if heat
                      else langevin_rate_closed_form(u, f["u_t"][0]))
        return total, {"data": data, "residual": res, "smooth": smooth}, (u, lam, closed)

    history: dict[str, list] = {"step": [], "loss": [], "data": [], "residual": [], "smooth": []}
    t_train = time.perf_counter()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        total, terms, _ = losses()
        if not torch.isfinite(total):
            vals = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise FitDivergedError(f"loss became non-finite at step {step} ({vals})")
        total.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            history["step"].append(step)
            history["loss"].append(float(total.detach()))
            for k, v in terms.items():
                history[k].append(float(v.detach()))
    if lbfgs_steps > 0:
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=lbfgs_steps, history_size=50,
                                  tolerance_grad=0.0, tolerance_change=0.0,
                                  line_search_fn="strong_wolfe")

        def closure():
            lbfgs.zero_grad(set_to_none=True)
            total, _, _ = losses()
            total.backward()
            return total

        lbfgs.step(closure)
        total, terms, _ = losses()
        if not torch.isfinite(total):
            raise FitDivergedError("loss became non-finite during L-BFGS")
        history["step"].append(steps + lbfgs_steps)
        history["loss"].append(float(total.detach()))
        for k, v in terms.items():
            history[k].append(float(v.detach()))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    train_s = time.perf_counter() - t_train

    # the autograd backends need gradients enabled to differentiate the network
    _, _, (u, lam, closed) = losses(closed_form=True)
    lam_np = lam.detach().cpu().numpy().astype(np.float64)
    u_np = u.detach().cpu().numpy().astype(np.float64)
    closed_np = closed.detach().cpu().numpy().astype(np.float64)
    corr, rel = metrics(lam_np, problem.lambda_true, interior_np)
    corr_u, rel_u = metrics(closed_np, problem.lambda_true, interior_np)
    return ProblemFit(
        problem=problem.kind, backend=backend, network=network, lambda_hat=lam_np, u_fit=u_np,
        lambda_from_u=closed_np, interior=interior_np, correlation=corr, rel_l2=rel,
        correlation_from_u=corr_u, rel_l2_from_u=rel_u, time_per_step_s=train_s / steps,
        train_s=train_s, total_s=time.perf_counter() - t_start, history=history, steps=int(steps),
        seed=int(seed), radius_px=radius, device=str(dev), dtype=str(dt).replace("torch.", ""),
        settings={"lr": lr, "kernel": kernel, "degree": degree, "width": width, "depth": depth,
                  "n_fourier": n_f, "fourier_scale": fscale, "data_weight": data_weight,
                  "residual_weight": residual_weight, "smooth_weight": smooth_weight,
                  "initial_rate": lam0, "margin": margin},
    )
