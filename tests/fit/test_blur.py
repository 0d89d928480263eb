"""The observation-blur correction of the residual (chromarate.fit.blur) and the blur the
pipeline records for it (render, denoise, phase)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from chromarate._types import DensityMap, Localizations, PhaseFields
from chromarate.config import DenoiseConfig, FitConfig, PhaseConfig, RenderConfig
from chromarate.denoise import denoise_density
from chromarate.fit.blur import blur_correction, observation_blur_nm
from chromarate.fit.direct import invert_direct
from chromarate.fit.physics import f_prime
from chromarate.phase import phase_fields
from chromarate.render import render_density

PHI_E0 = 0.15


def _interface(width_um: float, blur_um: float, pixel_um: float = 0.002):
    """A tanh interface of phi_h along x: (blurred phi_h, G * f'(phi_h) - f'(G * phi_h))."""
    x = (np.arange(600) - 300) * pixel_um
    phi_h = np.tile(0.35 + 0.3 * np.tanh(x / width_um), (8, 1))
    sigma = blur_um / pixel_um
    blurred = ndi.gaussian_filter1d(phi_h, sigma, axis=1)
    exact = ndi.gaussian_filter1d(f_prime(phi_h, 0.7), sigma, axis=1) - f_prime(blurred, 0.7)
    return blurred, exact


@pytest.mark.parametrize("width_um, blur_um, tol", [(0.06, 0.02, 0.12), (0.04, 0.03, 0.3)])
def test_correction_is_the_blur_of_the_double_well(width_um, blur_um, tol):
    pixel = 0.002
    blurred, exact = _interface(width_um, blur_um, pixel)

    def conv(name, f):
        return np.gradient(f, pixel, axis=1 if name == "u_x" else 0)

    c = blur_correction(blurred - PHI_E0, 1.0 - blurred - PHI_E0, conv, blur_um, 0.7)
    inner = (4, slice(100, 500))
    rel = np.linalg.norm((exact - c)[inner]) / np.linalg.norm(exact[inner])
    assert rel < tol  # without the correction the error is the whole of `exact` (rel = 1)
    assert not blur_correction(blurred - PHI_E0, 1.0 - blurred - PHI_E0, conv, 0.0, 0.7).any()


def test_closed_form_recovers_the_rate_of_a_blurred_steady_state(ramp_case):
    rate, state = ramp_case
    phi_h = 0.5 * (1.0 - state.phi_w + state.phi_d)
    phi_e = 0.5 * (1.0 - state.phi_w - state.phi_d)
    mask = np.zeros(rate.shape, bool)
    mask[4:-4, 4:-4] = True
    sigma_px = 1.5  # 30 nm
    ph, pe = (ndi.gaussian_filter(a, sigma_px, mode="wrap") for a in (phi_h, phi_e))
    fields = PhaseFields(phi_w=1.0 - ph - pe, phi_d=ph - pe, mask=mask, pixel_size_nm=20.0,
                         meta={"blur_nm": 30.0})
    r = {}
    for blur in (0.0, "auto"):
        res = invert_direct(fields, FitConfig(method="direct", observation_blur_nm=blur))
        sel = res.trusted & np.isfinite(res.rate)
        r[blur] = float(np.corrcoef(res.rate[sel], rate[sel])[0, 1])
    # measured 0.871 without and 0.996 with the correction
    assert r["auto"] > 0.98
    assert r["auto"] > r[0.0] + 0.08


def test_observation_blur_setting():
    assert observation_blur_nm({"blur_nm": 25.0}, "auto") == 25.0
    assert observation_blur_nm({"blur_nm": 25.0}, 0.0) == 0.0
    assert observation_blur_nm({"blur_nm": 25.0}, 12.5) == 12.5
    for meta in ({}, None, {"blur_nm": "x"}, {"blur_nm": float("nan")}, {"blur_nm": -3.0}):
        assert observation_blur_nm(meta, "auto") == 0.0
    with pytest.raises(ValueError, match="observation_blur_nm"):
        FitConfig(observation_blur_nm=-1.0)
    assert FitConfig().observation_blur_nm == "auto"


def _locs(precision):
    rng = np.random.default_rng(0)
    n = len(precision)
    return Localizations(table=pd.DataFrame({
        "x_nm": rng.uniform(0, 1000, n), "y_nm": rng.uniform(0, 1000, n),
        "precision_nm": precision}))


def test_render_denoise_and_phase_record_the_blur():
    prec = np.resize([10.0, 20.0], 20000)
    pixel = 20.0
    hist = render_density(_locs(prec), RenderConfig(method="histogram", pixel_size_nm=pixel))
    expect = math.sqrt(np.mean(prec**2) + pixel**2 / 12)
    assert hist.meta["blur_nm"] == pytest.approx(expect)
    gauss = render_density(_locs(prec), RenderConfig(method="gaussian", pixel_size_nm=pixel))
    # the localization error and the rendered Gaussian of the same precision
    assert gauss.meta["blur_nm"] == pytest.approx(math.sqrt(2 * np.mean(prec**2) + pixel**2 / 12))
    den = denoise_density(hist, DenoiseConfig(method="gaussian", sigma_nm=20.0))
    assert den.meta["blur_nm"] == pytest.approx(math.hypot(expect, 20.0))
    tv = denoise_density(hist, DenoiseConfig(method="tv"))
    assert tv.meta["blur_nm"] == pytest.approx(expect)  # edge-keeping: not a fixed blur
    mask = np.zeros(den.data.shape, bool)
    mask[2:-2, 2:-2] = True
    fields = phase_fields(den, mask, PhaseConfig())
    assert fields.meta["blur_nm"] == pytest.approx(den.meta["blur_nm"])
    # without a precision column only the pixel is known
    table = _locs(prec).table.drop(columns="precision_nm")
    plain = render_density(Localizations(table=table), RenderConfig(method="histogram",
                                                                     pixel_size_nm=pixel))
    assert plain.meta["blur_nm"] == pytest.approx(pixel / math.sqrt(12))
    assert "blur_nm" not in phase_fields(DensityMap(den.data, pixel), mask, PhaseConfig()).meta


def test_bootstrap_replicates_keep_the_blur(ramp_case):
    import torch

    from chromarate.fit.chromatin_problem import _Problem
    from chromarate.fit.loop import _bootstrap_fields

    rate, state = ramp_case
    mask = np.zeros(rate.shape, bool)
    mask[4:-4, 4:-4] = True
    fields = PhaseFields(phi_w=np.array(state.phi_w), phi_d=np.array(state.phi_d), mask=mask,
                         pixel_size_nm=20.0, meta={"blur_nm": 30.0})
    cfg = FitConfig()
    prob = _Problem(fields, cfg, torch.device("cpu"), torch.float32)
    assert prob.blur_source is not None
    replicate = _bootstrap_fields(fields, prob, 1, cfg)
    assert replicate.meta["blur_nm"] == 30.0
    no_blur = _Problem(fields, cfg.model_copy(update={"observation_blur_nm": 0.0}),
                       torch.device("cpu"), torch.float32)
    assert no_blur.blur_source is None
