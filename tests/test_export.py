"""Tests of chromarate.export.build_result_stack."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from chromarate._types import DensityMap, FitResult, PhaseFields, ResultStack
from chromarate.errors import ChromarateError, StageError
from chromarate.export import CHANNELS, SCHEMA_VERSION, TRUSTED_LABEL, build_result_stack, json_safe

SHAPE = (40, 50)
PIXEL = 20.0
ORIGIN = (100.0, 260.0)


def _inputs(*, rate_std=True, shape=SHAPE):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = ((yy - shape[0] / 2) / (shape[0] / 2.5)) ** 2 + ((xx - shape[1] / 2) / (shape[1] / 2.5)) ** 2 < 1
    density = rng.poisson(5.0, shape).astype(np.float32)
    denoised = np.full(shape, 5.0, np.float32)
    phi_d = rng.uniform(-0.2, 0.5, shape)  # float64 on purpose
    phi_w = 0.5 - 0.5 * phi_d
    rate = np.where(mask, 1.0 + 0.01 * xx, np.nan)
    fields = PhaseFields(phi_w=phi_w, phi_d=phi_d, mask=mask, pixel_size_nm=PIXEL,
                         origin_nm=ORIGIN, meta={"phi_e0": 0.2})
    fit = FitResult(
        rate=rate,
        phi_d_fit=phi_d + 0.01,
        residual=np.where(mask, 1e-3, np.nan),
        trusted=mask,
        rate_std=(0.1 * np.ones(shape)) if rate_std else None,
        history={"loss": [np.float32(2.0), np.float64(0.5)], "data": [1.0, 0.25],
                 "step": [np.int64(0), np.int64(25)]},
        timings={"train": np.float64(1.25), "total": 1.5},
        device="cpu",
        config={"steps": 25, "seed": np.int64(3)},
        meta={"radius_px": np.float32(6.5), "center": np.array([1.0, 2.0]),
              "big": np.zeros((100, 100)), "nan": float("nan"), "where": Path("/a/b"),
              "shape": (3, 4)},
    )
    dmap = DensityMap(density, PIXEL, ORIGIN)
    dn = DensityMap(denoised, PIXEL, ORIGIN)
    return dict(density=dmap, denoised=dn, fields=fields, fit=fit,
                provenance={"input": {"path": "x.csv", "sha256": "ab"},
                            "n": np.int32(7), "config_hash": "1234"})


def test_channels_names_order_dtype_and_grid():
    inp = _inputs()
    stack = build_result_stack(**inp)
    assert isinstance(stack, ResultStack)
    assert CHANNELS == ("density", "denoised", "phi_d_observed", "phi_d_fitted", "rate",
                        "rate_std", "residual")
    assert tuple(stack.channels) == CHANNELS
    for name, a in stack.channels.items():
        assert a.shape == SHAPE, name
        assert a.dtype == np.float32, name
    assert stack.pixel_size_nm == PIXEL
    assert stack.origin_nm == ORIGIN
    np.testing.assert_array_equal(stack.channels["density"], inp["density"].data)
    np.testing.assert_allclose(stack.channels["phi_d_observed"], inp["fields"].phi_d, rtol=1e-6)
    np.testing.assert_allclose(stack.channels["phi_d_fitted"], inp["fit"].phi_d_fit, rtol=1e-6)
    np.testing.assert_allclose(stack.channels["rate"], inp["fit"].rate, rtol=1e-6)
    np.testing.assert_allclose(stack.channels["rate_std"], 0.1, rtol=1e-6)
    assert set(stack.labels) == {"nucleus", TRUSTED_LABEL}
    lab = stack.labels["nucleus"]
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab, inp["fields"].mask.astype(np.uint8))


def test_trusted_label_is_the_fits_trusted_pixels_inside_the_nucleus():
    """The ``trusted`` label holds the fit's trusted pixels, cut to the nucleus; a trusted
    map on another grid is refused."""
    inp = _inputs()
    trusted = np.zeros(SHAPE, bool)
    trusted[:, : SHAPE[1] // 2] = True
    inp["fit"] = dataclasses.replace(inp["fit"], trusted=trusted)
    lab = build_result_stack(**inp).labels[TRUSTED_LABEL]
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab, (trusted & inp["fields"].mask).astype(np.uint8))
    assert 0 < lab.sum() < inp["fields"].mask.sum()
    inp["fit"] = dataclasses.replace(inp["fit"], trusted=trusted[1:])
    with pytest.raises(StageError, match="fit.trusted"):
        build_result_stack(**inp)


def test_rate_std_is_nan_without_uncertainty():
    stack = build_result_stack(**_inputs(rate_std=False))
    assert stack.channels["rate_std"].dtype == np.float32
    assert stack.channels["rate_std"].shape == SHAPE
    assert np.isnan(stack.channels["rate_std"]).all()
    assert stack.provenance["fit"]["has_rate_std"] is False


def test_provenance_is_json_safe_and_input_untouched():
    inp = _inputs()
    original = dict(inp["provenance"])
    stack = build_result_stack(**inp)
    prov = stack.provenance
    text = json.dumps(prov, allow_nan=False)  # strict JSON: no numpy, no NaN
    assert json.loads(text) == prov
    assert inp["provenance"] == original and "schema_version" not in inp["provenance"]
    assert prov["schema_version"] == SCHEMA_VERSION == 1
    assert prov["n"] == 7 and type(prov["n"]) is int
    assert prov["input"] == {"path": "x.csv", "sha256": "ab"}
    fit = prov["fit"]
    assert fit["device"] == "cpu"
    assert fit["timings"] == {"train": 1.25, "total": 1.5}
    assert fit["final_loss"] == pytest.approx(0.5)
    assert fit["final_terms"]["data"] == pytest.approx(0.25)
    assert fit["config"] == {"steps": 25, "seed": 3}
    meta = fit["meta"]
    assert meta["radius_px"] == pytest.approx(6.5)
    assert meta["center"] == [1.0, 2.0]
    assert meta["big"] == {"shape": [100, 100], "dtype": "float64", "omitted": True}
    assert meta["nan"] is None
    assert meta["where"] == "/a/b"
    assert meta["shape"] == [3, 4]


def test_final_loss_from_meta_wins_and_missing_history_gives_none():
    inp = _inputs()
    fit = inp["fit"]
    inp["fit"] = FitResult(rate=fit.rate, phi_d_fit=fit.phi_d_fit, residual=fit.residual,
                           trusted=fit.trusted, meta={"final_loss": np.float64(0.125)})
    assert build_result_stack(**inp).provenance["fit"]["final_loss"] == 0.125
    inp["fit"] = FitResult(rate=fit.rate, phi_d_fit=fit.phi_d_fit, residual=fit.residual,
                           trusted=fit.trusted)
    prov = build_result_stack(**inp).provenance
    assert prov["fit"]["final_loss"] is None and prov["fit"]["final_terms"] == {}


@pytest.mark.parametrize("which", ["density", "denoised", "rate", "phi_d_fit", "residual",
                                   "rate_std"])
def test_shape_mismatch_raises_stage_error(which):
    inp = _inputs()
    wrong = np.zeros((SHAPE[0] + 3, SHAPE[1]), np.float32)
    if which in ("density", "denoised"):
        inp[which] = DensityMap(wrong, PIXEL, ORIGIN)
    else:
        f = inp["fit"]
        kw = dict(rate=f.rate, phi_d_fit=f.phi_d_fit, residual=f.residual, trusted=f.trusted,
                  rate_std=f.rate_std)
        kw[which] = wrong
        inp["fit"] = FitResult(**kw)
    with pytest.raises(StageError, match="shape"):
        build_result_stack(**inp)


def test_uncropped_density_grid_raises():
    inp = _inputs()
    d = inp["density"]
    inp["density"] = DensityMap(d.data, PIXEL * 2, ORIGIN)
    with pytest.raises(StageError, match="pixel size"):
        build_result_stack(**inp)
    inp["density"] = DensityMap(d.data, PIXEL, (0.0, 0.0))
    with pytest.raises(StageError, match="origin"):
        build_result_stack(**inp)
    assert issubclass(StageError, (ChromarateError, ValueError))


def test_json_safe_examples():
    assert json_safe({1: np.bool_(True), "s": {3, 1}, "c": 1 + 2j, "i": float("inf")}) == {
        "1": True, "s": [1, 3], "c": "(1+2j)", "i": None}
