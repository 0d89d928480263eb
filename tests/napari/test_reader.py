"""The readers: result stores and localization files."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from chromarate._napari._layers import METADATA_KEY
from chromarate._napari._reader import get_localization_reader, get_result_reader
from chromarate.errors import InputFormatError
from chromarate.io.localizations import write_thunderstorm_csv
from chromarate.io.zarr_store import write_result

from .conftest import make_result


def test_result_reader_accepts_results_and_declines_the_rest(store, tmp_path):
    reader = get_result_reader(str(store))
    assert callable(reader)
    layers = reader(str(store))
    assert layers[4][1]["name"] == "cell/1 · rate λ"
    assert get_result_reader([str(store)]) is reader

    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").create_array("a", shape=(2,), dtype="f4")
    (tmp_path / "file.zarr").write_text("not a store")
    damaged = write_result(make_result(), tmp_path / "damaged.ome.zarr")
    (damaged / "0" / "zarr.json").unlink()
    for declined in (foreign, tmp_path / "file.zarr", tmp_path / "missing.zarr", damaged,
                     tmp_path):
        assert get_result_reader(str(declined)) is None, declined
    assert get_result_reader([str(store), str(store)]) is None


def test_localization_reader(tmp_path, tiny_nucleus):
    csv, _, syn = tiny_nucleus
    reader = get_localization_reader(str(csv))
    assert callable(reader)
    (density, points) = reader(str(csv))  # 40,000 localizations: also shown as points
    assert density[2] == "image" and points[2] == "points"
    assert density[1]["scale"] == (20.0, 20.0)
    assert density[1]["metadata"][METADATA_KEY]["localizations"] is not None
    assert len(points[0]) == len(syn.localizations)
    assert density[0].sum() == pytest.approx(len(syn.localizations), rel=0.01)

    notes = tmp_path / "notes.csv"
    notes.write_text("a,b\n1,2\n")
    assert get_localization_reader(str(notes)) is None
    assert get_localization_reader(str(tmp_path / "missing.csv")) is None
    assert get_localization_reader(str(tmp_path)) is None
    picture = tmp_path / "x.png"
    picture.write_bytes(b"\x89PNG")
    assert get_localization_reader(str(picture)) is None

    # a file of a detected format that cannot be read: napari shows the reader's error
    cut = tmp_path / "cut.csv"
    cut.write_bytes(csv.read_bytes()[:3000])
    reader = get_localization_reader(str(cut))
    assert callable(reader)
    with pytest.raises(InputFormatError, match="truncated") as info:
        reader(str(cut))
    assert "cut.csv" in str(info.value)

    # layers are named as the batch names the input's folder (cell.1.csv -> cell.1)
    dotted = tmp_path / "cell.1.csv"
    dotted.write_bytes(csv.read_bytes())
    (density, _) = get_localization_reader(str(dotted))(str(dotted))
    assert density[1]["name"].startswith("cell.1 · density")


def test_viewer_opens_a_result_with_the_right_scale(viewer, store):
    layers = viewer.open(str(store), plugin="chromarate")
    assert [type(layer).__name__ for layer in layers] == ["Image"] * 7 + ["Labels"]
    stack = make_result()
    for layer in layers:
        np.testing.assert_allclose(layer.scale, [20.0, 20.0])
        np.testing.assert_allclose(layer.translate, [110.0, 270.0])
        assert [str(u) for u in layer.units] == ["nanometer", "nanometer"]
    rate = viewer.layers["cell/1 · rate λ"]
    np.testing.assert_array_equal(rate.data, stack.channels["rate"])
    assert rate.colormap.name == "inferno" and rate.visible
    nucleus = viewer.layers["cell/1 · nucleus"]
    np.testing.assert_array_equal(nucleus.data, stack.labels["nucleus"])
    # world coordinates: the centre of pixel (row 3, col 5) is at origin + (3.5, 5.5) * p
    np.testing.assert_allclose(rate.data_to_world((3, 5)), [100 + 3.5 * 20, 260 + 5.5 * 20])


def test_viewer_opens_a_large_result_as_multiscale(viewer, tmp_path, monkeypatch):
    from chromarate.io import zarr_store

    monkeypatch.setattr(zarr_store, "PYRAMID_MAX_SIDE", 16)
    store = write_result(make_result(shape=(30, 40)), tmp_path / "big.ome.zarr")
    layers = viewer.open(str(store), plugin="chromarate")
    density = layers[0]
    assert density.multiscale and len(density.data) == 3
    np.testing.assert_allclose(density.scale, [20.0, 20.0])
    assert density.data[0].shape == (30, 40) and density.data[2].shape == (8, 10)


def test_viewer_opens_a_localization_file(viewer, tmp_path, tiny_nucleus):
    _, _, syn = tiny_nucleus
    small = write_thunderstorm_csv(type(syn.localizations)(syn.localizations.table.iloc[:500],
                                                          syn.localizations.meta),
                                   tmp_path / "small.csv")
    layers = viewer.open(str(small), plugin="chromarate")
    assert [type(layer).__name__ for layer in layers] == ["Image", "Points"]
    assert layers[0].name == "small · density (20 nm pixels)"
    assert len(layers[1].data) == 500


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_layers_sit_where_the_store_translation_says(tmp_path, version):
    """NGFF and napari both put the centre of pixel (0, 0) at the translation: the layers
    are translated by exactly what the store declares, and a store written before the
    pixel-centre convention (corner translation, no record) gives the same placement."""
    from chromarate.io.zarr_store import read_result

    stack = make_result()
    store = write_result(stack, tmp_path / "cell" / "1.ome.zarr", ngff_version=version)
    root = zarr.open_group(str(store), mode="r+")
    ome = dict(root.attrs["ome"]) if version == "0.5" else dict(root.attrs)
    declared = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][1]
    layers = get_result_reader(str(store))(str(store))
    for _, kwargs, _ in layers:
        assert kwargs["translate"] == tuple(declared["translation"][1:]) == (110.0, 270.0)

    # the same store as chromarate wrote it before: corner translation, no record
    block = dict(root.attrs["chromarate"])
    del block["translation"]
    ms = [dict(ome["multiscales"][0])]
    ms[0]["datasets"] = [{**ds, "coordinateTransformations": [
        ds["coordinateTransformations"][0],
        {"type": "translation", "translation": [0.0, *stack.origin_nm]}]}
        for ds in ms[0]["datasets"]]
    if version == "0.5":
        root.attrs["ome"] = {**ome, "multiscales": ms}
    else:
        root.attrs["multiscales"] = ms
    root.attrs["chromarate"] = block
    assert tuple(read_result(store).origin_nm) == stack.origin_nm
    for _, kwargs, _ in get_result_reader(str(store))(str(store)):
        assert kwargs["translate"] == (110.0, 270.0)


def test_a_result_without_rate_std_opens_without_that_layer(tmp_path):
    stack = make_result()
    channels = dict(stack.channels)
    channels["rate_std"] = np.full_like(channels["rate"], np.nan)  # no ensemble
    store = write_result(type(stack)(channels, stack.labels, stack.pixel_size_nm,
                                     stack.origin_nm, stack.provenance),
                         tmp_path / "cell" / "2.ome.zarr")
    layers = get_result_reader(str(store))(str(store))
    names = [kw["name"] for _, kw, _ in layers]
    assert "cell/2 · rate λ" in names and not any("rate std" in n for n in names)
