"""Validation suite of issue 12: synthetic nuclei with known rate maps, scored.

Runs the cases of :func:`chromarate.validation.suite` for a seed set (``--set dev``, the
default, for tuning; ``--set unseen``, held out: run it only on final settings, never
while tuning), each through the library's current defaults -- ``chromarate.fit_rates`` on
noisy phase fields, or the whole ``chromarate.Pipeline`` on localizations -- plus the
closed-form baseline (``chromarate.invert_direct``) on the same fields. Prints one row per
case (Pearson r and Spearman rho over the trusted interior, relative bias of the mean,
RMSE, fraction on the right side of lambda = 1, coverage of the nominal 90 % interval,
the baseline's r and the difference, QC status, simulation and fit seconds, peak RSS) and
the summary (median and minimum r, worst and median |bias|, over all cases and per QC
status; flagged cases and their reasons), and writes JSON and a markdown table.

Steady states are cached (``--cache``, default a folder in the system temp dir), so a
rerun only refits. Peak memory is the process's RSS high-water mark after the fit
(``ru_maxrss``): with ``--workers`` each case runs in a fresh process and the figure is
that case's own peak (simulation included); in one process it only grows from case to
case.

    python experiments/validation.py --quick --set dev            # smoke run (64 px, 20 steps)
    python experiments/validation.py --set dev --workers 2        # the full dev suite
    python experiments/validation.py --cases bump-box-n0 cli-size96-loc250k --figure fig.png
    python experiments/validation.py --set unseen                 # final settings only
    python experiments/validation.py --doc-table experiments/results/validation_dev.json
"""

from __future__ import annotations

import fnmatch
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import aligned, override_pair, parser, set_threads, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

COLUMNS = (  # header, row key, format
    ("case", "case", "s"), ("family", "family", "s"), ("path", "path", "s"),
    ("r", "r", ".3f"), ("r res", "r_resolvable", ".3f"), ("rho", "rho", ".3f"),
    ("bias", "bias", "+.3f"), ("RMSE", "rmse", ".3f"),
    ("side1", "side_of_one", ".3f"), ("cov90", "coverage90", ".2f"),
    ("base r", "baseline_r", ".3f"), ("PINN-base", "delta_r", "+.3f"), ("status", "status", "s"),
    ("sim s", "simulate_s", ".1f"), ("fit s", "fit_s", ".1f"), ("peak MB", "peak_rss_mb", ".0f"),
)


def _fmt(value, spec: str) -> str:
    if spec == "s":
        return str(value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def table_lines(rows: list[dict], sep: str = "  ") -> list[str]:
    """The per-case table as aligned text lines."""
    cells = [[h for h, _, _ in COLUMNS]] + [[_fmt(r.get(k), f) for _, k, f in COLUMNS]
                                             for r in rows]
    left = {"case", "family", "path", "status"}
    return aligned(cells, sep, right=[i for i, (h, _, _) in enumerate(COLUMNS) if h not in left])


def markdown(rows: list[dict], summary: dict, meta: dict) -> str:
    """The table and summary as markdown."""
    head = "| " + " | ".join(h for h, _, _ in COLUMNS) + " | reasons | regularisation |"
    out = [f"# Validation suite: set `{meta['set']}`, seeds {meta['seeds']}"
           f"{' (quick)' if meta['quick'] else ''}", "",
           f"chromarate {meta['chromarate']}, {meta['platform']}, method `{meta['method']}`, "
           f"{meta['wall_s']:.0f} s wall.", "", head,
           "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        reasons = "; ".join(r.get("reasons", [])).replace("|", "/")
        reg = "" if r.get("regularisation") is None else json.dumps(r["regularisation"])
        out.append("| " + " | ".join(_fmt(r.get(k), f) for _, k, f in COLUMNS)
                   + f" | {reasons} | {reg.replace('|', '/')} |")
    out += ["", "## Summary", ""] + ["    " + line for line in summary_lines(summary)]
    return "\n".join(out) + "\n"


def summary_lines(s: dict) -> list[str]:
    """The suite summary as text lines."""
    from chromarate.validation.scoring import BASELINE_MARGIN, COVERAGE_RANGE

    def one(name, st):
        n_res, n_r = st.get("n_r_resolvable"), st.get("n_r")
        over = f" of {n_res} cases" if n_res is not None and n_r is not None and n_res < n_r else ""
        return (f"{name:<10} n={st['n']:<3} median r={_fmt(st['median_r'], '.3f')}  "
                f"min r={_fmt(st['min_r'], '.3f')}  "
                f"(resolvable part{over}: {_fmt(st.get('median_r_resolvable'), '.3f')} / "
                f"{_fmt(st.get('min_r_resolvable'), '.3f')})  "
                f"worst |bias|={_fmt(st['worst_abs_bias'], '.3f')}"
                f"  median |bias|={_fmt(st['median_abs_bias'], '.3f')}")
    lines = [one("all", s["all"])] + [one(g, st) for g, st in s["by_status"].items()]
    lines.append(f"flagged: {s['n_flagged']}, failed: {s['n_failed']}")
    for reason, n in sorted(s["flag_reasons"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n} x {reason}")
    worse = s["worse_than_baseline"]
    lines.append(f"r below the closed-form baseline: {len(worse)}"
                 + (f" ({', '.join(worse)})" if worse else ""))
    # summaries read back from JSON written before these two keys lack them (``--merge``
    # recomputes its summary, so it always has them)
    if "below_baseline_margin" in s:
        margin = s["below_baseline_margin"]
        lines.append(f"r more than {BASELINE_MARGIN:g} below it: {len(margin)}"
                     + (f" ({', '.join(margin)})" if margin else ""))
    if "coverage" in s:
        c, (lo, hi) = s["coverage"], COVERAGE_RANGE
        lines.append(f"nominal 90 % interval: covers {100 * lo:g}-{100 * hi:g} % of the pixels "
                     f"on {c['in_range']} of "
                     f"{c['n']} cases ({c['wider']} wider, {c['narrower']} narrower); "
                     f"pooled over all pixels {_fmt(c['pooled'], '.3f')}")
    return lines


def _config(case, quick: bool, steps: int | None, overrides: tuple = ()):
    from chromarate.config import with_overrides
    from chromarate.validation import default_config

    cfg = default_config(case, quick=quick)
    if overrides:  # KEY=VALUE pairs on top of the defaults (a study, not the suite's settings)
        cfg = with_overrides(cfg, dict(overrides))
    if steps is not None:
        training = cfg.fit.training.model_copy(update={"steps": steps})
        cfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update={"training": training})})
    return cfg


def run_one(case, quick: bool, steps: int | None, method: str, cache: str, threads: int,
            overrides: tuple = ()):
    """Run one case; an unexpected exception becomes a failed row (the suite goes on)."""
    set_threads(threads, omp_env=True)
    from chromarate.validation import run_case

    t0 = time.perf_counter()
    try:
        res = run_case(case, config=_config(case, quick, steps, overrides), method=method,
                       cache_dir=cache)
        return res.row(), (res.rate, res.target, res.trusted)
    except Exception as exc:  # noqa: BLE001 - a crash of one case is a result too
        from chromarate.validation.scoring import peak_rss_mb

        nan = float("nan")
        row = {"case": case.name, "family": case.family, "path": case.path, "model": case.model,
               "envelope": case.envelope, "size_px": case.size_px, "pixel_nm": case.pixel_nm,
               "method": method, "r": nan, "r_resolvable": nan, "rho": nan, "bias": nan,
               "rmse": nan,
               "side_of_one": nan, "coverage90": nan, "n_pixels": 0, "baseline_r": nan,
               "delta_r": nan, "status": "failed",
               "reasons": [f"{type(exc).__name__}: {exc}"], "simulate_s": nan, "fit_s": nan,
               "run_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
               "peak_rss_delta_mb": nan, "regularisation": None,
               "meta": {"traceback": traceback.format_exc()[-4000:]}, "params": case.as_dict()}
        return row, (None, None, None)


def select(cases, patterns):
    """Cases whose name (with or without the ``@seed`` tail) matches a pattern."""
    if not patterns:
        return cases
    out = [c for c in cases if any(fnmatch.fnmatch(c.name, p) or
                                   fnmatch.fnmatch(c.name.split("@")[0], p) for p in patterns)]
    if not out:
        raise SystemExit(f"no case matches {patterns}; cases: "
                         + ", ".join(c.name for c in cases))
    return out


STATUS_COLOURS = {"ok": "tab:green", "unchecked": "tab:blue", "failed": "tab:red"}


def _crop(trusted: np.ndarray, margin: int = 3):
    rows, cols = np.nonzero(trusted)
    if rows.size == 0:
        return slice(None), slice(None)
    return (slice(max(rows.min() - margin, 0), rows.max() + margin + 1),
            slice(max(cols.min() - margin, 0), cols.max() + margin + 1))


def figure(path: Path, rows: list[dict], maps: list, n_maps: int = 4) -> None:
    """Truth and inferred lambda (trusted pixels, one colour scale per case: the truth's
    range) for the lowest- and highest-r cases, and r per case against the closed form's
    (bars coloured by QC status: green ok, orange flagged, blue unchecked, red failed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have = [i for i, m in enumerate(maps) if m[0] is not None and math.isfinite(rows[i]["r"])]
    have.sort(key=lambda i: rows[i]["r"])
    pick = have if len(have) <= n_maps else have[:n_maps // 2] + have[-(n_maps - n_maps // 2):]
    k = max(len(pick), 1)
    fig = plt.figure(figsize=(max(3.0 * k, 8.0), 9.5))
    gs = fig.add_gridspec(3, k, height_ratios=[1, 1, 1.2])
    for j, i in enumerate(pick):
        rate, target, trusted = maps[i]
        vals = target[trusted & np.isfinite(target)]
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.5, 3.0)
        if hi - lo < 1e-3:
            lo, hi = lo - 0.25, hi + 0.25
        win = _crop(trusted)
        for row, (img, label) in enumerate(((target, "truth"), (rate, "inferred"))):
            ax = fig.add_subplot(gs[row, j])
            im = ax.imshow(np.where(trusted, img, np.nan)[win], vmin=lo, vmax=hi, cmap="viridis")
            ax.set_xticks([]), ax.set_yticks([])
            title = rows[i]["case"] if row == 0 else f"r = {rows[i]['r']:.3f}"
            ax.set_title(f"{title}\n{label} (trusted pixels)", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    ax = fig.add_subplot(gs[2, :])
    x = np.arange(len(rows))
    ax.bar(x, [r["r"] if math.isfinite(r["r"]) else 0.0 for r in rows],
           color=[STATUS_COLOURS.get(r["status"], "tab:orange") for r in rows])
    ax.plot(x, [r["baseline_r"] for r in rows], "k_", markersize=12, label="closed form r")
    ax.set_xticks(x, [r["case"] for r in rows], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("Pearson r (fit, bar)")
    ax.set_ylim(-1.0, 1.0)
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scores_figure(path: Path, rows: list[dict]) -> None:
    """Per-case bars of r (PINN and closed form) and the bias of the mean, coloured by QC
    status: the figure of a merged run, whose JSON holds scores but no maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["case"])
    names = [r["case"].split("@")[0] for r in rows]
    y = np.arange(len(rows))
    nan = float("nan")
    r = [nan if r_["r"] is None else r_["r"] for r_ in rows]
    base = [nan if r_["baseline_r"] is None else r_["baseline_r"] for r_ in rows]
    ok = [r_["status"] == "ok" for r_ in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 0.32 * len(rows) + 1.2), sharey=True)
    a.barh(y - 0.2, r, 0.4, color=["tab:blue" if o else "tab:gray" for o in ok], label="PINN")
    a.barh(y + 0.2, base, 0.4, color="tab:orange", alpha=0.7, label="closed form")
    a.axvline(0.8, ls=":", c="k", lw=0.8)
    a.set_xlim(-1, 1)
    a.set_xlabel("Pearson r (grey: low_confidence)")
    a.legend(loc="lower left", fontsize=7)
    bias = [100 * r_["bias"] for r_ in rows]
    b.barh(y, bias, 0.6, color=["tab:blue" if o else "tab:gray" for o in ok])
    for x in (-10, 10):
        b.axvline(x, ls=":", c="k", lw=0.8)
    b.set_xlabel("bias of mean lambda (%)")
    a.set_yticks(y, names, fontsize=7)
    a.invert_yaxis()
    fig.suptitle(f"validation suite, seed {rows[0]['case'].split('@')[1] if rows else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DOC_COLUMNS = (  # the per-case tables of docs/validation.md: header, row key, format
    ("case", "case", "s"), ("path", "path", "s"), ("r", "r", ".3f"),
    ("r res", "r_resolvable", ".3f"), ("ρ", "rho", ".3f"), ("bias", "bias", "+.3f"),
    ("RMSE", "rmse", ".3f"), ("side1", "side_of_one", ".3f"), ("cov90", "coverage90", ".2f"),
    ("base r", "baseline_r", ".3f"), ("PINN−base", "delta_r", "+.3f"), ("status", "status", "s"),
    ("fit s", "fit_s", ".0f"),
)


def doc_table(rows: list[dict]) -> list[str]:
    """The per-case markdown table of docs/validation.md (rows sorted by case, the QC
    reasons last)."""
    head = [h for h, _, _ in DOC_COLUMNS] + ["reasons"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda row: row["case"]):
        reasons = "; ".join(r.get("reasons", [])).replace("|", "/")
        out.append("| " + " | ".join(_fmt(r.get(k), f) for _, k, f in DOC_COLUMNS)
                   + f" | {reasons} |")
    return out


def merge(paths: list[str], out: Path) -> dict:
    """Combine the rows of several runs (later files win per case) and re-summarise."""
    from chromarate.validation import summarise

    rows: dict[str, dict] = {}
    metas = []
    for p in paths:
        report = json.loads(Path(p).read_text())
        metas.append(report["meta"])
        for row in report["rows"]:
            rows[row["case"]] = row
    merged = list(rows.values())
    summary = summarise(merged)
    seeds = sorted({int(c.rsplit("@", 1)[1]) for c in rows if "@" in c})
    meta = {**metas[0], "merged_from": [str(p) for p in paths], "seeds": seeds,
            "wall_s": sum(m.get("wall_s", 0.0) for m in metas)}
    print("\n".join(table_lines(merged)))
    print()
    print("\n".join(summary_lines(summary)))
    report = {"meta": meta, "summary": summary, "rows": merged}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report, indent=1, allow_nan=True, newline=True)
    out.with_suffix(".md").write_text(markdown(merged, summary, meta))
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return report


def main(argv=None) -> dict:
    ap = parser(__doc__, first="line")
    ap.add_argument("--set", choices=["dev", "unseen"], default="dev", dest="seed_set")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="explicit seeds instead of the set's")
    ap.add_argument("--cases", nargs="+", default=None, metavar="NAME",
                    help="only these cases (names or shell patterns, with or without @seed)")
    ap.add_argument("--quick", action="store_true",
                    help="small cases (<= 64 px) and 20 fit steps; outputs get a _quick suffix")
    ap.add_argument("--steps", type=int, default=None, help="override the fit steps")
    ap.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                    help="config settings on top of the defaults, e.g. fit.prior.rate_prior=balance "
                         "(for studies; the suite's figures use none)")
    ap.add_argument("--method", choices=["pinn", "direct"], default="pinn")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "chromarate-validation"),
                    help="steady-state cache folder (default: %(default)s)")
    ap.add_argument("--out", default=None,
                    help="JSON output (default experiments/results/validation_<set>[_quick].json);"
                         " the markdown table goes beside it (.md)")
    ap.add_argument("--figure", default=None, help="write a PNG figure here")
    ap.add_argument("--workers", type=int, default=1, help="processes (one case each)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per process")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="combine earlier runs' JSON (a later file's row replaces an earlier "
                         "one of the same case) into --out, recomputing the summary; no fit")
    ap.add_argument("--doc-table", nargs="+", default=None, metavar="JSON",
                    help="print the per-case markdown table of docs/validation.md for the rows "
                         "of these result files (a later file's row replaces an earlier one "
                         "of the same case); no fit")
    args = ap.parse_args(argv)
    if args.doc_table:
        rows: dict[str, dict] = {}
        for p in args.doc_table:
            rows.update((row["case"], row) for row in json.loads(Path(p).read_text())["rows"])
        print("\n".join(doc_table(list(rows.values()))))
        return {"rows": list(rows.values())}
    if args.merge:
        report = merge(args.merge, Path(args.out) if args.out else RESULTS / "validation_merged.json")
        if args.figure:
            scores_figure(Path(args.figure), report["rows"])
            print(f"wrote {args.figure}")
        return report
    set_threads(args.threads, omp_env=True)

    import chromarate
    from chromarate.validation import DEV_SEEDS, UNSEEN_SEEDS, suite, summarise

    seeds = tuple(args.seeds) if args.seeds else \
        (DEV_SEEDS if args.seed_set == "dev" else UNSEEN_SEEDS)
    cases = select(suite(seeds, quick=args.quick), args.cases)
    suffix = "_quick" if args.quick else ""
    out = Path(args.out) if args.out else RESULTS / f"validation_{args.seed_set}{suffix}.json"
    print(f"{len(cases)} cases, seeds {list(seeds)}, method {args.method}, "
          f"{'quick, ' if args.quick else ''}cache {args.cache}", flush=True)
    t0 = time.perf_counter()
    overrides = tuple(override_pair(o) for o in args.override)
    job = (args.quick, args.steps, args.method, args.cache, args.threads, overrides)
    if args.workers > 1:
        with ProcessPoolExecutor(max_workers=args.workers, max_tasks_per_child=1) as pool:
            futures = [pool.submit(run_one, c, *job) for c in cases]
            results = []
            for c, f in zip(cases, futures):
                results.append(f.result())
                print(f"  done {c.name}", flush=True)
    else:
        results = []
        for c in cases:
            results.append(run_one(c, *job))
            r = results[-1][0]
            print(f"  done {c.name}: r={_fmt(r['r'], '.3f')} ({r['status']}, "
                  f"fit {_fmt(r['fit_s'], '.1f')} s)", flush=True)
    wall = time.perf_counter() - t0
    rows = [r for r, _ in results]
    maps = [m for _, m in results]
    summary = summarise(rows)
    meta = {"set": args.seed_set if not args.seeds else "custom", "seeds": list(seeds),
            "quick": args.quick, "method": args.method, "steps": args.steps,
            "overrides": dict(overrides),
            "chromarate": chromarate.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "workers": args.workers, "threads": args.threads,
            "wall_s": wall, "argv": sys.argv[1:] if argv is None else list(argv)}
    print()
    print("\n".join(table_lines(rows)))
    print()
    print("\n".join(summary_lines(summary)))
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "summary": summary, "rows": rows}
    write_json(out, report, indent=1, allow_nan=True, newline=True)
    md = out.with_suffix(".md")
    md.write_text(markdown(rows, summary, meta))
    print(f"\nwrote {out} and {md}")
    if args.figure:
        figure(Path(args.figure), rows, maps)
        print(f"wrote {args.figure}")
    return report


if __name__ == "__main__":
    main()
