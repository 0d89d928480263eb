"""Time of the default pipeline on the bundled sample nucleus: this tree against a baseline.

Runs the default pipeline (render ... fit, quality gate) on the 256 x 256 sample nucleus with
the code of this checkout and with the code of an earlier commit (checked out into a
temporary git worktree), alternating, each in a fresh interpreter with the same thread
count, and prints the per-stage seconds of each run and the ratio of the medians. A ratio
holds on a loaded machine where an absolute time does not.

Usage::

    python experiments/default_fit_time.py --baseline 4a6f2a4 --repeats 2

The baseline commit defaults to the last commit before the data-driven calibration,
regularisation and quality gate (issue 12).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import parser, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
import chromarate
from chromarate.config import PipelineConfig
from chromarate.pipeline import Pipeline, NucleusResult
locs = chromarate.read_localizations(sys.argv[1])
t0 = time.perf_counter()
res = [r for r in Pipeline(PipelineConfig()).run(locs) if isinstance(r, NucleusResult)]
total = time.perf_counter() - t0
print("RESULT " + json.dumps({"total": total, "stages": dict(res[0].timings),
                              "package": chromarate.__file__}))
"""


def _sample(tree: Path) -> Path:
    for rel in ("chromarate/sample_data/sample_nucleus.csv.gz", "sample_data/sample_nucleus.csv.gz"):
        if (tree / rel).is_file():
            return tree / rel
    raise SystemExit(f"no sample nucleus in {tree}")


def run_once(tree: Path, sample: Path, threads: int) -> dict:
    """One pipeline run with the package of ``tree`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(sample), str(threads)], env=env,
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    if not Path(result["package"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the child imported {result['package']}, not the tree {tree}")
    return result


def main(argv=None) -> None:
    ap = parser(__doc__, first="line")
    ap.add_argument("--baseline", default="4a6f2a4", help="commit to compare with")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                        args.baseline], check=True, capture_output=True)
        try:
            sample = _sample(ROOT)
            runs: dict[str, list] = {"baseline": [], "current": []}
            for i in range(args.repeats):
                for name, tree in (("baseline", base), ("current", ROOT)):
                    r = run_once(tree, sample, args.threads)
                    runs[name].append(r)
                    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()
                                       if k in ("phase", "fit", "qc"))
                    print(f"run {i + 1} {name:>8}: total {r['total']:.1f} s ({stages})", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           capture_output=True)
    med = {k: statistics.median(r["total"] for r in v) for k, v in runs.items()}
    print(f"median total: baseline {med['baseline']:.1f} s, current {med['current']:.1f} s, "
          f"ratio current/baseline {med['current'] / med['baseline']:.2f}")
    if args.out:
        write_json(args.out, {"baseline": args.baseline, "runs": runs, "median": med,
                              "ratio": med["current"] / med["baseline"]}, indent=1)


if __name__ == "__main__":
    main()
