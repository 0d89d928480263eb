"""The balance estimate of the rate on its own, at several window widths, on `simulate` nuclei.

For each ``chromarate simulate --seed N`` nucleus (simulated through
``experiments/cli_seeds.py``'s cache) this runs the default pipeline's shared stages and
phase mapping, then scores the balance estimate ``G * phi_h / G * phi_e``
(:func:`chromarate.fit.prior.balance_rate`) against the true rate over the nucleus eroded
by 0.3 um, for Gaussian windows of several standard deviations: Pearson r, the bias of the
mean, and how well the maps of two independent halves of the localizations agree. With
``--closed-form`` it adds the windowed closed form at the same windows (the closed form
caps its window to the nucleus). Prints one line per seed and window.

Usage::

    python experiments/balance_window.py --seeds 0 1 2 3 4 5 --json experiments/results/balance_window.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import parser, write_json  # noqa: E402

WINDOWS_UM = (0.3, 0.45, 0.6, 0.9, 1.2)
ERODE_UM = 0.3


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def quick_case():
    """(localizations, truth) of a small nucleus (96 x 96 px at 20 nm, 40k localizations):
    the ``--quick`` smoke run, simulated in memory."""
    from chromarate.config import SimulateConfig
    from chromarate.data import simulate_nucleus

    syn = simulate_nucleus(SimulateConfig(shape=(96, 96), pixel_size_nm=20.0,
                                          nucleus_radii_um=(0.85, 0.75), n_localizations=40_000,
                                          tolerance=1e-2, rate_length_um=1.0, seed=3))
    truth = {"rate": syn.rate, "pixel_size_nm": syn.pixel_size_nm, "origin_nm": syn.origin_nm}
    return syn.localizations, truth


def score_seed(seed: int, cache: Path, windows=WINDOWS_UM, closed_form: bool = False) -> dict:
    """Balance estimate (and optionally the closed form) at ``windows`` on one seed."""
    import cli_seeds

    locs, truth = cli_seeds._simulate(seed, cache)
    return {"seed": seed, **score(locs, truth, windows, closed_form)}


def score(locs, truth, windows=WINDOWS_UM, closed_form: bool = False) -> dict:
    """Balance estimate (and optionally the closed form) at ``windows`` on the largest
    nucleus of ``locs``, scored against ``truth`` (``rate``, ``pixel_size_nm``,
    ``origin_nm``)."""
    from scipy import ndimage as ndi

    from chromarate.analysis.compare import resample_to_grid
    from chromarate.config import PipelineConfig
    from chromarate.fit.prior import balance_rate, domain_spacing_um
    from chromarate.pipeline import (NucleusTask, Pipeline, _level, calibrated_phase_fields,
                                     half_phase_fields, phase_density)

    cfg = PipelineConfig()
    tasks = [t for t in Pipeline(cfg).iter_prepare(locs) if isinstance(t, NucleusTask)]
    task = max(tasks, key=lambda t: int(t.mask.sum()))
    fields = calibrated_phase_fields(phase_density(task), task.mask, cfg)
    halves = half_phase_fields(task.halves, fields.mask, cfg, _level(task))
    px = fields.pixel_size_nm / 1000.0
    true = resample_to_grid(truth["rate"], src_pixel_nm=truth["pixel_size_nm"],
                            src_origin_nm=truth["origin_nm"], shape=fields.mask.shape,
                            pixel_nm=fields.pixel_size_nm, origin_nm=fields.origin_nm)
    mask = np.asarray(fields.mask, dtype=bool)
    sel = ndi.binary_erosion(mask, iterations=int(round(ERODE_UM / px))) & np.isfinite(true)
    row = {"domain_spacing_um": domain_spacing_um(fields.phi_h, mask, px),
           "true_mean": float(true[sel].mean()), "true_sd": float(true[sel].std()),
           "balance": {}, "closed_form": {}}
    for w in windows:
        whole = balance_rate(fields.phi_h, fields.phi_e, mask, w / px)
        a, b = (balance_rate(h.phi_h, h.phi_e, mask, w / px) for h in halves)
        row["balance"][str(w)] = {"r": _corr(whole[sel], true[sel]),
                                  "bias": float(whole[sel].mean() / true[sel].mean() - 1.0),
                                  "halves_r": _corr(a[sel], b[sel])}
    if closed_form:
        from chromarate.fit.direct import invert_direct

        for w in windows:
            fc = cfg.fit.model_copy(update={"prior": cfg.fit.prior.model_copy(update={
                "regularisation": "manual", "test_window_um": w, "split_half_floor": False})})
            fit = invert_direct(fields, fc)
            c = fit.rate
            ok = sel & np.isfinite(c)
            row["closed_form"][str(w)] = {"r": _corr(c[ok], true[ok]),
                                          "bias": float(c[ok].mean() / true[ok].mean() - 1.0),
                                          "window_px_used": fit.meta.get("test_window_px")}
    return row


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--windows", type=float, nargs="+", default=list(WINDOWS_UM), metavar="UM")
    ap.add_argument("--closed-form", action="store_true", help="also the windowed closed form")
    ap.add_argument("--quick", action="store_true",
                    help="a small simulated nucleus instead of the seeds (smoke run)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    cases = ([("quick", lambda: {"seed": "quick", **score(*quick_case(), args.windows,
                                                           args.closed_form)})]
             if args.quick else
             [(seed, lambda seed=seed: score_seed(seed, args.cache, args.windows, args.closed_form))
              for seed in args.seeds])
    for name, run in cases:
        row = run()
        rows.append(row)
        print(f"seed {name}: domain spacing {row['domain_spacing_um']:.2f} um, "
              f"true lambda {row['true_mean']:.2f} +- {row['true_sd']:.2f}")
        for kind in ("balance", "closed_form"):
            for w, s in row[kind].items():
                extra = f"  halves agree {s['halves_r']:.3f}" if "halves_r" in s else ""
                print(f"  {kind:11s} window {float(w):4.2f} um: r {s['r']:.3f}  "
                      f"bias {s['bias']:+.1%}{extra}")
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
