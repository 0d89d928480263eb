"""The NGFF format classes (chromarate.io._ngff): metadata each specification accepts.

The classes are checked on their own, without writing a store, against the pydantic models
of ``ome-zarr-models`` for the version each one writes; tests/io/ngff.py checks whole
stores the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

from chromarate.io import _ngff, zarr_store
from chromarate.io._ngff import FORMATS, NgffFormat, find_metadata, ngff_format

models = pytest.importorskip("ome_zarr_models")

PIXEL = 20.0
ORIGIN = (100.0, 260.0)
LEVELS = [("0", 1), ("1", 2), ("2", 4)]
VERSIONS = list(FORMATS)


def _models(version: str):
    from ome_zarr_models.v04.image import ImageAttrs as Image04
    from ome_zarr_models.v04.image_label import ImageLabelAttrs as ImageLabel04
    from ome_zarr_models.v04.labels import LabelsAttrs as Labels04
    from ome_zarr_models.v05.image import ImageAttrs as Image05
    from ome_zarr_models.v05.image_label import ImageLabelAttrs as ImageLabel05
    from ome_zarr_models.v05.labels import LabelsAttrs as Labels05

    return {"0.4": (Image04, ImageLabel04, Labels04),
            "0.5": (Image05, ImageLabel05, Labels05)}[version]


def _image_attrs(fmt: NgffFormat) -> dict:
    windows = {"rate": {"min": 0.5, "max": 3.0, "start": 1.0, "end": 2.0},
               "unknown": {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}}
    ome = {"multiscales": fmt.multiscales("cell", LEVELS, pixel_size_nm=PIXEL,
                                          origin_nm=ORIGIN, with_channel=True),
           "omero": fmt.omero("cell", windows)}
    return fmt.attributes(ome, {"chromarate": {"schema_version": 1}})


def _label_attrs(fmt: NgffFormat, values) -> dict:
    data = np.asarray(values)
    return fmt.attributes({
        "multiscales": fmt.multiscales("nucleus", LEVELS[:1], pixel_size_nm=PIXEL,
                                       origin_nm=ORIGIN, with_channel=False),
        "image-label": fmt.image_label("nucleus", data),
    })


def test_one_format_per_written_version():
    assert zarr_store.NGFF_VERSIONS == {"0.5": 3, "0.4": 2}
    for version, fmt in FORMATS.items():
        assert ngff_format(version) is fmt and fmt.version == version
        assert isinstance(fmt, NgffFormat)
    with pytest.raises(KeyError):
        ngff_format("0.3")


@pytest.mark.parametrize("version", VERSIONS)
def test_image_metadata_validates_against_ome_zarr_models(version):
    fmt = ngff_format(version)
    image_model, _, _ = _models(version)
    attrs = _image_attrs(fmt)
    found, ome = find_metadata(attrs)
    assert found == version
    assert attrs["chromarate"] == {"schema_version": 1}  # beside the NGFF metadata
    image = image_model.model_validate(dict(ome))
    assert [ds.path for ds in image.multiscales[0].datasets] == ["0", "1", "2"]
    assert [a.name for a in image.multiscales[0].axes] == ["c", "y", "x"]


@pytest.mark.parametrize("version", VERSIONS)
def test_label_metadata_validates_against_ome_zarr_models(version):
    fmt = ngff_format(version)
    _, label_model, labels_model = _models(version)
    for values in ([[0, 1], [1, 1]], [[0, 3], [7, 9]]):
        attrs = _label_attrs(fmt, values)
        found, ome = find_metadata(attrs)
        assert found == version
        label_model.model_validate(dict(ome))
    group = fmt.attributes(fmt.labels(["nucleus", "domains"]))
    _, ome = find_metadata(group)
    assert labels_model.model_validate(dict(ome)).labels == ["nucleus", "domains"]


@pytest.mark.parametrize("version", VERSIONS)
def test_where_the_metadata_lives(version):
    attrs = _image_attrs(ngff_format(version))
    if version == "0.5":  # under "ome", versioned once
        assert set(attrs) == {"ome", "chromarate"} and attrs["ome"]["version"] == "0.5"
        assert "version" not in attrs["ome"]["multiscales"][0]
    else:  # top level, each multiscale versioned
        assert set(attrs) == {"multiscales", "omero", "chromarate"}
        assert attrs["multiscales"][0]["version"] == "0.4"


def test_transforms_put_each_level_at_the_centre_of_its_first_pixel():
    for fmt in FORMATS.values():
        ms = fmt.multiscales("x", LEVELS, pixel_size_nm=PIXEL, origin_nm=ORIGIN,
                             with_channel=True)
        for (path, f), ds in zip(LEVELS, ms[0]["datasets"]):
            step = PIXEL * f
            assert ds["path"] == path
            assert ds["coordinateTransformations"] == [
                {"type": "scale", "scale": [1.0, step, step]},
                {"type": "translation",
                 "translation": [0.0, ORIGIN[0] + step / 2, ORIGIN[1] + step / 2]}]


def test_formats_differ_only_in_the_versioned_parts():
    new, old = ngff_format("0.5"), ngff_format("0.4")
    a = _image_attrs(new)["ome"]
    b = _image_attrs(old)
    assert a["omero"] == b["omero"]
    assert a["multiscales"][0] == {k: v for k, v in b["multiscales"][0].items()
                                   if k != "version"}
    assert new.array_options(["y", "x"]) == {"dimension_names": ["y", "x"]}
    assert old.array_options(["y", "x"])["chunk_key_encoding"]["separator"] == "/"


def test_find_metadata_of_foreign_and_versionless_attributes():
    assert find_metadata({}) == (None, {})
    assert find_metadata({"ome": {"version": "0.6"}})[0] == "0.6"
    labels_04 = {"labels": ["nucleus"]}  # a 0.4 labels group declares no version
    assert find_metadata(labels_04) == (None, labels_04)
    assert find_metadata({"image-label": {"version": "0.4"}})[0] == "0.4"


def test_many_label_values_get_distinct_colours():
    block = ngff_format("0.5").image_label("domains", np.arange(300).reshape(15, 20))
    colours = [tuple(c["rgba"]) for c in block["colors"]]
    assert len(colours) == 256 and len(set(colours)) > 200
    single = ngff_format("0.5").image_label("nucleus", np.eye(3, dtype=np.uint8))
    assert single["colors"] == [{"label-value": 1, "rgba": list(_ngff._LABEL_RGBA)}]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_models_reject_what_the_specification_forbids(version):
    """The check above can fail: a translation of the wrong length is not NGFF."""
    image_model, _, _ = _models(version)
    _, ome = find_metadata(_image_attrs(ngff_format(version)))
    ms = dict(ome["multiscales"][0])
    ms["datasets"] = [dict(ms["datasets"][0], coordinateTransformations=[
        {"type": "scale", "scale": [1.0, PIXEL, PIXEL]},
        {"type": "translation", "translation": [0.0, 1.0]}])]
    with pytest.raises(Exception, match="(?i)translation|dimension|length|ndim|axes"):
        image_model.model_validate({**ome, "multiscales": [ms]})
