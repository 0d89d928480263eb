#!/usr/bin/env python
"""CPU benchmark of the rate fit: the real mollifier fit, and one training step of the
fourth-order chromatin residual with the mollifier layer versus nested autograd.

What is measured, for one nucleus (the bundled sample, or a simulated one when the sample
files are missing):

(a) ``chromarate.fit.loop.fit_rates`` with the default ``FitConfig`` (on the CPU), on the
    phase fields produced by the pipeline stages render -> denoise -> segment -> crop ->
    phase, chained as in ``chromarate.pipeline.Pipeline.iter_run``: wall time, training time
    and peak memory.

(b) The time and peak memory per optimisation step (forward + backward + Adam step) of the
    strong-form chromatin loss, with the same networks, collocation points and loss for two
    derivative backends:

    - ``MollifierBackend``: the field network evaluated once on the grid plus a halo of the
      kernel radius, the fields and derivatives obtained by convolution;
    - ``AutogradBackend``: the field network evaluated on the grid and differentiated by
      nested ``torch.autograd.grad`` up to the fourth order (the standard PINN).

    Field network: ``FourierMLP`` with 2 outputs (phi_d, phi_w) and the width, depth and
    Fourier features of the default ``NetworkConfig``, plus the observed mean as a constant
    base (the "free" parameterisation of ``loop.py``; the "anchored" one adds a gridded
    offset, which the autograd backend cannot differentiate). Rate network: the
    ``RateNetwork`` of ``loop.py`` evaluated on the pixel grid. Loss, as in ``loop.py``::

        data     = mean_mask |u - observed|^2 / sigma^2
        residual = mean_grid r^2 / s^2          (r = chromatin_residual, strong form)
        smooth   = mean_grid |grad lambda|^2
        loss     = data_weight data + residual_weight residual + rate_smoothness smooth

    The collocation points are the pixel grid of the nucleus crop (the residual is scored
    on every pixel of it, so that a sub-grid never has an empty scoring set). If nested
    autograd cannot hold the whole grid in memory, or one of its steps would take more than
    ``--max-step-s`` seconds (60 by default, predicted from a small probe run), both
    backends run on the same centred square sub-grid instead; the output says so.

Peak memory: every configuration runs in a fresh child process (this script with
``--child``); the child reads ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` once after its
imports and set-up (baseline) and once after the work; the difference is reported in MB.
For (b) the set-up ends with one throwaway step on a 1x1 grid, so that the one-off lazy
initialisation of torch kernels (15-20 MB) is not counted as memory of the step; for (a) the
whole fit, initialisation included, is counted. Children use one torch thread by default
(``--threads``): on a shared or loaded machine, multi-threaded CPU kernels contend for cores
and their timings scatter by an order of magnitude.
Children run under an address-space limit (``--mem-cap-mb``) so that an oversized autograd
graph fails with an allocation error instead of exhausting the machine.

Usage::

    python experiments/fit_cpu.py                  # full benchmark
    python experiments/fit_cpu.py --size 48        # force a 48 x 48 sub-grid for (b)
    python experiments/fit_cpu.py --quick          # tiny sizes (smoke test, seconds)
    python experiments/fit_cpu.py --json out.json  # also write the numbers

No numbers are asserted anywhere; timings depend on the machine and its load.
"""

from __future__ import annotations

import math
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402  (the experiments' shared harness)
    EXIT_LIMIT, add_json_option, add_mem_cap_option, add_threads_option, cap_memory,
    child_result, fmt_mb, fmt_s, maxrss_mb, mem_available_mb, parse_args, parser, say_results,
    set_threads, time_steps, write_json,
)

#: Side of the central window of the crop that --quick runs everything on.
QUICK_WINDOW = 64

#: Side of the square grid of the autograd probe that predicts time and memory per point.
PROBE_SIDE = 24


# --------------------------------------------------------------------------------------
# child: one configuration per process
# --------------------------------------------------------------------------------------

def _child_fit(spec: dict) -> dict:
    import torch

    from chromarate.config import FitConfig
    from chromarate.fit.loop import fit_rates

    with open(spec["fields"], "rb") as fh:
        fields = pickle.load(fh)
    config = (FitConfig() if spec.get("fit_steps") is None
              else FitConfig(training={"steps": spec["fit_steps"]}))
    cap_memory(spec.get("mem_cap_mb"))
    base = maxrss_mb()
    t0 = time.perf_counter()
    result = fit_rates(fields, config, device="cpu")
    wall = time.perf_counter() - t0
    peak = maxrss_mb() - base
    train = float(result.timings.get("train", float("nan")))
    return {
        "kind": "fit", "ok": True, "wall_s": wall, "train_s": train,
        "steps": config.training.steps, "train_s_per_step": train / config.training.steps,
        "peak_mb": peak, "baseline_mb": base, "threads": torch.get_num_threads(),
        "mollifier_radius_px": result.meta.get("mollifier_radius_px"),
        "residual_form": config.residual_form,
        "parameterization": config.network.parameterization,
        "final_loss": result.meta.get("final_loss"),
    }


def _child_step(spec: dict) -> dict:
    import gc

    import numpy as np
    import torch

    from chromarate.config import FitConfig
    from chromarate.errors import FitDivergedError
    from chromarate.fit.derivatives import AutogradBackend, Grid, MollifierBackend, make_grid
    from chromarate.fit.engine import ParamGroup, TrainSettings, iter_train
    from chromarate.fit.loop import FIELD_DERIVATIVES
    from chromarate.fit.mollifier import make_kernels
    from chromarate.fit.networks import FourierMLP, RateNetwork
    from chromarate.fit.regularise import rate_fourier_scale
    from chromarate.fit.physics import ChromatinParams, chromatin_residual

    with open(spec["fields"], "rb") as fh:
        fields = pickle.load(fh)
    cfg = FitConfig()
    dev, dtype = torch.device("cpu"), torch.float32
    pixel_um = fields.pixel_size_nm / 1000.0
    ny_full, nx_full = fields.shape
    full = make_grid((ny_full, nx_full), pixel_um)
    whole_mask = np.asarray(fields.mask, dtype=bool)
    phi_h_mean = float(np.mean(fields.phi_h[whole_mask]))
    phi_e_mean = float(np.mean(fields.phi_e[whole_mask]))
    initial_rate = phi_h_mean / max(phi_e_mean, 1e-3)
    span = float(np.ptp(fields.phi_d[whole_mask])) or 1.0
    sigma = max(float(spec["noise"]), 1e-3 * span)
    scale_r = max(2.0 * phi_h_mean, 1e-3)
    params = ChromatinParams.from_config(cfg.physics)

    if spec["backend"] == "mollifier":
        kernels = make_kernels(cfg.mollifier.kernel, spec["radius_px"], degree=cfg.mollifier.degree,
                               max_order=4, pixel=pixel_um)
        backend = MollifierBackend(kernels, dev, dtype)
    else:
        backend = AutogradBackend()
    halo = int(getattr(backend, "halo", 0))

    def build(side):
        """Networks, optimiser and step function on a centred square sub-grid (None: all)."""
        if side is None:
            sy, sx = slice(0, ny_full), slice(0, nx_full)
        else:
            y0, x0 = (ny_full - side) // 2, (nx_full - side) // 2
            sy, sx = slice(y0, y0 + side), slice(x0, x0 + side)
        ny, nx = sy.stop - sy.start, sx.stop - sx.start
        grid = Grid(ny, nx, full.h, full.y0 + sy.start * full.h, full.x0 + sx.start * full.h)
        obs_np = np.stack([fields.phi_d[sy, sx], fields.phi_w[sy, sx]])
        mask_np = np.asarray(fields.mask[sy, sx], dtype=bool)
        if not mask_np.any():
            mask_np = np.ones_like(mask_np)
        obs = torch.as_tensor(obs_np, device=dev, dtype=dtype)
        mask = torch.as_tensor(mask_np, device=dev)
        base = torch.as_tensor(obs_np[:, mask_np].mean(axis=1), device=dev, dtype=dtype).view(1, 2)
        gen = torch.Generator().manual_seed(int(cfg.seed))
        n = cfg.network

        class FieldNet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlp = FourierMLP(2, width=n.width, depth=n.depth,
                                      n_fourier=n.fourier_features,
                                      scale_per_um=n.fourier_scale_per_um, generator=gen)
                self.register_buffer("base", base)

            def forward(self, xy):
                return self.mlp(xy) + self.base

        field_net = FieldNet().to(device=dev, dtype=dtype)
        rate_net = RateNetwork(initial_rate=initial_rate, width=32, depth=2,
                               n_fourier=cfg.prior.rate_fourier_features,
                               scale_per_um=rate_fourier_scale(cfg.prior),
                               generator=gen).to(device=dev, dtype=dtype)
        xy = grid.coords(dev, dtype)
        groups = [ParamGroup(list(field_net.parameters()) + list(rate_net.parameters()),
                             cfg.training.learning_rate)]

        def loss_fn(_step):
            f = backend.fields(field_net, grid, FIELD_DERIVATIVES)
            d = {k: v[0] for k, v in f.items()}
            w = {k: v[1] for k, v in f.items()}
            lam = rate_net(xy).view(ny, nx)
            r = chromatin_residual(d, w, lam, params)
            data = ((f["u"] - obs) ** 2)[:, mask].mean() / sigma**2
            res = (r**2).mean() / scale_r**2
            smooth = torch.zeros((), device=dev, dtype=dtype)
            if ny > 1:
                smooth = smooth + 0.5 * (((lam[1:, :] - lam[:-1, :]) / pixel_um) ** 2).mean()
            if nx > 1:
                smooth = smooth + 0.5 * (((lam[:, 1:] - lam[:, :-1]) / pixel_um) ** 2).mean()
            loss = (cfg.data_weight * data + cfg.residual_weight * res
                    + cfg.prior.rate_smoothness * smooth)
            return loss, {"data": data, "residual": res, "smooth": smooth}

        # the package's training engine, one event per step (log_every=1): each call of
        # step() is one forward + backward + Adam step; the cosine period is so long that
        # the learning rate stays at cfg.training.learning_rate
        events = iter_train(groups, loss_fn, TrainSettings(steps=10**9, log_every=1))

        def step() -> float:
            try:
                return next(events).loss
            except (FitDivergedError, StopIteration):  # non-finite loss: reported, not raised
                return float("nan")

        return step, (ny, nx)

    # Library warm-up: one step on a 1x1 grid with throwaway networks, so that one-off lazy
    # initialisation of torch kernels (about 15-20 MB) is not counted as the step's memory.
    warm_step, _ = build(1)
    warm_step()
    del warm_step
    step, (ny, nx) = build(spec.get("side"))
    out = {
        "kind": "step", "backend": spec["backend"], "grid": [ny, nx], "collocation": ny * nx,
        "net_points": (ny + 2 * halo) * (nx + 2 * halo), "halo": halo,
        "threads": torch.get_num_threads(), "label": spec.get("label", spec["backend"]),
    }
    cap_memory(spec.get("mem_cap_mb"))
    gc.collect()
    base_mb = maxrss_mb()
    out["baseline_mb"] = base_mb
    cap = spec.get("mem_cap_mb")
    timed = time_steps(step, spec["steps"], out, base_mb, max_s=spec.get("max_step_s"),
                       oom_prefix="out of memory" if cap is None else
                       f"out of memory under the cap of {cap:.0f} MB", oom_chars=200)
    if timed is None:
        return out
    times, losses = timed
    peak = maxrss_mb() - base_mb
    out.update(ok=True, step_s=times, mean_s=float(np.mean(times)),
               median_s=float(np.median(times)), min_s=float(np.min(times)),
               peak_mb=peak, losses=losses,
               finite=bool(all(math.isfinite(v) for v in losses)))
    return out


def child_main(spec: dict) -> dict:
    """The result of a child: a fit or a step."""
    set_threads(spec.get("threads"))
    fn = _child_fit if spec["kind"] == "fit" else _child_step
    return fn(spec)


# --------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------

def run_child(spec: dict, timeout: float) -> dict:
    """Run one configuration in a fresh interpreter and return its result dict."""
    return child_result(__file__, spec, timeout)


def load_input(quick: bool):
    """(Localizations, description): the bundled sample if present, else a simulated nucleus."""
    from chromarate.data import sample_paths, simulate_nucleus
    from chromarate.errors import InputFormatError

    try:
        csv, _truth = sample_paths()
    except InputFormatError:
        csv = None
    if csv is not None:
        from chromarate.io import read_localizations

        locs = read_localizations(csv)
        return locs, f"bundled sample {csv} ({len(locs.table)} localizations)"
    from chromarate.config import SimulateConfig

    if quick:
        sc = SimulateConfig(shape=(64, 64), n_localizations=20_000, tolerance=1e-1)
    else:
        sc = SimulateConfig(shape=(128, 128), n_localizations=100_000, tolerance=1e-2)
    nuc = simulate_nucleus(sc)
    return nuc.localizations, (
        f"simulated nucleus (sample files not found): simulate_nucleus(SimulateConfig("
        f"shape={tuple(sc.shape)}, n_localizations={sc.n_localizations}, "
        f"tolerance={sc.tolerance:g}))")


def prepare_fields(locs):
    """render -> denoise -> segment -> crop -> phase, chained as in Pipeline.iter_run."""
    import numpy as np

    from dataclasses import replace

    from chromarate.config import PipelineConfig
    from chromarate.denoise import denoise_density
    from chromarate.phase import phase_fields
    from chromarate.render import render_density
    from chromarate.segment import crop_to_mask, segment_nucleus

    cfg = PipelineConfig()
    t = {}
    t0 = time.perf_counter()
    density = render_density(locs, cfg.render)
    t["render"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    denoised = denoise_density(density, cfg.denoise)
    t["denoise"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mask = segment_nucleus(denoised, cfg.segment)
    t["segment"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = cfg.fit.mollifier.radius_px
    margin = int(np.ceil(r if r != "auto" else 24)) + 2
    slices = crop_to_mask(mask, margin)
    # as chromarate.pipeline.crop_density (not imported: it would pull torch into the parent)
    sy, sx = slices
    p = denoised.pixel_size_nm
    den_c = replace(denoised, data=np.ascontiguousarray(denoised.data[sy, sx]),
                    origin_nm=(denoised.origin_nm[0] + sy.start * p,
                               denoised.origin_nm[1] + sx.start * p))
    mask_c = np.ascontiguousarray(mask[slices])
    t["crop"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fields = phase_fields(den_c, mask_c, cfg.phase)
    t["phase"] = time.perf_counter() - t0
    return fields, density.data.shape, t


def _central_window(fields, side: int):
    """The central ``side x side`` window of phase fields (for --quick only)."""
    from dataclasses import replace

    ny, nx = fields.shape
    y0, x0 = (ny - side) // 2, (nx - side) // 2
    sl = (slice(y0, y0 + side), slice(x0, x0 + side))
    p = fields.pixel_size_nm
    return replace(fields, phi_d=fields.phi_d[sl].copy(), phi_w=fields.phi_w[sl].copy(),
                   mask=fields.mask[sl].copy(),
                   origin_nm=(fields.origin_nm[0] + y0 * p, fields.origin_nm[1] + x0 * p))


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=int, default=None,
                    help="timed optimisation steps per backend, after 1 warm-up step "
                         "(default 5; 1 with --quick)")
    ap.add_argument("--size", type=int, default=None,
                    help="side of the centred square sub-grid for the per-step comparison "
                         "(default: the full crop if autograd fits, else chosen from a probe)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes for tests: the central 64 x 64 window of the crop, 2 fit "
                         "steps, an 8 x 8 sub-grid, 1 timed step")
    add_json_option(ap)
    ap.add_argument("--max-step-s", type=float, default=60.0,
                    help="longest acceptable autograd step before falling back to a sub-grid")
    add_mem_cap_option(ap)
    add_threads_option(ap, help="torch threads in the children (default 1: stable timings on "
                                "a shared machine; 0 keeps torch's default)")
    args = parse_args(ap, argv, child_main,
                      status=lambda result: 0 if result.get("ok", True) else EXIT_LIMIT)

    steps = args.steps if args.steps is not None else (1 if args.quick else 5)
    if steps < 1:
        ap.error("--steps must be >= 1")
    if args.size is not None and args.size < 2:
        ap.error("--size must be >= 2")
    avail = mem_available_mb()
    cap = args.mem_cap_mb if args.mem_cap_mb is not None else (0.5 * avail if avail else None)
    say = lambda *a: print(*a, flush=True)  # noqa: E731

    say("chromarate CPU fit benchmark")
    say(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"memory available {fmt_mb(avail)} MB, child memory cap {fmt_mb(cap)} MB")

    t0 = time.perf_counter()
    locs, input_desc = load_input(args.quick)
    t_input = time.perf_counter() - t0
    fields, raw_shape, stage_t = prepare_fields(locs)

    from importlib.metadata import version

    from chromarate.config import FitConfig
    from chromarate.fit.direct import resolve_radius

    torch_version = version("torch")  # the parent never imports torch (faster start)

    crop_note = ""
    if args.quick and min(fields.shape) > QUICK_WINDOW:
        fields, crop_note = _central_window(fields, QUICK_WINDOW), (
            f"; --quick: everything below runs on the central {QUICK_WINDOW}x{QUICK_WINDOW} "
            f"window of the {fields.shape[0]}x{fields.shape[1]} crop")
    fcfg = FitConfig()
    radius, noise = resolve_radius(fields, fcfg)
    ny, nx = fields.shape
    n_full = ny * nx
    say(f"input: {input_desc} (loaded in {t_input:.1f} s)")
    say("stages: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in stage_t.items())
        + f"; density {raw_shape[0]}x{raw_shape[1]} px -> crop {ny}x{nx} px "
        f"({int(fields.mask.sum())} px in the nucleus), pixel {fields.pixel_size_nm:g} nm"
        + crop_note)
    threads = args.threads or "torch's default number of"
    say(f"torch {torch_version}, {threads} thread(s) per child; "
        f"mollifier radius {radius:g} px (auto), noise(phi_d) {noise:.3g}; "
        f"network width {fcfg.network.width}, depth {fcfg.network.depth}, "
        f"{fcfg.network.fourier_features} Fourier features, 2 outputs")

    tmpdir = tempfile.mkdtemp(prefix="chromarate-bench-")
    fields_path = os.path.join(tmpdir, "fields.pkl")
    with open(fields_path, "wb") as fh:
        pickle.dump(fields, fh)
    common = {"fields": fields_path, "mem_cap_mb": cap, "threads": args.threads,
              "radius_px": radius, "noise": noise}
    report: dict = {
        "input": input_desc, "crop_shape": [ny, nx], "raw_shape": list(raw_shape),
        "pixel_size_nm": fields.pixel_size_nm, "mollifier_radius_px": radius,
        "noise_phi_d": noise, "stage_seconds": stage_t, "torch": torch_version,
        "cpu_count": os.cpu_count(), "threads": args.threads, "mem_cap_mb": cap,
        "steps": steps, "quick": args.quick,
    }
    try:
        # (a) the real fit --------------------------------------------------------------
        fit_steps = 2 if args.quick else None
        say("")
        say(f"(a) fit_rates, default FitConfig{' (quick: steps=2)' if args.quick else ''}, "
            f"device cpu, on the {ny}x{nx} crop ...")
        fit = run_child({**common, "kind": "fit", "fit_steps": fit_steps}, timeout=3600)
        report["fit"] = fit
        if not fit.get("ok"):
            say(f"    FAILED: {fit.get('message')}")
        else:
            say(f"    {fit['steps']} steps ({fit['residual_form']} form, "
                f"{fit['parameterization']}): fit time {fit['wall_s']:.2f} s "
                f"(training {fit['train_s']:.2f} s, {fit['train_s_per_step'] * 1000:.1f} ms/step), "
                f"peak memory {fmt_mb(fit['peak_mb'])} MB above baseline "
                f"{fmt_mb(fit['baseline_mb'])} MB")

        # (b) per-step comparison ---------------------------------------------------------
        say("")
        say("(b) one optimisation step (forward + backward + Adam) of the strong-form "
            "chromatin loss")
        side = None
        why = "full crop"
        if args.quick and args.size is None:
            side = min(8, ny, nx)
            why = f"--quick: {side}x{side} sub-grid"
        elif args.size is not None:
            side = min(args.size, ny, nx)
            why = f"--size: {side}x{side} sub-grid"
        else:
            ps = min(PROBE_SIDE, ny, nx)
            probe = run_child({**common, "kind": "step", "backend": "autograd", "side": ps,
                               "steps": 1, "max_step_s": args.max_step_s, "label": "probe"},
                              timeout=600)
            report["probe"] = probe
            if probe.get("ok"):
                tpp = probe["mean_s"] / (ps * ps)
                mpp = max(probe["peak_mb"], 1.0) / (ps * ps)
                pred_t, pred_m = tpp * n_full, mpp * n_full
                say(f"    autograd probe on {ps}x{ps}: {probe['mean_s']:.2f} s/step, "
                    f"{fmt_mb(probe['peak_mb'])} MB -> predicted on the full {ny}x{nx} grid: "
                    f"{pred_t:.0f} s/step, {pred_m:,.0f} MB")
                too_slow = pred_t > args.max_step_s
                too_big = cap is not None and pred_m > 0.8 * cap
                if too_slow or too_big:
                    # aim at a third of the limit (load noise) and half the memory cap
                    s_t = math.sqrt(args.max_step_s / 3.0 / tpp)
                    s_m = math.sqrt(0.5 * cap / mpp) if cap else float("inf")
                    side = int(max(8, min(ny, nx, 4 * int(min(s_t, s_m) // 4))))
                    reasons = []
                    if too_slow:
                        reasons.append(f"predicted {pred_t:.0f} s/step > {args.max_step_s:g} s")
                    if too_big:
                        reasons.append(f"predicted {pred_m:,.0f} MB > 80% of the "
                                       f"{cap:,.0f} MB cap")
                    why = (f"SUB-GRID {side}x{side} (centred in the crop) for BOTH backends: "
                           f"nested autograd on the full {ny}x{nx} grid is not feasible here ("
                           + "; ".join(reasons) + ")")
            else:
                side = min(PROBE_SIDE, ny, nx)
                why = (f"SUB-GRID {side}x{side}: the autograd probe failed "
                       f"({probe.get('message')})")

        attempts = []
        auto = None
        for _ in range(4):
            auto = run_child({**common, "kind": "step", "backend": "autograd", "side": side,
                              "steps": steps, "max_step_s": args.max_step_s},
                             timeout=(steps + 1) * args.max_step_s * 3 + 300)
            attempts.append({"side": side, "ok": auto.get("ok"), "reason": auto.get("reason"),
                             "message": auto.get("message")})
            if auto.get("ok") or auto.get("reason") not in ("oom", "too_slow", "timeout"):
                break
            cur = side if side is not None else min(ny, nx)
            new = max(4, int(cur * 0.7))
            if new >= cur:
                break
            say(f"    autograd on {cur}x{cur} failed ({auto.get('message')}); "
                f"retrying on {new}x{new}")
            side = new
            why = (f"SUB-GRID {side}x{side} (centred in the crop) for BOTH backends: "
                   f"autograd failed on larger grids ({auto.get('reason')})")
        report["autograd_attempts"] = attempts
        say(f"    collocation points: {why}")

        moll = run_child({**common, "kind": "step", "backend": "mollifier", "side": side,
                          "steps": steps},
                         timeout=(steps + 1) * 600)
        rows = [("mollifier", moll), ("autograd", auto)]
        moll_full = None
        if side is not None and not args.quick:
            moll_full = run_child({**common, "kind": "step", "backend": "mollifier", "side": None,
                                   "steps": steps},
                                  timeout=(steps + 1) * 600)
            rows.append(("mollifier (full crop)", moll_full))
        report["subgrid_side"] = side
        report["collocation_note"] = why
        report["step"] = {"mollifier": moll, "autograd": auto, "mollifier_full_crop": moll_full}

        say("")
        hdr = (f"    {'backend':<22} {'grid':>9} {'net points':>10} {'s/step mean':>11} "
               f"{'median':>8} {'min':>8} {'peak MB':>10}")
        say(hdr)
        say("    " + "-" * (len(hdr) - 4))

        def cells(r):
            g = f"{r['grid'][0]}x{r['grid'][1]}"
            return (f"{g:>9} {r['net_points']:>10,} {fmt_s(r['mean_s']):>11} "
                    f"{fmt_s(r['median_s']):>8} {fmt_s(r['min_s']):>8} {fmt_mb(r['peak_mb']):>10}")

        say_results(rows, cells, 22, indent="    ")
        say(f"    ({steps} timed step(s) after 1 warm-up step; 'net points': where the field "
            f"network is evaluated (grid + halo of {radius:g}-px kernels for the mollifier);")
        say("     peak MB = ru_maxrss after the steps minus ru_maxrss after imports, set-up and "
            "a 1x1-grid library warm-up, one child process per row)")
        say("")
        if moll.get("ok") and auto and auto.get("ok"):
            rt = auto["mean_s"] / moll["mean_s"]
            rm = auto["peak_mb"] / max(moll["peak_mb"], 1e-9)
            report["ratios"] = {"time_per_step": rt, "peak_memory": rm,
                                "time_per_step_median": auto["median_s"] / moll["median_s"],
                                "time_per_step_min": auto["min_s"] / moll["min_s"]}
            grid_s = f"{auto['grid'][0]}x{auto['grid'][1]}"
            say(f"ratio autograd/mollifier time per step: {rt:.1f}x  (mean; median "
                f"{report['ratios']['time_per_step_median']:.1f}x, min "
                f"{report['ratios']['time_per_step_min']:.1f}x; grid {grid_s})")
            say(f"ratio autograd/mollifier peak memory: {rm:.1f}x  "
                f"({fmt_mb(auto['peak_mb'])} MB / {fmt_mb(moll['peak_mb'])} MB; grid {grid_s})")
            if moll["peak_mb"] < 5.0:
                say("    note: the mollifier peak is a few MB, close to the resolution of "
                    "ru_maxrss, so the memory ratio is coarse at this size")
        else:
            say("ratio autograd/mollifier: not available (a configuration failed)")
            report["ratios"] = None
    finally:
        try:
            os.remove(fields_path)
            os.rmdir(tmpdir)
        except OSError:
            pass
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report, indent=2, default=float)
        say(f"wrote {args.json}")
    ok = bool(report.get("fit", {}).get("ok")) and report.get("ratios") is not None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
