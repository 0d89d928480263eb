"""Do the quality gate's recorded figures separate the fits held to a wrong rate prior?

Reads stored results (no fitting): ``experiments/validation.py`` files (rows with
``meta.qc_metrics``, ``baseline_r`` and the regularisation record) and
``experiments/cli_seeds.py`` files (rows with ``qc_metrics``; the recipe is
``simulate``). Each nucleus goes into one group: its recipe, the rate prior its fit
followed, and, on the suite's recipes, whether the fit is more than ``--margin`` below
the closed form with its own window (``baseline_r``), i.e. the prior was the wrong one
there. On the ``simulate`` seeds the closed form is not the reference (the balance prior
is right there and the closed form far worse), so they form their own groups. Per group
it prints the number of nuclei and, for each figure asked for, its smallest, median and
largest value; with ``--status ok`` only the nuclei the gate passed. A case in several
files counts once (the first file wins). Usage::

    python experiments/gate_figures.py experiments/results/validation_rendered_fresh_4040.json \\
        experiments/results/cli_seeds_94_113.json --figures residual_explained pinn_vs_closed_form
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import parser  # noqa: E402


def nuclei(paths: list[Path]) -> list[dict]:
    """``{"case", "recipe", "prior", "below", "status", "metrics"}`` per nucleus: ``below``
    is how far r lies under the closed form's (None for ``simulate`` seeds)."""
    seen, out = set(), []
    for path in paths:
        data = json.loads(path.read_text())
        if isinstance(data, dict):  # validation.py
            for row in data.get("rows", []):
                metrics = (row.get("meta") or {}).get("qc_metrics")
                if row["case"] in seen or not metrics:
                    continue
                seen.add(row["case"])
                below = (None if row.get("r") is None or row.get("baseline_r") is None
                         else float(row["baseline_r"]) - float(row["r"]))
                out.append({"case": row["case"], "recipe": row["case"].split("@")[0],
                            "prior": (row.get("regularisation") or {}).get("rate_prior"),
                            "below": below, "status": row.get("status"), "metrics": metrics})
        else:  # cli_seeds.py
            for row in data:
                case = f"seed{row['seed']}"
                if case in seen or not row.get("qc_metrics"):
                    continue
                seen.add(case)
                out.append({"case": case, "recipe": "simulate",
                            "prior": (row.get("regularisation") or {}).get("rate_prior"),
                            "below": None, "status": row.get("status"),
                            "metrics": row["qc_metrics"]})
    return out


def group_of(nucleus: dict, margin: float) -> str:
    """``recipe, prior[, below the closed form]``."""
    name = f"{nucleus['recipe']}, {nucleus['prior']}"
    if nucleus["below"] is not None and nucleus["below"] > margin:
        name += f", > {margin:g} below the closed form"
    return name


def summarise(paths: list[Path], figures: list[str], *, margin: float = 0.05,
              status: str | None = None) -> dict:
    """Per group: ``n``, the cases, and ``(min, median, max)`` of each figure (None where
    no nucleus of the group records it)."""
    groups: dict[str, list[dict]] = {}
    for n in nuclei(paths):
        if status is None or n["status"] == status:
            groups.setdefault(group_of(n, margin), []).append(n)
    out = {}
    for name, members in sorted(groups.items()):
        entry = {"n": len(members), "cases": [m["case"] for m in members]}
        for fig in figures:
            v = np.array([float(m["metrics"][fig]) for m in members
                          if isinstance(m["metrics"].get(fig), (int, float))], dtype=float)
            v = v[np.isfinite(v)]
            entry[fig] = (None if v.size == 0
                          else (float(v.min()), float(np.median(v)), float(v.max())))
        out[name] = entry
    return out


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--figures", nargs="+", default=["residual_explained", "pinn_vs_closed_form"],
                    help="keys of the quality report's metrics")
    ap.add_argument("--margin", type=float, default=0.05,
                    help="r below the closed form's that counts as the wrong prior")
    ap.add_argument("--status", default=None, help="only nuclei with this status (e.g. ok)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = summarise(args.files, args.figures, margin=args.margin, status=args.status)
    for name, entry in out.items():
        cells = [f"{fig} " + ("-" if entry[fig] is None else
                              "{:.3f} / {:.3f} / {:.3f}".format(*entry[fig]))
                 for fig in args.figures]
        print(f"{name:64s} {entry['n']:3d}: " + "; ".join(cells))
    print("(smallest / median / largest)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
