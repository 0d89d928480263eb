"""Which rate prior does a nucleus need, and does the `auto` rule's figure tell?

The PINN's rate is pulled towards a prior map: the balance estimate ``G * phi_h / G * phi_e``
(right where lambda is smooth at the scale of its window) or the windowed closed form
(right where lambda varies at the scale of the domains, which the balance averages out).
With two halves of the localizations the default ``rate_prior="auto"`` takes the closed
form when :func:`chromarate.fit.prior.departure_ratio` (the closed form's departure from
the balance in the part both halves share, over the balance's own reproducible variation)
is at least ``DEPARTURE_RATIO``, or when the same shared departure is at least
``fit.prior.shared_departure_limit`` of the rate (then recorded as ambiguous and flagged).
For each nucleus (``seedN``: ``chromarate simulate --seed
N`` through ``experiments/cli_seeds.py``'s cache; ``NAME@SEED``: a localization case of the
validation suite) this runs the default pipeline and scores against the truth, over the
fit's trusted pixels: the fit (r, bias of the mean), the balance estimate and the closed form
on their own, the figures the rule recorded (``prior_departure``, ``prior_shared_departure``,
``prior_ambiguous``, and the sign rule's ``prior_agreement``), and with ``--both-priors``
the fit with each prior forced. Prints one line per nucleus. Usage::

    python experiments/prior_departure.py seed43 domains-box-loc1M@606 --both-priors \\
        --json experiments/results/prior_departure.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, add_threads_option, localization_case, parser,  # noqa: E402
                      set_threads, write_json)

PRIORS = ("balance", "closed_form")


def _score(rate, sel, true) -> dict:
    s = sel & np.isfinite(rate)
    return {"r": float(np.corrcoef(rate[s], true[s])[0, 1]),
            "bias": float(rate[s].mean() / true[s].mean() - 1.0)}


def _largest(cfg, locs):
    """The pipeline's result for the largest nucleus of ``locs`` under ``cfg``."""
    from chromarate.pipeline import NucleusResult, Pipeline

    done = [r for r in Pipeline(cfg).run(locs) if isinstance(r, NucleusResult)]
    if not done:
        raise SystemExit("no nucleus was fitted")
    return max(done, key=lambda r: int(np.asarray(r.fields.mask).sum()))


def _quick_case():
    """The ``--quick`` nucleus of ``experiments/balance_window.py``, with a default config."""
    import balance_window
    from chromarate.config import PipelineConfig

    locs, truth = balance_window.quick_case()
    return (locs, PipelineConfig(), np.asarray(truth["rate"], float),
            float(truth["pixel_size_nm"]), tuple(truth["origin_nm"]))


def run_case(name: str, cache: str, cli_cache: Path, both: bool, quick: bool = False) -> dict:
    """The figures of one nucleus (see the module docstring)."""
    from chromarate.analysis.compare import resample_to_grid
    from chromarate.fit.direct import invert_direct
    from chromarate.fit.prior import balance_rate
    from chromarate.halves import closed_config

    locs, cfg, target, t_pixel, t_origin = (_quick_case() if name == "quick" else
                                            localization_case(name, cache, cli_cache, quick))
    res = _largest(cfg, locs)
    fit, fields = res.fit, res.fields
    reg = fit.meta.get("regularisation") or {}
    true = resample_to_grid(target, src_pixel_nm=t_pixel, src_origin_nm=t_origin,
                            shape=fields.mask.shape, pixel_nm=fields.pixel_size_nm,
                            origin_nm=fields.origin_nm)
    sel = np.asarray(fit.trusted, bool) & np.isfinite(true)
    mask = np.asarray(fields.mask, bool)
    row = {"case": name, "rate_prior": reg.get("rate_prior"),
           "prior_departure": reg.get("prior_departure"),
           "prior_shared_departure": reg.get("prior_shared_departure"),
           "prior_ambiguous": bool(reg.get("prior_ambiguous")),
           "prior_agreement": reg.get("prior_agreement"), "strength": reg.get("strength"),
           "true_sd": float(np.std(true[sel])), "status": res.stack.provenance["qc"]["status"],
           "fit": _score(fit.rate, sel, true)}
    window = reg.get("balance_window_um")
    if window:
        row["balance"] = _score(balance_rate(fields.phi_h, fields.phi_e, mask,
                                             window * 1000.0 / fields.pixel_size_nm), sel, true)
    row["closed_form"] = _score(np.asarray(invert_direct(fields, closed_config(fit, cfg)).rate,
                                           float), sel, true)
    if both:
        for prior in PRIORS:
            forced = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={
                "prior": cfg.fit.prior.model_copy(update={"rate_prior": prior})})})
            other = res if prior == row["rate_prior"] else _largest(forced, locs)
            row[f"fit_{prior}_prior"] = _score(other.fit.rate, sel, true)
    dep = row["prior_departure"]
    shared = row["prior_shared_departure"]
    print(f"{name:28s} departure {'-' if dep is None else f'{dep:.2f}':>6s} / "
          f"{'-' if shared is None else f'{shared:.3f}':>5s} of the rate"
          f"{' (ambiguous)' if row['prior_ambiguous'] else ''}  agreement "
          f"{row['prior_agreement'] if row['prior_agreement'] is None else round(row['prior_agreement'], 2)}"
          f"  -> {row['rate_prior']:12s} fit r {row['fit']['r']:.3f} ({100 * row['fit']['bias']:+.1f} %)  "
          + "  ".join(f"{k} {v['r']:.3f}" for k, v in row.items()
                      if isinstance(v, dict) and k != "fit"), flush=True)
    return row


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    add_case_options(ap)
    ap.add_argument("--both-priors", action="store_true",
                    help="also fit with each prior forced (two more fits per nucleus)")
    ap.add_argument("--cli-cache", type=Path, default=Path(tempfile.gettempdir()) / "chromarate-cli-seeds",
                    help="cache of the seedN nuclei")
    add_threads_option(ap, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    rows = [run_case(name, args.cache, args.cli_cache, args.both_priors, quick=args.quick)
            for name in args.cases]
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
