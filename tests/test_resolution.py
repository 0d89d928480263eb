"""Tests of chromarate.resolution: FRC resolution follows the localization precision,
sits in the physically plausible range, does not depend on the render pixel, and is not
faked by repeated localizations of one blinking emitter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromarate._types import Localizations
from chromarate.errors import StageError
from chromarate.resolution import (
    FRC_THRESHOLD, FRCResult, fourier_ring_correlation, suggest_smoothing_nm,
)

from ._helpers import random_structure

FIELD = 4000.0


def _structure(rng, n):
    """Dense random structure: clusters (sd 15 nm) and straight line segments."""
    return random_structure(rng, n, FIELD, n_clusters=800, n_lines=80)


def _blinking(precision, seed=0, n_emitters=40_000, max_repeats=8, structured=True):
    """Emitters (on the structure, or uniform at random) each localized 1..max_repeats
    times in consecutive frames with Gaussian error ``precision``."""
    rng = np.random.default_rng(seed)
    if structured:
        ex, ey = _structure(rng, n_emitters)
    else:
        ex, ey = rng.uniform(0, FIELD, n_emitters), rng.uniform(0, FIELD, n_emitters)
    reps = rng.integers(1, max_repeats + 1, n_emitters)
    start = rng.integers(0, 20_000, n_emitters)
    k = np.repeat(np.arange(n_emitters), reps)
    step = np.arange(k.size) - np.repeat(np.cumsum(reps) - reps, reps)
    t = pd.DataFrame({"x_nm": ex[k] + rng.normal(0, precision, k.size),
                      "y_nm": ey[k] + rng.normal(0, precision, k.size),
                      "frame": start[k] + step})
    return Localizations(t)


@pytest.fixture(scope="module")
def frc_by_precision():
    return {s: fourier_ring_correlation(_blinking(s)) for s in (5.0, 10.0, 20.0)}


def test_resolution_follows_precision_and_is_plausible(frc_by_precision):
    res = {s: r.resolution_nm for s, r in frc_by_precision.items()}
    # Measured (seed 0, ~180k localizations on a dense 4 x 4 um structure, 5 nm pixels):
    # 5 nm -> 21.8 nm, 10 nm -> 35.5 nm, 20 nm -> 63.1 nm (roughly 2.8 x precision + 8 nm).
    assert res[5.0] < res[10.0] < res[20.0]
    assert 20.0 < res[10.0] < 60.0
    assert 2.0 * 5.0 < res[5.0] < 40.0 and 40.0 < res[20.0] < 110.0


def test_curve_shape_and_crossing(frc_by_precision):
    r = frc_by_precision[10.0]
    assert isinstance(r, FRCResult)
    assert r.split == "frame_blocks" and r.block_frames >= 1
    n = r.frequencies.size
    assert r.frc.shape == r.frc_smoothed.shape == (n,)
    assert r.frequencies[0] == 0.0
    assert r.frequencies[-1] == pytest.approx(1.0 / (2 * r.pixel_size_nm))
    assert np.all(np.diff(r.frequencies) > 0)
    # low frequencies (the structure) correlate almost perfectly, Nyquist does not
    assert r.frc[1:5].min() > 0.9
    assert abs(np.nanmean(r.frc[-n // 4:])) < 0.05
    # the smoothed curve passes the threshold at 1/resolution
    val = np.interp(1.0 / r.resolution_nm, r.frequencies, r.frc_smoothed)
    assert val == pytest.approx(FRC_THRESHOLD, abs=0.01)
    assert r.threshold == pytest.approx(1 / 7)
    assert sum(r.n_localizations) == len(_blinking(10.0))


def test_resolution_does_not_depend_on_pixel_or_binning(frc_by_precision):
    ref = frc_by_precision[10.0].resolution_nm
    locs = _blinking(10.0)
    for p in (3.0, 8.0):
        assert fourier_ring_correlation(locs, pixel_size_nm=p).resolution_nm == \
            pytest.approx(ref, rel=0.06)
    binned = fourier_ring_correlation(locs, n_bins=80)
    assert binned.frequencies.size == 80
    assert binned.resolution_nm == pytest.approx(ref, rel=0.06)


def test_split_is_seeded_and_stable():
    locs = _blinking(10.0, n_emitters=15_000)
    a = fourier_ring_correlation(locs, seed=1)
    b = fourier_ring_correlation(locs, seed=1)
    c = fourier_ring_correlation(locs, seed=2)
    assert a.resolution_nm == b.resolution_nm
    np.testing.assert_array_equal(a.frc, b.frc)
    assert c.resolution_nm == pytest.approx(a.resolution_nm, rel=0.1)


def test_frame_blocks_stop_repeated_blinks_from_faking_resolution():
    # Sparse emitters at random positions (no shared structure), each localized 10-30
    # times in consecutive frames. A per-localization split puts every emitter in both
    # halves, so they correlate up to ~1/precision: a fake ~30 nm "resolution". The
    # frame-block split keeps each emitter in one half: the halves then share nothing
    # finer than the field, as they should.
    rng = np.random.default_rng(3)
    ne = 3000
    ex, ey = rng.uniform(0, FIELD, ne), rng.uniform(0, FIELD, ne)
    reps = rng.integers(10, 31, ne)
    start = rng.integers(0, 20_000, ne)
    k = np.repeat(np.arange(ne), reps)
    step = np.arange(k.size) - np.repeat(np.cumsum(reps) - reps, reps)
    t = pd.DataFrame({"x_nm": ex[k] + rng.normal(0, 10, k.size),
                      "y_nm": ey[k] + rng.normal(0, 10, k.size), "frame": start[k] + step})
    blocks = fourier_ring_correlation(Localizations(t))
    per_loc = fourier_ring_correlation(Localizations(t.drop(columns="frame")))
    assert per_loc.split == "localizations" and per_loc.block_frames is None
    # measured (seed 3): per-localization split 31 nm, frame blocks 594 nm
    assert per_loc.resolution_nm < 60.0
    assert not blocks.resolution_nm < 200.0   # NaN (never correlated) or coarse


def test_unstructured_noise_has_no_fine_resolution():
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"x_nm": rng.uniform(0, FIELD, 100_000),
                      "y_nm": rng.uniform(0, FIELD, 100_000)})
    r = fourier_ring_correlation(Localizations(t))
    # only the common window/box envelope correlates: resolution ~ field / 10
    assert r.resolution_nm > 250.0


def test_suggest_smoothing():
    assert suggest_smoothing_nm(2.0 * np.sqrt(2.0 * np.log(2.0)) * 20.0) == pytest.approx(20.0)
    for bad in (float("nan"), 0.0, -3.0, float("inf")):
        with pytest.raises(ValueError):
            suggest_smoothing_nm(bad)


def test_errors():
    with pytest.raises(StageError, match="x_nm"):
        fourier_ring_correlation(Localizations(pd.DataFrame({"y_nm": [1.0, 2.0]})))
    with pytest.raises(StageError, match="at least 2"):
        fourier_ring_correlation(Localizations(pd.DataFrame({"x_nm": [1.0], "y_nm": [1.0]})))
    t = pd.DataFrame({"x_nm": np.arange(100.0), "y_nm": np.arange(100.0),
                      "frame": np.arange(100)})
    with pytest.raises(StageError, match="block"):
        fourier_ring_correlation(Localizations(t), block_frames=1000)
    t.loc[0, "frame"] = np.nan
    with pytest.raises(StageError, match="frame"):
        fourier_ring_correlation(Localizations(t))
    with pytest.raises(ValueError):
        fourier_ring_correlation(Localizations(t), pixel_size_nm=0.0)
    with pytest.raises(ValueError):
        fourier_ring_correlation(Localizations(t), n_bins=1)
    with pytest.raises(StageError, match="pixel_size_nm"):
        big = pd.DataFrame({"x_nm": [0.0, 1e7], "y_nm": [0.0, 1e7]})
        fourier_ring_correlation(Localizations(big), pixel_size_nm=1.0)
    with pytest.raises(TypeError):
        fourier_ring_correlation(t)
