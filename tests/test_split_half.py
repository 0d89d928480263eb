"""Two halves of an acquisition for the quality gate's split-half check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from chromarate._types import Localizations
from chromarate.config import PipelineConfig, with_overrides
from chromarate.denoise import denoise_density
from chromarate.io.localizations import read_localizations
from chromarate.pipeline import NucleusTask, Pipeline, crop_density, fields_quality
from chromarate.render import render_density
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


def test_a_table_without_frames_is_split_by_localization():
    rng = np.random.default_rng(0)
    n = 5000
    table = pd.DataFrame({"x_nm": rng.uniform(0, 2000, n), "y_nm": rng.uniform(0, 2000, n)})
    locs = Localizations(table=table, meta={})
    _, denoised = _maps(locs)
    crop = crop_density(denoised, (slice(20, 60), slice(20, 60)))
    a, b = half_density_maps(locs, crop)
    np.testing.assert_allclose(a.data + b.data, crop.data, rtol=1e-4, atol=1e-4)


def test_the_pipeline_records_the_split_half_agreement(tiny_nucleus):
    """Localization inputs carry the halves to the nucleus and the gate records the figure;
    image inputs (fields) have none, and the figure is NaN."""
    csv, _, _ = tiny_nucleus
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 3, "fit.network.width": 16,
                                            "fit.network.fourier_features": 8,
                                            "fit.prior.regularisation": "manual"})
    pipe = Pipeline(cfg)
    tasks = [t for t in pipe.iter_prepare(read_localizations(csv)) if isinstance(t, NucleusTask)]
    (task,) = tasks
    assert task.halves is not None
    assert all(h.data.shape == task.denoised.data.shape for h in task.halves)
    res = [e for e in pipe.iter_nucleus(task) if hasattr(e, "stack")][0]
    metrics = res.stack.provenance["qc"]["metrics"]
    assert -1.0 <= metrics["split_half_r"] <= 1.0
    assert 0.0 <= metrics["attainable_r"] <= 1.0
    q = fields_quality(res.fields, res.fit, cfg)
    assert np.isnan(q.metrics["split_half_r"])
