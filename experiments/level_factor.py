"""The censored level's factor per nucleus, and the mean rate of stored fits with it.

``phase.censored_level`` multiplies the rate fitted at the calibrated density scale by the
ratio of the windowed closed form's mean rate at the scale the misfit with the clipped
pixels censored chooses to its mean at the calibrated scale, raised to
``phase.censored_level_share`` (the record's ``level_factor``; 0.5 by default, 1 before
the share existed, so results from then hold the full ratio), by default only where the
calibration is pinned at its clipping bound (``at_bound``; ``always`` on every calibrated
nucleus). The factor multiplies the fitted map, so its r is unchanged and the bias of its
mean becomes ``(1 + bias) * factor - 1``. This script calibrates each case's largest
nucleus as the pipeline does with ``censored_level: always`` (nothing is fitted: about a
second of closed forms after rendering), reads the bias of the same nucleus' stored fit
from ``--results`` (``experiments/validation.py`` files by case, ``experiments/cli_seeds.py``
files by seed; a stored fit that already carries a factor has it divided out) and prints
the bias without the factor, with it at the bound only, and with it everywhere. Cases:
``seedN`` (``chromarate simulate --seed N`` from ``--cli-cache``) or ``NAME@SEED`` (a
localization case of the suite). Usage::

    python experiments/level_factor.py hetero-irr-env-loc250k@606 seed3 \\
        --results experiments/results/validation_rendered_seeds.json \\
        experiments/results/cli_seeds_balance_kept.json --workers 2 --json /tmp/level.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (add_case_options, bias_summary, largest_nucleus,  # noqa: E402
                      localization_case, parser, set_threads, with_level_factor, write_json)


def stored_biases(paths: list[Path]) -> dict[str, dict]:
    """``case -> {"bias", "r", "status", "scale"}`` of stored fits, the bias without any
    level factor the fit carried; the first file that has a case wins."""
    out: dict[str, dict] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        if isinstance(data, dict):  # validation.py
            rows = [(r["case"], r, (r.get("meta") or {}).get("calibration") or {})
                    for r in data.get("rows", [])]
        else:  # cli_seeds.py
            rows = [(f"seed{r['seed']}", r, {"scale": r.get("calibration_scale"),
                                             "level_factor": r.get("calibration_level_factor")})
                    for r in data]
        for case, row, cal in rows:
            if case in out or row.get("bias") is None:
                continue
            factor = cal.get("level_factor") or 1.0
            out[case] = {"bias": with_level_factor(row["bias"], 1.0 / float(factor)),
                         "r": row.get("r"), "status": row.get("status"),
                         "scale": cal.get("scale")}
    return out


def with_factors(stored: dict, record: dict) -> dict:
    """The stored bias without the factor, with it at the bound only, and everywhere."""
    raw = stored["bias"]
    factor = float(record.get("level_factor", 1.0))
    at_bound = factor if record.get("pinned") else 1.0
    return {"bias_never": raw, "bias_at_bound": with_level_factor(raw, at_bound),
            "bias_always": with_level_factor(raw, factor)}


def calibrate_case(spec: dict) -> dict:
    """The calibration record of one case's largest nucleus with ``censored_level: always``."""
    set_threads(1)
    from chromarate.calibrated_phase import calibrated_phase_fields
    from chromarate.config import with_overrides
    from chromarate.pipeline import phase_density

    t0 = time.perf_counter()
    locs, cfg, *_ = localization_case(spec["case"], spec["cache"], spec["cli_cache"])
    cfg = with_overrides(cfg, {"phase.censored_level": "always"})
    task = largest_nucleus(locs, cfg)
    record = calibrated_phase_fields(phase_density(task), task.mask, cfg).meta["calibration"]
    return {"case": spec["case"], "calibration": record, "seconds": time.perf_counter() - t0}


def summarise(rows: list[dict]) -> dict:
    """Per recipe (the case name before ``@``; ``simulate`` for seeds): for each variant the
    mean, RMS and worst bias and how many are beyond 10 %."""
    by_recipe: dict[str, list[dict]] = {}
    for row in rows:
        if "bias_never" in row:
            recipe = "simulate" if row["case"].startswith("seed") else row["case"].split("@")[0]
            by_recipe.setdefault(recipe, []).append(row)
    out = {}
    for recipe, rs in sorted(by_recipe.items()):
        out[recipe] = {"n": len(rs), "pinned": sum(bool(r["calibration"].get("pinned")) for r in rs)}
        for variant in ("never", "at_bound", "always"):
            out[recipe][variant] = bias_summary([r[f"bias_{variant}"] for r in rs])
    return out


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    add_case_options(ap)
    ap.add_argument("--cli-cache", default=str(Path(tempfile.gettempdir()) / "chromarate-cli-seeds"))
    ap.add_argument("--results", type=Path, nargs="+", default=[],
                    help="result files of the stored fits (validation.py or cli_seeds.py)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    stored = stored_biases(args.results)
    specs = [{"case": c, "cache": args.cache, "cli_cache": args.cli_cache} for c in args.cases]
    with get_context("spawn").Pool(max(1, args.workers)) as pool:
        rows = []
        for row in pool.imap(calibrate_case, specs):
            cal = row["calibration"]
            line = (f"{row['case']:30s} scale {cal.get('scale'):.4f} censored "
                    f"{cal.get('level_scale') or float('nan'):.4f} factor "
                    f"{cal.get('level_factor', 1.0):.4f} (ratio {cal.get('level_ratio', 1.0):.4f})"
                    f"{' pinned' if cal.get('pinned') else '       '}")
            if row["case"] in stored:
                s = stored[row["case"]]
                row.update(with_factors(s, cal), r=s["r"], status=s["status"],
                           scale_stored=s["scale"])
                line += (f"  r {s['r']:.3f}  bias {row['bias_never']:+.1%} / at bound "
                         f"{row['bias_at_bound']:+.1%} / always {row['bias_always']:+.1%}")
                if s["scale"] is not None and abs(float(s["scale"]) - cal["scale"]) > 1e-4:
                    line += f"  (stored fit's scale {s['scale']}: not the same calibration)"
            print(line + f"  [{row['seconds']:.0f} s]", flush=True)
            rows.append(row)
    summary = summarise([r for r in rows if r.get("scale_stored") is None
                         or abs(float(r["scale_stored"]) - r["calibration"]["scale"]) <= 1e-4])
    for recipe, s in summary.items():
        print(f"{recipe:28s} {s['n']:3d} nuclei, {s['pinned']:3d} pinned: " + "; ".join(
            f"{v} mean {100 * s[v]['mean']:+.1f} %, RMS {100 * s[v]['rms']:.1f} %, worst "
            f"{100 * s[v]['worst']:+.1f} %, {s[v]['over_10pct']} beyond 10 %"
            for v in ("never", "at_bound", "always")))
    if args.json:
        write_json(args.json, {"rows": rows, "summary": summary}, indent=1)


if __name__ == "__main__":
    main()
