"""Where does the density-scale calibration stop on a grid point, and how biased is the mean there?

The physics calibration (:func:`chromarate.fit.calibrate.calibrate_scale`) scans a grid of
scales and draws a parabola through the minimum and its neighbours. Where the neighbour
above clips more than ``MAX_CLIPPED`` of the nucleus at phi_max it is inadmissible, no
parabola is drawn and the scale is the grid point itself. This script reads stored results
(no fitting) and, per recipe, counts the calibrated nuclei whose scale is a grid point and
compares the bias of their mean rate with the others'; it also prints each recipe's mean
and RMS bias. Inputs: ``experiments/validation.py`` result files (rows with
``meta.calibration``) and ``experiments/cli_seeds.py`` files (``calibration_scale``; the
recipe is ``simulate``). A case that appears in several files is counted once. Where a
result records the level factor of ``phase.censored_level`` (the fitted rate
multiplied by it where the calibration was pinned at the clipping bound), it also prints
the bias of those nuclei with and without the factor (``(1 + bias) / factor - 1``: the
same fit, r unchanged). Usage::

    python experiments/calibration_at_bound.py experiments/results/validation_dev.json \\
        experiments/results/cli_seeds_balance_kept.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import bias_summary, parser, with_level_factor  # noqa: E402


def _ratio(record: dict, factor: float | None, key: str = "level_ratio",
           skipped_key: str = "level_skipped") -> float | None:
    """The ratio of the two levels where a factor was recorded: recorded beside it since
    ``phase.censored_level_share`` (before, the factor applied was the full ratio); 1
    where the ratio was refused, since no share of it would be applied."""
    if factor is None:
        return None
    if record.get(skipped_key):
        return 1.0
    ratio = record.get(key)
    return float(factor) if ratio is None else float(ratio)


def _rows(path: Path) -> list[tuple]:
    """``(recipe, case, scale or None, bias, level factor or None, coverage or None, level
    ratio or None)`` of the calibrated nuclei in one result file."""
    data = json.loads(path.read_text())
    out = []
    if isinstance(data, dict) and any("bias_never" in row for row in data.get("rows", [])):
        for row in data["rows"]:  # level_factor.py: the default's bias and, if pinned, factor
            cal = row.get("calibration") or {}
            if cal.get("method") != "physics" or row.get("bias_at_bound") is None:
                continue
            stored = row.get("scale_stored")
            if stored is not None and abs(float(stored) - float(cal.get("scale"))) > 1e-4:
                continue  # the stored fit was not made at this calibration's scale
            case = row["case"]
            factor = cal.get("level_factor") if cal.get("pinned") else None
            out.append(("simulate" if case.startswith("seed") else case.split("@")[0], case,
                        cal.get("scale"), row["bias_at_bound"], factor, None,
                        _ratio(cal, factor)))
    elif isinstance(data, dict):  # validation.py
        for row in data.get("rows", []):
            cal = (row.get("meta") or {}).get("calibration") or {}
            if cal.get("method") != "physics" or row.get("bias") is None:
                continue
            factor = cal.get("level_factor")
            out.append((row["case"].split("@")[0], row["case"], cal.get("scale"), row["bias"],
                        factor, row.get("coverage90"), _ratio(cal, factor)))
    else:  # cli_seeds.py
        for row in data:
            if row.get("calibration_scale") is not None and row.get("bias") is not None:
                factor = row.get("calibration_level_factor")
                out.append(("simulate", f"seed{row['seed']}", row["calibration_scale"],
                            row["bias"], factor, row.get("coverage90"),
                            _ratio(row, factor, "calibration_level_ratio",
                                   "calibration_level_skipped")))
    return out


def on_grid(scale: float | None) -> bool:
    """Whether ``scale`` is a point of the calibration's grid (no parabola was drawn)."""
    from chromarate.fit.calibrate import SCALE_GRID

    return scale is not None and bool(np.min(np.abs(np.asarray(SCALE_GRID) - scale)) < 1e-9)


def _in_range(rows) -> int | None:
    """How many of ``rows`` have a nominal 90 % interval covering 80-98 % of the pixels
    (None where no row records its coverage)."""
    return _coverage(rows)["in_range"]


def _coverage(rows) -> dict:
    """Of the rows that record their coverage: how many cover 80-98 %, how many more
    (wider) and fewer (narrower), and the mean coverage (None without any; the suite's
    :func:`chromarate.validation.scoring.coverage_summary`)."""
    from chromarate.validation.scoring import coverage_summary

    c = coverage_summary([{"coverage90": r[4]} for r in rows])
    if not c["n"]:
        return {"in_range": None, "wider": None, "narrower": None, "mean": None}
    return {k: c[k] for k in ("in_range", "wider", "narrower", "mean")}


def _at_power(rows, p: float) -> list[float]:
    """Each row's bias with the level ratio raised to ``p`` in place of the factor applied
    (rows without a factor as they are)."""
    return [r[2] if r[3] is None else with_level_factor(r[2], r[5] ** p / r[3]) for r in rows]


def _powered(rows, powers) -> dict:
    """Per power: the bias summary of ``rows`` at that power, with the range."""
    out = {}
    for p in powers:
        b = _at_power(rows, p)
        out[str(p)] = {"n": len(b), **bias_summary(b), "min": float(min(b)), "max": float(max(b))}
    return out


def summarise(paths: list[Path], only: set[str] | None = None,
              powers: list[float] | None = None) -> dict:
    """Per recipe: counts and mean biases on and off the grid, mean and RMS bias, the
    range of the bias and the cases whose interval covers 80-98 %; ``"all"``: the bias
    figures and that count pooled over every recipe. ``only``: these cases alone.
    ``powers``: for the nuclei with a level factor, the bias with the ratio of the two
    levels raised to each power instead of the factor applied (``"level"["powers"]``, and
    over the whole recipe ``"powers_all"``)."""
    seen, by_recipe = set(), {}
    for path in paths:
        for recipe, case, scale, bias, factor, coverage, ratio in _rows(path):
            if case in seen or (only is not None and case not in only):
                continue
            seen.add(case)
            by_recipe.setdefault(recipe, []).append((case, scale, bias, factor, coverage, ratio))
    out = {}
    for recipe, rows in sorted(by_recipe.items()):
        bias = np.array([r[2] for r in rows])
        grid = np.array([on_grid(r[1]) for r in rows])
        out[recipe] = {
            "n": len(rows), "on_grid": int(grid.sum()),
            "mean_bias_on_grid": float(bias[grid].mean()) if grid.any() else None,
            "mean_bias_off_grid": float(bias[~grid].mean()) if (~grid).any() else None,
            "mean_bias": float(bias.mean()), "rms_bias": float(np.sqrt((bias ** 2).mean())),
            "min_bias": float(bias.min()), "max_bias": float(bias.max()),
            "coverage_in_range": _in_range(rows), "coverage": _coverage(rows),
            "cases_on_grid": sorted(r[0] for r, g in zip(rows, grid) if g)}
        # the censored level (phase.censored_level): the fitted rate was multiplied by the
        # factor, so the bias without it is (1 + bias) / factor - 1, at the same r
        levelled = [r for r in rows if r[3] is not None]
        if levelled:
            after = [r[2] for r in levelled]
            before = [with_level_factor(r[2], 1.0 / r[3]) for r in levelled]
            out[recipe]["level"] = {
                "n": len(levelled), "before": bias_summary(before), "after": bias_summary(after),
                "factors": {r[0]: r[3] for r in levelled}}
            if powers:
                # the ratio of the two levels raised to each power (0: none, 1: the full
                # step), for the levelled nuclei and for the recipe's every nucleus
                out[recipe]["level"]["powers"] = {
                    p: {k: v for k, v in b.items() if k in ("mean", "rms", "worst", "over_10pct")}
                    for p, b in _powered(levelled, powers).items()}
                out[recipe]["level"]["powers_all"] = _powered(rows, powers)
    pooled = [r for rows in by_recipe.values() for r in rows]
    if pooled:
        out["all"] = {"n": len(pooled), **bias_summary([r[2] for r in pooled]),
                      "min": float(min(r[2] for r in pooled)),
                      "max": float(max(r[2] for r in pooled)),
                      "coverage_in_range": _in_range(pooled), "coverage": _coverage(pooled)}
        if powers:
            out["all"]["powers"] = _powered(pooled, powers)
    return out


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", nargs="+", default=None, metavar="CASE",
                    help="only these cases (NAME@SEED, seedN)")
    ap.add_argument("--level-powers", nargs="+", type=float, default=None, metavar="P",
                    help="also the bias with the ratio of the two levels raised to these powers")
    args = ap.parse_args(argv)
    summary = summarise(args.files, None if args.only is None else set(args.only),
                        args.level_powers)

    def pct(x):
        return "-" if x is None else f"{100 * x:+.1f} %"

    def covered(s):
        c = s["coverage"]
        if c["in_range"] is None:
            return "not recorded"
        return (f"{c['in_range']} of {s['n']} ({c['wider']} wider, {c['narrower']} narrower; "
                f"mean coverage {c['mean']:.3f})")

    for recipe, s in summary.items():
        if recipe == "all":
            print(f"{'all recipes':28s} {s['n']:3d} calibrated: mean {pct(s['mean'])}, RMS "
                  f"{100 * s['rms']:.2f} %, {pct(s['min'])} ... {pct(s['max'])}; interval "
                  f"covering 80-98 %: {covered(s)}")
            for p, a in s.get("powers", {}).items():
                print(f"{'':28s}     ratio to the power {float(p):g}: mean {pct(a['mean'])}, RMS "
                      f"{100 * a['rms']:.2f} %, {pct(a['min'])} ... {pct(a['max'])}")
            continue
        print(f"{recipe:28s} {s['n']:3d} calibrated, {s['on_grid']:3d} on a grid point: mean bias "
              f"{pct(s['mean_bias_on_grid'])} there, {pct(s['mean_bias_off_grid'])} elsewhere; "
              f"all: mean {pct(s['mean_bias'])}, RMS {100 * s['rms_bias']:.1f} %, "
              f"{pct(s['min_bias'])} ... {pct(s['max_bias'])}; interval covering 80-98 %: "
              f"{covered(s)}")
        if "level" in s:
            lv = s["level"]
            print(f"{'':28s} {lv['n']:3d} with the censored level: " + "; ".join(
                f"{when} mean {pct(lv[when]['mean'])}, RMS {100 * lv[when]['rms']:.1f} %, "
                f"worst {pct(lv[when]['worst'])}, {lv[when]['over_10pct']} beyond 10 %"
                for when in ("before", "after")))
            for p, b in lv.get("powers", {}).items():
                a = lv["powers_all"][p]
                print(f"{'':28s}     ratio to the power {float(p):g}: mean {pct(b['mean'])}, RMS "
                      f"{100 * b['rms']:.1f} %, worst {pct(b['worst'])}, {b['over_10pct']} beyond 10 %"
                      f" (all {a['n']}: mean {pct(a['mean'])}, RMS {100 * a['rms']:.2f} %, "
                      f"{pct(a['min'])} ... {pct(a['max'])}, {a['over_10pct']} beyond 10 %)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
