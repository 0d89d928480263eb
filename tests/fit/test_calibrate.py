"""Density-scale calibration and the per-nucleus choice of the rate prior."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._types import DensityMap, PhaseFields
from chromarate.calibrated_phase import calibrated_phase_fields
from chromarate.config import FitConfig, PipelineConfig
from chromarate.data import make_rate_map
from chromarate.errors import ConfigError
from chromarate.fit.calibrate import calibrate_scale, scale_misfit
from chromarate.fit.regularise import (FINE_WINDOW_UM, J_WEAK, RADIUS_SEARCH_MIN_PX, STRONG, WEAK,
                                       choose_kernel_radius, choose_regularisation,
                                       fourier_scale_for_window, regularisation_from_misfit)
from chromarate.fit.simulate import steady_state
from chromarate.phase import phase_fields


@pytest.fixture(scope="module")
def steady():
    """A 96 x 96 steady state at 20 nm for a smooth rate in [1.2, 2.0] (about 4 s)."""
    rng = np.random.default_rng(3)
    rate = make_rate_map((96, 96), pixel_size_nm=20.0, rate_range=(1.2, 2.0), length_um=1.5,
                         rng=rng)
    ss = steady_state(rate, pixel_um=0.02, tol=2e-3, seed=3)
    assert ss.converged
    yy, xx = np.mgrid[:96, :96]
    mask = (yy - 47.5) ** 2 + (xx - 47.5) ** 2 < 44**2
    phi_h = np.clip(ss.phi_d + 0.2, 0.0, None)
    return rate, phi_h, mask


def _density(phi_h, mask, scale=10.0):
    return DensityMap(np.where(mask, scale * (phi_h + 0.2), 0.0).astype(np.float32), 20.0)


def test_calibration_recovers_the_heterochromatin_scale(steady):
    """Density is c (phi_h + phi_e0) with an unknown c. The percentile baseline reads the
    euchromatin phase (which sits above phi_h = 0 at steady state) as phi_h = 0 and
    underestimates phi_h; the physics calibration finds the scale within 3 %, whatever c."""
    _, phi_h, mask = steady
    true_mean = phi_h[mask].mean()
    for c in (10.0, 3.7):
        dens = _density(phi_h, mask, c)
        plain = phase_fields(dens, mask, PipelineConfig().phase)
        cal = calibrated_phase_fields(dens, mask, PipelineConfig())
        assert abs(plain.phi_h[mask].mean() / true_mean - 1) > 0.15
        assert abs(cal.phi_h[mask].mean() / true_mean - 1) < 0.03
        info = cal.meta["calibration"]
        assert info["method"] == "physics" and info["interior_minimum"] and not info["skipped"]
        assert len(info["scales"]) == len(info["misfits"])


def test_misfit_at_the_chosen_scale_is_well_below_the_percentiles(steady):
    _, phi_h, mask = steady
    dens = _density(phi_h, mask)
    cfg = PipelineConfig()

    def at(k):
        return phase_fields(dens, mask, cfg.phase.model_copy(update={"baseline_scale": k}))

    cal = calibrate_scale(at, cfg.fit)
    true_k = cal.scale
    assert scale_misfit(at(true_k)) < 0.5 * scale_misfit(at(1.0))


def test_clipped_plateaus_do_not_count_as_steady(steady):
    """Pixels clipped at phi_max sit flat at the bottom of the heterochromatin well and look
    steady: counted, they lower the misfit of the scales that clip (k < 0.8 here); censored
    (``phase.calibration: physics_censored``) they do not. A scale that clips nothing is
    scored the same either way; the censored choice lands within 1 % of the true mean, closer
    than the default's, and its halves are mapped at the whole's scale."""
    from chromarate.halves import halves_scale

    _, phi_h, mask = steady
    dens = _density(phi_h, mask)
    cfg = PipelineConfig()

    def at(k):
        return phase_fields(dens, mask, cfg.phase.model_copy(update={"baseline_scale": k}))

    clipping, clean = at(0.75), at(0.85)
    assert clipping.meta["fraction_clipped_high"] > 0.05
    assert clean.meta["fraction_clipped_high"] == 0.0

    def misfit(f, censored):
        return scale_misfit(f, cfg.fit, blur_corrected=True, censored=censored)

    assert misfit(clipping, True) > 1.5 * misfit(clipping, False)
    assert misfit(clean, True) == pytest.approx(misfit(clean, False), rel=1e-12)
    censored = calibrated_phase_fields(dens, mask, cfg.model_copy(update={
        "phase": cfg.phase.model_copy(update={"calibration": "physics_censored"})}))
    plain = calibrated_phase_fields(dens, mask, cfg)

    def bias(f):
        return abs(f.phi_h[mask].mean() / phi_h[mask].mean() - 1)

    assert bias(censored) < min(0.01, bias(plain))
    assert censored.meta["calibration"]["censored"] and "censored" not in plain.meta["calibration"]
    assert halves_scale(censored) == censored.meta["calibration"]["scale"]
    assert halves_scale(plain) is None


def test_censoring_finds_the_clipped_pixels_through_rounding_and_keeps_some_weight():
    """phi_h is recomputed from phi_w and phi_d, so a pixel clipped at the bound can read a
    rounding error below it (here phi_max 0.86, phi_e0 0.25): it is still censored. Where
    every weighted pixel is clipped, the weight is kept as it is rather than left empty."""
    from chromarate.fit.calibrate import _censor

    mask = np.ones((4, 4), bool)
    phi_h = np.full((4, 4), 0.3)
    phi_h[0, :] = 0.86
    f = PhaseFields(phi_w=1.0 - phi_h - 0.25, phi_d=phi_h - 0.25, mask=mask, pixel_size_nm=20.0,
                    meta={"phi_max": 0.86})
    assert (f.phi_h[0] < 0.86).any()  # the rounding the tolerance is there for
    weight = np.ones((4, 4))
    kept = _censor(weight, f, 0.7)
    assert (kept[0] == 0).all() and (kept[1:] == 1).all()
    only = np.zeros((4, 4))
    only[0] = 1.0
    assert np.array_equal(_censor(only, f, 0.7), only)


def test_calibration_skips_small_nuclei(steady):
    _, phi_h, mask = steady
    small = np.zeros_like(mask)
    small[30:66, 30:66] = mask[30:66, 30:66]
    cal = calibrated_phase_fields(_density(phi_h, small), small, PipelineConfig())
    info = cal.meta["calibration"]
    assert info["method"] == "none" and "too small" in info["skipped"] and info["scale"] == 1.0


def test_calibration_off_keeps_the_configured_scale(steady):
    _, phi_h, mask = steady
    cfg = PipelineConfig(phase={"calibration": "none", "baseline_scale": 0.9})
    f = calibrated_phase_fields(_density(phi_h, mask), mask, cfg)
    assert "calibration" not in f.meta and f.meta["baseline_scale"] == 0.9


def test_regularisation_follows_the_misfit():
    assert regularisation_from_misfit(1e-4) == (WEAK[0], FINE_WINDOW_UM)
    assert regularisation_from_misfit(0.05) == WEAK
    # the window narrows only for the cleanest fields, monotonically
    windows = [regularisation_from_misfit(j)[1] for j in (0.003, 0.006, 0.01, 0.015, 0.03)]
    assert windows == sorted(windows) and windows[0] == FINE_WINDOW_UM and windows[-1] == WEAK[1]
    assert regularisation_from_misfit(0.5) == STRONG
    mids = [regularisation_from_misfit(j) for j in (0.17, 0.2, 0.25)]
    assert all(WEAK[0] < s < STRONG[0] and WEAK[1] < w < STRONG[1] for s, w in mids)
    assert [s for s, _ in mids] == sorted(s for s, _ in mids)


def test_noise_raises_the_prior(steady):
    """Clean fields get the weak prior; the same fields with noise correlated over a pixel
    or two (as rendering and denoising leave it) a much stronger one; the choice is
    recorded."""
    from scipy import ndimage as ndi

    _, phi_h, mask = steady
    rng = np.random.default_rng(0)
    chosen = []
    for noise in (0.0, 1.0):
        white = ndi.gaussian_filter(rng.standard_normal(phi_h.shape), 1.0)
        pd = phi_h - 0.2 + noise * np.ptp(phi_h[mask]) * white
        f = PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=20.0)
        cfg, record = choose_regularisation(f, FitConfig())
        assert record["criterion"] == "steadiness" and record["rate_smoothness"] == cfg.prior.rate_smoothness
        chosen.append(cfg.prior.rate_smoothness)
    assert chosen[0] == WEAK[0] and chosen[1] > 10 * chosen[0]
    clean, record = choose_regularisation(PhaseFields(phi_w=0.6 - (phi_h - 0.2), phi_d=phi_h - 0.2,
                                                      mask=mask, pixel_size_nm=20.0), FitConfig())
    assert clean.training.steps == 4 * FitConfig().training.steps
    # the rate network's frequency scale follows the chosen window and is recorded
    scale = clean.prior.rate_fourier_scale_per_um
    assert record["rate_fourier_scale_per_um"] == scale
    assert scale == pytest.approx(0.09 / clean.prior.test_window_um, rel=1e-3)
    assert scale > fourier_scale_for_window(STRONG[1])
    # a configured scale is used as given, and recorded
    fixed, record = choose_regularisation(f, FitConfig(prior=dict(rate_fourier_scale_per_um=1.7)))
    assert fixed.prior.rate_fourier_scale_per_um == record["rate_fourier_scale_per_um"] == 1.7


def test_fourier_scale_follows_the_window():
    """Narrower windows resolve finer rate structure: the scale is inversely proportional
    to the window, 0.3 cycles/um at the strong prior's 0.3 um window (the rendered nuclei
    keep the scale they were validated with); no window keeps the configured scale."""
    assert fourier_scale_for_window(STRONG[1]) == pytest.approx(0.3)
    scales = [fourier_scale_for_window(w) for w in (0.1, 0.15, 0.2, 0.3)]
    assert scales == sorted(scales, reverse=True) and scales[0] == pytest.approx(0.9)
    assert fourier_scale_for_window(None) == pytest.approx(0.3)


def test_kernel_radius_shrinks_only_while_the_fields_stay_steady(steady):
    """With 1 % white noise the noise rule asks for the largest kernel, but the fields stay
    steady (J <= J_WEAK) with the smallest one searched: the fit uses it and reports the
    rate where the noise rule's kernel is trusted. Noise correlated over a pixel or two
    (rendered data) keeps the noise rule's radius; a configured radius is used as given."""
    from scipy import ndimage as ndi

    _, phi_h, mask = steady
    rng = np.random.default_rng(1)

    def fields(noise, corr):
        n = rng.standard_normal(phi_h.shape)
        n = ndi.gaussian_filter(n, 1.0) if corr else n
        pd = phi_h - 0.2 + noise * np.ptp(phi_h[mask]) * n
        return PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=20.0)

    white = fields(0.01, False)
    kr = choose_kernel_radius(white, FitConfig())
    assert kr.radius == RADIUS_SEARCH_MIN_PX < kr.upper
    assert kr.misfit_upper < kr.misfit <= J_WEAK
    cfg, record = choose_regularisation(white, FitConfig())
    assert cfg.mollifier.radius_px == record["mollifier_radius_px"] == kr.radius
    assert record["report_radius_px"] == kr.upper and record["value"] == kr.misfit

    rendered = choose_kernel_radius(fields(1.0, True), FitConfig())
    assert rendered.radius == rendered.upper and rendered.misfit > J_WEAK

    fixed = choose_kernel_radius(white, FitConfig(mollifier=dict(radius_px=12)))
    assert fixed.radius == fixed.upper == 12.0 and np.isnan(fixed.misfit)


def test_smaller_kernel_reports_the_noise_rule_region(steady):
    """The closed form with the searched (smaller) kernel reports the rate only where the
    noise rule's kernel would: the band the smaller kernel adds near the envelope is
    scored, not reported."""
    from chromarate.fit.direct import invert_direct

    _, phi_h, mask = steady
    pd = phi_h - 0.2 + 0.01 * np.ptp(phi_h[mask]) * np.random.default_rng(2).standard_normal(mask.shape)
    f = PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=20.0)
    auto = invert_direct(f)
    assert auto.meta["mollifier_radius_px"] == RADIUS_SEARCH_MIN_PX
    upper = auto.meta["regularisation"]["report_radius_px"]
    chosen = auto.meta["regularisation"]
    manual = FitConfig(mollifier=dict(radius_px=upper),
                       prior=dict(regularisation="manual", rate_smoothness=chosen["rate_smoothness"],
                                  test_window_um=chosen["test_window_um"]))
    at_upper = invert_direct(f, manual)
    small = FitConfig(mollifier=dict(radius_px=RADIUS_SEARCH_MIN_PX), prior=manual.prior)
    unrestricted = invert_direct(f, small)
    assert auto.trusted.sum() > 16
    assert not (auto.trusted & ~at_upper.trusted).any()
    assert unrestricted.trusted.sum() > auto.trusted.sum()


@pytest.mark.parametrize("noise", [0.01, 0.05])
def test_smaller_kernel_keeps_rate_std_on_the_error_scale(steady, noise):
    """With the searched 8 px kernel, the sandwich read from its own residuals (pixel noise
    through a small fourth-order kernel) gives a rate_std over 100 times the error (median
    3.9 at 1 %, 11.7 at 5 %, against an RMS error of 0.034 / 0.105); read from the noise
    rule's terms, as the fit does, it is 4.5 / 5.7 times the error and still covers the
    nominal 90 %."""
    from chromarate.fit.direct import invert_direct, rate_terms
    from chromarate.fit.uncertainty import windowed_rate_std

    rate, phi_h, mask = steady
    pd = phi_h - 0.2 + noise * np.ptp(phi_h[mask]) * np.random.default_rng(2).standard_normal(mask.shape)
    f = PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=20.0)
    res = invert_direct(f)
    assert res.meta["mollifier_radius_px"] == RADIUS_SEARCH_MIN_PX
    t = res.trusted & np.isfinite(res.rate)
    err = np.abs(res.rate - rate)[t]
    std = res.rate_std[t]
    rms = np.sqrt(np.mean(err**2))
    assert np.isfinite(std).all()
    assert np.median(std) < 10 * rms
    assert np.mean(err <= 1.645 * std) >= 0.9
    # the sandwich from the 8 px kernel's own residuals, as before the fix
    cfg, _ = choose_regularisation(f, FitConfig())
    own = rate_terms(f, cfg)
    weight, window = own.window_weight(cfg.prior.test_window_um)
    own_std = windowed_rate_std(own.num, own.den, weight, window, res.rate)
    assert np.nanmedian(own_std[t]) > 30 * rms


def test_pinn_interval_uses_the_window_the_fit_tests_with(steady, monkeypatch):
    """The PINN's single-fit rate_std reads the noise rule's residual terms but keeps the
    test window of the fit (capped by the smaller kernel's larger trusted region), not the
    narrower one the noise rule's region would give."""
    import torch

    from chromarate.fit import direct, loop
    from chromarate.fit.chromatin_problem import _Problem
    from chromarate.fit.regularise import choose_regularisation

    _, phi_h, mask = steady
    pd = phi_h - 0.2 + 0.01 * np.ptp(phi_h[mask]) * np.random.default_rng(2).standard_normal(mask.shape)
    f = PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=20.0)
    cfg, chosen = choose_regularisation(f, FitConfig())
    assert chosen["report_radius_px"] > chosen["mollifier_radius_px"]
    prob = _Problem(f, cfg, torch.device("cpu"), torch.float64,
                    report_radius=chosen["report_radius_px"])
    seen = {}
    real = direct.windowed_rate_std

    def spy(num, den, weight, window, rate, **kw):
        seen["window"] = window
        return real(num, den, weight, window, rate, **kw)

    monkeypatch.setattr(direct, "windowed_rate_std", spy)
    rate = np.where(mask, 1.6, np.nan)
    std = loop._single_fit_rate_std(f, cfg, rate, prob.rate_trusted_np,
                                    direct.closed_form_settings(cfg, chosen, prob.radius),
                                    chosen["report_radius_px"])
    assert seen["window"] == pytest.approx(prob.window_px)
    assert np.isfinite(std[prob.rate_trusted_np]).all()


def test_explicit_prior_needs_manual_mode():
    with pytest.raises((ConfigError, ValueError), match="regularisation: manual"):
        FitConfig(prior=dict(rate_smoothness=1e-3))
    cfg = FitConfig(prior=dict(rate_smoothness=1e-3, test_window_um=0.15, regularisation="manual"))
    f = PhaseFields(phi_w=np.full((40, 40), 0.5), phi_d=np.zeros((40, 40)), mask=np.ones((40, 40), bool),
                    pixel_size_nm=20.0)
    chosen, record = choose_regularisation(f, cfg)
    assert chosen.prior.rate_smoothness == 1e-3 and chosen.prior.test_window_um == 0.15
    # a manual prior keeps the fixed scale its figures were measured with
    assert chosen.prior.rate_fourier_scale_per_um == record["rate_fourier_scale_per_um"] == 0.3
    explicit = FitConfig(prior=dict(rate_fourier_scale_per_um=1.2, regularisation="manual"))
    assert choose_regularisation(f, explicit)[0] is explicit


def test_balance_rate_is_the_windowed_ratio():
    """Where phi_h = lambda phi_e with a smooth lambda, the balance estimate returns lambda
    (up to the window's smoothing); outside the mask it takes the nearest inside value."""
    from chromarate.fit.prior import balance_rate, domain_spacing_um

    y, x = np.mgrid[:80, :80]
    lam = 1.0 + x / 80.0
    mask = (y - 40) ** 2 + (x - 40) ** 2 < 35**2
    est = balance_rate(lam * 0.2, np.full(lam.shape, 0.2), mask, 4.0)
    inner = (y - 40) ** 2 + (x - 40) ** 2 < 25**2
    assert np.max(np.abs(est - lam)[inner]) < 0.01
    assert np.isfinite(est).all()
    stripes = 0.3 + 0.2 * np.cos(2 * np.pi * x / 10.0)
    assert domain_spacing_um(stripes, mask, 0.02) == pytest.approx(0.2, rel=0.1)


def test_minimum_next_to_an_inadmissible_scale_is_finite(steady):
    """A minimum whose lower neighbour clips too much is interior (the curve rises on both
    sides) but has no parabola through admissible points: the grid point is kept, never NaN."""
    from dataclasses import replace

    _, phi_h, mask = steady
    dens = _density(phi_h, mask)
    cfg = PipelineConfig()

    def at(k):
        f = phase_fields(dens, mask, cfg.phase.model_copy(update={"baseline_scale": k}))
        return replace(f, meta={**f.meta, "fraction_clipped_high": 0.5 if k < 0.78 else 0.0})

    cal = calibrate_scale(at, cfg.fit)
    assert cal.interior_minimum and cal.scale == 0.8


def test_a_strength_floor_only_strengthens_the_prior():
    """The floor from the halves raises a weak choice to its settings and leaves a stronger
    choice alone; the settings at the ends are the weak and strong priors."""
    from chromarate.fit.regularise import settings_at_strength

    assert settings_at_strength(0.0) == WEAK and settings_at_strength(1.0) == STRONG
    assert regularisation_from_misfit(0.16, floor=1.0) == STRONG
    assert regularisation_from_misfit(0.5, floor=0.25) == STRONG
    assert regularisation_from_misfit(1e-4, floor=0.0) == (WEAK[0], FINE_WINDOW_UM)
    mid = settings_at_strength(0.5)
    assert regularisation_from_misfit(0.05, floor=0.5) == mid
    assert WEAK[0] < mid[0] < STRONG[0] and WEAK[1] < mid[1] < STRONG[1]


def test_split_half_strength_finds_where_smoothing_stops_paying(steady):
    """Two halves with independent noise: their closed-form maps agree better as the prior
    strengthens while it removes noise; the floor is the least strength within the
    tolerance of the best agreement, and the fit's record carries it."""
    from scipy import ndimage as ndi

    from chromarate.fit.regularise import (SPLIT_HALF_STRENGTHS, SPLIT_HALF_TOLERANCE,
                                           split_half_strength)

    _, phi_h, mask = steady
    rng = np.random.default_rng(5)

    def noisy(level):
        pd = phi_h - 0.2 + level * np.ptp(phi_h[mask]) * ndi.gaussian_filter(
            rng.standard_normal(phi_h.shape), 1.0)
        return PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=20.0)

    halves = (noisy(0.02), noisy(0.02))
    # a 12 px kernel leaves this small nucleus room for the windows to grow with the strength
    floor, record = split_half_strength(halves, FitConfig(), 12.0)
    agree = record["split_half_agreement"]
    assert len(agree) == len(SPLIT_HALF_STRENGTHS) and all(-1 <= a <= 1 for a in agree)
    best = max(agree)
    first = next(t for t, a in zip(SPLIT_HALF_STRENGTHS, agree) if a >= best - SPLIT_HALF_TOLERANCE)
    assert floor == first
    assert agree[-1] > agree[0] + 0.05  # smoothing the noisy halves makes them agree better
    assert 0.0 < floor < 1.0  # ... up to where it stops paying
    # the floor reaches the fit's choice and its record
    whole = noisy(0.0)
    cfg = FitConfig(prior=dict(strength_floor=floor))
    chosen, rec = choose_regularisation(whole, cfg)
    assert rec["strength_floor"] == floor and rec["strength"] >= floor
    assert chosen.prior.rate_smoothness >= choose_regularisation(whole, FitConfig())[0].prior.rate_smoothness


def test_balance_window_averages_the_domains_out():
    """The balance window is ``balance_window_spacings`` domain spacings, at least the test
    window; at the default 0.55 spacings the balance over stripe domains of phi_h (phi_e
    flat) comes back flat to 1 %, while 0.3 spacings leave the domains' pattern in it."""
    from types import SimpleNamespace

    from chromarate.config import FitConfig
    from chromarate.fit.chromatin_problem import balance_window_um
    from chromarate.fit.prior import balance_rate

    y, x = np.mgrid[:160, :160]
    mask = (y - 80) ** 2 + (x - 80) ** 2 < 75**2
    phi_h = 0.3 + 0.2 * np.cos(2 * np.pi * x / 16.0)   # domains every 16 px = 0.32 um
    phi_e = 0.25 + 0.0 * x                              # lambda 1.2 on average
    fields = SimpleNamespace(phi_h=phi_h)
    default = FitConfig().prior.balance_window_spacings
    assert default == 0.55
    w = balance_window_um(fields, mask, 0.02, 0.1, spacings=default)
    assert w == pytest.approx(0.55 * 0.32, rel=0.05)
    assert balance_window_um(fields, mask, 0.02, 0.3, spacings=default) == 0.3  # the floor
    assert balance_window_um(fields, mask, 0.02, 0.1, spacings=1.0) == pytest.approx(0.32, rel=0.05)
    inner = (y - 80) ** 2 + (x - 80) ** 2 < 40**2
    est = balance_rate(phi_h, phi_e, mask, w / 0.02)
    assert np.ptp(est[inner]) < 0.01 * np.mean(est[inner])
    narrow = balance_rate(phi_h, phi_e, mask, 0.3 * 0.32 / 0.02)
    assert np.ptp(narrow[inner]) > 0.1 * np.mean(narrow[inner])


def _designed_curves(monkeypatch, uncensored, censored):
    """Make the calibration's misfit at scale ``k`` read ``uncensored(k)``, and the misfit
    with the clipped pixels censored ``censored(k)``, keeping the real windowed rate."""
    from chromarate.fit import calibrate

    state = {}
    real_terms, real_misfit = calibrate._misfit_terms, calibrate._misfit

    def terms(fields, *a):
        out = real_terms(fields, *a)
        state.update(k=fields.meta["k"], weight=out[2])
        return out

    def misfit(num, den, weight, window, test):
        lam = real_misfit(num, den, weight, window, test)[1]
        curve = uncensored if weight is state["weight"] else censored
        return curve(state["k"]), lam

    monkeypatch.setattr(calibrate, "_misfit_terms", terms)
    monkeypatch.setattr(calibrate, "_misfit", misfit)


def _pinned_at(dens, mask, cfg, bound=0.83):
    """``fields_at`` for which every scale below ``bound`` clips half the nucleus."""
    from dataclasses import replace

    def at(k):
        f = phase_fields(dens, mask, cfg.phase.model_copy(update={"baseline_scale": k}))
        high = 0.5 if k < bound else f.meta.get("fraction_clipped_high", 0.0)
        return replace(f, meta={**f.meta, "k": k, "fraction_clipped_high": high})
    return at


def test_level_at_the_clipping_bound_comes_from_the_censored_misfit(steady, monkeypatch):
    """Where the minimum is pinned at the clipping bound, the censored misfit's own minimum
    (refined by its parabola) is the level scale, and the level factor is the windowed
    closed form's mean rate there over its mean at the chosen scale: below 1 when the
    censored scale is higher (a larger baseline, less heterochromatin, a lower rate)."""
    from chromarate.fit import calibrate

    _, phi_h, mask = steady
    dens = _density(phi_h, mask)
    cfg = PipelineConfig()
    # the uncensored misfit keeps falling into the inadmissible scales; the censored one
    # has its minimum at 0.95
    _designed_curves(monkeypatch, lambda k: k, lambda k: (k - 0.95) ** 2 + 0.01)
    at = _pinned_at(dens, mask, cfg)
    cal = calibrate_scale(at, cfg.fit, censored_level="at_bound")
    assert cal.scale == 0.85 and cal.level_scale == pytest.approx(0.95)
    radius = calibrate.resolve_radius(at(1.0), cfg.fit)[0]

    def level(k):
        num, den, weight, window, test = calibrate._misfit_terms(at(k), cfg.fit, radius, True)
        return calibrate._level(calibrate._misfit(num, den, weight, window, test)[1], weight)

    assert cal.level_factor == pytest.approx(level(0.95) / level(0.85), abs=1e-4)
    assert cal.level_factor < 0.97
    record = cal.as_dict()
    assert record["level_scale"] == cal.level_scale and len(record["misfits_censored"]) == 15
    # asked for nothing, censored throughout, or not pinned: no level record
    assert calibrate_scale(at, cfg.fit).level_scale is None
    assert calibrate_scale(at, cfg.fit, censored=True, censored_level="at_bound").level_scale is None
    # a minimum inside the admissible scans
    monkeypatch.undo()
    _designed_curves(monkeypatch, lambda k: (k - 1.0) ** 2, lambda k: (k - 0.95) ** 2)
    unpinned = calibrate_scale(at, cfg.fit, censored_level="at_bound")
    assert unpinned.scale == pytest.approx(1.0) and unpinned.level_scale is None
    always = calibrate_scale(at, cfg.fit, censored_level="always")
    assert always.scale == unpinned.scale and always.level_scale == pytest.approx(0.95)
    assert not always.pinned and cal.pinned
    assert always.level_factor == pytest.approx(level(0.95) / level(always.scale), abs=1e-4)
    assert "level_scale" not in unpinned.as_dict()
    with pytest.raises(ValueError, match="censored_level"):
        calibrate_scale(at, cfg.fit, censored_level="sometimes")
    # the share: the ratio raised to it (recorded beside the ratio), 0 leaves the level
    half = calibrate_scale(at, cfg.fit, censored_level="always", level_share=0.5)
    assert half.level_ratio == always.level_factor == always.level_ratio
    assert half.level_factor == pytest.approx(always.level_ratio ** 0.5, abs=1e-4)
    assert half.as_dict()["level_share"] == 0.5 and half.as_dict()["level_ratio"] == half.level_ratio
    assert calibrate_scale(at, cfg.fit, censored_level="always", level_share=0.0).level_factor == 1.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="level_share"):
            calibrate_scale(at, cfg.fit, censored_level="always", level_share=bad)


def _clipping(dens, mask, cfg, high=lambda k: 0.0, low=lambda k: 0.0):
    """``fields_at`` with the given clipped fractions at phi_max (``high``) and 0 (``low``)."""
    from dataclasses import replace

    def at(k):
        f = phase_fields(dens, mask, cfg.phase.model_copy(update={"baseline_scale": k}))
        return replace(f, meta={**f.meta, "k": k, "fraction_clipped_high": high(k),
                                "fraction_clipped_low": low(k)})
    return at


def test_no_bound_no_pin_and_no_level_beyond_its_limit(steady, monkeypatch):
    """Only a neighbour inadmissible for clipping at phi_max pins the minimum; with every
    scale inadmissible there is no bound; a factor beyond ``MAX_LEVEL_CHANGE`` (or a mean
    that is not positive) is recorded as skipped and not applied."""
    from chromarate.fit import calibrate

    _, phi_h, mask = steady
    dens = _density(phi_h, mask)
    cfg = PipelineConfig()
    _designed_curves(monkeypatch, lambda k: k, lambda k: (k - 0.95) ** 2 + 0.01)
    # the neighbour clips at 0, not at phi_max: stopped there, but not by the plateaus
    low = _clipping(dens, mask, cfg, low=lambda k: 0.5 if k < 0.83 else 0.0)
    cal = calibrate_scale(low, cfg.fit, censored_level="at_bound")
    assert cal.scale == 0.85 and not cal.pinned and cal.level_scale is None
    everywhere = _clipping(dens, mask, cfg, high=lambda k: 0.5)
    cal = calibrate_scale(everywhere, cfg.fit, censored_level="at_bound")
    assert cal.scale == 0.55 and cal.level_scale is None
    pinned = _clipping(dens, mask, cfg, high=lambda k: 0.5 if k < 0.83 else 0.0)
    monkeypatch.setattr(calibrate, "MAX_LEVEL_CHANGE", 0.01)
    cal = calibrate_scale(pinned, cfg.fit, censored_level="at_bound")
    assert cal.pinned and cal.level_scale == pytest.approx(0.95)
    assert cal.level_factor == 1.0 and "not applied" in cal.level_skipped
    assert cal.as_dict()["level_skipped"] == cal.level_skipped
    # the limit is on the ratio of the two means, whatever share of it would be applied;
    # the refused ratio is still recorded
    half = calibrate_scale(pinned, cfg.fit, censored_level="at_bound", level_share=0.5)
    assert half.level_factor == 1.0 and "not applied" in half.level_skipped
    assert abs(half.level_ratio - 1.0) > 0.01 and half.level_share == 0.5
    monkeypatch.setattr(calibrate, "MAX_LEVEL_CHANGE", 0.25)
    monkeypatch.setattr(calibrate, "_level", lambda lam, weight: 0.0)
    cal = calibrate_scale(pinned, cfg.fit, censored_level="at_bound")
    assert cal.level_factor == 1.0 and cal.level_skipped and cal.level_ratio == 1.0


def test_the_level_factor_scales_the_fitted_rate_once():
    """``with_level`` multiplies the rate and its ``rate_std`` by the calibration's factor
    and records it; a second call, or a record without the factor, changes nothing."""
    from chromarate._types import FitResult
    from chromarate.rate_interval import with_level

    rate = np.full((4, 4), 2.0, np.float32)
    fit = FitResult(rate=rate, phi_d_fit=rate, residual=rate, trusted=np.ones((4, 4), bool),
                    rate_std=np.full((4, 4), 0.5, np.float32))
    fields = PhaseFields(phi_w=rate, phi_d=rate, mask=np.ones((4, 4), bool), pixel_size_nm=20.0,
                         meta={"calibration": {"scale": 0.85, "level_factor": 0.9}})
    out = with_level(fit, fields)
    assert np.allclose(out.rate, 1.8) and np.allclose(out.rate_std, 0.45)
    assert out.rate.dtype == np.float32 and out.meta["level_factor"] == 0.9
    assert with_level(out, fields) is out
    plain = PhaseFields(phi_w=rate, phi_d=rate, mask=np.ones((4, 4), bool), pixel_size_nm=20.0,
                        meta={"calibration": {"scale": 0.85}})
    assert with_level(fit, plain) is fit
    for bad in (float("nan"), 0.0, -0.9):
        odd = PhaseFields(phi_w=rate, phi_d=rate, mask=np.ones((4, 4), bool), pixel_size_nm=20.0,
                          meta={"calibration": {"scale": 0.85, "level_factor": bad}})
        assert with_level(fit, odd) is fit
    no_std = FitResult(rate=rate, phi_d_fit=rate, residual=rate, trusted=np.ones((4, 4), bool))
    assert with_level(no_std, fields).rate_std is None


def test_the_pipeline_asks_for_the_level_unless_configured_off(steady, monkeypatch):
    from chromarate.fit import calibrate

    _, phi_h, mask = steady
    dens = _density(phi_h, mask)
    seen = []
    real = calibrate.calibrate_scale

    def spy(*a, **kw):
        seen.append((kw.get("censored_level"), kw.get("level_share")))
        return real(*a, **kw)

    monkeypatch.setattr(calibrate, "calibrate_scale", spy)
    calibrated_phase_fields(dens, mask, PipelineConfig())
    off = PipelineConfig(phase=dict(censored_level="never"))
    calibrated_phase_fields(dens, mask, off)
    calibrated_phase_fields(dens, mask, PipelineConfig(phase=dict(censored_level_share=1.0)))
    assert seen == [("at_bound", 0.5), ("never", 0.5), ("at_bound", 1.0)]
    with pytest.raises(ValueError):
        PipelineConfig(phase=dict(censored_level_share=1.2))
