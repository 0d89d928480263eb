"""The quality gate: figures, verdicts, and files that are not chromatin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chromarate.quality import (HELD_TO_BALANCE_NOTE, MIN_ATTAINABLE_R, MIN_BALANCE_RESIDUAL_EXPLAINED,
                                assess_quality, attainable_r, density_contrast, map_agreement)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "smlm"


def _good(**over):
    """A nucleus that passes every check: contrast 4, 20k trusted pixels, agreeing maps."""
    rng = np.random.default_rng(0)
    mask = np.zeros((200, 200), bool)
    mask[10:190, 10:190] = True
    trusted = np.zeros_like(mask)
    trusted[30:170, 30:170] = True
    dens = np.where(rng.random(mask.shape) < 0.5, 1.0, 4.0) * mask
    rate = 1.5 + 0.3 * np.sin(np.arange(200) / 20.0)[None, :] * np.ones((200, 1))
    kw = dict(n_localizations=250_000, pixel_size_nm=20.0, mask=mask, denoised=dens,
              phase_meta={"fraction_clipped_low": 0.02, "fraction_clipped_high": 0.05,
                          "calibration": {"scale": 0.84, "interior_minimum": True, "skipped": ""}},
              rate=rate, trusted=trusted, closed_form_rate=rate + 0.01 * rng.standard_normal(rate.shape),
              rate_std=0.1 * np.ones_like(rate), residual_term=0.2, mollifier_radius_px=20.0,
              resolution_nm=60.0)
    kw.update(over)
    return kw


def test_a_good_nucleus_is_ok():
    q = assess_quality(**_good())
    assert q.status == "ok" and q.reasons == ()
    assert q.metrics["density_contrast"] == pytest.approx(4.0)
    assert q.metrics["pinn_vs_closed_form"] > 0.99
    assert q.metrics["locs_per_resolution_area"] == pytest.approx(250_000 / (180 * 180 * 400) * 3600)
    d = q.as_dict()
    assert d["status"] == "ok" and isinstance(d["metrics"]["trusted_pixels"], int)


@pytest.mark.parametrize("over, word", [
    ({"n_localizations": 2000}, "sparse"),
    ({"resolution_nm": 300.0}, "coarse"),
    ({"denoised": None}, "contrast"),
    ({"phase_meta": {"fraction_clipped_high": 0.5}}, "phi_max"),
    ({"trusted": None}, "small"),
    ({"rate_std": 5.0}, "uncertain"),
    ({"residual_term": 1.5}, "residual"),
    ({"phase_meta": {"calibration": {"skipped": "nucleus too small"}}}, "not calibrated"),
    ({"split_half_r": 0.1}, "not reproducible"),
])
def test_each_check_flags_its_failure(over, word):
    kw = _good()
    if "denoised" in over:
        over = {"denoised": kw["mask"] * 1.0}
    if "trusted" in over:
        t = np.zeros_like(kw["mask"])
        t[95:105, 95:105] = True
        over = {"trusted": t}
    if over.get("closed_form_rate") == "noise":
        over = {"closed_form_rate": np.random.default_rng(1).standard_normal(kw["rate"].shape)}
    if "rate_std" in over:
        over = {"rate_std": 5.0 * np.ones_like(kw["rate"])}
    q = assess_quality(**{**kw, **over})
    assert q.status == "low_confidence"
    assert len(q.reasons) == 1 and word in q.reasons[0], q.reasons


def test_attainable_r_arithmetic():
    """Spearman-Brown reliability 2r/(1+r), then its square root; the gate's threshold sits
    at a split-half agreement of about 0.47."""
    assert attainable_r(1.0) == pytest.approx(1.0)
    assert attainable_r(1.0 / 3.0) == pytest.approx(np.sqrt(0.5))
    assert attainable_r(0.0) == 0.0 and attainable_r(-0.5) == 0.0
    assert np.isnan(attainable_r(float("nan")))
    assert attainable_r(0.46) < MIN_ATTAINABLE_R < attainable_r(0.48)


def test_a_fit_held_to_the_balance_says_what_the_halves_cannot_confirm():
    """A failed split-half check of a fit held to the balance estimate names the map the
    user sees; a passing check, or a fit not held, reads as before."""
    plain = assess_quality(**_good(split_half_r=0.2))
    held = assess_quality(**_good(split_half_r=0.2), held_to_balance=True)
    assert held.status == plain.status == "low_confidence"
    assert held.reasons == (plain.reasons[0] + HELD_TO_BALANCE_NOTE,)
    assert "balance estimate" in held.reasons[0] and "balance" not in plain.reasons[0]
    assert assess_quality(**_good(split_half_r=0.6), held_to_balance=True).reasons == ()


def test_reproducible_halves_pass_and_missing_halves_are_no_evidence():
    q = assess_quality(**_good(split_half_r=0.6))
    assert q.status == "ok" and q.metrics["split_half_r"] == pytest.approx(0.6)
    assert q.metrics["attainable_r"] == pytest.approx(np.sqrt(1.2 / 1.6))
    q = assess_quality(**_good())
    assert q.status == "ok" and np.isnan(q.metrics["split_half_r"])


def test_agreement_is_recorded_not_gated():
    kw = _good()
    noise = np.random.default_rng(1).standard_normal(kw["rate"].shape)
    q = assess_quality(**{**kw, "closed_form_rate": noise})
    assert q.status == "ok" and abs(q.metrics["pinn_vs_closed_form"]) < 0.1


def test_a_single_fits_residual_uncertainty_is_recorded_not_gated():
    kw = _good()
    q = assess_quality(**{**kw, "rate_std": 5.0 * np.ones_like(kw["rate"])},
                       rate_std_source="residual")
    assert q.status == "ok" and q.reasons == () and q.metrics["relative_uncertainty"] > 2.0


@pytest.mark.parametrize("source", ["bootstrap", "seeds", None])
def test_an_ensembles_uncertainty_is_gated(source):
    """The same spread from an ensemble (or from an unrecorded source) lowers the status."""
    kw = _good()
    q = assess_quality(**{**kw, "rate_std": 5.0 * np.ones_like(kw["rate"])},
                       rate_std_source=source)
    assert q.status == "low_confidence" and len(q.reasons) == 1 and "uncertain" in q.reasons[0]


def test_weak_contrast_is_not_a_defect():
    """A nucleus whose heterochromatin spans only part of its range (p95/p5 1.5, like the
    simulated 15 um case fitted at r 0.95) passes; a uniform one does not."""
    kw = _good()
    weak = np.where(np.random.default_rng(2).random(kw["mask"].shape) < 0.5, 1.0, 1.5) * kw["mask"]
    q = assess_quality(**{**kw, "denoised": weak})
    assert q.status == "ok" and q.metrics["density_contrast"] == pytest.approx(1.5)
    flat = np.where(np.random.default_rng(2).random(kw["mask"].shape) < 0.5, 1.0, 1.1) * kw["mask"]
    q = assess_quality(**{**kw, "denoised": flat})
    assert q.status == "low_confidence" and "featureless" in q.reasons[0]


def test_missing_figures_are_not_evidence():
    q = assess_quality(**_good(n_localizations=None, resolution_nm=None, closed_form_rate=None,
                               rate_std=None, residual_term=None))
    assert q.status == "ok"
    assert np.isnan(q.metrics["locs_per_resolution_area"]) and np.isnan(q.metrics["relative_uncertainty"])


def test_helpers():
    assert density_contrast(np.zeros((4, 4)) + 1.0, np.ones((4, 4), bool)) == 1.0
    assert np.isnan(map_agreement(np.ones(5), np.arange(5.0), np.ones(5, bool)))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared test data (../shared/data/smlm) not present")
@pytest.mark.parametrize("name", ["colicoords/01_storm.csv", "picasso/egfr_mols.hdf5",
                                  "pyme_ts3d/ThunderSTORM_TS3D.csv"])
def test_non_chromatin_files_never_come_back_ok(name):
    """E. coli membrane protein, EGFR on a cell membrane and a bead file: each nucleus the
    segmentation finds is refused (an error) or flagged low_confidence with reasons."""
    import chromarate
    from chromarate.config import PipelineConfig
    from chromarate.pipeline import NucleusFailed, NucleusResult, Pipeline

    cfg = PipelineConfig(fit={"method": "direct"})
    results = Pipeline(cfg).run(chromarate.read_localizations(SHARED / name))
    assert results
    for r in results:
        if isinstance(r, NucleusFailed):
            assert r.error
            continue
        assert isinstance(r, NucleusResult)
        qc = r.stack.provenance["qc"]
        assert qc["status"] == "low_confidence" and qc["reasons"], qc


@pytest.mark.parametrize("source, gated", [("residual", False), ("bootstrap", True), (None, True)])
def test_the_pipeline_passes_the_fits_rate_std_source(source, gated):
    """fields_quality hands ``fit.meta["rate_std_source"]`` to the gate (a direct fit, so no
    closed form is computed): only the residual-based rate_std escapes the gate."""
    from chromarate._types import FitResult, PhaseFields
    from chromarate.pipeline import fields_quality

    kw = _good()
    mask = kw["mask"]
    fields = PhaseFields(phi_w=np.full(mask.shape, 0.5), phi_d=np.zeros(mask.shape), mask=mask,
                         pixel_size_nm=20.0, meta=kw["phase_meta"])
    rate = kw["rate"]
    fit = FitResult(rate=rate, phi_d_fit=np.zeros_like(rate), residual=np.zeros_like(rate),
                    trusted=kw["trusted"], rate_std=5.0 * np.ones_like(rate),
                    meta={"method": "direct", "rate_std_source": source})
    q = fields_quality(fields, fit, density=kw["denoised"])
    assert q.metrics["relative_uncertainty"] > 2.0
    assert any("uncertain" in r for r in q.reasons) == gated, q.reasons


def test_an_ambiguous_rate_prior_is_flagged_with_its_figures():
    """Where the two prior figures disagreed the nucleus is flagged, the reason giving the
    shared departure in per cent of the rate and the ratio; otherwise nothing is added."""
    q = assess_quality(**_good(), ambiguous_prior=(2.0, 0.151))
    assert q.status == "low_confidence" and len(q.reasons) == 1
    assert "rate prior ambiguous" in q.reasons[0] and "15 %" in q.reasons[0]
    assert "2.0 times" in q.reasons[0]
    assert q.metrics["prior_ambiguous"] is True
    plain = assess_quality(**_good(), ambiguous_prior=None)
    assert plain.status == "ok" and plain.metrics["prior_ambiguous"] is False


def test_the_pipeline_reads_the_ambiguity_from_the_fit_record():
    """fields_quality hands the gate the recorded figures only where the fit said the
    prior was ambiguous (a direct fit, so no closed form is computed)."""
    from chromarate._types import FitResult, PhaseFields
    from chromarate.pipeline import fields_quality

    kw = _good()
    mask = kw["mask"]
    fields = PhaseFields(phi_w=np.full(mask.shape, 0.5), phi_d=np.zeros(mask.shape), mask=mask,
                         pixel_size_nm=20.0, meta=kw["phase_meta"])
    rate = kw["rate"]
    reg = {"prior_departure": 2.0, "prior_shared_departure": 0.2}
    for record, flagged in ((reg, False), ({**reg, "prior_ambiguous": True}, True)):
        fit = FitResult(rate=rate, phi_d_fit=np.zeros_like(rate), residual=np.zeros_like(rate),
                        trusted=kw["trusted"], rate_std=None,
                        meta={"method": "direct", "regularisation": record})
        q = fields_quality(fields, fit, density=kw["denoised"])
        assert q.metrics["prior_ambiguous"] is flagged
        assert any("rate prior ambiguous" in r and "20 %" in r for r in q.reasons) == flagged, \
            q.reasons


@pytest.mark.parametrize("prior, term, reason", [
    ("balance", 0.01, None),            # explains 99 %: passes
    ("balance", 0.03, "balance"),       # 97 %: the balance leaves the flux out
    ("closed_form", 0.03, None),        # the closed-form prior is not held to it
    (None, 0.03, None),                 # no prior recorded (a closed-form fit)
    ("balance", None, None),            # no residual recorded: no evidence
    ("balance", 1.5, "residual"),       # explains nothing: that reason alone
    ("balance", 0.02, "balance"),       # 98 %: still short of the limit
    ("balance", 0.0176, "balance"),     # 98.24 %: short of 98.25 %
    ("balance", 0.0174, None),          # 98.26 %: passes
    ("balance", 1 - MIN_BALANCE_RESIDUAL_EXPLAINED, None),   # exactly the limit passes
    ("balance", 1.0, "balance"),        # exactly nothing explained: the balance's reason
])
def test_a_fit_held_to_the_balance_must_explain_the_residual(prior, term, reason):
    """Where the fit followed the balance prior, residual_explained below
    MIN_BALANCE_RESIDUAL_EXPLAINED flags the nucleus with the share left unexplained; other
    priors, and a figure that could not be computed, are not held to it."""
    q = assess_quality(**_good(residual_term=term), rate_prior=prior)
    if reason is None:
        assert q.status == "ok", q.reasons
        return
    assert q.status == "low_confidence" and len(q.reasons) == 1, q.reasons
    if reason == "balance":
        left = f"{100 * term:.3g} %"
        assert f"held to the balance estimate leaves {left} of the residual unexplained" in q.reasons[0]
        assert f"> {100 * (1 - MIN_BALANCE_RESIDUAL_EXPLAINED):g} %" in q.reasons[0]
    else:
        assert q.reasons[0] == "the fit does not explain the residual"


def test_the_pipeline_hands_the_gate_the_fits_rate_prior():
    """fields_quality reads rate_prior from the fit's regularisation record."""
    from chromarate._types import FitResult, PhaseFields
    from chromarate.pipeline import fields_quality

    kw = _good()
    mask = kw["mask"]
    fields = PhaseFields(phi_w=np.full(mask.shape, 0.5), phi_d=np.zeros(mask.shape), mask=mask,
                         pixel_size_nm=20.0, meta=kw["phase_meta"])
    for prior, flagged in (("balance", True), ("closed_form", False)):
        fit = FitResult(rate=kw["rate"], phi_d_fit=np.zeros_like(kw["rate"]),
                        residual=np.zeros_like(kw["rate"]), trusted=kw["trusted"], rate_std=None,
                        meta={"method": "direct", "regularisation": {"rate_prior": prior},
                              "final_terms": {"residual": 0.05}})
        q = fields_quality(fields, fit, density=kw["denoised"])
        assert any("balance estimate leaves" in r for r in q.reasons) == flagged, q.reasons
