"""Tests of chromarate.validation: rate families, forward models, observation, scoring, suite."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import stats

from chromarate.validation import (DEV_SEEDS, UNSEEN_SEEDS, Case, default_config, run_case,
                                   score, simulate_case, suite, summarise)
from chromarate.validation.cases import FAMILIES, PHI_E0, make_case_mask, make_case_rate, truth_key
from chromarate.validation.scoring import (RESOLUTION_UM, coverage_summary, qc_status,
                                           resolvable_part)
from chromarate.validation.suite import QUICK_MAX_PX, QUICK_MAX_PX_LOCALIZATIONS


def _small(family: str, **kw) -> Case:
    base = dict(seed=7, index=3, size_px=48, pixel_nm=20.0, nucleus_um=0.8, length_um=0.25,
                rate_range=(0.6, 2.4))
    base.update(kw)
    return Case(f"t-{family}", family, **base)


def _rate(case: Case):
    rng = np.random.default_rng([case.seed, case.index])
    mask = make_case_mask(case, rng)
    return make_case_rate(case, rng, mask=mask), mask


# -- rate families ------------------------------------------------------------------------

@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "hetero"])
def test_family_range_and_shape(family):
    case = _small(family)
    lam, mask = _rate(case)
    assert lam.shape == case.shape and np.all(np.isfinite(lam))
    lo, hi = case.rate_range
    assert lam.min() >= lo - 1e-9 and lam.max() <= hi + 1e-9
    if family in ("bump", "domains", "step", "smooth"):
        assert np.ptp(lam[mask]) > 0.5 * (hi - lo), "the pattern spans the range in the nucleus"
    # reproducible from (seed, index) alone, different for another index
    again, _ = _rate(case)
    np.testing.assert_array_equal(lam, again)
    if family != "constant":
        other, _ = _rate(replace(case, index=4))
        assert not np.allclose(lam, other)


def test_constant_family_is_constant():
    lam, _ = _rate(_small("constant"))
    assert np.ptp(lam) == 0.0 and 0.6 <= lam[0, 0] <= 2.4


def test_bump_is_smooth_with_its_peak_inside():
    case = _small("bump", size_px=64, nucleus_um=1.0, length_um=0.3)
    lam, mask = _rate(case)
    peak = np.unravel_index(np.argmax(lam), lam.shape)
    assert mask[peak]
    assert lam.max() == pytest.approx(2.4, abs=1e-6)
    # largest pixel-to-pixel step of a Gaussian of s px: (hi - lo) exp(-1/2) / s
    s_px = 0.3 / 0.02
    steps = max(np.abs(np.diff(lam, axis=0)).max(), np.abs(np.diff(lam, axis=1)).max())
    assert steps <= 1.8 * np.exp(-0.5) / s_px * 1.05


def test_step_is_sharp_and_crosses_the_nucleus():
    case = _small("step", size_px=64, nucleus_um=1.0)
    lam, mask = _rate(case)
    lo, hi = case.rate_range
    low, high = mask & (lam < lo + 0.05), mask & (lam > hi - 0.05)
    assert low.sum() > 0.15 * mask.sum() and high.sum() > 0.15 * mask.sum()
    middle = mask & ~low & ~high
    # an erf of 1 px: the transition band is a few pixels wide along a chord of the nucleus
    chord_px = 1.0 / 0.02
    assert middle.sum() < 5.0 * chord_px
    # the largest jump between neighbours is that of an erf of sigma 1 px
    jump = max(np.abs(np.diff(lam, axis=0)).max(), np.abs(np.diff(lam, axis=1)).max())
    assert jump > 0.3 * (hi - lo)


def test_domains_are_blobs_0p3_to_1um():
    case = _small("domains", size_px=96, nucleus_um=1.6)
    lam, mask = _rate(case)
    mid = 0.5 * sum(case.rate_range)
    labels, n = ndi.label(lam > mid)
    assert 1 <= n <= 12
    areas = ndi.sum(np.ones_like(lam), labels, index=np.arange(1, n + 1)) * 0.02**2
    # overlapping discs merge, so only the lower bound and the total are checked per blob
    assert areas.min() >= np.pi * 0.15**2 * 0.8
    assert 0.02 < (lam[mask] > mid).mean() < 0.8


def test_fine_family_structure_is_removed_by_the_resolvable_part():
    case = _small("fine", size_px=96, nucleus_um=1.6, length_um=0.8)
    lam, mask = _rate(case)
    smooth = resolvable_part(lam, pixel_nm=case.pixel_nm)
    fine = lam - smooth
    # checkerboard: 20 % of the range times half the std (0.5) of a product of sines
    assert fine[mask].std() > 0.8 * 0.2 * 1.8 * 0.5 * 0.5  # fine structure present ...
    # ... with a wavelength (0.12 um = 6 px) the filter removes: filtering again changes
    # the resolvable part by much less than it changed the map
    again = resolvable_part(smooth, pixel_nm=case.pixel_nm)
    assert np.abs(again - smooth)[mask].max() < 0.5 * np.abs(fine)[mask].max()


def test_resolvable_part_filter_exact_on_sines():
    p, n = 10.0, 400
    x = (np.arange(n) + 0.5) * p / 1000.0
    for wavelength, expected in ((2.0, None), (0.12, 0.0)):
        wave = np.tile(np.sin(2 * np.pi * x / wavelength), (8, 1))
        out = resolvable_part(wave, pixel_nm=p)
        gain = np.exp(-2 * np.pi**2 * RESOLUTION_UM**2 / wavelength**2)
        centre = out[4, 100:300] / wave[4, 100:300]
        ok = np.abs(wave[4, 100:300]) > 0.5
        assert np.allclose(centre[ok], gain, atol=2e-3)
        if expected is not None:
            assert gain < 1e-6
    assert np.allclose(resolvable_part(np.full((20, 20), 1.7), pixel_nm=20.0), 1.7)


def test_hetero_rate_follows_heterochromatin():
    case = _small("hetero", size_px=48, nucleus_um=0.8, length_um=0.06, tolerance=5e-3)
    syn = simulate_case(case)
    m = syn.mask
    lo, hi = case.rate_range
    assert syn.rate[m].min() == pytest.approx(lo) and syn.rate[m].max() == pytest.approx(hi)
    r = np.corrcoef(syn.rate[m], syn.phi_h[m])[0, 1]
    assert r > 0.5, r


def test_synthetic_case_phi_h_is_phi_d_plus_phi_e0():
    """SyntheticCase overrides PhaseFields.phi_h with the truth's phi_d + phi_e0. On a
    simulated case phi_w follows the closure 1 - 2 phi_e0 - phi_d, so both formulas agree
    there; fields built off the closure tell them apart without a simulation."""
    from chromarate._types import PhaseFields
    from chromarate.validation.cases import SyntheticCase

    phi_d = np.random.default_rng(0).uniform(-0.1, 0.3, (6, 5))
    phi_w = 1.0 - 2.0 * PHI_E0 - phi_d + 0.1  # 0.1 off the closure
    syn = SyntheticCase(case=_small("constant"), rate=np.ones((6, 5)), phi_d=phi_d,
                        phi_w=phi_w, mask=np.ones((6, 5), bool), pixel_size_nm=20.0)
    np.testing.assert_array_equal(syn.phi_h, phi_d + PHI_E0)
    base = PhaseFields.phi_h.fget(syn)  # the inherited (1 - phi_w + phi_d) / 2
    np.testing.assert_allclose(base, phi_d + PHI_E0 - 0.05)


# -- forward models and observations -------------------------------------------------------

@pytest.mark.parametrize("model", ["box", "envelope"])
def test_forward_models_converge(model):
    case = _small("bump", size_px=40, nucleus_um=0.64, model=model, envelope="irregular",
                  tolerance=2e-3)
    syn = simulate_case(case)
    assert syn.meta["converged"] and syn.meta["residual_max"] < 2e-3
    np.testing.assert_allclose(syn.phi_w, 1.0 - 2.0 * PHI_E0 - syn.phi_d, atol=1e-6)  # float32
    assert syn.mask.sum() > 200 and not syn.mask[0].any() and not syn.mask[:, 0].any()
    # where lambda is high, heterochromatin is high (steady state of the reaction on average)
    m = syn.mask
    assert np.corrcoef(syn.rate[m], syn.phi_d[m])[0, 1] > 0.3


def test_fields_noise_level_and_cache(tmp_path):
    case = _small("bump", size_px=40, nucleus_um=0.64, noise=0.05, tolerance=5e-3)
    syn = simulate_case(case, cache_dir=tmp_path)
    assert not syn.meta["from_cache"] and len(list(tmp_path.iterdir())) == 1
    m = syn.mask
    sigma = 0.05 * np.ptp(syn.phi_d[m])
    resid = syn.fields.phi_d - syn.phi_d
    assert resid.std() == pytest.approx(sigma, rel=0.1)
    np.testing.assert_allclose(syn.fields.phi_w, 1.0 - 2.0 * PHI_E0 - syn.fields.phi_d)
    # the noise variant of the same truth reads the cached steady state
    other = replace(case, name="other", noise=0.01)
    assert truth_key(other) == truth_key(case)
    again = simulate_case(other, cache_dir=tmp_path)
    assert again.meta["from_cache"] and again.meta["simulate_s"] == syn.meta["simulate_s"]
    np.testing.assert_array_equal(again.phi_d, syn.phi_d)
    np.testing.assert_array_equal(again.rate, syn.rate)
    assert truth_key(replace(case, seed=8)) != truth_key(case)


def test_localizations_with_blinking_and_background():
    case = _small("constant", size_px=40, nucleus_um=0.64, path="localizations",
                  n_localizations=30_000, precision_nm=(12.0, 25.0), background_fraction=0.1,
                  blinking=2.0, tolerance=5e-3)
    syn = simulate_case(case)
    t = syn.localizations.table
    assert abs(len(t) - 30_000) < 0.05 * 30_000
    assert t["precision_nm"].between(12.0, 25.0).all()
    # molecules repeat: about half the localizations have a twin with the same precision in
    # the next frame
    key = t["precision_nm"].round(9).astype(str) + "/" + t["frame"].astype(str)
    nxt = t["precision_nm"].round(9).astype(str) + "/" + (t["frame"] + 1).astype(str)
    assert 0.35 < nxt.isin(set(key)).mean() < 0.65
    # background: some localizations land outside the nucleus
    p = case.pixel_nm
    iy = np.clip((t["y_nm"] / p).astype(int), 0, case.size_px - 1)
    ix = np.clip((t["x_nm"] / p).astype(int), 0, case.size_px - 1)
    outside = ~syn.mask[iy, ix]
    assert 0.03 < outside.mean() < 0.3


# -- scoring ------------------------------------------------------------------------------

def test_score_against_numpy_and_scipy():
    rng = np.random.default_rng(0)
    truth = 1.0 + rng.random((30, 30))
    est = truth + 0.1 * rng.standard_normal((30, 30))
    trusted = np.zeros((30, 30), bool)
    trusted[5:25, 4:22] = True
    est[6, 6] = np.nan  # not scored
    s = score(est, trusted, None, truth, pixel_nm=20.0)
    sel = trusted & np.isfinite(est)
    assert s.n_pixels == sel.sum()
    assert s.pearson_r == pytest.approx(np.corrcoef(est[sel], truth[sel])[0, 1])
    assert s.spearman_rho == pytest.approx(stats.spearmanr(est[sel], truth[sel])[0])
    assert s.bias == pytest.approx((est[sel].mean() - truth[sel].mean()) / truth[sel].mean())
    assert s.rmse == pytest.approx(np.sqrt(np.mean((est[sel] - truth[sel]) ** 2)))
    assert math.isnan(s.coverage90)
    # a constant truth has no r, also after the resolvable part's filter left ripples
    flat = resolvable_part(np.full((30, 30), 1.7), pixel_nm=20.0)
    flat[10, 10] += 1e-13  # a scored pixel: the old test (std > 0) gave it an r
    s = score(est, trusted, None, flat, pixel_nm=20.0)
    assert math.isnan(s.pearson_r) and math.isnan(s.spearman_rho) and math.isfinite(s.bias)


def test_coverage_summary_counts_and_pools():
    rows = [{"coverage90": 0.90, "n_pixels": 100}, {"coverage90": 1.0, "n_pixels": 300},
            {"coverage90": 0.5, "n_pixels": 100}, {"coverage90": 0.98, "n_pixels": 0},
            {"coverage90": float("nan"), "n_pixels": 50}, {"coverage90": None}]
    c = coverage_summary(rows)
    assert (c["n"], c["in_range"], c["wider"], c["narrower"]) == (4, 2, 1, 1)
    assert c["pooled"] == pytest.approx((90 + 300 + 50) / 500)
    assert c["mean"] == pytest.approx((0.90 + 1.0 + 0.5 + 0.98) / 4)  # every row alike
    assert math.isnan(coverage_summary([])["mean"]) and coverage_summary([])["n"] == 0
    rows = [{"case": "x", "r": 0.80, "baseline_r": 0.815, "bias": 0.0, "status": "ok"},
            {"case": "y", "r": 0.80, "baseline_r": 0.83, "bias": 0.0, "status": "ok"}]
    s = summarise(rows)
    assert s["worse_than_baseline"] == ["x", "y"] and s["below_baseline_margin"] == ["y"]


def test_score_coverage_and_side_of_one_hand_made():
    truth = np.array([[0.5, 0.98, 1.5, 2.0, 3.0]])
    est = np.array([[0.9, 1.2, 1.5 - 1.6, 2.0 + 1.7, 3.0 - 1.0]])
    std = np.ones_like(truth)
    s = score(est, np.ones_like(truth, bool), std, truth, pixel_nm=10.0)
    # |err| = 0.4, 0.22, 1.6, 1.7, 1.0 against 1.645: all but the fourth covered
    assert s.coverage90 == pytest.approx(4 / 5)
    # |truth - 1| > 0.05 for all but 0.98; sides: 0.9 ok, -0.1 wrong, 3.7 ok, 2.0 ok
    assert s.side_of_one == pytest.approx(3 / 4)
    s0 = score(est, np.ones_like(truth, bool), np.zeros_like(truth), truth, pixel_nm=10.0)
    assert s0.coverage90 == 0.0


def test_score_aligns_grids_and_uses_the_true_mask():
    # a linear truth on a 10 nm grid; the result on a 20 nm grid offset by (40, 60) nm
    yy, xx = np.mgrid[0:100, 0:100]
    truth = 1.0 + 0.01 * yy + 0.02 * xx  # of the pixel index on the truth grid
    ry, rx = np.mgrid[0:30, 0:30]
    yc = (40.0 + (ry + 0.5) * 20.0) / 10.0 - 0.5
    xc = (60.0 + (rx + 0.5) * 20.0) / 10.0 - 0.5
    est = 1.0 + 0.01 * yc + 0.02 * xc
    tmask = np.zeros((100, 100), bool)
    tmask[:, :50] = True  # covers result columns with x < 500 nm
    s = score(est, np.ones((30, 30), bool), None, truth, pixel_nm=20.0, origin_nm=(40.0, 60.0),
              truth_pixel_nm=10.0, truth_origin_nm=(0.0, 0.0), truth_mask=tmask)
    assert s.rmse < 1e-9 and s.pearson_r == pytest.approx(1.0)
    assert s.n_pixels == 30 * int(np.sum(60.0 + (np.arange(30) + 0.5) * 20.0 < 500.0))
    # a misaligned origin is seen
    bad = score(est, np.ones((30, 30), bool), None, truth, pixel_nm=20.0, origin_nm=(0.0, 0.0),
                truth_pixel_nm=10.0)
    assert bad.rmse > 0.05


def test_qc_status_and_summary():
    assert qc_status(None) == ("unchecked", [])
    assert qc_status({"status": "flagged", "reasons": ["calibration at bound"]}) == \
        ("flagged", ["calibration at bound"])
    assert qc_status({"ok": True}) == ("ok", [])
    assert qc_status({"reasons": "r low"}) == ("flagged", ["r low"])
    rows = [
        {"case": "a", "r": 0.9, "bias": 0.1, "status": "ok", "reasons": [], "baseline_r": 0.8},
        {"case": "b", "r": 0.5, "bias": -0.3, "status": "flagged", "reasons": ["x"],
         "baseline_r": 0.7},
        {"case": "c", "r": float("nan"), "bias": 0.02, "status": "ok", "reasons": [],
         "baseline_r": float("nan")},
        {"case": "d", "r": 0.7, "bias": 0.2, "status": "warn", "reasons": ["x", "y"],
         "baseline_r": 0.6},
    ]
    s = summarise(rows)
    assert s["all"]["median_r"] == pytest.approx(0.7) and s["all"]["min_r"] == 0.5
    assert s["all"]["worst_abs_bias"] == pytest.approx(0.3)
    assert s["all"]["median_abs_bias"] == pytest.approx(0.15)
    assert s["by_status"]["ok"]["n"] == 2 and s["by_status"]["ok"]["min_r"] == 0.9
    assert s["n_flagged"] == 2 and s["flag_reasons"] == {"x": 2, "y": 1}
    assert s["worse_than_baseline"] == ["b"]
    assert math.isnan(s["all"]["median_r_resolvable"])  # rows from before the figure
    assert s["below_baseline_margin"] == ["b"]  # 0.2 below; d is above its baseline
    assert s["coverage"]["n"] == 0 and math.isnan(s["coverage"]["pooled"])
    json.dumps(s)
    for row, rr in zip(rows, (0.95, 0.6, float("nan"), 0.8)):
        row["r_resolvable"] = rr
    s = summarise(rows)
    assert s["all"]["median_r_resolvable"] == pytest.approx(0.8)
    assert s["all"]["min_r_resolvable"] == 0.6
    assert s["by_status"]["ok"]["median_r_resolvable"] == 0.95
    # reasons count by kind, their numbers aside
    rows = [{"case": c, "r": 0.5, "bias": 0.0, "status": "low_confidence", "baseline_r": 0.1,
             "reasons": [f"small for the kernel: {n} trusted pixels ({p} % of the nucleus)"]}
            for c, n, p in (("a", 288, 10), ("b", 345, 12.5))]
    assert summarise(rows)["flag_reasons"] == {
        "small for the kernel: # trusted pixels (# % of the nucleus)": 2}


# -- the suite ----------------------------------------------------------------------------

def test_suite_spans_the_required_axes():
    cases = suite(DEV_SEEDS)
    assert len(cases) >= 16
    assert len({c.name for c in cases}) == len(cases)
    assert len({(c.seed, c.index) for c in cases}) == len(cases)
    assert set(FAMILIES) <= {c.family for c in cases}
    assert {c.model for c in cases} == {"box", "envelope"}
    assert {c.envelope for c in cases} == {"ellipse", "irregular"}
    fields = [c for c in cases if c.path == "fields"]
    locs = [c for c in cases if c.path == "localizations"]
    assert {0.0, 0.01, 0.05} <= {c.noise for c in fields}
    assert {50_000, 250_000, 1_000_000} <= {c.n_localizations for c in locs}
    assert min(c.precision_nm[0] for c in locs) <= 10 and max(c.precision_nm[1] for c in locs) >= 30
    assert any(c.background_fraction > 0 for c in locs) and any(c.blinking > 1 for c in locs)
    assert {c.model for c in locs} == {"box", "envelope"}
    assert min(c.pixel_nm for c in cases) == 10 and max(c.pixel_nm for c in cases) == 40
    assert min(c.nucleus_um for c in cases) == 1.5 and max(c.nucleus_um for c in cases) == 15
    assert any(c.nucleus_um == 1.5 and c.pixel_nm == 10 for c in cases)
    assert any(c.nucleus_um == 15 and c.pixel_nm == 40 for c in cases)
    assert all(c.nucleus_um < 0.95 * c.size_px * c.pixel_nm / 1000 for c in cases)
    # the nuclei of ``chromarate simulate --size 96`` and ``--size 128``
    for size in (96, 128):
        cli = [c for c in cases if c.name.startswith(f"cli-size{size}")]
        assert len(cli) == 1
        c, scale = cli[0], size * 20.0 / 1000.0 / 5.12
        assert (c.size_px, c.pixel_nm, c.path) == (size, 20.0, "localizations")
        assert c.nucleus_um / 2 == pytest.approx(2.3 * scale)
        assert c.nucleus_um / 2 * c.aspect == pytest.approx(2.0 * scale)
    for c in cases:
        assert 0.5 <= c.rate_range[0] <= c.rate_range[1] <= 3.0
    two = suite(DEV_SEEDS + UNSEEN_SEEDS)
    assert len(two) == 2 * len(cases)
    assert not set(DEV_SEEDS) & set(UNSEEN_SEEDS)


def test_quick_suite_is_small():
    quick = suite(DEV_SEEDS, quick=True)
    assert len(quick) == len(suite(DEV_SEEDS))
    assert all(c.size_px <= QUICK_MAX_PX for c in quick if c.path == "fields")
    assert all(c.size_px <= QUICK_MAX_PX_LOCALIZATIONS for c in quick)
    # the pipeline's segmentation keeps objects of 1 um^2 and more
    assert all(c.nucleus_um >= 1.5 for c in quick if c.path == "localizations")
    full = suite(DEV_SEEDS)
    for q, c in zip(quick, full):
        assert q.name == c.name and q.pixel_nm == c.pixel_nm and q.nucleus_um <= c.nucleus_um
        assert q.nucleus_um < 0.95 * q.size_px * q.pixel_nm / 1000


# -- end to end ---------------------------------------------------------------------------

def _quick_config(case, steps=5):
    cfg = default_config(case, quick=True)
    training = cfg.fit.training.model_copy(update={"steps": steps})
    return cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"training": training})})


def test_run_case_fields_end_to_end(tmp_path):
    case = next(c for c in suite(DEV_SEEDS, quick=True) if c.name.startswith("bump-env-n1"))
    case = replace(case, size_px=48, nucleus_um=0.8, length_um=0.25)
    res = run_case(case, config=_quick_config(case), cache_dir=tmp_path)
    row = res.row()
    assert row["status"] != "failed", row["reasons"]
    assert row["n_pixels"] > 0 and math.isfinite(row["r"]) and math.isfinite(row["baseline_r"])
    assert row["delta_r"] == pytest.approx(row["r"] - row["baseline_r"])
    assert row["fit_s"] > 0 and row["peak_rss_mb"] > 0 and row["simulate_s"] > 0
    assert res.rate.shape == res.target.shape == case.shape
    json.dumps(row)
    # r against the truth low-passed at the suite's resolution scale, on the same pixels
    sel = res.trusted & np.isfinite(res.rate)
    assert sel.sum() == row["n_pixels"]
    smooth = resolvable_part(res.target, pixel_nm=case.pixel_nm)  # same grid on this path
    expect = np.corrcoef(res.rate[sel], smooth[sel])[0, 1]
    assert row["r_resolvable"] == pytest.approx(expect, rel=1e-9)
    assert abs(row["r_resolvable"] - row["r"]) > 1e-4  # not r itself
    direct = run_case(case, config=_quick_config(case), method="direct", cache_dir=tmp_path)
    assert direct.meta["from_cache"] and direct.row()["r"] == row["baseline_r"]


@pytest.mark.slow
def test_run_case_localizations_end_to_end(tmp_path):
    case = next(c for c in suite(DEV_SEEDS, quick=True) if c.name.startswith("cli-size96"))
    res = run_case(case, config=_quick_config(case), cache_dir=tmp_path)
    row = res.row()
    assert row["status"] != "failed", row["reasons"]
    assert row["n_pixels"] > 0 and math.isfinite(row["r"])


@pytest.mark.slow
def test_benchmark_script_smoke(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "experiments" / "validation.py"
    out = tmp_path / "v.json"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--cases", "bump-box-n0",
                           "constant-box-n1", "--steps", "3", "--cache", str(tmp_path / "c"),
                           "--out", str(out), "--figure", str(tmp_path / "v.png")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["case"] for r in report["rows"]] == ["bump-box-n0@101", "constant-box-n1@101"]
    assert report["summary"]["all"]["n"] == 2
    assert (tmp_path / "v.md").is_file() and (tmp_path / "v.png").stat().st_size > 0
    assert "median r=" in proc.stdout


def test_case_by_name_finds_any_seed_and_checks_the_path():
    from chromarate.validation.suite import case_by_name

    case = case_by_name("hetero-irr-env-loc250k@303", path="localizations")
    assert case.name == "hetero-irr-env-loc250k@303" and case.path == "localizations"
    assert case_by_name("bump-box-n0@7", quick=True).name == "bump-box-n0@7"
    for bad, match in (("bump-box-n0", "NAME@SEED"), ("no-such-case@1", "not a case"),
                       ("bump-box-n0@1", "not a localizations case")):
        with pytest.raises(ValueError, match=match):
            case_by_name(bad, path="localizations" if "bump-box" in bad else None)
