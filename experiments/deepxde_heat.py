#!/usr/bin/env python
"""Peer comparison: DeepXDE and chromarate on the same steady-heat inverse problem.

Problem: ``0 = lambda(x, y) lap(u) + m(x, y)`` on the unit square, ``u = 0`` on the
boundary, u observed on an n x n grid (``chromarate.fit.problems.make_heat_problem``, noise
a fraction of the range of u); recover lambda(x, y). Scored by the Pearson correlation and
relative L2 error of lambda over the interior nodes (at least one kernel half-width from
the boundary) against the truth, wall time of the training, peak memory (``ru_maxrss``
increase of one child process per method and seed set).

Methods, all with the same observations, collocation points (the interior nodes), number
of Adam steps and seeds:

- ``deepxde``: DeepXDE (``pip install deepxde``, PyTorch backend, ``DDE_BACKEND=pytorch``)
  with its own tools: ``dde.geometry.Rectangle``, ``dde.data.PDE`` with the interior nodes as
  anchors, a ``dde.icbc.PointSetBC`` for the observations, ``dde.nn.FNN`` (tanh, 2 outputs
  u and lambda, with an output transform that scales u to the data range and keeps lambda
  positive, started at the same constant estimate as chromarate's fit), ``dde.grad.hessian``
  for the Laplacian, ``model.compile("adam")`` / ``model.train``. Loss weights match
  chromarate's heat loss (data divided by range(u)^2, residual weight 0.01).
- ``chromarate/mollifier`` and ``chromarate/autograd``: the PINN of
  ``experiments/paper_table.py`` (tanh MLP of the same width and depth, separate positive
  rate network) with the mollifier layer or nested autograd.

    python experiments/deepxde_heat.py                         # n 32, 1000 steps, noise 1 %, seeds 0 1
    python experiments/deepxde_heat.py --tiny --out /tmp/d      # smoke test

Writes ``<out>/deepxde_heat.json`` and ``<out>/deepxde_heat.md``. If DeepXDE is not
installed, its row says so and the script still runs the chromarate rows.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402  (the experiments' shared harness)
    child_result, maxrss_mb, parse_args, parser, say, write_json,
)

METHODS = ("deepxde", "chromarate/mollifier", "chromarate/autograd")


def fit_deepxde(n: int, noise: float, seed: int, steps: int, width: int, depth: int,
                radius: float, lr: float) -> dict:
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde
    import numpy as np
    import torch

    from chromarate.fit.problems import (heat_source, interior_mask, make_heat_problem,
                                         metrics, problem_margin, solve_poisson_dst)

    dde.config.set_random_seed(seed)
    torch.set_num_threads(1)
    p = make_heat_problem(n, noise=noise, seed=seed)
    margin = problem_margin(p, radius)
    inner = interior_mask(p.shape, margin)
    y, x = np.mgrid[:n, :n] * p.h
    nodes = np.stack([x.ravel(), y.ravel()], axis=1)
    u_range = float(np.ptp(p.u_obs)) or 1.0
    u1 = solve_poisson_dst(-p.m, p.h)
    lam0 = float(np.sum(u1 * u1) / max(np.sum(u1 * p.u_obs), 1e-30))

    def pde(xy, out):
        lap = dde.grad.hessian(out, xy, component=0, i=0, j=0) + \
            dde.grad.hessian(out, xy, component=0, i=1, j=1)
        m = torch.as_tensor(heat_source(xy[:, 0:1].detach().cpu().numpy(),
                                        xy[:, 1:2].detach().cpu().numpy()), dtype=out.dtype)
        return out[:, 1:2] * lap + m

    geom = dde.geometry.Rectangle([0.0, 0.0], [1.0, 1.0])
    obs = dde.icbc.PointSetBC(nodes, p.u_obs.reshape(-1, 1), component=0)
    data = dde.data.PDE(geom, pde, [obs], num_domain=0, num_boundary=0,
                        anchors=nodes[inner.ravel()])
    net = dde.nn.FNN([2] + [width] * depth + [2], "tanh", "Glorot normal")
    ln2 = math.log(2.0)
    net.apply_output_transform(lambda xy, o: torch.cat(
        [u_range * o[:, 0:1], lam0 * torch.nn.functional.softplus(o[:, 1:2]) / ln2], dim=1))
    model = dde.Model(data, net)
    mean_m = float(np.mean(np.abs(p.m)))
    model.compile("adam", lr=lr, loss_weights=[0.01 / mean_m**2, 1.0 / u_range**2])
    t0 = time.perf_counter()
    model.train(iterations=steps, display_every=max(steps, 1), disregard_previous_best=True)
    train_s = time.perf_counter() - t0
    lam = model.predict(nodes)[:, 1].reshape(n, n)
    corr, rel = metrics(lam, p.lambda_true, inner)
    return {"seed": seed, "ok": True, "correlation": corr, "rel_l2": rel, "train_s": train_s,
            "s_per_step": train_s / steps, "collocation": int(inner.sum())}


def fit_chromarate(backend: str, n: int, noise: float, seed: int, steps: int, width: int,
                   depth: int, radius: float, lr: float) -> dict:
    import torch

    import paper_table

    torch.set_num_threads(1)
    s = {"n": n, "steps": steps, "radius": radius, "width": width, "depth": depth, "lr": lr}
    r = paper_table.fit_one("heat", "mlp", backend, noise, seed, s, target=0.9,
                            dev=torch.device("cpu"), dtype=torch.float32)
    return {k: r[k] for k in ("seed", "ok", "correlation", "rel_l2", "train_s", "s_per_step",
                              "collocation")}


def child(spec: dict) -> dict:
    import gc

    fn = fit_deepxde if spec["method"] == "deepxde" else fit_chromarate
    args = [spec[k] for k in ("n", "noise")]
    kw = {k: spec[k] for k in ("steps", "width", "depth", "radius", "lr")}
    if spec["method"] != "deepxde":
        args = [spec["method"].split("/")[1]] + args
    fn(*args[:-1], 0.0, 0, **{**kw, "steps": 2})  # warm-up, not counted
    gc.collect()
    base = maxrss_mb()
    runs = []
    for seed in spec["seeds"]:
        runs.append(fn(*args, seed, **kw))
    return {"method": spec["method"], "runs": runs, "peak_mb": maxrss_mb() - base}


def run_child(spec: dict, timeout: float = 3600) -> dict:
    return child_result(__file__, spec, timeout, tail_lines=3,
                        env=dict(os.environ, DDE_BACKEND="pytorch"),
                        on_failure=lambda f: {"method": spec["method"], "runs": [],
                                              "error": f["message"]})


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--radius", type=float, default=4.0, help="mollifier radius (nodes)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--tiny", action="store_true", help="smoke test: n 16, 5 steps, one seed")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parse_args(ap, argv, child)
    if args.tiny:
        args.n, args.steps, args.seeds, args.width, args.radius = 16, 5, [0], 16, 3.0
    import numpy as np

    try:
        from importlib.metadata import version

        dde_version = version("deepxde")
    except Exception:  # noqa: BLE001
        dde_version = None
    say(f"heat inverse problem {args.n}x{args.n}, noise {args.noise:.0%}, {args.steps} Adam steps, "
        f"seeds {args.seeds}; deepxde {dde_version or 'NOT INSTALLED'}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, 1 torch thread per child")
    common = {k: getattr(args, k) for k in ("n", "noise", "steps", "width", "depth", "radius", "lr")}
    rows = []
    for method in METHODS:
        if method == "deepxde" and dde_version is None:
            rows.append({"method": method, "runs": [],
                         "error": "deepxde is not installed (pip install 'chromarate[bench]')"})
            continue
        rows.append(run_child({**common, "method": method, "seeds": args.seeds}))
    lines = ["| method | Pearson r (median [min, max]) | rel. L2 | train s | s/step | peak MB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ok = [x for x in r["runs"] if x.get("ok")]
        if not ok:
            lines.append(f"| {r['method']} | FAILED: {r.get('error')} | | | | |")
            continue
        c = np.array([x["correlation"] for x in ok])
        med = lambda k: float(np.median([x[k] for x in ok]))  # noqa: E731
        lines.append(f"| {r['method']} | {np.median(c):.3f} [{c.min():.3f}, {c.max():.3f}] | "
                     f"{med('rel_l2'):.3f} | {med('train_s'):.1f} | {med('s_per_step'):.4f} | "
                     f"{r['peak_mb']:,.1f} |")
    table = "\n".join(lines) + "\n"
    say(table)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {**common, "seeds": args.seeds, "deepxde": dde_version, "machine":
            f"{platform.machine()}, {os.cpu_count()} CPUs",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json(args.out / "deepxde_heat.json", {"meta": meta, "rows": rows}, indent=1)
    (args.out / "deepxde_heat.md").write_text(table)
    say(f"wrote {args.out / 'deepxde_heat.json'}")
    return 0 if all(r["runs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
