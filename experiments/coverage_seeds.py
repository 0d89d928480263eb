"""Which noise figure makes the 90 % interval right on `chromarate simulate --seed N` nuclei.

Before this study the default pipeline's ``rate_std`` on a localization input was the larger
of two noise figures, each in quadrature with the fit's smoothing bias: the closed form's
noise measured by two independent halves of the localizations, and the fit's RMS
disagreement with the closed form. On the `simulate` seeds the fit follows the balance
prior and is far less noisy than the closed form, so that interval covered nearly every
pixel. This study runs the default pipeline once per seed (cached simulations, as
``experiments/cli_seeds.py``), keeps the pieces the pipeline computed, and scores the
coverage of the nominal 90 % interval built from:

- ``current``: the pipeline's ``rate_std`` (now ``nearest`` where the fit followed the
  balance at full strength, ``previous`` elsewhere, with the calibration term:
  :func:`chromarate.rate_interval.with_split_half_std` and
  :func:`chromarate.rate_interval.with_calibration_std`);
- ``previous``: the rule before, the larger of ``closed_halves`` and ``own``;
- ``closed_halves``: the closed-form halves' noise and the bias, without the disagreement;
- ``own``: the fit's own single-fit interval (disagreement with the closed form and bias);
- ``balance_both``: the balance halves' noise (the maps the quality gate compares when the
  fit followed the balance prior at full strength) or the fit's RMS disagreement with the
  whole data's balance map, the larger, and the bias;
- ``nearest``: for each of the two estimators (closed form; balance, where the rate prior is
  the balance, at any strength) the larger of its halves' noise and the fit's RMS disagreement with it, and
  of the two the smaller, pixel by pixel (the estimator the fit stays nearest to), with the
  bias (:func:`chromarate.fit.uncertainty.nearest_estimator_noise`);
- ``follow``: ``balance_both`` where the fit followed the balance at full strength (the
  maps the quality gate compares), else ``previous``;
- ``*_cal``: the variant with the calibration term in quadrature
  (``chromarate.fit.uncertainty.CALIBRATION_REL_STD`` times the rate).

and prints the decomposition of the fit's error into its mean offset over the trusted
pixels and the rest (RMS), the median of each noise figure and the bias of the mean of the
fit, the closed form and the balance estimate.

Usage::

    python experiments/coverage_seeds.py --seeds 0 1 2 3 4 5 \\
        --out experiments/results/coverage_seeds_dev.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_threads_option, parser, set_threads, write_json  # noqa: E402
from cli_seeds import _simulate  # noqa: E402

VARIANTS = ("current", "previous", "closed_halves", "own", "balance_both", "nearest",
            "follow", "previous_cal", "follow_cal", "nearest_cal")


def run_seed(seed: int, cache: Path) -> dict:
    """Run the default pipeline on one cached seed and score every variant."""
    return {"seed": seed, **run_case(*_simulate(seed, cache))}


def run_case(locs, truth) -> dict:
    """Run the default pipeline on ``locs`` and score every variant on its largest nucleus
    against ``truth`` (``rate``, ``pixel_size_nm``, ``origin_nm``)."""
    import chromarate.pipeline as P
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.config import PipelineConfig
    from chromarate.fit.prior import balance_rate
    from chromarate.validation.scoring import score
    from chromarate.fit.uncertainty import (CALIBRATION_REL_STD, SPLIT_HALF_SMOOTHING_WINDOWS,
                                            interval_std, local_rms, smoothing_bias, split_half_std)

    kept: dict = {}
    real_std, real_gate = P.with_split_half_std, P.gate_half_maps

    def spy_std(fit, half_maps, closed=None, **kw):
        kept["own"], kept["closed_halves"], kept["closed"] = fit.rate_std, half_maps, closed
        return real_std(fit, half_maps, closed, **kw)

    def spy_gate(fit, half_fields, closed_maps, **kw):
        maps, source = real_gate(fit, half_fields, closed_maps, **kw)
        kept["source"], kept["half_fields"] = source, half_fields
        return maps, source

    with mock.patch.object(P, "with_split_half_std", spy_std), \
            mock.patch.object(P, "gate_half_maps", spy_gate):
        results = [r for r in P.Pipeline(PipelineConfig()).run(locs) if isinstance(r, P.NucleusResult)]
    nr = max(results, key=lambda r: int(r.fields.mask.sum()))
    fit, stack, fields = nr.fit, nr.stack, nr.fields
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=fit.rate.shape,
                            pixel_nm=stack.pixel_size_nm, origin_nm=stack.origin_nm)
    trusted = np.asarray(fit.trusted, dtype=bool)
    sel = trusted & np.isfinite(fit.rate) & np.isfinite(true)
    window = float(fit.meta["test_window_px"])
    width = SPLIT_HALF_SMOOTHING_WINDOWS * window
    bias = smoothing_bias(fit.rate, trusted, window, passes=2)
    reg = fit.meta.get("regularisation") or {}
    rate = np.asarray(fit.rate, np.float64)
    noise: dict[str, np.ndarray] = {}
    means: dict[str, float] = {}
    stds = {"current": fit.rate_std, "own": kept["own"]}
    if kept.get("closed_halves") is not None and kept.get("closed") is not None:
        closed = kept["closed"]
        noise["closed_halves"] = split_half_std(*kept["closed_halves"], trusted, width)
        noise["closed_apart"] = local_rms(rate - closed, trusted, width)
        stds["closed_halves"] = interval_std(noise["closed_halves"], bias)
        stds["previous"] = np.where(np.isfinite(stds["closed_halves"]),
                                    np.fmax(stds["closed_halves"], kept["own"]), kept["own"])
        near = np.fmax(noise["closed_halves"], noise["closed_apart"])
        means["closed"] = float(np.nanmean(closed[sel]) / true[sel].mean() - 1.0)
        if reg.get("rate_prior") == "balance" and kept.get("half_fields") is not None:
            sigma = float(reg["balance_window_um"]) * 1000.0 / float(fields.pixel_size_nm)
            whole, *halves = (balance_rate(f.phi_h, f.phi_e, np.asarray(f.mask, bool), sigma)
                              for f in (fields, *kept["half_fields"]))
            noise["balance_halves"] = split_half_std(*halves, trusted, width)
            noise["balance_apart"] = local_rms(rate - whole, trusted, width)
            both = np.fmax(noise["balance_halves"], noise["balance_apart"])
            stds["balance_both"] = interval_std(both, bias)
            near = np.fmin(near, both)
            means["balance"] = float(np.nanmean(whole[sel]) / true[sel].mean() - 1.0)
        stds["nearest"] = interval_std(near, bias)
        stds["follow"] = (stds["balance_both"] if kept.get("source") == "balance"
                          else stds["previous"])
        rel = CALIBRATION_REL_STD.get((fields.meta.get("calibration") or {}).get("method"))
        if rel is not None:
            for name in ("previous", "follow", "nearest"):
                stds[name + "_cal"] = np.hypot(stds[name], rel * np.abs(rate))
    def scored(std):  # scored as the suite scores (the same pixels as ``sel``)
        return score(fit.rate, trusted, std, truth["rate"], pixel_nm=stack.pixel_size_nm,
                     origin_nm=stack.origin_nm, truth_pixel_nm=truth["pixel_size_nm"],
                     truth_origin_nm=truth["origin_nm"])

    err = fit.rate[sel] - true[sel]
    current = scored(fit.rate_std)
    row = {"r": current.pearson_r, "bias": current.bias,
           "true_mean": float(true[sel].mean()),
           "status": (stack.provenance.get("qc") or {}).get("status"),
           "strength": reg.get("strength"), "gate_source": kept.get("source"),
           "estimator_bias": means,
           "error_mean": float(err.mean()), "error_rms_centred": float(err.std()),
           "bias_term_median": float(np.nanmedian(bias[sel])),
           "noise_median": {k: float(np.nanmedian(v[sel])) for k, v in noise.items()},
           "coverage": {k: scored(v).coverage90 for k, v in stds.items() if v is not None}}
    return row


def main(argv=None) -> None:
    """Run the seeds given on the command line and print (and write) their rows."""
    ap = parser(__doc__, first="line")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: one small nucleus simulated in memory instead of the seeds")
    add_threads_option(ap, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'seed':>4} {'r':>6} {'strength':>8} {'err mean':>8} {'err rms':>7} {'bias':>6} "
          + " ".join(f"{v[:11]:>11}" for v in VARIANTS) + "  noise medians")
    for seed in (["quick"] if args.quick else args.seeds):
        if seed == "quick":
            from balance_window import quick_case

            row = {"seed": "quick", **run_case(*quick_case())}
        else:
            row = run_seed(seed, args.cache)
        rows.append(row)
        cov = row["coverage"]
        print(f"{seed!s:>4} {row['r']:>6.3f} {row['strength'] or np.nan:>8.3f} "
              f"{row['error_mean']:>+8.3f} {row['error_rms_centred']:>7.3f} "
              f"{row['bias_term_median']:>6.3f} "
              + " ".join(f"{cov.get(v, np.nan):>11.3f}" for v in VARIANTS) + "  "
              + ", ".join(f"{k} {v:.3f}" for k, v in row["noise_median"].items())
              + "; bias of the mean: fit " + f"{row['bias']:+.3f} "
              + ", ".join(f"{k} {v:+.3f}" for k, v in row["estimator_bias"].items()), flush=True)
    for v in VARIANTS:
        c = np.array([r["coverage"].get(v, np.nan) for r in rows])
        print(f"{v:>13}: within 80-98 % on {int(np.sum((c >= 0.8) & (c <= 0.98)))} of {len(c)}, "
              f"wider on {int(np.sum(c > 0.98))}, narrower on {int(np.sum(c < 0.8))}; "
              f"mean coverage {np.nanmean(c):.3f}")
    if args.out:
        write_json(args.out, rows, indent=1, default=float)


if __name__ == "__main__":
    main()
