#!/usr/bin/env python
"""Time per step and peak memory against the image size: mollifier vs nested autograd.

Three series, each point one child process (one torch thread), 10 nm pixels, synthetic
phase fields (``benchmarks._common.smooth_fields``):

- ``mollifier``: one Adam step of the strong-form fourth-order chromatin loss on the whole
  grid (``experiments/backends.py``'s child: FourierMLP of the default ``NetworkConfig``,
  mollifier radius 8 px); sides 16 ... 1024;
- ``mollifier, patches``: a training step of ``fit_rates`` with ``FitConfig(training={"patch_size": 128})``
  (``experiments/patch_memory.py``'s child: random 128 x 128 windows plus the kernel halo);
  sides 256 ... 1024 (a larger image only changes the sampling of the windows);
- ``autograd``: the same step as ``mollifier`` with nested ``torch.autograd.grad`` to the
  4th order; sides from 16 upwards until a side does not fit (the child's address space is
  capped at ``--mem-cap-mb``, default half the available memory, at most 8 GB) or exceeds
  ``--max-step-s``; the remaining sides are not attempted.

Peak memory is the increase of the child's ``ru_maxrss`` (after imports, set-up and a
throwaway step on a tiny grid); time is the median of the timed steps (``--steps``).
Writes ``<out>/scaling.json`` and ``<out>/scaling.png`` (log-log, matplotlib).

    python experiments/scaling.py                 # sides 16 ... 1024 (about 10 min on 2 cores)
    python experiments/scaling.py --tiny --out /tmp/s   # smoke test
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends  # noqa: E402
import patch_memory  # noqa: E402
from _harness import mem_available_mb, parser, say, write_json  # noqa: E402


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 48, 64, 96, 128, 256, 512, 1024])
    ap.add_argument("--patch-sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per point (default 2)")
    ap.add_argument("--mem-cap-mb", type=float, default=None)
    ap.add_argument("--max-step-s", type=float, default=120.0)
    ap.add_argument("--tiny", action="store_true", help="smoke test: sides 16 24, patches 48 64 (patch 32)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--render", type=Path, default=None,
                    help="only redraw the plot and table of an existing scaling.json into <out>")
    args = ap.parse_args(argv)
    if args.render is not None:
        old = json.loads(args.render.read_text())
        for rows in old["series"].values():
            for r in rows:
                r.setdefault("points", r["side"] ** 2)
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / "scaling.json", old, indent=1, default=float)
        plot(old["series"], old["meta"], args.out / "scaling.png")
        _table(old["series"], print)
        return 0
    if args.tiny:
        args.sizes, args.patch_sizes, args.patch, args.steps = [16, 24], [48, 64], 32, 1
    avail = mem_available_mb() or 16384.0
    cap = args.mem_cap_mb or min(0.5 * avail, 8192.0)
    say(f"scaling: {platform.machine()}, {os.cpu_count()} CPUs, memory available {avail:,.0f} MB, "
        f"child cap {cap:,.0f} MB, {args.steps} timed step(s)")
    t_start = time.perf_counter()
    series: dict[str, list[dict]] = {"mollifier": [], "mollifier, patches": [], "autograd": []}
    common = {"steps": args.steps, "threads": 1, "mem_cap_mb": cap, "max_step_s": args.max_step_s}
    timeout = (args.steps + 1) * args.max_step_s + 300
    autograd_done = False
    for side in sorted(args.sizes):
        for b in ("mollifier", "autograd"):
            if b == "autograd" and autograd_done:
                series[b].append({"side": side, "points": side * side, "ok": False,
                                  "reason": "not_attempted",
                                  "message": "a smaller side did not fit"})
                continue
            (r,) = backends.run_child({**common, "backend": b, "sides": [side]}, timeout)
            r = {**r, "side": side, "points": side * side}
            series[b].append(r)
            say(f"{b:<20} {side:>5}^2: " + (f"{r['median_s']:.4f} s/step, {r['peak_mb']:,.1f} MB"
                                              if r.get("ok") else f"FAILED ({r.get('reason')}: "
                                              f"{str(r.get('message'))[:120]})"))
            if b == "autograd" and not r.get("ok"):
                autograd_done = True
    for side in sorted(args.patch_sizes):
        r = patch_memory.run_child({"steps": args.steps + 1, "threads": 1, "side": side,
                                    "patch": args.patch}, timeout=1800)
        r = {**r, "side": side, "points": side * side}
        if r.get("ok"):
            r["median_s"] = r["median_step_s"]
        series["mollifier, patches"].append(r)
        say(f"{'mollifier, patches':<20} {side:>5}^2: " + (
            f"{r['median_s']:.4f} s/step, {r['peak_mb']:,.1f} MB" if r.get("ok")
            else f"FAILED ({str(r.get('message'))[:120]})"))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "cap_mb": cap,
            "steps": args.steps, "patch": args.patch, "wall_s": time.perf_counter() - t_start,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json(args.out / "scaling.json", {"meta": meta, "series": series}, indent=1,
               default=float)
    plot(series, meta, args.out / "scaling.png")
    say("")
    _table(series, say)
    say(f"wrote {args.out / 'scaling.json'} and {args.out / 'scaling.png'}")
    ok = all(r.get("ok") for r in series["mollifier, patches"]) and series["mollifier"][0].get("ok")
    return 0 if ok else 1


def _table(series: dict, say) -> None:
    say(f"{'series':<20} {'side':>5} {'points':>10} {'s/step':>9} {'peak MB':>9}")
    for name, rows in series.items():
        for r in rows:
            if r.get("ok"):
                say(f"{name:<20} {r['side']:>5} {r['points']:>10,} {r['median_s']:>9.4f} {r['peak_mb']:>9,.1f}")
            else:
                say(f"{name:<20} {r['side']:>5} {r['points']:>10,} {'-':>9} {'-':>9}  "
                    f"{r.get('reason', 'failed')}")


def plot(series: dict, meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"mollifier": ("C0", "o"), "mollifier, patches": ("C2", "s"), "autograd": ("C3", "^")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "median_s", "time per step (s)"),
                           (axes[1], "peak_mb", "peak memory (MB)")):
        for name, rows in series.items():
            c, m = style[name]
            ok = [r for r in rows if r.get("ok")]
            if ok:
                ax.plot([r["points"] for r in ok], [max(r[key], 1e-3) for r in ok], marker=m,
                        color=c, label=name)
            for r in rows:
                if not r.get("ok") and r.get("reason") != "not_attempted":
                    ax.axvline(r["points"], color=c, ls=":", lw=1)
                    ax.annotate(f"{name}: {r.get('reason', 'failed')}", (r["points"], 0.95),
                                xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                                color=c, va="top", ha="right")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("grid points (side^2)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fourth-order chromatin loss, one step; {meta['machine']}, 1 thread; "
                 f"patches {meta['patch']} px", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
