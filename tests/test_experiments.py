"""Smoke tests of experiments/paper_table.py, scaling.py and deepxde_heat.py (tiny sizes).

They check that each script runs end to end and writes its JSON, markdown table or plot
with the expected structure. No timing, memory or accuracy number is asserted: those
depend on the machine, its load and (at these sizes and step counts) on nothing meaningful.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "experiments"


def _run(script: str, *args: str, timeout: float = 600):
    path = BENCH / script
    if not path.is_file():
        pytest.skip(f"experiments/{script} is not in this checkout")
    env = dict(os.environ, DDE_BACKEND="pytorch")
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def test_paper_table_tiny(tmp_path):
    out = _run("paper_table.py", "--tiny", "--out", str(tmp_path))
    report = json.loads((tmp_path / "paper_table.json").read_text())
    table = (tmp_path / "paper_table.md").read_text()
    assert report["meta"]["mode"] == "tiny"
    combos = {(r["problem"], r["network"], r["backend"]) for r in report["summary"]}
    for prob in ("langevin", "heat", "chromatin"):
        for net in ("mlp", "pirate"):
            net = "fourier_mlp" if prob == "chromatin" and net == "mlp" else net
            for be in ("autograd", "mollifier"):
                assert (prob, net, be) in combos
    for net in ("fourier_mlp", "pirate"):
        assert ("chromatin", net, "chromarate fit_rates") in combos
        assert ("chromatin", net, "mollifier, weak+anchored") in combos
    for r in report["summary"]:
        assert r["n_ok"] == r["n_seeds"] == 1, r
        assert -1.0 <= r["correlation"] <= 1.0 and r["rel_l2"] >= 0
        assert r["peak_mb"] is not None and r["s_per_step"] > 0
    # every backend of one problem saw the same collocation points
    for prob in ("langevin", "heat", "chromatin"):
        cols = {r["collocation"] for r in report["summary"]
                if r["problem"] == prob and r["backend"] != "chromarate fit_rates"}
        assert len(cols) == 1, (prob, cols)
    # the like-for-like chromatin fits differ in the derivative backend only
    cfgs = {(r["network"], r["backend"]): run["config"] for r in report["rows"]
            if r["problem"] == "chromatin" and r["backend"] in ("autograd", "mollifier")
            for run in r["runs"]}
    for net in ("fourier_mlp", "pirate"):
        a, m = cfgs[(net, "autograd")], cfgs[(net, "mollifier")]
        assert a["derivative_backend"] == "autograd" and m["derivative_backend"] == "mollifier"
        assert {k for k in a if a[k] != m[k]} == {"derivative_backend"}
        assert a["pretrain_steps"] > 0 and a["network"]["parameterization"] == "free"
    assert table.count("\n| chromatin (4) |") == 8
    assert re.search(r"^\| chromatin \| fourier_mlp \| 0% \| mollifier \| [\d.]+x \| [\d.-]+x \|$",
                     table, re.M), table
    assert "wrote" in out


def test_scaling_tiny(tmp_path):
    out = _run("scaling.py", "--tiny", "--out", str(tmp_path))
    report = json.loads((tmp_path / "scaling.json").read_text())
    png = (tmp_path / "scaling.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert set(report["series"]) == {"mollifier", "mollifier, patches", "autograd"}
    assert [r["side"] for r in report["series"]["mollifier"]] == [16, 24]
    assert [r["side"] for r in report["series"]["mollifier, patches"]] == [48, 64]
    for r in report["series"]["mollifier"] + report["series"]["mollifier, patches"]:
        assert r["ok"] and r["median_s"] > 0 and r["peak_mb"] >= 0
    assert re.search(r"^autograd\s+16\s+256\s", out, re.M), out


def test_deepxde_heat_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("DDE_BACKEND", "pytorch")
    pytest.importorskip("deepxde", reason="deepxde is in the optional 'bench' extra: "
                        "pip install -e '.[bench]'")
    out = _run("deepxde_heat.py", "--tiny", "--out", str(tmp_path))
    report = json.loads((tmp_path / "deepxde_heat.json").read_text())
    methods = [r["method"] for r in report["rows"]]
    assert methods == ["deepxde", "chromarate/mollifier", "chromarate/autograd"]
    for r in report["rows"][1:]:
        assert r["runs"] and all(x["ok"] for x in r["runs"])
    assert report["rows"][0]["runs"], report["rows"][0]
    assert re.search(r"^\| chromarate/mollifier \| -?[\d.]+ \[", out, re.M), out


def test_gpu_sh_dry_run(tmp_path):
    """experiments/gpu.sh on the CPU with the tiny mode: the in-process (GPU) code path."""
    script = BENCH / "gpu.sh"
    if not script.is_file():
        pytest.skip("experiments/gpu.sh is not in this checkout")
    # PYTHON: the script runs this interpreter, not whatever 'python' is first on PATH
    env = dict(os.environ, BENCH_DEVICE="cpu", BENCH_MODE="tiny", BENCH_LIMIT_S="500",
               PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    report = json.loads((tmp_path / "paper_table.json").read_text())
    assert report["meta"]["jobs"] == 1 and report["meta"]["mode"] == "tiny"
    # 3 problems x 2 networks x 2 backends, 2 weak+anchored and 2 fit_rates chromatin rows
    assert len(report["summary"]) == 16 and not report["skipped"]
    assert (tmp_path / "paper_table.md").is_file() and (tmp_path / "environment.txt").is_file()
    assert "gpu.sh: exit 0" in (tmp_path / "paper_table.log").read_text()


@pytest.fixture
def paper_table(monkeypatch):
    if not (BENCH / "paper_table.py").is_file():
        pytest.skip("experiments/paper_table.py is not in this checkout")
    monkeypatch.syspath_prepend(str(BENCH))
    import paper_table

    return paper_table


def test_time_to_target_needs_the_correlation_to_stay(paper_table):
    hist = [[10, 1.0, 0.95], [20, 2.0, 0.5], [30, 3.0, 0.91], [40, 4.0, 0.93]]
    assert paper_table.time_to_target(hist, 0.9) == 3.0
    assert paper_table.time_to_target(hist[:2], 0.9) is None
    assert paper_table.time_to_target([[5, 0.5, float("nan")], [10, 1.0, 0.99]], 0.9) == 1.0


def test_monitored_fit_times_exclude_the_monitor(paper_table, monkeypatch):
    """With a fake clock: 1 s per Adam step, 0.5 s per monitor call, 2 s pre-training;
    logged steps 5, 10, 15, 20 with correlations 0.5, 0.95, 0.97, 0.99 against the truth."""
    import numpy as np

    import chromarate.fit.loop as loop
    from chromarate._types import FitDone, FitResult
    from chromarate.config import FitConfig

    clock = [100.0]
    monkeypatch.setattr(paper_table.time, "perf_counter", lambda: clock[0])
    rng = np.random.default_rng(0)
    truth = 1.0 + rng.random((8, 8))
    noise = rng.standard_normal((8, 8))
    maps = {5: truth + 3.0 * noise, 10: truth + 0.1 * noise, 15: truth + 0.05 * noise,
            20: truth + 0.01 * noise}

    def fake_iter_fit(fields, cfg, *, device, monitor):
        clock[0] += 2.0  # pre-training
        for step in (5, 10, 15, 20):
            clock[0] += 5.0  # five Adam steps

            def rate_map(step=step):
                clock[0] += 0.5
                return maps[step]
            monitor(step, rate_map)
        yield FitDone(FitResult(rate=maps[20], phi_d_fit=truth, residual=truth,
                                trusted=np.ones((8, 8), bool),
                                timings={"fit": clock[0] - 100.0, "train": 22.0, "pretrain": 2.0}))

    monkeypatch.setattr(loop, "iter_fit", fake_iter_fit)
    out = paper_table.monitored_fit(None, FitConfig(steps=20), truth, target=0.9, device="cpu")
    assert out["s_per_step"] == pytest.approx(1.0)
    assert out["train_s"] == pytest.approx(22.0)  # 24 s on the clock minus 4 x 0.5 s monitor
    corr = [h[2] for h in out["history"]]
    assert corr[0] < 0.9 <= min(corr[1:])
    # pre-training 2 s + 10 Adam steps = 12 s at the first logged step that stays >= 0.9
    assert out["time_to_target_s"] == pytest.approx(12.0)
    assert out["correlation"] == pytest.approx(corr[-1])
