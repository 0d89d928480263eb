"""Read density images (TIFF) into :class:`~chromarate._types.DensityMap`.

:func:`read_density_image` reads a 2-D TIFF (or one plane of a stack) with tifffile and
finds its pixel size in the file's metadata, in this order:

1. the ``pixel_size_nm=`` argument, when given (it overrides the file);
2. OME-XML: ``PhysicalSizeX``/``PhysicalSizeY`` of the first ``Pixels`` element, in
   ``PhysicalSizeXUnit``/``PhysicalSizeYUnit`` (OME's default unit is the micrometre);
3. ImageJ: the ``XResolution``/``YResolution`` tags (pixels per unit) with the ``unit``
   of the ImageJ description (``micron``, ``um``, ``\\u00B5m``, ``nm``, ``mm``, ...).
   ImageJ's ``spacing`` is the z step of a stack, not the pixel size, so it is not used;
4. plain TIFF: ``XResolution``/``YResolution`` with ``ResolutionUnit`` centimetre or inch.
   A resolution in inches that gives pixels larger than 0.1 mm is a print resolution
   (72 or 300 dpi, written by image editors), not a calibration, and is refused.

When none of these gives a square pixel size the reader refuses the file and asks for
``pixel_size_nm=``. The origin of the map is (0, 0) nm.

Every failure raises :class:`~chromarate.errors.InputFormatError` naming the file.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from chromarate._types import DensityMap
from chromarate.errors import InputFormatError
from chromarate.io.limits import check_decoded_size

__all__ = ["read_density_image"]

# nanometres per unit (keys lower-case; the micro sign and the Greek mu both map)
_UNITS_NM: dict[str, float] = {
    "pm": 1e-3, "picometer": 1e-3, "picometre": 1e-3,
    "\u00e5": 0.1, "\u212b": 0.1, "a": 0.1, "angstrom": 0.1,
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "um": 1e3, "\u00b5m": 1e3, "\u03bcm": 1e3, "micron": 1e3, "microns": 1e3,
    "micrometer": 1e3, "micrometre": 1e3, "micrometers": 1e3, "micrometres": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9,
    "inch": 2.54e7, "in": 2.54e7,
}

# TIFF ResolutionUnit values
_RESUNIT_NONE, _RESUNIT_INCH, _RESUNIT_CM = 1, 2, 3

# Largest pixel size (nm) accepted from a resolution in inches (see the module docstring).
_MAX_INCH_PIXEL_NM = 1e5

_HINT = "pass pixel_size_nm= to read_density_image"


def read_density_image(
    path: str | Path,
    *,
    pixel_size_nm: float | None = None,
    page: int | None = None,
) -> DensityMap:
    """Read a 2-D density image from a TIFF file.

    Parameters
    ----------
    path : str or Path
        A TIFF file (plain, ImageJ or OME-TIFF).
    pixel_size_nm : float, optional
        Side of a square pixel in nm; overrides what the file says. Required when the
        file carries no usable calibration.
    page : int, optional
        0-based plane of a stack (all axes other than y and x flattened in file order,
        e.g. plane k of a ``(9, 512, 512)`` stack). Without it the image must be 2-D
        (after dropping axes of length 1).

    Returns
    -------
    DensityMap
        float32 ``(ny, nx)`` data (values as stored, e.g. counts per pixel),
        ``pixel_size_nm``, ``origin_nm = (0.0, 0.0)`` and ``meta`` with ``source``,
        ``format`` (``"tiff"``), ``pixel_size_source`` (``"argument"``, ``"ome"``,
        ``"imagej"`` or ``"tiff-resolution"``), ``page``, ``dtype``, ``shape_in_file`` and
        ``axes``.

    Raises
    ------
    InputFormatError
        If the file is missing or not a readable TIFF, the image is not 2-D and no valid
        ``page`` selects a plane, it is RGB or otherwise multi-sample, its data type is not
        an integer or floating-point number, it holds NaN, infinite or negative values,
        or no pixel size is given and none can be found in the file.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "density.tif")
    >>> tifffile.imwrite(f, np.ones((4, 6), np.uint16), imagej=True,
    ...                  resolution=(1 / 0.02, 1 / 0.02), metadata={"unit": "um"})
    >>> dm = read_density_image(f)
    >>> dm.shape, round(dm.pixel_size_nm, 6), dm.meta["pixel_size_source"]
    ((4, 6), 20.0, 'imagej')
    """
    import tifffile  # imported here: only this reader needs it

    path = Path(path)
    if pixel_size_nm is not None:
        ok = (isinstance(pixel_size_nm, (int, float, np.integer, np.floating))
              and not isinstance(pixel_size_nm, bool)
              and math.isfinite(float(pixel_size_nm)) and float(pixel_size_nm) > 0)
        if not ok:
            raise InputFormatError(
                f"pixel_size_nm= must be a positive number of nm, got {pixel_size_nm!r}",
                path=path)
    if page is not None and (isinstance(page, bool) or not isinstance(page, (int, np.integer))
                             or page < 0):
        raise InputFormatError(f"page= must be a non-negative integer, got {page!r}", path=path)
    if not path.exists():
        raise InputFormatError("file not found", path=path)
    if path.is_dir():
        raise InputFormatError("is a directory, expected a TIFF file", path=path)

    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.series or not tf.pages:
                raise InputFormatError("TIFF file holds no image", path=path)
            series = tf.series[0]
            shape, axes = tuple(series.shape), str(series.axes)
            arr = _select_plane(series, shape, axes, page, path)
            if pixel_size_nm is not None:
                p, source = float(pixel_size_nm), "argument"
            else:
                p, source = _pixel_size_from_file(tf, path)
    except InputFormatError:
        raise
    except tifffile.TiffFileError as exc:
        raise InputFormatError(f"not a readable TIFF file: {exc}", path=path) from exc
    except (OSError, ValueError, KeyError, IndexError, TypeError, MemoryError) as exc:
        raise InputFormatError(f"cannot read the TIFF image: {exc}", path=path) from exc

    data = _check_values(arr, path)
    meta: dict[str, Any] = {
        "source": str(path),
        "format": "tiff",
        "pixel_size_source": source,
        "page": None if page is None else int(page),
        "dtype": str(arr.dtype),
        "shape_in_file": list(shape),
        "axes": axes,
    }
    return DensityMap(data=data, pixel_size_nm=float(p), origin_nm=(0.0, 0.0), meta=meta)


def _select_plane(series, shape: tuple, axes: str, page: int | None, path: Path) -> np.ndarray:
    """The 2-D (y, x) plane of the first series, checking axes and ``page``."""
    if "S" in axes and shape[axes.index("S")] > 1:
        raise InputFormatError(
            f"image has {shape[axes.index('S')]} samples per pixel (RGB or multi-channel "
            f"colour, axes {axes!r}, shape {shape}); expected a single-channel density image",
            path=path)
    if len(shape) < 2 or not axes.endswith("YX") and not axes.endswith("YXS"):
        raise InputFormatError(
            f"image of shape {shape} (axes {axes!r}) has no y, x plane", path=path)
    ny, nx = (shape[axes.index("Y")], shape[axes.index("X")])
    n_planes = int(np.prod([n for n, a in zip(shape, axes) if a not in "YXS"], dtype=np.int64))
    one_page = page is not None and len(series.pages) == n_planes
    _check_size(series, shape, ny, nx, whole=not one_page, path=path)
    if page is None:
        if n_planes != 1:
            raise InputFormatError(
                f"image is not 2-D: shape {shape} (axes {axes!r}) holds {n_planes} planes "
                f"of {ny} x {nx}; choose one with page= (0 to {n_planes - 1})", path=path)
        arr = series.asarray()
    else:
        if page >= n_planes:
            raise InputFormatError(
                f"page={page} is out of range: the image (shape {shape}, axes {axes!r}) has "
                f"{n_planes} plane(s), pages 0 to {n_planes - 1}", path=path)
        arr = None
        if len(series.pages) == n_planes:  # one TIFF page per plane: read only that one
            try:
                arr = np.asarray(series.asarray(key=int(page)))
            except (ValueError, IndexError, TypeError):
                arr = None
        if arr is None or arr.size != ny * nx:
            arr = np.asarray(series.asarray()).reshape(n_planes, ny, nx)[int(page)]
    arr = np.asarray(arr).reshape(ny, nx)
    return arr


def _check_size(series, shape: tuple, ny: int, nx: int, *, whole: bool, path: Path) -> None:
    """Refuse an image whose decoded pixels (what is read, plus the float32 copy and the
    value checks) need more memory than the read limit -- before anything is decoded."""
    itemsize = np.dtype(series.dtype).itemsize
    n_read = math.prod(int(n) for n in shape) if whole else int(ny) * int(nx)
    nbytes = n_read * itemsize + int(ny) * int(nx) * 5  # + float32 copy + a bool mask
    shown = " x ".join(str(int(n)) for n in shape)
    check_decoded_size(path, nbytes, f"the TIFF image ({shown} {np.dtype(series.dtype)})")


def _check_values(arr: np.ndarray, path: Path) -> np.ndarray:
    """float32 copy of a numeric, finite, non-negative image."""
    dt = arr.dtype
    if dt == np.bool_ or not (np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating)):
        raise InputFormatError(
            f"image data type {dt} is not a number type; expected integer or floating-point "
            f"counts per pixel", path=path)
    if arr.size == 0:
        raise InputFormatError(f"image is empty (shape {arr.shape})", path=path)
    if np.issubdtype(dt, np.floating):
        n_nan = int(np.isnan(arr).sum())
        if n_nan:
            first = np.unravel_index(int(np.flatnonzero(np.isnan(arr.ravel()))[0]), arr.shape)
            raise InputFormatError(
                f"image holds {n_nan} NaN value(s) (first at row {first[0]}, column "
                f"{first[1]}); expected finite counts per pixel", path=path)
        n_inf = int(np.isinf(arr).sum())
        if n_inf:
            raise InputFormatError(f"image holds {n_inf} infinite value(s)", path=path)
    vmin = arr.min()
    if vmin < 0:
        n_neg = int((arr < 0).sum())
        raise InputFormatError(
            f"image holds {n_neg} negative value(s) (minimum {vmin!r}); a density image "
            f"counts localizations per pixel and cannot be negative", path=path)
    data = arr.astype(np.float32)
    if not np.isfinite(data).all():
        raise InputFormatError("image values overflow float32", path=path)
    return data


def _pixel_size_from_file(tf, path: Path) -> tuple[float, str]:
    """(pixel size in nm, source) from OME-XML, ImageJ or TIFF resolution tags."""
    if tf.is_ome and tf.ome_metadata:
        found = _ome_pixel_size(tf.ome_metadata, path)
        if found is not None:
            return _square(found, "OME-XML PhysicalSizeX/Y", path), "ome"
    page0 = tf.pages[0]
    xres, yres, unit_tag = _resolution(page0)
    ij = tf.imagej_metadata if tf.is_imagej else None
    if ij:
        unit = _normalise_unit(ij.get("unit"))
        if unit is not None and unit not in ("pixel", "pixels", "px", ""):
            if unit not in _UNITS_NM:
                raise InputFormatError(
                    f"ImageJ unit {ij.get('unit')!r} is not a length unit this reader knows; "
                    f"{_HINT}", path=path)
            if xres is None:
                raise InputFormatError(
                    f"ImageJ unit is {ij.get('unit')!r} but the file has no XResolution; "
                    f"{_HINT}", path=path)
            per = _UNITS_NM[unit]
            return _square((per / xres, per / (yres or xres)),
                           f"ImageJ resolution (unit {ij.get('unit')!r})", path), "imagej"
    if xres is not None and unit_tag in (_RESUNIT_CM, _RESUNIT_INCH):
        per = _UNITS_NM["cm"] if unit_tag == _RESUNIT_CM else _UNITS_NM["inch"]
        px, py = per / xres, per / (yres or xres)
        if unit_tag == _RESUNIT_INCH and max(px, py) > _MAX_INCH_PIXEL_NM:
            raise InputFormatError(
                f"the TIFF resolution is {xres:g} dots per inch, a print resolution, not a "
                f"microscope calibration (it would mean {px:.4g} nm pixels); {_HINT}",
                path=path)
        return _square((px, py), "TIFF XResolution/YResolution", path), "tiff-resolution"
    raise InputFormatError(
        "the file does not say its pixel size (no OME PhysicalSizeX, no ImageJ unit with "
        f"XResolution, no TIFF resolution in cm or inch); {_HINT}", path=path)


def _resolution(page) -> tuple[float | None, float | None, int | None]:
    """(x pixels per unit, y pixels per unit, ResolutionUnit) or Nones."""
    def rational(tag_name):
        tag = page.tags.get(tag_name)
        if tag is None:
            return None
        v = tag.value
        try:
            num, den = (v if isinstance(v, (tuple, list)) else (v, 1))
            val = float(num) / float(den)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return val if math.isfinite(val) and val > 0 else None

    unit_tag = page.tags.get("ResolutionUnit")
    try:
        unit = int(unit_tag.value) if unit_tag is not None else None
    except (TypeError, ValueError):
        unit = None
    return rational("XResolution"), rational("YResolution"), unit


def _normalise_unit(unit) -> str | None:
    if unit is None:
        return None
    u = str(unit).strip()
    u = re.sub(r"\\u00[bB]5", "\u00b5", u)  # ImageJ writes the micro sign escaped
    return u.lower()


def _ome_pixel_size(xml: str, path: Path) -> tuple[float, float] | None:
    """(x, y) physical pixel size in nm from OME-XML, or None when absent."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputFormatError(f"OME-XML metadata is not valid XML: {exc}", path=path) from exc
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    sizes = []
    for axis in ("X", "Y"):
        raw = pixels.attrib.get(f"PhysicalSize{axis}", pixels.attrib.get("PhysicalSizeX"))
        unit_raw = pixels.attrib.get(f"PhysicalSize{axis}Unit", "\u00b5m")
        unit = _normalise_unit(unit_raw)
        if unit not in _UNITS_NM:
            raise InputFormatError(
                f"OME PhysicalSize{axis}Unit {unit_raw!r} is not a length unit this reader "
                f"knows; {_HINT}", path=path)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InputFormatError(
                f"OME PhysicalSize{axis} {raw!r} is not a number; {_HINT}", path=path) from None
        sizes.append(value * _UNITS_NM[unit])
    return sizes[0], sizes[1]


def _square(sizes: tuple[float, float], what: str, path: Path) -> float:
    px, py = sizes
    if not all(math.isfinite(v) and v > 0 for v in (px, py)):
        raise InputFormatError(f"{what} gives pixel size {px!r} x {py!r} nm; {_HINT}", path=path)
    if abs(px - py) > 1e-6 * max(px, py):
        raise InputFormatError(
            f"{what} gives non-square pixels ({px:.6g} x {py:.6g} nm, x by y); density maps "
            f"have square pixels: resample the image or {_HINT}", path=path)
    return px
