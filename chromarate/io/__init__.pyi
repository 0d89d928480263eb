# Public API of chromarate.io, read by type checkers and, at run time, by
# lazy_loader.attach_stub in __init__.py (only relative ``from .x import y`` lines).
# Every name here is in __all__ and in docs/api.md (tests/test_public_api.py).

from .images import read_density_image
from .localizations import read_localizations, write_thunderstorm_csv
from .ome_tiff import write_density_ome_tiff
from .picasso_export import write_picasso
from .tiff_export import write_result_tiff
from .truth import read_truth, write_truth
from .zarr_store import open_result, read_result, write_result

__all__ = [
    "open_result",
    "read_density_image",
    "read_localizations",
    "read_result",
    "read_truth",
    "write_density_ome_tiff",
    "write_picasso",
    "write_result",
    "write_result_tiff",
    "write_thunderstorm_csv",
    "write_truth",
]
