"""napari readers: chromarate result stores and localization files.

Both follow npe2's reader protocol: ``get_*_reader(path)`` returns a function that turns the
path into layer data, or None to let napari try other readers. They decline quickly and
never raise for paths that are not theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..io.names import INPUT_SUFFIXES, input_stem
from ..errors import ChromarateError
from ._layers import density_layer_data, localization_layer_data, MAX_POINTS, result_layer_data

__all__ = ["LOCALIZATION_SUFFIXES", "get_localization_reader", "get_result_reader",
           "result_name"]

ReaderFunction = Callable[[str | list[str]], list[tuple]]

#: File names the localization reader looks at (content decides; see read_localizations):
#: the batch's input files less the TIFF density images (napari opens those itself).
LOCALIZATION_SUFFIXES = tuple(s for s in INPUT_SUFFIXES if s not in (".tif", ".tiff"))


def _single_path(path: str | list[str]) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def result_name(path: Path) -> str:
    """Short name of a result store for layer names: ``<input-stem>/<nucleus-id>``."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return f"{path.parent.name}/{name}" if path.parent.name else name


def get_result_reader(path: str | list[str]) -> ReaderFunction | None:
    """Reader for a chromarate result store (``*.ome.zarr`` written by chromarate).

    Returns None for anything else: other files, OME-Zarr images not written by chromarate,
    damaged or incomplete stores (their layers would be wrong).
    """
    from ..io.zarr_store import is_complete_result

    p = _single_path(path)
    if p is None or not p.is_dir() or not is_complete_result(p):
        return None
    return read_result_layers


def read_result_layers(path: str | list[str]) -> list[tuple]:
    """Layer data of one result store: channels as images, labels as labels layers."""
    from ..io.zarr_store import open_result_levels, read_result

    p = _single_path(path)
    stack = read_result(p)
    levels = open_result_levels(p)
    return result_layer_data(stack, name=result_name(p), source=str(p), levels=levels)


def get_localization_reader(path: str | list[str]) -> ReaderFunction | None:
    """Reader for a localization file of any format chromarate reads.

    Only the start of the file is read here, to detect its format from its content: a file
    no format claims gives None (other readers may take it). The reader function then reads
    it -- a file of a detected format that cannot be read (truncated, no unit) raises the
    reader's error naming it, which napari shows -- renders the density image at 20 nm
    (chromarate's default rendering) and, for files with at most :data:`MAX_POINTS`
    localizations, adds the localizations as points.
    """
    from ..io import registry
    from ..io._textscan import HEAD_BYTES, read_start
    from ..io.localizations import read_localizations

    p = _single_path(path)
    if p is None or not p.is_file() or not p.name.lower().endswith(LOCALIZATION_SUFFIXES):
        return None
    try:
        fmt = registry.detect_format(p, read_start(p, HEAD_BYTES))
    except (ChromarateError, OSError):
        return None
    if fmt is None:
        return None

    def reader(_path: str | list[str]) -> list[tuple]:
        return localization_layers(read_localizations(p, format=fmt), p)

    return reader


def localization_layers(locs, path: Path) -> list[tuple]:
    """Density image (and points, for small files) of a localization table."""
    from ..config import RenderConfig
    from ..render import render_density

    stem = input_stem(path)  # the batch's name for it (cell.1.csv -> cell.1)
    density = render_density(locs, RenderConfig())
    layers = [density_layer_data(density, locs=locs, source=str(path),
                                 name=f"{stem} · density ({density.pixel_size_nm:g} nm pixels)")]
    if len(locs) <= MAX_POINTS:
        layers.append(localization_layer_data(locs, name=f"{stem} · localizations",
                                              source=str(path)))
    return layers
