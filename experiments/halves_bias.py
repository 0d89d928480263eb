"""Does the difference between the halves' and the whole's closed form measure the bias?

On localization inputs the pipeline maps two independent halves of the localizations with
their own density-scale calibration and closed form (``chromarate.halves.half_rate_maps``).
If an estimator's bias grows in proportion to the noise variance (one over the counts), a
half, with twice the variance, carries twice the whole's bias, and the whole's bias is
about ``beta = (a + b) / 2 - closed`` (a jackknife estimate; ``closed`` is the whole
data's closed form with the fit's settings). This study runs the default pipeline on
localization cases, keeps the three maps and prints, per case:

- the coverage of the nominal 90 % interval as shipped, with the local mean of ``beta``
  (a Gaussian average over two test windows) added in quadrature, and with the mean of
  ``beta`` over the nucleus added in quadrature;
- the bias of the mean rate as shipped and after subtracting that local mean of ``beta``
  from the map, and the map's r before and after.

Usage::

    python experiments/halves_bias.py domains-box-loc1M@303 seed4 --workers 2 \\
        --json experiments/results/halves_bias.json

Cases are localization cases of the suite (``NAME@SEED``) or ``seedN`` for
``chromarate simulate --seed N`` (``experiments/cli_seeds.py``, its cache).
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_case_options, parser, set_threads, write_json  # noqa: E402

def _capture(name: str, cache: str, quick: bool):
    """Run the pipeline on one case; return its largest nucleus' fit, fields, half maps,
    the truth on the fields' grid and the pipeline's configuration."""
    import chromarate.pipeline as pipeline
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.halves import half_rate_maps

    got: dict = {}
    shipped = pipeline.nucleus_quality  # sees each nucleus' fields, final fit and half maps

    def keep(task, fields, fit, config, half_maps=None, **kw):
        if "fields" not in got or fields.mask.sum() > got["fields"].mask.sum():
            closed = half_maps  # this study needs the closed-form maps, whatever the gate used
            if kw.get("split_half_source", "closed-form") != "closed-form":
                closed = half_rate_maps(fields, fit, config, task.halves,
                                        pipeline._level(task))
            got.update(fit=fit, fields=fields, halves=closed)
        return shipped(task, fields, fit, config, half_maps, **kw)

    pipeline.nucleus_quality = keep
    try:
        if name.startswith("seed"):
            import cli_seeds
            from chromarate.config import PipelineConfig
            from chromarate.io.truth import read_truth

            seed_cache = Path(tempfile.gettempdir()) / "chromarate-cli-seeds"
            seed_cache.mkdir(parents=True, exist_ok=True)
            cli_seeds.run_seed(int(name[4:]), seed_cache)
            truth = read_truth(seed_cache / f"{name}.truth.npz")
            fit, fields = got["fit"], got["fields"]
            true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                                    src_origin_nm=truth["origin_nm"], shape=fit.rate.shape,
                                    pixel_nm=fields.pixel_size_nm, origin_nm=fields.origin_nm)
            return got, true, PipelineConfig()
        from _harness import simulated_case
        from chromarate.validation.run import run_case

        case, _, cfg = simulated_case(name, cache, quick=quick)
        res = run_case(case, config=cfg, cache_dir=cache, baseline=False)
        return got, res.target, cfg
    finally:
        pipeline.nucleus_quality = shipped


def _coverage(err: np.ndarray, std: np.ndarray) -> float:
    from chromarate.validation.scoring import Z90

    ok = np.isfinite(std)
    return float(np.mean(np.abs(err[ok]) <= Z90 * std[ok])) if ok.any() else float("nan")


def run_one(name: str, cache: str, quick: bool = False) -> dict:
    """The figures of one case (see the module docstring)."""
    set_threads(1)
    from chromarate.fit.uncertainty import SPLIT_HALF_SMOOTHING_WINDOWS, local_mean
    from chromarate.halves import closed_form_check

    got, true, cfg = _capture(name, cache, quick)
    fit, fields, halves = got["fit"], got["fields"], got["halves"]
    if halves is None:
        return {"case": name, "error": "no half maps (a half too sparse to map)"}
    trusted = np.asarray(fit.trusted, bool)
    rate = np.asarray(fit.rate, np.float64)
    closed = closed_form_check(fields, fit, cfg)
    beta = 0.5 * (np.asarray(halves[0], np.float64) + np.asarray(halves[1], np.float64)) - closed
    width = SPLIT_HALF_SMOOTHING_WINDOWS * float(fit.meta["test_window_px"])
    local = local_mean(beta, trusted, width)
    sel = trusted & np.isfinite(rate) & np.isfinite(true) & np.isfinite(local)
    std = np.asarray(fit.rate_std, np.float64)[sel]
    err, est, tru = (rate - true)[sel], rate[sel], true[sel]
    mean_beta = float(np.mean(beta[sel][np.isfinite(beta[sel])]))
    fixed = est - local[sel]
    return {
        "case": name, "n_pixels": int(sel.sum()),
        "coverage_shipped": _coverage(err, std),
        "coverage_with_beta": _coverage(err, np.hypot(std, np.abs(local[sel]))),
        "coverage_with_mean_beta": _coverage(err, np.hypot(std, abs(mean_beta))),
        "bias": float(est.mean() / tru.mean() - 1.0),
        "bias_corrected": float(fixed.mean() / tru.mean() - 1.0),
        "mean_beta_over_mean": mean_beta / float(est.mean()),
        "r": float(np.corrcoef(est, tru)[0, 1]),
        "r_corrected": float(np.corrcoef(fixed, tru)[0, 1]),
        "calibration_scale": (fields.meta.get("calibration") or {}).get("scale"),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--workers", type=int, default=1, help="processes (one case each)")
    args = ap.parse_args(argv)
    n = len(args.cases)
    with ProcessPoolExecutor(max(1, args.workers)) as ex:
        rows = list(ex.map(run_one, args.cases, [args.cache] * n, [args.quick] * n))
    cols = ("coverage_shipped", "coverage_with_beta", "coverage_with_mean_beta", "bias",
            "bias_corrected", "mean_beta_over_mean", "r", "r_corrected")
    print(f"{'case':30s} " + " ".join(f"{c[:14]:>14s}" for c in cols))
    for row in rows:
        if "error" in row:
            print(f"{row['case']:30s} {row['error']}")
            continue
        print(f"{row['case']:30s} " + " ".join(f"{row[c]:14.3f}" for c in cols))
    good = [row for row in rows if "error" not in row]
    if good:
        before = np.mean([abs(row["bias"]) for row in good])
        after = np.mean([abs(row["bias_corrected"]) for row in good])
        print(f"\nmean |bias| {before:.3f} shipped, {after:.3f} with beta subtracted; "
              f"mean beta positive on {sum(row['mean_beta_over_mean'] > 0 for row in good)} "
              f"of {len(good)}")
    if args.json:
        write_json(args.json, {"cases": args.cases, "rows": rows}, indent=1)
    return rows


if __name__ == "__main__":
    main()
