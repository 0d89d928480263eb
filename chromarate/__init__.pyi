# Public API of chromarate: the single list of top-level names.
#
# Type checkers and IDEs read this stub; at run time chromarate/__init__.py hands it to
# lazy_loader.attach_stub, which imports each name on first use. Only relative
# ``from . import`` lines are allowed here (lazy_loader parses them), and every name
# must also be listed in __all__ and documented in docs/api.md (tests/test_public_api.py).

from . import errors
from .analysis import iter_nuclei, nucleus_table
from .batch import run_batch
from .calibrated_phase import calibrated_phase_fields
from ._types import DensityMap, FitResult, Localizations, PhaseFields, ResultStack
from .config import (DenoiseConfig, FitConfig, PhaseConfig, PipelineConfig, RenderConfig,
                     SegmentConfig, SimulateConfig, load_config)
from .data import simulate_nucleus
from .denoise import denoise_density
from .fit import fit_rates, invert_direct
from .io import open_result, read_localizations, read_result
from .phase import phase_fields
from .pipeline import Pipeline
from .rate_interval import with_level
from .render import render_density
from .segment import segment_nucleus

__version__: str

__all__ = [
    "DenoiseConfig",
    "DensityMap",
    "FitConfig",
    "FitResult",
    "Localizations",
    "PhaseConfig",
    "PhaseFields",
    "Pipeline",
    "PipelineConfig",
    "RenderConfig",
    "ResultStack",
    "SegmentConfig",
    "SimulateConfig",
    "__version__",
    "calibrated_phase_fields",
    "denoise_density",
    "errors",
    "fit_rates",
    "invert_direct",
    "iter_nuclei",
    "load_config",
    "nucleus_table",
    "open_result",
    "phase_fields",
    "read_localizations",
    "read_result",
    "render_density",
    "run_batch",
    "segment_nucleus",
    "simulate_nucleus",
    "with_level",
]
