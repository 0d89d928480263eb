"""What the result writers (OME-Zarr, TIFF) share: stack checks and display windows.

Channel colours come from :data:`chromarate.export.CHANNEL_TABLE`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._types import ResultStack
from ..errors import ResultStoreError


def display_window(data: np.ndarray) -> dict[str, float]:
    """Value range (``min``, ``max``) and display window (``start``, ``end``: the 1st and
    99th percentiles) of the finite values of ``data``; a fixed 0..1 when there are none."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}
    lo, hi = float(finite.min()), float(finite.max())
    start, end = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    if not end > start:
        start, end = lo, hi
    if not hi > lo:
        hi = lo + 1.0
        start, end = lo, hi
    return {"min": lo, "max": hi, "start": start, "end": end}


def validate_stack(stack: ResultStack, path: Path) -> tuple[int, int]:
    """Check that a stack can be written; return its (ny, nx) grid.

    Raises
    ------
    ResultStoreError
        No channels, channels that are not 2-D or not on one grid, label images of another
        shape or a non-integer type, a non-positive pixel size or a non-finite origin. The
        message names ``path``, the result being written.
    """
    if not isinstance(stack, ResultStack):
        raise TypeError(f"expected a ResultStack (chromarate.io.read_result reads one from a "
                        f"result store), got a {type(stack).__name__}")
    if not stack.channels:
        raise ResultStoreError("result stack has no channels", path=path)
    shape = None
    for name, data in stack.channels.items():
        if not isinstance(name, str) or not name:
            raise ResultStoreError(f"channel names must be non-empty strings, got {name!r}",
                                   path=path)
        a = np.asarray(data)
        if a.ndim != 2:
            raise ResultStoreError(f"channel {name!r} must be 2-D, got shape {a.shape}",
                                   path=path)
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise ResultStoreError(
                f"channel {name!r} has shape {a.shape}, expected {shape} like the others",
                path=path)
    for name, data in stack.labels.items():
        a = np.asarray(data)
        if not isinstance(name, str) or not name or "/" in name:
            raise ResultStoreError(f"invalid label name {name!r}", path=path)
        if a.shape != shape:
            raise ResultStoreError(
                f"label {name!r} has shape {a.shape}, expected {shape}", path=path)
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise ResultStoreError(
                f"label {name!r} must be integer, got dtype {a.dtype}", path=path)
    p = float(stack.pixel_size_nm)
    if not (math.isfinite(p) and p > 0):
        raise ResultStoreError(f"pixel size must be positive, got {p}", path=path)
    if len(stack.origin_nm) != 2 or not all(math.isfinite(float(v)) for v in stack.origin_nm):
        raise ResultStoreError(f"origin must be two finite numbers, got {stack.origin_nm}",
                               path=path)
    return shape  # type: ignore[return-value]
