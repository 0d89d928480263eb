#!/usr/bin/env python
"""The comparison table of the mollifier-layer paper, re-measured with chromarate.

Paper: "Mollifier Layers: Enabling Efficient High-Order Derivatives in Inverse PDE Learning"
(TMLR 2025). Three inverse problems of derivative order 1, 2 and 4, each fitted by a PINN
whose derivatives come from nested autograd or from the mollifier layer:

- ``langevin``  du/dt = -u + lambda(t); recover lambda(t)            (1st order, 1-D)
- ``heat``      0 = lambda(x, y) lap(u) + m(x, y); recover lambda   (2nd order, 2-D)
- ``chromatin`` the steady chromatin model (docs/design.md section 5); recover lambda(x, y)
                (4th order, 2-D), ground truth from the spectral forward solver
                (``chromarate.fit.simulate.steady_state``) on the rate map of
                ``experiments/recovery.py`` at 10 nm pixels, observed on the whole box

Grid: problem x network (``mlp``: tanh MLP PINN; ``pirate``: PirateNet) x backend
(``autograd``, ``mollifier``) x noise (0, 1, 5 % of the range of the observed field).
For one (problem, network, noise) both backends get the same data, the same networks and
initial weights (seeded), the same collocation points (the grid nodes at least one kernel
half-width from the boundary: residual and metrics; all nodes: data term), the same loss,
optimiser and number of steps. Several seeds per configuration (seed s: network weights and
the noise draw); the table reports the median and the range over seeds.

Measured per configuration: Pearson correlation and relative L2 error of the recovered
lambda against the truth over the interior, training wall time, time to reach the
correlation target (``--target``, default 0.9; the rate is scored every ``steps/20``
steps, outside the timed region; "missed" if never reached), time per step and peak memory.
On CPU every configuration (all its seeds) runs in its own child process and the peak is
the increase of the child's ``ru_maxrss`` over its value after imports, data set-up and a
2-step warm-up fit on a tiny grid; on CUDA ``torch.cuda.max_memory_allocated`` during the
fits (one process, statistics reset per configuration).

The chromatin rows run chromarate's own training loop, ``chromarate.fit.loop.iter_fit``
(``fit_rates``), on the steady state of the chromatin model in an n x n box at 10 nm (the
rate map of ``experiments/recovery.py`` scaled to the box; whole box observed), with
``chromatin_config``:

- ``autograd`` and ``mollifier``: the *same* FitConfig except ``fit.derivative_backend``
  -- strong-form residual, free field network (Fourier-feature MLP or PirateNet, 2 outputs)
  pre-trained on the data (``fit.training.pretrain_steps``, values only, so the same for both),
  Gaussian test windows, rate prior, steps, seed; the residual is scored on the same
  trusted pixels (one kernel half-width inside the box, whatever the backend). Nested
  autograd can only differentiate a network, so this is the formulation both can run.
- ``mollifier, weak+anchored``: chromarate's default formulation (weak form, the field
  anchored on the denoised data) with the same networks, grid, steps and seed; autograd
  cannot express it.

Rows ``chromarate fit_rates`` run the product as a user would,
``fit_rates(fields, FitConfig(network.architecture=..., prior.rate_smoothness=1e-3,
prior.test_window_um=0.15))`` (mollifier backend, weak form, anchored field network, lattice
evaluation; the two pinned settings were FitConfig's defaults when the table was first
measured) on the 256 x 256 recovery case of ``experiments/recovery.py``
(``--default-size``; a nucleus-shaped mask).

The heat and Langevin rows use the problems, backends and fit of ``chromarate.fit.problems``
(``fit_problem``: the problem's plug-in and the package's training engine; network and
backend chosen independently), through ``fit_one``. The Langevin residual is scaled by the
fit's derivative-free estimate of mean lambda (before: by the true mean).

For the ``iter_fit`` rows the rate map is taken at every logged step (``steps/20``) through
``iter_fit``'s monitor and scored afterwards; ``s/step`` is the Adam time per step between
the first and the last logged step (set-up, pre-training and the final assembly excluded),
``wall s`` the whole fit without the monitor.

Usage::

    python experiments/paper_table.py --quick                       # ~13 min on 2 CPU cores
    python experiments/paper_table.py --full --device cuda          # GPU (experiments/gpu.sh)
    python experiments/paper_table.py --tiny --out /tmp/t           # smoke test (tests)

Outputs ``<out>/paper_table.json`` (every seed's numbers and the settings) and
``<out>/paper_table.md`` (the markdown table). Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402  (the experiments' shared harness)
    add_threads_option, child_result, maxrss_mb, parse_args, parser, say, set_threads,
    write_json,
)

PROBLEMS = ("langevin", "heat", "chromatin")
ORDER = {"langevin": 1, "heat": 2, "chromatin": 4}
NETWORKS = ("mlp", "pirate")
BACKENDS = ("autograd", "mollifier")
#: chromatin also runs chromarate's own formulation on the same grid, steps and seeds
WEAK_ANCHORED = "mollifier, weak+anchored"
NOISES = (0.0, 0.01, 0.05)

#: Mode settings. ``n``: grid nodes per side; ``radius``: mollifier radius (nodes);
#: ``width``/``depth``: field network (MLP hidden layers; PirateNet: ``blocks`` gated blocks,
#: default ``depth - 1``). PirateNet has 3 dense layers per block, so nested 4th-order
#: autograd through it costs several times the MLP's; the chromatin rows use one block.
MODES = {
    "tiny": {"seeds": [0], "noises": [0.0], "default_size": 48, "default_steps": 3,
             "default_seeds": [0],
             "langevin": {"n": 48, "steps": 6, "radius": 6.0, "width": 16, "depth": 2},
             "heat": {"n": 20, "steps": 6, "radius": 3.0, "width": 16, "depth": 2},
             "chromatin": {"n": 24, "steps": 3, "radius": 4.0, "width": 16, "depth": 2, "blocks": 1,
                           "fourier": 8, "pretrain": 4, "test_window_um": 0.03}},
    "quick": {"seeds": [0, 1], "noises": list(NOISES), "default_size": 256, "default_steps": None,
              "default_seeds": [0],
              "langevin": {"n": 128, "steps": 400, "radius": 8.0, "width": 32, "depth": 3},
              "heat": {"n": 32, "steps": 400, "radius": 4.0, "width": 32, "depth": 3},
              "chromatin": {"n": 48, "steps": 150, "radius": 8.0, "width": 32, "depth": 3, "blocks": 1,
                            "fourier": 32, "pretrain": 300, "test_window_um": 0.1}},
    "full": {"seeds": [0, 1, 2], "noises": list(NOISES), "default_size": 256, "default_steps": None,
             "default_seeds": [0, 1, 2],
             "langevin": {"n": 256, "steps": 1500, "radius": 8.0, "width": 64, "depth": 3},
             "heat": {"n": 64, "steps": 1500, "radius": 6.0, "width": 64, "depth": 3},
             "chromatin": {"n": 64, "steps": 400, "radius": 8.0, "width": 64, "depth": 3, "blocks": 1,
                           "fourier": 64, "pretrain": 1000, "test_window_um": 0.1}},
}
PIXEL_UM = 0.01  # chromatin grid spacing


# --------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------

def _true_rate(n: int, pixel_um: float):
    from recovery import true_rate

    return true_rate(n, pixel_um)


def chromatin_truth(n: int, pixel_um: float = PIXEL_UM):
    """(lambda, phi_d) steady state of the recovery case scaled to an n x n box."""
    from chromarate.fit.simulate import steady_state

    lam = _true_rate(n, pixel_um)
    s = steady_state(lam, pixel_um=pixel_um, tol=1e-4, seed=0)
    if not s.converged:
        raise RuntimeError(f"chromatin forward solver did not converge on {n}x{n}")
    return lam, s.phi_d


def chromatin_config(network: str, backend: str, s: dict, seed: int, device: str):
    """The FitConfig of one chromatin row: identical for ``autograd`` and ``mollifier``
    (strong form, free field network pre-trained on the data, same test windows, rate prior,
    steps and seed) except ``derivative_backend``; ``WEAK_ANCHORED`` is chromarate's default
    formulation (weak form, anchored field) with the same networks, steps and seed."""
    from chromarate.config import FitConfig

    arch = "pirate" if network == "pirate" else "fourier_mlp"
    net = {"architecture": arch, "width": s["width"],
           "depth": s["blocks"] if arch == "pirate" else s["depth"],
           "fourier_features": s["fourier"], "fourier_scale_per_um": 3.0, "evaluation_stride": 1}
    # the rate network's frequencies relative to the box as in fit_rates' default on the
    # 2.56 um recovery nucleus (0.3 cycles/um there): a fixed 0.3 would make lambda nearly
    # linear across a 0.48 um box
    side_um = int(s["n"]) * PIXEL_UM
    cfg = {"seed": seed, "device": device, "uncertainty": {"ensemble": 1, "method": "seeds"},
           "training": {"steps": s["steps"], "log_every": max(int(s["steps"]) // 20, 1)},
           "mollifier": {"radius_px": s["radius"]},
           "prior": {"test_window_um": s["test_window_um"], "rate_smoothness": 1e-3,
                     "regularisation": "manual",
                     "rate_fourier_scale_per_um": 0.3 * 2.56 / side_um}}
    if backend == WEAK_ANCHORED:
        cfg["network"] = net
    else:
        cfg.update(residual_form="strong", derivative_backend=backend,
                   network={**net, "parameterization": "free"})
        cfg["training"]["pretrain_steps"] = s["pretrain"]
    return FitConfig.model_validate(cfg)


def fit_chromatin(network: str, backend: str, noise: float, seed: int, s: dict, *, target: float,
                  dev) -> dict:
    """One chromatin fit through ``chromarate.fit.loop.iter_fit``; metrics, times, history.

    The rate map is taken at every logged step through ``iter_fit``'s monitor and scored
    afterwards on the fit's trusted region. Times exclude the monitor: ``s_per_step`` is the
    Adam time between the first and the last logged step per step. The training time of a
    logged step counts the pre-training (free networks), the Adam steps up to the first
    logged step as ``s0 * s_per_step`` (estimated, not measured) and the measured time
    since; the set-up (for the anchored rows: the TV denoising of the anchor, well under a
    second here) is not counted. Time to target: see ``time_to_target``.
    """
    import numpy as np

    from chromarate._types import PhaseFields

    n = int(s["n"])
    lam, phi = chromatin_truth(n)
    rng = np.random.default_rng(1000 + seed)
    pd = phi + noise * float(np.ptp(phi)) * rng.standard_normal(phi.shape)
    fields = PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=np.ones((n, n), bool),
                         pixel_size_nm=PIXEL_UM * 1000)
    cfg = chromatin_config(network, backend, s, seed, str(dev))
    return {"seed": seed, **monitored_fit(fields, cfg, lam, target=target, device=str(dev))}


def time_to_target(hist, target: float):
    """Training time of the first logged step from which the correlation stays at or above
    ``target`` to the end (a brief spike does not count); None if it never does.
    ``hist``: ``[step, train_s, correlation]`` rows in step order."""
    t = None
    for _, train_s, c in hist:
        ok = c is not None and math.isfinite(c) and c >= target
        t = (train_s if t is None else t) if ok else None
    return t


def monitored_fit(fields, cfg, truth, *, target: float, device: str) -> dict:
    """Run ``iter_fit`` with a monitor that keeps the rate map of every logged step; score
    them afterwards on the fit's trusted region (see ``fit_chromatin`` for the times)."""
    import numpy as np

    from chromarate._types import FitDone
    from chromarate.fit.loop import iter_fit

    marks, cost = [], [0.0]

    def monitor(step, rate_map):
        t0 = time.perf_counter()
        marks.append((step, t0 - cost[0], rate_map()))
        cost[0] += time.perf_counter() - t0

    fit = None
    for ev in iter_fit(fields, cfg, device=device, monitor=monitor):
        if isinstance(ev, FitDone):
            fit = ev.result
    tr = fit.trusted & np.isfinite(fit.rate)

    def score(r):
        e, t = r[tr].astype(np.float64), truth[tr]
        rel = float(np.linalg.norm(e - t) / np.linalg.norm(t))
        return (float(np.corrcoef(e, t)[0, 1]) if np.ptp(e) > 0 else float("nan")), rel

    pre = float(fit.timings.get("pretrain", 0.0))
    (s0, t0, _), (s1, t1, _) = marks[0], marks[-1]
    per_step = ((t1 - t0) / (s1 - s0) if s1 > s0
                else (float(fit.timings["train"]) - pre - cost[0]) / max(cfg.training.steps, 1))
    hist = []
    for step, t, r in marks:
        c, _ = score(r)
        hist.append([step, pre + (t - t0) + s0 * per_step, c])
    corr, rel = score(fit.rate)
    return {"ok": True, "correlation": corr, "rel_l2": rel,
            "train_s": float(fit.timings["fit"]) - cost[0], "pretrain_s": pre, "s_per_step": per_step,
            "time_to_target_s": time_to_target(hist, target), "history": hist, "steps": int(cfg.training.steps),
            "collocation": int(tr.sum()), "grid": list(fit.rate.shape),
            "network": cfg.network.architecture, "config": cfg.model_dump(mode="json")}


def fit_one(kind: str, network: str, backend: str, noise: float, seed: int, s: dict, *,
            target: float, dev, dtype) -> dict:
    """Train one PINN; return metrics, times and the correlation history.

    Heat and Langevin: ``chromarate.fit.problems.fit_problem`` (the problem's plug-in, the
    package's training engine) with this table's settings; the rate is scored every
    ``steps/20`` steps through its monitor, outside the timed region.
    """
    import numpy as np

    from chromarate.errors import FitDivergedError
    from chromarate.fit.problems import fit_problem, get_plugin, interior_mask, metrics, problem_margin

    if kind == "chromatin":
        return fit_chromatin(network, backend, noise, seed, s, target=target, dev=dev)

    problem = get_plugin(kind).make(int(s["n"]), noise=noise, seed=seed)
    steps = int(s["steps"])
    interior = interior_mask(problem.shape, problem_margin(problem, float(s["radius"])))
    hist = []

    def monitor(step, train_s, rate_map):
        hist.append([step, train_s, metrics(rate_map(), problem.lambda_true, interior)[0]])

    fourier = int(s.get("fourier", 0))
    try:
        fit = fit_problem(problem, backend=backend,
                          network="pirate" if network == "pirate" else ("fourier" if fourier else "mlp"),
                          steps=steps, lr=float(s.get("lr", 5e-3)), seed=seed, radius_px=float(s["radius"]),
                          device=dev, dtype=dtype, width=int(s["width"]), depth=int(s["depth"]),
                          n_fourier=fourier, blocks=s.get("blocks"), residual_weight=s.get("res_weight"),
                          log_every=max(steps // 20, 1), monitor=monitor)
        ok, corr, rel, train_s = True, fit.correlation, fit.rel_l2, fit.train_s
    except FitDivergedError:
        ok, corr, rel = False, float("nan"), float("nan")
        train_s = hist[-1][1] if hist else 0.0
    return {"seed": seed, "ok": ok, "correlation": corr, "rel_l2": rel, "train_s": train_s,
            "s_per_step": train_s / max(len(hist) and hist[-1][0], 1), "time_to_target_s": time_to_target(hist, target),
            "history": hist, "steps": steps, "collocation": int(np.sum(interior)),
            "grid": list(problem.shape)}


def run_config(spec: dict) -> dict:
    """All seeds of one (problem, network, backend, noise); memory as described above."""
    import gc

    import torch

    dev = torch.device(spec.get("device", "cpu"))
    dtype = torch.float32
    if dev.type == "cpu":
        set_threads(spec.get("threads") or 1)
    kind, s = spec["problem"], spec["settings"]
    # warm-up on a tiny grid (lazy kernel initialisation is not counted)
    tiny = dict(MODES["tiny"][kind], steps=2)
    fit_one(kind, spec["network"], spec["backend"], 0.0, 0, tiny, target=2.0, dev=dev, dtype=dtype)
    if kind == "chromatin":
        chromatin_truth(s["n"])  # forward solve, not measured
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
    else:
        base = maxrss_mb()
    runs = []
    for seed in spec["seeds"]:
        try:
            runs.append(fit_one(kind, spec["network"], spec["backend"], spec["noise"], seed, s,
                                target=spec["target"], dev=dev, dtype=dtype))
        except (RuntimeError, MemoryError) as exc:
            runs.append({"seed": seed, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            break
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 - base
        mem_kind = "cuda.max_memory_allocated"
    else:
        peak = maxrss_mb() - base
        mem_kind = "ru_maxrss increase"
    return {**_ident(spec), "settings": s, "runs": runs, "peak_mb": peak, "memory": mem_kind}


def run_default(spec: dict) -> dict:
    """chromarate's own fit (FitConfig defaults, chosen architecture) on the recovery case."""
    import gc

    import numpy as np
    import torch

    from chromarate._types import PhaseFields
    from chromarate.config import FitConfig
    from chromarate.fit.loop import fit_rates
    from recovery import ellipse, steady

    dev = spec.get("device", "cpu")
    if dev == "cpu":
        set_threads(spec.get("threads") or 1)
    n = int(spec["size"])
    lam = _true_rate(n, PIXEL_UM)
    phi, _ = steady(n, PIXEL_UM, "box", None)
    mask = ellipse(n)
    span = float(np.ptp(phi[mask]))
    net = FitConfig().network.model_copy(update={"architecture": spec["architecture"]})

    def config(seed, steps=None):
        # pinned (FitConfig's defaults at commit ae04676, when docs/benchmarks.md was measured)
        # so that the rows stay reproducible if the defaults change
        base = FitConfig()
        training = {"log_every": max(int(steps or base.training.steps) // 20, 1)}
        if steps is not None:
            training["steps"] = steps
        prior = {"rate_smoothness": float(spec.get("rate_smoothness", 1e-3)),
                 "test_window_um": float(spec.get("test_window_um", 0.15)),
                 "regularisation": "manual"}
        return base.model_copy(update={
            "network": net, "seed": seed,
            "training": base.training.model_copy(update=training),
            "prior": base.prior.model_copy(update=prior)})

    def fields(level, seed):
        rng = np.random.default_rng(seed)
        pd = phi + level * span * rng.standard_normal(phi.shape)
        return PhaseFields(phi_w=0.6 - pd, phi_d=pd, mask=mask, pixel_size_nm=PIXEL_UM * 1000)

    small = fields(0.0, 0)
    fit_rates(PhaseFields(phi_w=small.phi_w[:48, :48], phi_d=small.phi_d[:48, :48],
                          mask=np.ones((48, 48), bool), pixel_size_nm=10.0), config(0, 1), device=dev)
    gc.collect()
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = maxrss_mb()
    runs = []
    for seed in spec["seeds"]:
        runs.append({"seed": seed, **monitored_fit(fields(spec["noise"], seed),
                                                   config(seed, spec.get("steps")), lam,
                                                   target=float(spec.get("target", 0.9)), device=dev)})
    peak = (torch.cuda.max_memory_allocated() / 2**20 - base if dev.startswith("cuda")
            else maxrss_mb() - base)
    return {"problem": "chromatin", "network": spec["architecture"], "backend": "chromarate fit_rates",
            "noise": spec["noise"], "settings": {"n": n, "steps": spec.get("steps") or FitConfig().training.steps},
            "runs": runs, "peak_mb": peak, "config": config(0, spec.get("steps")).model_dump(mode="json"),
            "memory": "cuda.max_memory_allocated" if dev.startswith("cuda") else "ru_maxrss increase"}


# --------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------

def run_child(spec: dict, timeout: float) -> dict:
    return child_result(__file__, spec, timeout, tail_lines=4,
                        on_failure=lambda f: {**_ident(spec), "runs": [], "error": f["message"]})


def _ident(spec):
    if spec.get("kind") == "default":
        return {"problem": "chromatin", "network": spec["architecture"],
                "backend": "chromarate fit_rates", "noise": spec["noise"]}
    ident = {k: spec[k] for k in ("problem", "network", "backend", "noise")}
    if spec["problem"] == "chromatin" and spec["network"] == "mlp":
        ident["network"] = "fourier_mlp"  # the chromatin rows run fit_rates' networks
    return ident


def summarise(row: dict) -> dict:
    import numpy as np

    runs = [r for r in row.get("runs", []) if r.get("ok")]
    out = {**{k: row[k] for k in ("problem", "network", "backend", "noise")},
           "n_ok": len(runs), "n_seeds": len(row.get("runs", [])), "peak_mb": row.get("peak_mb"),
           "error": row.get("error") or next((r.get("error") for r in row.get("runs", [])
                                              if r.get("error")), None)}
    for key in ("correlation", "rel_l2", "train_s", "s_per_step"):
        v = np.array([r[key] for r in runs], dtype=float)
        v = v[np.isfinite(v)]
        out[key] = float(np.median(v)) if v.size else None
        out[key + "_min"] = float(v.min()) if v.size else None
        out[key + "_max"] = float(v.max()) if v.size else None
    tt = [r.get("time_to_target_s") for r in runs]
    hit = [t for t in tt if t is not None]
    out["target_hits"] = len(hit)
    out["time_to_target_s"] = float(np.median(hit)) if hit else None
    if runs:
        out["collocation"] = runs[0].get("collocation")
        out["grid"] = runs[0].get("grid")
    return out


def _f(x, spec, none="-"):
    return none if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def markdown(summary: list[dict], meta: dict) -> str:
    lines = [f"Mode `{meta['mode']}`, device {meta['device']}, {meta['machine']}; correlation target "
             f"{meta['target']}; median over seeds {meta['seeds']} (range in brackets). Peak memory: "
             f"{meta['memory']}.", ""]
    lines.append("| problem (order) | network | backend | noise | grid / collocation | steps | "
                 "Pearson r | rel. L2 | wall s | s/step | time to r >= target | peak MB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in summary:
        prob = f"{r['problem']} ({ORDER[r['problem']]})"
        if r["n_ok"] == 0:
            lines.append(f"| {prob} | {r['network']} | {r['backend']} | {r['noise']:.0%} | - | - | "
                         f"FAILED: {str(r.get('error'))[:80]} | | | | | |")
            continue
        g = r.get("grid") or []
        grid = ("x".join(str(v) for v in g)) + f" / {r.get('collocation')}"
        corr = f"{_f(r['correlation'], '.3f')} [{_f(r['correlation_min'], '.3f')}, {_f(r['correlation_max'], '.3f')}]"
        if r["target_hits"] == 0:
            ttt = "missed"
        else:
            ttt = f"{_f(r['time_to_target_s'], '.2f')} s ({r['target_hits']}/{r['n_ok']} seeds)"
        lines.append(f"| {prob} | {r['network']} | {r['backend']} | {r['noise']:.0%} | {grid} | "
                     f"{r.get('steps', '-')} | {corr} | {_f(r['rel_l2'], '.3f')} | "
                     f"{_f(r['train_s'], '.1f')} | {_f(r['s_per_step'], '.4f')} | {ttt} | "
                     f"{_f(r['peak_mb'], ',.1f')} |")
    lines.append("")
    lines.append("Ratios autograd / mollifier at equal collocation points, steps and seeds "
                 "(median Adam s/step, peak MB):")
    lines.append("")
    lines.append("| problem | network | noise | mollifier row | time ratio | memory ratio |")
    lines.append("|---|---|---|---|---|---|")
    for a in summary:
        if a["backend"] != "autograd" or not a["n_ok"]:
            continue
        for m in summary:
            if m["backend"] not in ("mollifier", WEAK_ANCHORED) or not m["n_ok"] or \
                    any(m[k] != a[k] for k in ("problem", "network", "noise")):
                continue
            tr = (a["s_per_step"] / m["s_per_step"]) if a["s_per_step"] and m["s_per_step"] else None
            mr = (a["peak_mb"] / m["peak_mb"]) if a["peak_mb"] and m["peak_mb"] and m["peak_mb"] > 0 \
                else None
            lines.append(f"| {a['problem']} | {a['network']} | {a['noise']:.0%} | {m['backend']} | "
                         f"{_f(tr, '.1f')}x | {_f(mr, '.1f')}x |")
    return "\n".join(lines) + "\n"


def _sorted_summary(rows: list[dict]) -> list[dict]:
    summ = [dict(summarise(r), steps=(r.get("settings") or {}).get("steps")) for r in rows]
    order = {p: i for i, p in enumerate(PROBLEMS)}
    summ.sort(key=lambda r: (order[r["problem"]], r["noise"], r["network"],
                             ["autograd", "mollifier", WEAK_ANCHORED, "chromarate fit_rates"].index(r["backend"])))
    return summ


def _render(report: dict, out: Path) -> int:
    summ = _sorted_summary(report["rows"])
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "paper_table.json", {**report, "summary": summ}, indent=1, default=float)
    (out / "paper_table.md").write_text(markdown(summ, report["meta"]))
    print(markdown(summ, report["meta"]))
    return 0


def main(argv=None) -> int:
    ap = parser(__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="CPU mode, about 13 min on 2 cores (default)")
    g.add_argument("--full", action="store_true", help="larger grids, more steps and seeds (GPU)")
    g.add_argument("--tiny", action="store_true", help="smoke test: tiny sizes, a few steps")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    ap.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    ap.add_argument("--target", type=float, default=0.9, help="correlation target (default 0.9)")
    ap.add_argument("--jobs", type=int, default=2, help="CPU child processes at a time (default 2)")
    add_threads_option(ap, help="torch threads per CPU child")
    ap.add_argument("--in-process", action="store_true",
                    help="run every configuration in this process (always so on CUDA; on CPU "
                         "the ru_maxrss peaks then accumulate over configurations)")
    ap.add_argument("--no-default", action="store_true", help="skip the chromarate-default rows")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no new configuration after this many seconds (GPU script)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--render", type=Path, default=None,
                    help="only re-summarise an existing paper_table.json into <out>")
    args = parse_args(ap, argv, lambda spec: run_default(spec) if spec.get("kind") == "default"
                      else run_config(spec))
    if args.render is not None:
        old = json.loads(args.render.read_text())
        return _render(old, args.out)

    mode = "full" if args.full else "tiny" if args.tiny else "quick"
    M = MODES[mode]
    t_start = time.perf_counter()
    import torch

    cuda = args.device.startswith("cuda")
    gpu = torch.cuda.get_device_name(0) if cuda else None
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
               f"torch {torch.__version__}" + (f", GPU {gpu}" if gpu else ""))
    specs = []
    for kind in args.problems:
        for noise in M["noises"]:
            for net in args.networks:
                for be in BACKENDS + ((WEAK_ANCHORED,) if kind == "chromatin" else ()):
                    specs.append({"problem": kind, "network": net, "backend": be, "noise": noise,
                                  "settings": M[kind], "seeds": M["seeds"], "target": args.target,
                                  "device": args.device, "threads": args.threads})
    if "chromatin" in args.problems and not args.no_default:
        arch = {"mlp": "fourier_mlp", "pirate": "pirate"}
        for noise in M["noises"]:
            for net in args.networks:
                specs.append({"kind": "default", "architecture": arch[net], "noise": noise,
                              "target": args.target,
                              "size": M["default_size"], "steps": M["default_steps"],
                              "seeds": M["default_seeds"], "device": args.device,
                              "threads": args.threads})
    say(f"paper_table: mode {mode}, {len(specs)} configurations, device {args.device}; {machine}")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"mode": mode, "device": args.device, "machine": machine, "target": args.target,
            "seeds": M["seeds"], "settings": {k: M[k] for k in PROBLEMS}, "default_size": M["default_size"],
            "memory": ("torch.cuda.max_memory_allocated per configuration" if cuda else
                       "increase of ru_maxrss of one child process per configuration (all its seeds)"),
            "jobs": 1 if cuda or args.in_process else args.jobs, "threads": args.threads,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows: list[dict] = []
    skipped: list[dict] = []

    def write():
        summ = _sorted_summary(rows)
        meta["wall_s"] = time.perf_counter() - t_start
        write_json(args.out / "paper_table.json",
                   {"meta": meta, "summary": summ, "rows": rows, "skipped": skipped},
                   indent=1, default=float)
        (args.out / "paper_table.md").write_text(markdown(summ, meta))
        return summ

    def report(r):
        s = summarise(r)
        say(f"  {s['problem']:9s} {s['network']:6s} {s['backend']:18s} noise {s['noise']:.2f}: "
            f"r {_f(s['correlation'], '.3f')}, relL2 {_f(s['rel_l2'], '.3f')}, "
            f"{_f(s['s_per_step'], '.4f')} s/step, peak {_f(s['peak_mb'], ',.1f')} MB"
            + (f"  ERROR {s['error']}" if s.get("error") else ""))

    if cuda or args.in_process:
        # most important first, so that a --budget-s cut drops the cheap low-order problems
        rank = {"chromatin": 0, "heat": 2, "langevin": 3}
        specs.sort(key=lambda s: 1 if s.get("kind") == "default" else rank[s["problem"]])
        for spec in specs:
            if args.budget_s and time.perf_counter() - t_start > args.budget_s:
                skipped.append(_ident(spec))
                continue
            try:
                r = run_default(spec) if spec.get("kind") == "default" else run_config(spec)
            except Exception as exc:  # keep going; the table says what failed
                r = {**_ident(spec), "runs": [], "error": f"{type(exc).__name__}: {exc}"}
            rows.append(r)
            report(r)
            write()
    else:
        # the heaviest children first so that the two workers finish together
        specs.sort(key=lambda s: (s.get("kind") != "default", s.get("backend") != "autograd"
                                  or s["problem"] != "chromatin"))
        with ThreadPoolExecutor(max(args.jobs, 1)) as ex:
            futs = [ex.submit(lambda sp: None if (args.budget_s and time.perf_counter() - t_start
                                                  > args.budget_s) else run_child(sp, 3600), sp)
                    for sp in specs]
            for sp, fut in zip(specs, futs):
                r = fut.result()
                if r is None:
                    skipped.append(_ident(sp))
                    continue
                rows.append(r)
                report(r)
                write()
    summ = write()
    if skipped:
        say(f"not run (budget): {len(skipped)} configuration(s)")
    say("")
    say(markdown(summ, meta))
    say(f"wrote {args.out / 'paper_table.json'} and {args.out / 'paper_table.md'} "
        f"({time.perf_counter() - t_start:.0f} s)")
    return 0 if all(s["n_ok"] > 0 for s in summ) else 1


if __name__ == "__main__":
    sys.exit(main())
