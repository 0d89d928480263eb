#!/usr/bin/env python
"""CPU benchmark of the four derivative backends on one optimisation step of the
fourth-order chromatin strong-form residual.

For every backend of ``chromarate.fit.derivatives.BACKENDS`` (mollifier, autograd,
finite-difference, spectral) and every grid side (64, 128, 256 by default) one child process
builds the same problem and measures the time per step and the peak memory:

- field network: ``FourierMLP`` with 2 outputs (phi_d, phi_w), width/depth/Fourier features
  of the default ``NetworkConfig``, plus the observed mean as a constant base;
- rate: one constant tensor parameter (lambda, started at the mean relation);
- collocation points: the pixel grid (side x side, 10 nm pixels) of a synthetic smooth field;
- fields and derivatives (``u, u_x, u_y, lap, bilap`` of phi_d and phi_w) from
  ``backend.fields(net, grid, names)`` (``make_backend``; mollifier radius 8 px);
- loss = mean |u - observed|^2 / sigma^2 + mean r^2 / s^2, r = ``chromatin_residual``;
- one step = forward + backward + Adam step. The time is the median of ``--steps`` timed
  steps after one warm-up step.

Peak memory: ``ru_maxrss`` of the child after the steps minus ``ru_maxrss`` after imports,
set-up and a throwaway step on a 2 x 2 grid (one-off lazy initialisation of torch kernels is
not counted). One torch thread per child.

Nested autograd needs far more memory and time per point than the others. Before each
autograd size the parent predicts its cost per point from the largest autograd run so far
(the first from a 16 x 16 probe); a size predicted above 8 GB or 60 s per step is skipped,
with the reason printed.

Usage::

    python experiments/backends.py                     # sides 64, 128, 256; 3 timed steps
    python experiments/backends.py --sizes 64 128      # other sides
    python experiments/backends.py --steps 5
    python experiments/backends.py --quick             # sides 16, 24; 1 step (smoke test)
    python experiments/backends.py --json out.json

No numbers are asserted; timings depend on the machine and its load.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parents[1]))  # for the asv suite's helpers

from _harness import (  # noqa: E402  (the experiments' shared harness)
    EXIT_LIMIT, add_json_option, add_threads_option, call_child, cap_memory, fmt_duration,
    fmt_mb, maxrss_mb, mem_available_mb, parse_args, parser, say, set_threads, time_steps,
    write_json,
)
from benchmarks._common import smooth_fields  # noqa: E402  (the asv suite's synthetic fields)

BACKEND_NAMES = ("mollifier", "autograd", "finite-difference", "spectral")
PIXEL_NM = 10.0
RADIUS_PX = 8.0
PROBE_SIDE = 16
MAX_PRED_MB = 8192.0
MAX_PRED_S = 60.0


# --------------------------------------------------------------------------------------
# child
# --------------------------------------------------------------------------------------

def child_step(spec: dict) -> dict:
    import gc

    import numpy as np
    import torch

    from chromarate.config import FitConfig
    from chromarate.fit.derivatives import make_backend, make_grid
    from chromarate.fit.engine import ParamGroup, TrainSettings, iter_train
    from chromarate.fit.loop import FIELD_DERIVATIVES
    from chromarate.fit.networks import FourierMLP
    from chromarate.fit.physics import ChromatinParams, chromatin_residual

    set_threads(spec.get("threads") or 1)
    cfg = FitConfig()
    dev, dtype = torch.device("cpu"), torch.float32
    pixel_um = PIXEL_NM / 1000.0
    params = ChromatinParams.from_config(cfg.physics)
    backend = make_backend(spec["backend"], pixel=pixel_um, device=dev, dtype=dtype,
                           radius_px=RADIUS_PX)
    halo = int(getattr(backend, "halo", 0))

    def build(side: int):
        phi_d, phi_w, mask_np = smooth_fields(side)
        grid = make_grid((side, side), pixel_um)
        obs_np = np.stack([phi_d, phi_w])
        obs = torch.as_tensor(obs_np, dtype=dtype)
        mask = torch.as_tensor(mask_np)
        phi_h = 0.5 * (1 - phi_w + phi_d)[mask_np]
        phi_e = 0.5 * (1 - phi_w - phi_d)[mask_np]
        sigma = 0.01
        scale_r = max(2.0 * float(phi_h.mean()), 1e-3)
        base = torch.as_tensor(obs_np[:, mask_np].mean(axis=1), dtype=dtype).view(1, 2)
        gen = torch.Generator().manual_seed(0)
        n = cfg.network

        class FieldNet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlp = FourierMLP(2, width=n.width, depth=n.depth, n_fourier=n.fourier_features,
                                      scale_per_um=n.fourier_scale_per_um, generator=gen)
                self.register_buffer("base", base)

            def forward(self, xy):
                return self.mlp(xy) + self.base

        net = FieldNet()
        rate = torch.nn.Parameter(torch.tensor(float(phi_h.mean() / max(phi_e.mean(), 1e-3)),
                                               dtype=dtype))
        def loss_fn(_step):
            f = backend.fields(net, grid, FIELD_DERIVATIVES)
            d = {k: v[0] for k, v in f.items()}
            w = {k: v[1] for k, v in f.items()}
            r = chromatin_residual(d, w, rate, params)
            data = ((f["u"] - obs) ** 2)[:, mask].mean() / sigma**2
            res = (r**2).mean() / scale_r**2
            return data + res, {"data": data, "residual": res}

        # chromarate's one training engine, one event per Adam step (a schedule long enough
        # that the learning rate stays at its peak over the timed steps)
        events = iter_train([ParamGroup(list(net.parameters()) + [rate], cfg.training.learning_rate)],
                            loss_fn, TrainSettings(steps=1_000_000, log_every=1))

        def step() -> float:
            return next(events).loss

        return step

    warm = build(2)  # library warm-up, not counted
    warm()
    del warm
    cap_memory(spec.get("mem_cap_mb"))
    results = []
    # one side per child in a full run; --quick runs its sides in one child (ascending)
    for side in spec["sides"]:
        side = int(side)
        step = build(side)
        out = {"backend": spec["backend"], "side": side, "collocation": side * side,
               "net_points": (side + 2 * halo) ** 2, "halo": halo}
        gc.collect()
        base_mb = maxrss_mb()
        out["baseline_mb"] = base_mb
        results.append(out)
        timed = time_steps(step, spec["steps"], out, base_mb, max_s=spec.get("max_step_s"))
        if timed is None:
            break
        times, losses = timed
        out.update(ok=True, step_s=times, median_s=float(np.median(times)),
                   peak_mb=maxrss_mb() - base_mb, losses=losses,
                   finite=bool(all(math.isfinite(v) for v in losses)))
        del step
    return results


# --------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------

def run_child(spec: dict, timeout: float) -> list[dict]:
    """Run one child; one result dict per side of ``spec["sides"]``."""
    n = len(spec["sides"])
    res, failure = call_child(__file__, spec, timeout, tail_lines=6)
    if failure is not None:
        return [failure] * n
    return res + [{"ok": False, "reason": "not_run",
                   "message": "a smaller side failed in the same child"}] * (n - len(res))


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="grid sides (default 64 128 256; 16 24 with --quick)")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps after 1 warm-up step (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke test: sides 16, 24; 1 step")
    add_json_option(ap)
    add_threads_option(ap)
    args = parse_args(ap, argv, child_step,
                      status=lambda res: 0 if all(r.get("ok") for r in res) else EXIT_LIMIT)

    sizes = sorted(set(args.sizes or ([16, 24] if args.quick else [64, 128, 256])))
    steps = args.steps if args.steps is not None else (1 if args.quick else 3)
    if steps < 1 or min(sizes) < 2:
        ap.error("--steps must be >= 1 and sizes >= 2")
    avail = mem_available_mb()
    cap = min(0.8 * avail, 1.5 * MAX_PRED_MB) if avail else None
    from importlib.metadata import version

    from chromarate.config import FitConfig

    n = FitConfig().network
    say("chromarate derivative-backend benchmark (one Adam step of the strong-form chromatin loss)")
    say(f"python {platform.python_version()}, torch {version('torch')}, {os.cpu_count()} CPUs, "
        f"{args.threads} thread(s) per child, memory available {fmt_mb(avail)} MB")
    say(f"FourierMLP width {n.width}, depth {n.depth}, {n.fourier_features} Fourier features, "
        f"2 outputs; constant rate parameter; pixel {PIXEL_NM:g} nm; mollifier radius "
        f"{RADIUS_PX:g} px; sides {sizes}; {steps} timed step(s) after 1 warm-up")
    common = {"steps": steps, "threads": args.threads, "mem_cap_mb": cap,
              "max_step_s": MAX_PRED_S}
    results: dict[str, dict[int, dict]] = {b: {} for b in BACKEND_NAMES}
    report: dict = {"sizes": sizes, "steps": steps, "threads": args.threads, "quick": args.quick,
                    "pixel_nm": PIXEL_NM, "radius_px": RADIUS_PX, "skipped": []}

    if args.quick:
        # smoke test: one child per backend runs all sides (ascending), two children at a time
        from concurrent.futures import ThreadPoolExecutor

        say("--quick: one child per backend runs all sides in turn (peak MB of a later side "
            "may include an earlier one's), two children at a time")
        with ThreadPoolExecutor(2) as ex:
            futs = {b: ex.submit(run_child, {**common, "backend": b, "sides": sizes}, 600)
                    for b in BACKEND_NAMES}
            for b, fut in futs.items():
                for side, r in zip(sizes, fut.result()):
                    results[b][side] = r
    else:
        # autograd reference per point: a probe first, then the largest completed autograd size
        ref = None
        if any(s > PROBE_SIDE for s in sizes) and PROBE_SIDE not in sizes:
            (probe,) = run_child({**common, "backend": "autograd", "sides": [PROBE_SIDE],
                                  "steps": 1}, timeout=300)
            report["probe"] = probe
            if probe.get("ok"):
                ref = probe
                say(f"autograd probe {PROBE_SIDE}x{PROBE_SIDE}: "
                    f"{fmt_duration(probe['median_s'])}/step, "
                    f"{fmt_mb(probe['peak_mb'])} MB")
        for side in sizes:
            for b in BACKEND_NAMES:
                if b == "autograd" and ref is not None:
                    npts = ref["side"] ** 2
                    pred_s = ref["median_s"] / npts * side * side
                    pred_mb = max(ref["peak_mb"], 1.0) / npts * side * side
                    if pred_mb > MAX_PRED_MB or pred_s > MAX_PRED_S:
                        why = (f"predicted {pred_mb:,.0f} MB, {pred_s:.1f} s/step from "
                               f"{ref['side']}x{ref['side']} (limits {MAX_PRED_MB:,.0f} MB, "
                               f"{MAX_PRED_S:g} s)")
                        say(f"skip autograd {side}x{side}: {why}")
                        results[b][side] = {"ok": False, "reason": "skipped", "message": why}
                        report["skipped"].append({"backend": b, "side": side, "reason": why})
                        continue
                (r,) = run_child({**common, "backend": b, "sides": [side]},
                                 timeout=(steps + 1) * MAX_PRED_S * 2 + 120)
                results[b][side] = r
                if b == "autograd" and r.get("ok"):
                    ref = r
                if not r.get("ok"):
                    say(f"{b} {side}x{side}: FAILED ({r.get('message')})")

    say("")
    hdr = f"{'backend':<18} {'grid':>9} {'net points':>10} {'s/step (median)':>16} {'peak MB':>9}"
    say(hdr)
    say("-" * len(hdr))
    for side in sizes:
        for b in BACKEND_NAMES:
            r = results[b][side]
            g = f"{side}x{side}"
            if r.get("ok"):
                say(f"{b:<18} {g:>9} {r['net_points']:>10,} {fmt_duration(r['median_s']):>16} "
                    f"{fmt_mb(r['peak_mb']):>9}")
            else:
                label = "skipped" if r.get("reason") == "skipped" else "FAILED"
                say(f"{b:<18} {g:>9} {'-':>10} {label:>16} {'-':>9}")
    say("(peak MB: ru_maxrss increase over the steps, "
        + ("one child per backend (--quick); " if args.quick else "one child process per row; ")
        + "net points: where the network is evaluated, grid + kernel halo)")
    say("")
    say("ratios vs mollifier (time per step, peak memory), same run:")
    ratios: dict = {}
    for side in sizes:
        m = results["mollifier"][side]
        for b in BACKEND_NAMES[1:]:
            r = results[b][side]
            key = f"{b}@{side}"
            if m.get("ok") and r.get("ok"):
                rt = r["median_s"] / max(m["median_s"], 1e-12)
                rm = r["peak_mb"] / max(m["peak_mb"], 1e-9)
                ratios[key] = {"time": rt, "memory": rm}
                say(f"ratio {b}/mollifier {side}x{side}: time {rt:.2f}x, memory {rm:.2f}x")
            else:
                ratios[key] = None
                say(f"ratio {b}/mollifier {side}x{side}: n/a ({r.get('reason', 'failed')})")
    if any(results["mollifier"][s].get("ok") and results["mollifier"][s]["peak_mb"] < 5
           for s in sizes):
        say("note: peaks of a few MB are near the resolution of ru_maxrss; memory ratios "
            "are coarse there")
    report["results"] = {b: {str(s): r for s, r in v.items()} for b, v in results.items()}
    report["ratios"] = ratios
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report, indent=2, default=float)
        say(f"wrote {args.json}")
    ok = all(r.get("ok") or r.get("reason") == "skipped" for v in results.values()
             for r in v.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
