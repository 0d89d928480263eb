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
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from .._types import ResultStack
from ..errors import ResultStoreError
from ..export import SCHEMA_VERSION, json_safe
from ._atomic import exchange_paths, rename_no_replace
from ._results import channel_color, display_window, validate_stack
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
    "write_result",
]

#: NGFF versions :func:`write_result` can write, with the zarr format each one uses.
NGFF_VERSIONS: dict[str, int] = {"0.5": 3, "0.4": 2}

#: ``chromarate`` block schema versions :func:`read_result` understands.
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (SCHEMA_VERSION,)

#: Results with a side longer than this many pixels get a multiscale pyramid: levels
#: downsampled 2x each, until the coarsest level fits (a viewer then loads what it shows).
PYRAMID_MAX_SIDE = 1024

#: Most chunks one array of a result store may declare (a store that declares more is
#: refused from its metadata, before its chunks are counted or read).
MAX_CHUNKS = 1 << 17

_BLOCK = "chromarate"
_GRID = "grid"  # key of the block recording the stored grid (checked when reading)
#: key of the block recording where the NGFF translation lies in pixel (0, 0); stores
#: without it (written before) hold the pixel corner
_TRANSLATION = "translation"
_PIXEL_CENTRE = "pixel_centre"
_STORAGE_KEYS = (_GRID, _TRANSLATION)  # written by the store, not part of the provenance
_TMP_MARK = ".tmp-"  # hidden siblings: .<name>.tmp-<token> (being written)
_OLD_MARK = ".old-"  # and .<name>.old-<token> (previous store, being replaced)
_CHUNK_YX = 256
_UNIT = "nanometer"

#: Channels shown when a generic OME-Zarr viewer opens the image.
_ACTIVE_CHANNELS = ("denoised", "rate")
_LABEL_RGBA = [255, 200, 0, 128]


# --------------------------------------------------------------------------------------
# Resolution levels


@dataclass(frozen=True)
class _Level:
    path: str
    factor: int  # downsampling factor relative to full resolution


def _levels(shape_yx: tuple[int, ...]) -> list[_Level]:
    """Full resolution, then levels downsampled 2x each while a side exceeds the limit."""
    ny, nx = (int(v) for v in shape_yx[-2:])
    levels = [_Level(path="0", factor=1)]
    factor = 1
    while max(-(-ny // factor), -(-nx // factor)) > PYRAMID_MAX_SIDE:
        factor *= 2
        levels.append(_Level(path=str(len(levels)), factor=factor))
    return levels


def _downsample(data: np.ndarray, factor: int, *, labels: bool) -> np.ndarray:
    """Downsample the last two axes by ``factor``; the result has ceil(n / factor) pixels.

    Intensities: mean of each ``factor`` x ``factor`` block, ignoring NaN (a block that is
    all NaN stays NaN). Labels: the top-left pixel of each block (no new label values).
    """
    if factor == 1:
        return data
    if labels:
        return np.ascontiguousarray(data[..., ::factor, ::factor])
    ny, nx = data.shape[-2:]
    my, mx = -(-ny // factor), -(-nx // factor)
    padded = np.full(data.shape[:-2] + (my * factor, mx * factor), np.nan, dtype=np.float64)
    padded[..., :ny, :nx] = data
    blocks = padded.reshape(data.shape[:-2] + (my, factor, mx, factor))
    count = np.isfinite(blocks).sum(axis=(-3, -1))
    total = np.where(np.isfinite(blocks), blocks, 0.0).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean.astype(data.dtype)


# --------------------------------------------------------------------------------------
# Metadata


def _axes(with_channel: bool) -> list[dict[str, str]]:
    axes = [{"name": "c", "type": "channel"}] if with_channel else []
    axes += [
        {"name": "y", "type": "space", "unit": _UNIT},
        {"name": "x", "type": "space", "unit": _UNIT},
    ]
    return axes


def _datasets(levels: list[_Level], stack: ResultStack, with_channel: bool) -> list[dict]:
    p = float(stack.pixel_size_nm)
    oy, ox = (float(v) for v in stack.origin_nm)
    lead = [1.0] if with_channel else []
    lead0 = [0.0] if with_channel else []
    out = []
    for lv in levels:
        step = p * lv.factor
        # NGFF: the translation is where the centre of element (0, 0) of this level lies
        out.append({
            "path": lv.path,
            "coordinateTransformations": [
                {"type": "scale", "scale": lead + [step, step]},
                {"type": "translation", "translation": lead0 + [oy + step / 2,
                                                                ox + step / 2]},
            ],
        })
    return out


def _multiscales(name: str, levels, stack, *, with_channel: bool, ngff: str) -> list[dict]:
    ms: dict[str, Any] = {}
    if ngff == "0.4":
        ms["version"] = "0.4"
    ms["name"] = name
    ms["axes"] = _axes(with_channel)
    ms["datasets"] = _datasets(levels, stack, with_channel)
    return [ms]


def _omero(name: str, stack: ResultStack) -> dict:
    channels = []
    for i, (cname, data) in enumerate(stack.channels.items()):
        channels.append({
            "label": cname,
            "color": channel_color(cname, i),
            "window": display_window(np.asarray(data)),
            "active": cname in _ACTIVE_CHANNELS,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
        })
    return {
        "name": name,
        "channels": channels,
        "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0},
    }


def _label_rgba(index: int, n_values: int) -> list[int]:
    """Colour of the ``index``-th label value: the nucleus colour for a single label,
    well-separated hues (golden-ratio steps) when there are many (e.g. chromatin domains)."""
    if n_values == 1:
        return list(_LABEL_RGBA)
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((0.1 + 0.618034 * index) % 1.0, 0.75, 1.0)
    return [int(round(255 * r)), int(round(255 * g)), int(round(255 * b)), _LABEL_RGBA[3]]


def _image_label(label_name: str, data: np.ndarray, ngff: str) -> dict:
    values = [int(v) for v in np.unique(data) if v != 0]
    block: dict[str, Any] = {}
    if ngff == "0.4":
        block["version"] = "0.4"
    block["source"] = {"image": "../../"}
    block["colors"] = [{"label-value": v, "rgba": _label_rgba(i, len(values))}
                       for i, v in enumerate(values[:256])]
    block["properties"] = [{"label-value": v, "name": f"{label_name} {v}"} for v in values[:256]]
    return block


def _put_ome(group, ome: dict, ngff: str, extra: Mapping[str, Any] | None = None) -> None:
    """Write NGFF metadata where the version puts it: under "ome" (0.5) or top level (0.4)."""
    attrs: dict[str, Any] = {}
    if ngff == "0.5":
        attrs["ome"] = {"version": "0.5", **ome}
    else:
        attrs.update(ome)
    if extra:
        attrs.update(extra)
    group.attrs.update(attrs)


def _get_ome(attrs: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """Return (NGFF version, NGFF metadata) of a group's attributes."""
    ome = attrs.get("ome")
    if isinstance(ome, Mapping):
        return (str(ome.get("version")) if ome.get("version") is not None else None), ome
    ms = attrs.get("multiscales")
    if isinstance(ms, list) and ms and isinstance(ms[0], Mapping):
        return (str(ms[0].get("version")) if ms[0].get("version") is not None else None), attrs
    il = attrs.get("image-label")
    if isinstance(il, Mapping):
        return (str(il.get("version")) if il.get("version") is not None else None), attrs
    return None, attrs


# --------------------------------------------------------------------------------------
# Writing


def _store_name(path: Path) -> str:
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _provenance_block(stack: ResultStack, path: Path) -> dict:
    block = json_safe(dict(stack.provenance))
    version = block.setdefault("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ResultStoreError(
            f"provenance says schema_version {version!r}; this chromarate writes "
            f"{SCHEMA_VERSION}", path=path)
    json.dumps(block, allow_nan=False)
    ny, nx = (int(n) for n in next(iter(stack.channels.values())).shape)
    # what the arrays must hold, checked by readers against the arrays' declared shapes
    block[_GRID] = {"shape": [ny, nx], "channels": len(stack.channels)}
    block[_TRANSLATION] = _PIXEL_CENTRE
    return block


def _without_empty_channels(stack: ResultStack) -> ResultStack:
    """The stack less its channels without a finite value (all of them kept if none has)."""
    kept = {name: data for name, data in stack.channels.items()
            if np.isfinite(np.asarray(data)).any()}
    if not kept or len(kept) == len(stack.channels):
        return stack
    return replace(stack, channels=kept)


def _create_array(group, name: str, data: np.ndarray, *, zarr_format: int,
                  dims: list[str], fill_value):
    chunks = tuple([1] * (data.ndim - 2)
                   + [min(_CHUNK_YX, data.shape[-2]), min(_CHUNK_YX, data.shape[-1])])
    kwargs: dict[str, Any] = {}
    if zarr_format == 3:
        kwargs["dimension_names"] = dims
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    arr = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks,
        fill_value=fill_value,
        # every chunk is stored, so a missing chunk file means a damaged store
        config={"write_empty_chunks": True},
        **kwargs,
    )
    arr[...] = data
    return arr


def _write_image(stack: ResultStack, root, *, name: str, ngff: str, zarr_format: int,
                 block: dict) -> None:
    shape = next(iter(stack.channels.values())).shape
    levels = _levels(shape)
    cyx = np.stack([np.asarray(a, dtype=np.float32) for a in stack.channels.values()])
    for lv in levels:
        _create_array(root, lv.path, _downsample(cyx, lv.factor, labels=False),
                      zarr_format=zarr_format, dims=["c", "y", "x"], fill_value=np.nan)
    _write_labels(stack, root, ngff=ngff, zarr_format=zarr_format)
    ome: dict[str, Any] = {
        "multiscales": _multiscales(name, levels, stack, with_channel=True, ngff=ngff),
        "omero": _omero(name, stack),
    }
    # the root metadata goes last: a store whose root names its arrays has them all
    _put_ome(root, ome, ngff, extra={_BLOCK: block})


def _write_labels(stack: ResultStack, root, *, ngff: str, zarr_format: int) -> None:
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
            _create_array(g, lv.path, _downsample(a, lv.factor, labels=True),
                          zarr_format=zarr_format, dims=["y", "x"], fill_value=0)
        _put_ome(g, {
            "multiscales": _multiscales(lname, levels, stack, with_channel=False, ngff=ngff),
            "image-label": _image_label(lname, a, ngff),
        }, ngff)
    _put_ome(labels_group, {"labels": list(stack.labels)}, ngff)


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove result stores a killed run left half-written in ``folder`` (not recursive).

    Only the hidden ``.<name>.ome.zarr.tmp-<token>`` siblings :func:`write_result` builds
    stores in are removed: complete results and the ``.old-`` backups of interrupted
    rewrites are kept. A store being written by another process looks just the same, so
    call this only while holding the output folder's lock
    (:class:`chromarate.io.outdir.OutputLock`), as the batch does.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    mark = f".ome.zarr{_TMP_MARK}"
    removed: list[Path] = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") and mark in entry.name:
            _remove_tree(entry)
            removed.append(entry)
    return removed


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
        ``path``.

    Raises
    ------
    ResultStoreError
        If the stack is invalid, ``path`` exists and ``overwrite`` is False, or the store
        cannot be written. Nothing at ``path`` is changed then.
    """
    import zarr

    path = Path(path)
    if ngff_version not in NGFF_VERSIONS:
        raise ResultStoreError(
            f"unsupported NGFF version {ngff_version!r}; choose one of "
            f"{', '.join(NGFF_VERSIONS)}", path=path)
    zarr_format = NGFF_VERSIONS[ngff_version]
    validate_stack(stack, path)
    stack = _without_empty_channels(stack)
    block = _provenance_block(stack, path)
    if os.path.lexists(path) and not overwrite:
        raise ResultStoreError("result store already exists (overwrite=False)", path=path)

    parent = path.parent
    token = uuid.uuid4().hex[:12]
    tmp = parent / f".{path.name}{_TMP_MARK}{token}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=zarr_format)
        _write_image(stack, root, name=_store_name(path), ngff=ngff_version,
                     zarr_format=zarr_format, block=block)
        _commit(tmp, path, overwrite=overwrite, token=token)
    except BaseException as exc:
        _remove_tree(tmp)
        if isinstance(exc, ResultStoreError) or not isinstance(exc, Exception):
            raise
        raise ResultStoreError(f"cannot write result store: {exc}", path=path) from exc
    return path


def _commit(tmp: Path, path: Path, *, overwrite: bool, token: str) -> None:
    """Move the finished store at ``tmp`` to ``path``; keep any old store until it is there.

    A new path is created with one rename that refuses to replace anything. An existing
    store is swapped with the new one in one atomic step where the system allows it
    (Linux ``renameat2(RENAME_EXCHANGE)``); elsewhere the old store is renamed aside to a
    hidden ``.<name>.old-<token>`` sibling first and put back if the second rename fails.
    """
    if not os.path.lexists(path):
        try:
            rename_no_replace(tmp, path)
            return
        except FileExistsError:  # someone created path meanwhile: fall through to replace it
            pass
    if not overwrite:
        raise ResultStoreError("result store already exists (overwrite=False)", path=path)
    if exchange_paths(tmp, path):  # path now holds the new store, tmp the old one
        _remove_tree(tmp)
        return
    old = path.parent / f".{path.name}{_OLD_MARK}{token}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)  # put the previous store back
        raise
    _remove_tree(old)


# --------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class _Plan:
    """What :func:`_inspect` found: everything needed to load the arrays."""

    ngff: str
    channel_names: list[str]
    image_path: str
    level_paths: list[str]  # every resolution level, full resolution first
    pixel_size_nm: float
    origin_nm: tuple[float, float]
    labels: dict[str, str]  # label name -> array path inside the store
    provenance: dict


def _fail(path: Path, message: str) -> ResultStoreError:
    return ResultStoreError(message, path=path)


def _transforms(path: Path, where: str, dataset: Mapping, ndim: int):
    scale = translation = None
    for t in dataset.get("coordinateTransformations") or []:
        if not isinstance(t, Mapping):
            continue
        if t.get("type") == "scale":
            scale = t.get("scale")
        elif t.get("type") == "translation":
            translation = t.get("translation")
    if not (isinstance(scale, list) and len(scale) == ndim):
        raise _fail(path, f"{where}: expected a scale transform with {ndim} values, "
                          f"got {scale!r}")
    if translation is None:
        translation = [0.0] * ndim
    if not (isinstance(translation, list) and len(translation) == ndim):
        raise _fail(path, f"{where}: expected a translation with {ndim} values, "
                          f"got {translation!r}")
    try:
        return [float(v) for v in scale], [float(v) for v in translation]
    except (TypeError, ValueError):
        raise _fail(path, f"{where}: non-numeric coordinate transform") from None


def _open_array(root, key: str, path: Path, what: str):
    """Open array ``key`` and check it from its metadata, then count its chunk files.

    The declared shape, chunk grid and decoded size are checked first (against
    :data:`MAX_CHUNKS` and the read limit), so a store that declares an enormous array is
    refused before anything is counted or read; the chunk files are then counted by listing
    what is on disk (bounded by the checked chunk grid), never by probing every declared
    chunk key.
    """
    try:
        arr = root[key]
    except KeyError:
        raise _fail(path, f"{what}: array {key!r} is missing") from None
    except Exception as exc:
        raise _fail(path, f"{what}: array {key!r} is damaged ({exc})") from exc
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        raise _fail(path, f"{what}: {key!r} is a group, expected an array")
    shape = tuple(int(n) for n in arr.shape)
    chunks = tuple(int(n) for n in arr.chunks)
    if getattr(arr, "shards", None) is not None:
        raise _fail(path, f"{what}: array {key!r} is sharded; chromarate results are not")
    if any(n < 0 for n in shape) or len(chunks) != len(shape) or any(c < 1 for c in chunks):
        raise _fail(path, f"{what}: array {key!r} declares shape {shape} with chunks {chunks}")
    grid = tuple(-(-n // c) for n, c in zip(shape, chunks))
    check_decoded_size(path, math.prod(shape) * np.dtype(arr.dtype).itemsize,
                       f"{what}: array {key!r} (shape {shape}, {arr.dtype})",
                       error=ResultStoreError)
    n_chunks = math.prod(grid)
    if n_chunks > MAX_CHUNKS:
        raise _fail(path, f"{what}: array {key!r} declares {n_chunks} chunks (shape {shape} in "
                          f"chunks of {chunks}); chromarate results have at most "
                          f"{MAX_CHUNKS}")
    try:
        stored = _stored_chunks(Path(path) / arr.path, arr, grid)
    except Exception as exc:
        raise _fail(path, f"{what}: array {key!r} is damaged ({exc})") from exc
    if stored != n_chunks:
        raise _fail(path, f"{what}: array {key!r} is incomplete ({stored} of "
                          f"{n_chunks} chunks stored)")
    return arr


def _stored_chunks(array_dir: Path, arr, grid: tuple[int, ...]) -> int:
    """How many of the chunks of ``grid`` have a file in ``array_dir``.

    Lists the files of the array's folder (stopping after more entries than the grid has
    chunks, plus room for metadata), then looks up each chunk key of the grid -- at most
    :data:`MAX_CHUNKS` of them, checked before.
    """
    present: set[str] = set()
    budget = 4 * math.prod(grid) + 64  # chunk files plus the folders holding them
    base = str(array_dir)
    for dirpath, dirnames, filenames in os.walk(base):
        rel = os.path.relpath(dirpath, base)
        if rel != "." and rel.count(os.sep) >= len(grid) + 1:
            dirnames[:] = []
        for name in filenames:
            present.add(name if rel == "." else f"{rel}{os.sep}{name}".replace(os.sep, "/"))
        budget -= len(filenames) + len(dirnames)
        if budget < 0:
            break
    encode = arr.metadata.encode_chunk_key
    return sum(encode(coords) in present for coords in np.ndindex(*grid))


def _check_levels(group, path: Path, what: str, datasets: list, base, pixel: float
                  ) -> list[str]:
    """Check every resolution level after the first: present, complete, and shaped as the
    full-resolution array downsampled by the ratio of its pixel size. Returns their paths."""
    paths = [datasets[0]["path"]]
    ndim = len(base.shape)
    for k, ds in enumerate(datasets[1:], start=1):
        if not (isinstance(ds, Mapping) and isinstance(ds.get("path"), str)):
            raise _fail(path, f"{what}: resolution level {k} has no path")
        scale, _ = _transforms(path, f"{what}: level {ds['path']!r}", ds, ndim)
        ratio = scale[-1] / pixel
        factor = int(round(ratio))
        if factor < 2 or not math.isclose(ratio, factor, rel_tol=1e-6):
            raise _fail(path, f"{what}: level {ds['path']!r} has pixel size {scale[-1]}, "
                              f"expected a whole multiple (>= 2) of {pixel}")
        level = _open_array(group, ds["path"], path, f"{what} level {k}")
        expected = tuple(base.shape[:-2]) + tuple(-(-n // factor) for n in base.shape[-2:])
        if tuple(level.shape) != expected:
            raise _fail(path, f"{what}: level {ds['path']!r} has shape {tuple(level.shape)}, "
                              f"expected {expected} (downsampled {factor}x)")
        paths.append(ds["path"])
    return paths


def _inspect(path: Path):
    """Check a store's metadata and arrays (not their values); return (root, plan)."""
    try:
        return _inspect_unguarded(path)
    except ResultStoreError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise _fail(path, f"damaged result metadata ({type(exc).__name__}: {exc})") from exc


def _inspect_unguarded(path: Path):
    import zarr

    if not os.path.exists(path):
        backups = sorted(path.parent.glob(f".{glob.escape(path.name)}{_OLD_MARK}*"))
        if backups:
            raise _fail(path, f"no such result store, but an interrupted rewrite left the "
                              f"previous result at {backups[-1]}; rename it to {path.name} "
                              f"to keep it, or write the result again")
        raise _fail(path, "no such result store")
    if not path.is_dir():
        raise _fail(path, "not a zarr store (a file, expected a directory)")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise _fail(path, f"not a zarr store ({type(exc).__name__}: {exc})") from None
    try:
        attrs = dict(root.attrs.asdict())
    except Exception as exc:
        raise _fail(path, f"damaged zarr metadata ({exc})") from exc

    block = attrs.get(_BLOCK)
    ngff, ome = _get_ome(attrs)
    if not isinstance(block, Mapping):
        kind = "an OME-Zarr image" if "multiscales" in ome else "a zarr group"
        raise _fail(path, f"not a chromarate result: {kind} without a {_BLOCK!r} "
                          f"attribute block")
    version = block.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise _fail(path, f"result schema version {version!r} is not supported (this "
                          f"chromarate reads {', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))})")
    if ngff not in NGFF_VERSIONS:
        raise _fail(path, f"unsupported or missing NGFF version {ngff!r} (expected "
                          f"{' or '.join(NGFF_VERSIONS)})")

    ms = ome.get("multiscales")
    if not (isinstance(ms, list) and ms and isinstance(ms[0], Mapping)):
        raise _fail(path, "missing 'multiscales' metadata")
    axes = [a.get("name") if isinstance(a, Mapping) else a for a in ms[0].get("axes") or []]
    if axes != ["c", "y", "x"]:
        raise _fail(path, f"expected axes ['c', 'y', 'x'], got {axes}")
    datasets = ms[0].get("datasets")
    if not (isinstance(datasets, list) and datasets and isinstance(datasets[0], Mapping)
            and isinstance(datasets[0].get("path"), str)):
        raise _fail(path, "multiscales has no datasets")
    image_path = datasets[0]["path"]
    scale, translation = _transforms(path, f"dataset {image_path!r}", datasets[0], 3)
    if not math.isclose(scale[1], scale[2], rel_tol=1e-9):
        raise _fail(path, f"pixels are not square: scale {scale}")
    pixel = scale[1]
    if not (math.isfinite(pixel) and pixel > 0):
        raise _fail(path, f"invalid pixel size {pixel}")

    omero = ome.get("omero")
    channels = omero.get("channels") if isinstance(omero, Mapping) else None
    if not isinstance(channels, list):
        raise _fail(path, "missing 'omero' channel names")
    names = [c.get("label") if isinstance(c, Mapping) else None for c in channels]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise _fail(path, f"channel labels must be unique non-empty strings, got {names}")

    arr = _open_array(root, image_path, path, "image")
    if len(arr.shape) != 3 or arr.shape[0] != len(names):
        raise _fail(path, f"image array {image_path!r} has shape {arr.shape}, expected "
                          f"({len(names)}, y, x) for channels {names}")
    if np.dtype(arr.dtype) != np.float32:
        raise _fail(path, f"image array {image_path!r} has dtype {arr.dtype}, expected "
                          f"float32")
    _check_grid(path, block, arr.shape)
    level_paths = _check_levels(root, path, "image", datasets, arr, pixel)

    labels: dict[str, str] = {}
    if "labels" in root:
        try:
            lattrs = dict(root["labels"].attrs.asdict())
        except Exception as exc:
            raise _fail(path, f"damaged labels group ({exc})") from exc
        _, lome = _get_ome(lattrs)
        for lname in lome.get("labels") or []:
            key = f"labels/{lname}"
            if key not in root:
                raise _fail(path, f"label image {key!r} is missing")
            _, il = _get_ome(dict(root[key].attrs.asdict()))
            lms = il.get("multiscales")
            if not (isinstance(lms, list) and lms and lms[0].get("datasets")):
                raise _fail(path, f"label image {key!r} has no multiscales")
            lpath = f"{key}/{lms[0]['datasets'][0]['path']}"
            larr = _open_array(root, lpath, path, f"label {lname!r}")
            if tuple(larr.shape) != tuple(arr.shape[1:]):
                raise _fail(path, f"label {lname!r} has shape {larr.shape}, expected "
                                  f"{arr.shape[1:]}")
            _check_levels(root[key], path, f"label {lname!r}", lms[0]["datasets"], larr, pixel)
            labels[str(lname)] = lpath

    plan = _Plan(
        ngff=ngff,
        channel_names=list(names),
        image_path=image_path,
        level_paths=level_paths,
        pixel_size_nm=pixel,
        origin_nm=_corner_origin(path, block, translation, pixel),
        labels=labels,
        provenance=json.loads(json.dumps({k: v for k, v in block.items()
                                          if k not in _STORAGE_KEYS})),
    )
    return root, plan


def _corner_origin(path: Path, block: Mapping, translation: list[float], pixel: float
                   ) -> tuple[float, float]:
    """The corner of pixel (0, 0) from the full-resolution translation, by the convention
    the block records: the pixel centre (current stores) or the corner (no record: stores
    written before the convention was recorded)."""
    convention = block.get(_TRANSLATION)
    if convention is None:
        return (translation[1], translation[2])
    if convention != _PIXEL_CENTRE:
        raise _fail(path, f"unknown translation convention {convention!r} in the "
                          f"{_BLOCK!r} block (this chromarate knows {_PIXEL_CENTRE!r})")
    return (translation[1] - pixel / 2, translation[2] - pixel / 2)


def _check_grid(path: Path, block: Mapping, shape: tuple) -> None:
    """The image array must have the grid the provenance block records (when it does)."""
    grid = block.get(_GRID)
    if grid is None:
        return  # written before the grid was recorded
    try:
        ny, nx = (int(n) for n in grid["shape"])
        n_channels = int(grid["channels"])
    except (TypeError, ValueError, KeyError):
        raise _fail(path, f"damaged {_BLOCK!r} block: 'grid' is {grid!r}") from None
    if tuple(int(n) for n in shape) != (n_channels, ny, nx):
        raise _fail(path, f"image array has shape {tuple(shape)} but the provenance records "
                          f"{n_channels} channels on a {ny} x {nx} grid; the store is damaged "
                          f"or not what it claims to be")


def _damaged_data(path: Path, exc: BaseException) -> ResultStoreError:
    """The error for array data that cannot be opened or read (``exc`` is the cause).

    Parameters
    ----------
    path : pathlib.Path
        The result store.
    exc : BaseException
        What opening or reading the arrays raised.

    Returns
    -------
    ResultStoreError
        To be raised ``from exc``.
    """
    return _fail(path, f"damaged array data ({type(exc).__name__}: {exc})")


def open_result(path: str | os.PathLike) -> ResultStack:
    """Open a result store lazily: metadata checked, array values not read.

    This is the one way chromarate opens result stores (:func:`read_result`,
    :func:`open_result_levels`, :func:`is_complete_result`, ``chromarate info``, resume,
    reports, :mod:`chromarate.analysis` and the napari reader all go through it). The store
    is validated from its metadata: NGFF and ``chromarate`` blocks, declared array shapes
    against the grid the provenance records, their decoded size against the read limit
    (:mod:`chromarate.io.limits`) and their chunk grids against :data:`MAX_CHUNKS`; then
    the chunk files are counted. It returns within seconds on any store, whatever shapes
    it declares.

    Parameters
    ----------
    path : str or path-like
        The ``.ome.zarr`` directory.

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
    root, plan = _inspect(path)
    try:
        cyx = da.from_zarr(root[plan.image_path])
        labels = {name: da.from_zarr(root[key]) for name, key in plan.labels.items()}
    except Exception as exc:
        raise _damaged_data(path, exc) from exc
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
        The ``.ome.zarr`` directory.

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
        raise _damaged_data(path, exc) from exc
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
    root, plan = _inspect(path)
    levels = [da.from_zarr(root[key]) for key in plan.level_paths]
    return {name: [level[i] for level in levels] for i, name in enumerate(plan.channel_names)}


def is_complete_result(path: str | os.PathLike) -> bool:
    """True if ``path`` is a chromarate result store whose metadata and arrays are all there.

    Checks what :func:`read_result` checks except the chunk contents; never raises for a
    bad store (useful to skip finished nuclei when a batch resumes).
    """
    try:
        _inspect(Path(path))
    except ResultStoreError:
        return False
    return True
