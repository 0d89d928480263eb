"""Forward solver of the chromatin model with no flux through a nuclear envelope (a mask).

:func:`chromarate.fit.simulate.steady_state` solves on the whole box (no flux through the
box walls, or periodic). Here the envelope is an arbitrary mask: every Laplacian is the
masked five-point operator ``lap_m a = sum_faces chi_face (a_nb - a) / h^2`` with
``chi_face = 1`` only where both pixels of a face are inside the nucleus, so neither
chromatin (flux of ``mu_d``) nor the interface term (gradient of ``phi_d``) crosses the
envelope, and the sum of ``lap_m`` of anything over the nucleus is exactly zero (the
discrete divergence theorem).

Scheme: the box solver's semi-implicit, linearly stabilised step, but with the masked
operators as sparse matrices on the nucleus pixels only::

    (1 + dt (M S (-L) + M l^2 L^2 + 2)) phi_new = phi + dt (M L (f'(phi_h) - S phi) + reaction + 2 phi)

with ``L`` the masked Laplacian, solved by a sparse LU factorisation cached per step size
(step sizes form a ladder of powers of two; the step grows while the residual falls and
shrinks when it grows). At a fixed point the masked residual is zero. Outside the mask
``phi_h = lambda phi_e`` (never observed).

Closure: constant euchromatin (``phi_e = phi_e0``), the observation model's.
Discretisation is second order (five-point), so the steady state is exact for the
discrete operator, not the continuum: with l = 30 nm and 10 nm pixels the interfaces are
resolved by about three pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from ..errors import StageError
from .physics import ChromatinParams, f_prime
from .simulate import SteadyState

__all__ = ["masked_laplacian", "masked_residual", "steady_state_masked"]


def masked_laplacian(a: np.ndarray, mask: np.ndarray, h: float) -> np.ndarray:
    """Five-point Laplacian with no flux through faces that leave ``mask``."""
    m = np.asarray(mask, dtype=bool)
    out = np.zeros_like(a, dtype=np.float64)
    fy = (m[1:, :] & m[:-1, :]) * (a[1:, :] - a[:-1, :])
    fx = (m[:, 1:] & m[:, :-1]) * (a[:, 1:] - a[:, :-1])
    out[:-1, :] += fy
    out[1:, :] -= fy
    out[:, :-1] += fx
    out[:, 1:] -= fx
    return out / (h * h)


def masked_residual(phi_d: np.ndarray, rate: np.ndarray, mask: np.ndarray, h: float,
                    params: ChromatinParams = ChromatinParams(), phi_e0: float = 0.2
                    ) -> np.ndarray:
    """Steady residual ``M lap_m(mu_d) + 2 (lambda phi_e - phi_h)`` with masked operators."""
    phi_h = phi_d + phi_e0
    mu = f_prime(phi_h, params.phi_max) - phi_e0 - params.interface_um**2 * masked_laplacian(
        phi_d, mask, h)
    return params.mobility * masked_laplacian(mu, mask, h) + 2.0 * (rate * phi_e0 - phi_h)


def steady_state_masked(rate: np.ndarray, mask: np.ndarray, *, pixel_um: float,
                        params: ChromatinParams = ChromatinParams(), phi_e0: float = 0.2,
                        tol: float = 1e-3, max_steps: int = 200_000, dt_max: float = 0.5,
                        seed: int = 0, phi_d0: np.ndarray | None = None) -> SteadyState:
    """Steady state of the chromatin model inside a no-flux envelope.

    Parameters
    ----------
    rate : ndarray
        lambda(y, x) >= 0.
    mask : ndarray of bool
        The nucleus; its edge is the no-flux envelope.
    pixel_um : float
    params : ChromatinParams
    phi_e0 : float
        Constant euchromatin fraction.
    tol : float
        Stop when max |r| over the mask is below ``tol``.
    max_steps : int
    dt_max : float
        Largest pseudo-time step (units of 1/Gamma_ac).
    seed : int
        Seed of the small random initial perturbation.
    phi_d0 : ndarray, optional
        Initial state (default: ``phi_e0 (lambda - 1)`` plus 1 % noise).

    Returns
    -------
    SteadyState
        ``residual`` is zero outside the mask; ``residual_max`` is over the mask.

    Examples
    --------
    >>> yy, xx = np.mgrid[:32, :32]
    >>> disk = (yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 14 ** 2
    >>> s = steady_state_masked(np.full((32, 32), 1.5), disk, pixel_um=0.02, tol=1e-6)
    >>> bool(s.converged), round(float(s.phi_d[disk].mean()), 6)
    (True, 0.1)
    """
    rate = np.asarray(rate, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if rate.ndim != 2 or rate.shape != m.shape or min(rate.shape) < 4:
        raise StageError(f"rate map and mask must be 2-D, the same shape and at least 4 x 4; "
                         f"got {rate.shape} and {m.shape}")
    if not np.all(np.isfinite(rate)) or np.any(rate < 0):
        raise StageError("rate map must be finite and non-negative")
    if m.sum() < 16:
        raise StageError("the mask holds fewer than 16 pixels")
    h = float(pixel_um)
    idx = -np.ones(m.shape, dtype=np.int64)
    idx[m] = np.arange(int(m.sum()))
    L = _masked_matrix(m, idx, h)
    M, l2, S = params.mobility, params.interface_um**2, 0.25
    n = L.shape[0]
    eye = sparse.identity(n, format="csc")
    lin = (-M * S * L + M * l2 * (L @ L) + 2.0 * eye).tocsc()
    lam = rate[m]
    rng = np.random.default_rng(seed)
    outside = phi_e0 * (rate - 1.0)
    if phi_d0 is None:
        u = np.clip(phi_e0 * lam, 0.0, params.phi_max) - phi_e0
        u = u + 0.01 * rng.standard_normal(n)
    else:
        u = np.asarray(phi_d0, dtype=np.float64)[m].copy()

    def resid(v):
        mu = f_prime(v + phi_e0, params.phi_max) - phi_e0 - l2 * (L @ v)
        return M * (L @ mu) + 2.0 * (lam * phi_e0 - (v + phi_e0))

    solvers: dict[int, object] = {}
    level, level_max = 0, max(0, int(np.floor(np.log2(dt_max / 1e-3))))
    res = resid(u)
    rmax = float(np.max(np.abs(res)))
    t, step, good = 0.0, 0, 0
    while rmax >= tol and step < max_steps:
        dt = 1e-3 * 2.0**level
        if level not in solvers:
            solvers[level] = splu((eye + dt * lin).tocsc())
        explicit = M * (L @ (f_prime(u + phi_e0, params.phi_max) - S * u)) \
            + 2.0 * (lam * phi_e0 - phi_e0)
        new = solvers[level].solve(u + dt * explicit)
        new_res = resid(new)
        new_rmax = float(np.max(np.abs(new_res)))
        step += 1
        if not np.isfinite(new_rmax):
            raise StageError(f"masked forward solver diverged at step {step} (dt={dt:.3g})")
        if new_rmax > 1.5 * rmax and level > 0:
            level, good = level - 1, 0
            continue
        u, res, rmax, t = new, new_res, new_rmax, t + dt
        good += 1
        if good >= 10 and level < level_max:
            level, good = level + 1, 0
    phi_d = outside.copy()
    phi_d[m] = u
    residual = np.zeros(m.shape)
    residual[m] = res
    return SteadyState(phi_d=phi_d, phi_w=1.0 - 2.0 * phi_e0 - phi_d, residual=residual,
                       residual_max=rmax, steps=step, time=t, converged=rmax < tol)


def _masked_matrix(m: np.ndarray, idx: np.ndarray, h: float):
    """Sparse masked five-point Laplacian on the mask pixels (numbered by ``idx``)."""
    rows, cols, vals = [], [], []
    for a, b in (((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
                 ((slice(None), slice(1, None)), (slice(None), slice(None, -1)))):
        both = m[a] & m[b]
        i, j = idx[a][both], idx[b][both]
        rows += [i, j, i, j]
        cols += [j, i, i, j]
        one = np.ones(i.size)
        vals += [one, one, -one, -one]
    mat = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(int(m.sum()),) * 2)
    return (mat.tocsr() / (h * h)).tocsr()
