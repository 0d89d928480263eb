"""Forward solver of the chromatin model: the steady state for a given rate map.

Semi-implicit spectral scheme (linearly stabilised, Eyre-type): the stiff fourth-order
term, a stabilising second-order term ``S lap`` and the linear part of the reaction are
implicit; the double-well force is explicit. Derivatives use the exact symbols of the
cosine series (Neumann, no flux through the box walls) or Fourier series (periodic), so
the steady state solves the continuous PDE to spectral accuracy on the grid. The loop runs
until the max-norm of the steady residual is below ``tol`` (not a fixed step count).

Closures for phi_w (docs/design.md section 6):

- ``"constant_euchromatin"`` (default, the observation model's closure): phi_e = phi_e0
  everywhere, phi_w = 1 - 2 phi_e0 - phi_d.
- ``"fixed_water"``: phi_w is a given field held fixed; phi_e and phi_h both vary. For a
  constant rate the mean obeys mean(phi_d) = (1 - mean(phi_w)) (lambda - 1)/(lambda + 1).

The nucleus mask does not enter the dynamics: the PDE is solved on the whole box and the
mask only decides where chromatin is observed, so inside the nucleus the state is an exact
steady state of the model (residuals are scored away from the envelope anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import scipy.fft as sfft

from ..errors import ConfigError, StageError
from .physics import ChromatinParams, f_prime

__all__ = ["SteadyState", "SpectralGrid", "steady_state", "spectral_residual"]


@dataclass(frozen=True)
class SpectralGrid:
    """Transforms and the Laplacian symbol on a (ny, nx) grid with spacing ``h`` (um)."""

    shape: tuple[int, int]
    h: float
    boundary: Literal["neumann", "periodic"] = "neumann"
    k2: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ny, nx = self.shape
        if self.boundary == "neumann":
            ky = np.pi * np.arange(ny) / (ny * self.h)
            kx = np.pi * np.arange(nx) / (nx * self.h)
        elif self.boundary == "periodic":
            ky = 2 * np.pi * np.fft.fftfreq(ny, d=self.h)
            kx = 2 * np.pi * np.fft.fftfreq(nx, d=self.h)
        else:
            raise ConfigError(f"unknown boundary {self.boundary!r}; use 'neumann' or 'periodic'")
        object.__setattr__(self, "k2", ky[:, None] ** 2 + kx[None, :] ** 2)

    def fwd(self, a: np.ndarray) -> np.ndarray:
        if self.boundary == "neumann":
            return sfft.dctn(a, type=2, norm="ortho", workers=-1)
        return sfft.fft2(a, workers=-1)

    def inv(self, a: np.ndarray) -> np.ndarray:
        if self.boundary == "neumann":
            return sfft.idctn(a, type=2, norm="ortho", workers=-1)
        return sfft.ifft2(a, workers=-1).real

    def lap(self, a: np.ndarray) -> np.ndarray:
        return self.inv(-self.k2 * self.fwd(a))

    def grad2(self, a: np.ndarray) -> np.ndarray:
        """|grad a|^2, from spectral first derivatives (via the identity with Laplacians)."""
        # |grad a|^2 = (lap(a^2) - 2 a lap(a)) / 2 holds exactly for smooth a.
        return 0.5 * (self.lap(a * a) - 2.0 * a * self.lap(a))


@dataclass(frozen=True)
class SteadyState:
    """Result of :func:`steady_state`.

    Attributes
    ----------
    phi_d, phi_w : ndarray
    residual : ndarray
        Steady residual r of the final state.
    residual_max : float
    steps : int
    time : float
    converged : bool
    """

    phi_d: np.ndarray
    phi_w: np.ndarray
    residual: np.ndarray
    residual_max: float
    steps: int
    time: float
    converged: bool


def _closure(closure: str, phi_e0: float, phi_w: np.ndarray | None, shape):
    if closure == "constant_euchromatin":
        return None
    if closure == "fixed_water":
        if phi_w is None:
            raise ConfigError("closure 'fixed_water' needs a phi_w field")
        pw = np.broadcast_to(np.asarray(phi_w, dtype=np.float64), shape).copy()
        if np.any(pw < 0) or np.any(pw >= 1):
            raise ConfigError("phi_w must lie in [0, 1)")
        return pw
    raise ConfigError(f"unknown closure {closure!r}; use 'constant_euchromatin' or 'fixed_water'")


def _fields(phi_d, closure, phi_e0, pw):
    """phi_h, phi_e, phi_w and d(phi_h)/d(phi_d) for a closure."""
    if closure == "constant_euchromatin":
        phi_h = phi_d + phi_e0
        return phi_h, np.full_like(phi_d, phi_e0), 1.0 - 2.0 * phi_e0 - phi_d, 1.0
    phi_h = 0.5 * (1.0 - pw + phi_d)
    phi_e = 0.5 * (1.0 - pw - phi_d)
    return phi_h, phi_e, pw, 0.5


def spectral_residual(phi_d, rate, grid: SpectralGrid, params: ChromatinParams, *,
                      closure: str = "constant_euchromatin", phi_e0: float = 0.2,
                      phi_w=None) -> np.ndarray:
    """Steady residual r = M lap(mu_d) + 2 (lambda phi_e - phi_h) with spectral derivatives."""
    pw = _closure(closure, phi_e0, phi_w, phi_d.shape)
    phi_h, phi_e, _, _ = _fields(phi_d, closure, phi_e0, pw)
    mu = -phi_e + f_prime(phi_h, params.phi_max) - params.interface_um**2 * grid.lap(phi_d)
    return params.mobility * grid.lap(mu) + 2.0 * (rate * phi_e - phi_h)


def steady_state(rate: np.ndarray, *, pixel_um: float, params: ChromatinParams = ChromatinParams(),
                 closure: str = "constant_euchromatin", phi_e0: float = 0.2, phi_w=None,
                 boundary: Literal["neumann", "periodic"] = "neumann", tol: float = 1e-7,
                 max_steps: int = 200_000, dt_max: float = 0.5, seed: int = 0,
                 phi_d0: np.ndarray | None = None,
                 progress: Callable[[int, float], None] | None = None,
                 progress_every: int = 100) -> SteadyState:
    """Integrate the chromatin model to its steady state for a rate map.

    Parameters
    ----------
    rate : ndarray
        lambda(y, x) >= 0 on the grid.
    pixel_um : float
        Grid spacing in um.
    params : ChromatinParams
    closure, phi_e0, phi_w
        See the module docstring.
    boundary : {"neumann", "periodic"}
    tol : float
        Stop when max |r| < tol.
    max_steps : int
        Give up (``converged=False``) after this many steps.
    dt_max : float
        Largest time step (units of 1/Gamma_ac); the step grows from 1e-3 while the
        residual falls and shrinks when it grows.
    seed : int
        Seed of the small random initial perturbation.
    phi_d0 : ndarray, optional
        Initial state (default: the homogeneous steady state plus 1 % noise).
    progress : callable, optional
        Called as ``progress(step, residual_max)`` before the first step and every
        ``progress_every`` steps (the solver runs until ``residual_max < tol``).
    progress_every : int
        Steps between ``progress`` calls.

    Returns
    -------
    SteadyState

    Examples
    --------
    >>> lam = np.full((32, 32), 1.5)
    >>> s = steady_state(lam, pixel_um=0.02, tol=1e-8)
    >>> bool(s.converged)
    True
    """
    rate = np.asarray(rate, dtype=np.float64)
    if rate.ndim != 2 or min(rate.shape) < 4:
        raise StageError(f"rate map must be 2-D and at least 4 x 4, got shape {rate.shape}")
    if not np.all(np.isfinite(rate)) or np.any(rate < 0):
        raise StageError("rate map must be finite and non-negative")
    pw = _closure(closure, phi_e0, phi_w, rate.shape)
    grid = SpectralGrid(rate.shape, float(pixel_um), boundary)
    pm, l2, M = params.phi_max, params.interface_um**2, params.mobility
    rng = np.random.default_rng(seed)
    if phi_d0 is None:
        if closure == "constant_euchromatin":
            phi_h0 = np.clip(phi_e0 * rate, 0.0, pm)
            phi_d = phi_h0 - phi_e0
        else:
            phi_d = (1.0 - pw) * (rate - 1.0) / (rate + 1.0)
        phi_d = phi_d + 0.01 * rng.standard_normal(rate.shape)
    else:
        phi_d = np.array(phi_d0, dtype=np.float64)
    beta = 1.0 if closure == "constant_euchromatin" else 0.5
    # implicit linear coefficients: reaction -gamma*phi_d; -phi_e adds c_e*lap(phi_d) to mu
    if closure == "constant_euchromatin":
        gamma, c_e = 2.0, 0.0
    else:
        gamma, c_e = float(np.mean(rate)) + 1.0, 0.5
    S = 0.25 * beta  # Eyre: S >= max|f''| / 2 over the wells (|f''| <= phi_max^2 = 0.49)
    k2 = grid.k2
    dt, t = 1e-3, 0.0
    res = spectral_residual(phi_d, rate, grid, params, closure=closure, phi_e0=phi_e0, phi_w=pw)
    rmax = float(np.max(np.abs(res)))
    step = 0
    every = max(1, int(progress_every))
    if progress is not None:
        progress(step, rmax)
    while rmax >= tol and step < max_steps:
        if progress is not None and step and step % every == 0:
            progress(step, rmax)
        phi_h, phi_e, _, _ = _fields(phi_d, closure, phi_e0, pw)
        # explicit parts: f'(phi_h) - S phi_d in mu; reaction + gamma phi_d
        mu_exp = f_prime(phi_h, pm) - S * phi_d
        if closure == "fixed_water":
            mu_exp = mu_exp - 0.5 * (1.0 - pw) + c_e * 0.0  # -phi_e's phi_w part (phi_d part implicit)
        react = 2.0 * (rate * phi_e - phi_h) + gamma * phi_d
        rhs = grid.fwd(phi_d) + dt * (-M * k2 * grid.fwd(mu_exp) + grid.fwd(react))
        denom = 1.0 + dt * (M * (S + c_e) * k2 + M * l2 * k2 * k2 + gamma)
        new = grid.inv(rhs / denom)
        new_res = spectral_residual(new, rate, grid, params, closure=closure, phi_e0=phi_e0, phi_w=pw)
        new_rmax = float(np.max(np.abs(new_res)))
        if not np.isfinite(new_rmax):
            raise StageError(f"forward solver diverged at step {step} (t={t:.3g}, dt={dt:.3g})")
        if new_rmax > 1.5 * rmax and dt > 1e-6:
            dt *= 0.5
            step += 1
            continue
        phi_d, res, rmax = new, new_res, new_rmax
        t += dt
        dt = min(dt * 1.1, dt_max)
        step += 1
    _, _, phi_w_out, _ = _fields(phi_d, closure, phi_e0, pw)
    return SteadyState(phi_d=phi_d, phi_w=np.asarray(phi_w_out, dtype=np.float64), residual=res,
                       residual_max=rmax, steps=step, time=t, converged=rmax < tol)

