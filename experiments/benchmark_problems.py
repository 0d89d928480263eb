"""Backend comparison on the benchmark problems of chromarate.fit.problems (command line).

For each problem and noise level, every derivative backend fits the same PINN (same networks,
seeds, collocation points, steps and loss) and the closed-form inversions are added as
baselines (:func:`chromarate.fit.problems.run_problem_benchmark`). The rows report what was
measured: correlation and relative L2 error of lambda over the interior, the same for the
closed form applied to the fitted u (``corr_u``), the mean time per optimiser step and the
total time. Nothing here asserts a timing.

Run::

    python experiments/benchmark_problems.py                      # every problem, defaults
    python experiments/benchmark_problems.py --problem heat --n 32 --steps 300 --quick
    python experiments/benchmark_problems.py --problem allen-cahn --quick
    python experiments/benchmark_problems.py --json out.json

Timings depend on the machine and its load; ``--threads`` sets torch's intra-op threads
(default 1: on a shared machine more threads are often slower).
"""

from __future__ import annotations

import argparse
import json
import sys

from chromarate.fit.problems import (
    BACKENDS_1D,
    BACKENDS_2D,
    format_rows,
    get_plugin,
    plugins,
    run_problem_benchmark,
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", choices=(*plugins(), "all"), default="all")
    ap.add_argument("--n", type=int, default=None, help="grid size (default 64 heat, 256 in 1-D)")
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
    problems = tuple(plugins()) if args.problem == "all" else (args.problem,)
    rows: list[dict] = []
    for prob in problems:
        n = args.n
        steps = args.steps
        if args.quick:
            n = n or (24 if get_plugin(prob).ndim == 2 else 96)
            steps = min(steps, 200)
        backends = args.backends
        if backends is not None:
            allowed = BACKENDS_2D if get_plugin(prob).ndim == 2 else BACKENDS_1D
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
