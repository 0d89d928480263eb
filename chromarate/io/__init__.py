"""All file access of chromarate: localization tables, images and result stores."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "read_localizations": "chromarate.io.localizations",
    "write_thunderstorm_csv": "chromarate.io.localizations",
    "write_result": "chromarate.io.zarr_store",
    "read_result": "chromarate.io.zarr_store",
    "open_result": "chromarate.io.zarr_store",
    "open_result_levels": "chromarate.io.zarr_store",
    "is_complete_result": "chromarate.io.zarr_store",
    "write_result_tiff": "chromarate.io.tiff_export",
    "write_picasso": "chromarate.io.picasso_export",
    "write_density_ome_tiff": "chromarate.io.ome_tiff",
    "read_truth": "chromarate.io.truth",
    "read_density_image": "chromarate.io.images",
    "write_truth": "chromarate.io.truth",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'chromarate.io' has no attribute {name!r}")
