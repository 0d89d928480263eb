"""Benchmark of chromarate.render: histogram and Gaussian rendering vs numpy.histogram2d.

For each size n (default 1e6 and 1e7) the script draws n synthetic localizations uniformly
over a square field (default 20 um) with a log-normal localization precision (median
12 nm, log-sd 0.4: a few nm to about 60 nm, like real STORM tables) and measures, on the
same pixel grid (default 10 nm):

- ``histogram2d``: the baseline, ``numpy.histogram2d(y, x, bins=[y_edges, x_edges])`` on
  the columns of the table;
- ``histogram``: ``render_density(locs, RenderConfig(method="histogram"))``;
- ``gaussian``: ``render_density(locs, RenderConfig(method="gaussian"))`` (sigma = each
  localization's ``precision_nm``, default ``sigma_tolerance``).

Time is the best of ``--repeat`` runs (wall clock, ``time.perf_counter``). Peak memory is
the peak of the memory allocated during one call, traced by ``tracemalloc`` (numpy reports
its array buffers to tracemalloc); the localization table itself is allocated before and
not counted. Each method runs in the same process, one after the other, on the same data.

Usage::

    python experiments/render.py                 # n = 1e6 and 1e7 (about a minute)
    python experiments/render.py --quick         # smoke test: tiny sizes, a few seconds
    python experiments/render.py --sizes 1e6 --pixel-nm 20 --json render.json

The last lines print the ratios ``<method>/histogram2d`` of time and peak memory per n.
Nothing here asserts a timing: timings depend on the machine and its load.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import chromarate  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_json_option, parser, write_json  # noqa: E402

from chromarate._types import Localizations  # noqa: E402
from chromarate.config import RenderConfig  # noqa: E402
from chromarate.render import render_density  # noqa: E402

METHODS = ("histogram2d", "histogram", "gaussian")


def make_locs(n: int, field_nm: float, seed: int) -> Localizations:
    """n uniform localizations on [0, field)^2 with log-normal precision_nm."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({
        "x_nm": rng.uniform(0.0, field_nm, n),
        "y_nm": rng.uniform(0.0, field_nm, n),
        "precision_nm": rng.lognormal(np.log(12.0), 0.4, n),
    })
    return Localizations(table=table, meta={"source": "synthetic"})


def make_runner(method: str, locs: Localizations, pixel_nm: float, grid):
    """A no-argument callable that renders once and returns the image."""
    if method == "histogram2d":
        (oy, ox), (ny, nx) = grid
        y_edges = oy + np.arange(ny + 1) * pixel_nm
        x_edges = ox + np.arange(nx + 1) * pixel_nm

        def run():
            x = locs.table["x_nm"].to_numpy()
            y = locs.table["y_nm"].to_numpy()
            h, _, _ = np.histogram2d(y, x, bins=[y_edges, x_edges])
            return h

        return run
    cfg = RenderConfig(method=method, pixel_size_nm=pixel_nm)
    return lambda: render_density(locs, cfg).data


def measure(run, repeat: int) -> dict:
    """Best wall time of ``repeat`` runs and the traced peak of one more."""
    times = []
    out = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        del out
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = run()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    total = float(np.asarray(out, dtype=np.float64).sum())
    return {"time_s": min(times), "times_s": times, "peak_mb": peak / 2**20, "sum": total}


def main(argv=None) -> int:
    ap = parser(__doc__, first="line")
    ap.add_argument("--sizes", nargs="+", type=float, default=None,
                    help="numbers of localizations (default 1e6 1e7; --quick: 2e4 1e5)")
    ap.add_argument("--field-um", type=float, default=None,
                    help="side of the square field in um (default 20; --quick: 4)")
    ap.add_argument("--pixel-nm", type=float, default=10.0, help="pixel size (default 10)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed runs per method, best kept (default 3; --quick: 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    add_json_option(ap)
    args = ap.parse_args(argv)
    sizes = args.sizes or ([2e4, 1e5] if args.quick else [1e6, 1e7])
    field_um = args.field_um or (4.0 if args.quick else 20.0)
    repeat = args.repeat or (1 if args.quick else 3)
    if repeat < 1 or any(s < 1 for s in sizes) or field_um <= 0 or args.pixel_nm <= 0:
        ap.error("--repeat, --sizes, --field-um and --pixel-nm must be positive")

    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"field {field_um:g} um, pixel {args.pixel_nm:g} nm, precision_nm log-normal "
          f"(median 12 nm, log-sd 0.4), best of {repeat}, quick={args.quick}")
    report = {"quick": args.quick, "field_um": field_um, "pixel_nm": args.pixel_nm,
              "repeat": repeat, "results": {}, "ratios": {}}
    for size in sizes:
        n = int(size)
        locs = make_locs(n, field_um * 1000.0, args.seed)
        ref = render_density(locs, RenderConfig(pixel_size_nm=args.pixel_nm))
        grid = (ref.origin_nm, ref.shape)
        del ref
        res = {}
        for method in METHODS:
            res[method] = measure(make_runner(method, locs, args.pixel_nm, grid), repeat)
            r = res[method]
            print(f"n={n:>10,d}  grid {grid[1][0]}x{grid[1][1]}  {method:<11s} "
                  f"time {r['time_s']:8.3f} s  peak {r['peak_mb']:9.1f} MB  "
                  f"sum {r['sum']:.6g}")
        report["results"][str(n)] = res
        report["ratios"][str(n)] = {
            m: {"time": res[m]["time_s"] / res["histogram2d"]["time_s"],
                "peak_memory": res[m]["peak_mb"] / max(res["histogram2d"]["peak_mb"], 1e-9)}
            for m in ("histogram", "gaussian")
        }
        del locs
    print()
    for n, rat in report["ratios"].items():
        for m, r in rat.items():
            print(f"ratio {m}/histogram2d time (n={int(n):,d}): {r['time']:.2f}x")
            print(f"ratio {m}/histogram2d peak memory (n={int(n):,d}): {r['peak_memory']:.2f}x")
    if args.json is not None:
        write_json(args.json, report, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
