"""chromarate: rate maps of chromatin methylation over acetylation from STORM data.

The public API is loaded lazily, so ``import chromarate`` does not import torch, napari,
Qt or click. See docs/design.md section 11 for the stable names.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read_localizations": "chromarate.io.localizations",
    "Localizations": "chromarate._types",
    "DensityMap": "chromarate._types",
    "PhaseFields": "chromarate._types",
    "FitResult": "chromarate._types",
    "ResultStack": "chromarate._types",
    "NucleusCrop": "chromarate._types",
    "PipelineConfig": "chromarate.config",
    "RenderConfig": "chromarate.config",
    "DenoiseConfig": "chromarate.config",
    "SegmentConfig": "chromarate.config",
    "PhaseConfig": "chromarate.config",
    "FitConfig": "chromarate.config",
    "load_config": "chromarate.config",
    "Pipeline": "chromarate.pipeline",
    "render_density": "chromarate.render",
    "denoise_density": "chromarate.denoise",
    "segment_nucleus": "chromarate.segment",
    "phase_fields": "chromarate.phase",
    "calibrated_phase_fields": "chromarate.pipeline",
    "fit_rates": "chromarate.fit.loop",
    "iter_fit": "chromarate.fit.loop",
    "invert_direct": "chromarate.fit.direct",
    "write_result": "chromarate.io.zarr_store",
    "read_result": "chromarate.io.zarr_store",
    "errors": "chromarate.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "errors" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'chromarate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
