"""The no-flux-in-a-mask forward solver (chromarate.fit.simulate_masked)."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate.errors import StageError
from chromarate.fit.physics import ChromatinParams, f_prime
from chromarate.fit.simulate_masked import masked_laplacian, masked_residual, steady_state_masked

from ._helpers import disk_mask

H = 0.02


def _ellipse(n=48):
    yy, xx = np.mgrid[:n, :n] + 0.5
    return ((yy - n / 2) / (0.45 * n)) ** 2 + ((xx - n / 2) / (0.38 * n)) ** 2 < 1


def test_masked_laplacian_sums_to_zero_and_ignores_outside():
    """Discrete divergence theorem, and values outside the mask never enter."""
    m = _ellipse()
    rng = np.random.default_rng(0)
    a = rng.standard_normal(m.shape)
    lap = masked_laplacian(a, m, H)
    assert abs(lap[m].sum()) < 1e-9 * np.abs(lap[m]).sum()
    b = a.copy()
    b[~m] = 1e6 * rng.standard_normal(int((~m).sum()))
    np.testing.assert_array_equal(masked_laplacian(b, m, H)[m], lap[m])
    assert np.all(lap[~m] == 0.0)


def test_masked_laplacian_of_quadratic_in_the_interior():
    """Away from the envelope it is the ordinary five-point Laplacian: lap(x^2 + y^2) = 4."""
    m = _ellipse()
    yy, xx = np.mgrid[: m.shape[0], : m.shape[1]] * H
    lap = masked_laplacian(xx**2 + yy**2, m, H)
    from scipy import ndimage as ndi

    inner = ndi.binary_erosion(m, iterations=2)
    np.testing.assert_allclose(lap[inner], 4.0, rtol=1e-9)


def test_constant_rate_mean_relation_is_exact():
    """No flux: the sum of the reaction over the nucleus vanishes, so for constant lambda
    mean(phi_h) = lambda phi_e0, i.e. mean(phi_d) = phi_e0 (lambda - 1), to solver tolerance."""
    m = disk_mask((32, 32), (16, 16), 14)
    s = steady_state_masked(np.full((32, 32), 1.5), m, pixel_um=H, tol=1e-6)
    assert s.converged and s.residual_max < 1e-6
    assert abs(float(s.phi_d[m].mean()) - 0.2 * 0.5) < 1e-8
    # residual recomputed independently of the solver's bookkeeping
    assert np.max(np.abs(masked_residual(s.phi_d, np.full((32, 32), 1.5), m, H)[m])) < 1e-6


def test_varying_rate_phase_separates_with_no_flux_at_the_envelope():
    """A spatially varying rate reaches a steady state whose chemical-potential flux through
    every envelope face is zero by construction, and which differs from the box solution."""
    from chromarate.fit.simulate import steady_state

    n = 48
    m = _ellipse(n)
    yy, xx = np.mgrid[:n, :n] * H
    lam = 1.0 + 1.4 * np.exp(-((yy - 0.4) ** 2 + (xx - 0.5) ** 2) / 0.1)
    s = steady_state_masked(lam, m, pixel_um=H, tol=1e-4, seed=1)
    assert s.converged
    # the rate shapes the state: more heterochromatin where lambda is high
    hi, lo = m & (lam > 2.0), m & (lam < 1.2)
    assert s.phi_d[hi].mean() > s.phi_d[lo].mean() + 0.05
    # mass balance over the nucleus: sum of 2 (lambda phi_e - phi_h) = sum of the residual
    react = 2.0 * (lam * 0.2 - (s.phi_d + 0.2))
    assert abs(react[m].sum() - s.residual[m].sum()) < 1e-8 * m.sum()
    box = steady_state(lam, pixel_um=H, tol=1e-4, seed=1)
    assert np.max(np.abs(box.phi_d[m] - s.phi_d[m])) > 1e-3


def test_solver_matches_its_residual_definition():
    """The residual is M lap_m(mu) + reaction with mu = f'(phi_h) - phi_e - l^2 lap_m(phi_d)."""
    m = _ellipse(24)
    rng = np.random.default_rng(2)
    phi = 0.1 * rng.standard_normal(m.shape)
    lam = np.full(m.shape, 1.3)
    p = ChromatinParams()
    mu = f_prime(phi + 0.2, p.phi_max) - 0.2 - p.interface_um**2 * masked_laplacian(phi, m, H)
    want = masked_laplacian(mu, m, H) + 2.0 * (lam * 0.2 - phi - 0.2)
    np.testing.assert_allclose(masked_residual(phi, lam, m, H, p), want)


@pytest.mark.parametrize("rate, mask", [
    (np.full((8, 8), -1.0), np.ones((8, 8), bool)),
    (np.full((8, 8), np.nan), np.ones((8, 8), bool)),
    (np.ones((8, 8)), np.ones((9, 8), bool)),
    (np.ones((8, 8)), np.zeros((8, 8), bool)),
])
def test_bad_inputs_raise_stage_error(rate, mask):
    with pytest.raises(StageError):
        steady_state_masked(rate, mask, pixel_um=H)
