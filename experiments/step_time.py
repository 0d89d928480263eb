"""Time of one training step of the default fit on the sample nucleus: this tree against a baseline.

Builds the default problem exactly as the default pipeline does (render -> denoise ->
segment -> crop -> calibrated phase fields of the bundled sample nucleus, then
``choose_regularisation`` and ``chromarate.fit.loop._Problem`` with the default
``FitConfig``), and times training steps (loss forward, backward, Adam and the learning-rate
schedule, as in the training loop, through the fit's training engine
``chromarate.fit.engine.iter_train``) with the code of this checkout and with the code of an
earlier commit checked out into a temporary git worktree (a commit from before the engine
steps through this checkout's engine, loaded into its package). Each run is a fresh
interpreter with the same torch thread count; the two trees alternate (A/B/A/B...), so the
ratio of their medians holds on a loaded machine where absolute times do not.

With ``--profile K`` each tree is also profiled over K steps (``torch.profiler``, one more
child each) and the operators that cost most are printed. With ``--fit-steps N`` each tree
also runs ``fit_rates`` (default configuration, ``steps=N``, same seed) on the same fields
and the two rate maps are compared on the nucleus.

Usage::

    python experiments/step_time.py                       # baseline d24bee0, 20 steps, 3 runs each
    python experiments/step_time.py --baseline HEAD --steps 10 --repeats 2 --profile 5 --fit-steps 20
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: Commit of the issue's measurement (661 ms per step): the code before this optimisation.
DEFAULT_BASELINE = "d24bee0"


# --------------------------------------------------------------------------------------
# child
# --------------------------------------------------------------------------------------

def _prepare(out: str) -> dict:
    """Phase fields of the sample nucleus, as ``Pipeline.iter_nucleus`` computes them."""
    import numpy as np

    from chromarate.config import PipelineConfig
    from chromarate.data import sample_paths
    from chromarate.io import read_localizations
    from chromarate.pipeline import NucleusTask, Pipeline
    try:  # its own module since the pipeline's helpers were split out (older trees: pipeline)
        from chromarate.calibrated_phase import calibrated_phase_fields
    except ImportError:
        from chromarate.pipeline import calibrated_phase_fields

    cfg = PipelineConfig()
    locs = read_localizations(sample_paths()[0])
    tasks = [e for e in Pipeline(cfg).iter_prepare(locs) if isinstance(e, NucleusTask)]
    if not tasks:
        raise SystemExit("the pipeline found no nucleus in the sample")
    try:  # the density less its background, as iter_nucleus maps it (older trees: none)
        from chromarate.pipeline import phase_density
    except ImportError:
        def phase_density(task):
            return task.denoised
    f = calibrated_phase_fields(phase_density(tasks[0]), tasks[0].mask, cfg)
    np.savez(out, phi_w=f.phi_w, phi_d=f.phi_d, mask=f.mask, pixel=f.pixel_size_nm,
             origin=np.asarray(f.origin_nm, float))
    return {"shape": list(f.phi_d.shape), "pixel_nm": float(f.pixel_size_nm),
            "nucleus_px": int(np.count_nonzero(f.mask))}


def _field_net_class():
    """``_FieldNet`` of the imported tree (it may live in the loop or in an engine module)."""
    import importlib

    for mod in ("chromarate.fit.loop", "chromarate.fit.engine"):
        try:
            cls = getattr(importlib.import_module(mod), "_FieldNet", None)
        except ImportError:
            cls = None
        if cls is not None:
            return cls
    raise SystemExit("no _FieldNet in chromarate.fit.loop or chromarate.fit.engine")


def _engine():
    """``chromarate.fit.engine`` of the imported tree; for a tree from before the engine
    (such as the default baseline) this checkout's engine module, loaded into that tree's
    package (it needs only ``chromarate.errors.FitDivergedError``). Either way a step is the
    engine's: the two trees differ in their problem and loss, not in the optimiser loop."""
    import importlib
    import importlib.util

    name = "chromarate.fit.engine"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
    spec = importlib.util.spec_from_file_location(name, ROOT / "chromarate" / "fit" / "engine.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _group(config, name: str):
    """Settings group ``name`` ("training", "prior") of the imported tree's FitConfig; trees
    before the groups (config version 1) hold the same keys flat on the config itself."""
    return getattr(config, name, config)


def _child(spec: dict) -> dict:
    """Time ``spec["steps"]`` training steps of the default problem (or profile them)."""
    import numpy as np
    import torch

    torch.set_num_threads(int(spec["threads"]))
    import chromarate
    from chromarate._types import PhaseFields
    from chromarate.config import FitConfig
    from chromarate.device import resolve_device, resolve_dtype
    from chromarate.fit.loop import _Problem
    from chromarate.fit.networks import RateNetwork
    from chromarate.fit.regularise import choose_regularisation

    if spec.get("prepare"):
        return {"package": chromarate.__file__, **_prepare(spec["fields"])}
    z = np.load(spec["fields"])
    fields = PhaseFields(phi_w=z["phi_w"], phi_d=z["phi_d"], mask=z["mask"],
                         pixel_size_nm=float(z["pixel"]), origin_nm=tuple(z["origin"]))
    if spec.get("fit_steps"):
        from chromarate.fit.loop import fit_rates

        t0 = time.perf_counter()
        n = int(spec["fit_steps"])
        grouped = "training" in FitConfig.model_fields  # else a tree of config version 1
        res = fit_rates(fields, FitConfig(training={"steps": n}) if grouped else FitConfig(steps=n),
                        device="cpu")
        np.save(spec["rate_out"], res.rate)
        return {"package": chromarate.__file__, "fit_s": time.perf_counter() - t0,
                "steps": res.history["step"][-1] if res.history["step"] else 0}
    t0 = time.perf_counter()
    config, _chosen = choose_regularisation(fields, FitConfig())
    t_reg = time.perf_counter() - t0
    dev, dtype = resolve_device("cpu"), resolve_dtype(config.dtype)
    t0 = time.perf_counter()
    prob = _Problem(fields, config, dev, dtype)
    t_prob = time.perf_counter() - t0
    # the networks and optimiser of the training loop (_train_member)
    gen = torch.Generator().manual_seed(int(config.seed))
    field_net = _field_net_class()(prob.base, config, gen).to(device=dev, dtype=dtype)
    rate_net = RateNetwork(initial_rate=prob.initial_rate, width=32, depth=2,
                           n_fourier=_group(config, "prior").rate_fourier_features,
                           scale_per_um=_group(config, "prior").rate_fourier_scale_per_um,
                           generator=gen).to(device=dev, dtype=dtype)
    # one training step of the fit's engine per event: the parameter groups and the cosine
    # schedule (over fit.training.steps) of the training loop, no early stop; the loss of each step
    # on the full window
    engine = _engine()
    training = _group(config, "training")
    groups = [engine.ParamGroup(list(field_net.parameters()), training.learning_rate),
              engine.ParamGroup(list(rate_net.parameters()),
                                training.learning_rate * training.rate_learning_rate_factor)]
    window = prob.full_window()
    events = engine.iter_train(groups, lambda _step: prob.losses(field_net, rate_net, window)[:2],
                               engine.TrainSettings(steps=training.steps, log_every=1))
    needed = int(spec["warmup"]) + int(spec.get("profile") or spec["steps"])
    if needed > training.steps:
        raise SystemExit(f"{needed} steps asked for, the default fit trains {training.steps}")
    losses: list[float] = []

    def step() -> None:
        losses.append(next(events).loss)

    for _ in range(int(spec["warmup"])):
        step()
    out = {"package": chromarate.__file__, "regularisation_s": t_reg, "problem_s": t_prob,
           "grid": [prob.grid.ny, prob.grid.nx], "halo": prob.halo, "stride": prob.stride,
           "dtype": str(dtype), "threads": torch.get_num_threads()}
    if spec.get("profile"):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(int(spec["profile"])):
                step()
        rows = []
        for ev in prof.key_averages():
            rows.append((ev.key, ev.self_cpu_time_total / 1e3, ev.count))
        rows.sort(key=lambda r: -r[1])
        total_ms = sum(r[1] for r in rows)
        out["profile"] = {"steps": int(spec["profile"]), "total_ms": total_ms,
                          "top": rows[:int(spec.get("top", 15))]}
        return out
    times = []
    for _ in range(int(spec["steps"])):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out.update(step_ms=[1e3 * t for t in times], median_ms=1e3 * statistics.median(times),
               losses=losses)
    return out


# --------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------

def _run(tree: Path, spec: dict, timeout: float) -> dict:
    """One child with the package of ``tree`` first on the path; checks where it came from."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    res, failure = H.call_child(__file__, spec, timeout, env=env)
    if failure is not None:
        raise SystemExit(f"child for {tree} failed: {failure['message']}")
    if not Path(res["package"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the child imported {res['package']}, not the tree {tree}")
    return res


def _print_profile(name: str, prof: dict) -> None:
    n = prof["steps"]
    H.say(f"profile {name}: {prof['total_ms'] / n:.1f} ms/step of operator self time "
          f"({n} steps), top operators:")
    for key, ms, count in prof["top"]:
        H.say(f"    {key:<45} {ms / n:8.2f} ms/step  {100 * ms / prof['total_ms']:5.1f} %  "
              f"{count / n:5.1f} calls/step")


def main(argv=None) -> None:
    ap = H.parser(__doc__)
    H.add_threads_option(ap)
    H.add_json_option(ap)
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit to compare with")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per tree (default 3)")
    ap.add_argument("--profile", type=int, default=0,
                    help="also profile this many steps in each tree (default 0: no profile)")
    ap.add_argument("--top", type=int, default=15, help="operators listed per profile")
    ap.add_argument("--fit-steps", type=int, default=0,
                    help="also compare the rate maps of a fit_rates run with this many steps "
                         "(default 0: no fit)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per child")
    args = H.parse_args(ap, argv, _child)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                        args.baseline], check=True, capture_output=True)
        try:
            fields = str(Path(tmp) / "fields.npz")
            common = {"threads": args.threads, "fields": fields, "warmup": args.warmup,
                      "steps": args.steps}
            prep = _run(ROOT, {**common, "prepare": True}, args.timeout)
            H.say(f"sample nucleus crop {prep['shape'][0]}x{prep['shape'][1]} px "
                  f"({prep['nucleus_px']} px in the nucleus), pixel {prep['pixel_nm']:g} nm; "
                  f"baseline {args.baseline}, {args.threads} thread(s), {args.warmup} warm-up + "
                  f"{args.steps} timed steps per run")
            runs: dict[str, list] = {"baseline": [], "current": []}
            trees = (("baseline", base), ("current", ROOT))
            for i in range(args.repeats):
                for name, tree in trees:
                    r = _run(tree, common, args.timeout)
                    runs[name].append(r)
                    H.say(f"run {i + 1} {name:>8}: median {r['median_ms']:7.1f} ms/step "
                          f"(min {min(r['step_ms']):.1f}; set-up: regularisation "
                          f"{r['regularisation_s']:.2f} s, problem {r['problem_s']:.2f} s; "
                          f"grid {r['grid'][0]}x{r['grid'][1]}, halo {r['halo']}, stride "
                          f"{r['stride']}, {r['dtype']}) loss after {len(r['losses'])} steps "
                          f"{r['losses'][-1]:.6g}")
            profiles = {}
            if args.profile:
                for name, tree in trees:
                    profiles[name] = _run(tree, {**common, "profile": args.profile,
                                                 "top": args.top}, args.timeout)["profile"]
                    _print_profile(name, profiles[name])
            fit_cmp = None
            if args.fit_steps:
                import numpy as np

                maps = {}
                for name, tree in trees:
                    out = str(Path(tmp) / f"rate_{name}.npy")
                    r = _run(tree, {**common, "fit_steps": args.fit_steps, "rate_out": out},
                             args.timeout)
                    maps[name] = np.load(out)
                    H.say(f"fit_rates {name}: {r['steps']} steps in {r['fit_s']:.1f} s")
                a, b = maps["current"], maps["baseline"]
                inside = np.isfinite(a) & np.isfinite(b)
                same_nan = bool(np.array_equal(np.isfinite(a), np.isfinite(b)))
                diff = np.abs(a[inside] - b[inside])
                fit_cmp = {"steps": args.fit_steps, "max_abs": float(diff.max()),
                           "max_rel": float((diff / np.abs(b[inside])).max()),
                           "rel_to_max": float(diff.max() / np.abs(b[inside]).max()),
                           "same_nucleus": same_nan}
                H.say(f"rate maps current vs baseline ({args.fit_steps} steps, same seed): "
                      f"largest difference {fit_cmp['max_abs']:.2e} "
                      f"({fit_cmp['max_rel']:.2e} relative at worst pixel, "
                      f"{fit_cmp['rel_to_max']:.2e} of the largest rate); same NaN pattern: "
                      f"{same_nan}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           capture_output=True)
    med = {k: statistics.median(r["median_ms"] for r in v) for k, v in runs.items()}
    ratio = med["current"] / med["baseline"]
    H.say(f"median ms/step: baseline {med['baseline']:.1f}, current {med['current']:.1f}; "
          f"ratio current/baseline {ratio:.3f}")
    first = {k: v[0]["losses"] for k, v in runs.items()}
    rel = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(first["current"], first["baseline"]))
    H.say(f"largest relative loss difference over the {len(first['current'])} steps of run 1: "
          f"{rel:.2e}")
    if args.json:
        H.write_json(args.json, {"baseline": args.baseline, "threads": args.threads,
                                 "runs": runs, "median_ms": med, "ratio": ratio,
                                 "loss_rel_diff": rel, "profiles": profiles,
                                 "fit_comparison": fit_cmp}, indent=1)


if __name__ == "__main__":
    main()
