"""Two halves of an acquisition for the quality gate's split-half check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromarate._types import Localizations
from chromarate.config import PipelineConfig, with_overrides
from chromarate.denoise import denoise_density
from chromarate.errors import StageError
from chromarate.io.localizations import read_localizations
from chromarate.pipeline import NucleusTask, Pipeline, crop_density, fields_quality
from chromarate.quality import HELD_TO_BALANCE_NOTE
from chromarate.render import render_density
from chromarate.resolution import split_halves
from chromarate.split_half import MIN_HALF_LOCALIZATIONS, half_density_maps, half_labels


def _maps(locs, cfg=PipelineConfig()):
    density = render_density(locs, cfg.render)
    return density, denoise_density(density, cfg.denoise)


def test_halves_share_the_grid_and_add_up_to_the_whole(tiny_nucleus):
    """Rendering and the Gaussian smoothing are linear: on a crop of the whole map the two
    halves sum to the crop (the margin rendered around it makes the smoothing the same), on
    the crop's grid, and they hold about half of the localizations each."""
    csv, _, _ = tiny_nucleus
    locs = read_localizations(csv)
    _, denoised = _maps(locs)
    crop = crop_density(denoised, (slice(20, 70), slice(15, 80)))
    a, b = half_density_maps(locs, crop)
    for h in (a, b):
        assert h.data.shape == crop.data.shape and h.origin_nm == crop.origin_nm
        assert h.pixel_size_nm == crop.pixel_size_nm
        assert 0.3 < h.data.sum() / crop.data.sum() < 0.7
    np.testing.assert_allclose(a.data + b.data, crop.data, rtol=1e-4, atol=1e-4)
    # the split is made once per acquisition: the labels given, or another seed's
    side = half_labels(locs, seed=1)
    c, d = half_density_maps(locs, crop, side=side)
    assert not np.allclose(c.data, a.data)
    np.testing.assert_allclose(c.data + d.data, crop.data, rtol=1e-4, atol=1e-4)


def test_no_split_without_enough_localizations_or_frames():
    rng = np.random.default_rng(0)
    n = 2 * MIN_HALF_LOCALIZATIONS - 2
    table = pd.DataFrame({"x_nm": rng.uniform(0, 2000, n), "y_nm": rng.uniform(0, 2000, n),
                          "frame": np.arange(n)})
    locs = Localizations(table=table, meta={})
    assert half_labels(locs) is None and half_density_maps(locs, _maps(locs)[1]) is None
    one_frame = Localizations(table=table.assign(frame=0), meta={})
    assert half_labels(one_frame) is None
    text_frames = Localizations(table=table.assign(frame="x"), meta={})
    assert half_labels(text_frames) is None


def test_no_split_without_frames_or_with_broken_frames():
    """Without frames a split would put one molecule's repeats in both halves (the halves
    would agree better than two acquisitions): no split. NaN or absurdly large frame
    numbers give no split either, never an error or a huge allocation."""
    rng = np.random.default_rng(0)
    n = 5000
    table = pd.DataFrame({"x_nm": rng.uniform(0, 2000, n), "y_nm": rng.uniform(0, 2000, n)})
    locs = Localizations(table=table, meta={})
    assert half_labels(locs) is None
    assert half_density_maps(locs, _maps(locs)[1]) is None
    frames = np.arange(n, dtype=np.float64)
    with_nan = frames.copy()
    with_nan[7] = np.nan
    assert half_labels(Localizations(table=table.assign(frame=with_nan), meta={})) is None
    huge = frames.copy()
    huge[-1] = 1e300
    assert half_labels(Localizations(table=table.assign(frame=huge), meta={})) is None
    with pytest.raises(StageError, match="2\\^53"):
        split_halves(table.assign(frame=huge))


def test_only_occupied_frame_blocks_are_drawn():
    """Two bursts of frames far apart: the blocks between them hold nothing, and the split
    is still balanced (each burst's blocks are shared between the halves)."""
    n = 4000
    frame = np.concatenate([np.arange(n // 2), 10**12 + np.arange(n // 2)])
    side = split_halves(pd.DataFrame({"x_nm": np.zeros(n), "y_nm": np.zeros(n), "frame": frame}),
                        block_frames=100)
    assert side[: n // 2].min() == 0 and side[: n // 2].max() == 1
    assert abs(int(side.sum()) - n // 2) <= 100


@pytest.mark.parametrize("overrides", [
    {"render.method": "gaussian"},
    {"render.supersample": 2},
    {"denoise.sigma_nm": "auto"},
])
def test_linear_settings_halves_add_up_to_the_crop(tiny_nucleus, overrides):
    """Gaussian rendering (localizations outside the crop spread into it), supersampling
    and the auto smoothing width: the halves still add up to the whole map's crop."""
    csv, _, _ = tiny_nucleus
    locs = read_localizations(csv)
    cfg = with_overrides(PipelineConfig(), overrides)
    density = render_density(locs, cfg.render)
    if cfg.denoise.sigma_nm == "auto":
        density = replace(density, meta={**density.meta, "resolution_nm": 70.0})
    denoised = denoise_density(density, cfg.denoise)
    s = int(cfg.render.supersample)
    crop = crop_density(denoised, (slice(20 * s, 70 * s), slice(15 * s, 80 * s)))
    a, b = half_density_maps(locs, crop, cfg)
    assert a.data.shape == crop.data.shape and a.origin_nm == crop.origin_nm
    np.testing.assert_allclose(a.data + b.data, crop.data, rtol=1e-4,
                               atol=1e-4 * float(crop.data.max()))


def test_nl_means_halves_are_denoised_on_their_own(tiny_nucleus):
    """A non-linear denoiser: the halves get the crop's grid, are finite and each holds
    about half the signal (each half's noise is estimated from the half)."""
    csv, _, _ = tiny_nucleus
    locs = read_localizations(csv)
    cfg = with_overrides(PipelineConfig(), {"denoise.method": "nl_means"})
    _, denoised = _maps(locs, cfg)
    crop = crop_density(denoised, (slice(20, 70), slice(15, 80)))
    a, b = half_density_maps(locs, crop, cfg)
    for h in (a, b):
        assert h.data.shape == crop.data.shape and np.isfinite(h.data).all()
        assert 0.3 < h.data.sum() / crop.data.sum() < 0.7


def test_the_pipeline_records_the_split_half_agreement(fast_run):
    """Localization inputs carry the halves to the nucleus and the gate records the figure;
    image inputs (fields) have none, and the figure is NaN."""
    cfg, _, task, res = fast_run
    assert task.halves is not None
    assert all(h.data.shape == task.denoised.data.shape for h in task.halves)
    metrics = res.stack.provenance["qc"]["metrics"]
    assert -1.0 <= metrics["split_half_r"] <= 1.0
    assert 0.0 <= metrics["attainable_r"] <= 1.0
    q = fields_quality(res.fields, res.fit, cfg)
    assert np.isnan(q.metrics["split_half_r"])


def _fast_config(**extra):
    return with_overrides(PipelineConfig(), {"fit.training.steps": 3, "fit.network.width": 16,
                                             "fit.network.fourier_features": 8,
                                             "fit.prior.regularisation": "manual", **extra})


def _run_tiny(csv, cfg):
    """(pipeline, task, result) of the tiny nucleus run through ``cfg``."""
    pipe = Pipeline(cfg)
    (task,) = [t for t in pipe.iter_prepare(read_localizations(csv)) if isinstance(t, NucleusTask)]
    return pipe, task, [e for e in pipe.iter_nucleus(task) if hasattr(e, "stack")][0]


@pytest.fixture(scope="module")
def fast_run(tiny_nucleus):
    """(config, pipeline, task, result) of the tiny nucleus with :func:`_fast_config`, run
    once for the tests that only read it."""
    cfg = _fast_config()
    return (cfg, *_run_tiny(tiny_nucleus[0], cfg))


def test_the_halves_measure_the_noise_part_of_rate_std(fast_run):
    """With halves, a single fit's rate_std is the measured noise of the estimator the fit
    stays nearest to (closed form or balance: its halves' noise or the fit's departure from
    it, the larger), the smoothing bias and the calibration's error of the absolute level;
    a closed form's sandwich is replaced; an ensemble keeps its own."""
    from chromarate.fit.uncertainty import (CALIBRATION_REL_STD, SPLIT_HALF_SMOOTHING_WINDOWS,
                                            local_rms, nearest_estimator_noise, smoothing_bias,
                                            split_half_std)
    from chromarate.halves import balance_maps, closed_form_check, half_phase_fields, half_rate_maps
    from chromarate.rate_interval import with_split_half_std

    cfg, pipe, task, res = fast_run
    fit, fields = res.fit, res.fields
    assert fit.meta["rate_std_source"] == "split_half"
    assert res.stack.provenance["qc"]["metrics"]["relative_uncertainty"] > 0
    trusted = np.asarray(fit.trusted, bool)
    assert np.isfinite(fit.rate_std[trusted]).all() and np.isnan(fit.rate_std[~trusted]).all()

    # the same figure by hand, over the test window the fit used (capped on a small nucleus)
    maps = half_rate_maps(fields, fit, cfg, task.halves, task.background.level)
    window = fit.meta["test_window_px"]
    assert 1.0 <= window <= cfg.fit.prior.test_window_um * 1000.0 / fields.pixel_size_nm
    width = SPLIT_HALF_SMOOTHING_WINDOWS * window
    noise = split_half_std(maps[0], maps[1], trusted, width)
    bias = smoothing_bias(fit.rate, trusted, window, passes=2)
    halves_interval = np.hypot(noise, bias)[trusted]
    closed = closed_form_check(fields, fit, cfg)
    half_fields = half_phase_fields(task.halves, fields.mask, cfg, task.background.level)
    estimators = [(closed, maps)]
    balance = balance_maps(fit, fields, half_fields)
    reg = fit.meta["regularisation"]
    if reg.get("rate_prior") == "balance" and reg.get("strength", 0.0) >= 1.0:
        assert balance is not None
        estimators.append(balance)
    else:
        assert balance is None
    method = fields.meta["calibration"]["method"]
    assert fit.meta["calibration_rel_std"] == CALIBRATION_REL_STD[method]
    expected = np.hypot(np.hypot(nearest_estimator_noise(fit.rate, estimators, trusted, width), bias),
                        CALIBRATION_REL_STD[method] * np.abs(fit.rate))
    np.testing.assert_allclose(fit.rate_std[trusted], expected[trusted], rtol=1e-5)
    # with the closed form given, the fit's departure from it counts where it is larger
    bare = replace(fit, rate_std=np.zeros_like(fit.rate_std),
                   meta={**fit.meta, "rate_std_source": "disagreement"})
    apart = local_rms(np.asarray(fit.rate, float) - closed, trusted, width)
    np.testing.assert_allclose(with_split_half_std(bare, maps, closed).rate_std[trusted],
                               np.hypot(np.fmax(noise, apart), bias)[trusted], rtol=1e-5)
    # a closed form's residual sandwich is replaced by the halves' interval
    residual = replace(fit, rate_std=np.full_like(fit.rate_std, 123.0),
                       meta={**fit.meta, "rate_std_source": "residual", "method": "direct"})
    again = with_split_half_std(residual, maps)
    np.testing.assert_allclose(again.rate_std[trusted], np.hypot(noise, smoothing_bias(
        fit.rate, trusted, window, passes=1))[trusted], rtol=1e-5)
    assert np.all(again.rate_std[trusted] < 123.0)
    # a PINN's own (disagreement) interval is kept where wider, replaced where narrower
    wide = replace(residual, meta={**fit.meta, "rate_std_source": "disagreement"})
    assert np.all(with_split_half_std(wide, maps).rate_std[trusted] == np.float32(123.0))
    narrow = replace(wide, rate_std=np.zeros_like(fit.rate_std))
    np.testing.assert_allclose(with_split_half_std(narrow, maps).rate_std[trusted],
                               halves_interval, rtol=1e-5)
    # where the halves give no figure, the fit's own value stays
    holes = (np.full_like(maps[0], np.nan), maps[1])
    kept = with_split_half_std(residual, holes)
    assert np.all(kept.rate_std[trusted] == np.float32(123.0))
    # an ensemble's spread, a fit without halves, and one without its window, are left alone
    ens = replace(residual, meta={**residual.meta, "rate_std_source": "bootstrap"})
    assert with_split_half_std(ens, maps) is ens
    assert with_split_half_std(residual, None) is residual
    no_window = replace(residual, meta={**residual.meta, "test_window_px": None})
    assert with_split_half_std(no_window, maps) is no_window


def test_the_halves_put_a_floor_under_the_data_chosen_prior(tiny_nucleus):
    """With the data-chosen regularisation the pipeline measures the halves' closed-form
    agreement at each prior strength, fits at a strength of at least the floor and records
    both; switched off, or with a manual prior, nothing is measured."""
    from chromarate.fit.regularise import SPLIT_HALF_STRENGTHS, settings_at_strength
    from chromarate.halves import half_phase_fields, split_half_floor

    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 3, "fit.network.width": 16,
                                            "fit.network.fourier_features": 8})
    _, task, res = _run_tiny(tiny_nucleus[0], cfg)
    reg = res.fit.meta["regularisation"]
    assert len(reg["split_half_agreement"]) == len(SPLIT_HALF_STRENGTHS)
    floor = reg["strength_floor"]
    assert floor in SPLIT_HALF_STRENGTHS and reg["strength"] >= floor
    assert reg["rate_smoothness"] >= settings_at_strength(floor)[0]

    halves = half_phase_fields(task.halves, res.fields.mask, cfg, task.background.level)
    off = with_overrides(cfg, {"fit.prior.split_half_floor": False})
    assert split_half_floor(res.fields, halves, off.fit) == (off.fit, {})
    manual = _fast_config()
    assert split_half_floor(res.fields, halves, manual.fit) == (manual.fit, {})
    assert split_half_floor(res.fields, None, cfg.fit) == (cfg.fit, {})
    # a user's floor above the halves' is kept
    high = with_overrides(cfg, {"fit.prior.strength_floor": 1.0})
    chosen, record = split_half_floor(res.fields, halves, high.fit)
    assert chosen.prior.strength_floor == 1.0 and "split_half_agreement" in record


def test_halves_that_cannot_be_mapped_are_not_tried_again(tiny_nucleus, monkeypatch):
    """When the halves' fields cannot be mapped the pipeline has no halves' maps, and the
    quality report takes that answer instead of mapping the halves a second time; called
    without maps, nucleus_quality still maps them itself."""
    import chromarate.pipeline as pl

    csv, _, _ = tiny_nucleus
    cfg = _fast_config()
    pipe = Pipeline(cfg)
    (task,) = [t for t in pipe.iter_prepare(read_localizations(csv)) if isinstance(t, NucleusTask)]
    calls = []
    real = pl.half_phase_fields

    def unmappable(*args, **kwargs):
        calls.append(1)
        return None

    monkeypatch.setattr(pl, "half_phase_fields", unmappable)
    res = [e for e in pipe.iter_nucleus(task) if hasattr(e, "stack")][0]
    assert len(calls) == 1
    missing = res.stack.provenance["qc"]["metrics"]["split_half_r"]
    assert missing is None or np.isnan(missing)
    monkeypatch.setattr(pl, "half_phase_fields", real)
    qc = pl.nucleus_quality(task, res.fields, res.fit, cfg)
    assert -1.0 <= qc.metrics["split_half_r"] <= 1.0


def test_a_fit_that_follows_the_balance_is_checked_on_the_halves_balance_maps(fast_run):
    """At full data-chosen strength with the balance prior the gate compares the halves'
    balance maps over the fit's balance window; at a lower strength, with the closed-form
    prior or with a manual prior it compares the closed-form maps (None here)."""
    import chromarate.halves as hv
    import chromarate.pipeline as pl
    from chromarate.fit.prior import balance_rate

    cfg, pipe, task, res = fast_run
    halves = hv.half_phase_fields(task.halves, res.fields.mask, cfg, task.background.level)
    reg = res.fit.meta["regularisation"]
    assert reg["balance_window_um"] > 0            # recorded by every fit with the balance
    assert res.stack.provenance["qc"]["metrics"]["split_half_source"] == "closed-form"

    def with_reg(**kw):
        return replace(res.fit, meta={**res.fit.meta, "regularisation": {**reg, **kw}})

    strong = with_reg(strength=1.0, rate_prior="balance", balance_window_um=0.3)
    a, b = hv.half_balance_maps(strong, halves)
    sigma_px = 0.3 * 1000.0 / res.fields.pixel_size_nm
    np.testing.assert_allclose(a, balance_rate(halves[0].phi_h, halves[0].phi_e,
                                               np.asarray(halves[0].mask, bool), sigma_px))
    assert not np.allclose(a, b)                   # two independent draws
    assert hv.half_balance_maps(with_reg(strength=0.8, rate_prior="balance",
                                         balance_window_um=0.3), halves) is None
    assert hv.half_balance_maps(with_reg(strength=1.0, rate_prior="closed_form",
                                         balance_window_um=0.3), halves) is None
    # full strength only because the departure kept the balance: the closed-form check and
    # interval of the strength the data chose
    raised = with_reg(strength=1.0, rate_prior="balance", balance_window_um=0.3,
                      balance_full_strength=True)
    assert hv.half_balance_maps(raised, halves) is None
    assert hv.balance_maps(raised, res.fields, halves) is None
    assert hv.gate_half_maps(raised, halves, lambda: (a, b))[1] == "closed-form"
    manual = {k: v for k, v in reg.items() if k != "strength"}
    assert hv.half_balance_maps(replace(res.fit, meta={**res.fit.meta, "regularisation": {
        **manual, "rate_prior": "balance"}}), halves) is None
    assert hv.half_balance_maps(strong, None) is None
    qc = pl.nucleus_quality(task, res.fields, strong, cfg, (a, b), split_half_source="balance")
    assert qc.metrics["split_half_source"] == "balance"
    assert qc.metrics["split_half_r"] == pytest.approx(
        np.corrcoef(a[res.fit.trusted & np.isfinite(a)], b[res.fit.trusted & np.isfinite(a)])[0, 1])
    bad = pl.nucleus_quality(task, res.fields, strong, cfg, (a, -a), split_half_source="balance")
    assert any("the balance rate maps of two halves" in r for r in bad.reasons)
    assert not any(HELD_TO_BALANCE_NOTE in r for r in bad.reasons)
    # a raised fit flagged by the closed-form halves says which map it shows
    held = pl.nucleus_quality(task, res.fields, raised, cfg, (a, -a))
    (reason,) = [r for r in held.reasons if "not reproducible" in r]
    assert "closed-form rate maps" in reason and reason.endswith(HELD_TO_BALANCE_NOTE)


def test_the_pipeline_and_fields_quality_gate_on_the_maps_the_fit_follows(fast_run, monkeypatch):
    """When the fit followed the balance at full strength (here: balance maps stood in), the
    pipeline's gate and fields_quality(halves=...) compare the halves' balance maps, say so,
    and name them in the reason; rate_std takes the balance as a second estimator, so its
    noise part can only shrink (the smaller figure of the two, pixel by pixel)."""
    import chromarate.halves as hv

    cfg, pipe, task, plain = fast_run
    rng = np.random.default_rng(0)
    noise = rng.normal(size=plain.fit.rate.shape)

    def followed(fit, fields_seq):  # the whole data: the fit's own map; the halves: flat
        if len(fields_seq) == 1:     # and anti-correlated, 1e-3 apart
            return (np.asarray(fit.rate, float),)
        return (1.5 + 1e-3 * noise, 1.5 - 1e-3 * noise)

    monkeypatch.setattr(hv, "_followed_balance", followed)
    res = [e for e in pipe.iter_nucleus(task) if hasattr(e, "stack")][0]
    qc = res.stack.provenance["qc"]
    assert qc["metrics"]["split_half_source"] == "balance"
    assert qc["metrics"]["split_half_r"] < -0.9
    assert any("the balance rate maps of two halves" in r for r in qc["reasons"])
    trusted = np.asarray(res.fit.trusted, bool)
    np.testing.assert_array_equal(res.fit.rate, plain.fit.rate)  # the same fit
    assert np.all(res.fit.rate_std[trusted] <= plain.fit.rate_std[trusted] * (1 + 1e-6))
    assert np.any(res.fit.rate_std[trusted] < 0.99 * plain.fit.rate_std[trusted])
    q = fields_quality(res.fields, res.fit, cfg, halves=task.halves,
                       background=task.background.level)
    assert q.metrics["split_half_source"] == "balance" and q.metrics["split_half_r"] < -0.9


def test_the_balance_estimator_enters_the_interval_only_with_the_closed_form(fast_run):
    """with_split_half_std with a balance estimator the fit sits on (no departure, halves
    that agree): the noise part is zero and rate_std is the smoothing bias alone; without
    the whole closed form the balance is not used (the closed-form rule stands)."""
    from chromarate.fit.uncertainty import smoothing_bias
    from chromarate.halves import closed_form_check, half_rate_maps
    from chromarate.rate_interval import with_split_half_std

    cfg, pipe, task, res = fast_run
    fit, fields = res.fit, res.fields
    trusted = np.asarray(fit.trusted, bool)
    maps = half_rate_maps(fields, fit, cfg, task.halves, task.background.level)
    bare = replace(fit, rate_std=np.zeros_like(fit.rate_std),
                   meta={**fit.meta, "rate_std_source": "disagreement"})
    closed = closed_form_check(fields, fit, cfg)
    rate = np.asarray(fit.rate, float)
    on_it = (rate, (rate, rate))
    out = with_split_half_std(bare, maps, closed, balance=on_it)
    bias = smoothing_bias(fit.rate, trusted, fit.meta["test_window_px"], passes=2)
    np.testing.assert_allclose(out.rate_std[trusted], bias[trusted], rtol=1e-5, atol=1e-7)
    without = with_split_half_std(bare, maps, None, balance=on_it)
    np.testing.assert_allclose(without.rate_std, with_split_half_std(bare, maps).rate_std)
    assert np.all(without.rate_std[trusted] >= out.rate_std[trusted])


def test_the_calibration_error_of_the_absolute_level_is_added_to_a_single_fit(fast_run):
    """The density-scale calibration's error is added to a single fit's rate_std in
    quadrature (its measured relative size times the rate, by the calibration's method);
    fields without a calibration record and an ensemble's spread are left alone."""
    from chromarate.fit.uncertainty import CALIBRATION_REL_STD
    from chromarate.rate_interval import with_calibration_std

    _, pipe, task, res = fast_run
    fit, fields = res.fit, res.fields
    trusted = np.asarray(fit.trusted, bool)
    base = replace(fit, rate_std=np.full_like(fit.rate_std, 0.05),
                   meta={k: v for k, v in fit.meta.items() if k != "calibration_rel_std"})
    for method, rel in CALIBRATION_REL_STD.items():
        calibrated = replace(fields, meta={**fields.meta, "calibration": {"method": method}})
        out = with_calibration_std(base, calibrated)
        assert out.meta["calibration_rel_std"] == rel
        np.testing.assert_allclose(out.rate_std[trusted],
                                   np.hypot(0.05, rel * np.abs(fit.rate[trusted])), rtol=1e-5)
        assert with_calibration_std(out, calibrated) is out  # added once only
    assert CALIBRATION_REL_STD["none"] > CALIBRATION_REL_STD["physics"]  # skipped: wider
    given = replace(fields, meta={k: v for k, v in fields.meta.items() if k != "calibration"})
    assert with_calibration_std(base, given) is base
    ens = replace(base, meta={**base.meta, "rate_std_source": "seeds"})
    assert with_calibration_std(ens, fields) is ens


def test_a_censored_calibration_maps_the_halves_at_the_whole_nucleus_scale(tiny_nucleus,
                                                                          monkeypatch):
    """With ``phase.calibration: physics_censored`` the pipeline maps both halves at the
    scale it calibrated for the whole nucleus, over each half's own baseline percentile
    (the censored scale moves with the noise, and a half has twice the whole's); with the
    default each half calibrates itself."""
    import chromarate.pipeline as pl

    seen = []
    real = pl.half_phase_fields

    def spy(*args, **kwargs):
        seen.append(kwargs.get("scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pl, "half_phase_fields", spy)
    # the tiny nucleus is too small to calibrate: a calibration that chose 0.83 stands in,
    # so that a scale other than the uncalibrated 1 has to reach the halves
    import chromarate.fit.calibrate as calibrate

    chosen = {}

    def fixed(fields_at, config, **kwargs):
        chosen.update(kwargs)
        return calibrate.Calibration(scale=0.83)

    monkeypatch.setattr(calibrate, "calibrate_scale", fixed)
    cfg = _fast_config(**{"phase.calibration": "physics_censored"})
    _, task, res = _run_tiny(tiny_nucleus[0], cfg)
    record = res.fields.meta["calibration"]
    assert chosen == {"censored": True, "censored_level": "at_bound", "level_share": 0.5}
    assert record["censored"] and record["method"] == "physics" and not record["skipped"]
    assert seen and all(s == 0.83 for s in seen)
    a, b = real(task.halves, res.fields.mask, cfg, task.background.level, scale=0.9)
    for h in (a, b):
        assert h.meta["calibration"] == {"method": "whole_nucleus", "scale": 0.9}
        assert h.meta["baseline_scale"] == pytest.approx(0.9 * cfg.phase.baseline_scale)
    seen.clear()
    _run_tiny(tiny_nucleus[0], _fast_config())
    assert seen and all(s is None for s in seen)


def test_a_level_factor_reaches_the_rate_its_std_and_the_provenance(tiny_nucleus, monkeypatch):
    """Where the calibration records a level factor (pinned at its clipping bound), the
    pipeline's rate and rate_std are the same fit's times that factor, and the calibration
    record in the provenance and the summary row carry it."""
    import chromarate.fit.calibrate as calibrate
    from chromarate.batch.tasks import InputJob, row_from_stack

    def fixed(factor):
        def calibrate_scale(fields_at, config, **kwargs):
            return calibrate.Calibration(scale=0.83, level_scale=0.9, level_factor=factor)
        return calibrate_scale

    cfg = _fast_config()
    monkeypatch.setattr(calibrate, "calibrate_scale", fixed(1.0))
    plain = _run_tiny(tiny_nucleus[0], cfg)[2]
    monkeypatch.setattr(calibrate, "calibrate_scale", fixed(0.9))
    levelled = _run_tiny(tiny_nucleus[0], cfg)[2]
    sel = plain.fit.trusted & np.isfinite(plain.fit.rate)
    assert np.allclose(levelled.fit.rate[sel], 0.9 * plain.fit.rate[sel], rtol=1e-5)
    assert np.allclose(levelled.fit.rate_std[sel], 0.9 * plain.fit.rate_std[sel], rtol=1e-5)
    assert levelled.fit.meta["level_factor"] == 0.9 and "level_factor" not in plain.fit.meta
    # the gate reads the reported rate
    qc_mean = [r.stack.provenance["qc"]["metrics"]["rate_mean"] for r in (plain, levelled)]
    assert qc_mean[1] == pytest.approx(0.9 * qc_mean[0], rel=1e-5)
    record = levelled.stack.provenance["phase"]["calibration"]
    assert record["level_scale"] == 0.9 and record["level_factor"] == 0.9
    assert np.allclose(levelled.stack.channels["rate"][sel], 0.9 * plain.stack.channels["rate"][sel],
                       rtol=1e-5)
    job = InputJob(path=Path(tiny_nucleus[0]), name="tiny", out_dir=Path("."), config=cfg)
    row = row_from_stack(levelled.stack, job, Path("tiny/nucleus_1.zarr"), resumed=False)
    assert row["calibration_level_factor"] == 0.9 and row["calibration_scale"] == 0.83
    plain_row = row_from_stack(plain.stack, job, Path("tiny/nucleus_1.zarr"), resumed=False)
    assert plain_row["calibration_level_factor"] == 1.0
