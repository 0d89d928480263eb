"""Smoke test of experiments/fit_cpu.py: the quick mode runs and prints its ratio lines.

No timing or memory numbers are asserted (they depend on the machine and its load).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "fit_cpu.py"

pytestmark = pytest.mark.skipif(not SCRIPT.is_file(),
                                reason="experiments/fit_cpu.py is not in this checkout")


def test_fit_cpu_quick_runs_and_prints_ratios(tmp_path):
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out_json)],
        capture_output=True, text=True, timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert re.search(r"^ratio autograd/mollifier time per step: [0-9.]+x", proc.stdout, re.M), text
    assert re.search(r"^ratio autograd/mollifier peak memory: [0-9.]+x", proc.stdout, re.M), text
    assert "(a) fit_rates" in proc.stdout
    assert re.search(r"^input: (bundled sample|simulated nucleus)", proc.stdout, re.M)

    report = json.loads(out_json.read_text())
    assert report["quick"] is True
    assert report["fit"]["ok"] is True
    for backend in ("mollifier", "autograd"):
        r = report["step"][backend]
        assert r["ok"] is True
        assert r["grid"] == report["step"]["mollifier"]["grid"]  # same collocation points
        assert len(r["step_s"]) == report["steps"]
        assert r["finite"] is True
    assert set(report["ratios"]) >= {"time_per_step", "peak_memory"}


def test_fit_cpu_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--steps" in proc.stderr
