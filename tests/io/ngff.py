"""Check result stores against the NGFF specification with ome-zarr-models.

:func:`assert_valid_ngff` validates the image, the labels group and every label image of a
store with the models of the store's own NGFF version (0.5 on zarr v3, 0.4 on zarr v2 --
the two :data:`chromarate.io.zarr_store.NGFF_VERSIONS`), so a store that a viewer would
reject fails the test that wrote it.
"""

from __future__ import annotations

from pathlib import Path

import zarr


def _models(version: str):
    if version == "0.5":
        from ome_zarr_models import v05 as models
    elif version == "0.4":
        from ome_zarr_models import v04 as models
    else:  # pragma: no cover - a new writer version needs its models here
        raise AssertionError(f"no ome-zarr-models check for NGFF {version!r}")
    return models


def root_ome(root, version: str) -> dict:
    """A copy of the NGFF metadata of the root group ``root`` of an NGFF ``version`` store."""
    return dict(root.attrs["ome"]) if version == "0.5" else dict(root.attrs)


def put_root_ome(root, version: str, ome: dict) -> None:
    """Write ``ome`` (as :func:`root_ome` returns it, changed) back into ``root``."""
    if version == "0.5":
        root.attrs["ome"] = ome
    else:
        root.attrs.update(ome)


def ngff_version(path: str | Path) -> str:
    """NGFF version of the image at ``path`` ("0.5" under "ome", else the 0.4 field)."""
    attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    if "ome" in attrs:
        return str(attrs["ome"]["version"])
    return str(attrs["multiscales"][0]["version"])


def assert_valid_ngff(path: str | Path, version: str | None = None) -> None:
    """Validate the OME-Zarr image at ``path`` and its label images (ome-zarr-models).

    Parameters
    ----------
    path : str or Path
        A result store.
    version : {"0.5", "0.4"}, optional
        Expected NGFF version (default: whichever the store declares).

    Raises
    ------
    AssertionError
        If the store declares another version than ``version``.
    pydantic.ValidationError
        If the metadata do not satisfy the specification.
    """
    path = Path(path)
    found = ngff_version(path)
    if version is not None:
        assert found == version, f"{path} declares NGFF {found}, expected {version}"
    models = _models(found)
    root = zarr.open_group(str(path), mode="r")
    image = models.Image.from_zarr(root)
    assert image.attributes is not None
    if "labels" in root:
        labels_group = root["labels"]
        models.Labels.from_zarr(labels_group)
        for name in labels_group.group_keys():
            models.ImageLabel.from_zarr(labels_group[name])
