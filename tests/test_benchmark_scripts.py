"""Smoke tests of experiments/backends.py and experiments/patch_memory.py (--quick).

Only the exit status, the printed table/ratio lines and the JSON structure are checked;
no timing or memory number is asserted (they depend on the machine and its load).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "experiments"


def _run(script: str, tmp_path: Path):
    path = BENCH / script
    if not path.is_file():
        pytest.skip(f"experiments/{script} is not in this checkout")
    out_json = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(path), "--quick", "--json", str(out_json)],
                          capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    return proc.stdout, json.loads(out_json.read_text())


def test_backends_quick(tmp_path):
    out, report = _run("backends.py", tmp_path)
    assert re.search(r"^backend\s+grid\s+net points\s+s/step \(median\)\s+peak MB", out, re.M), out
    for b in ("mollifier", "autograd", "finite-difference", "spectral"):
        for side in (16, 24):
            assert re.search(rf"^{b}\s+{side}x{side}\s+[\d,]+\s+[\d.]+ m?s\s+[\d.,]+$", out, re.M), out
    for b in ("autograd", "finite-difference", "spectral"):
        for side in (16, 24):
            assert re.search(rf"^ratio {b}/mollifier {side}x{side}: time [\d.]+x, memory [\d.]+x$",
                             out, re.M), out
    assert report["quick"] is True and report["sizes"] == [16, 24]
    for b in ("mollifier", "autograd", "finite-difference", "spectral"):
        for side in ("16", "24"):
            r = report["results"][b][side]
            assert r["ok"] is True and r["finite"] is True


def test_patch_memory_quick(tmp_path):
    out, report = _run("patch_memory.py", tmp_path)
    assert re.search(r"^training\s+image\s+peak MB\s+process MB\s+s/step", out, re.M), out
    for side in (64, 96):
        assert re.search(rf"^patch 32\s+{side}x{side}\s+[\d.,]+\s+[\d.,]+\s+[\d.]+", out, re.M), out
    assert re.search(r"^no patches\s+64x64\s+[\d.,]+", out, re.M), out
    assert re.search(r"^peak memory ratio 96x96 / 64x64 with patch 32: [\d.]+x", out, re.M), out
    assert re.search(r"^peak memory ratio no patches / patch 32 at 64x64: [\d.]+x", out, re.M), out
    assert report["quick"] is True and report["patch"] == 32
    assert [r["training"] for r in report["rows"]] == ["patch 32", "patch 32", "no patches"]
    assert all(r["ok"] and r["finite_rate"] for r in report["rows"])


def test_recovery_tiny(tmp_path):
    """experiments/recovery.py on a 64 x 64 state, 5 steps, both forward solvers' cases."""
    out_json = tmp_path / "rec.json"
    for boundary in ("box", "masked"):
        proc = subprocess.run(
            [sys.executable, str(BENCH / "recovery.py"), "--size", "64", "--pixel-nm", "40",
             "--steps", "5", "--noise", "0", "0.05", "--threads", "1", "--boundary", boundary,
             "--cache", str(tmp_path / "cache"), "--out", str(out_json)],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert re.search(r"^\s+5%\s+-?[\d.]+\s+[\d.]+", proc.stdout, re.M), proc.stdout
        report = json.loads(out_json.read_text())
        assert report["boundary"] == boundary and [r["noise"] for r in report["rows"]] == [0.0, 0.05]
        for row in report["rows"]:
            assert -1.0 <= row["pinn_corr"] <= 1.0 and row["trusted_px"] > 0
