"""Background level around a nucleus and its subtraction before phase mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromarate._types import DensityMap, Localizations
from chromarate.background import MIN_RING_PIXELS, ring_background, subtract_level
from chromarate.config import PipelineConfig, with_overrides
from chromarate.io.localizations import read_localizations
from chromarate.phase import phase_fields
from chromarate.pipeline import NucleusTask, Pipeline


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def test_the_ring_measures_the_level_outside_and_ignores_other_nuclei_and_padding():
    rng = np.random.default_rng(0)
    shape = (300, 300)
    a, b = _disk(shape, (100, 100), 40), _disk(shape, (100, 215), 40)
    labels = a.astype(int) + 2 * b.astype(int)
    density = rng.poisson(0.3, shape).astype(float)  # sparse background counts
    density[a | b] += 20.0
    # padding: the rendering's margin without data
    valid = np.zeros(shape, bool)
    valid[:, :280] = True
    density[:, 280:] = 0.0
    bg = ring_background(density, labels, 1, pixel_size_nm=10.0, gap_nm=100.0, width_nm=500.0,
                         valid=valid)
    assert bg.skipped == "" and bg.n_pixels > MIN_RING_PIXELS
    assert bg.level == pytest.approx(0.3, rel=0.05)
    # the neighbour is 15 px away: without the gap kept from it its counts would enter
    near = ring_background(density, labels, 2, pixel_size_nm=10.0, gap_nm=100.0, width_nm=500.0,
                           valid=valid)
    assert near.level == pytest.approx(0.3, rel=0.05)
    # and without the valid map, the padding's zeros pull the level down
    unmasked = ring_background(density, labels, 2, pixel_size_nm=10.0, gap_nm=100.0,
                               width_nm=500.0)
    assert unmasked.level < 0.9 * near.level


def test_no_estimate_without_room_around_the_nucleus():
    labels = np.zeros((60, 60), int)
    labels[2:58, 2:58] = 1
    bg = ring_background(np.ones((60, 60)), labels, 1, pixel_size_nm=20.0, gap_nm=100.0)
    assert bg.level == 0.0 and bg.n_pixels < MIN_RING_PIXELS and "clear of nuclei" in bg.skipped
    missing = ring_background(np.ones((60, 60)), labels, 3, pixel_size_nm=20.0)
    assert missing.level == 0.0 and missing.skipped
    with pytest.raises(ValueError, match="pixel_size_nm"):
        ring_background(np.ones((60, 60)), labels, 1, pixel_size_nm=0.0)


def test_subtracting_the_level_restores_the_phase_fields_of_the_clean_density():
    """A constant background inside the nucleus changes the slope of the phase mapping
    (no baseline scale repairs it); the ring's level, subtracted, gives back the fields of
    the density without background (up to the level's estimation error)."""
    rng = np.random.default_rng(1)
    shape = (240, 240)
    mask = _disk(shape, (120, 120), 70)
    yy, xx = np.mgrid[:240, :240]
    clean = np.where(mask, 10.0 + 8.0 * (np.sin(yy / 9.0) * np.cos(xx / 7.0) > 0.3), 0.0)
    level = 1.5
    noisy_bg = clean + rng.normal(level, 0.01, shape)
    grid = dict(pixel_size_nm=20.0, origin_nm=(0.0, 0.0))
    bg = ring_background(noisy_bg, mask.astype(int), 1, pixel_size_nm=20.0, gap_nm=200.0)
    assert bg.level == pytest.approx(level, abs=0.01)
    cfg = PipelineConfig().phase
    with_bg = phase_fields(DensityMap(data=noisy_bg.astype(np.float32), **grid), mask, cfg)
    fixed = phase_fields(subtract_level(DensityMap(data=noisy_bg.astype(np.float32), **grid), bg.level),
                         mask, cfg)
    ref = phase_fields(DensityMap(data=clean.astype(np.float32), **grid), mask, cfg)
    err_with = np.abs(with_bg.phi_d - ref.phi_d)[mask].mean()
    err_fixed = np.abs(fixed.phi_d - ref.phi_d)[mask].mean()
    assert err_with > 0.004 and err_fixed < 0.25 * err_with


def test_the_pipeline_subtracts_and_records_the_level(tiny_nucleus):
    csv, _, _ = tiny_nucleus
    locs = read_localizations(csv)
    # add uniform background over the acquisition's field
    t = locs.table
    rng = np.random.default_rng(2)
    n = len(t) // 20
    extra = pd.DataFrame({
        "x_nm": rng.uniform(t["x_nm"].min(), t["x_nm"].max(), n),
        "y_nm": rng.uniform(t["y_nm"].min(), t["y_nm"].max(), n),
        "frame": rng.integers(0, int(t["frame"].max()) + 1, n)})
    table = pd.concat([t, extra.reindex(columns=t.columns)], ignore_index=True)
    for col in table.columns:
        if col not in ("x_nm", "y_nm", "frame"):
            table[col] = table[col].fillna(table[col].median())
    noisy = Localizations(table=table, meta=dict(locs.meta))
    cfg = with_overrides(PipelineConfig(), {"fit.training.steps": 3, "fit.network.width": 16,
                                            "fit.network.fourier_features": 8,
                                            "fit.prior.regularisation": "manual"})
    pipe = Pipeline(cfg)
    (task,) = [e for e in pipe.iter_prepare(noisy) if isinstance(e, NucleusTask)]
    area = (t["x_nm"].max() - t["x_nm"].min()) * (t["y_nm"].max() - t["y_nm"].min())
    expected = n * task.density.pixel_size_nm**2 / area
    (task0,) = [e for e in pipe.iter_prepare(locs) if isinstance(e, NucleusTask)]
    assert task.background is not None and task.background.skipped == ""
    # the simulated acquisition has its own background; the added one comes on top
    assert task.background.level - task0.background.level == pytest.approx(expected, rel=0.3)
    res = [e for e in pipe.iter_nucleus(task) if hasattr(e, "stack")][0]
    assert res.fields.meta["background"]["level"] == pytest.approx(task.background.level)
    assert res.stack.provenance["phase"]["background"]["n_pixels"] == task.background.n_pixels
    off = Pipeline(with_overrides(cfg, {"phase.background": "none"}))
    (task_off,) = [e for e in off.iter_prepare(noisy) if isinstance(e, NucleusTask)]
    assert task_off.background is None
    res_off = [e for e in off.iter_nucleus(task_off) if hasattr(e, "stack")][0]
    assert res_off.fields.meta["background"] is None
    assert not np.allclose(res_off.fields.phi_d, res.fields.phi_d)


def test_a_neighbour_beyond_the_ring_and_dropped_objects_stay_out_of_it():
    """A nucleus just beyond the ring's outer edge still shadows it (its halo lies within
    its gap), and objects segmentation dropped (``exclude``) are kept clear of like nuclei."""
    from scipy import ndimage

    shape = (400, 400)
    a = _disk(shape, (200, 120), 40)  # ring: 10-40 px from it, out to column 200
    b = _disk(shape, (200, 235), 30)  # its edge 5 px beyond the ring's outer edge
    halo = (ndimage.distance_transform_edt(~b) <= 8) & ~b
    density = np.full(shape, 0.3)
    density[a | b] = 20.0
    density[halo] = 5.0
    labels = a.astype(int) + 2 * b.astype(int)
    kw = dict(pixel_size_nm=10.0, gap_nm=100.0, width_nm=300.0)
    assert ring_background(density, labels, 1, **kw).level == pytest.approx(0.3, rel=1e-6)
    # an object segmentation dropped, inside the ring's reach, with its own halo
    fragment = _disk(shape, (120, 120), 12)
    with_fragment = density.copy()
    with_fragment[(ndimage.distance_transform_edt(~fragment) <= 8)] = 5.0
    with_fragment[fragment] = 20.0
    assert ring_background(with_fragment, labels, 1, **kw).level > 0.4
    clear = ring_background(with_fragment, labels, 1, exclude=fragment | a | b, **kw)
    assert clear.level == pytest.approx(0.3, rel=1e-6)


def test_an_implausible_level_is_not_subtracted():
    from chromarate.background import Background, limit_to_baseline

    bg = Background(3.0, 500, 300.0, 1000.0)
    kept = limit_to_baseline(bg, baseline=10.0)
    assert kept is bg
    dropped = limit_to_baseline(bg, baseline=4.0)
    assert dropped.level == 0.0 and "not subtracted" in dropped.skipped
    none = Background(0.0, 10, 300.0, 1000.0, skipped="too few")
    assert limit_to_baseline(none, baseline=0.0) is none


def test_the_data_extent_leaves_out_the_nearly_empty_edge():
    from chromarate.pipeline import _data_extent

    grid = DensityMap(np.zeros((100, 100), np.float32), 20.0, meta={"blur_nm": 25.0})
    x = np.array([100.0, 1900.0])
    y = np.array([100.0, 1900.0])
    ext = _data_extent(x, y, grid)
    m = int(np.ceil(3 * 25.0 / 20.0)) + 1
    assert ext[5 + m, 5 + m] and not ext[5 + m - 1, 50] and not ext[50, 95 - m + 1]
    assert ext.sum() == (91 - 2 * m) ** 2


def test_a_nucleus_box_gives_the_same_ring_as_a_scan_of_the_map():
    """The pipeline passes each nucleus' box (one find_objects pass for all nuclei); the
    ring must be the one a scan of the whole label map finds, near the map's edges too."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(4)
    shape = (260, 300)
    labels = np.zeros(shape, int)
    for i, (c, r) in enumerate([((30, 30), 20), ((130, 150), 35), ((230, 280), 25),
                                ((60, 200), 15)], start=1):
        labels[_disk(shape, c, r)] = i
    density = rng.poisson(0.5, shape).astype(float) + 10.0 * (labels > 0)
    for nid, box in enumerate(ndi.find_objects(labels), start=1):
        whole = ring_background(density, labels, nid, pixel_size_nm=20.0, gap_nm=100.0,
                                width_nm=400.0)
        boxed = ring_background(density, labels, nid, pixel_size_nm=20.0, gap_nm=100.0,
                                width_nm=400.0, box=box)
        assert whole == boxed and whole.n_pixels > 0
