"""Tests of chromarate.segment on synthetic nuclei made of Poisson localizations."""

from __future__ import annotations

import numpy as np
import pytest

from chromarate._types import DensityMap
from chromarate.config import SegmentConfig
from chromarate.errors import SegmentationError, StageError
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
