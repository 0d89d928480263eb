"""Result stores: one OME-Zarr image per nucleus (docs/design.md section 8).

Layout written by :func:`write_result` (NGFF 0.5 on zarr v3 by default, NGFF 0.4 on zarr v2
on request)::

    <name>.ome.zarr/
        zarr.json | .zattrs   "ome" (0.5) or top level (0.4): multiscales, omero, labels;
                              "chromarate": the provenance block (schema_version, ...)
        0/                    float32 (c, y, x), chunks (1, 256, 256)
        1/, 2/, ...           pyramid levels, each downsampled 2x (NaN-ignoring block mean),
                              only while a side exceeds PYRAMID_MAX_SIDE (1024) pixels
        labels/
            nucleus/          label image: multiscales (y, x) + image-label
                0/ (1/ ...)   integer (y, x); pyramid levels take every 2nd pixel
            domains/          heterochromatin domains, when the stack carries them

Axes are ``c`` (channel), ``y`` and ``x`` (space, nanometer). Each resolution level carries
a ``scale`` transform ``[1, p * f, p * f]`` (``f`` its downsampling factor) and a
``translation`` ``[0, origin_y + p * f / 2, origin_x + p * f / 2]``: NGFF places the
*centre* of array element (0, 0) at the translation, so each level's translation is the
centre of its first pixel, while ``origin`` -- in memory, as everywhere in chromarate
(docs/design.md section 4) -- is the *corner* of pixel (0, 0). The ``chromarate`` block
records this convention as ``"translation": "pixel_centre"``; stores written before it (no
such key) hold the corner and are read as such, so every reader places each pixel where it
was. Readers return the corner origin either way.

Channels with no finite value (``rate_std`` of a fit without an ensemble) are not written:
a result store holds only the channels that carry data.

Writes are atomic: the store is built in a hidden sibling directory (``.<name>.tmp-<id>``)
and renamed into place, so a result path holds either a complete store or nothing new. An
existing store is swapped with the new one in one step where the system can
(``renameat2(RENAME_EXCHANGE)`` on Linux), else moved aside to ``.<name>.old-<id>`` and put
back if the new one cannot take its place. The root metadata is written last, so a
half-written store never reads as a chromarate result.

This module writes and opens stores; each part of the work lives in a module of its own,
whose public names are importable from here as before:

- :mod:`chromarate.io._ngff`: NGFF metadata, one class per NGFF version (0.4, 0.5);
- :mod:`chromarate.io._zarr_pyramid`: resolution levels and downsampling;
- :mod:`chromarate.io._zarr_block`: the ``chromarate`` attribute block (provenance, grid,
  translation convention);
- :mod:`chromarate.io._zarr_commit`: atomic placement and clean-up of temporaries;
- :mod:`chromarate.io._zarr_inspect`: checking a store from its metadata before reading.

Channel names, colours and which channels show at first come from
:data:`chromarate.export.CHANNEL_TABLE`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from .._types import ResultStack
from ..errors import ResultStoreError
from ._ngff import FORMATS, NgffFormat, ngff_format
from ._results import display_window, validate_stack
from ._zarr_block import BLOCK, SUPPORTED_SCHEMA_VERSIONS, provenance_block
from ._zarr_commit import commit as _commit
from ._zarr_commit import remove_stale_temporaries, remove_tree, settle_backups, temporary
from ._zarr_inspect import MAX_CHUNKS, damaged_data, inspect
from ._zarr_pyramid import Level, downsample, pyramid_levels
from .limits import check_decoded_size

__all__ = [
    "MAX_CHUNKS",
    "NGFF_VERSIONS",
    "PYRAMID_MAX_SIDE",
    "SUPPORTED_SCHEMA_VERSIONS",
    "is_complete_result",
    "open_result",
    "open_result_levels",
    "read_result",
    "remove_stale_temporaries",
    "settle_backups",
    "write_result",
]

#: NGFF versions :func:`write_result` can write, with the zarr format each one uses.
NGFF_VERSIONS: dict[str, int] = {version: fmt.zarr_format for version, fmt in FORMATS.items()}

#: Results with a side longer than this many pixels get a multiscale pyramid: levels
#: downsampled 2x each, until the coarsest level fits (a viewer then loads what it shows).
PYRAMID_MAX_SIDE = 1024

_CHUNK_YX = 256


# --------------------------------------------------------------------------------------
# Writing


def _levels(shape_yx: tuple[int, ...]) -> list[Level]:
    """Resolution levels of an array of shape ``shape_yx`` (limit :data:`PYRAMID_MAX_SIDE`)."""
    return pyramid_levels(shape_yx, PYRAMID_MAX_SIDE)


def _store_name(path: Path) -> str:
    """Image name of the store at ``path``: its file name less ``.ome.zarr`` (or ``.zarr``)."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _without_empty_channels(stack: ResultStack) -> ResultStack:
    """The stack less its channels without a finite value (all of them kept if none has)."""
    kept = {name: data for name, data in stack.channels.items()
            if np.isfinite(np.asarray(data)).any()}
    if not kept or len(kept) == len(stack.channels):
        return stack
    return replace(stack, channels=kept)


def _put_ome(group, ome: Mapping[str, Any], fmt: NgffFormat,
             extra: Mapping[str, Any] | None = None) -> None:
    """Write NGFF metadata ``ome`` (and blocks ``extra``) where ``fmt`` puts them."""
    group.attrs.update(fmt.attributes(ome, extra))


def _create_array(group, name: str, data: np.ndarray, *, fmt: NgffFormat,
                  dims: list[str], fill_value):
    """Create array ``name`` in ``group`` holding ``data``, chunked (1, ..., 256, 256), with
    the array options of ``fmt`` and every chunk stored."""
    chunks = tuple([1] * (data.ndim - 2)
                   + [min(_CHUNK_YX, data.shape[-2]), min(_CHUNK_YX, data.shape[-1])])
    arr = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks,
        fill_value=fill_value,
        # every chunk is stored, so a missing chunk file means a damaged store
        config={"write_empty_chunks": True},
        **fmt.array_options(dims),
    )
    arr[...] = data
    return arr


def _write_image(stack: ResultStack, root, *, name: str, fmt: NgffFormat,
                 block: dict) -> None:
    """Write the image levels, the label images, then the root metadata (last)."""
    shape = next(iter(stack.channels.values())).shape
    levels = _levels(shape)
    cyx = np.stack([np.asarray(a, dtype=np.float32) for a in stack.channels.values()])
    for lv in levels:
        _create_array(root, lv.path, downsample(cyx, lv.factor, labels=False),
                      fmt=fmt, dims=["c", "y", "x"], fill_value=np.nan)
    _write_labels(stack, root, fmt=fmt)
    ome: dict[str, Any] = {
        "multiscales": fmt.multiscales(
            name, [(lv.path, lv.factor) for lv in levels], pixel_size_nm=stack.pixel_size_nm,
            origin_nm=stack.origin_nm, with_channel=True),
        "omero": fmt.omero(name, {cname: display_window(np.asarray(data))
                                  for cname, data in stack.channels.items()}),
    }
    # the root metadata goes last: a store whose root names its arrays has them all
    _put_ome(root, ome, fmt, {BLOCK: block})


def _write_labels(stack: ResultStack, root, *, fmt: NgffFormat) -> None:
    """Write each label image of ``stack`` (levels and metadata), then the labels group."""
    if not stack.labels:
        return
    labels_group = root.create_group("labels")
    for lname, data in stack.labels.items():
        a = np.asarray(data)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        levels = _levels(a.shape)
        g = labels_group.create_group(lname)
        for lv in levels:
            _create_array(g, lv.path, downsample(a, lv.factor, labels=True),
                          fmt=fmt, dims=["y", "x"], fill_value=0)
        _put_ome(g, {
            "multiscales": fmt.multiscales(
                lname, [(lv.path, lv.factor) for lv in levels],
                pixel_size_nm=stack.pixel_size_nm, origin_nm=stack.origin_nm,
                with_channel=False),
            "image-label": fmt.image_label(lname, a),
        }, fmt)
    _put_ome(labels_group, fmt.labels(stack.labels), fmt)


def write_result(
    stack: ResultStack,
    path: str | os.PathLike,
    *,
    ngff_version: Literal["0.5", "0.4"] = "0.5",
    overwrite: bool = True,
) -> Path:
    """Write a result stack as one OME-Zarr image, atomically.

    Parameters
    ----------
    stack : ResultStack
        Channels (2-D, one grid), labels, pixel size, origin (corner of pixel (0, 0)) and
        a JSON-able provenance. Its ``schema_version`` is set to the current one when
        missing. Channels without a finite value are not written.
    path : str or path-like
        The store to create, conventionally ``<nucleus-id>.ome.zarr``. Missing parent
        directories are created.
    ngff_version : {"0.5", "0.4"}
        NGFF 0.5 on zarr v3 (default) or NGFF 0.4 on zarr v2 for older viewers.
    overwrite : bool
        Replace an existing store at ``path``. The old store stays in place until the new
        one is complete.

    Returns
    -------
    Path
        ``path``, the result store now complete.

    Raises
    ------
    ResultStoreError
        If the stack is invalid, ``path`` exists and ``overwrite`` is False, or the store
        cannot be written. Nothing at ``path`` is changed then.
    """
    import zarr

    path = Path(path)
    try:
        fmt = ngff_format(ngff_version)
    except KeyError:
        raise ResultStoreError(
            f"unsupported NGFF version {ngff_version!r}; choose one of "
            f"{', '.join(NGFF_VERSIONS)}", path=path) from None
    validate_stack(stack, path)
    stack = _without_empty_channels(stack)
    block = provenance_block(stack, path)
    if os.path.lexists(path) and not overwrite:
        raise ResultStoreError("result store already exists (overwrite=False)", path=path)

    parent = path.parent
    token = uuid.uuid4().hex[:12]
    tmp = temporary(path, token)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=fmt.zarr_format)
        _write_image(stack, root, name=_store_name(path), fmt=fmt, block=block)
        _commit(tmp, path, overwrite=overwrite, token=token)
    except BaseException as exc:
        remove_tree(tmp)
        if isinstance(exc, ResultStoreError) or not isinstance(exc, Exception):
            raise
        raise ResultStoreError(f"cannot write result store: {exc}", path=path) from exc
    return path


# --------------------------------------------------------------------------------------
# Reading


def open_result(path: str | os.PathLike) -> ResultStack:
    """Open a result store lazily: metadata checked, array values not read.

    This is the one way chromarate opens result stores (:func:`read_result`,
    :func:`open_result_levels`, :func:`is_complete_result`, ``chromarate info``, resume,
    reports, :mod:`chromarate.analysis` and the napari reader all go through it). The store
    is validated from its metadata: NGFF and ``chromarate`` blocks, declared array shapes
    against the grid the provenance records, their decoded size against the read limit
    (:mod:`chromarate.io.limits`) and their chunk grids against :data:`MAX_CHUNKS`; then
    the chunk files are counted. Every metadata and chunk file is checked from ``stat``
    before zarr opens it: a FIFO, device or socket (also through a symbolic link), a
    metadata file over :data:`~chromarate.io._zarr_inspect.MAX_METADATA_BYTES` or a chunk
    file larger than its decoded size plus the codecs' overhead is refused, naming it. It
    returns within seconds on any store, whatever shapes it declares.

    Parameters
    ----------
    path : str or path-like
        The ``.ome.zarr`` directory; only its metadata and the names of its chunk files
        are read.

    Returns
    -------
    ResultStack
        Like :func:`read_result`, with dask arrays instead of numpy arrays (values are read
        when computed).

    Raises
    ------
    ResultStoreError
        For the same reasons as :func:`read_result`.
    """
    import dask.array as da

    path = Path(path)
    root, plan = inspect(path)
    try:
        cyx = da.from_zarr(root[plan.image_path])
        labels = {name: da.from_zarr(root[key]) for name, key in plan.labels.items()}
    except Exception as exc:
        raise damaged_data(path, exc) from exc
    return ResultStack(
        channels={name: cyx[i] for i, name in enumerate(plan.channel_names)},
        labels=labels,
        pixel_size_nm=plan.pixel_size_nm,
        origin_nm=plan.origin_nm,
        provenance=plan.provenance,
    )


def read_result(path: str | os.PathLike) -> ResultStack:
    """Read a result store written by :func:`write_result` (NGFF 0.5 or 0.4).

    The store is opened with :func:`open_result`; its arrays are read only when their
    decoded size is within the read limit.

    Parameters
    ----------
    path : str or path-like
        The ``.ome.zarr`` directory written by :func:`write_result`.

    Returns
    -------
    ResultStack
        Channels by name (float32 (ny, nx)), labels, pixel size and origin in nm, and the
        ``chromarate`` provenance block.

    Raises
    ------
    ResultStoreError
        If the path is missing, not a zarr store, an OME-Zarr not written by chromarate,
        of an unsupported schema version, declares arrays beyond the read limit or another
        grid than its provenance, or has missing or damaged arrays.
    """
    path = Path(path)
    lazy = open_result(path)
    nbytes = sum(int(a.nbytes) for a in (*lazy.channels.values(), *lazy.labels.values()))
    check_decoded_size(path, nbytes, "the result's arrays", error=ResultStoreError)
    try:
        channels = {name: np.asarray(a.compute(), dtype=np.float32)
                    for name, a in lazy.channels.items()}
        labels = {name: np.asarray(a.compute()) for name, a in lazy.labels.items()}
    except ResultStoreError:
        raise
    except Exception as exc:
        raise damaged_data(path, exc) from exc
    return replace(lazy, channels=channels, labels=labels)


def open_result_levels(path: str | os.PathLike) -> dict[str, list]:
    """Open every resolution level of every channel of a result store, lazily.

    Parameters
    ----------
    path : str or path-like
        The ``.ome.zarr`` directory.

    Returns
    -------
    dict of str to list of dask.array.Array
        Channel name -> float32 ``(y, x)`` arrays, full resolution first, then each level
        downsampled 2x from the one before (only one level for images with no side
        longer than :data:`PYRAMID_MAX_SIDE`). Values are read when computed.

    Raises
    ------
    ResultStoreError
        For the same reasons as :func:`read_result` (checked before anything is opened).
    """
    import dask.array as da

    path = Path(path)
    root, plan = inspect(path)
    levels = [da.from_zarr(root[key]) for key in plan.level_paths]
    return {name: [level[i] for level in levels] for i, name in enumerate(plan.channel_names)}


def is_complete_result(path: str | os.PathLike) -> bool:
    """True if ``path`` is a chromarate result store whose metadata and arrays are all there.

    Checks what :func:`read_result` checks except the chunk contents; never raises for a
    bad store (useful to skip finished nuclei when a batch resumes).
    """
    try:
        inspect(Path(path))
    except ResultStoreError:
        return False
    return True
