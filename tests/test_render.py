"""Tests of chromarate.render: conservation, pixel placement and the grid convention."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromarate._types import DensityMap, Localizations
from chromarate.config import RenderConfig
from chromarate.errors import ChromarateError, StageError
from chromarate.render import render_density


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
