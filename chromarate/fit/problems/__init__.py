"""The benchmark inverse problems of the mollifier-layer paper, as plug-ins of one fit.

docs/design.md section 7 lists them (TMLR 2025, "Mollifier Layers: Enabling Efficient High-Order
Derivatives in Inverse PDE Learning"). Each problem is a plug-in
(:class:`~chromarate.fit.problems.base.ProblemPlugin`: forward solver, residual, closed
form) in its own module; :func:`fit_problem` fits any of them with any derivative backend
and trains through the one engine (:mod:`chromarate.fit.engine`).

- :mod:`.heat`: steady heat, ``0 = lambda(x, y) lap(u) + m`` (2nd order, 2-D);
- :mod:`.langevin`: ``du/dt = -u + lambda(t)`` (1st order, 1-D);
- :mod:`.allen_cahn`: Allen-Cahn relaxation ``du/dt = -lambda(t) (u^3 - u) + s(t)``
  (1st order, 1-D), the example of a PDE added as one module;
- :mod:`.backends_1d`: the 1-D derivative backends (same interface as the 2-D ones);
- :mod:`.fit`: the generic PINN fit; :mod:`.benchmark`: the backend comparison rows.
"""

from __future__ import annotations

from .allen_cahn import ALLEN_CAHN, AllenCahnProblem, allen_cahn_lambda, make_allen_cahn_problem
from .backends_1d import (
    BACKENDS_1D,
    DERIVATIVES_1D,
    AutogradBackend1D,
    FiniteDifferenceBackend1D,
    Grid1D,
    Mollifier1DBackend,
    make_backend_1d,
    mollifier_kernels_1d,
)
from .base import Problem, ProblemPlugin, get_plugin, interior_mask, metrics, plugins, register
from .benchmark import BACKENDS_2D, format_rows, run_problem_benchmark
from .fit import ProblemFit, fit_problem, problem_margin
from .heat import (
    HEAT,
    HeatProblem,
    heat_discrete_residual,
    heat_lambda,
    heat_rate_closed_form,
    heat_residual,
    heat_source,
    invert_heat,
    make_heat_problem,
    solve_poisson_dst,
)
from .langevin import (
    LANGEVIN,
    LANGEVIN_MODES,
    LangevinProblem,
    invert_langevin,
    langevin_lambda,
    langevin_rate_closed_form,
    langevin_residual,
    make_langevin_problem,
    solve_langevin,
)

__all__ = [
    "ALLEN_CAHN",
    "BACKENDS_1D",
    "BACKENDS_2D",
    "DERIVATIVES_1D",
    "HEAT",
    "LANGEVIN",
    "LANGEVIN_MODES",
    "AllenCahnProblem",
    "AutogradBackend1D",
    "FiniteDifferenceBackend1D",
    "Grid1D",
    "HeatProblem",
    "LangevinProblem",
    "Mollifier1DBackend",
    "Problem",
    "ProblemFit",
    "ProblemPlugin",
    "allen_cahn_lambda",
    "fit_problem",
    "format_rows",
    "get_plugin",
    "heat_discrete_residual",
    "heat_lambda",
    "heat_rate_closed_form",
    "heat_residual",
    "heat_source",
    "interior_mask",
    "invert_heat",
    "invert_langevin",
    "langevin_lambda",
    "langevin_rate_closed_form",
    "langevin_residual",
    "make_allen_cahn_problem",
    "make_backend_1d",
    "mollifier_kernels_1d",
    "problem_margin",
    "make_heat_problem",
    "make_langevin_problem",
    "metrics",
    "plugins",
    "register",
    "run_problem_benchmark",
    "solve_langevin",
    "solve_poisson_dst",
]
