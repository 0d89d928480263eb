"""All file access of chromarate: localization tables, images and result stores.

The public readers and writers (``docs/api.md``) are declared in the stub
``__init__.pyi`` and imported on first use (:func:`lazy_loader.attach_stub`), so
``import chromarate.io`` is cheap. Helpers (``open_result_levels``, ``is_complete_result``,
the atomic writers, the format parsers) are imported from their modules, e.g.
:mod:`chromarate.io.zarr_store`.
"""

from __future__ import annotations

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

del _lazy
