"""The pipeline end to end on a tiny synthetic nucleus (few fit steps)."""

from __future__ import annotations

import numpy as np

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
