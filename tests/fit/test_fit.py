"""Recovery of known rates by the mollifier-layer PINN and the closed-form inversion.

Ground truth comes from the forward solver (see conftest.py); the fields are noise-free.
Fits are kept small (32-wide networks, tens of Adam steps, one torch thread) so that the
module runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

torch = pytest.importorskip("torch")

from chromarate._types import FitDone, FitProgress, FitResult, PhaseFields  # noqa: E402
from chromarate.config import FitConfig, MollifierConfig, NetworkConfig  # noqa: E402
from chromarate.errors import FitDivergedError, StageError  # noqa: E402
from chromarate.fit import chromatin_problem  # noqa: E402
from chromarate.fit import loop as fit_loop  # noqa: E402
from chromarate.fit.direct import invert_direct  # noqa: E402
from chromarate.fit.loop import fit_rates, iter_fit  # noqa: E402
from chromarate.fit.width import trusted_mask  # noqa: E402

from ._helpers import PIXEL_UM, disk_mask, fields_from_state, pearson  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SMALL_NET = NetworkConfig(width=32, depth=2, fourier_features=32)
TINY_NET = NetworkConfig(width=16, depth=1, fourier_features=8)


def _tiny_config(**kw) -> FitConfig:
    # regularisation as given: these tests count steps and events (a data-chosen weak prior
    # would train up to 4x the steps)
    base = dict(device="cpu", training=dict(steps=4, log_every=2), network=TINY_NET,
                mollifier=MollifierConfig(radius_px=4.0), prior=dict(regularisation="manual"))
    for key, value in kw.items():  # a group given as a dict updates the base's group
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        base[key] = {**base[key], **value} if both else value
    return FitConfig(**base)


@pytest.fixture(scope="module")
def constant_fields(constant_state):
    # off-centre disk: the mask mean phi_h / phi_e (the fit's starting rate) is ~14 % off
    return fields_from_state(constant_state, disk_mask((64, 64), (24, 40), 20), PIXEL_UM)


@pytest.fixture(scope="module")
def ramp_fields(ramp_case):
    rate, state = ramp_case
    n = rate.shape[0]
    return rate, fields_from_state(state, disk_mask(rate.shape, (n / 2, n / 2), 0.47 * n), PIXEL_UM)


# ------------------------------------------------------------------------------ recovery


def test_constant_rate_recovered_within_5_percent(constant_fields):
    """Measured: start 1.712, fitted mean 1.488 (truth 1.5) after 40 steps (seeds 0-2:
    1.488, 1.527, 1.520)."""
    cfg = FitConfig(device="cpu", training=dict(steps=150), network=SMALL_NET, seed=0)
    res = fit_rates(constant_fields, cfg)
    assert isinstance(res, FitResult)
    tr = res.trusted
    assert tr.sum() > 100 and not np.any(tr & ~constant_fields.mask)
    rate = res.rate[tr]
    assert np.all(np.isfinite(rate)) and np.all(rate >= 0)
    assert np.all(np.isnan(res.rate[~constant_fields.mask]))
    assert abs(rate.mean() - 1.5) < 0.05 * 1.5
    # the test is not won by the initial guess: the fit moved the rate towards the truth
    start = res.meta["initial_rate"]
    assert abs(start - 1.5) > 0.05 * 1.5
    assert abs(rate.mean() - 1.5) < 0.5 * abs(start - 1.5)
    assert rate.std() < 0.05  # and kept it flat
    assert res.history["loss"][-1] < res.history["loss"][0]
    assert np.all(np.isfinite(res.residual[tr]))
    assert res.phi_d_fit.shape == constant_fields.shape
    assert res.device == "cpu"


def test_ramp_rate_recovered(ramp_fields):
    """Linear ramp lambda = 1..2 over 1.6 um, 80 x 80 px at 20 nm.

    Measured (60 steps): Pearson 0.978 over the trusted pixels, regression slope 0.89,
    mean error < 1 %. With the default rate_smoothness = 1.0 the correlation stays high
    (0.99) but the slope shrinks to 0.2 (see the report), hence rate_smoothness = 0.01.
    """
    truth, fields = ramp_fields
    cfg = FitConfig(device="cpu", training=dict(steps=150), network=SMALL_NET,
                    prior=dict(rate_smoothness=0.01, regularisation="manual"), seed=0)
    res = fit_rates(fields, cfg)
    tr = res.trusted
    assert tr.sum() > 1500
    got, want = res.rate[tr].astype(np.float64), truth[tr]
    assert pearson(got, want) >= 0.9
    slope = np.polyfit(want, got, 1)[0]
    assert 0.6 < slope < 1.4
    assert abs(got.mean() - want.mean()) < 0.05 * want.mean()


def test_direct_inversion_correlates_on_noise_free_ramp(ramp_fields):
    """Closed-form inversion (no fitting) of the noise-free ramp.

    Measured (80 x 80 ramp, 20 nm pixels, interfaces 2-3 px wide; kernels K_a = D_a * K_0
    with K_0 exact to degree 6): strong form, radius 4 px: Pearson 0.64, median |error|
    0.037; weak form (default), automatic radius (4 px): Pearson 0.67, median 0.040. The
    pointwise closed form is limited by the unresolved interfaces; the PINN's smooth rate
    does better (test above).
    """
    truth, fields = ramp_fields
    strong = invert_direct(fields, FitConfig(residual_form="strong",
                                             mollifier=MollifierConfig(radius_px=4.0)))
    ok = strong.trusted & np.isfinite(strong.rate)
    assert ok.sum() > 0.95 * strong.trusted.sum()
    assert np.all(np.isnan(strong.rate[~strong.trusted]))
    assert pearson(strong.rate[ok], truth[ok]) >= 0.55
    assert np.median(np.abs(strong.rate[ok] - truth[ok])) < 0.06

    weak = invert_direct(fields, FitConfig())
    ok = weak.trusted & np.isfinite(weak.rate)
    assert weak.meta["method"] == "direct"
    assert pearson(weak.rate[ok], truth[ok]) > 0.55


def test_direct_via_fit_rates_method_switch(constant_fields):
    cfg = FitConfig(method="direct", mollifier=MollifierConfig(radius_px=4.0))
    a = fit_rates(constant_fields, cfg)
    b = invert_direct(constant_fields, cfg)
    np.testing.assert_array_equal(a.rate, b.rate)
    events = list(iter_fit(constant_fields, cfg))
    assert len(events) == 1 and isinstance(events[0], FitDone)


def test_weak_direct_inversion_on_constant_rate_state(constant_state):
    """Weak and strong closed forms agree on the constant-rate state (kernels are exact
    differences of one mollified field, so K_lap * f = K_0 * lap f). Measured at radius 6:
    |mean - 1.5| < 0.01, std 0.10 on the full 64 x 64 field (0.056 on an inner disk); the
    spread comes from interfaces only 2-3 px wide at 20 nm."""
    fields = fields_from_state(constant_state, np.ones((64, 64), bool), PIXEL_UM)
    res = invert_direct(fields, FitConfig(mollifier=MollifierConfig(radius_px=6.0)))
    rate = res.rate[res.trusted]
    assert abs(rate.mean() - 1.5) < 0.01
    assert rate.std() < 0.13


# ------------------------------------------------------------------------------ errors


def test_absurd_values_are_refused_before_fitting(constant_fields):
    """A finite but absurd value (1e20) inside the nucleus is refused up front (it would
    overflow float32 in the loss) with a StageError naming the field."""
    phi_d = constant_fields.phi_d.copy()
    phi_d[24, 40] = 1e20
    bad = PhaseFields(constant_fields.phi_w, phi_d, constant_fields.mask, PIXEL_UM * 1000)
    for call in (lambda: fit_rates(bad, _tiny_config(dtype="float32")),
                 lambda: invert_direct(bad, FitConfig())):
        with pytest.raises(StageError, match="phi_d has values outside the physical range"):
            call()


def test_fit_diverged_names_the_step(constant_fields, monkeypatch):
    """The residual turns NaN from the third loss evaluation on: the error names step 3."""
    real = chromatin_problem.chromatin_weak_operator_terms
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        terms = real(*args, **kwargs)
        if calls["n"] >= 3:
            terms = [(name, field * float("nan"), coef) for name, field, coef in terms]
        return terms

    monkeypatch.setattr(chromatin_problem, "chromatin_weak_operator_terms", poisoned)
    events = []
    with pytest.raises(FitDivergedError, match=r"step 3\b.*residual=nan"):
        for ev in iter_fit(constant_fields, _tiny_config(training=dict(steps=10, log_every=1))):
            events.append(ev)
    assert [e.step for e in events] == [1, 2]


@pytest.mark.parametrize("case", ["empty-mask", "nan-phi_d", "nan-phi_w", "inf-phi_d", "shape"])
def test_bad_fields_raise_stage_error(constant_fields, case):
    f = constant_fields
    phi_d, phi_w, mask = f.phi_d.copy(), f.phi_w.copy(), f.mask.copy()
    if case == "empty-mask":
        mask[:] = False
    elif case == "nan-phi_d":
        phi_d[24, 40] = np.nan
    elif case == "nan-phi_w":
        phi_w[24, 40] = np.nan
    elif case == "inf-phi_d":
        phi_d[30, 40] = np.inf
    else:
        mask = mask[:-1]
    bad = PhaseFields(phi_w, phi_d, mask, PIXEL_UM * 1000)
    with pytest.raises(StageError):
        fit_rates(bad, _tiny_config())
    with pytest.raises(StageError):
        fit_rates(bad, _tiny_config(method="direct"))


def test_nucleus_too_small_for_radius_raises_stage_error(constant_state):
    fields = fields_from_state(constant_state, disk_mask((64, 64), (32, 32), 7), PIXEL_UM)
    with pytest.raises(StageError, match="radius"):
        fit_rates(fields, _tiny_config(mollifier=MollifierConfig(radius_px=8.0)))


def test_nan_outside_mask_ok_for_direct_inversion(constant_state):
    """Values outside the nucleus must not reach trusted pixels (they are not validated)."""
    mask = disk_mask((64, 64), (32, 32), 28)
    fields = fields_from_state(constant_state, mask, PIXEL_UM)
    poisoned = PhaseFields(fields.phi_w, np.where(mask, fields.phi_d, np.nan), mask,
                           PIXEL_UM * 1000)
    for r in (4.0, 6.0):
        cfg = FitConfig(mollifier=MollifierConfig(radius_px=r))
        clean = invert_direct(fields, cfg)
        dirty = invert_direct(poisoned, cfg)
        tr = clean.trusted
        # where the square kernel support stays inside the mask the results are identical
        hw = int(np.ceil(r)) - 1
        inside = ndi.binary_erosion(mask, structure=np.ones((2 * hw + 1,) * 2), border_value=0)
        np.testing.assert_array_equal(dirty.rate[tr & inside], clean.rate[tr & inside])


@pytest.mark.parametrize("radius", [4.0, 6.0, 8.0])
def test_trusted_pixels_see_only_the_nucleus(radius):
    mask = disk_mask((64, 64), (32, 32), 28)
    hw = int(np.ceil(radius)) - 1
    support_inside = ndi.binary_erosion(mask, structure=np.ones((2 * hw + 1,) * 2), border_value=0)
    tr = trusted_mask(mask, radius)
    assert not np.any(tr & ~support_inside)


def test_trusted_pixels_bound_what_lies_outside():
    """Kernel-weight criterion: at a trusted pixel, values outside the nucleus move each
    operator by at most MAX_KERNEL_LEAK of its absolute weight, and it trusts every pixel the
    strict square criterion trusts (and more: the support's corners carry almost no weight)."""
    from chromarate.fit.mollifier import apply_2d_numpy, make_kernels
    from chromarate.fit.width import MAX_KERNEL_LEAK

    mask = disk_mask((96, 96), (48, 48), 40)
    ks = make_kernels("bump", 14.0, max_order=4, pixel=0.02)
    tr = trusted_mask(mask, ks)
    strict = trusted_mask(mask, ks.half_width)
    assert np.all(tr[strict]) and tr.sum() > 1.5 * strict.sum()
    rng = np.random.default_rng(0)
    inside = rng.uniform(0.0, 1.0, mask.shape)
    poisoned = np.where(mask, inside, rng.uniform(-1.0, 1.0, mask.shape))
    for name, parts in (("u", [(0, 0)]), ("lap", [(2, 0), (0, 2)]),
                        ("bilap", [(0, 4), (2, 2), (4, 0)])):
        k = ks.kernels
        weight = sum(np.abs(np.outer(k[a], k[b])).sum() * (2 if (a, b) == (2, 2) else 1)
                     for a, b in parts)
        clean = apply_2d_numpy(np.where(mask, inside, 0.0), ks, name, mode="same")
        dirty = apply_2d_numpy(poisoned, ks, name, mode="same")
        assert np.max(np.abs(dirty - clean)[tr]) <= 1.001 * MAX_KERNEL_LEAK * weight


def test_rate_is_reported_where_the_test_window_lies_on_scored_pixels(constant_fields):
    """The result's trusted pixels are residual pixels with at least half of their test
    window on the residual weight: the edge band of the residual pixels is dropped, for the
    PINN and the closed form alike, and the residual channel keeps every residual pixel."""
    from chromarate.fit.width import window_support

    res = fit_rates(constant_fields, _tiny_config())
    residual_px = np.isfinite(res.residual)
    assert res.meta["residual_pixels"] == int(residual_px.sum())
    assert not (res.trusted & ~residual_px).any()
    dropped = residual_px & ~res.trusted
    assert 0 < dropped.sum() < residual_px.sum()
    # the dropped pixels lie next to the edge of the residual pixels, the kept ones inside
    depth = ndi.distance_transform_edt(residual_px)
    assert depth[dropped].max() < depth[res.trusted].max()
    # exactly the residual pixels whose test window lies at least half on the residual weight
    prob = chromatin_problem._Problem(constant_fields, _tiny_config(), "cpu", torch.float64)
    expected = prob.trusted_np & window_support(prob.weight.numpy(), prob.window_px)
    np.testing.assert_array_equal(res.trusted, expected)
    assert depth[dropped].max() <= depth[res.trusted].min() + 1
    closed = invert_direct(constant_fields, _tiny_config())
    np.testing.assert_array_equal(closed.trusted, res.trusted)
    assert np.isnan(closed.rate[dropped]).all()
    # a window entirely on scored pixels is kept, one on the edge is not
    w = np.zeros((40, 40))
    w[5:-5, 5:-5] = 1.0
    s = window_support(w, 3.0)
    assert s[20, 20] and not s[5, 5]


# ------------------------------------------------------------------------------ events, seeds


def test_iter_fit_yields_progress_then_one_done(constant_fields):
    cfg = _tiny_config(training=dict(steps=6, log_every=2))
    events = list(iter_fit(constant_fields, cfg))
    progress = [e for e in events if isinstance(e, FitProgress)]
    done = [e for e in events if isinstance(e, FitDone)]
    assert len(done) == 1 and events[-1] is done[0]
    assert len(progress) == len(events) - 1
    assert [e.step for e in progress] == [2, 4, 6]
    assert all(e.total_steps == 6 and np.isfinite(e.loss) for e in progress)
    assert all({"data", "residual", "smooth"} <= set(e.terms) for e in progress)
    elapsed = [e.elapsed_s for e in progress]
    assert elapsed == sorted(elapsed)
    res = done[0].result
    assert res.history["step"] == [2, 4, 6]
    assert res.history["loss"] == [e.loss for e in progress]
    assert res.config["training"]["steps"] == 6 and res.config["seed"] == cfg.seed


def test_same_seed_same_rates_on_cpu(constant_fields):
    cfg = _tiny_config(seed=7)
    a = fit_rates(constant_fields, cfg)
    b = fit_rates(constant_fields, cfg)
    np.testing.assert_array_equal(a.rate, b.rate)
    np.testing.assert_array_equal(a.phi_d_fit, b.phi_d_fit)
    assert a.history["loss"] == b.history["loss"]
    c = fit_rates(constant_fields, _tiny_config(seed=8))
    assert not np.array_equal(a.rate[a.trusted], c.rate[c.trusted])


@pytest.mark.parametrize("backend", ["autograd", "finite-difference", "spectral"])
def test_comparison_backends_run_the_strong_free_fit(constant_fields, backend):
    """Every derivative backend drives the same fit (strong form, free network)."""
    cfg = _tiny_config(derivative_backend=backend, residual_form="strong",
                       network=NetworkConfig(width=16, depth=1, fourier_features=8,
                                             parameterization="free"))
    res = fit_rates(constant_fields, cfg)
    tr = res.trusted
    assert tr.sum() > 100
    assert np.all(np.isfinite(res.rate[tr])) and np.all(res.rate[tr] >= 0)
    assert res.config["derivative_backend"] == backend


@pytest.mark.parametrize("kw", [dict(residual_form="weak"),
                                dict(residual_form="strong")])  # anchored network
def test_comparison_backends_need_strong_form_and_free_network(kw):
    with pytest.raises(ValueError, match="derivative_backend"):
        FitConfig(derivative_backend="autograd", **kw)


def test_comparison_backends_score_the_same_collocation_points(constant_fields):
    """The trusted region (where the residual is scored) does not depend on the backend."""
    net = NetworkConfig(width=16, depth=1, fourier_features=8, parameterization="free")
    trusted = {b: fit_rates(constant_fields, _tiny_config(derivative_backend=b, residual_form="strong",
                                                          network=net, training=dict(steps=1))).trusted
               for b in ("mollifier", "autograd")}
    np.testing.assert_array_equal(trusted["mollifier"], trusted["autograd"])
    assert trusted["autograd"].sum() < np.asarray(constant_fields.mask).sum()


def test_pretraining_fits_the_free_field_to_the_data(constant_fields):
    """Data-only warm start: the free network's field approaches the observation, and the
    time it took is reported."""
    net = NetworkConfig(width=32, depth=2, fourier_features=16, parameterization="free")
    m = np.asarray(constant_fields.mask)

    def misfit(pre):
        res = fit_rates(constant_fields, _tiny_config(network=net, residual_form="strong",
                                                      residual_weight=0.0,
                                                      training=dict(pretrain_steps=pre, steps=1,
                                                                    learning_rate=5e-3)))
        return float(np.sqrt(np.nanmean((res.phi_d_fit - constant_fields.phi_d)[m] ** 2))), res

    cold, res0 = misfit(0)
    warm, res1 = misfit(200)
    assert "pretrain" not in res0.timings and res1.timings["pretrain"] > 0
    assert warm < 0.5 * cold


def test_pretraining_needs_a_free_network():
    with pytest.raises(ValueError, match="pretrain_steps"):
        FitConfig(training=dict(pretrain_steps=10))


def test_monitor_sees_the_current_rate_map(constant_fields):
    seen = []
    for ev in iter_fit(constant_fields, _tiny_config(training=dict(steps=6, log_every=3)),
                       monitor=lambda step, rate_map: seen.append((step, rate_map()))):
        if isinstance(ev, FitDone):
            res = ev.result
    assert [s for s, _ in seen] == [3, 6]
    m = np.asarray(constant_fields.mask)
    last = seen[-1][1]
    assert last.shape == m.shape and np.all(np.isnan(last[~m])) and np.all(last[m] > 0)
    assert not np.allclose(seen[0][1][m], last[m])
    np.testing.assert_allclose(last[m], res.rate[m], rtol=1e-5, atol=1e-6)


def test_pretraining_on_random_batches(constant_fields, monkeypatch):
    """Nuclei with more pixels than PRETRAIN_BATCH are pre-trained on random batches of that
    size, reproducibly for one seed; smaller ones on all their pixels."""
    sizes = []
    real = fit_loop._FieldNet.forward

    def spy(self, xy):
        sizes.append(xy.shape[0])
        return real(self, xy)

    monkeypatch.setattr(fit_loop._FieldNet, "forward", spy)
    net = NetworkConfig(width=16, depth=1, fourier_features=8, parameterization="free")
    cfg = _tiny_config(network=net, residual_form="strong",
                       training=dict(pretrain_steps=5, steps=1))
    n_mask = int(np.asarray(constant_fields.mask).sum())
    fit_rates(constant_fields, cfg)
    assert sizes[:5] == [n_mask] * 5
    monkeypatch.setattr(fit_loop, "PRETRAIN_BATCH", 200)
    sizes.clear()
    a = fit_rates(constant_fields, cfg)
    assert sizes[:5] == [200] * 5
    b = fit_rates(constant_fields, cfg)
    np.testing.assert_array_equal(a.phi_d_fit, b.phi_d_fit)



def test_rate_std_carries_the_smoothing_bias(ramp_fields, monkeypatch):
    """The closed form's and the PINN's rate_std carry the smoothing bias in quadrature
    (the closed form's on top of the residual sandwich): with the bias term forced to
    zero the closed form's falls to the sandwich, and with a bias term no pixel's interval
    is narrower than the bias itself."""
    from chromarate.fit import direct as fit_direct
    from chromarate.fit import uncertainty

    _, fields = ramp_fields
    cfg = _tiny_config()
    seen = {}
    real = uncertainty.smoothing_bias

    def spy(rate, support, sigma_px, *, passes=1):
        seen[passes] = b = real(rate, support, sigma_px, passes=passes)
        return b

    for mod in (fit_direct, fit_loop):
        monkeypatch.setattr(mod, "smoothing_bias", spy)
    closed = invert_direct(fields, cfg)
    pinn = fit_rates(fields, cfg)
    assert set(seen) == {1, 2}  # once smoothed (closed form), twice (PINN)
    for res in (closed, pinn):
        tr = res.trusted & np.isfinite(res.rate_std)
        assert tr.any()
    b1 = seen[1][closed.trusted]
    assert np.all(closed.rate_std[closed.trusted] >= b1.astype(np.float32) - 1e-6)
    for mod in (fit_direct, fit_loop):
        monkeypatch.setattr(mod, "smoothing_bias",
                            lambda rate, support, sigma_px, *, passes=1: np.zeros(np.shape(rate)))
    no_bias = invert_direct(fields, cfg)
    grew = closed.rate_std[closed.trusted] > no_bias.rate_std[closed.trusted] + 1e-7
    assert grew.any()  # the ramp's edges curve: the bias term is not zero everywhere


def test_a_single_pinn_fit_measures_its_noise_by_its_disagreement_with_the_closed_form(
        ramp_fields, monkeypatch):
    """Without an ensemble the PINN's rate_std is (bias forced to zero) the local RMS of its
    difference from the closed form with the settings it chose, over two test windows."""
    from chromarate.fit.direct import closed_form_settings, rate_terms
    from chromarate.fit.uncertainty import SPLIT_HALF_SMOOTHING_WINDOWS, local_rms

    _, fields = ramp_fields
    cfg = _tiny_config()
    monkeypatch.setattr(fit_loop, "smoothing_bias",
                        lambda rate, support, sigma_px, *, passes=1: np.zeros(np.shape(rate)))
    pinn = fit_rates(fields, cfg)
    assert pinn.meta["rate_std_source"] == "disagreement"
    chosen = pinn.meta["regularisation"]
    closed_cfg = closed_form_settings(cfg, chosen, pinn.meta["mollifier_radius_px"])
    assert closed_cfg.prior.test_window_um == chosen["test_window_um"]
    closed = invert_direct(fields, closed_cfg).rate
    # the test window in pixels, capped on a small nucleus as the fit caps it
    window = rate_terms(fields, closed_cfg).window_weight(chosen["test_window_um"])[1]
    want = local_rms(pinn.rate.astype(np.float64) - closed, pinn.trusted,
                     SPLIT_HALF_SMOOTHING_WINDOWS * window)
    tr = pinn.trusted & np.isfinite(want)
    assert tr.sum() > 10
    np.testing.assert_allclose(pinn.rate_std[tr], want[tr], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ rate prior


def test_auto_rate_prior_follows_the_agreement_of_balance_and_closed_form(ramp_fields,
                                                                          monkeypatch):
    """``rate_prior="auto"`` keeps the balance estimate when it correlates with the closed
    form and pulls towards the closed form when it does not; the choice and the
    correlation are recorded in the fit's regularisation record."""
    import torch

    from chromarate.fit.direct import closed_form_prior
    from chromarate.fit.prior import balance_rate

    _, fields = ramp_fields
    cfg = _tiny_config(prior=dict(rate_prior="auto", rate_smoothness=0.1, test_window_um=0.15))
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64)
    assert prob.rate_prior == ("balance" if prob.prior_agreement >= 0 else "closed_form")
    closed, reported = closed_form_prior(fields, cfg, prob.radius)
    assert np.isfinite(closed).all() and reported.any()
    # a disagreeing balance estimate: the closed form becomes the prior
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: -0.3)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64)
    assert prob.rate_prior == "closed_form" and prob.prior_agreement == -0.3
    np.testing.assert_allclose(prob.lam_b.numpy(), closed)
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: 0.4)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64)
    assert prob.rate_prior == "balance"
    bal = balance_rate(fields.phi_h, fields.phi_e, np.asarray(fields.mask, bool),
                       prob.balance_sigma_um / prob.pixel_um)
    np.testing.assert_allclose(prob.lam_b.numpy(), bal)
    # the fit records what it used; a fixed prior records no agreement
    fit = fit_rates(fields, cfg)
    assert fit.meta["regularisation"]["rate_prior"] == "balance"
    assert fit.meta["regularisation"]["prior_agreement"] == 0.4
    fixed = fit_rates(fields, cfg.model_copy(update={"prior": cfg.prior.model_copy(
        update={"rate_prior": "closed_form"})}))
    assert fixed.meta["regularisation"]["rate_prior"] == "closed_form"
    assert fixed.meta["regularisation"]["prior_agreement"] is None
    flat = fit_rates(fields, cfg.model_copy(update={"prior": cfg.prior.model_copy(
        update={"rate_prior": "flat"})}))
    assert flat.meta["regularisation"]["rate_prior"] == "flat"


def test_auto_rate_prior_with_halves_follows_their_shared_departure(ramp_fields, monkeypatch):
    """With two halves, ``auto`` decides by the reproducible departure of the closed form
    from the balance (not by the agreement's sign): the closed form at and above
    ``DEPARTURE_RATIO``, the balance below; the figure is recorded."""
    from dataclasses import replace

    import torch

    from chromarate.fit.direct import closed_form_prior
    from chromarate.fit.prior import balance_rate, departure_ratio, shared_departure

    rng = np.random.default_rng(1)
    _, fields = ramp_fields
    noisy = [replace(fields, phi_d=fields.phi_d + 0.002 * rng.standard_normal(fields.shape))
             for _ in range(2)]
    cfg = _tiny_config(prior=dict(rate_prior="auto", rate_smoothness=0.1, test_window_um=0.15))
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=tuple(noisy))
    # the recorded figure is departure_ratio of the halves' own maps with the fit's settings
    closed = [closed_form_prior(h, cfg, prob.radius) for h in noisy]
    where = closed_form_prior(fields, cfg, prob.radius)[1] & closed[0][1] & closed[1][1]
    sigma = prob.balance_sigma_um / prob.pixel_um
    bal = [balance_rate(h.phi_h, h.phi_e, np.asarray(h.mask, bool), sigma) for h in noisy]
    pairs = ((bal[0], bal[1]), (closed[0][0], closed[1][0]), where)
    want = departure_ratio(*pairs)
    assert np.isfinite(want) and prob.prior_departure == pytest.approx(want)
    # and the shared departure in units of the rate, from the same maps
    shared = shared_departure(*pairs)
    assert np.isfinite(shared) and prob.prior_shared_departure == pytest.approx(shared)
    assert prob.rate_prior == ("closed_form" if want >= chromatin_problem.DEPARTURE_RATIO
                               or shared >= cfg.prior.shared_departure_limit else "balance")
    # the agreement no longer decides where halves exist (the ratio does here: the shared
    # departure is kept below its limit)
    monkeypatch.setattr(chromatin_problem, "shared_departure", lambda *a: 0.0)
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: -0.5)
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 1.0)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=tuple(noisy))
    assert prob.rate_prior == "balance" and prob.prior_departure == 1.0
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: 0.5)
    monkeypatch.setattr(chromatin_problem, "departure_ratio",
                        lambda *a: chromatin_problem.DEPARTURE_RATIO)
    fit = fit_rates(fields, cfg, halves=tuple(noisy))
    assert fit.meta["regularisation"]["rate_prior"] == "closed_form"
    assert fit.meta["regularisation"]["prior_departure"] == chromatin_problem.DEPARTURE_RATIO
    # a figure that cannot be computed falls back to the agreement's sign
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: float("nan"))
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: -0.5)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=tuple(noisy))
    assert prob.rate_prior == "closed_form" and prob.prior_departure is None
    # fields whose density scale was not calibrated are not read by the departure rule
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 100.0)
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: 0.5)
    uncal = replace(fields, meta={**fields.meta, "calibration": {"method": "none"}})
    prob = chromatin_problem._Problem(uncal, cfg, "cpu", torch.float64, halves=tuple(noisy))
    assert prob.rate_prior == "balance" and prob.prior_departure is None
    cal = replace(fields, meta={**fields.meta, "calibration": {"method": "physics"}})
    prob = chromatin_problem._Problem(cal, cfg, "cpu", torch.float64, halves=tuple(noisy))
    assert prob.rate_prior == "closed_form" and prob.prior_departure == 100.0


def test_balance_kept_by_the_departure_is_fitted_at_full_strength(ramp_fields, monkeypatch):
    """Where the halves' departure keeps the balance prior on calibrated fields, the fit
    runs at the strong end with ``balance_kept_smoothness`` (recorded); the switch off, at
    the strength the data gave; the closed form and uncalibrated fields keep the chosen
    strength."""
    from dataclasses import replace

    from chromarate.fit.regularise import (STRONG, choose_regularisation, hold_to_balance,
                                           raise_strength_floor)

    rng = np.random.default_rng(2)
    _, fields = ramp_fields
    fields = replace(fields, meta={**fields.meta, "calibration": {"method": "physics"}})
    halves = tuple(replace(fields, phi_d=fields.phi_d + 0.002 * rng.standard_normal(fields.shape))
                   for _ in range(2))
    # pixel_noise: a data-chosen prior without the radius search (fast); these clean fields
    # get a weak one
    cfg = _tiny_config(prior=dict(regularisation="pixel_noise", rate_prior="auto"))
    chosen, record = choose_regularisation(fields, cfg)
    assert record["strength"] < 1.0
    raised, raised_record = raise_strength_floor(cfg, chosen, record, 1.0)
    assert (raised_record["strength"], raised_record["strength_floor"]) == (1.0, 1.0)
    assert (raised_record["rate_smoothness"], raised_record["test_window_um"]) == STRONG
    assert raised.training.steps == cfg.training.steps == raised_record["steps"]
    assert raised.prior.test_window_um == STRONG[1]
    assert raised.mollifier.radius_px == chosen.mollifier.radius_px
    assert raised_record["value"] == record["value"]
    manual = _tiny_config()
    assert raise_strength_floor(manual, *choose_regularisation(fields, manual), 1.0)[1][
        "criterion"] == "manual"
    # held to the balance: the strong end with its own smoothness weight; a strength the
    # data chose at 1 is not "raised"
    held, held_record = hold_to_balance(cfg, chosen, record, 7.0)
    assert held.prior.rate_smoothness == held_record["rate_smoothness"] == 7.0
    assert held_record["balance_full_strength"] is True and held_record["strength"] == 1.0
    assert held.prior.test_window_um == STRONG[1]
    _, kept = hold_to_balance(cfg, raised, raised_record, 7.0)
    assert kept["balance_full_strength"] is False and kept["rate_smoothness"] == 7.0
    assert hold_to_balance(manual, *choose_regularisation(fields, manual), 7.0)[1][
        "criterion"] == "manual"

    # the ratio decides here: the shared departure stays below its limit
    monkeypatch.setattr(chromatin_problem, "shared_departure", lambda *a: 0.0)
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 1.0)
    fit = fit_rates(fields, cfg, halves=halves)
    reg = fit.meta["regularisation"]
    assert reg["rate_prior"] == "balance" and reg["prior_departure"] == 1.0
    assert reg["prior_shared_departure"] == 0.0  # kept through the rebuilt problem
    assert reg["balance_full_strength"] is True
    assert (reg["strength"], reg["strength_floor"], reg["test_window_um"]) == (1.0, 1.0, STRONG[1])
    assert reg["rate_smoothness"] == cfg.prior.balance_kept_smoothness == 10.0
    assert len(fit.history["step"]) and fit.history["step"][-1] == cfg.training.steps
    off = cfg.model_copy(update={"prior": cfg.prior.model_copy(
        update={"balance_full_strength": False})})
    reg = fit_rates(fields, off, halves=halves).meta["regularisation"]
    assert reg["strength"] == record["strength"] and "balance_full_strength" not in reg
    # at the strong end already: not raised, the loss weighs the smoothness 10
    strong = cfg.model_copy(update={"prior": cfg.prior.model_copy(update={"strength_floor": 1.0})})
    held_fit = fit_rates(fields, strong, halves=halves)
    reg = held_fit.meta["regularisation"]
    assert reg["balance_full_strength"] is False and reg["rate_smoothness"] == 10.0
    assert held_fit.config["prior"]["rate_smoothness"] == 10.0
    plain = fit_rates(fields, strong.model_copy(update={"prior": strong.prior.model_copy(
        update={"balance_full_strength": False})}), halves=halves)
    assert plain.meta["regularisation"]["rate_smoothness"] == STRONG[0]
    assert held_fit.meta["final_loss"] != plain.meta["final_loss"]
    # the closed form, and fields the departure rule does not read, keep the strength
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 100.0)
    reg = fit_rates(fields, cfg, halves=halves).meta["regularisation"]
    assert reg["rate_prior"] == "closed_form" and reg["strength"] == record["strength"]
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 1.0)
    uncal = replace(fields, meta={**fields.meta, "calibration": {"method": "none"}})
    reg = fit_rates(uncal, cfg, halves=halves).meta["regularisation"]
    assert reg["prior_departure"] is None and reg["strength"] == record["strength"]


def test_departure_ratio_reads_shared_structure_not_independent_noise():
    """The figure keeps what both halves share: independent noise in the closed forms
    does not raise it, structure the balance does not see does, in proportion."""
    from chromarate.fit.prior import departure_ratio

    rng = np.random.default_rng(0)
    n = 4000
    smooth = np.linspace(1.0, 2.0, n)
    bal = (smooth, smooth)
    where = np.ones(n, bool)
    noise_only = [smooth + 0.5 * rng.standard_normal(n) for _ in range(2)]
    assert departure_ratio(bal, tuple(noise_only), where) < 0.1 * 0.5 / smooth.std()
    domains = np.sign(np.sin(np.arange(n) / 7.0))
    for amp in (0.3, 1.2):
        closed = tuple(smooth + amp * domains + 0.5 * rng.standard_normal(n) for _ in range(2))
        assert departure_ratio(bal, closed, where) == pytest.approx(amp / smooth.std(), rel=0.1)
    assert np.isnan(departure_ratio((smooth * 0 + 1, smooth * 0 + 1), closed, where))
    assert np.isnan(departure_ratio(bal, closed, np.zeros(n, bool)))


def test_the_balance_prior_uses_its_window_and_auto_tests_over_one_spacing(ramp_fields, monkeypatch):
    """The prior map is the balance over ``balance_window_spacings`` domain spacings (the
    fit records that window); ``auto`` correlates the balance over one spacing with the
    closed form (the no-flux test), not the narrower prior map."""
    import torch

    from chromarate.fit.prior import balance_rate

    _, fields = ramp_fields
    mask = np.asarray(fields.mask, bool)
    monkeypatch.setattr(chromatin_problem, "domain_spacing_um", lambda *a: 1.0)
    tested = []

    def agreement(balance, closed, where):
        tested.append(np.array(balance))
        return 0.5

    monkeypatch.setattr(chromatin_problem, "prior_agreement", agreement)
    cfg = _tiny_config(prior=dict(rate_prior="auto", rate_smoothness=0.1, test_window_um=0.15))
    assert cfg.prior.balance_window_spacings == 0.55
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64)
    assert prob.rate_prior == "balance" and prob.balance_sigma_um == pytest.approx(0.55)
    at = {w: balance_rate(fields.phi_h, fields.phi_e, mask, w / prob.pixel_um) for w in (0.55, 1.0)}
    np.testing.assert_allclose(prob.lam_b.numpy(), at[0.55])
    (first,) = tested
    np.testing.assert_allclose(first, at[1.0])
    assert not np.allclose(at[0.55], at[1.0])
    wide = cfg.model_copy(update={"prior": cfg.prior.model_copy(update={"balance_window_spacings": 2.0})})
    assert chromatin_problem._Problem(fields, wide, "cpu", torch.float64).balance_sigma_um == 2.0
    assert fit_rates(fields, cfg).meta["regularisation"]["balance_window_um"] == pytest.approx(0.55)


def test_bootstrap_members_keep_the_first_members_rate_prior(ramp_fields, monkeypatch):
    """Members of a bootstrap ensemble fit resampled fields with the prior the first member
    chose (re-choosing per member would mix two estimators in rate_std)."""
    _, fields = ramp_fields
    seen = []
    original = chromatin_problem._Problem.__init__

    def spy(self, f, config, *a, **kw):
        seen.append(config.prior.rate_prior)
        original(self, f, config, *a, **kw)

    monkeypatch.setattr(chromatin_problem._Problem, "__init__", spy)
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: -0.3)
    cfg = _tiny_config(prior=dict(rate_prior="auto", rate_smoothness=0.1, test_window_um=0.15),
                       uncertainty=dict(ensemble=3, method="bootstrap"))
    fit = fit_rates(fields, cfg)
    assert seen == ["auto", "closed_form", "closed_form"]
    assert fit.meta["regularisation"]["rate_prior"] == "closed_form"


def test_shared_departure_is_the_shared_structure_in_units_of_the_rate():
    """The relative figure keeps what both halves share, as a fraction of the rate's level:
    independent noise leaves it near 0, shared domains of amplitude ``a`` read ``a /
    mean``, and, unlike the ratio, a balance estimate that varies more does not shrink it."""
    from chromarate.fit.prior import departure_ratio, shared_departure

    rng = np.random.default_rng(3)
    n = 4000
    where = np.ones(n, bool)
    domains = np.sign(np.sin(np.arange(n) / 7.0))
    for ramp in (0.5, 2.0):  # the balance estimate's variation
        smooth = np.linspace(2.0 - ramp / 2, 2.0 + ramp / 2, n)  # mean 2
        bal = (smooth, smooth)
        noise_only = tuple(smooth + 0.5 * rng.standard_normal(n) for _ in range(2))
        assert shared_departure(bal, noise_only, where) < 0.05
        closed = tuple(smooth + 0.4 * domains + 0.5 * rng.standard_normal(n) for _ in range(2))
        assert shared_departure(bal, closed, where) == pytest.approx(0.4 / 2.0, rel=0.1)
        ratios = departure_ratio(bal, closed, where)
        assert ratios == pytest.approx(0.4 / smooth.std(), rel=0.1)
    flat = (np.ones(n), np.ones(n))
    assert np.isnan(shared_departure(flat, closed, where))
    assert np.isnan(shared_departure(bal, closed, np.zeros(n, bool)))
    assert np.isnan(shared_departure((smooth - 5.0, smooth - 5.0), closed, where))


def test_shared_departure_limit_takes_the_closed_form_whatever_the_ratio(ramp_fields,
                                                                         monkeypatch):
    """Where the halves' shared departure reaches ``shared_departure_limit`` the closed form
    is the prior though the ratio keeps the balance, and the record says the two figures
    disagreed (``prior_ambiguous``); below it, or with the limit off, the ratio alone
    decides, and the figure is recorded either way (the figure itself:
    ``test_auto_rate_prior_with_halves_follows_their_shared_departure``)."""
    from dataclasses import replace

    import torch

    rng = np.random.default_rng(1)
    _, fields = ramp_fields
    noisy = tuple(replace(fields, phi_d=fields.phi_d + 0.002 * rng.standard_normal(fields.shape))
                  for _ in range(2))
    cfg = _tiny_config(prior=dict(rate_prior="auto", rate_smoothness=0.1, test_window_um=0.15))
    assert cfg.prior.shared_departure_limit == 0.145  # on by default
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 1.0)
    monkeypatch.setattr(chromatin_problem, "shared_departure", lambda *a: 0.2)
    off = cfg.model_copy(update={"prior": cfg.prior.model_copy(
        update={"shared_departure_limit": None})})
    prob = chromatin_problem._Problem(fields, off, "cpu", torch.float64, halves=noisy)
    assert prob.rate_prior == "balance" and prob.prior_shared_departure == 0.2
    assert not prob.prior_ambiguous
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=noisy)
    assert prob.rate_prior == "closed_form" and prob.prior_ambiguous
    reg = fit_rates(fields, cfg, halves=noisy).meta["regularisation"]
    assert reg["rate_prior"] == "closed_form" and reg["prior_ambiguous"] is True
    assert (reg["prior_departure"], reg["prior_shared_departure"]) == (1.0, 0.2)
    # at the limit itself
    monkeypatch.setattr(chromatin_problem, "shared_departure", lambda *a: 0.145)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=noisy)
    assert prob.rate_prior == "closed_form" and prob.prior_ambiguous
    # the ratio alone takes the closed form: no disagreement
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 5.0)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=noisy)
    assert prob.rate_prior == "closed_form" and not prob.prior_ambiguous
    monkeypatch.setattr(chromatin_problem, "departure_ratio", lambda *a: 1.0)
    monkeypatch.setattr(chromatin_problem, "shared_departure", lambda *a: 0.14)
    prob = chromatin_problem._Problem(fields, cfg, "cpu", torch.float64, halves=noisy)
    assert prob.rate_prior == "balance" and not prob.prior_ambiguous
    reg = fit_rates(fields, cfg, halves=noisy).meta["regularisation"]
    assert reg["prior_shared_departure"] == 0.14 and reg["rate_prior"] == "balance"
    assert "prior_ambiguous" not in reg


def test_smoothness_floor_from_the_rate_variation(ramp_fields, monkeypatch):
    """A closed form that varies little raises the data-chosen penalty to the floor its
    variation sets (recorded, and the loss reads the raised weight); a rate that varies
    much, ``rate_variation_reference: null``, a balance prior without a closed form and a
    manual choice leave it as chosen."""
    from chromarate.fit.regularise import (VARIATION_FLOOR_MAX_FACTOR, WEAK,
                                           choose_regularisation, raise_smoothness_floor,
                                           variation_smoothness_floor)

    assert WEAK[0] == 0.001 and VARIATION_FLOOR_MAX_FACTOR == 10.0
    assert variation_smoothness_floor(0.08, 0.08) == 0.001
    assert variation_smoothness_floor(0.04, 0.08) == pytest.approx(0.004)
    assert variation_smoothness_floor(0.02, 0.08) == 0.01  # capped
    assert variation_smoothness_floor(0.0, 0.08) == 0.01
    assert variation_smoothness_floor(float("nan"), 0.08) == 0.0
    from dataclasses import replace

    from chromarate.fit.regularise import J_FINE

    _, clean = ramp_fields
    # 3 % white noise: J above J_FINE, still the weak end (pixel_noise: no radius search)
    noise = 0.03 * np.ptp(clean.phi_d[clean.mask]) * np.random.default_rng(5).standard_normal(clean.shape)
    fields = replace(clean, phi_d=clean.phi_d + noise)
    cfg = _tiny_config(prior=dict(regularisation="pixel_noise", rate_prior="auto"))
    chosen, record = choose_regularisation(fields, cfg)
    assert record["rate_smoothness"] == WEAK[0] and record["misfit"] > J_FINE
    # the cleanest fields keep the weak end whatever the variation
    assert raise_smoothness_floor(chosen, {**record, "misfit": J_FINE}, 0.01)[1][
        "smoothness_floor"] == 0.0
    raised, rec = raise_smoothness_floor(chosen, record, 0.04)
    assert raised.prior.rate_smoothness == rec["rate_smoothness"] == rec["smoothness_floor"] == 0.004
    assert (rec["rate_variation"], rec["strength"], rec["test_window_um"]) == (
        0.04, record["strength"], record["test_window_um"])
    same, rec = raise_smoothness_floor(chosen, record, 0.3)
    assert same.prior.rate_smoothness == WEAK[0] and rec["smoothness_floor"] == WEAK[0]
    off = chosen.model_copy(update={"prior": chosen.prior.model_copy(
        update={"rate_variation_reference": None})})
    assert raise_smoothness_floor(off, record, 0.01)[0].prior.rate_smoothness == WEAK[0]
    manual = _tiny_config()
    m_cfg, m_rec = choose_regularisation(fields, manual)
    assert raise_smoothness_floor(m_cfg, m_rec, 0.01) == (m_cfg, m_rec)

    # through the fit: the closed form's variation read on the reported pixels
    seen = []

    def variation(rate, where):
        seen.append(int(np.sum(where)))
        return 0.02

    monkeypatch.setattr(chromatin_problem, "rate_variation", variation)
    fit = fit_rates(fields, cfg)
    reg = fit.meta["regularisation"]
    assert seen and seen[0] > 0
    assert reg["rate_variation"] == 0.02 and reg["rate_smoothness"] == reg["smoothness_floor"] == 0.01
    assert fit.config["prior"]["rate_smoothness"] == 0.01
    assert reg["balance_window_um"] is not None  # recorded through the rebuilt problem
    # on the closed-form prior too, whose rebuilt problem makes no balance map
    monkeypatch.setattr(chromatin_problem, "prior_agreement", lambda *a: -0.5)
    cf = fit_rates(fields, cfg).meta["regularisation"]
    assert cf["rate_prior"] == "closed_form" and cf["rate_smoothness"] == 0.01
    assert cf["balance_window_um"] == reg["balance_window_um"]
    monkeypatch.undo()
    # the noise-free fields (J at most J_FINE) keep the weak end through the fit as well
    reg = fit_rates(clean, cfg).meta["regularisation"]
    assert reg["misfit"] <= J_FINE
    assert reg["smoothness_floor"] == 0.0 and reg["rate_smoothness"] == 0.001
    plain = fit_rates(fields, cfg.model_copy(update={"prior": cfg.prior.model_copy(
        update={"rate_variation_reference": None})}))
    assert plain.meta["regularisation"]["rate_smoothness"] == WEAK[0]
    assert plain.meta["regularisation"]["smoothness_floor"] == 0.0
    assert plain.meta["final_loss"] != fit.meta["final_loss"]
    balance = fit_rates(fields, cfg.model_copy(update={"prior": cfg.prior.model_copy(
        update={"rate_prior": "balance"})}))
    assert "smoothness_floor" not in balance.meta["regularisation"]
