"""Tests of chromarate.io.truth: the ground-truth .npz of synthetic nuclei."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chromarate.errors import InputFormatError
from chromarate.io.truth import TRUTH_FORMAT, TRUTH_VERSION, read_truth, write_truth


def _fields(shape=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = (yy - shape[0] / 2) ** 2 / (shape[0] / 2.5) ** 2 + (xx - shape[1] / 2) ** 2 / (shape[1] / 2.5) ** 2 < 1
    rate = np.where(mask, 0.5 + rng.random(shape), np.nan)
    phi_w = rng.uniform(0.1, 0.5, shape)
    phi_d = rng.uniform(-0.3, 0.3, shape)
    return dict(rate=rate, phi_w=phi_w, phi_d=phi_d, mask=mask)


def test_round_trip(tmp_path):
    f = _fields()
    meta = {"seed": 42, "generator": "test", "lambda_range": [0.5, 1.5], "nested": {"a": None}}
    path = write_truth(tmp_path / "cell.truth.npz", **f, pixel_size_nm=20.0, origin_nm=(100.0, -40.0), meta=meta)
    assert path == tmp_path / "cell.truth.npz"
    assert [p.name for p in tmp_path.iterdir()] == ["cell.truth.npz"]  # no temporary file left

    t = read_truth(path)
    assert set(t) == {"rate", "phi_w", "phi_d", "mask", "pixel_size_nm", "origin_nm", "meta"}
    for key in ("rate", "phi_w", "phi_d"):
        assert t[key].dtype == np.float32
        np.testing.assert_array_equal(t[key], f[key].astype(np.float32))
    assert t["mask"].dtype == bool
    np.testing.assert_array_equal(t["mask"], f["mask"])
    assert np.isnan(t["rate"][~f["mask"]]).all()
    assert t["pixel_size_nm"] == 20.0 and isinstance(t["pixel_size_nm"], float)
    assert t["origin_nm"] == (100.0, -40.0) and isinstance(t["origin_nm"], tuple)
    assert t["meta"] == meta


def test_documented_keys_and_no_pickle(tmp_path):
    path = write_truth(tmp_path / "t.npz", **_fields(), pixel_size_nm=10, origin_nm=(0, 0), meta={"k": 1})
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["format", "version", "rate", "phi_w", "phi_d", "mask", "pixel_size_nm", "origin_nm", "meta"]
        )
        assert str(npz["format"]) == TRUTH_FORMAT and int(npz["version"]) == TRUTH_VERSION
        assert json.loads(str(npz["meta"])) == {"k": 1}


def test_written_at_exact_path_and_overwritten(tmp_path):
    p = tmp_path / "truth"  # no .npz suffix added
    write_truth(p, **_fields(seed=1), pixel_size_nm=10, origin_nm=(0, 0), meta={})
    write_truth(p, **_fields(seed=2), pixel_size_nm=15, origin_nm=(0, 0), meta={"v": 2})
    assert [q.name for q in tmp_path.iterdir()] == ["truth"]
    t = read_truth(p)
    assert t["pixel_size_nm"] == 15.0 and t["meta"] == {"v": 2}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (dict(rate=np.zeros((3, 4, 5))), ValueError),
        (dict(phi_w=np.zeros((5, 5))), ValueError),
        (dict(pixel_size_nm=0.0), ValueError),
        (dict(pixel_size_nm=float("nan")), ValueError),
        (dict(origin_nm=(1.0,)), ValueError),
        (dict(meta={"x": object()}), TypeError),
        (dict(meta=[1, 2]), TypeError),
    ],
)
def test_write_validates(tmp_path, change, error):
    kwargs = dict(**_fields(), pixel_size_nm=10.0, origin_nm=(0.0, 0.0), meta={})
    kwargs.update(change)
    with pytest.raises(error):
        write_truth(tmp_path / "t.npz", **kwargs)
    assert list(tmp_path.iterdir()) == []


def _good(tmp_path):
    return write_truth(tmp_path / "good.npz", **_fields(), pixel_size_nm=10.0, origin_nm=(0.0, 0.0), meta={})


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    out = path.with_name("bad.npz")
    np.savez(out, **data)
    return out


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda d: d / "missing.npz", "file not found"),
        (lambda d: d, "directory"),
        (lambda d: (d / "bad.npz").write_bytes(bytes(range(256)) * 4) and d / "bad.npz", "cannot read"),
        (lambda d: (d / "bad.npz").write_bytes(_good(d).read_bytes()[:300]) and d / "bad.npz", "cannot read"),
        (lambda d: np.save(d / "bad.npy", np.zeros(3)) or d / "bad.npy", "single .npy array"),
        (lambda d: _rewrite(_good(d), rate=None, meta=None), "missing key(s) rate, meta"),
        (lambda d: _rewrite(_good(d), phi_d=np.zeros((2, 2), np.float32)), "'phi_d' has shape"),
        (lambda d: _rewrite(_good(d), mask=np.zeros((24, 32), np.float32)), "'mask' has dtype"),
        (lambda d: _rewrite(_good(d), meta=np.array("{not json")), "not valid JSON"),
        (lambda d: _rewrite(_good(d), meta=np.array("[1, 2]")), "JSON object"),
        (lambda d: _rewrite(_good(d), format=np.array("something-else")), "expected 'chromarate-truth'"),
        (lambda d: _rewrite(_good(d), version=np.array(99)), "unsupported truth file version"),
        (lambda d: _rewrite(_good(d), pixel_size_nm=np.array(-1.0)), "positive pixel size"),
    ],
    ids=["missing", "directory", "garbage", "truncated", "npy", "keys", "shape", "mask-dtype",
         "bad-json", "json-list", "format", "version", "pixel-size"],
)
def test_read_errors(tmp_path, make, phrase):
    path = make(tmp_path)
    with pytest.raises(InputFormatError) as info:
        read_truth(path)
    assert path.name in str(info.value)
    assert phrase in str(info.value)
