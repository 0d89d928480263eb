#!/usr/bin/env python
"""Peak memory of ``fit_rates`` with patch training versus the image size.

With ``FitConfig(training={"patch_size": P})`` the fit trains on random P x P windows (plus the kernel halo)
and assembles the final maps tile by tile without gradients, so its peak memory should be
roughly flat in the image size. For every side (256, 512, 1024 by default) one child process
builds synthetic ``PhaseFields`` at 10 nm (``phi_d = 0.2 tanh(smooth random field)``,
``phi_w = 0.6 - phi_d``, mask a centred disk of radius 0.45 side) and runs::

    fit_rates(fields, FitConfig(training={"patch_size": P, "steps": N, "log_every": 1},
                                mollifier=MollifierConfig(radius_px=8)), device="cpu")

(``radius_px=8`` skips the automatic width choice). A reference row runs the smallest side
without patches (whole-grid training).

Reported per row: peak memory (MB; ``ru_maxrss`` of the child after the fit minus
``ru_maxrss`` after imports, field set-up and a throwaway 1-step fit on a 48 x 48 image, so
that one-off lazy initialisation is not counted), seconds per training step (median of the
intervals between the per-step progress events of ``iter_fit``) and the time of the final
tiled assembly. One torch thread per child.

Usage::

    python experiments/patch_memory.py                    # sides 256 512 1024, patch 128, 5 steps
    python experiments/patch_memory.py --sizes 256 512
    python experiments/patch_memory.py --steps 10 --patch 64
    python experiments/patch_memory.py --quick            # sides 64, 96, patch 32 (smoke test)
    python experiments/patch_memory.py --json out.json

No numbers are asserted; they depend on the machine and its load.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import smooth_fields  # noqa: E402
from _harness import (  # noqa: E402  (the experiments' shared harness)
    add_json_option, add_threads_option, child_result, fmt_mb, maxrss_mb, mem_available_mb,
    parse_args, parser, say, say_results, set_threads, write_json,
)

PIXEL_NM = 10.0
RADIUS_PX = 8.0


def child_fit(spec: dict) -> dict:
    import gc

    import numpy as np

    from chromarate._types import FitDone, FitProgress, PhaseFields
    from chromarate.config import FitConfig, MollifierConfig
    from chromarate.fit.loop import fit_rates, iter_fit

    set_threads(spec.get("threads") or 1)
    moll = MollifierConfig(radius_px=RADIUS_PX)

    def fields_of(side):
        phi_d, phi_w, mask = smooth_fields(side)  # at PIXEL_NM
        return PhaseFields(phi_w=phi_w.astype(np.float32), phi_d=phi_d.astype(np.float32),
                           mask=mask, pixel_size_nm=PIXEL_NM)

    # warm-up: one step on a small image (lazy library initialisation is not counted)
    fit_rates(fields_of(48), FitConfig(training={"steps": 1, "patch_size": 32}, mollifier=moll), device="cpu")
    side, patch = int(spec["side"]), spec.get("patch")
    fields = fields_of(side)
    config = FitConfig(training={"steps": int(spec["steps"]), "log_every": 1, "patch_size": patch},
                       mollifier=moll)
    gc.collect()
    base = maxrss_mb()
    t0 = time.perf_counter()
    stamps, result = [], None
    for ev in iter_fit(fields, config, device="cpu"):
        if isinstance(ev, FitProgress):
            stamps.append(time.perf_counter())
        elif isinstance(ev, FitDone):
            result = ev.result
    wall = time.perf_counter() - t0
    peak = maxrss_mb() - base
    steps_s = np.diff([t0] + stamps)
    return {
        "ok": True, "side": side, "patch": patch, "steps": config.training.steps, "peak_mb": peak,
        "baseline_mb": base, "wall_s": wall,
        "step_s": steps_s.tolist(), "median_step_s": float(np.median(steps_s[1:] if len(steps_s) > 1
                                                                   else steps_s)),
        "assemble_s": wall - (stamps[-1] - t0) if stamps else None,
        "finite_rate": bool(np.isfinite(result.rate[fields.mask]).all()),
        "final_loss": result.meta.get("final_loss"),
    }


def run_child(spec: dict, timeout: float) -> dict:
    return child_result(__file__, spec, timeout, tail_lines=6)


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="image sides (default 256 512 1024; 64 96 with --quick)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default 5; 3 with --quick)")
    ap.add_argument("--patch", type=int, default=None, help="patch size (default 128; 32 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke test: sides 64, 96, patch 32")
    add_json_option(ap)
    add_threads_option(ap)
    args = parse_args(ap, argv, child_fit)

    sizes = sorted(set(args.sizes or ([64, 96] if args.quick else [256, 512, 1024])))
    steps = args.steps if args.steps is not None else (3 if args.quick else 5)
    patch = args.patch if args.patch is not None else (32 if args.quick else 128)
    if steps < 1 or patch < 16:
        ap.error("--steps must be >= 1 and --patch >= 16")
    from importlib.metadata import version

    say("chromarate patch-training memory benchmark (fit_rates, default FitConfig otherwise)")
    say(f"python {platform.python_version()}, torch {version('torch')}, {os.cpu_count()} CPUs, "
        f"{args.threads} thread(s) per child, memory available {fmt_mb(mem_available_mb())} MB")
    say(f"synthetic PhaseFields at {PIXEL_NM:g} nm, mollifier radius {RADIUS_PX:g} px, "
        f"{steps} steps, log_every=1, patch {patch}")
    common = {"steps": steps, "threads": args.threads}
    rows = []
    for side in sizes:
        rows.append((f"patch {patch}", run_child({**common, "side": side, "patch": patch},
                                                 timeout=1800)))
    rows.append(("no patches", run_child({**common, "side": sizes[0], "patch": None},
                                         timeout=1800)))
    say("")
    hdr = (f"{'training':<12} {'image':>11} {'peak MB':>9} {'process MB':>10} {'s/step':>8} "
           f"{'assembly s':>10} {'total s':>8}")
    say(hdr)
    say("-" * len(hdr))

    def cells(r):
        g = f"{r['side']}x{r['side']}"
        return (f"{g:>11} {fmt_mb(r['peak_mb']):>9} {fmt_mb(r['peak_mb'] + r['baseline_mb']):>10} "
                f"{r['median_step_s']:>8.3f} {r['assemble_s']:>10.2f} {r['wall_s']:>8.2f}")

    say_results(rows, cells, 12)
    say("(peak MB: ru_maxrss increase during the fit; process MB: the child's whole peak resident "
        "memory, imports included; one child process per row; s/step: median "
        "interval between per-step progress events; assembly: final tiled maps, no gradients)")
    patched = [r for label, r in rows[:-1] if r.get("ok")]
    if len(patched) >= 2:
        lo, hi = patched[0], patched[-1]
        say(f"peak memory ratio {hi['side']}x{hi['side']} / {lo['side']}x{lo['side']} with patch "
            f"{patch}: {hi['peak_mb'] / max(lo['peak_mb'], 1e-9):.2f}x for "
            f"{(hi['side'] / lo['side']) ** 2:.0f}x the pixels")
    ref = rows[-1][1]
    if patched and ref.get("ok"):
        say(f"peak memory ratio no patches / patch {patch} at {ref['side']}x{ref['side']}: "
            f"{ref['peak_mb'] / max(patched[0]['peak_mb'], 1e-9):.2f}x")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, {"sizes": sizes, "steps": steps, "patch": patch,
                               "quick": args.quick,
                               "rows": [{"training": lab, **r} for lab, r in rows]},
                   indent=2, default=float)
        say(f"wrote {args.json}")
    return 0 if all(r.get("ok") for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
