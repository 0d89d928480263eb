"""Tests of chromarate.phase: exact inversion of the observation model (docs/design.md s. 6)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from chromarate._types import DensityMap, PhaseFields
from chromarate.config import PhaseConfig
from chromarate.errors import StageError
from chromarate.config import PhysicsConfig
from chromarate.phase import phase_fields

P = 20.0
N = 160


def _disk(r_px, n=N, cy=80.0, cx=78.0):
    yy, xx = np.mgrid[:n, :n] + 0.5
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r_px**2


def _truth_phi_h(mask, phi_max=0.7, seed=0):
    """phi_h in [0, phi_max] on the mask: Gaussian domains, zero on most of the nucleus."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:N, :N].astype(float)
    field = np.zeros((N, N))
    for cy, cx in rng.uniform(35, 125, size=(9, 2)):
        field += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 5.0**2))
    phi_h = phi_max * np.clip(field, 0.0, 1.0)
    phi_h[phi_h < 0.02] = 0.0   # exact euchromatin background between the domains
    phi_h[phi_h > 0.66] = phi_max  # saturated domain cores at exactly phi_max
    phi_h[~mask] = 0.0
    return phi_h


def _forward(phi_h, mask, c, phi_e0, outside=0.0):
    """Observation model forward: density proportional to chromatin 1 - phi_w."""
    rho = np.where(mask, c * (phi_h + phi_e0), outside)
    return DensityMap(data=rho, pixel_size_nm=P, origin_nm=(1000.0, -240.0),
                      meta={"method": "histogram"})


@pytest.mark.parametrize("phi_e0,c", [(0.2, 37.3), (0.15, 0.0123), (0.3, 5e4)])
def test_inverts_forward_model_exactly(phi_e0, c):
    cfg = PhaseConfig(phi_e0=phi_e0)
    mask = _disk(60)
    phi_max = PhysicsConfig().phi_max  # the default clip of phase_fields
    phi_h_true = _truth_phi_h(mask, phi_max)
    eroded = _disk(60 - cfg.erode_nm / P - 1)
    # the baseline percentile of the eroded mask must fall on pure euchromatin
    assert np.mean(phi_h_true[eroded] == 0) * 100 > cfg.baseline_percentile + 10
    assert np.any(phi_h_true[mask] == phi_max)

    fields = phase_fields(_forward(phi_h_true, mask, c, phi_e0, outside=0.3 * c), mask, cfg)
    assert isinstance(fields, PhaseFields)
    assert fields.phi_w.dtype == np.float64 and fields.phi_d.dtype == np.float64
    assert fields.meta["rho_eu"] == pytest.approx(c * phi_e0, rel=1e-14)

    np.testing.assert_allclose(fields.phi_h, phi_h_true, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fields.phi_d, phi_h_true - phi_e0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fields.phi_w, 1.0 - phi_h_true - phi_e0, rtol=0, atol=1e-12)
    # phi_e is the constant phi_e0 inside the nucleus and the fractions sum to one
    np.testing.assert_allclose(fields.phi_e[mask], phi_e0, rtol=0, atol=1e-12)
    total = fields.phi_w + fields.phi_h + fields.phi_e
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)
    # grid and mask carried over
    np.testing.assert_array_equal(fields.mask, mask)
    assert fields.mask.dtype == bool
    assert fields.pixel_size_nm == P and fields.origin_nm == (1000.0, -240.0)


def test_outside_mask_is_pure_euchromatin_background():
    cfg = PhaseConfig()
    mask = _disk(50)
    rho = _forward(_truth_phi_h(mask), mask, 10.0, cfg.phi_e0, outside=123.0)
    fields = phase_fields(rho, mask, cfg)
    out = ~mask
    np.testing.assert_allclose(fields.phi_h[out], 0.0, atol=1e-15)
    np.testing.assert_allclose(fields.phi_d[out], -cfg.phi_e0, atol=1e-15)
    np.testing.assert_allclose(fields.phi_w[out], 1.0 - cfg.phi_e0, atol=1e-15)


def test_clipping_and_its_fractions():
    cfg = PhaseConfig(phi_e0=0.2, baseline_percentile=20.0, erode_nm=0.0)
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True                           # 50 pixels
    rho = np.zeros((10, 10))
    rho[mask] = 10.0                             # baseline (>= 20 % of the mask)
    rho[0, :5] = 5.0                             # below baseline: clipped at 0 (5 pixels)
    rho[1, :4] = 100.0                           # phi_h = 1.8 -> phi_max (4 pixels)
    rho[2, 0] = 40.0                             # phi_h = 0.6, not clipped
    fields = phase_fields(DensityMap(rho, P), mask, cfg, phi_max=0.7)
    assert fields.meta["rho_eu"] == 10.0
    assert fields.meta["fraction_clipped_low"] == pytest.approx(5 / 50)
    assert fields.meta["fraction_clipped_high"] == pytest.approx(4 / 50)
    # phi_h as stored: phi_d = phi_h - phi_e0 exactly
    np.testing.assert_array_equal(fields.phi_d[0, :5], -0.2)
    np.testing.assert_array_equal(fields.phi_d[1, :4], 0.7 - 0.2)
    np.testing.assert_allclose(fields.phi_h[0, :5], 0.0, atol=1e-15)
    np.testing.assert_allclose(fields.phi_h[1, :4], 0.7, atol=1e-15)
    assert fields.phi_h[2, 0] == pytest.approx(0.6, abs=1e-15)
    assert fields.phi_h.min() >= -1e-15 and fields.phi_h.max() <= 0.7 + 1e-15


def test_meta_records_calibration():
    cfg = PhaseConfig(phi_e0=0.25, baseline_percentile=3.0, erode_nm=60.0)
    mask = _disk(40)
    fields = phase_fields(_forward(_truth_phi_h(mask, 0.6), mask, 2.0, 0.25), mask, cfg,
                          phi_max=0.6)
    m = fields.meta
    assert m["phi_e0"] == 0.25 and m["phi_max"] == 0.6
    assert m["baseline_percentile"] == 3.0 and m["erode_nm"] == 60.0
    assert m["rho_eu"] == pytest.approx(0.5)
    assert m["baseline_eroded"] is True
    assert 0 < m["n_baseline_pixels"] < mask.sum()
    for key in ("fraction_clipped_low", "fraction_clipped_high"):
        assert 0.0 <= m[key] <= 1.0


def test_baseline_ignores_the_blurred_envelope():
    # a dim rim (blurred envelope) must not set the baseline when erosion excludes it
    cfg = PhaseConfig(erode_nm=100.0, baseline_percentile=5.0)
    mask = _disk(50)
    rho = np.where(mask, 20.0, 0.0)
    rim = mask & ~_disk(47)                      # 3-pixel rim, 60 nm < erode_nm
    rho[rim] = 2.0
    assert rim.sum() / mask.sum() > 0.1
    fields = phase_fields(DensityMap(rho, P), mask, cfg)
    assert fields.meta["rho_eu"] == 20.0
    no_erosion = phase_fields(DensityMap(rho, P), mask, PhaseConfig(erode_nm=0.0))
    assert no_erosion.meta["rho_eu"] == 2.0


def test_erosion_distance_in_nm():
    cfg = PhaseConfig(erode_nm=200.0, baseline_percentile=0.0)
    mask = _disk(30)
    rho = np.where(mask, 10.0, 0.0)
    # an inner ring between 190 and 230 nm from the edge: partly inside the eroded region
    yy, xx = np.mgrid[:N, :N] + 0.5
    r_nm = np.hypot(yy - 80.0, xx - 78.0) * P
    depth = 30 * P - r_nm
    rho[mask & (depth < 190.0)] = 7.0            # excluded by erosion by 200 nm
    fields = phase_fields(DensityMap(rho, P), mask, cfg)
    assert fields.meta["rho_eu"] == 10.0
    rho[mask & (depth > 215.0) & (depth < 260.0)] = 3.0  # included
    assert phase_fields(DensityMap(rho, P), mask, cfg).meta["rho_eu"] == 3.0


def test_falls_back_to_whole_mask_when_erosion_empties_it():
    mask = np.zeros((20, 20), bool)
    mask[8:12, 8:12] = True                      # 80 nm wide
    rho = np.where(mask, 4.0, 0.0)
    rho[9, 9] = 12.0
    with pytest.warns(RuntimeWarning, match="whole mask"):
        fields = phase_fields(DensityMap(rho, P), mask, PhaseConfig(erode_nm=100.0))
    assert fields.meta["baseline_eroded"] is False
    assert fields.meta["n_baseline_pixels"] == 16
    assert fields.meta["rho_eu"] == 4.0
    assert fields.phi_h[9, 9] == pytest.approx(0.2 * (12.0 / 4.0 - 1.0))


def test_no_warning_when_erosion_leaves_pixels():
    mask = _disk(40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        phase_fields(DensityMap(np.where(mask, 3.0, 0.0), P), mask)


def test_zero_baseline_raises_sparse_message():
    mask = _disk(40)
    rng = np.random.default_rng(0)
    rho = np.where(mask & (rng.random((N, N)) < 0.5), 1.0, 0.0)  # half the pixels empty
    with pytest.raises(StageError, match="too sparse.*larger pixels.*denoise"):
        phase_fields(DensityMap(rho, P), mask)


def test_empty_mask_raises():
    with pytest.raises(StageError, match="empty"):
        phase_fields(DensityMap(np.ones((10, 10)), P), np.zeros((10, 10), bool))


def test_shape_mismatch_raises():
    with pytest.raises(StageError, match="shape"):
        phase_fields(DensityMap(np.ones((10, 10)), P), np.ones((10, 11), bool))


def test_integer_mask_accepted_and_labels_rejected():
    mask = _disk(30).astype(np.uint8)
    rho = DensityMap(np.where(mask, 5.0, 0.0), P)
    fields = phase_fields(rho, mask)
    assert fields.mask.dtype == bool
    with pytest.raises(StageError, match="boolean"):
        phase_fields(rho, mask * 2)


def test_non_finite_density_in_mask_raises():
    mask = _disk(30)
    rho = np.where(mask, 5.0, np.nan)
    phase_fields(DensityMap(rho, P), mask)     # NaN outside the mask is harmless
    rho[80, 78] = np.inf
    with pytest.raises(StageError, match="non-finite"):
        phase_fields(DensityMap(rho, P), mask)
