"""Checking a result store before anything is read from its arrays.

:func:`inspect` validates a store from its metadata -- the NGFF metadata of its version
(found by :func:`chromarate.io._ngff.find_metadata`), the ``chromarate`` block, the
declared shape, dtype, decoded size and chunk grid of every array and resolution level --
then counts the chunk files on disk. It returns the open root group and a :class:`Plan` of
what to load, or raises :class:`~chromarate.errors.ResultStoreError` naming what is wrong.

Every file zarr would read is checked from ``stat`` before zarr opens it: the metadata
files of each group and array on the way (``zarr.json``, or ``.zgroup``/``.zattrs``/
``.zarray``/``.zmetadata`` of NGFF 0.4 stores) and each chunk file must be regular files
(a FIFO would block the reader, a link to ``/dev/zero`` would never end), metadata files
of at most :data:`MAX_METADATA_BYTES` and chunk files no larger than their decoded size
plus the codecs' overhead.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ResultStoreError, ResultVersionError
from ._ngff import FORMATS, find_metadata
from ._zarr_block import (BLOCK, SUPPORTED_SCHEMA_VERSIONS, check_grid, corner_origin,
                          provenance_of)
from ._zarr_commit import backups
from .limits import check_decoded_size

__all__ = ["MAX_CHUNKS", "MAX_METADATA_BYTES", "Plan", "damaged_data", "inspect"]

#: Most chunks one array of a result store may declare (a store that declares more is
#: refused from its metadata, before its chunks are counted or read).
MAX_CHUNKS = 1 << 17

#: Largest metadata file of a result store (the root's, which holds the provenance, is a
#: few tens of kB); a larger one is refused before it is read.
MAX_METADATA_BYTES = 8 << 20

#: The metadata files zarr reads in a group's or an array's folder (zarr v3, then v2).
_METADATA_NAMES = ("zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata")

#: Bytes a chunk file may hold beyond its decoded size: the codecs' headers and the growth
#: of data that does not compress (zstd, blosc and zlib add well under 1/8 plus a header).
_CHUNK_SLACK_BYTES = 4096


@dataclass(frozen=True)
class Plan:
    """What :func:`inspect` found: everything needed to load the arrays.

    Attributes
    ----------
    ngff : str
        The store's NGFF version.
    channel_names : list of str
        Channels, in the order of the channel axis.
    image_path : str
        Path of the full-resolution image array.
    level_paths : list of str
        Every resolution level of the image, full resolution first.
    pixel_size_nm : float
        Full-resolution pixel size.
    origin_nm : tuple of float
        Corner of pixel (0, 0).
    labels : dict of str to str
        Label name -> path of its full-resolution array inside the store.
    provenance : dict
        The ``chromarate`` block less the store's own records.
    """

    ngff: str
    channel_names: list[str]
    image_path: str
    level_paths: list[str]
    pixel_size_nm: float
    origin_nm: tuple[float, float]
    labels: dict[str, str]
    provenance: dict


def _fail(path: Path, message: str) -> ResultStoreError:
    return ResultStoreError(message, path=path)


def _check_file(path: Path, file: Path, max_bytes: int, what: str) -> None:
    """Refuse ``file`` of the store ``path`` unless it is missing or a regular file of at
    most ``max_bytes`` bytes (checked from ``stat``, symbolic links followed; nothing is
    opened).

    Parameters
    ----------
    path : pathlib.Path
        The result store (named in the error).
    file : pathlib.Path
        The file zarr would read.
    max_bytes : int
        Its largest sane size.
    what : str
        What it is, e.g. ``"metadata file"``.

    Raises
    ------
    ResultStoreError
        ``file`` is a FIFO, device, socket or folder (also through a symbolic link), a
        broken symbolic link, cannot be examined, or is larger than ``max_bytes``.
    """
    rel = os.path.relpath(file, path)
    try:
        st = os.stat(file)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(file):
            raise _fail(path, f"{what} {rel!r} is a broken symbolic link") from None
        return  # missing: zarr says what is missing
    except OSError as exc:
        raise _fail(path, f"{what} {rel!r} cannot be examined "
                          f"({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _fail(path, f"{what} {rel!r} is not a regular file (a FIFO, device, socket or "
                          f"folder, or a link to one); expected a file written by zarr")
    if st.st_size > max_bytes:
        raise _fail(path, f"{what} {rel!r} has {st.st_size} bytes, expected at most "
                          f"{max_bytes}; the store is damaged")


def _node_parts(path: Path, key: str) -> list[str]:
    """The path segments of node ``key`` (zarr's normalisation: empty segments dropped).

    Raises
    ------
    ResultStoreError
        A segment is ``.`` or ``..`` (zarr refuses such paths; so does chromarate, before
        looking outside the store).
    """
    parts = [p for p in key.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise _fail(path, f"invalid array or group path {key!r} (contains '.' or '..')")
    return parts


def _check_metadata(path: Path, key: str) -> None:
    """Check the metadata files of every group from the root down to node ``key`` (``""``:
    the root alone) with :func:`_check_file`, before zarr opens any of them.

    Raises
    ------
    ResultStoreError
        A metadata file is not a regular file or is larger than :data:`MAX_METADATA_BYTES`.
    """
    parts = _node_parts(path, key)
    for depth in range(len(parts) + 1):
        folder = Path(path).joinpath(*parts[:depth])
        for name in _METADATA_NAMES:
            _check_file(path, folder / name, MAX_METADATA_BYTES, "metadata file")


def _full_key(group, key: str) -> str:
    """Path of ``key`` of ``group`` from the store's root."""
    base = str(getattr(group, "path", "") or "")
    return f"{base}/{key}" if base else key


def damaged_data(path: Path, exc: BaseException) -> ResultStoreError:
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


def _transforms(path: Path, where: str, dataset: Mapping, ndim: int):
    """(scale, translation) of a dataset, ``ndim`` floats each (no translation: zeros)."""
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
    chunk key. Each chunk file found is checked to be a regular file no larger than its
    decoded size plus the codecs' overhead; the metadata files on the way to the array are
    checked before it is opened (see :func:`_check_file`).
    """
    _check_metadata(path, _full_key(root, key))
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
        stored = _stored_chunks(path, Path(path) / arr.path, arr, grid, f"{what}: array {key!r}")
    except ResultStoreError:
        raise
    except Exception as exc:
        raise _fail(path, f"{what}: array {key!r} is damaged ({exc})") from exc
    if stored != n_chunks:
        raise _fail(path, f"{what}: array {key!r} is incomplete ({stored} of "
                          f"{n_chunks} chunks stored)")
    return arr


def _listed_files(array_dir: Path, grid: tuple[int, ...]) -> set[str]:
    """Relative paths (``/``-separated) of the files in ``array_dir``.

    Stops after more entries than the grid has chunks, plus room for metadata, and does not
    descend deeper than a chunk key can reach; symbolic links to folders are not followed.
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
    return present


def _max_chunk_bytes(arr) -> int:
    """Largest size a sound chunk file of ``arr`` can have: its decoded size plus the
    codecs' overhead (an eighth, plus :data:`_CHUNK_SLACK_BYTES`)."""
    decoded = math.prod(int(c) for c in arr.chunks) * np.dtype(arr.dtype).itemsize
    return decoded + decoded // 8 + _CHUNK_SLACK_BYTES


def _stored_chunks(path: Path, array_dir: Path, arr, grid: tuple[int, ...], what: str) -> int:
    """How many of the chunks of ``grid`` have a file in ``array_dir``.

    Lists the files of the array's folder (:func:`_listed_files`), then looks up each chunk
    key of the grid -- at most :data:`MAX_CHUNKS` of them, checked before -- and checks
    each chunk file found from ``stat`` (:func:`_check_file`: a regular file of at most
    :func:`_max_chunk_bytes`).

    Raises
    ------
    ResultStoreError
        A chunk file is not a regular file or is too large for its chunk.
    """
    present = _listed_files(array_dir, grid)
    encode = arr.metadata.encode_chunk_key
    limit = _max_chunk_bytes(arr)
    stored = 0
    for coords in np.ndindex(*grid):
        name = encode(coords)
        if name in present:
            _check_file(path, array_dir / name, limit, f"{what}: chunk file")
            stored += 1
    return stored


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


def inspect(path: Path) -> tuple[Any, Plan]:
    """Check a store's metadata and arrays (not their values).

    Parameters
    ----------
    path : Path
        The ``.ome.zarr`` directory.

    Returns
    -------
    tuple
        (the root ``zarr.Group``, opened read-only; the :class:`Plan`).

    Raises
    ------
    ResultStoreError
        Naming what is missing, damaged or not supported.
    """
    try:
        return _inspect_unguarded(path)
    except ResultStoreError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise _fail(path, f"damaged result metadata ({type(exc).__name__}: {exc})") from exc


def _open_root(path: Path):
    """The root group of the store at ``path`` and its attributes."""
    import zarr

    if not os.path.exists(path):
        found = backups(path)
        if found:
            raise _fail(path, f"no such result store, but an interrupted rewrite left the "
                              f"previous result at {found[-1]}; rename it to {path.name} "
                              f"to keep it (the next chromarate run into this folder does so), or write "
                              f"the result again")
        raise _fail(path, "no such result store")
    if not path.is_dir():
        raise _fail(path, "not a zarr store (a file, expected a directory)")
    _check_metadata(path, "")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise _fail(path, f"not a zarr store ({type(exc).__name__}: {exc})") from None
    try:
        attrs = dict(root.attrs.asdict())
    except Exception as exc:
        raise _fail(path, f"damaged zarr metadata ({exc})") from exc
    return root, attrs


def _channel_names(path: Path, ome: Mapping) -> list[str]:
    """The ``omero`` channel labels: unique non-empty strings."""
    omero = ome.get("omero")
    channels = omero.get("channels") if isinstance(omero, Mapping) else None
    if not isinstance(channels, list):
        raise _fail(path, "missing 'omero' channel names")
    names = [c.get("label") if isinstance(c, Mapping) else None for c in channels]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise _fail(path, f"channel labels must be unique non-empty strings, got {names}")
    return names


def _labels(root, path: Path, image, pixel: float) -> dict[str, str]:
    """Label name -> full-resolution array path of every label image the store lists."""
    labels: dict[str, str] = {}
    _check_metadata(path, "labels")
    if "labels" not in root:
        return labels
    try:
        lattrs = dict(root["labels"].attrs.asdict())
    except Exception as exc:
        raise _fail(path, f"damaged labels group ({exc})") from exc
    _, lome = find_metadata(lattrs)
    for lname in lome.get("labels") or []:
        key = f"labels/{lname}"
        _check_metadata(path, key)
        if key not in root:
            raise _fail(path, f"label image {key!r} is missing")
        _, il = find_metadata(dict(root[key].attrs.asdict()))
        lms = il.get("multiscales")
        if not (isinstance(lms, list) and lms and lms[0].get("datasets")):
            raise _fail(path, f"label image {key!r} has no multiscales")
        lpath = f"{key}/{lms[0]['datasets'][0]['path']}"
        larr = _open_array(root, lpath, path, f"label {lname!r}")
        if tuple(larr.shape) != tuple(image.shape[1:]):
            raise _fail(path, f"label {lname!r} has shape {larr.shape}, expected "
                              f"{image.shape[1:]}")
        _check_levels(root[key], path, f"label {lname!r}", lms[0]["datasets"], larr, pixel)
        labels[str(lname)] = lpath
    return labels


def _inspect_unguarded(path: Path) -> tuple[Any, Plan]:
    root, attrs = _open_root(path)
    block = attrs.get(BLOCK)
    ngff, ome = find_metadata(attrs)
    if not isinstance(block, Mapping):
        kind = "an OME-Zarr image" if "multiscales" in ome else "a zarr group"
        raise _fail(path, f"not a chromarate result: {kind} without a {BLOCK!r} "
                          f"attribute block")
    version = block.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        message = (f"result schema version {version!r} is not supported (this chromarate "
                   f"reads {', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))})")
        if isinstance(version, int) and not isinstance(version, bool) \
                and version > max(SUPPORTED_SCHEMA_VERSIONS):
            raise ResultVersionError(f"{message}: written by a newer chromarate; read it "
                                     "with that release", path=path)
        raise _fail(path, message)
    if ngff not in FORMATS:
        raise _fail(path, f"unsupported or missing NGFF version {ngff!r} (expected "
                          f"{' or '.join(FORMATS)})")

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
    names = _channel_names(path, ome)

    arr = _open_array(root, image_path, path, "image")
    if len(arr.shape) != 3 or arr.shape[0] != len(names):
        raise _fail(path, f"image array {image_path!r} has shape {arr.shape}, expected "
                          f"({len(names)}, y, x) for channels {names}")
    if np.dtype(arr.dtype) != np.float32:
        raise _fail(path, f"image array {image_path!r} has dtype {arr.dtype}, expected "
                          f"float32")
    check_grid(path, block, arr.shape)
    level_paths = _check_levels(root, path, "image", datasets, arr, pixel)
    labels = _labels(root, path, arr, pixel)

    plan = Plan(
        ngff=ngff,
        channel_names=list(names),
        image_path=image_path,
        level_paths=level_paths,
        pixel_size_nm=pixel,
        origin_nm=corner_origin(path, block, translation, pixel),
        labels=labels,
        provenance=provenance_of(block),
    )
    return root, plan
