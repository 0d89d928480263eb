"""Tests of chromarate.segment on synthetic nuclei made of Poisson localizations."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from chromarate._types import DensityMap, Localizations
from chromarate.config import RenderConfig, SegmentConfig
from chromarate.errors import SegmentationError, StageError
from chromarate.render import render_density
from chromarate.segment import crop_to_mask, segment_nucleus

P = 20.0          # nm per pixel
N_PX = 400        # 8 um field of view


def _disk_points(rng, n, cy, cx, r, r_in=0.0):
    """n points uniform in the annulus r_in <= |x - c| < r (nm)."""
    rad = np.sqrt(rng.uniform(r_in**2, r**2, n))
    ang = rng.uniform(0, 2 * np.pi, n)
    return cy + rad * np.sin(ang), cx + rad * np.cos(ang)


def _render(ys, xs, n_px=N_PX, p=P) -> DensityMap:
    edges = np.arange(n_px + 1) * p
    h, _, _ = np.histogram2d(ys, xs, bins=[edges, edges])
    return DensityMap(data=h.astype(np.float32), pixel_size_nm=p, origin_nm=(0.0, 0.0))


def _scene(disks, *, density_per_um2=2500.0, background=0.03, seed=0, n_px=N_PX, p=P):
    """Poisson localizations on disks (cy, cx, r[, r_in]) in nm + uniform background.

    ``background`` is the fraction of all localizations spread uniformly over the field.
    """
    rng = np.random.default_rng(seed)
    ys, xs = [], []
    for d in disks:
        cy, cx, r = d[:3]
        r_in = d[3] if len(d) > 3 else 0.0
        area_um2 = np.pi * (r**2 - r_in**2) * 1e-6
        y, x = _disk_points(rng, rng.poisson(density_per_um2 * area_um2), cy, cx, r, r_in)
        ys.append(y)
        xs.append(x)
    n_fg = sum(len(y) for y in ys)
    n_bg = int(round(background * n_fg / (1 - background)))
    side = n_px * p
    ys.append(rng.uniform(0, side, n_bg))
    xs.append(rng.uniform(0, side, n_bg))
    return _render(np.concatenate(ys), np.concatenate(xs), n_px, p)


def _truth(cy, cx, r, r_in=0.0, n_px=N_PX, p=P):
    yy, xx = (np.mgrid[:n_px, :n_px] + 0.5) * p
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    return (d2 < r**2) & (d2 >= r_in**2)


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


@pytest.mark.parametrize("threshold", ["otsu", 0.5])
def test_recovers_disk_with_background(threshold):
    disk = (4000.0, 3900.0, 2500.0)
    dm = _scene([disk], background=0.04)
    mask = segment_nucleus(dm, SegmentConfig(threshold=threshold))
    assert mask.dtype == bool and mask.shape == dm.shape
    assert _iou(mask, _truth(*disk)) > 0.9
    # the area (um^2) agrees with pi r^2 within a few percent
    area = mask.sum() * (P * 1e-3) ** 2
    assert area == pytest.approx(np.pi * 2.5**2, rel=0.05)


def test_sparse_nucleus_still_recovered():
    # 0.4 localizations per pixel on average: the smoothing must carry the threshold
    disk = (4200.0, 4000.0, 2200.0)
    dm = _scene([disk], density_per_um2=1000.0, background=0.05, seed=3)
    assert _iou(segment_nucleus(dm), _truth(*disk)) > 0.9


def test_picks_the_largest_of_two_blobs():
    big = (4500.0, 4800.0, 2000.0)
    small = (1400.0, 1400.0, 900.0)
    dm = _scene([big, small], seed=1)
    mask = segment_nucleus(dm)
    assert _iou(mask, _truth(*big)) > 0.9
    assert not mask[_truth(*small)].any()


def test_largest_by_area_not_by_brightness():
    # a small blob three times denser must lose against a large dimmer nucleus
    rng = np.random.default_rng(7)
    big = (4500.0, 4800.0, 2000.0)
    small = (1200.0, 1200.0, 800.0)
    dm_big = _scene([big], density_per_um2=2000.0, seed=7)
    ys, xs = _disk_points(rng, int(6000 * np.pi * 0.8**2), *small)
    data = dm_big.data + _render(ys, xs).data
    mask = segment_nucleus(DensityMap(data, P), SegmentConfig(threshold=0.2))
    assert _iou(mask, _truth(*big)) > 0.9
    assert not mask[_truth(*small)].any()


def test_fills_holes():
    ring = (4000.0, 4000.0, 2500.0, 900.0)  # annulus with a 0.9 um empty hole
    dm = _scene([ring], seed=2)
    hole_centre = (200, 200)
    filled = segment_nucleus(dm, SegmentConfig(fill_holes=True))
    assert filled[hole_centre]
    assert _iou(filled, _truth(4000.0, 4000.0, 2500.0)) > 0.9
    unfilled = segment_nucleus(dm, SegmentConfig(fill_holes=False))
    assert not unfilled[hole_centre]
    assert filled.sum() > unfilled.sum()
    np.testing.assert_array_equal(filled | unfilled, filled)


def test_empty_map_raises():
    dm = DensityMap(np.zeros((100, 100), np.float32), P)
    with pytest.raises(SegmentationError, match="empty"):
        segment_nucleus(dm)


def test_flat_map_raises():
    dm = DensityMap(np.full((100, 100), 3.0, np.float32), P)
    with pytest.raises(SegmentationError, match="flat"):
        segment_nucleus(dm)


def test_too_small_nucleus_raises_with_area_and_limit():
    disk = (4000.0, 4000.0, 500.0)  # 0.785 um^2
    dm = _scene([disk], seed=5)
    with pytest.raises(SegmentationError, match=r"area 0\.\d+ um\^2.*min_area_um2=1 um\^2"):
        segment_nucleus(dm, SegmentConfig(min_area_um2=1.0))
    mask = segment_nucleus(dm, SegmentConfig(min_area_um2=0.5))
    assert _iou(mask, _truth(*disk)) > 0.8


def test_a_field_too_small_for_a_nucleus_asks_about_the_unit():
    """Coordinates in um read as nm make a field a few hundred nm across: the error says so;
    a field of nucleus size does not get the hint."""
    rng = np.random.default_rng(0)
    xy = rng.normal(5.0, 1.0, (20_000, 2))  # a 5 um blob written in um, read as nm
    locs = Localizations(pd.DataFrame({"x_nm": xy[:, 0], "y_nm": xy[:, 1]}))
    dm = render_density(locs, RenderConfig(pixel_size_nm=20.0))
    with pytest.raises(SegmentationError, match="are the coordinates in um or camera pixels"):
        segment_nucleus(dm, SegmentConfig())
    dm = _scene([(4000.0, 4000.0, 500.0)], seed=5)
    with pytest.raises(SegmentationError) as info:
        segment_nucleus(dm, SegmentConfig(min_area_um2=1.0))
    assert "are the coordinates" not in str(info.value)


def test_segmentation_error_is_a_stage_error():
    assert issubclass(SegmentationError, StageError)
    assert issubclass(SegmentationError, ValueError)


def test_bad_input_raises():
    with pytest.raises(StageError, match="non-finite"):
        segment_nucleus(DensityMap(np.array([[1.0, np.nan], [0, 0]], np.float32), P))
    with pytest.raises(TypeError):
        segment_nucleus(np.zeros((10, 10)))


def test_crop_to_mask_margin_and_clipping():
    m = np.zeros((50, 60), bool)
    m[10:20, 30:45] = True
    rows, cols = crop_to_mask(m, 5)
    assert (rows, cols) == (slice(5, 25), slice(25, 50))
    assert m[rows, cols].sum() == m.sum()
    assert crop_to_mask(m, 0) == (slice(10, 20), slice(30, 45))
    assert crop_to_mask(m, margin_px=100) == (slice(0, 50), slice(0, 60))
    edge = np.zeros((8, 8), bool)
    edge[0, 7] = True
    assert crop_to_mask(edge, 2) == (slice(0, 3), slice(5, 8))


def test_crop_to_mask_errors():
    with pytest.raises(SegmentationError, match="empty"):
        crop_to_mask(np.zeros((5, 5), bool), 1)
    with pytest.raises(StageError, match="margin"):
        crop_to_mask(np.ones((5, 5), bool), -1)
    with pytest.raises(StageError, match="2-D"):
        crop_to_mask(np.ones(5, bool), 1)


def test_crop_of_segmented_nucleus_contains_it():
    disk = (3000.0, 5000.0, 1800.0)
    dm = _scene([disk], seed=9)
    mask = segment_nucleus(dm)
    rows, cols = crop_to_mask(mask, 10)
    assert mask[rows, cols].sum() == mask.sum()
    assert rows.stop - rows.start == pytest.approx(2 * 1800 / P + 20, abs=6)


# --------------------------------------------------------------------------------------
# segment_nuclei: every nucleus of a field of view
# --------------------------------------------------------------------------------------

from chromarate._types import NucleusCrop  # noqa: E402
from chromarate.segment import segment_nuclei  # noqa: E402

THREE = [(1800.0, 1900.0, 1200.0), (2000.0, 5600.0, 1500.0), (5800.0, 3500.0, 1700.0)]


def _match(labels, truths):
    """For each truth mask, the label overlapping it most and their IoU."""
    out = []
    for t in truths:
        ids, counts = np.unique(labels[t], return_counts=True)
        counts = counts[ids > 0]
        ids = ids[ids > 0]
        best = int(ids[np.argmax(counts)]) if ids.size else 0
        out.append((best, _iou(labels == best, t) if best else 0.0))
    return out


def test_labels_every_nucleus_with_crops_that_map_back():
    dm = _scene(THREE, seed=20)
    dm = DensityMap(dm.data, P, origin_nm=(-500.0, 2000.0))   # a non-zero origin
    labels, crops = segment_nuclei(dm, SegmentConfig(crop_margin_px=7))
    assert labels.dtype == np.int32 and labels.shape == dm.shape
    assert labels.max() == 3 and len(crops) == 3
    matches = _match(labels, [_truth(*d) for d in THREE])
    assert sorted(m[0] for m in matches) == [1, 2, 3]            # one label per nucleus
    assert all(iou > 0.9 for _, iou in matches), matches
    # labels in raster order of their first pixel
    firsts = [np.flatnonzero(labels.ravel() == i)[0] for i in (1, 2, 3)]
    assert firsts == sorted(firsts)
    for crop in crops:
        assert isinstance(crop, NucleusCrop)
        rows, cols = crop.slices
        assert crop.mask.dtype == bool and crop.mask.shape == (rows.stop - rows.start,
                                                               cols.stop - cols.start)
        np.testing.assert_array_equal(crop.mask, labels[rows, cols] == crop.nucleus_id)
        assert crop.mask.sum() == (labels == crop.nucleus_id).sum()  # the whole nucleus
        # margin of 7 px on every side (no nucleus is that close to the border)
        assert not crop.mask[:7].any() and not crop.mask[-7:].any()
        assert crop.mask[7].any() or crop.mask[-8].any()
        # origin_nm: crop pixel (0, 0) is parent pixel (rows.start, cols.start)
        assert crop.origin_nm == (-500.0 + rows.start * P, 2000.0 + cols.start * P)
        # the crop's centroid in nm is the nucleus centre (truth in scene coordinates)
        yy, xx = np.nonzero(crop.mask)
        cy = crop.origin_nm[0] + (yy.mean() + 0.5) * P + 500.0
        cx = crop.origin_nm[1] + (xx.mean() + 0.5) * P - 2000.0
        assert min(np.hypot(cy - d[0], cx - d[1]) for d in THREE) < 60.0


def test_segment_nucleus_is_the_largest_of_segment_nuclei():
    dm = _scene(THREE, seed=21)
    labels, _ = segment_nuclei(dm)
    mask = segment_nucleus(dm)
    sizes = np.bincount(labels.ravel())[1:]
    np.testing.assert_array_equal(mask, labels == 1 + int(np.argmax(sizes)))
    assert _iou(mask, _truth(*THREE[2])) > 0.9


def test_exclude_border_drops_cut_nuclei():
    disks = [(4000.0, 4000.0, 1500.0), (4000.0, 300.0, 1000.0)]  # the second is cut at x=0
    dm = _scene(disks, seed=22)
    labels, crops = segment_nuclei(dm)
    assert labels.max() == 2
    labels_ex, crops_ex = segment_nuclei(dm, SegmentConfig(exclude_border=True))
    assert labels_ex.max() == 1 and len(crops_ex) == 1
    assert _iou(labels_ex == 1, _truth(*disks[0])) > 0.9
    only_cut = _scene([disks[1]], seed=22)
    with pytest.raises(SegmentationError, match="exclude_border removed 1"):
        segment_nuclei(only_cut, SegmentConfig(exclude_border=True))


def test_area_limits_and_the_error_names_each_limit():
    disks = [(2000.0, 2000.0, 500.0),     # 0.79 um^2
             (2000.0, 5500.0, 1000.0),    # 3.1 um^2
             (5500.0, 4000.0, 2000.0)]    # 12.6 um^2
    dm = _scene(disks, seed=23)
    labels, _ = segment_nuclei(dm, SegmentConfig(min_area_um2=0.5))
    assert labels.max() == 3
    labels, _ = segment_nuclei(dm, SegmentConfig(min_area_um2=1.0, max_area_um2=10.0))
    assert labels.max() == 1 and _iou(labels == 1, _truth(*disks[1])) > 0.85
    with pytest.raises(SegmentationError) as info:
        segment_nuclei(dm, SegmentConfig(min_area_um2=5.0, max_area_um2=10.0))
    msg = str(info.value)
    assert "all 3 segmented objects" in msg
    assert "min_area_um2=5 um^2 removed 2" in msg and "max_area_um2=10 um^2 removed 1" in msg
    assert re.search(r"largest area 1[23]\.\d um\^2", msg), msg
    # segment_nucleus takes the largest object that passes the limits
    mask = segment_nucleus(dm, SegmentConfig(min_area_um2=1.0, max_area_um2=10.0))
    assert _iou(mask, _truth(*disks[1])) > 0.85


def _two_touching(seed=24, gap=0.0):
    a, b = (4000.0, 2700.0, 1400.0), (4000.0, 5300.0 + gap, 1400.0)  # centres 2.6 um apart
    return a, b, _scene([a, b], seed=seed)


def test_split_touching_separates_two_overlapping_nuclei():
    a, b, dm = _two_touching()
    merged, _ = segment_nuclei(dm)
    assert merged.max() == 1  # one blob without splitting
    labels, crops = segment_nuclei(dm, SegmentConfig(split_touching=True))
    assert labels.max() == 2 and len(crops) == 2
    # compare with the truth split at the bisector (x = 4000 nm)
    ta, tb = _truth(*a), _truth(*b)
    xx = (np.arange(N_PX) + 0.5) * P
    ta &= xx[None, :] < 4000.0
    tb &= xx[None, :] >= 4000.0
    matches = _match(labels, [ta, tb])
    assert {m[0] for m in matches} == {1, 2}
    assert all(iou > 0.85 for _, iou in matches), matches
    # the cut runs near the bisector
    cut_cols = np.flatnonzero((labels == 1).any(axis=0) & (labels == 2).any(axis=0))
    assert cut_cols.size == 0 or abs((cut_cols.mean() + 0.5) * P - 4000.0) < 150.0


def test_split_touching_keeps_an_elongated_nucleus_whole():
    # a capsule (rod) 5 um long and 1.6 um wide: a flat distance-transform ridge
    rng = np.random.default_rng(25)
    n = 40_000
    t = rng.uniform(0, 1, n)
    ys = 4000.0 + rng.uniform(-800, 800, n)
    xs = 1500.0 + 5000.0 * t
    dm = _render(ys, xs)
    labels, _ = segment_nuclei(dm, SegmentConfig(split_touching=True))
    assert labels.max() == 1


def test_opening_removes_a_thin_bridge():
    rng = np.random.default_rng(26)
    a, b = (4000.0, 2000.0, 1200.0), (4000.0, 6000.0, 1200.0)
    base = _scene([a, b], seed=26)
    # a bridge 200 nm wide and 2 um long, as dense as the nuclei, joins them
    n = int(2500 * 2.0 * 0.2)
    ys = 4000.0 + rng.uniform(-100, 100, n)
    xs = rng.uniform(3000.0, 5000.0, n)
    dm = DensityMap(base.data + _render(ys, xs).data, P)
    cfg = SegmentConfig(smooth_sigma_nm=100.0)
    joined, _ = segment_nuclei(dm, cfg)
    assert joined.max() == 1
    opened, _ = segment_nuclei(dm, cfg.model_copy(update={"opening_nm": 200.0}))
    assert opened.max() == 2
    assert all(iou > 0.9 for _, iou in _match(opened, [_truth(*a), _truth(*b)]))


def test_crops_are_clipped_at_the_image_border():
    disk = (300.0, 7700.0, 900.0)  # near the top-right corner
    dm = _scene([disk], seed=27)
    labels, (crop,) = segment_nuclei(dm, SegmentConfig(min_area_um2=0.5, crop_margin_px=50))
    rows, cols = crop.slices
    assert rows.start == 0 and cols.stop == N_PX
    assert crop.origin_nm == (0.0, cols.start * P)


def test_segment_nuclei_errors():
    with pytest.raises(SegmentationError, match="empty"):
        segment_nuclei(DensityMap(np.zeros((50, 50), np.float32), P))
    with pytest.raises(SegmentationError, match="flat"):
        segment_nuclei(DensityMap(np.ones((50, 50), np.float32), P))
    with pytest.raises(StageError, match="2-D"):
        segment_nuclei(DensityMap(np.zeros(5, np.float32), P))
    with pytest.raises(TypeError):
        segment_nuclei(np.zeros((10, 10)))
    dm = _scene([(4000.0, 4000.0, 500.0)], seed=28)
    with pytest.raises(SegmentationError, match=r"the only segmented object \(area 0\.\d+ um"):
        segment_nuclei(dm)


def test_segment_config_validation():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_area_um2"):
        SegmentConfig(min_area_um2=2.0, max_area_um2=1.0)
    for bad in ({"opening_nm": -1.0}, {"crop_margin_px": -1}, {"split_depth_nm": 0.0}):
        with pytest.raises(ValidationError):
            SegmentConfig(**bad)
    cfg = SegmentConfig()
    assert (cfg.exclude_border, cfg.split_touching, cfg.opening_nm, cfg.max_area_um2) == (
        False, False, 0.0, None)
