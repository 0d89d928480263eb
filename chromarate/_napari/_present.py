"""Turn chromarate's layer data into napari layers with their display settings applied.

napari's layer constructors do not take every setting chromarate wants (a labels layer's
``contour``, an image layer's colorbar), so :mod:`chromarate._napari._layers` puts those
into ``metadata["chromarate"]["display"]`` and this module applies them once the layer
exists. The result reader of the manifest is :func:`get_result_reader` here: it wraps
:func:`chromarate._napari._reader.get_result_reader` and returns ready napari layers, and
shows the viewer's scale bar (world units are nanometres).
"""

from __future__ import annotations

from typing import Callable, Iterable

from ._layers import DISPLAY_KEY, layer_metadata

__all__ = ["apply_display", "as_layers", "get_result_reader", "show_scale_bar",
           "style_added_layers"]


def apply_display(layer) -> None:
    """Apply the ``display`` settings in a layer's chromarate metadata (none: no change)."""
    display = layer_metadata(layer).get(DISPLAY_KEY) or {}
    if "contour" in display and hasattr(layer, "contour"):
        layer.contour = int(display["contour"])
    if display.get("colorbar") and getattr(layer, "colorbar", None) is not None:
        layer.colorbar.visible = True


def as_layers(layer_data: Iterable[tuple]) -> list:
    """napari layers of ``(data, kwargs, layer_type)`` tuples, display settings applied."""
    from napari.layers import Layer

    layers = []
    for data, kwargs, kind in layer_data:
        layer = Layer.create(data, kwargs, kind)
        apply_display(layer)
        layers.append(layer)
    return layers


def show_scale_bar(viewer=None) -> None:
    """Show the scale bar of ``viewer`` (default: napari's current viewer, if any)."""
    if viewer is None:
        import napari

        viewer = napari.current_viewer()
    if viewer is None:
        return
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    scale_bar = getattr(overlays, "scale_bar", None)  # napari >= 0.9
    (scale_bar if scale_bar is not None else viewer.scale_bar).visible = True


def style_added_layers(viewer) -> None:
    """Apply display settings to chromarate layers added to ``viewer`` from now on (for
    layer data napari adds itself, such as sample data). Connected once per viewer."""
    if viewer is None or getattr(viewer, "_chromarate_styled", False):
        return

    def on_inserted(event) -> None:
        apply_display(event.value)

    viewer.layers.events.inserted.connect(on_inserted)
    viewer._chromarate_styled = True


def get_result_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader of chromarate result stores: napari layers, styled (see the module).

    Declines (returns None) exactly what :func:`chromarate._napari._reader.get_result_reader`
    declines.
    """
    from . import _reader

    read = _reader.get_result_reader(path)
    if read is None:
        return None

    def reader(p: str | list[str]) -> list:
        layers = as_layers(read(p))
        show_scale_bar()
        return layers

    return reader
