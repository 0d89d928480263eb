"""The pipeline end to end on a tiny synthetic nucleus (few fit steps)."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._types import FitProgress, StageDone
from chromarate.config import with_overrides, PipelineConfig
from chromarate.io.localizations import read_localizations
from chromarate.pipeline import NucleusResult, Pipeline


def test_iter_run_events_and_grid(tiny_nucleus):
    csv, _, syn = tiny_nucleus
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 4, "fit.training.log_every": 2,
                                            "fit.prior.regularisation": "manual",
                                            "fit.network.width": 16,
                                            "fit.network.fourier_features": 8})
    events = list(Pipeline(cfg).iter_run(read_localizations(csv)))
    stages = [e.stage for e in events if isinstance(e, StageDone)]
    assert stages == ["filter", "render", "denoise", "segment", "phase", "fit", "export"]
    assert sum(isinstance(e, FitProgress) for e in events) == 2
    (res,) = [e for e in events if isinstance(e, NucleusResult)]
    stack = res.stack
    # the crop's origin maps back onto the 20 nm simulation grid (origin 0)
    p = stack.pixel_size_nm
    assert p == 20.0
    assert np.allclose(np.array(stack.origin_nm) / p, np.round(np.array(stack.origin_nm) / p))
    from chromarate.analysis import resample_to_grid

    truth_mask = resample_to_grid(syn.mask.astype(float), src_pixel_nm=syn.pixel_size_nm,
                                  src_origin_nm=syn.origin_nm, shape=stack.channels["rate"].shape,
                                  pixel_nm=p, origin_nm=stack.origin_nm, order=0) > 0.5
    seg = stack.labels["nucleus"].astype(bool)
    iou = (seg & truth_mask).sum() / (seg | truth_mask).sum()
    assert iou > 0.8
    assert list(stack.channels) == ["density", "denoised", "phi_d_observed", "phi_d_fitted",
                                    "rate", "rate_std", "residual"]
    prov = stack.provenance
    assert prov["config_hash"] and prov["config"]["fit"]["training"]["steps"] == 4
    assert 0 < res.n_localizations <= len(syn.localizations)
    assert np.all(np.isfinite(res.fit.rate[seg]))


def test_tiff_density_input_and_auto_smoothing(tiny_nucleus, tmp_path):
    """A rendered TIFF runs through the batch like a table; sigma_nm='auto' uses the FRC."""
    import tifffile

    from chromarate.batch import run_batch
    from chromarate.render import render_density

    csv, _, _ = tiny_nucleus
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 3, "fit.network.width": 16,
                                            "fit.network.fourier_features": 8,
                                            "denoise.sigma_nm": "auto"})
    locs = read_localizations(csv)
    events = list(Pipeline(cfg).iter_run(locs))
    assert "resolution" in [e.stage for e in events if isinstance(e, StageDone)]
    (res,) = [e for e in events if isinstance(e, NucleusResult)]
    assert res.stack.provenance["config"]["denoise"]["sigma_nm"] == "auto"

    density = render_density(locs, cfg.render)
    tif = tmp_path / "tiny_render.tif"
    tifffile.imwrite(tif, density.data, imagej=True, resolution=(1e3 / 20.0, 1e3 / 20.0),
                     metadata={"unit": "um"})
    report = run_batch(cfg, [tif], tmp_path / "out")
    assert report.n_failed == 0, report.rows
    row = report.rows[0]
    assert row["pixel_size_nm"] == 20.0 and row["n_localizations"] > 0


def test_rate_summaries_are_over_the_trusted_pixels(tiny_nucleus, tmp_path):
    """summary.csv, the nucleus table and the quality gate give one mean rate, over the
    pixels the fit trusts (the store's ``trusted`` label), though the PINN's rate is drawn
    over the whole nucleus."""
    import pandas as pd

    from chromarate.analysis import nucleus_table
    from chromarate.batch import run_batch
    from chromarate.export import TRUSTED_LABEL
    from chromarate.io.zarr_store import read_result

    csv, _, _ = tiny_nucleus
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 4, "fit.network.width": 16,
                                            "fit.network.fourier_features": 8})
    report = run_batch(cfg, [csv], tmp_path / "out")
    assert report.n_failed == 0, report.rows
    row = pd.read_csv(tmp_path / "out" / "summary.csv").iloc[0]
    stack = read_result(row.result_path)
    trusted, mask = stack.labels[TRUSTED_LABEL] > 0, stack.labels["nucleus"] > 0
    rate = stack.channels["rate"].astype(np.float64)
    assert 0 < trusted.sum() < mask.sum() and not trusted[~mask].any()
    assert np.isfinite(rate[mask]).all()
    qc_mean = stack.provenance["qc"]["metrics"]["rate_mean"]
    assert qc_mean == pytest.approx(rate[trusted].mean(), rel=1e-5)
    assert row.rate_mean == pytest.approx(qc_mean, rel=1e-5)
    assert row.rate_median == pytest.approx(np.median(rate[trusted]), rel=1e-5)
    table = nucleus_table(tmp_path / "out").iloc[0]
    assert table.rate_mean == pytest.approx(qc_mean, rel=1e-5)
    assert table.rate_coverage == pytest.approx(trusted.sum() / mask.sum())
