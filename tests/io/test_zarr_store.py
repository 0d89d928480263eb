"""Tests of chromarate.io.zarr_store: OME-Zarr result stores."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from chromarate._types import ResultStack
from chromarate.errors import ChromarateError, ResultStoreError
from chromarate.export import CHANNELS, SCHEMA_VERSION
from chromarate.io import _zarr_commit, zarr_store
from chromarate.io.zarr_store import is_complete_result, read_result, write_result

from .ngff import assert_valid_ngff, put_root_ome, root_ome

SHAPE = (40, 50)
PIXEL = 20.0
ORIGIN = (100.0, 260.0)
VERSIONS = ["0.5", "0.4"]
#: NGFF translation of the test stack: the centre of pixel (0, 0), half a pixel past ORIGIN
CENTRE = (ORIGIN[0] + PIXEL / 2, ORIGIN[1] + PIXEL / 2)


def make_stack(seed: int = 0) -> ResultStack:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    mask = ((yy - 20) / 16.0) ** 2 + ((xx - 25) / 20.0) ** 2 < 1
    channels = {}
    for i, name in enumerate(CHANNELS):
        a = (rng.normal(size=SHAPE) + i).astype(np.float32)
        if name in ("rate", "rate_std", "residual"):
            a[~mask] = np.nan
        channels[name] = a
    return ResultStack(
        channels=channels,
        labels={"nucleus": mask.astype(np.uint8)},
        pixel_size_nm=PIXEL,
        origin_nm=ORIGIN,
        provenance={"schema_version": SCHEMA_VERSION, "config_hash": "abc123",
                    "input": {"path": "cell.csv", "sha256": "00ff"}, "seed": seed,
                    "fit": {"device": "cpu", "final_loss": 0.5}},
    )


def assert_same(a: ResultStack, b: ResultStack) -> None:
    assert list(a.channels) == list(b.channels)
    for name in a.channels:
        np.testing.assert_array_equal(a.channels[name], b.channels[name], err_msg=name)
        assert b.channels[name].dtype == np.float32
    assert set(a.labels) == set(b.labels)
    for name in a.labels:
        np.testing.assert_array_equal(a.labels[name], b.labels[name])
    assert b.pixel_size_nm == a.pixel_size_nm
    assert tuple(b.origin_nm) == tuple(a.origin_nm)
    assert dict(b.provenance) == dict(a.provenance)


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip(tmp_path, version):
    stack = make_stack()
    path = tmp_path / "out" / "3.ome.zarr"
    assert write_result(stack, path, ngff_version=version) == path
    assert_valid_ngff(path, version)
    assert_same(stack, read_result(path))
    assert is_complete_result(path)
    # no temporary or backup directories left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["3.ome.zarr"]


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_layout(tmp_path, version):
    path = write_result(make_stack(), tmp_path / "n.ome.zarr", ngff_version=version)
    assert_valid_ngff(path, version)
    root = zarr.open_group(str(path), mode="r")
    attrs = root.attrs.asdict()
    if version == "0.5":
        assert root.metadata.zarr_format == 3
        assert (path / "zarr.json").is_file()
        ome = attrs["ome"]
        assert ome["version"] == "0.5"
        assert "version" not in ome["multiscales"][0]
        assert list(root["0"].metadata.dimension_names) == ["c", "y", "x"]
    else:
        assert root.metadata.zarr_format == 2
        assert (path / ".zattrs").is_file() and (path / ".zgroup").is_file()
        ome = attrs
        assert ome["multiscales"][0]["version"] == "0.4"
    assert attrs["chromarate"]["schema_version"] == SCHEMA_VERSION
    assert attrs["chromarate"]["config_hash"] == "abc123"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert [a["type"] for a in ms["axes"]] == ["channel", "space", "space"]
    assert ms["axes"][1]["unit"] == ms["axes"][2]["unit"] == "nanometer"
    assert ms["datasets"][0]["path"] == "0"
    assert ms["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [1.0, PIXEL, PIXEL]},
        {"type": "translation", "translation": [0.0, *CENTRE]},
    ]
    assert attrs["chromarate"]["translation"] == "pixel_centre"
    arr = root["0"]
    assert arr.shape == (len(CHANNELS), *SHAPE) and arr.dtype == np.float32
    assert arr.chunks == (1, *SHAPE)  # (1, 256, 256) clipped to the image
    channels = ome["omero"]["channels"]
    assert [c["label"] for c in channels] == list(CHANNELS)
    for c in channels:
        w = c["window"]
        assert all(np.isfinite([w["min"], w["start"], w["end"], w["max"]]))
        assert w["min"] <= w["start"] < w["end"] <= w["max"]
        assert len(c["color"]) == 6
    # label image
    labels_attrs = root["labels"].attrs.asdict()
    lab_attrs = root["labels/nucleus"].attrs.asdict()
    if version == "0.5":
        labels_attrs, lab_attrs = labels_attrs["ome"], lab_attrs["ome"]
        assert lab_attrs["version"] == "0.5"
    assert labels_attrs["labels"] == ["nucleus"]
    assert lab_attrs["image-label"]["source"] == {"image": "../../"}
    lms = lab_attrs["multiscales"][0]
    assert [a["name"] for a in lms["axes"]] == ["y", "x"]
    assert lms["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [PIXEL, PIXEL]},
        {"type": "translation", "translation": list(CENTRE)},
    ]
    # the provenance block is strict JSON
    json.dumps(attrs["chromarate"], allow_nan=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_readable_by_ome_zarr_py(tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    stack = make_stack()
    path = write_result(stack, tmp_path / "n.ome.zarr", ngff_version=version)
    assert_valid_ngff(path, version)
    loc = parse_url(str(path))
    assert loc is not None
    assert loc.version == version
    nodes = list(Reader(loc)())
    image = nodes[0]
    assert image.metadata["channel_names"] == list(CHANNELS)
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "y", "x"]
    assert image.metadata["axes"][1]["unit"] == "nanometer"
    # NGFF: the translation is the centre of pixel (0, 0); chromarate's origin its corner
    assert image.metadata["coordinateTransformations"][0] == [
        {"type": "scale", "scale": [1.0, PIXEL, PIXEL]},
        {"type": "translation", "translation": [0.0, *CENTRE]},
    ]
    data = np.asarray(image.data[0])
    assert data.shape == (len(CHANNELS), *SHAPE)
    for i, name in enumerate(CHANNELS):
        np.testing.assert_array_equal(data[i], stack.channels[name])
    label_nodes = [n for n in nodes if "image-label" in n.zarr.root_attrs]
    assert len(label_nodes) == 1
    lab = label_nodes[0]
    assert lab.metadata["name"] == "nucleus"
    assert lab.zarr.path.rstrip("/").endswith(os.path.join("labels", "nucleus"))
    np.testing.assert_array_equal(np.asarray(lab.data[0]), stack.labels["nucleus"])


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_against_ome_zarr_models(tmp_path, version):
    models = pytest.importorskip("ome_zarr_models")
    path = write_result(make_stack(), tmp_path / "n.ome.zarr", ngff_version=version)
    assert_valid_ngff(path, version)
    image = models.open_ome_zarr(zarr.open_group(str(path), mode="r"))
    assert type(image).__name__ == "Image"
    label = models.open_ome_zarr(zarr.open_group(str(path / "labels" / "nucleus"), mode="r"))
    assert type(label).__name__ == "ImageLabel"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_validator_rejects_invalid_metadata(tmp_path, version):
    """assert_valid_ngff can fail: a translation of the wrong length is not NGFF."""
    path = write_result(make_stack(), tmp_path / "n.ome.zarr", ngff_version=version)
    root = zarr.open_group(str(path), mode="r+")
    ome = root_ome(root, version)
    ms = [dict(ome["multiscales"][0])]
    ds = dict(ms[0]["datasets"][0])
    ds["coordinateTransformations"] = [ds["coordinateTransformations"][0],
                                       {"type": "translation", "translation": [0.0, 1.0]}]
    ms[0]["datasets"] = [ds]
    put_root_ome(root, version, {**ome, "multiscales": ms})
    with pytest.raises(Exception, match="(?i)translation|dimension|length|ndim|axes"):
        assert_valid_ngff(path, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_stores_without_the_convention_record_hold_the_pixel_corner(tmp_path, version):
    """A store written before the pixel-centre translation (no record in its block, the
    corner as translation) still places every pixel where it was."""
    stack = make_stack()
    path = write_result(stack, tmp_path / "old.ome.zarr", ngff_version=version)
    root = zarr.open_group(str(path), mode="r+")
    block = dict(root.attrs["chromarate"])
    del block["translation"]
    ome = root_ome(root, version)
    ms = [dict(ome["multiscales"][0])]
    ms[0]["datasets"] = [{**ds, "coordinateTransformations": [
        ds["coordinateTransformations"][0],
        {"type": "translation", "translation": [0.0, *ORIGIN]}]} for ds in ms[0]["datasets"]]
    put_root_ome(root, version, {**ome, "multiscales": ms})
    root.attrs["chromarate"] = block
    back = read_result(path)
    assert tuple(back.origin_nm) == ORIGIN
    assert dict(back.provenance) == dict(stack.provenance)
    # and a current store: the same origin from the centre translation
    assert tuple(read_result(write_result(stack, tmp_path / "new.ome.zarr",
                                          ngff_version=version)).origin_nm) == ORIGIN

    block["translation"] = "somewhere"
    root.attrs["chromarate"] = block
    with pytest.raises(ResultStoreError, match="translation convention 'somewhere'"):
        read_result(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_all_nan_channels_are_not_written(tmp_path, version):
    stack = make_stack()
    channels = dict(stack.channels)
    channels["rate_std"] = np.full(SHAPE, np.nan, np.float32)  # a fit without an ensemble
    path = write_result(ResultStack(channels, stack.labels, PIXEL, ORIGIN, stack.provenance),
                        tmp_path / "n.ome.zarr", ngff_version=version)
    assert_valid_ngff(path, version)
    back = read_result(path)
    assert list(back.channels) == [c for c in CHANNELS if c != "rate_std"]
    for name in back.channels:
        np.testing.assert_array_equal(back.channels[name], stack.channels[name])
    root = zarr.open_group(str(path), mode="r")
    assert root["0"].shape == (len(CHANNELS) - 1, *SHAPE)
    assert "rate_std" not in [c["label"] for c in root_ome(root, version)["omero"]["channels"]]


def test_overwrite_replaces_and_overwrite_false_refuses(tmp_path):
    path = tmp_path / "n.ome.zarr"
    write_result(make_stack(0), path)
    second = make_stack(1)
    write_result(second, path, ngff_version="0.4")  # overwrite=True by default, any version
    assert_same(second, read_result(path))
    with pytest.raises(ResultStoreError, match="exists") as info:
        write_result(make_stack(2), path, overwrite=False)
    assert info.value.path == str(path)
    assert_same(second, read_result(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ome.zarr"]


@pytest.mark.parametrize("version", VERSIONS)
def test_crash_mid_write_leaves_nothing_new(tmp_path, monkeypatch, version):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(zarr_store, "_write_labels", boom)
    path = tmp_path / "n.ome.zarr"
    with pytest.raises(ResultStoreError, match="disk on fire") as info:
        write_result(make_stack(), path, ngff_version=version)
    assert info.value.path == str(path)
    assert list(tmp_path.iterdir()) == []  # neither the store nor its temp dir


@pytest.mark.parametrize("version", VERSIONS)
def test_crash_mid_overwrite_keeps_existing_store(tmp_path, monkeypatch, version):
    path = tmp_path / "n.ome.zarr"
    good = make_stack(0)
    write_result(good, path, ngff_version=version)
    written = []
    real = zarr_store._write_labels

    def half_then_boom(stack, root, **kwargs):
        real(stack, root, **kwargs)
        written.append(True)
        raise OSError("no space left on device")

    monkeypatch.setattr(zarr_store, "_write_labels", half_then_boom)
    with pytest.raises(ResultStoreError, match="no space left"):
        write_result(make_stack(1), path)
    assert written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ome.zarr"]
    assert is_complete_result(path)
    assert_same(good, read_result(path))


def test_overwrite_is_one_atomic_exchange(tmp_path, monkeypatch):
    from chromarate.io import _atomic

    path = tmp_path / "n.ome.zarr"
    write_result(make_stack(0), path)
    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir(), probe_b.mkdir()
    if not _atomic.exchange_paths(probe_a, probe_b):
        pytest.skip("this system has no atomic rename exchange (renameat2)")
    probe_a.rmdir(), probe_b.rmdir()

    def no_rename(*args):
        raise AssertionError("the store was moved aside instead of exchanged")

    monkeypatch.setattr(zarr_store.os, "rename", no_rename)
    second = make_stack(1)
    write_result(second, path)
    assert_same(second, read_result(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ome.zarr"]


def test_failed_final_rename_restores_old_store(tmp_path, monkeypatch):
    path = tmp_path / "n.ome.zarr"
    good = make_stack(0)
    write_result(good, path)
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # old aside worked; new into place fails
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(zarr_store.os, "rename", rename)
    # the fallback of systems without an atomic exchange: move the old store aside first
    monkeypatch.setattr(_zarr_commit, "exchange_paths", lambda a, b: False)
    with pytest.raises(ResultStoreError, match="rename failed"):
        write_result(make_stack(1), path)
    monkeypatch.setattr(zarr_store.os, "rename", real_rename)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ome.zarr"]
    assert_same(good, read_result(path))


def test_keyboard_interrupt_cleans_up_and_propagates(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zarr_store, "_write_labels", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_result(make_stack(), tmp_path / "n.ome.zarr")
    assert list(tmp_path.iterdir()) == []


def test_missing_path_and_non_zarr(tmp_path):
    missing = tmp_path / "nope.ome.zarr"
    with pytest.raises(ResultStoreError, match="no such") as info:
        read_result(missing)
    assert info.value.path == str(missing)
    assert not is_complete_result(missing)

    a_file = tmp_path / "file.ome.zarr"
    a_file.write_text("hello")
    with pytest.raises(ResultStoreError, match="not a zarr store"):
        read_result(a_file)

    empty_dir = tmp_path / "empty.ome.zarr"
    empty_dir.mkdir()
    with pytest.raises(ResultStoreError, match="not a zarr store") as info:
        read_result(empty_dir)
    assert str(empty_dir) in str(info.value)
    assert not is_complete_result(empty_dir)
    assert issubclass(ResultStoreError, (ChromarateError, OSError))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside ome-zarr's writer
@pytest.mark.parametrize("version", VERSIONS)
def test_foreign_ome_zarr_is_refused(tmp_path, version):
    from ome_zarr.format import format_from_version
    from ome_zarr.writer import write_image

    path = tmp_path / "foreign.ome.zarr"
    fmt = format_from_version(version)
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    write_image(np.zeros((2, 16, 16), np.float32), group, axes="cyx", fmt=fmt, scale_factors=[])
    with pytest.raises(ResultStoreError, match="not a chromarate result") as info:
        read_result(path)
    assert info.value.path == str(path)
    assert "OME-Zarr" in str(info.value)
    assert not is_complete_result(path)

    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("a", shape=(2,), dtype="f4")
    with pytest.raises(ResultStoreError, match="not a chromarate result"):
        read_result(plain)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("bad", [99, None, "1"])
def test_unsupported_schema_version(tmp_path, version, bad):
    path = write_result(make_stack(), tmp_path / "n.ome.zarr", ngff_version=version)
    root = zarr.open_group(str(path), mode="r+")
    block = dict(root.attrs["chromarate"])
    block["schema_version"] = bad
    root.attrs["chromarate"] = block
    with pytest.raises(ResultStoreError, match="schema version") as info:
        read_result(path)
    assert info.value.path == str(path)
    assert not is_complete_result(path)


def test_writer_refuses_foreign_schema_version(tmp_path):
    stack = make_stack()
    bad = ResultStack(stack.channels, stack.labels, stack.pixel_size_nm, stack.origin_nm,
                      {**stack.provenance, "schema_version": 7})
    with pytest.raises(ResultStoreError, match="schema_version"):
        write_result(bad, tmp_path / "n.ome.zarr")
    # a missing schema version is filled in
    plain = ResultStack(stack.channels, stack.labels, stack.pixel_size_nm, stack.origin_nm,
                        {"note": np.float32(1.5)})
    back = read_result(write_result(plain, tmp_path / "m.ome.zarr"))
    assert back.provenance == {"note": 1.5, "schema_version": SCHEMA_VERSION}
    assert list(tmp_path.iterdir()) == [tmp_path / "m.ome.zarr"]


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_or_damaged_arrays(tmp_path, version):
    meta = "zarr.json" if version == "0.5" else ".zarray"
    chunk = ("0/c/3/0/0" if version == "0.5" else "0/3/0/0")

    p1 = write_result(make_stack(), tmp_path / "a.ome.zarr", ngff_version=version)
    os.remove(p1 / "0" / meta)
    with pytest.raises(ResultStoreError, match="'0' is missing") as info:
        read_result(p1)
    assert info.value.path == str(p1)
    assert not is_complete_result(p1)

    p2 = write_result(make_stack(), tmp_path / "b.ome.zarr", ngff_version=version)
    os.remove(p2 / chunk)
    with pytest.raises(ResultStoreError, match="incomplete"):
        read_result(p2)
    assert not is_complete_result(p2)

    p3 = write_result(make_stack(), tmp_path / "c.ome.zarr", ngff_version=version)
    (p3 / chunk).write_bytes(b"\x00garbage\xff" * 7)
    with pytest.raises(ResultStoreError, match="damaged") as info:
        read_result(p3)
    assert info.value.path == str(p3)

    p4 = write_result(make_stack(), tmp_path / "d.ome.zarr", ngff_version=version)
    label_meta = p4 / "labels" / "nucleus" / "0" / meta
    os.remove(label_meta)
    with pytest.raises(ResultStoreError, match="label 'nucleus'"):
        read_result(p4)

    p5 = write_result(make_stack(), tmp_path / "e.ome.zarr", ngff_version=version)
    root = zarr.open_group(str(p5), mode="r+")
    if version == "0.5":
        ome = dict(root.attrs["ome"])
        ome["multiscales"] = [{"axes": ["c", "y", "x"], "datasets": [{"path": 5}]}]
        root.attrs["ome"] = ome
    else:
        root.attrs["multiscales"] = "garbage"
    with pytest.raises(ResultStoreError, match="multiscales|NGFF version"):
        read_result(p5)
    assert not is_complete_result(p5)


def test_invalid_stacks_are_refused(tmp_path):
    stack = make_stack()
    ragged = dict(stack.channels)
    ragged["rate"] = ragged["rate"][:-1]
    cases = [
        ResultStack({}, {}, PIXEL, ORIGIN, {}),
        ResultStack(ragged, stack.labels, PIXEL, ORIGIN, {}),
        ResultStack(stack.channels, {"nucleus": np.ones((3, 3), np.uint8)}, PIXEL, ORIGIN, {}),
        ResultStack(stack.channels, {"nucleus": np.ones(SHAPE, np.float32)}, PIXEL, ORIGIN, {}),
        ResultStack(stack.channels, stack.labels, 0.0, ORIGIN, {}),
        ResultStack(stack.channels, stack.labels, PIXEL, (np.nan, 0.0), {}),
    ]
    for bad in cases:
        with pytest.raises(ResultStoreError):
            write_result(bad, tmp_path / "n.ome.zarr")
    with pytest.raises(ResultStoreError, match="NGFF"):
        write_result(stack, tmp_path / "n.ome.zarr", ngff_version="0.3")
    assert list(tmp_path.iterdir()) == []


def test_export_to_store_end_to_end(tmp_path):
    from chromarate._types import DensityMap, FitResult, PhaseFields
    from chromarate.export import build_result_stack

    rng = np.random.default_rng(5)
    mask = np.zeros(SHAPE, bool)
    mask[5:35, 8:44] = True
    phi_d = rng.uniform(-0.2, 0.4, SHAPE)
    fields = PhaseFields(0.5 - 0.5 * phi_d, phi_d, mask, PIXEL, ORIGIN)
    dmap = DensityMap(rng.poisson(3, SHAPE).astype(np.float32), PIXEL, ORIGIN)
    fit = FitResult(rate=np.where(mask, 1.5, np.nan), phi_d_fit=phi_d, residual=0 * phi_d,
                    trusted=mask, history={"loss": [np.float32(0.25)]},
                    meta={"eps": np.float64(4.0)})
    stack = build_result_stack(density=dmap, denoised=dmap, fields=fields, fit=fit,
                               provenance={"config_hash": "x"})
    path = write_result(stack, tmp_path / "1.ome.zarr")
    assert_valid_ngff(path, "0.5")
    back = read_result(path)
    assert np.isnan(stack.channels["rate_std"]).all()  # no ensemble: not written
    assert list(back.channels) == [c for c in CHANNELS if c != "rate_std"]
    for name in back.channels:
        np.testing.assert_array_equal(back.channels[name], stack.channels[name])
    assert back.provenance["fit"]["final_loss"] == 0.25


def test_info_says_a_result_without_a_trusted_label_is_summarised_over_the_nucleus(tmp_path):
    from click.testing import CliRunner

    from chromarate.cli import cli
    from chromarate.export import TRUSTED_LABEL
    from chromarate.io.zarr_store import write_result

    stack = make_stack()
    old = write_result(stack, tmp_path / "old" / "1.ome.zarr")
    res = CliRunner().invoke(cli, ["info", str(old)])
    assert res.exit_code == 0, res.output
    assert "over the nucleus: this result stores no 'trusted' label" in res.output
    trusted = np.zeros_like(stack.labels["nucleus"])
    trusted[: trusted.shape[0] // 2] = stack.labels["nucleus"][: trusted.shape[0] // 2]
    new = write_result(ResultStack(stack.channels, {**stack.labels, TRUSTED_LABEL: trusted},
                                   PIXEL, ORIGIN, provenance=stack.provenance),
                       tmp_path / "new" / "1.ome.zarr")
    res = CliRunner().invoke(cli, ["info", str(new)])
    assert res.exit_code == 0, res.output
    assert "% of the nucleus where it is trusted" in res.output


def test_settle_backups_restores_removes_and_leaves_links_alone(tmp_path):
    """An interrupted rewrite's backup is put back where the result path is empty, removed
    where the new store is in place; a link named like a backup (dangling, or pointing out
    of the folder) is neither followed nor put in place, and stops nothing."""
    from chromarate.io.zarr_store import settle_backups

    folder = tmp_path / "cell"
    kept = write_result(make_stack(), folder / "1.ome.zarr")
    kept.rename(folder / ".1.ome.zarr.old-aaaa")
    write_result(make_stack(), folder / "2.ome.zarr")
    write_result(make_stack(), folder / ".2.ome.zarr.old-bbbb")
    os.symlink(tmp_path / "nowhere", folder / ".3.ome.zarr.old-cccc")
    outside = write_result(make_stack(), tmp_path / "outside.ome.zarr")
    os.symlink(outside, folder / ".4.ome.zarr.old-dddd")
    done = {p.name: action for p, action in settle_backups(folder)}
    assert done == {".1.ome.zarr.old-aaaa": "restored", ".2.ome.zarr.old-bbbb": "removed"}
    assert is_complete_result(folder / "1.ome.zarr") and is_complete_result(folder / "2.ome.zarr")
    assert not (folder / "3.ome.zarr").exists() and not (folder / "4.ome.zarr").exists()
    assert is_complete_result(outside)
