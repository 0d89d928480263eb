"""Tests of chromarate.drift: RCC recovers a known smooth drift to a few nm, correction
shrinks the spread around the true structure, and bad input fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from chromarate._types import Localizations
from chromarate.config import DriftConfig
from chromarate.drift import DriftEstimate, _solve, apply_drift, correct_drift, estimate_drift
from chromarate.errors import StageError

from ._helpers import random_structure

N_FRAMES = 5000
PRECISION = 10.0


def _structure(rng, n):
    """True positions on a random structure: small clusters (sd 15 nm) and line segments."""
    return random_structure(rng, n, 8000.0, n_clusters=400, n_lines=60, shuffle=True)


def _true_drift(frame):
    """(dy, dx) in nm: a 40 nm sine in y and 100 nm linear in x over the acquisition."""
    f = np.asarray(frame, float)
    return 40.0 * np.sin(2 * np.pi * f / N_FRAMES), 100.0 * f / N_FRAMES


def _drifting(seed=0, n=100_000, drift=_true_drift):
    rng = np.random.default_rng(seed)
    x, y = _structure(rng, n)
    frame = rng.integers(0, N_FRAMES, n)
    dy, dx = drift(frame)
    t = pd.DataFrame({"x_nm": x + dx + rng.normal(0, PRECISION, n),
                      "y_nm": y + dy + rng.normal(0, PRECISION, n),
                      "frame": frame, "precision_nm": np.full(n, PRECISION)})
    return Localizations(t, meta={"source": "synthetic"}), x, y


@pytest.fixture(scope="module")
def drifting():
    return _drifting()


def _curve_errors(est: DriftEstimate):
    """Estimated minus true drift over every frame, after removing the constant offset
    (the reference position is a convention: RCC refers to the first segment)."""
    f = np.arange(N_FRAMES)
    dy, dx = est.at(f)
    ty, tx = _true_drift(f)
    ey, ex = dy - ty, dx - tx
    return ey - ey.mean(), ex - ex.mean()


def test_rcc_recovers_known_drift_within_a_few_nm(drifting):
    locs, _, _ = drifting
    est = estimate_drift(locs, DriftConfig(n_segments=10))
    assert est.drift_y_nm[0] == 0.0 and est.drift_x_nm[0] == 0.0
    assert est.frames.shape == est.drift_x_nm.shape == (10,)
    assert np.all(np.diff(est.frames) > 0)
    ey, ex = _curve_errors(est)
    rms_y, rms_x = np.sqrt(np.mean(ey**2)), np.sqrt(np.mean(ex**2))
    # Measured (100k localizations, 8 x 8 um, 10 segments, 20 nm pixels, seed 0): RMS
    # over all 5000 frames y 1.6 nm, x 0.17 nm; pair residual RMS 0.7 nm. The y error is
    # mostly the piecewise-linear interpolation of the sine between 10 segment centres;
    # at the centres themselves it is 0.6 nm (y) and 0.3 nm (x).
    assert rms_y < 2.5 and rms_x < 1.0
    # at segment centres the per-segment estimates are sub-nm
    ty, tx = _true_drift(est.frames)
    cy = est.drift_y_nm - (ty - ty[0])
    cx = est.drift_x_nm - (tx - tx[0])
    assert np.sqrt(np.mean(cy**2)) < 1.5 and np.sqrt(np.mean(cx**2)) < 1.5
    assert est.residual_rms_nm < 2.0
    assert est.n_pairs == 45 and est.n_pairs_rejected == 0


def test_upsampled_peak_agrees_with_gaussian_fit():
    locs, _, _ = _drifting(seed=2, n=30_000)
    a = estimate_drift(locs, DriftConfig(n_segments=5, subpixel="gaussian"))
    b = estimate_drift(locs, DriftConfig(n_segments=5, subpixel="upsample",
                                         upsample_factor=10))
    assert np.allclose(a.drift_x_nm, b.drift_x_nm, atol=1.5)
    assert np.allclose(a.drift_y_nm, b.drift_y_nm, atol=1.5)
    # 5 segments of 1000 frames cannot follow a full sine period: compare with the true
    # drift averaged over each segment (what a segment image shows).
    frame = locs.table["frame"].to_numpy()
    seg = np.searchsorted(b.segment_edges, frame, side="right") - 1
    ty, tx = _true_drift(frame)
    my = np.bincount(seg, ty) / np.bincount(seg)
    mx = np.bincount(seg, tx) / np.bincount(seg)
    assert np.abs(b.drift_y_nm - (my - my[0])).max() < 1.5
    assert np.abs(b.drift_x_nm - (mx - mx[0])).max() < 1.5


def test_correct_drift_shrinks_spread_around_truth(drifting):
    locs, x, y = drifting
    out = correct_drift(locs, DriftConfig(n_segments=10))

    def spread(table):  # RMS distance to the true position, constant offset removed
        ex = table["x_nm"].to_numpy() - x
        ey = table["y_nm"].to_numpy() - y
        return np.sqrt(np.var(ex)), np.sqrt(np.var(ey))

    before_x, before_y = spread(locs.table)
    after_x, after_y = spread(out.table)
    # drift adds sd 100/sqrt(12) = 29 nm in x and 40/sqrt(2) = 28 nm in y to the 10 nm
    # localization error; after correction only the localization error is left
    # (measured: 30.5 -> 9.99 nm in x, 30.0 -> 10.14 nm in y).
    assert before_x > 28 and before_y > 28
    assert after_x < 1.02 * PRECISION and after_y < 1.03 * PRECISION
    assert out.meta["source"] == "synthetic"
    d = out.meta["drift"]
    json.dumps(d)  # JSON-serialisable provenance
    assert len(d["frames"]) == len(d["drift_y_nm"]) == len(d["drift_x_nm"]) == 10
    assert d["drift_x_nm"][0] == 0.0 and d["drift_x_nm"][-1] == pytest.approx(90, abs=3)
    # other columns are untouched, the input is not modified
    assert (out.table["frame"] == locs.table["frame"]).all()
    assert not np.shares_memory(out.table["x_nm"].to_numpy(), locs.table["x_nm"].to_numpy())


def test_no_drift_gives_near_zero_estimate():
    locs, _, _ = _drifting(seed=3, n=40_000, drift=lambda f: (0 * f, 0 * f))
    est = estimate_drift(locs, DriftConfig(n_segments=6))
    assert np.abs(est.drift_x_nm).max() < 1.0 and np.abs(est.drift_y_nm).max() < 1.0


def test_pairs_beyond_max_drift_are_dropped_but_neighbours_carry_the_solution():
    # 100 nm in x over the run, max_drift 45 nm: far-apart segment pairs have no peak
    # inside the search window; nearby pairs still link every segment.
    locs, _, _ = _drifting(seed=4, n=60_000, drift=lambda f: (0 * f, 100.0 * f / N_FRAMES))
    est = estimate_drift(locs, DriftConfig(n_segments=10, max_drift_nm=45.0))
    assert est.n_pairs_rejected > 0 and est.n_pairs + est.n_pairs_rejected == 45
    f = np.arange(N_FRAMES)
    dy, dx = est.at(f)
    err = dx - 100.0 * f / N_FRAMES
    assert np.sqrt(np.mean((err - err.mean()) ** 2)) < 2.0


def test_jump_larger_than_max_drift_is_a_clear_error():
    jump = lambda f: (0 * f, np.where(np.asarray(f) < N_FRAMES // 2, 0.0, 300.0))  # noqa: E731
    locs, _, _ = _drifting(seed=5, n=20_000, drift=jump)
    with pytest.raises(StageError, match="max_drift_nm"):
        estimate_drift(locs, DriftConfig(n_segments=4, max_drift_nm=100.0))


def test_outlier_pair_is_rejected_and_solution_exact():
    rng = np.random.default_rng(0)
    n = 8
    d = np.vstack([[0.0, 0.0], rng.normal(0, 30, (n - 1, 2))])
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    r = d[pairs[:, 1]] - d[pairs[:, 0]] + rng.normal(0, 0.3, (len(pairs), 2))
    r[5] += [40.0, -25.0]  # one grossly wrong correlation
    sol, used, _ = _solve(pairs, r, n, DriftConfig(), 20.0)
    assert not used[5] and used.sum() == len(pairs) - 1
    assert np.abs(sol - d).max() < 0.5
    keep_all, used_all, _ = _solve(pairs, r, n, DriftConfig(outlier_sigma=None), 20.0)
    assert used_all.all() and np.abs(keep_all - d).max() > 3.0


def test_interpolation_extends_end_segments_linearly():
    est = DriftEstimate(frames=np.array([10.0, 20.0, 30.0]),
                        drift_y_nm=np.array([0.0, 1.0, 1.0]),
                        drift_x_nm=np.array([0.0, 2.0, 6.0]),
                        segment_edges=np.array([5.0, 15, 25, 35]),
                        n_localizations=np.array([1, 1, 1]), residual_rms_nm=0.0, n_pairs=3,
                        n_pairs_rejected=0, pixel_size_nm=20.0)
    dy, dx = est.at([0, 10, 15, 30, 35])
    assert dx.tolist() == [-2.0, 0.0, 1.0, 6.0, 8.0]
    assert dy.tolist() == [-1.0, 0.0, 0.5, 1.0, 1.0]
    locs = Localizations(pd.DataFrame({"x_nm": [100.0, 100.0], "y_nm": [0.0, 0.0],
                                       "frame": [10, 30]}))
    out = apply_drift(locs, est)
    assert out.table["x_nm"].tolist() == [100.0, 94.0]


def test_missing_frame_column():
    t = pd.DataFrame({"x_nm": np.arange(1000.0), "y_nm": np.arange(1000.0)})
    with pytest.raises(StageError, match="'frame'") as exc:
        correct_drift(Localizations(t))
    assert isinstance(exc.value, ValueError)


def test_too_few_frames_or_localizations():
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"x_nm": rng.uniform(0, 1000, 5000), "y_nm": rng.uniform(0, 1000, 5000),
                      "frame": rng.integers(0, 5, 5000)})
    with pytest.raises(StageError, match="distinct frames"):
        estimate_drift(Localizations(t), DriftConfig(n_segments=10))
    t["frame"] = rng.integers(0, 1000, 5000)
    with pytest.raises(StageError, match="localizations per segment"):
        estimate_drift(Localizations(t), DriftConfig(n_segments=10,
                                                     min_localizations_per_segment=1000))
    t.loc[3, "frame"] = np.nan
    with pytest.raises(StageError, match="non-finite"):
        estimate_drift(Localizations(t))
    with pytest.raises(StageError, match="empty"):
        estimate_drift(Localizations(t.iloc[:0]))


def test_config_validation_and_types():
    from pydantic import ValidationError

    for bad in ({"n_segments": 1}, {"pixel_size_nm": 0.0}, {"subpixel": "centroid"},
                {"max_drift_nm": -5.0}, {"bogus": 1}):
        with pytest.raises(ValidationError):
            DriftConfig(**bad)
    with pytest.raises(TypeError):
        estimate_drift(pd.DataFrame({"x_nm": [0.0]}))
    cfg = DriftConfig(n_segments=7, subpixel="upsample", outlier_sigma=None)
    assert DriftConfig.model_validate(cfg.model_dump(mode="json")) == cfg



def test_settings_beyond_the_memory_or_time_budget_are_refused_before_any_transform(
        monkeypatch):
    """1000 segments on a fine grid, within the settings' ranges, once took 5 GB; the
    spectra and the pairwise work are now sized first."""
    import chromarate.drift as drift

    def no_fft(*args, **kwargs):
        raise AssertionError("a transform was computed")

    monkeypatch.setattr(drift.sfft, "rfft2", no_fft)
    rng = np.random.default_rng(0)
    n = 20_000
    t = pd.DataFrame({"x_nm": rng.uniform(0, 2500, n), "y_nm": rng.uniform(0, 2500, n),
                      "frame": np.arange(n)})
    cfg = DriftConfig(pixel_size_nm=2.0, n_segments=1000, min_localizations_per_segment=1,
                      max_drift_nm=100_000)
    with pytest.raises(StageError, match="n_segments=1000.*drift.pixel_size_nm=2"):
        estimate_drift(Localizations(t), cfg)
