"""The ``chromarate`` attribute block of a result store: written, then checked when read.

Beside the NGFF metadata, a store's root carries the ``chromarate`` block: the provenance
of the result (``schema_version``, config, versions, input, fit, ...) plus two records the
store adds itself and readers check:

- ``grid``: the shape (ny, nx) and number of channels the image array must have;
- ``translation``: where the NGFF translation lies in pixel (0, 0), ``"pixel_centre"``.
  Stores written before the record hold the pixel *corner*; they are read as such, so
  every pixel stays where it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._types import ResultStack
from ..errors import ResultStoreError
from ..export import SCHEMA_VERSION, json_safe

__all__ = ["BLOCK", "SUPPORTED_SCHEMA_VERSIONS", "check_grid", "corner_origin",
           "provenance_block", "provenance_of"]

#: Attribute key of the block.
BLOCK = "chromarate"

#: ``chromarate`` block schema versions the reader understands.
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (SCHEMA_VERSION,)

_GRID = "grid"  # key of the record of the stored grid (checked when reading)
_TRANSLATION = "translation"  # key of the record of the translation convention
_PIXEL_CENTRE = "pixel_centre"
_STORAGE_KEYS = (_GRID, _TRANSLATION)  # written by the store, not part of the provenance


def provenance_block(stack: ResultStack, path: Path) -> dict[str, Any]:
    """The block to write for ``stack``: its provenance (JSON types) and the store records.

    Parameters
    ----------
    stack : ResultStack
        A validated stack (one grid, at least one channel).
    path : Path
        The store being written (for error messages).

    Returns
    -------
    dict
        The provenance with ``schema_version`` set when missing, ``grid`` and
        ``translation``.

    Raises
    ------
    ResultStoreError
        The provenance names another schema version than this chromarate writes.
    """
    block = json_safe(dict(stack.provenance))
    version = block.setdefault("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ResultStoreError(
            f"provenance says schema_version {version!r}; this chromarate writes "
            f"{SCHEMA_VERSION}", path=path)
    json.dumps(block, allow_nan=False)
    ny, nx = (int(n) for n in np.shape(next(iter(stack.channels.values()))))
    # what the arrays must hold, checked by readers against the arrays' declared shapes
    block[_GRID] = {"shape": [ny, nx], "channels": len(stack.channels)}
    block[_TRANSLATION] = _PIXEL_CENTRE
    return block


def provenance_of(block: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance a block holds: a JSON copy without the store's own records."""
    return json.loads(json.dumps({k: v for k, v in block.items() if k not in _STORAGE_KEYS}))


def corner_origin(path: Path, block: Mapping[str, Any], translation: Sequence[float],
                  pixel: float) -> tuple[float, float]:
    """The corner of pixel (0, 0) from the full-resolution (c, y, x) translation.

    Parameters
    ----------
    path : Path
        The store (for error messages).
    block : mapping
        Its ``chromarate`` block.
    translation : sequence of float
        The translation of the full-resolution image (channel, y, x).
    pixel : float
        The pixel size.

    Returns
    -------
    tuple of float
        (y, x): the translation less half a pixel (``"pixel_centre"``), or the translation
        itself for stores without the record (written before it).

    Raises
    ------
    ResultStoreError
        The block records a convention this chromarate does not know.
    """
    convention = block.get(_TRANSLATION)
    if convention is None:
        return (translation[1], translation[2])
    if convention != _PIXEL_CENTRE:
        raise ResultStoreError(
            f"unknown translation convention {convention!r} in the {BLOCK!r} block (this "
            f"chromarate knows {_PIXEL_CENTRE!r})", path=path)
    return (translation[1] - pixel / 2, translation[2] - pixel / 2)


def check_grid(path: Path, block: Mapping[str, Any], shape: Sequence[int]) -> None:
    """Check that the image array has the grid the block records (when it records one).

    Raises
    ------
    ResultStoreError
        The record is damaged or names another shape than ``shape`` (c, y, x).
    """
    grid = block.get(_GRID)
    if grid is None:
        return  # written before the grid was recorded
    try:
        ny, nx = (int(n) for n in grid["shape"])
        n_channels = int(grid["channels"])
    except (TypeError, ValueError, KeyError):
        raise ResultStoreError(f"damaged {BLOCK!r} block: 'grid' is {grid!r}",
                               path=path) from None
    if tuple(int(n) for n in shape) != (n_channels, ny, nx):
        raise ResultStoreError(
            f"image array has shape {tuple(shape)} but the provenance records "
            f"{n_channels} channels on a {ny} x {nx} grid; the store is damaged or not what "
            f"it claims to be", path=path)
