"""Export a result stack as an ImageJ hyperstack TIFF for Fiji users.

:func:`write_result_tiff` writes one float32 ``(c, y, x)`` ImageJ hyperstack: the channels of
the stack in order, then (by default) each label image as one more channel. Fiji opens it with

- the spatial calibration: pixel width and height in micrometres (``unit=micron`` and the
  ``XResolution``/``YResolution`` tags in pixels per micrometre) and the origin (ImageJ's
  ``xorigin``/``yorigin``, in pixels), so that ImageJ's calibrated coordinates of a pixel's
  corner are those of the result grid;
- the channel names as slice labels (``nucleus (label)`` for a label image);
- each channel's display range (1st to 99th percentile of its finite values) and a LUT in
  the channel's colour (:data:`chromarate.export.CHANNEL_TABLE`, as in the OME-Zarr store;
  ImageJ "color" mode: one channel at a time, its name shown);
- the ``chromarate`` provenance block as indented JSON in the image's Info
  (*Image > Show Info*).

NaN (outside the nucleus) stays NaN; Fiji shows it as the background colour. The file is
written atomically (beside, then renamed into place).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from .._types import ResultStack
from ..errors import ResultStoreError
from ..export import SCHEMA_VERSION, channel_color, json_safe
from ._atomic import atomic_binary
from ._results import display_window, validate_stack

__all__ = ["write_result_tiff", "label_channel_name"]


def label_channel_name(label: str) -> str:
    """Name of the TIFF channel holding label image ``label``."""
    return f"{label} (label)"


def _lut(rrggbb: str) -> np.ndarray:
    """ImageJ LUT (3, 256) uint8 ramping from black to the colour ``rrggbb``."""
    rgb = np.array([int(rrggbb[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)
    ramp = np.linspace(0.0, 1.0, 256)
    return np.round(rgb[:, None] * ramp[None, :]).astype(np.uint8)


def write_result_tiff(
    stack: ResultStack | str | os.PathLike,
    path: str | os.PathLike,
    *,
    include_labels: bool = True,
    overwrite: bool = True,
) -> Path:
    """Write a result stack as an ImageJ-compatible hyperstack TIFF.

    Parameters
    ----------
    stack : ResultStack, str or path-like
        Channels, labels, pixel size, origin and provenance (see :mod:`chromarate.export`),
        or a result store (``<id>.ome.zarr``) to read them from.
    path : str or path-like
        The ``.tif`` file to write; missing parent directories are created.
    include_labels : bool
        Append each label image (e.g. the nucleus mask) as one more channel.
    overwrite : bool
        Replace an existing file (only once the new one is complete).

    Returns
    -------
    Path
        ``path``, the multi-channel TIFF now complete.

    Raises
    ------
    ResultStoreError
        If the stack is invalid, the store given cannot be read, the file exists and
        ``overwrite`` is False, or it cannot be written. An existing file is then left as
        it was.
    TypeError
        ``stack`` is neither a ResultStack nor a path.

    Examples
    --------
    >>> import numpy as np, tempfile, os, tifffile
    >>> from chromarate._types import ResultStack
    >>> rate = np.ones((8, 10), np.float32)
    >>> stack = ResultStack({"rate": rate}, {"nucleus": (rate > 0).astype(np.uint8)},
    ...                     pixel_size_nm=20.0, origin_nm=(0.0, 0.0))
    >>> f = write_result_tiff(stack, os.path.join(tempfile.mkdtemp(), "n.tif"))
    >>> with tifffile.TiffFile(f) as tif:
    ...     tif.series[0].axes, tif.imagej_metadata["Labels"]
    ('CYX', ['rate', 'nucleus (label)'])
    """
    import tifffile  # imported here: only this writer needs it

    if isinstance(stack, (str, os.PathLike)):
        from .zarr_store import read_result  # noqa: PLC0415 - only for a store given by path

        stack = read_result(stack)
    path = Path(path)
    validate_stack(stack, path)
    if os.path.lexists(path) and not overwrite:
        raise ResultStoreError("TIFF file already exists (overwrite=False)", path=path)
    if path.is_dir():
        raise ResultStoreError("is a directory, expected a .tif file to write", path=path)

    names = list(stack.channels)
    planes = [np.asarray(a, dtype=np.float32) for a in stack.channels.values()]
    if include_labels:
        for lname, lab in stack.labels.items():
            names.append(label_channel_name(lname))
            planes.append(np.asarray(lab).astype(np.float32))
    if len(set(names)) != len(names):
        raise ResultStoreError(f"channel names are not unique: {names}", path=path)
    data = np.stack(planes)

    ranges: list[float] = []
    luts = []
    for i, (name, plane) in enumerate(zip(names, planes)):
        is_label = i >= len(stack.channels)
        w = display_window(plane)
        ranges += [0.0, max(float(np.nanmax(plane)) if plane.size else 1.0, 1.0)] \
            if is_label else [w["start"], w["end"]]
        luts.append(_lut("FFFFFF" if is_label else channel_color(name, i)))

    p_um = float(stack.pixel_size_nm) / 1000.0
    oy, ox = (float(v) for v in stack.origin_nm)
    provenance = json_safe(dict(stack.provenance))
    provenance.setdefault("schema_version", SCHEMA_VERSION)
    info = json.dumps({"chromarate": provenance, "channels": names,
                       "pixel_size_nm": float(stack.pixel_size_nm),
                       "origin_nm": [oy, ox]}, indent=1, allow_nan=False)
    metadata = {
        "axes": "CYX",
        "mode": "color",
        "unit": "micron",
        "xorigin": -ox / float(stack.pixel_size_nm),
        "yorigin": -oy / float(stack.pixel_size_nm),
        "Labels": names,
        "Ranges": ranges,
        "LUTs": luts,
        "Info": info,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # tifffile wants a named file; the atomic writer has an fd
        tifffile.imwrite(buffer, data, imagej=True, resolution=(1.0 / p_um, 1.0 / p_um),
                         metadata=metadata)
        with atomic_binary(path) as fh:
            fh.write(buffer.getbuffer())
    except ResultStoreError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ResultStoreError(f"cannot write the TIFF file: {exc}", path=path) from exc
    return path
