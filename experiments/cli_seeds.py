"""`chromarate simulate --seed N` + the default pipeline, for several seeds.

What a new user does first: simulate a nucleus with a known rate map (the same settings as
``chromarate simulate --seed N``, 256 x 256 at 20 nm, 250k localizations) and run the
default pipeline on it. Prints, per seed, the correlation of the inferred map with the
truth over the trusted interior, the bias of its mean, the quality-gate status and the
density-scale calibration and rate prior that were chosen.

Usage::

    python experiments/cli_seeds.py --seeds 1 2 3 4 5 --out experiments/results/cli_seeds.json

Simulations are cached (``--cache``, default a folder under the temp dir), since the
forward solver takes one to three minutes per nucleus on two cores.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from unittest import mock
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_threads_option, override_pair, parser, set_threads, write_json  # noqa: E402


def _simulate(seed: int, cache: Path, localizations: int | None = None):
    """(localizations, truth) of ``chromarate simulate --seed N``, cached in ``cache``;
    ``localizations``: draw that many instead of the default (the same rate map and steady
    state, another draw)."""
    from chromarate.config import SimulateConfig
    from chromarate.data import simulate_nucleus
    from chromarate.io.localizations import read_localizations, write_thunderstorm_csv
    from chromarate.io.truth import read_truth, write_truth

    stem = f"seed{seed}" if localizations is None else f"seed{seed}-n{localizations}"
    csv, truth = cache / f"{stem}.csv.gz", cache / f"{stem}.truth.npz"
    if not (csv.is_file() and truth.is_file()):
        # the settings of `chromarate simulate --seed N` (256 px at 20 nm)
        extra = {} if localizations is None else {"n_localizations": int(localizations)}
        cfg = SimulateConfig(shape=(256, 256), pixel_size_nm=20.0, seed=seed, **extra)
        syn = simulate_nucleus(cfg)
        write_thunderstorm_csv(syn.localizations, csv)
        write_truth(truth, rate=syn.rate, phi_w=syn.phi_w, phi_d=syn.phi_d, mask=syn.mask,
                    pixel_size_nm=syn.pixel_size_nm, origin_nm=syn.origin_nm, meta=syn.meta)
    return read_localizations(csv), read_truth(truth)


def run_seed(seed: int, cache: Path, overrides: dict | None = None,
             localizations: int | None = None) -> dict:
    """Simulate (or load) one seed, run the default pipeline, score the largest nucleus
    (``localizations``: see :func:`_simulate`)."""
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.config import PipelineConfig
    from chromarate.pipeline import NucleusResult, Pipeline

    locs, truth = _simulate(seed, cache, localizations)
    t0 = time.perf_counter()
    from chromarate.config import with_overrides

    cfg = with_overrides(PipelineConfig(), overrides) if overrides else PipelineConfig()
    results = [r for r in Pipeline(cfg).run(locs) if isinstance(r, NucleusResult)]
    seconds = time.perf_counter() - t0
    if not results:
        return {"seed": seed, "status": "failed", "seconds": seconds}
    nr = max(results, key=lambda r: int(r.fields.mask.sum()))
    fit, stack = nr.fit, nr.stack
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=fit.rate.shape,
                            pixel_nm=stack.pixel_size_nm, origin_nm=stack.origin_nm)
    sel = fit.trusted & np.isfinite(fit.rate) & np.isfinite(true)
    qc = stack.provenance.get("qc") or {}
    cal = nr.fields.meta.get("calibration") or {}
    coverage = float("nan")
    if fit.rate_std is not None:  # nominal 90 % interval, as the suite scores it
        from chromarate.validation.scoring import Z90

        sd = np.asarray(fit.rate_std, dtype=np.float64)[sel]
        ok = np.isfinite(sd)
        if ok.any():
            coverage = float(np.mean(np.abs(fit.rate[sel][ok] - true[sel][ok]) <= Z90 * sd[ok]))
    return {
        "seed": seed,
        "r": float(np.corrcoef(fit.rate[sel], true[sel])[0, 1]),
        "bias": float(fit.rate[sel].mean() / true[sel].mean() - 1.0),
        "rate_mean": float(fit.rate[sel].mean()), "true_mean": float(true[sel].mean()),
        "status": qc.get("status"), "reasons": qc.get("reasons"),
        "qc_metrics": qc.get("metrics"),
        "calibration_scale": cal.get("scale"),
        "calibration_level_factor": cal.get("level_factor"),
        "calibration_level_ratio": cal.get("level_ratio"),
        "calibration_level_share": cal.get("level_share"),
        "calibration_level_skipped": cal.get("level_skipped"),
        "coverage90": coverage, "rate_std_source": fit.meta.get("rate_std_source"),
        "regularisation": fit.meta.get("regularisation"),
        "seconds": seconds,
    }


def main(argv=None) -> None:
    """Run the seeds given on the command line and print (and write) their rows."""
    ap = parser(__doc__, first="line")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                    help="config settings on top of the defaults (for studies)")
    ap.add_argument("--strong-smoothness", type=float, default=None, metavar="S",
                    help="for studies: the rate_smoothness at the strong end of the per-nucleus "
                         "prior (chromarate.fit.regularise.STRONG; the default's is 1.0)")
    ap.add_argument("--localizations", type=int, default=None, metavar="N",
                    help="for studies: draw N localizations instead of 250k (same truth)")
    ap.add_argument("--strong-window", type=float, default=None, metavar="UM",
                    help="for studies: the test window (um) at the strong end of the per-nucleus "
                         "prior (the default's is 0.3)")
    ap.add_argument("--flux-balance", action="store_true",
                    help="for studies: the fitting problem's balance estimate (its prior and the "
                         "auto rule's figures; the gate and the interval keep the plain one) with "
                         "the flux through the window's edge put back (experiments/"
                         "balance_window.py's flux_balance, on the render.pixel_size_nm grid)")
    add_threads_option(ap, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    args.overrides = dict(override_pair(o) for o in args.override)
    set_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    study = contextlib.ExitStack()
    if args.strong_smoothness is not None or args.strong_window is not None:
        from chromarate.fit import regularise

        smooth, window = regularise.STRONG
        study.enter_context(mock.patch.object(regularise, "STRONG", (
            smooth if args.strong_smoothness is None else float(args.strong_smoothness),
            window if args.strong_window is None else float(args.strong_window))))
    if args.flux_balance:
        study.enter_context(_flux_balance_patch(args.overrides))
    with study:
        rows = _run_seeds(args)
    rs = [r["r"] for r in rows if "r" in r]
    bs = [abs(r["bias"]) for r in rows if "bias" in r]
    if rs:
        print(f"median r {np.median(rs):.3f}, min r {np.min(rs):.3f}; "
              f"median |bias| {np.median(bs):.1%}, worst |bias| {np.max(bs):.1%}")
    if args.out:
        write_json(args.out, rows, indent=1, default=float)


def _flux_balance_patch(overrides: dict):
    """Patch the fitting problem's balance estimate with the flux-corrected one, on the
    grid the pipeline renders (``render.pixel_size_nm`` of the config the seeds run)."""
    from balance_window import flux_balance

    import chromarate.fit.chromatin_problem as problem
    from chromarate.config import PipelineConfig, with_overrides

    cfg = with_overrides(PipelineConfig(), overrides) if overrides else PipelineConfig()
    pixel_um = float(cfg.render.pixel_size_nm) / cfg.render.supersample / 1000.0

    def corrected(phi_h, phi_e, mask, sigma_px):
        return flux_balance(phi_h, phi_e, mask, sigma_px, pixel_um)

    return mock.patch.object(problem, "balance_rate", corrected)


def _run_seeds(args) -> list[dict]:
    """One row per seed of ``args.seeds``, each printed as it is done."""
    rows = []
    print(f"{'seed':>4} {'r':>7} {'bias':>7} {'mean':>6} {'true':>6} {'scale':>6} "
          f"{'prior':>7} {'window':>6} {'cov90':>5} {'seconds':>7}  status")
    for seed in args.seeds:
        row = run_seed(seed, args.cache, args.overrides, localizations=args.localizations)
        for key in ("strong_smoothness", "strong_window", "localizations"):
            if getattr(args, key) is not None:
                row[key] = float(getattr(args, key))
        if args.flux_balance:
            row["flux_balance"] = True
        rows.append(row)
        reg = row.get("regularisation") or {}
        print(f"{seed:>4} {row.get('r', np.nan):>7.3f} {row.get('bias', np.nan):>+7.1%} "
              f"{row.get('rate_mean', np.nan):>6.3f} {row.get('true_mean', np.nan):>6.3f} "
              f"{row.get('calibration_scale') or np.nan:>6.3f} "
              f"{reg.get('rate_smoothness', np.nan):>7.3g} {reg.get('test_window_um', np.nan):>6.3g} "
              f"{row.get('coverage90', np.nan):>5.2f} {row['seconds']:>7.1f}  "
              f"{row['status']} {'; '.join(row.get('reasons') or [])}",
              flush=True)
    return rows


if __name__ == "__main__":
    main()
