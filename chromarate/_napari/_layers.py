"""Turn chromarate results and localizations into napari layer data (pure; no napari import).

Layer data are napari's ``(data, kwargs, layer_type)`` tuples, so readers, sample data and
widgets share one conversion and tests can check it without a viewer.

Placement: napari puts the centre of pixel ``i`` at ``translate + i * scale``; chromarate's
``origin_nm`` is the *corner* of pixel (0, 0) (docs/design.md, "Value types and units"). Every image layer is
therefore translated by ``origin + pixel / 2``, which puts localization points (plotted at
their nm coordinates) on the pixels they were counted in. World units are nanometres.

Titles, colormaps, contrast rules and which channels show at first come from
:data:`chromarate.export.CHANNEL_TABLE`, the table the result store and the TIFF exports
take their channel colours from.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .._types import DensityMap, Localizations, ResultStack
from ..export import TRUSTED_LABEL, channel_spec

__all__ = [
    "DISPLAY_KEY",
    "MAX_POINTS",
    "METADATA_KEY",
    "density_layer_data",
    "domain_layer_data",
    "layer_metadata",
    "localization_layer_data",
    "result_layer_data",
    "truth_layer_data",
]

#: Key of the dict that chromarate puts into each layer's ``metadata``.
METADATA_KEY = "chromarate"

#: Key, inside that dict, of display settings napari's layer constructors do not take
#: (``contour`` of a labels layer, ``colorbar`` of an image layer); applied by
#: :mod:`chromarate._napari._present` once the layer exists.
DISPLAY_KEY = "display"


def layer_metadata(layer) -> dict:
    """The chromarate block of a layer's metadata (empty for other layers and objects)."""
    return (getattr(layer, "metadata", None) or {}).get(METADATA_KEY) or {}


#: Localization files with at most this many rows are also shown as points.
MAX_POINTS = 50_000


_LABEL_TITLES = {"nucleus": "nucleus", "domains": "domains", TRUSTED_LABEL: "trusted rate"}

#: Label images drawn as outlines: the nucleus, and where its rate is trusted.
_OUTLINED = ("nucleus", TRUSTED_LABEL)

#: Opacity of the rate map over the density (translucent blending: the density shows
#: through a little inside the nucleus and fully outside, where the rate is NaN).
RATE_OPACITY = 0.85

#: Outline width (pixels) of the nucleus and trusted-rate labels layers.
NUCLEUS_CONTOUR = 2


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    return v[np.isfinite(v)]


def contrast_limits(values: np.ndarray, rule: str = "percentile") -> tuple[float, float]:
    """Display range of an image from its finite values (a valid range even when constant
    or all NaN)."""
    v = _finite(values)
    if v.size == 0:
        return (0.0, 1.0)
    if rule == "symmetric":
        a = float(np.percentile(np.abs(v), 99.0))
        return (-a, a) if a > 0 else (-1.0, 1.0)
    lo, hi = (float(x) for x in np.percentile(v, [1.0, 99.5]))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi)


def _placement(pixel_size_nm: float, origin_nm: Sequence[float]) -> dict[str, Any]:
    p = float(pixel_size_nm)
    return {"scale": (p, p), "translate": (float(origin_nm[0]) + p / 2, float(origin_nm[1]) + p / 2),
            "units": ("nm", "nm"), "axis_labels": ("y", "x")}


def result_layer_data(
    stack: ResultStack,
    *,
    name: str,
    source: str | None = None,
    levels: Mapping[str, list] | None = None,
) -> list[tuple]:
    """Layer data of one result: an image layer per channel, a labels layer per label image.

    Parameters
    ----------
    stack : ResultStack
        The result (full-resolution arrays).
    name : str
        Prefix of the layer names, e.g. the store name ``"cell1/3"``.
    source : str, optional
        Where the result came from (stored in the layer metadata).
    levels : dict of str to list of arrays, optional
        Pyramid per channel (:func:`chromarate.io.zarr_store.open_result_levels`); channels
        with more than one level become multiscale image layers.

    Returns
    -------
    list of tuple
        ``(data, kwargs, "image" | "labels")``, named ``"<name> · <short title>"``.
        Density and rate are visible, the other channels hidden; the rate map is blended
        translucently over the density (with a colorbar), and the nucleus and the pixels
        where the rate is trusted are drawn as outlines. Each layer's
        ``metadata["chromarate"]`` holds ``channel`` (or ``label``), ``result`` (the name),
        ``source``, the ``stack`` itself and the ``display`` settings napari's
        constructors do not take.
    """
    placement = _placement(stack.pixel_size_nm, stack.origin_nm)
    base_meta = {"result": name, "source": source, "stack": stack}
    out: list[tuple] = []
    for i, (channel, data) in enumerate(stack.channels.items()):
        spec = channel_spec(channel)
        pyramid = list(levels[channel]) if levels and len(levels.get(channel, ())) > 1 else None
        display = {"colorbar": True} if channel == "rate" else {}
        kwargs = {
            "name": f"{name} · {spec.title}",
            "colormap": spec.colormap,
            "contrast_limits": contrast_limits(data, spec.contrast),
            "blending": "translucent",
            "visible": spec.visible,
            "opacity": RATE_OPACITY if channel == "rate" else 1.0,
            "metadata": {METADATA_KEY: {**base_meta, "channel": channel,
                                        DISPLAY_KEY: display}},
            **placement,
        }
        if pyramid is not None:
            kwargs["multiscale"] = True
        out.append((pyramid if pyramid is not None else np.asarray(data), kwargs, "image"))
    for label, data in stack.labels.items():
        display = {"contour": NUCLEUS_CONTOUR} if label in _OUTLINED else {}
        out.append((np.asarray(data), {
            "name": f"{name} · {_LABEL_TITLES.get(label, label)}",
            "opacity": 1.0 if label in _OUTLINED else 0.5,
            "metadata": {METADATA_KEY: {**base_meta, "label": label, DISPLAY_KEY: display}},
            **placement,
        }, "labels"))
    return out


def density_layer_data(density: DensityMap, *, name: str, source: str | None = None,
                       locs: Localizations | None = None) -> tuple:
    """Image layer data of a rendered density map (shown as the ``density`` channel).

    When ``locs`` is given, the layer's ``metadata["chromarate"]["localizations"]`` holds
    it, so that the inference widget can run on the layer.
    """
    meta: dict[str, Any] = {"source": source, "pixel_size_nm": float(density.pixel_size_nm)}
    if locs is not None:
        meta["localizations"] = locs
    return (np.asarray(density.data), {
        "name": name,
        "colormap": channel_spec("density").colormap,
        "contrast_limits": contrast_limits(density.data, channel_spec("density").contrast),
        "metadata": {METADATA_KEY: meta},
        **_placement(density.pixel_size_nm, density.origin_nm),
    }, "image")


def localization_layer_data(locs: Localizations, *, name: str,
                            source: str | None = None) -> tuple:
    """Points layer data of localizations at their (y, x) in nm.

    Point size is twice the localization precision when the table has one (else 20 nm);
    frame, photons and precision become point features.
    """
    table = locs.table
    yx = table[["y_nm", "x_nm"]].to_numpy(dtype=np.float64)
    if "precision_nm" in table:
        size = np.clip(2.0 * table["precision_nm"].to_numpy(dtype=np.float64), 2.0, 200.0)
    else:
        size = 20.0
    features = {c: table[c].to_numpy() for c in ("frame", "photons", "precision_nm") if c in table}
    return (yx, {
        "name": name,
        "size": size,
        "face_color": "cyan",
        "border_width": 0.0,
        "opacity": 0.5,
        "features": features,
        "units": ("nm", "nm"),
        "axis_labels": ("y", "x"),
        "metadata": {METADATA_KEY: {"source": source, "localizations": locs}},
    }, "points")


def truth_layer_data(truth: Mapping[str, Any], *, name: str) -> tuple:
    """Image layer data of a ground-truth rate map (``read_truth`` output), hidden at first,
    with the colormap of inferred rates."""
    rate = np.where(np.asarray(truth["mask"], bool), truth["rate"], np.nan).astype(np.float32)
    return (rate, {
        "name": name,
        "colormap": channel_spec("rate").colormap,
        "contrast_limits": contrast_limits(rate, channel_spec("rate").contrast),
        "visible": False,
        "metadata": {METADATA_KEY: {"channel": "rate_truth", DISPLAY_KEY: {"colorbar": True}}},
        **_placement(truth["pixel_size_nm"], truth["origin_nm"]),
    }, "image")


def domain_layer_data(labels: np.ndarray, stack: ResultStack, *, name: str) -> tuple:
    """Labels layer data of heterochromatin domains found in result ``name``."""
    return (np.asarray(labels), {
        "name": f"{name} · {_LABEL_TITLES['domains']}",
        "opacity": 0.5,
        "metadata": {METADATA_KEY: {"result": name, "stack": stack, "label": "domains"}},
        **_placement(stack.pixel_size_nm, stack.origin_nm),
    }, "labels")
