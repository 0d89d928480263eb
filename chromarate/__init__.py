"""chromarate: rate maps of chromatin methylation over acetylation from STORM data.

The public names are listed, with one line each, in ``docs/api.md``; their single
declaration is the stub ``chromarate/__init__.pyi``, which type checkers and IDEs read and
which :func:`lazy_loader.attach_stub` turns into lazy attributes here. So ``import
chromarate`` imports none of the submodules (no torch, napari, Qt or click): each name is
imported on first use. Helpers that are not in ``__all__`` live in their modules (e.g.
``chromarate.fit.loop.iter_fit``, ``chromarate.io.zarr_store.write_result``).
"""

from __future__ import annotations

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, _lazy_dir, _stub_all = _lazy.attach_stub(__name__, __file__)

#: The public names: those of the stub (``__init__.pyi``), which lists ``__version__`` too.
__all__ = sorted({*_stub_all, "__version__"})

del _lazy, _lazy_dir, _stub_all


def __dir__() -> list[str]:
    """The public names (``__all__``), for ``dir(chromarate)`` and tab completion.

    Returns
    -------
    list of str
        A copy of ``__all__``.
    """
    return list(__all__)
