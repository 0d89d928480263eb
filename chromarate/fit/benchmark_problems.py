"""Backend comparison on the heat and Langevin benchmark problems (see :mod:`.problems`).

For each problem and noise level, every derivative backend fits the same PINN (same networks,
seeds, collocation points, steps and loss) and the closed-form inversions are added as
baselines. The rows report what was measured: correlation and relative L2 error of lambda
over the interior, the same for the closed form applied to the fitted u (``*_from_u``), the
mean time per optimiser step and the total time. Nothing here asserts a timing.

Run::

    python -m chromarate.fit.benchmark_problems                      # defaults below
    python -m chromarate.fit.benchmark_problems --problem heat --n 32 --steps 300 --quick
    python -m chromarate.fit.benchmark_problems --json out.json

Timings depend on the machine and its load; ``--threads`` sets torch's intra-op threads
(default 1: on a shared machine more threads are often slower).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .problems import (
    BACKENDS_1D,
    fit_problem,
    interior_mask,
    invert_heat,
    invert_langevin,
    make_heat_problem,
    make_langevin_problem,
    metrics,
    problem_margin,
)

__all__ = ["BACKENDS_2D", "format_rows", "main", "run_problem_benchmark"]

#: 2-D backends compared on the heat problem.
BACKENDS_2D = ("mollifier", "autograd", "finite-difference", "spectral")


def _make(problem: str, n: int | None, noise: float, seed: int):
    if problem == "heat":
        return make_heat_problem(64 if n is None else n, noise=noise, seed=seed)
    if problem == "langevin":
        return make_langevin_problem(256 if n is None else n, noise=noise, seed=seed)
    raise ValueError(f"unknown problem {problem!r}; use heat or langevin")


def run_problem_benchmark(problem: str, *, n: int | None = None, noise: float = 0.0,
                          backends=None, steps: int = 1000, seed: int = 0, radius_px: float | None = None,
                          closed_form: bool = True, **fit_kwargs) -> list[dict]:
    """Fit every backend on one problem and return one dict per row.

    Parameters
    ----------
    problem : {"heat", "langevin"}
    n : int, optional
        Grid size (default: the problem's default, 64 / 256).
    noise : float
        Relative noise of the observation.
    backends : sequence of str, optional
        Default: all backends of the problem's dimension.
    steps, seed, radius_px
        Passed to :func:`fit_problem` (identical for every backend).
    closed_form : bool
        Also report the closed-form inversions (mollifier and finite-difference).
    **fit_kwargs
        Anything else :func:`fit_problem` takes (network, lr, residual_weight, ...).
    """
    prob = _make(problem, n, noise, seed)
    if backends is None:
        backends = BACKENDS_2D if problem == "heat" else BACKENDS_1D
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
    if closed_form:
        if radius is None:
            radius = 6.0 if problem == "heat" else 8.0
        mask = interior_mask(prob.shape, problem_margin(prob, radius))
        invert = invert_heat if problem == "heat" else invert_langevin
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", choices=("heat", "langevin", "both"), default="both")
    ap.add_argument("--n", type=int, default=None, help="grid size (default 64 heat, 256 Langevin)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0])
    ap.add_argument("--backends", nargs="+", default=None)
    ap.add_argument("--network", choices=("mlp", "fourier"), default="mlp")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--radius", type=float, default=None)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    ap.add_argument("--quick", action="store_true", help="small grids and 200 steps (smoke test)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    problems = ("heat", "langevin") if args.problem == "both" else (args.problem,)
    rows: list[dict] = []
    for prob in problems:
        n = args.n
        steps = args.steps
        if args.quick:
            n = n or (24 if prob == "heat" else 96)
            steps = min(steps, 200)
        backends = args.backends
        if backends is not None:
            allowed = BACKENDS_2D if prob == "heat" else BACKENDS_1D
            backends = [b for b in backends if b in allowed]
        for noise in args.noise:
            new = run_problem_benchmark(prob, n=n, noise=noise, backends=backends, steps=steps,
                                        seed=args.seed, radius_px=args.radius, network=args.network,
                                        lr=args.lr, dtype=args.dtype, device=args.device)
            rows += new
            print(format_rows(new), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
