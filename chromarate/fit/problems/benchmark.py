"""Backend comparison on the benchmark problems (the library part; the command line is
``experiments/benchmark_problems.py``).

For each problem and noise level, every derivative backend fits the same PINN (same networks,
seeds, collocation points, steps and loss) and the closed-form inversions are added as
baselines. The rows report what was measured: correlation and relative L2 error of lambda
over the interior, the same for the closed form applied to the fitted u (``*_from_u``), the
mean time per optimiser step and the total time. Nothing here asserts a timing.
"""

from __future__ import annotations

import time

import numpy as np

from ..derivatives import BACKENDS
from .backends_1d import BACKENDS_1D
from .base import get_plugin, interior_mask, metrics
from .fit import fit_problem, problem_margin
from .heat import invert_heat
from .langevin import invert_langevin

__all__ = ["BACKENDS_2D", "INVERSIONS", "format_rows", "run_problem_benchmark"]

#: 2-D backends compared on the heat problem.
BACKENDS_2D = BACKENDS

#: Closed-form inversions of the data by problem kind (``f(problem, method=, radius_px=)``).
INVERSIONS = {"heat": invert_heat, "langevin": invert_langevin}


def run_problem_benchmark(problem: str, *, n: int | None = None, noise: float = 0.0,
                          backends=None, steps: int = 1000, seed: int = 0, radius_px: float | None = None,
                          closed_form: bool = True, **fit_kwargs) -> list[dict]:
    """Fit every backend on one problem and return one dict per row.

    Parameters
    ----------
    problem : str
        A registered problem kind ("heat", "langevin", "allen-cahn").
    n : int, optional
        Grid size (default: the plug-in's, 64 heat, 256 in 1-D).
    noise : float
        Relative noise of the observation.
    backends : sequence of str, optional
        Default: all backends of the problem's dimension.
    steps, seed, radius_px
        Passed to :func:`fit_problem` (identical for every backend).
    closed_form : bool
        Also report the closed-form inversions (mollifier and finite-difference), for the
        problems that have a data inversion (:data:`INVERSIONS`).
    **fit_kwargs
        Anything else :func:`fit_problem` takes (network, lr, residual_weight, ...).
    """
    plugin = get_plugin(problem)
    prob = plugin.make(n, noise=noise, seed=seed)
    if backends is None:
        backends = BACKENDS_2D if plugin.ndim == 2 else BACKENDS_1D
    rows = []
    radius = radius_px
    for b in backends:
        try:
            fit = fit_problem(prob, backend=b, steps=steps, seed=seed, radius_px=radius_px, **fit_kwargs)
        except Exception as exc:  # report, do not hide, a backend that fails
            rows.append({"problem": problem, "n": prob.n, "noise": noise, "method": f"pinn/{b}",
                         "error": f"{type(exc).__name__}: {exc}"})
            continue
        radius = fit.radius_px
        rows.append({
            "problem": problem, "n": prob.n, "noise": noise, "method": f"pinn/{b}",
            "network": fit.network, "steps": fit.steps, "seed": fit.seed, "radius_px": fit.radius_px,
            "dtype": fit.dtype, "correlation": fit.correlation, "rel_l2": fit.rel_l2,
            "correlation_from_u": fit.correlation_from_u, "rel_l2_from_u": fit.rel_l2_from_u,
            "time_per_step_s": fit.time_per_step_s, "train_s": fit.train_s, "total_s": fit.total_s,
            "final_data": fit.history["data"][-1], "final_residual": fit.history["residual"][-1],
        })
    if closed_form and problem in INVERSIONS:
        if radius is None:
            radius = plugin.defaults["radius_px"]
        mask = interior_mask(prob.shape, problem_margin(prob, radius))
        invert = INVERSIONS[problem]
        for method in ("mollifier", "finite-difference"):
            t0 = time.perf_counter()
            est = invert(prob, method=method, radius_px=radius)
            dt = time.perf_counter() - t0
            corr, rel = metrics(est, prob.lambda_true, mask)
            rows.append({"problem": problem, "n": prob.n, "noise": noise, "method": f"closed/{method}",
                         "radius_px": radius, "correlation": corr, "rel_l2": rel, "total_s": dt})
    return rows


def format_rows(rows: list[dict]) -> str:
    """Fixed-width text table of benchmark rows."""
    head = (f"{'problem':9s} {'n':>4s} {'noise':>6s} {'method':24s} {'corr':>7s} {'relL2':>7s} "
            f"{'corr_u':>7s} {'ms/step':>8s} {'total s':>8s}")
    lines = [head, "-" * len(head)]

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) and np.isfinite(v) else "-"

    for r in rows:
        if "error" in r:
            lines.append(f"{r['problem']:9s} {r['n']:4d} {r['noise']:6.3f} {r['method']:24s} {r['error']}")
            continue
        ms = r.get("time_per_step_s")
        lines.append(
            f"{r['problem']:9s} {r['n']:4d} {r['noise']:6.3f} {r['method']:24s} "
            f"{fmt(r.get('correlation'), '7.4f'):>7s} {fmt(r.get('rel_l2'), '7.4f'):>7s} "
            f"{fmt(r.get('correlation_from_u'), '7.4f'):>7s} "
            f"{fmt(None if ms is None else 1e3 * ms, '8.1f'):>8s} {fmt(r.get('total_s'), '8.2f'):>8s}"
        )
    return "\n".join(lines)
