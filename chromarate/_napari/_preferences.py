"""Make napari open chromarate results with chromarate's reader without being asked.

How napari picks a reader when none is named (drag and drop, *File > Open*, ``napari
PATH`` and ``viewer.open(path, plugin=None)``): it looks up the path in its setting
``plugins.extension2reader`` (filename pattern -> plugin; folders are matched as their
real path plus a trailing separator); without a match it uses the only compatible reader,
and with several it asks. A folder is compatible with every reader that accepts folders,
napari's built-in one included, so a result store would always make it ask.

:func:`prefer_chromarate_reader` adds the pattern ``*.ome.zarr/`` -> ``chromarate`` to
that setting unless the user already chose a reader for it. npe2 calls :func:`on_activate`
the first time any chromarate command runs in a session (a widget, a sample, a reader), so
after the first use the preference is in place and saved with napari's settings; it shows
up, and can be changed, in napari's *Preferences > Plugins*. Other OME-Zarr images go to
chromarate's reader first, which declines them, and napari then offers its other readers.

``viewer.open(path)`` with no ``plugin`` argument at all means ``plugin="napari"`` (napari's
built-in reader) in napari >= 0.5; no plugin can change that, so scripts pass
``plugin=None`` (use the preference) or ``plugin="chromarate"``.
"""

from __future__ import annotations

import os

__all__ = ["PLUGIN", "RESULT_PATTERN", "on_activate", "prefer_chromarate_reader"]

#: The npe2 plugin name.
PLUGIN = "chromarate"

#: napari's filename pattern for result stores (folders end in a separator).
RESULT_PATTERN = "*.ome.zarr" + os.sep


def prefer_chromarate_reader(settings=None) -> bool:
    """Make chromarate napari's reader for ``*.ome.zarr`` folders, unless the user chose one.

    Parameters
    ----------
    settings : napari.settings.NapariSettings, optional
        Default: napari's settings (``napari.settings.get_settings()``).

    Returns
    -------
    bool
        True when the preference was added, False when one was there already.
    """
    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    current = dict(settings.plugins.extension2reader)
    if RESULT_PATTERN in current:
        return False
    settings.plugins.extension2reader = {**current, RESULT_PATTERN: PLUGIN}
    return True


def on_activate(context=None) -> None:
    """npe2 activation hook: :func:`prefer_chromarate_reader` when napari is there."""
    try:
        import napari.settings  # noqa: F401
    except ImportError:  # npe2 without napari (e.g. ``npe2 validate``): nothing to set
        return
    prefer_chromarate_reader()
