"""Write a rendered density map as a single-plane OME-TIFF.

:func:`write_density_ome_tiff` writes the float32 ``(y, x)`` image with OME-XML metadata
that Fiji (Bio-Formats), QuPath, napari and any OME reader understand:

- ``Pixels`` ``SizeX``/``SizeY`` and ``PhysicalSizeX``/
  ``PhysicalSizeY`` equal to the pixel size in nanometres (``PhysicalSize*Unit="nm"``);
- the plane's ``PositionX``/``PositionY`` (nm): the corner of pixel (0, 0), the
  ``origin_nm`` of the map, so that the image lies where its localizations were;
- the image ``Name`` (default ``"density"``) and, in the ``Description``, what the
  values are (the unit of the ``density`` channel of
  :data:`chromarate.export.CHANNEL_TABLE`: localizations per pixel) and the rendering
  metadata of the map;
- TIFF resolution tags in pixels per centimetre as well, for readers without OME support.

:func:`chromarate.io.read_density_image` reads the file back with the same pixel size.
The file is written atomically (beside, then moved into place).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from .._types import DensityMap
from ..export import channel_spec, json_safe
from ._atomic import atomic_binary

__all__ = ["write_density_ome_tiff"]


def write_density_ome_tiff(density: DensityMap, path: str | os.PathLike, *,
                           name: str = "density") -> Path:
    """Write a density map as an OME-TIFF with its physical pixel size and origin.

    Parameters
    ----------
    density : DensityMap
        The map (e.g. :func:`chromarate.render_density` of filtered, drift-corrected
        localizations).
    path : str or os.PathLike
        Output file, conventionally ``*.ome.tif``.
    name : str, optional
        The OME image name.

    Returns
    -------
    pathlib.Path
        ``path``, the OME-TIFF now complete.

    Raises
    ------
    TypeError
        ``density`` is not a :class:`DensityMap`.
    ValueError
        The map is not 2-D.

    Examples
    --------
    >>> write_density_ome_tiff(chromarate.render_density(locs), "cell.ome.tif")  # doctest: +SKIP
    """
    import tifffile

    if not isinstance(density, DensityMap):
        raise TypeError(f"density must be a DensityMap, not {type(density).__name__}")
    data = np.asarray(density.data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"a density map is 2-D (y, x), got shape {data.shape}")
    p = float(density.pixel_size_nm)
    oy, ox = (float(v) for v in density.origin_nm)
    description = json.dumps({"values": channel_spec("density").unit,
                              "meta": json_safe(dict(density.meta or {}))})
    metadata = {
        "axes": "YX",
        "Name": str(name),
        "Description": description,
        "PhysicalSizeX": p, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": p, "PhysicalSizeYUnit": "nm",
        "Plane": {"PositionX": [ox], "PositionXUnit": ["nm"],
                  "PositionY": [oy], "PositionYUnit": ["nm"]},
    }
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, ome=True, photometric="minisblack", metadata=metadata,
                     resolution=(1e7 / p, 1e7 / p), resolutionunit="CENTIMETER")
    path = Path(path)
    with atomic_binary(path) as fh:
        fh.write(buffer.getvalue())
    return path

