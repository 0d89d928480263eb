"""How the default fit's map approaches the truth during training, on fields given directly.

For each validation case ``NAME@SEED`` on the fields path (the noisy fields the suite
fits), the default fit (:func:`chromarate.fit_rates`, regularisation chosen from the
data) runs with a monitor that reads the rate network's map at every logged step, and
each map is scored (Pearson r) against the case's target over the final fit's trusted
pixels. The windowed closed form on the same fields and settings is scored too (the
suite's baseline), and the final map also as the suite scores it (``scored_r``,
:func:`chromarate.validation.run.score_fit`, on the truth's own grid). Each
``--variant KEY=VALUE[,KEY=VALUE]`` (repeatable; ``""`` the defaults) is a configuration
to run on each case, one after the other (a study, e.g.
``fit.training.learning_rate=0.006``, which scales both networks' steps, or
``fit.prior.rate_prior=closed_form``).

It answers one question: is a fit that ends below its closed form short of steps
(r still rising at the last step) or at an optimum of its loss that is worse than an
earlier iterate (r peaked and fell)? Prints per case and variant the final r, the peak r
and its step, the closed form's r, and the r every tenth of the run. Usage::

    python experiments/training_trace.py fine-env-15nm-n1@9500 hetero-irr-env-n5@9400 \\
        --variant "" --variant fit.training.learning_rate=0.006 \\
        --json experiments/results/training_trace.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, corr, override_pair, parser, simulated_case,  # noqa: E402
                      write_json)


def trace(name: str, cache: str, overrides: dict, quick: bool = False) -> dict:
    """r against the target at every logged step of one fit of case ``name``."""
    from chromarate._types import FitDone
    from chromarate.config import with_overrides
    from chromarate.fit.direct import invert_direct
    from chromarate.fit.loop import iter_fit
    from chromarate.validation.run import score_fit, target_rate, truth_on_grid

    case, syn, cfg = simulated_case(name, cache, quick=quick, path="fields")
    if overrides:
        cfg = with_overrides(cfg, overrides)
    target, _ = target_rate(syn)
    truth = truth_on_grid(target, syn, syn.fields)
    maps: list[tuple[int, np.ndarray]] = []
    fit = None
    for event in iter_fit(syn.fields, cfg.fit, monitor=lambda step, rate: maps.append((step, rate()))):
        if isinstance(event, FitDone):
            fit = event.result
    where = np.asarray(fit.trusted, bool) & np.isfinite(truth)

    def r_of(rate) -> float:
        return corr(np.asarray(rate, np.float64)[where], truth[where])

    steps = [int(s) for s, _ in maps]
    rs = [r_of(m) for _, m in maps]
    closed = invert_direct(syn.fields, cfg.fit.model_copy(update={"method": "direct"}))
    peak = int(np.nanargmax(rs)) if rs else 0
    reg = fit.meta.get("regularisation") or {}
    return {"case": name, "overrides": {k: v for k, v in overrides.items()},
            "final_r": r_of(fit.rate),
            "scored_r": float(score_fit(fit, syn.fields, syn, target).pearson_r),
            "peak_r": rs[peak] if rs else None,
            "peak_step": steps[peak] if rs else None, "closed_form_r": r_of(closed.rate),
            "steps": steps, "r": rs, "rate_prior": reg.get("rate_prior"),
            "strength": reg.get("strength"), "train_steps": reg.get("steps")}


def main() -> None:
    ap = parser(__doc__)
    add_case_options(ap)
    ap.add_argument("--variant", action="append", default=None, metavar="KEY=VALUE[,KEY=VALUE]",
                    help="a configuration to run (comma-separated overrides; '' the defaults); "
                         "repeat for several")
    args = ap.parse_args()
    variants = [dict(override_pair(p) for p in v.split(",") if p.strip())
                for v in (args.variant if args.variant is not None else [""])]
    rows = []
    for name in args.cases:
        for over in variants:
            row = trace(name, args.cache, over, quick=args.quick)
            rows.append(row)
            tenth = max(1, len(row["steps"]) // 10)
            label = ",".join(f"{k}={v}" for k, v in over.items()) or "defaults"
            print(f"{name} [{label}] final r {row['final_r']:.3f}, peak {row['peak_r']:.3f} at step "
                  f"{row['peak_step']} of {row['train_steps']}, closed form {row['closed_form_r']:.3f}"
                  f" (prior {row['rate_prior']}, strength {row['strength']})", flush=True)
            print("   " + " ".join(f"{s}:{v:.3f}" for s, v in
                                   zip(row["steps"][::tenth], row["r"][::tenth])), flush=True)
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
