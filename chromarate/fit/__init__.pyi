# Public API of chromarate.fit, read by type checkers and, at run time, by
# lazy_loader.attach_stub in __init__.py (only relative ``from .x import y`` lines).
# Every name here is in __all__ and in docs/api.md (tests/test_public_api.py).

from .direct import invert_direct
from .loop import fit_rates, iter_fit
from .simulate import steady_state

__all__ = ["fit_rates", "invert_direct", "iter_fit", "steady_state"]
