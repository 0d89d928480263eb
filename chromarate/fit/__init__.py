"""Rate inference: the PINN fit, the closed-form inversion and the forward simulator.

The public names (``docs/api.md``) are declared in the stub ``__init__.pyi`` and imported
on first use (:func:`lazy_loader.attach_stub`), so importing one light module of this
package, such as :mod:`chromarate.fit.simulate`, does not import torch. Everything else
(kernels, backends, networks, priors, calibration) is imported from its module.
"""

from __future__ import annotations

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

del _lazy
