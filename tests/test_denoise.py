"""Tests of chromarate.denoise: conservation, noise reduction, the Gaussian's width."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._types import DensityMap
from chromarate.config import DenoiseConfig
from chromarate.denoise import denoise_density
from chromarate.errors import StageError


def _poisson_map(lam=10.0, shape=(256, 256), seed=0, p=20.0) -> DensityMap:
    rng = np.random.default_rng(seed)
    data = rng.poisson(lam, size=shape).astype(np.float32)
    return DensityMap(data=data, pixel_size_nm=p, origin_nm=(-40.0, 120.0),
                      meta={"n_localizations": int(data.sum()), "method": "histogram"})


def test_gaussian_conserves_total_and_keeps_grid():
    dm = _poisson_map()
    out = denoise_density(dm, DenoiseConfig(method="gaussian", sigma_nm=60.0))
    assert out.data.dtype == np.float32
    assert out.shape == dm.shape
    assert out.pixel_size_nm == dm.pixel_size_nm and out.origin_nm == dm.origin_nm
    total_in = dm.data.astype(np.float64).sum()
    assert out.data.astype(np.float64).sum() == pytest.approx(total_in, rel=1e-5)


def test_gaussian_conserves_total_of_mass_at_the_border():
    # reflecting boundaries mirror back the mass that would leave the image
    data = np.zeros((40, 50), np.float32)
    data[0, 0] = 100.0
    data[39, 25] = 50.0
    out = denoise_density(DensityMap(data, 10.0), DenoiseConfig(sigma_nm=30.0))
    assert out.data.astype(np.float64).sum() == pytest.approx(150.0, rel=1e-5)


def test_gaussian_reduces_poisson_variance_as_predicted():
    lam, sigma_nm, p = 10.0, 40.0, 20.0
    dm = _poisson_map(lam=lam, p=p)
    out = denoise_density(dm, DenoiseConfig(sigma_nm=sigma_nm))
    s = sigma_nm / p
    var_in = dm.data.var()
    inner = out.data[20:-20, 20:-20]
    # white noise through a 2-D Gaussian of sigma s pixels: variance / (4 pi s^2)
    predicted = lam / (4.0 * np.pi * s**2)
    assert var_in == pytest.approx(lam, rel=0.05)
    assert inner.var() == pytest.approx(predicted, rel=0.15)
    assert inner.var() < 0.05 * var_in
    assert inner.mean() == pytest.approx(lam, rel=0.01)


def test_point_spreads_to_gaussian_of_requested_width():
    p, sigma_nm = 15.0, 45.0
    data = np.zeros((61, 61), np.float32)
    data[30, 30] = 1.0
    out = denoise_density(DensityMap(data, p), DenoiseConfig(sigma_nm=sigma_nm)).data
    yy, xx = np.mgrid[:61, :61]
    w = out.astype(np.float64)
    assert (w * (yy - 30)).sum() == pytest.approx(0.0, abs=1e-6)
    var_y = (w * (yy - 30) ** 2).sum() / w.sum()
    var_x = (w * (xx - 30) ** 2).sum() / w.sum()
    s = sigma_nm / p
    # the sampled, truncated Gaussian has a second moment within a percent of s^2
    assert var_y == pytest.approx(s**2, rel=0.01)
    assert var_x == pytest.approx(s**2, rel=0.01)


def test_meta_records_method_and_sigma_and_keeps_input_meta():
    dm = _poisson_map(p=20.0)
    out = denoise_density(dm, DenoiseConfig(sigma_nm=30.0))
    assert out.meta["denoise"] == {"method": "gaussian", "sigma_nm": 30.0, "sigma_px": 1.5}
    assert out.meta["n_localizations"] == dm.meta["n_localizations"]
    assert "denoise" not in dm.meta  # input untouched


def test_none_returns_an_equal_copy():
    dm = _poisson_map()
    out = denoise_density(dm, DenoiseConfig(method="none"))
    np.testing.assert_array_equal(out.data, dm.data)
    assert out.data is not dm.data
    assert not np.shares_memory(out.data, dm.data)
    assert out.meta["denoise"]["method"] == "none"
    out.data[0, 0] += 1
    assert out.data[0, 0] != dm.data[0, 0]


def test_zero_sigma_is_identity():
    dm = _poisson_map()
    out = denoise_density(dm, DenoiseConfig(sigma_nm=0.0))
    np.testing.assert_array_equal(out.data, dm.data)
    assert not np.shares_memory(out.data, dm.data)


def test_float64_input_comes_back_float32():
    data = np.random.default_rng(1).random((30, 30))
    out = denoise_density(DensityMap(data, 20.0), DenoiseConfig(sigma_nm=20.0))
    assert out.data.dtype == np.float32


def test_bad_input_raises():
    with pytest.raises(StageError, match="non-finite"):
        denoise_density(DensityMap(np.array([[1.0, np.nan]], np.float32), 20.0))
    with pytest.raises(StageError, match="2-D"):
        denoise_density(DensityMap(np.zeros(5, np.float32), 20.0))
    with pytest.raises(TypeError):
        denoise_density(np.zeros((4, 4)))
