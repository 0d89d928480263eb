"""Tests of chromarate.filtering: exact row selection by each filter, and blinking merge
(emitter count and positions recovered, precision weighting, one-to-one linking)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chromarate._types import Localizations
from chromarate.config import FilterConfig
from chromarate.errors import ChromarateError, StageError
from chromarate.filtering import filter_localizations, merge_blinking


def _locs(**cols) -> Localizations:
    return Localizations(table=pd.DataFrame({k: np.asarray(v) for k, v in cols.items()}),
                         meta={"source": "test.csv"})


def _table10() -> Localizations:
    return _locs(
        x_nm=[0.0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
        y_nm=[5.0, 15, 25, 35, 45, 55, 65, 75, 85, 95],
        frame=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        photons=[100.0, 500, 900, 50, 1000, np.nan, 300, 800, 700, 600],
        precision_nm=[5.0, 12, 8, 20, 9.99, 10, np.nan, 3, 15, 10.0],
    )


# ----------------------------------------------------------------------------- filters


def test_default_config_keeps_everything_and_records_counts():
    locs = _table10()
    out = filter_localizations(locs)
    pd.testing.assert_frame_equal(out.table, locs.table)
    assert out.meta["source"] == "test.csv"
    assert out.meta["filters"] == {"n_before": 10, "n_after": 10}


def test_precision_filter_removes_exactly_the_imprecise_and_nan_rows():
    out = filter_localizations(_table10(), FilterConfig(max_precision_nm=10.0))
    # kept: precision <= 10 (rows 0, 2, 4, 5, 7, 9); NaN (row 6) is removed
    assert out.table["x_nm"].tolist() == [0.0, 20, 40, 50, 70, 90]
    assert out.meta["filters"]["precision"] == 4
    assert list(out.table.index) == list(range(6))


def test_photon_filter():
    out = filter_localizations(_table10(), FilterConfig(min_photons=500.0))
    assert out.table["x_nm"].tolist() == [10.0, 20, 40, 70, 80, 90]   # 500 kept, NaN dropped
    assert out.meta["filters"]["photons"] == 4


def test_frame_range_is_half_open():
    out = filter_localizations(_table10(), FilterConfig(frame_range=(2, 7)))
    assert out.table["frame"].tolist() == [2, 3, 4, 5, 6]
    assert out.meta["filters"]["frame_range"] == 5


def test_region_is_half_open_in_y_and_x():
    # y in [15, 65), x in [10, 60): rows 1..5 (row 6 has y = 65 -> out)
    out = filter_localizations(_table10(), FilterConfig(region_nm=((15.0, 10.0), (65.0, 60.0))))
    assert out.table["x_nm"].tolist() == [10.0, 20, 30, 40, 50]
    assert out.meta["filters"]["region"] == 5


def test_filters_combine_sequentially_and_count_per_filter():
    cfg = FilterConfig(max_precision_nm=10.0, min_photons=200.0, frame_range=(0, 9),
                       region_nm=((0.0, 0.0), (1e4, 85.0)))
    out = filter_localizations(_table10(), cfg)
    # precision keeps 0,2,4,5,7,9; photons>=200 keeps 2,4,7,9 (row 0 has 100, row 5 NaN);
    # frames < 9 drops 9; x < 85 keeps 2,4,7
    assert out.table["x_nm"].tolist() == [20.0, 40, 70]
    assert out.meta["filters"] == {"n_before": 10, "precision": 4, "photons": 2,
                                   "frame_range": 1, "region": 0, "n_after": 3}


@pytest.mark.parametrize("cfg,column,name", [
    (FilterConfig(max_precision_nm=10.0), "precision_nm", "max_precision_nm"),
    (FilterConfig(min_photons=10.0), "photons", "min_photons"),
    (FilterConfig(frame_range=(0, 5)), "frame", "frame_range"),
    (FilterConfig(merge_blinking=True), "frame", "merge_blinking"),
])
def test_missing_column_names_column_and_filter(cfg, column, name):
    locs = _locs(x_nm=[0.0, 1.0], y_nm=[0.0, 1.0])
    with pytest.raises(StageError) as exc:
        filter_localizations(locs, cfg)
    assert column in str(exc.value) and name in str(exc.value)
    assert isinstance(exc.value, (ChromarateError, ValueError))


@pytest.mark.parametrize("kwargs", [
    {"frame_range": (5, 5)}, {"frame_range": (-1, 5)},
    {"region_nm": ((10.0, 0.0), (0.0, 10.0))}, {"region_nm": ((0.0, 0.0), (float("nan"), 1.0))},
    {"max_precision_nm": 0.0}, {"merge_radius_nm": -1.0}, {"merge_max_gap_frames": -1},
    {"unknown_key": 1},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValidationError):
        FilterConfig(**kwargs)


def test_config_round_trips_through_json():
    cfg = FilterConfig(max_precision_nm=12.5, frame_range=(10, 500),
                       region_nm=((0.0, 100.0), (2000.0, 3000.0)), merge_blinking=True)
    assert FilterConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_wrong_types():
    with pytest.raises(TypeError):
        filter_localizations(pd.DataFrame({"x_nm": [1.0]}))
    with pytest.raises(TypeError):
        filter_localizations(_table10(), {"min_photons": 3})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.floats(1, 30), st.floats(0, 1000), st.integers(0, 50),
       st.integers(1, 50))
def test_filters_match_a_plain_pandas_query(seed, max_p, min_ph, f0, df):
    rng = np.random.default_rng(seed)
    n = 200
    t = pd.DataFrame({"x_nm": rng.uniform(0, 100, n), "y_nm": rng.uniform(0, 100, n),
                      "frame": rng.integers(0, 100, n), "photons": rng.uniform(0, 2000, n),
                      "precision_nm": rng.uniform(0, 40, n)})
    cfg = FilterConfig(max_precision_nm=max_p, min_photons=min_ph, frame_range=(f0, f0 + df),
                       region_nm=((20.0, 10.0), (80.0, 70.0)))
    out = filter_localizations(Localizations(t), cfg)
    q = t[(t.precision_nm <= max_p) & (t.photons >= min_ph) & (t.frame >= f0)
          & (t.frame < f0 + df) & (t.y_nm >= 20) & (t.y_nm < 80) & (t.x_nm >= 10)
          & (t.x_nm < 70)].reset_index(drop=True)
    pd.testing.assert_frame_equal(out.table, q)
    rec = out.meta["filters"]
    assert rec["n_before"] - sum(rec[k] for k in ("precision", "photons", "frame_range",
                                                  "region")) == rec["n_after"] == len(q)


# ----------------------------------------------------------------------------- merging


def test_merge_small_example_exact_values():
    locs = _locs(x_nm=[0.0, 6.0, 500.0, 3.0], y_nm=[0.0, 0.0, 0.0, 1.0],
                 frame=[3, 4, 4, 9], photons=[100.0, 300.0, 50.0, 10.0],
                 precision_nm=[10.0, 5.0, 8.0, 4.0], sigma_nm=[100.0, 120.0, 90.0, 110.0])
    out = merge_blinking(locs, radius_nm=30.0, max_gap_frames=1)
    t = out.table
    assert len(t) == 3 and t["frame"].tolist() == [3, 4, 9]
    # event 1: weights 1/100 and 1/25 -> x = (0 * 0.01 + 6 * 0.04) / 0.05 = 4.8
    assert t["x_nm"][0] == pytest.approx(4.8)
    assert t["photons"][0] == 400.0
    assert t["precision_nm"][0] == pytest.approx(1.0 / np.sqrt(0.01 + 0.04))
    assert t["sigma_nm"][0] == pytest.approx(110.0)   # plain mean of other columns
    assert t["x_nm"][1] == 500.0 and t["x_nm"][2] == 3.0   # frame 9 is 5 frames later
    m = out.meta["merge_blinking"]
    assert m["n_before"] == 4 and m["n_after"] == 3 and m["weighting"] == "precision"
    assert out.meta["source"] == "test.csv"


@pytest.mark.parametrize("gap,frames,n_expected", [
    (0, [0, 1], 1), (0, [0, 2], 2), (1, [0, 2], 1), (1, [0, 3], 2), (3, [0, 4], 1),
])
def test_gap_tolerance(gap, frames, n_expected):
    locs = _locs(x_nm=[0.0, 1.0], y_nm=[0.0, 1.0], frame=frames)
    assert len(merge_blinking(locs, radius_nm=10.0, max_gap_frames=gap)) == n_expected


def test_radius_is_respected():
    locs = _locs(x_nm=[0.0, 29.9, 1000.0, 1030.1], y_nm=[0.0, 0.0, 0.0, 0.0],
                 frame=[0, 1, 0, 1])
    out = merge_blinking(locs, radius_nm=30.0, max_gap_frames=0)
    assert sorted(out.table["x_nm"].round(2).tolist()) == [14.95, 1000.0, 1030.1]


def test_two_emitters_on_in_the_same_frame_are_not_fused():
    # two emitters 20 nm apart, both on in frames 0 and 1: a component-based linking would
    # make one event; the one-to-one chaining keeps two, each at its own position.
    locs = _locs(x_nm=[0.0, 20.0, 1.0, 21.0], y_nm=[0.0, 0.0, 0.0, 0.0], frame=[0, 0, 1, 1])
    out = merge_blinking(locs, radius_nm=30.0, max_gap_frames=0)
    assert sorted(out.table["x_nm"].tolist()) == [0.5, 20.5]


def test_merge_without_frame_or_with_bad_args():
    with pytest.raises(StageError, match="frame"):
        merge_blinking(_locs(x_nm=[0.0], y_nm=[0.0]))
    with pytest.raises(ValueError):
        merge_blinking(_table10(), radius_nm=0.0)
    with pytest.raises(ValueError):
        merge_blinking(_table10(), max_gap_frames=-1)
    empty = merge_blinking(_locs(x_nm=np.zeros(0), y_nm=np.zeros(0), frame=np.zeros(0, int)))
    assert len(empty) == 0 and empty.meta["merge_blinking"]["n_after"] == 0


def _blinking_emitters(seed=0, n_emitters=3000, field=20_000.0, n_frames=3000,
                       precision=(3.0, 30.0), lengths=(1, 3)):
    """Emitters at known positions, each on for lengths[0]..lengths[1] consecutive frames;
    every localization is drawn with its own precision (the per-row precision_nm)."""
    rng = np.random.default_rng(seed)
    ex, ey = rng.uniform(0, field, n_emitters), rng.uniform(0, field, n_emitters)
    length = rng.integers(lengths[0], lengths[1] + 1, n_emitters)
    start = rng.integers(0, n_frames - 3, n_emitters)
    k = np.repeat(np.arange(n_emitters), length)
    step = np.arange(k.size) - np.repeat(np.cumsum(length) - length, length)
    prec = rng.uniform(*precision, k.size)
    t = pd.DataFrame({"x_nm": ex[k] + rng.normal(0, 1, k.size) * prec,
                      "y_nm": ey[k] + rng.normal(0, 1, k.size) * prec,
                      "frame": start[k] + step, "photons": rng.uniform(500, 1500, k.size),
                      "precision_nm": prec})
    perm = rng.permutation(k.size)
    return Localizations(t.iloc[perm].reset_index(drop=True)), ex, ey, k[perm]


def _rms_to_truth(table, ex, ey):
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.column_stack([ex, ey])).query(table[["x_nm", "y_nm"]].to_numpy())
    return float(np.sqrt(np.mean(d**2)))


def test_merge_recovers_emitters_and_improves_positions():
    locs, ex, ey, k = _blinking_emitters(precision=(3.0, 8.0))
    assert len(locs) > 1.9 * len(ex)
    out = merge_blinking(locs, radius_nm=40.0, max_gap_frames=1)
    # Consecutive localizations of one emitter are <= ~8 * 1.41 * 3.5 nm apart; emitters
    # on at the same time are microns apart: every emitter becomes exactly one event.
    assert len(out) == len(ex)
    assert out.meta["merge_blinking"]["max_chain_length"] == 3
    assert out.table["photons"].sum() == pytest.approx(locs.table["photons"].sum())
    # Position error: averaging 2 localizations on average lowers the error.
    rms_single = _rms_to_truth(locs.table, ex, ey)
    rms_merged = _rms_to_truth(out.table, ex, ey)
    assert rms_merged < 0.85 * rms_single
    # The combined precision predicts the merged error (per-axis RMS / predicted ~ 1).
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.column_stack([ex, ey])).query(out.table[["x_nm", "y_nm"]].to_numpy())
    ratio = np.sqrt(np.mean(d**2 / (2 * out.table["precision_nm"].to_numpy() ** 2)))
    assert 0.9 < ratio < 1.1


def test_precision_weighting_beats_plain_mean_for_mixed_precision():
    # Every emitter is on for 3 frames, precisions uniform in 2-30 nm. Expected per-axis
    # RMS error (Monte Carlo of the formulas): plain mean sqrt(E[sum p^2] / 9) = 10.35 nm,
    # weighted sqrt(E[1 / sum(1 / p^2)]) = 7.65 nm. Measured (seed 1): 10.22 and 7.58 nm.
    # Large field: at 200 nm radius no two emitters meet in neighbouring frames.
    locs, ex, ey, _ = _blinking_emitters(seed=1, field=200_000.0, precision=(2.0, 30.0),
                                         lengths=(3, 3))
    weighted = merge_blinking(locs, radius_nm=200.0, max_gap_frames=0)
    plain = merge_blinking(Localizations(locs.table.drop(columns="precision_nm")),
                           radius_nm=200.0, max_gap_frames=0)
    assert weighted.meta["merge_blinking"]["weighting"] == "precision"
    assert plain.meta["merge_blinking"]["weighting"] == "uniform"
    assert len(weighted) == len(plain) == len(ex)
    rms_w = _rms_to_truth(weighted.table, ex, ey) / np.sqrt(2)   # per axis
    rms_u = _rms_to_truth(plain.table, ex, ey) / np.sqrt(2)
    rms_single = _rms_to_truth(locs.table, ex, ey) / np.sqrt(2)
    assert rms_u == pytest.approx(10.35, rel=0.06)
    assert rms_w == pytest.approx(7.65, rel=0.06)
    assert rms_single > 15.0


def test_filter_config_runs_the_merge_after_the_filters():
    locs, ex, _, _ = _blinking_emitters(n_emitters=500, precision=(3.0, 8.0))
    out = filter_localizations(locs, FilterConfig(max_precision_nm=6.0, merge_blinking=True,
                                                  merge_radius_nm=40.0))
    assert out.meta["filters"]["precision"] > 0
    assert out.meta["merge_blinking"]["n_before"] == out.meta["filters"]["n_after"]
    assert len(out) < out.meta["filters"]["n_after"]
    assert (out.table["precision_nm"] <= 6.0).all()


def _many_locs(n_emitters, seed=0):
    rng = np.random.default_rng(seed)
    length = rng.integers(1, 6, n_emitters)
    start = rng.integers(0, 20_000, n_emitters)
    ex, ey = rng.uniform(0, 40_000, n_emitters), rng.uniform(0, 40_000, n_emitters)
    k = np.repeat(np.arange(n_emitters), length)
    step = np.arange(k.size) - np.repeat(np.cumsum(length) - length, length)
    t = pd.DataFrame({"x_nm": ex[k] + rng.normal(0, 5, k.size),
                      "y_nm": ey[k] + rng.normal(0, 5, k.size),
                      "frame": start[k] + step, "precision_nm": np.full(k.size, 5.0)})
    return Localizations(t.sample(frac=1.0, random_state=seed).reset_index(drop=True))


def test_merge_scales_to_a_few_hundred_thousand_rows():
    locs = _many_locs(70_000)
    out = merge_blinking(locs, radius_nm=30.0, max_gap_frames=1)
    # ~3.5 emitters per frame over 40 x 40 um: nearly every emitter becomes one event
    assert abs(len(out) - 70_000) < 70


@pytest.mark.slow
def test_merge_one_million_rows_in_a_few_seconds():
    locs = _many_locs(333_000)
    assert len(locs) > 990_000
    t0 = time.perf_counter()
    out = merge_blinking(locs, radius_nm=30.0, max_gap_frames=1)
    elapsed = time.perf_counter() - t0
    assert abs(len(out) - 333_000) < 1000
    assert elapsed < 10.0, f"merge of {len(locs)} rows took {elapsed:.1f} s"
