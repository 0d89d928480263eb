"""Multiscale pyramids and extra label images (chromatin domains) in result stores.

Everything is checked twice: with chromarate's own reader and with ome-zarr-py's.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from chromarate._types import ResultStack
from chromarate.errors import ResultStoreError
from chromarate.io import _zarr_pyramid, zarr_store
from chromarate.io.zarr_store import (is_complete_result, open_result_levels, read_result,
                                      write_result)

from .ngff import assert_valid_ngff, put_root_ome, root_ome
from .test_zarr_store import ORIGIN, PIXEL, SHAPE, VERSIONS, assert_same, make_stack

#: With this limit the 40 x 50 test stack gets levels of 50, 25 and 13 pixels across.
SMALL_LIMIT = 16


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Reference NaN-ignoring block mean with ceil-sized output (slow and obvious)."""
    ny, nx = a.shape
    out = np.full((-(-ny // f), -(-nx // f)), np.nan, np.float64)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = a[i * f:(i + 1) * f, j * f:(j + 1) * f]
            block = block[np.isfinite(block)]
            if block.size:
                out[i, j] = block.mean()
    return out


def domains_stack() -> ResultStack:
    """The test stack plus a ``domains`` label image with 12 numbered domains."""
    stack = make_stack()
    domains = np.zeros(SHAPE, np.uint16)
    for k in range(12):
        cy, cx = 12 + 8 * (k // 4), 13 + 8 * (k % 4)
        domains[cy - 2:cy + 2, cx - 2:cx + 3] = k + 1
    domains[stack.labels["nucleus"] == 0] = 0
    labels = {"nucleus": stack.labels["nucleus"], "domains": domains}
    return ResultStack(stack.channels, labels, PIXEL, ORIGIN, stack.provenance)


@pytest.mark.parametrize(("shape", "sides"), [
    ((300, 400), [400]),
    ((1024, 1024), [1024]),
    ((1025, 10), [1025, 513]),
    ((4096, 3000), [4096, 2048, 1024]),
])
def test_levels_halve_until_the_limit(shape, sides):
    assert zarr_store.PYRAMID_MAX_SIDE == 1024
    levels = zarr_store._levels(shape)
    assert [lv.path for lv in levels] == [str(i) for i in range(len(sides))]
    assert [max(-(-n // lv.factor) for n in shape) for lv in levels] == sides


def test_downsample_ignores_nan_and_keeps_label_values():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 7, 9)).astype(np.float32)
    a[:, :3, :3] = np.nan  # one whole 2x2 block (and parts of others) missing
    out = _zarr_pyramid.downsample(a, 2, labels=False)
    assert out.dtype == np.float32 and out.shape == (2, 4, 5)
    for c in range(2):
        np.testing.assert_allclose(out[c], block_mean(a[c], 2), rtol=1e-6)
    assert np.isnan(out[:, 0, 0]).all() and np.isfinite(out[:, 1, 1]).all()
    lab = rng.integers(0, 5, (7, 9)).astype(np.uint8)
    lo = _zarr_pyramid.downsample(lab, 4, labels=True)
    assert lo.dtype == np.uint8 and lo.shape == (2, 3)
    assert set(np.unique(lo)) <= set(np.unique(lab))


@pytest.mark.parametrize("version", VERSIONS)
def test_pyramid_written_and_read_by_ome_zarr_py(tmp_path, monkeypatch, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    monkeypatch.setattr(zarr_store, "PYRAMID_MAX_SIDE", SMALL_LIMIT)
    stack = make_stack()
    path = write_result(stack, tmp_path / "n.ome.zarr", ngff_version=version)
    assert_valid_ngff(path, version)

    # chromarate's reader: full resolution, every level checked
    assert_same(stack, read_result(path))
    assert is_complete_result(path)
    levels = open_result_levels(path)
    assert list(levels) == list(stack.channels)
    assert [lv.shape for lv in levels["rate"]] == [(40, 50), (20, 25), (10, 13)]
    np.testing.assert_array_equal(levels["rate"][0].compute(), stack.channels["rate"])
    np.testing.assert_allclose(levels["density"][2].compute(),
                               block_mean(stack.channels["density"], 4), rtol=1e-5)

    # ome-zarr-py's reader: names, scale and translation of every level, values; each
    # level's translation is the centre of its first pixel (f x f full-resolution pixels)
    nodes = list(Reader(parse_url(str(path)))())
    image = nodes[0]
    assert image.metadata["channel_names"] == list(stack.channels)
    assert [np.asarray(d).shape for d in image.data] == [(7, 40, 50), (7, 20, 25), (7, 10, 13)]
    transforms = image.metadata["coordinateTransformations"]
    for k, f in enumerate((1, 2, 4)):
        assert transforms[k] == [
            {"type": "scale", "scale": [1.0, PIXEL * f, PIXEL * f]},
            {"type": "translation",
             "translation": [0.0, ORIGIN[0] + PIXEL * f / 2, ORIGIN[1] + PIXEL * f / 2]},
        ]
    names = list(stack.channels)
    i = names.index("rate")
    np.testing.assert_allclose(np.asarray(image.data[1])[i], block_mean(stack.channels["rate"], 2),
                               rtol=1e-5)
    (label,) = [n for n in nodes if "image-label" in n.zarr.root_attrs]
    assert [np.asarray(d).shape for d in label.data] == [(40, 50), (20, 25), (10, 13)]
    np.testing.assert_array_equal(np.asarray(label.data[1]), stack.labels["nucleus"][::2, ::2])


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_pyramid_level_is_damage(tmp_path, monkeypatch, version):
    monkeypatch.setattr(zarr_store, "PYRAMID_MAX_SIDE", SMALL_LIMIT)
    chunk = "2/c/0/0/0" if version == "0.5" else "2/0/0/0"
    path = write_result(make_stack(), tmp_path / "n.ome.zarr", ngff_version=version)
    os.remove(path / chunk)
    assert not is_complete_result(path)
    with pytest.raises(ResultStoreError, match="level 2.*incomplete") as info:
        read_result(path)
    assert info.value.path == str(path)

    path = write_result(make_stack(), tmp_path / "m.ome.zarr", ngff_version=version)
    label_chunk = "labels/nucleus/1/c/0/0" if version == "0.5" else "labels/nucleus/1/0/0"
    os.remove(path / label_chunk)
    with pytest.raises(ResultStoreError, match="label 'nucleus' level 1"):
        read_result(path)

    path = write_result(make_stack(), tmp_path / "k.ome.zarr", ngff_version=version)
    root = zarr.open_group(str(path), mode="r+")
    ome = root_ome(root, version)
    ms = [dict(ome["multiscales"][0])]
    ms[0]["datasets"] = [ms[0]["datasets"][0], ms[0]["datasets"][2]]  # level 2 listed as 1
    ms[0]["datasets"][1] = {**ms[0]["datasets"][1], "path": "1"}
    put_root_ome(root, version, {**ome, "multiscales": ms})
    with pytest.raises(ResultStoreError, match="has shape .* expected .*downsampled 4x"):
        read_result(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_domain_labels_round_trip(tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    stack = domains_stack()
    path = write_result(stack, tmp_path / "n.ome.zarr", ngff_version=version)
    assert_valid_ngff(path, version)
    back = read_result(path)
    assert_same(stack, back)
    assert back.labels["domains"].dtype == np.uint16

    nodes = list(Reader(parse_url(str(path)))())
    labels = {n.metadata["name"]: n for n in nodes if "image-label" in n.zarr.root_attrs}
    assert set(labels) == {"nucleus", "domains"}
    np.testing.assert_array_equal(np.asarray(labels["domains"].data[0]), stack.labels["domains"])
    root = zarr.open_group(str(path), mode="r")
    attrs = root["labels/domains"].attrs.asdict()
    il = (attrs["ome"] if version == "0.5" else attrs)["image-label"]
    colors = {c["label-value"]: tuple(c["rgba"]) for c in il["colors"]}
    assert sorted(colors) == list(range(1, 13))
    assert len(set(colors.values())) == 12  # every domain has its own colour
    assert [p["name"] for p in il["properties"]][:2] == ["domains 1", "domains 2"]
