"""Tests of chromarate.render: conservation, pixel placement and the grid convention."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromarate._types import DensityMap, Localizations
from chromarate.config import RenderConfig
from chromarate.errors import ChromarateError, StageError
from chromarate.render import MAX_PIXELS, render_density


def _locs(x, y, **extra) -> Localizations:
    cols = {"x_nm": np.asarray(x, float), "y_nm": np.asarray(y, float), **extra}
    return Localizations(table=pd.DataFrame(cols), meta={})


def _random_locs(n=20_000, seed=0, lo=-3_000.0, hi=7_000.0):
    rng = np.random.default_rng(seed)
    return _locs(rng.uniform(lo, hi, n), rng.uniform(lo + 500, hi - 1000, n))


def test_counts_are_conserved_on_auto_grid():
    locs = _random_locs()
    dm = render_density(locs, RenderConfig(pixel_size_nm=17.0, padding_nm=150.0))
    assert isinstance(dm, DensityMap)
    assert dm.data.dtype == np.float32
    assert dm.data.sum() == len(locs)
    assert dm.meta["n_localizations"] == dm.meta["n_rendered"] == len(locs)
    assert dm.meta["method"] == "histogram"
    assert np.all(dm.data == np.round(dm.data)) and dm.data.min() >= 0


@pytest.mark.parametrize("p", [20.0, 17.0, 3.3, 160.0])
def test_grid_origin_is_multiple_of_pixel_size_and_covers_padding(p):
    locs = _random_locs(n=500, seed=1)
    pad = 200.0
    dm = render_density(locs, RenderConfig(pixel_size_nm=p, padding_nm=pad))
    oy, ox = dm.origin_nm
    for o in (oy, ox):
        k = o / p
        assert abs(k - round(k)) < 1e-9
    x, y = locs.table["x_nm"].to_numpy(), locs.table["y_nm"].to_numpy()
    ny, nx = dm.shape
    assert oy <= y.min() - pad < oy + p
    assert ox <= x.min() - pad < ox + p
    assert oy + ny * p > y.max() + pad >= oy + (ny - 1) * p
    assert ox + nx * p > x.max() + pad >= ox + (nx - 1) * p


def test_known_coordinate_lands_in_the_right_pixel():
    # origin (0, 0) thanks to a localization at the grid line; p = 20 nm
    x = [0.0, 47.0, 100.0, 119.999]
    y = [0.0, 25.0, 79.9, 20.0]
    dm = render_density(_locs(x, y), RenderConfig(pixel_size_nm=20.0, padding_nm=0.0))
    assert dm.origin_nm == (0.0, 0.0)
    assert dm.shape == (4, 6)
    expected = np.zeros((4, 6), np.float32)
    expected[0, 0] = 1      # (y=0, x=0): pixel covers [0, 20) x [0, 20)
    expected[1, 2] = 1      # (y=25, x=47)
    expected[3, 5] = 1      # (y=79.9, x=100)
    expected[1, 5] = 1      # (y=20, x=119.999): y on a grid line goes to the upper pixel
    np.testing.assert_array_equal(dm.data, expected)


def test_negative_coordinates_and_pixel_centre_mapping():
    rng = np.random.default_rng(3)
    p = 25.0
    iy, ix = rng.integers(-40, 40, 300), rng.integers(-40, 40, 300)
    # one localization at the centre of each chosen pixel on the global p-grid
    y, x = (iy + 0.5) * p, (ix + 0.5) * p
    dm = render_density(_locs(x, y), RenderConfig(pixel_size_nm=p, padding_nm=60.0))
    ky, kx = round(dm.origin_nm[0] / p), round(dm.origin_nm[1] / p)
    expected = np.zeros(dm.shape, np.float32)
    np.add.at(expected, (iy - ky, ix - kx), 1)
    np.testing.assert_array_equal(dm.data, expected)
    # the pixel centre recomputed from the grid returns the input coordinates
    rows, cols = np.nonzero(dm.data)
    cy = dm.origin_nm[0] + (rows + 0.5) * p
    assert set(np.round(cy, 6)) == set(np.round(y, 6))


def test_synthetic_grid_starting_at_zero_lines_up():
    # A truth grid of 64 x 64 pixels of 20 nm starting at 0: render one localization per
    # pixel centre and get back exactly the ones image on the same grid.
    p, n = 20.0, 64
    yy, xx = np.mgrid[:n, :n]
    locs = _locs(((xx + 0.5) * p).ravel(), ((yy + 0.5) * p).ravel())
    dm = render_density(locs, RenderConfig(pixel_size_nm=p, padding_nm=0.0),
                        bounds_nm=((0.0, 0.0), (n * p, n * p)))
    assert dm.origin_nm == (0.0, 0.0) and dm.shape == (n, n)
    np.testing.assert_array_equal(dm.data, np.ones((n, n), np.float32))
    auto = render_density(locs, RenderConfig(pixel_size_nm=p, padding_nm=4 * p))
    assert auto.origin_nm == (-4 * p, -4 * p)
    np.testing.assert_array_equal(auto.data[4:-4, 4:-4], dm.data)


def test_bounds_drop_outside_and_conserve_inside():
    locs = _random_locs(n=10_000, seed=4)
    bounds = ((0.0, 1000.0), (2000.0, 2500.0))  # (y0, x0), (y1, x1)
    dm = render_density(locs, RenderConfig(pixel_size_nm=20.0), bounds_nm=bounds)
    x, y = locs.table["x_nm"].to_numpy(), locs.table["y_nm"].to_numpy()
    inside = (y >= 0) & (y < 2000) & (x >= 1000) & (x < 2500)
    assert dm.shape == (100, 75)
    assert dm.origin_nm == (0.0, 1000.0)
    assert dm.data.sum() == inside.sum()
    assert dm.meta["n_rendered"] == inside.sum()
    assert dm.meta["n_localizations"] == len(locs)
    # same counts as numpy's reference histogram on the same edges
    ref, _, _ = np.histogram2d(y[inside], x[inside],
                               bins=[np.arange(0, 2001, 20.0), np.arange(1000, 2501, 20.0)])
    np.testing.assert_array_equal(dm.data, ref.astype(np.float32))


def test_bounds_not_multiple_of_pixel_are_rounded_up():
    dm = render_density(_locs([5.0, 49.0], [5.0, 5.0]), RenderConfig(pixel_size_nm=20.0),
                        bounds_nm=((0, 0), (30, 50)))
    assert dm.shape == (2, 3)
    assert dm.data.sum() == 2


def test_extra_columns_are_ignored_and_dtype_is_float32():
    locs = _locs([1.0, 2.0], [3.0, 4.0], frame=np.array([0, 1]), photons=np.array([100., 200.]))
    dm = render_density(locs)
    assert dm.data.dtype == np.float32 and dm.data.sum() == 2
    assert dm.pixel_size_nm == RenderConfig().pixel_size_nm


def test_zero_localizations_raise():
    with pytest.raises(StageError, match="zero localizations"):
        render_density(_locs([], []))


def test_non_finite_coordinates_raise():
    with pytest.raises(StageError, match="non-finite"):
        render_density(_locs([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))
    with pytest.raises(StageError, match="non-finite"):
        render_density(_locs([1.0, 2.0], [np.inf, 2.0]))


def test_missing_columns_raise():
    locs = Localizations(table=pd.DataFrame({"x": [1.0]}), meta={})
    with pytest.raises(StageError, match="x_nm"):
        render_density(locs)


def test_huge_grid_raises_with_suggested_pixel_size():
    locs = _locs([0.0, 1e7], [0.0, 1e7])  # 10 mm across: likely a unit mistake
    with pytest.raises(StageError, match=r"pixel_size_nm >= \d+") as info:
        render_density(locs, RenderConfig(pixel_size_nm=10.0))
    assert isinstance(info.value, ChromarateError) and isinstance(info.value, ValueError)
    # the suggested pixel size indeed fits under the limit, and is not far above it
    suggested = float(str(info.value).split("pixel_size_nm >= ")[1].split()[0])
    n_pixels = lambda p: (np.floor(1e7 / p) + 1) ** 2  # noqa: E731
    assert n_pixels(suggested) <= 2e8 < n_pixels(0.9 * suggested)
    # the message says how far the data spread and names the pipeline's settings
    assert "span y 0 ... 1e+07 nm" in str(info.value)
    assert "render.pixel_size_nm" in str(info.value) and "filter.region_nm" in str(info.value)


def test_the_suggested_pixel_size_is_the_configs_when_supersampling():
    """With supersample 2 the grid is rendered at half the config's pixel; the advice is
    for the config's pixel_size_nm, which then fits."""
    locs = _locs([0.0, 1e6], [0.0, 1e6])
    with pytest.raises(StageError, match=r"pixel_size_nm >= \d+") as info:
        render_density(locs, RenderConfig(pixel_size_nm=20.0, supersample=2))
    text = str(info.value)
    assert "pixel_size_nm=20 (supersampled 2 x)" in text
    suggested = float(text.split("pixel_size_nm >= ")[1].split()[0])
    pad = RenderConfig().padding_nm

    def n_pixels(q):  # the grid at config pixel q, padding and whole cells included
        return ((np.floor((1e6 + pad) / q) - np.floor(-pad / q) + 1) * 2) ** 2

    assert n_pixels(suggested) <= MAX_PIXELS < n_pixels(0.95 * suggested)


def test_a_grid_no_pixel_size_can_fit_suggests_a_region_not_a_pixel_size():
    """One row far away (x = 1e15 nm) needs a pixel beyond any config's: the message
    suggests keeping a region or removing the row instead."""
    locs = _locs([0.0, 10.0, 1e15], [0.0, 10.0, 0.0])
    with pytest.raises(StageError, match="filter.region_nm") as info:
        render_density(locs, RenderConfig(pixel_size_nm=20.0))
    assert "pixel_size_nm >=" not in str(info.value)
    assert "remove the outlying rows" in str(info.value)


def test_bad_bounds_raise():
    locs = _locs([1.0], [1.0])
    with pytest.raises(StageError):
        render_density(locs, bounds_nm=((0, 0), (0, 10)))
    with pytest.raises(StageError):
        render_density(locs, bounds_nm=((0, 0, 0), (10, 10, 10)))
    with pytest.raises(StageError):
        render_density(locs, bounds_nm=((0, 0), (np.nan, 10)))


def test_wrong_types_raise():
    with pytest.raises(TypeError):
        render_density(pd.DataFrame({"x_nm": [1.0], "y_nm": [1.0]}))
    with pytest.raises(TypeError):
        render_density(_locs([1.0], [1.0]), {"pixel_size_nm": 10})


def test_large_input_is_fast():
    import time

    locs = _random_locs(n=2_000_000, seed=5, lo=0, hi=20_000)
    render_density(_locs([1.0], [1.0]))  # warm up
    t0 = time.perf_counter()
    dm = render_density(locs, RenderConfig(pixel_size_nm=10.0))
    assert time.perf_counter() - t0 < 3.0
    assert dm.data.sum() == len(locs)


def test_far_away_localizations_outside_bounds_are_dropped_quietly():
    import warnings

    locs = _locs([10.0, 1e300, -1e300, 30.0], [10.0, 5.0, 5.0, 1e30])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm = render_density(locs, bounds_nm=((0, 0), (100, 100)))
    assert dm.data.sum() == 1 and dm.data[0, 0] == 1
    assert dm.meta["n_rendered"] == 1 and dm.meta["n_localizations"] == 4


# --------------------------------------------------------------------------------------
# Gaussian rendering and supersampling
# --------------------------------------------------------------------------------------

from scipy.special import ndtr  # noqa: E402

import chromarate.render as render_mod  # noqa: E402


def _exact_splat(x, y, sig, dm):
    """Brute force: each localization's Gaussian integrated over every pixel (float64)."""
    ny, nx = dm.shape
    p = dm.pixel_size_nm
    ey = dm.origin_nm[0] + np.arange(ny + 1) * p
    ex = dm.origin_nm[1] + np.arange(nx + 1) * p
    out = np.zeros((ny, nx))
    for xi, yi, si in zip(x, y, np.broadcast_to(sig, np.shape(x))):
        out += np.outer(np.diff(ndtr((ey - yi) / si)), np.diff(ndtr((ex - xi) / si)))
    return out


def _centred_locs(n=300, p=10.0, seed=0, lo=500.0, hi=1500.0, sig=None):
    """Localizations at pixel centres of the p-grid (so only the sigma classes err)."""
    rng = np.random.default_rng(seed)
    x = (np.floor(rng.uniform(lo, hi, n) / p) + 0.5) * p
    y = (np.floor(rng.uniform(lo, hi, n) / p) + 0.5) * p
    if sig is None:
        sig = rng.lognormal(np.log(15.0), 0.5, n)
    return x, y, sig


def test_gaussian_conserves_counts_and_records_meta():
    locs = _random_locs(n=20_000, seed=11)
    sig = np.random.default_rng(11).uniform(5, 40, len(locs))
    locs = Localizations(table=locs.table.assign(precision_nm=sig), meta={})
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=20.0))
    assert dm.data.dtype == np.float32 and dm.data.min() >= 0
    # 200 nm padding = 5 sigma of the widest Gaussian: nothing leaves the grid
    assert dm.data.astype(np.float64).sum() == pytest.approx(len(locs), rel=1e-5)
    m = dm.meta
    assert m["method"] == "gaussian" and m["sigma_source"] == "precision_nm"
    assert m["n_rendered"] == len(locs) and abs(m["edge_loss"]) < 1e-2
    assert m["sigma_nm"]["min"] == pytest.approx(sig.min())
    assert m["sigma_nm"]["max"] == pytest.approx(sig.max())
    assert m["sigma_l1_error_max"] <= RenderConfig().sigma_tolerance + 1e-12
    assert m["sigma_classes"] >= 2


@pytest.mark.parametrize("tol", [0.001, 0.01, 0.05])
def test_gaussian_matches_exact_splatting_within_the_stated_bound(tol):
    p = 10.0
    x, y, sig = _centred_locs(p=p)
    locs = _locs(x, y, precision_nm=sig)
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=p, padding_nm=400,
                                           sigma_tolerance=tol))
    exact = _exact_splat(x, y, sig, dm)
    l1_per_loc = np.abs(dm.data - exact).sum() / len(x)
    # the bound holds per localization, so also on average (and the average is well below)
    assert l1_per_loc <= tol
    assert l1_per_loc > 0  # the sigmas do differ from the lattice
    assert dm.meta["sigma_l1_error_max"] == pytest.approx(tol, rel=1e-6)


def test_gaussian_error_shrinks_with_tolerance():
    p = 10.0
    x, y, sig = _centred_locs(p=p, seed=2)
    locs = _locs(x, y, precision_nm=sig)
    errs, classes = [], []
    for tol in (0.05, 0.01, 0.001):
        dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=p,
                                               padding_nm=400, sigma_tolerance=tol))
        errs.append(np.abs(dm.data - _exact_splat(x, y, sig, dm)).sum())
        classes.append(dm.meta["sigma_classes"])
    assert errs[0] > errs[1] > errs[2]
    assert classes[0] < classes[1] < classes[2]


def test_fixed_sigma_is_exact_and_overrides_precision():
    p = 10.0
    x, y, sig = _centred_locs(n=100, p=p, seed=3)
    locs = _locs(x, y, precision_nm=sig)
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=p,
                                           fixed_sigma_nm=23.0))
    assert dm.meta["sigma_source"] == "fixed_sigma_nm"
    assert dm.meta["sigma_classes"] == 1 and dm.meta["sigma_l1_error_max"] == 0.0
    np.testing.assert_allclose(dm.data, _exact_splat(x, y, 23.0, dm), atol=2e-6)


def test_without_precision_column_falls_back_and_says_so():
    locs = _locs([500.0, 800.0], [600.0, 700.0])
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=10.0))
    assert "no precision_nm column" in dm.meta["sigma_source"]
    assert dm.meta["sigma_nm"] == {"min": render_mod.FALLBACK_SIGMA_NM,
                                   "max": render_mod.FALLBACK_SIGMA_NM}
    ref = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=10.0,
                                            fixed_sigma_nm=render_mod.FALLBACK_SIGMA_NM))
    np.testing.assert_array_equal(dm.data, ref.data)
    fixed = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=10.0,
                                              fixed_sigma_nm=35.0))
    assert fixed.meta["sigma_source"] == "fixed_sigma_nm"


def test_min_sigma_floor():
    x, y, _ = _centred_locs(n=50, seed=4)
    locs = _locs(x, y, precision_nm=np.full(50, 2.0))
    floored = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=10.0,
                                                min_sigma_nm=30.0))
    ref = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=10.0,
                                            fixed_sigma_nm=30.0))
    assert floored.meta["sigma_nm"]["min"] == 30.0
    np.testing.assert_allclose(floored.data, ref.data, atol=1e-6)


def test_point_like_sigmas_give_the_histogram():
    locs = _random_locs(n=5_000, seed=6)
    locs = Localizations(table=locs.table.assign(precision_nm=0.5), meta={})  # 0.025 px
    g = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=20.0))
    h = render_density(locs, RenderConfig(pixel_size_nm=20.0))
    np.testing.assert_array_equal(g.data, h.data)


def test_single_localization_has_the_gaussian_second_moment():
    p, s = 10.0, 25.0
    locs = _locs([1005.0], [2005.0], precision_nm=[s])  # pixel centre
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=p))
    w = dm.data.astype(np.float64)
    yy, xx = np.mgrid[: dm.shape[0], : dm.shape[1]]
    cy = dm.origin_nm[0] + (yy + 0.5) * p
    cx = dm.origin_nm[1] + (xx + 0.5) * p
    assert (w * cy).sum() == pytest.approx(2005.0, abs=1e-3)
    assert (w * cx).sum() == pytest.approx(1005.0, abs=1e-3)
    # pixel-integrated Gaussian: variance s^2 + p^2 / 12 per axis (truncation at 4 s)
    assert (w * (cx - 1005.0) ** 2).sum() == pytest.approx(s**2 + p**2 / 12, rel=2e-3)


@pytest.mark.parametrize("path", ["direct", "fft", "splat"])
def test_all_convolution_paths_give_the_same_numbers(monkeypatch, path):
    rng = np.random.default_rng(8)
    n = 3_000
    locs = _locs(rng.uniform(0, 3000, n), rng.uniform(0, 2000, n),
                 precision_nm=rng.uniform(3, 80, n))
    cfg = RenderConfig(method="gaussian", pixel_size_nm=10.0, padding_nm=0.0)
    bounds = ((0, 0), (2000, 3000))  # Gaussians cross the border: edges must agree too
    monkeypatch.setattr(render_mod, "_FORCE_PATH", "direct")
    ref = render_density(locs, cfg, bounds_nm=bounds)
    monkeypatch.setattr(render_mod, "_FORCE_PATH", path)
    got = render_density(locs, cfg, bounds_nm=bounds)
    np.testing.assert_allclose(got.data, ref.data, atol=2e-5)
    assert got.meta["edge_loss"] > 1.0  # mass did leave the grid
    assert got.data.sum() == pytest.approx(n - got.meta["edge_loss"], rel=1e-6)


def test_bad_precision_raises_unless_fixed_sigma():
    locs = _locs([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], precision_nm=[10.0, np.nan, 5.0])
    with pytest.raises(StageError, match="precision_nm.*row 1.*fixed_sigma_nm"):
        render_density(locs, RenderConfig(method="gaussian"))
    neg = _locs([1.0, 2.0], [1.0, 2.0], precision_nm=[10.0, -1.0])
    with pytest.raises(StageError, match="negative"):
        render_density(neg, RenderConfig(method="gaussian"))
    dm = render_density(locs, RenderConfig(method="gaussian", fixed_sigma_nm=10.0))
    assert dm.data.sum() == pytest.approx(3.0, rel=1e-5)
    # the histogram does not look at precision_nm
    assert render_density(locs).data.sum() == 3


@pytest.mark.parametrize("s", [2, 3])
def test_supersample_refines_the_grid_and_block_sums_to_the_histogram(s):
    locs = _random_locs(n=20_000, seed=9)
    plain = render_density(locs, RenderConfig(pixel_size_nm=20.0))
    fine = render_density(locs, RenderConfig(pixel_size_nm=20.0, supersample=s))
    assert fine.pixel_size_nm == pytest.approx(20.0 / s)
    assert fine.origin_nm == plain.origin_nm
    assert fine.shape == (plain.shape[0] * s, plain.shape[1] * s)
    assert fine.meta["supersample"] == s
    blocks = fine.data.reshape(plain.shape[0], s, plain.shape[1], s).sum(axis=(1, 3))
    np.testing.assert_array_equal(blocks, plain.data)
    # with bounds: the grid pixel is p / s, the bounds are covered in whole fine pixels
    b = render_density(locs, RenderConfig(pixel_size_nm=20.0, supersample=s),
                       bounds_nm=((0, 1000), (2000, 2500)))
    assert b.shape == (100 * s, 75 * s)
    ref = render_density(locs, RenderConfig(pixel_size_nm=20.0), bounds_nm=((0, 1000),
                                                                            (2000, 2500)))
    np.testing.assert_array_equal(
        b.data.reshape(100, s, 75, s).sum(axis=(1, 3)), ref.data)


def test_supersampled_gaussian_conserves_and_matches_exact():
    p, s = 20.0, 2
    x, y, sig = _centred_locs(n=80, p=p / s, seed=10)
    locs = _locs(x, y, precision_nm=sig)
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=p, supersample=s,
                                           padding_nm=400))
    assert dm.pixel_size_nm == p / s
    assert dm.data.sum() == pytest.approx(len(x), rel=1e-5)
    assert np.abs(dm.data - _exact_splat(x, y, sig, dm)).sum() / len(x) <= 0.01


def test_million_gaussian_localizations_conserve():
    rng = np.random.default_rng(12)
    n = 1_000_000
    locs = _locs(rng.uniform(0, 10_000, n), rng.uniform(0, 10_000, n),
                 precision_nm=rng.lognormal(np.log(12), 0.4, n))
    dm = render_density(locs, RenderConfig(method="gaussian", pixel_size_nm=20.0))
    assert dm.data.astype(np.float64).sum() == pytest.approx(n, rel=1e-5)
    h = render_density(locs, RenderConfig(pixel_size_nm=20.0))
    # same grid; a blurred version of the histogram
    assert dm.shape == h.shape and dm.origin_nm == h.origin_nm
    assert dm.data.var() < h.data.var()


def test_render_config_validation():
    from pydantic import ValidationError

    for bad in ({"method": "splat"}, {"supersample": 0}, {"fixed_sigma_nm": 0.0},
                {"min_sigma_nm": -1.0}, {"sigma_tolerance": 0.5}):
        with pytest.raises(ValidationError):
            RenderConfig(**bad)
    assert RenderConfig().method == "histogram" and RenderConfig().supersample == 1


def test_a_precision_beyond_a_micrometre_is_refused_by_gaussians_and_left_out_of_the_blur():
    """Failed fits report precisions of 1e5 nm and more: a Gaussian that wide once
    overflowed the kernel's size, and in the recorded blur it made the fit's loss
    non-finite at step 1."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 2000, 500), rng.uniform(0, 2000, 500)
    sig = np.full(500, 15.0)
    sig[:3] = 1e30
    locs = _locs(x, y, precision_nm=sig)
    with pytest.raises(StageError, match=r"3 of 500 .*above 1000 nm.*filter.max_precision_nm"):
        render_density(locs, RenderConfig(method="gaussian"))
    dm = render_density(locs, RenderConfig(method="histogram"))
    assert dm.meta["blur_nm"] == pytest.approx(np.sqrt(15.0**2 + RenderConfig().pixel_size_nm**2 / 12),
                                               rel=1e-6)
