"""Tests of the long studies in ``experiments/`` and of their shared harness.

The smoke tests run each script end to end at tiny sizes in a subprocess and check its exit
status, printed table / ratio lines and the structure of its JSON, markdown table or plot.
No timing, memory or accuracy number is asserted: those depend on the machine, its load and
(at these sizes and step counts) on nothing meaningful. They take minutes together, so they
are marked ``slow`` (the CI's slow step runs them: ``pytest -m slow tests/test_experiments.py``);
the unit tests of the harness and of the ``paper_table`` helpers stay in the default run.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _script(name: str) -> Path:
    path = EXPERIMENTS / name
    if not path.is_file():
        pytest.skip(f"experiments/{name} is not in this checkout")
    return path


def _run(script: str, *args: str, timeout: float = 600) -> str:
    env = dict(os.environ, DDE_BACKEND="pytorch")
    proc = subprocess.run([sys.executable, str(_script(script)), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def _run_quick_json(script: str, tmp_path: Path):
    out_json = tmp_path / "out.json"
    out = _run(script, "--quick", "--json", str(out_json), timeout=300)
    return out, json.loads(out_json.read_text())


# ---------------------------------------------------------------------------------------
# the shared harness (fast)
# ---------------------------------------------------------------------------------------

@pytest.fixture
def harness(monkeypatch):
    _script("_harness.py")
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import _harness

    return _harness


_CHILD_SCRIPT = """
import sys, time
sys.path.insert(0, {exp!r})
import _harness as H
ap = H.parser(__doc__)
H.add_child_option(ap)
spec = H.child_spec(ap.parse_args())
if spec["kind"] == "ok":
    H.emit({{"ok": True, "twice": 2 * spec["x"]}})
elif spec["kind"] == "crash":
    raise RuntimeError("boom")
else:
    time.sleep(30)
"""


def test_harness_case_names_overrides_and_largest_task(harness):
    """``seedN`` / ``seedN-nM`` names parse to (N, M), other names to None, a malformed
    ``seed`` name exits; overrides read their values as YAML, as ``--set`` does; the
    largest task is the one with the most mask pixels."""
    from types import SimpleNamespace

    assert harness.seed_name("seed5") == (5, None)
    assert harness.seed_name("seed53-n100000") == (53, 100000)
    assert harness.seed_name("domains-box-loc1M@101") is None
    with pytest.raises(SystemExit, match="seedN-nM"):
        harness.seed_name("seed5-100k")
    assert harness.override_pair("fit.prior.shared_departure_limit=null") == (
        "fit.prior.shared_departure_limit", None)
    assert harness.override_pair("a.b=0.5") == ("a.b", 0.5)
    assert harness.override_pair("phase.calibration=physics_censored")[1] == "physics_censored"
    with pytest.raises(SystemExit):
        harness.override_pair("no-equals-sign")
    tasks = [SimpleNamespace(mask=np.ones((n, n), bool), n=n) for n in (3, 7, 5)]
    assert harness.largest_task(tasks).n == 7
    with pytest.raises(SystemExit):
        harness.largest_task([])


def test_calibration_at_bound_counts_grid_points_and_their_bias(tmp_path):
    """experiments/calibration_at_bound.py: a scale on the calibration's grid counts as
    stopped there (a parabola vertex does not), uncalibrated nuclei are left out, a case
    in two files counts once, and both result formats are read."""
    sys.path.insert(0, str(_script("calibration_at_bound.py").parent))
    from calibration_at_bound import on_grid, summarise

    assert on_grid(0.85) and not on_grid(0.8517) and not on_grid(None)
    row = lambda case, scale, bias, method="physics": {  # noqa: E731
        "case": case, "bias": bias, "meta": {"calibration": {"method": method, "scale": scale}}}
    suite = tmp_path / "v.json"
    suite.write_text(json.dumps({"rows": [
        row("hetero@1", 0.85, 0.10), row("hetero@2", 0.8517, 0.02), row("hetero@3", 0.9, 0.04),
        row("hetero@4", 1.0, 0.5, method="none")]}))
    seeds = tmp_path / "s.json"
    seeds.write_text(json.dumps([{"seed": 1, "calibration_scale": 0.85, "bias": 0.03},
                                 {"seed": 2, "calibration_scale": 0.8734, "bias": -0.01}]))
    out = summarise([suite, seeds, suite])
    h, s = out["hetero"], out["simulate"]
    assert (h["n"], h["on_grid"]) == (3, 2) and h["cases_on_grid"] == ["hetero@1", "hetero@3"]
    assert h["mean_bias_on_grid"] == pytest.approx(0.07) and h["mean_bias_off_grid"] == 0.02
    assert h["rms_bias"] == pytest.approx(np.sqrt((0.01 + 0.0004 + 0.0016) / 3))
    assert (s["n"], s["on_grid"], s["mean_bias_on_grid"]) == (2, 1, 0.03)
    assert "level" not in h
    assert (s["min_bias"], s["max_bias"]) == (-0.01, 0.03)
    assert out["all"]["n"] == 5 and out["all"]["min"] == -0.01 and out["all"]["max"] == 0.10
    assert out["all"]["mean"] == pytest.approx((0.10 + 0.02 + 0.04 + 0.03 - 0.01) / 5)
    # the interval's coverage counted in 80-98 %, and a chosen subset of cases
    covered = tmp_path / "c.json"
    covered.write_text(json.dumps([
        {"seed": s, "calibration_scale": 0.86, "bias": 0.01, "coverage90": c}
        for s, c in ((1, 0.79), (2, 0.80), (3, 0.98), (4, 0.99), (5, None))]))
    assert summarise([covered])["simulate"]["coverage_in_range"] == 2
    some = summarise([covered], only={"seed1", "seed3"})
    assert some["all"]["n"] == 2 and some["all"]["coverage_in_range"] == 1
    # with the censored level's factor: the bias before it is (1 + bias) / factor - 1
    lv = tmp_path / "l.json"
    levelled = row("hetero@5", 0.85, 0.01)
    levelled["meta"]["calibration"]["level_factor"] = 0.9
    lv.write_text(json.dumps({"rows": [levelled, row("hetero@6", 0.9, -0.02)]}))
    seeds_lv = tmp_path / "sl.json"
    seeds_lv.write_text(json.dumps([{"seed": 3, "calibration_scale": 0.85, "bias": -0.2,
                                     "calibration_level_factor": 0.8}]))
    level = summarise([lv, seeds_lv])
    assert level["hetero"]["level"]["n"] == 1
    assert level["hetero"]["level"]["before"]["mean"] == pytest.approx(1.01 / 0.9 - 1)
    assert level["hetero"]["level"]["after"] == {"mean": 0.01, "rms": 0.01, "worst": 0.01,
                                                 "over_10pct": 0}
    sim = level["simulate"]["level"]
    assert sim["before"]["worst"] == pytest.approx(0.0) and sim["before"]["over_10pct"] == 0
    assert sim["after"]["over_10pct"] == 1 and sim["factors"] == {"seed3": 0.8}
    assert level["hetero"]["coverage_in_range"] is None  # no coverage recorded
    # the factor raised to a power: 0 is the bias before it, 1 as applied
    powered = summarise([lv, seeds_lv], powers=[0.0, 0.5, 1.0])["simulate"]["level"]["powers"]
    assert powered["0.0"] == sim["before"] and powered["1.0"]["mean"] == pytest.approx(-0.2)
    assert powered["0.5"]["mean"] == pytest.approx(0.8 ** 0.5 - 1)  # before: 0 bias
    whole = summarise([lv, seeds_lv], powers=[0.5])["hetero"]["level"]["powers_all"]["0.5"]
    assert whole["n"] == 2 and whole["max"] == pytest.approx(1.01 / 0.9 * 0.9 ** 0.5 - 1)
    assert whole["min"] == -0.02  # the nucleus without a factor as it was
    # level_factor.py's rows: the default's bias, and the factor only where pinned
    lf = tmp_path / "lf.json"
    lf.write_text(json.dumps({"rows": [
        {"case": "seed7", "bias_at_bound": -0.03, "bias_never": 0.02,
         "calibration": {"method": "physics", "scale": 0.85, "pinned": True, "level_factor": 0.95}},
        {"case": "hetero@9", "bias_at_bound": 0.04, "bias_never": 0.04,
         "calibration": {"method": "physics", "scale": 0.87, "pinned": False, "level_factor": 0.9}}]}))
    read = summarise([lf])
    assert read["simulate"]["level"]["factors"] == {"seed7": 0.95}
    assert read["simulate"]["mean_bias"] == -0.03 and "level" not in read["hetero"]
    # a result written under a share records the ratio: the powers raise the ratio, the
    # factor applied is divided out (0.9 applied = 0.81 ** 0.5)
    shared = tmp_path / "sh.json"
    shared.write_text(json.dumps([{"seed": 4, "calibration_scale": 0.85, "bias": 0.0,
                                   "calibration_level_factor": 0.9,
                                   "calibration_level_ratio": 0.81}]))
    lv4 = summarise([shared], powers=[0.0, 1.0])["simulate"]["level"]["powers"]
    assert lv4["0.0"]["mean"] == pytest.approx(1 / 0.9 - 1)
    assert lv4["1.0"]["mean"] == pytest.approx(0.81 / 0.9 - 1)
    # a level_factor.py row whose stored fit had another scale is left out
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"rows": [
        {"case": "seed8", "bias_at_bound": 0.0, "bias_never": 0.0, "scale_stored": 0.9,
         "calibration": {"method": "physics", "scale": 0.85}}]}))
    assert summarise([stale]) == {}
    # a refused ratio stands for no level at any share
    refused = tmp_path / "ref.json"
    refused.write_text(json.dumps([{"seed": 5, "calibration_scale": 0.85, "bias": 0.1,
                                    "calibration_level_factor": 1.0,
                                    "calibration_level_ratio": 0.7,
                                    "calibration_level_skipped": "outside 1 +- 0.25"}]))
    assert summarise([refused], powers=[1.0])["simulate"]["level"]["powers"]["1.0"]["mean"] == \
        pytest.approx(0.1)
    # the coverage split and the pooled line at each power
    cov = summarise([covered], powers=[1.0])
    assert cov["all"]["coverage"] == {"in_range": 2, "wider": 1, "narrower": 1,
                                      "mean": pytest.approx((0.79 + 0.80 + 0.98 + 0.99) / 4)}
    cov = summarise([shared, covered], powers=[1.0])  # seed 4 from the first file
    assert cov["all"]["powers"]["1.0"]["n"] == 5 and cov["all"]["coverage"]["wider"] == 0
    assert cov["all"]["powers"]["1.0"]["min"] == pytest.approx(0.81 / 0.9 - 1)


def test_validation_doc_table_from_stored_rows(tmp_path, capsys):
    """experiments/validation.py --doc-table: the docs' per-case table from result files, rows
    sorted by case, a later file's row replacing an earlier one, missing figures as '-' and
    a '|' in a reason escaped."""
    sys.path.insert(0, str(_script("validation.py").parent))
    import validation

    row = {"case": "b@1", "path": "fields", "r": 0.91234, "r_resolvable": None, "rho": 0.9,
           "bias": -0.0123, "rmse": 0.1, "side_of_one": 1.0, "coverage90": 0.876,
           "baseline_r": 0.9, "delta_r": 0.01234, "status": "ok", "fit_s": 12.4, "reasons": []}
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"rows": [row, {**row, "case": "a@1", "r": float("nan"),
                                                 "status": "low_confidence",
                                                 "reasons": ["x | y"]}]}))
    second.write_text(json.dumps({"rows": [{**row, "r": 0.5}]}))
    validation.main(["--doc-table", str(first), str(second)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| case | path | r | r res |") and lines[0].endswith("| reasons |")
    assert lines[2] == ("| a@1 | fields | - | - | 0.900 | -0.012 | 0.100 | 1.000 | 0.88 | 0.900 "
                        "| +0.012 | low_confidence | 12 | x / y |")
    assert lines[3].startswith("| b@1 | fields | 0.500 | - |") and len(lines) == 4


def test_level_factor_reads_stored_fits_and_applies_the_factor(tmp_path):
    """experiments/level_factor.py: a stored fit's bias has any factor it carried divided
    out; the at-bound variant applies the factor only to pinned nuclei, the always variant
    everywhere; the first file with a case wins; recipes are summarised apart."""
    sys.path.insert(0, str(_script("level_factor.py").parent))
    from level_factor import stored_biases, summarise, with_factors

    suite = tmp_path / "v.json"
    suite.write_text(json.dumps({"rows": [
        {"case": "hetero@1", "bias": 0.01, "r": 0.8, "status": "ok",
         "meta": {"calibration": {"scale": 0.85, "level_factor": 0.9}}},
        {"case": "box@1", "bias": 0.05, "r": 0.9, "status": "ok",
         "meta": {"calibration": {"scale": 0.8}}}]}))
    later = tmp_path / "w.json"
    later.write_text(json.dumps({"rows": [{"case": "box@1", "bias": 0.5, "r": 0.1, "meta": {}}]}))
    seeds = tmp_path / "s.json"
    seeds.write_text(json.dumps([{"seed": 3, "bias": 0.04, "r": 0.98, "status": "ok",
                                  "calibration_scale": 0.85}]))
    stored = stored_biases([suite, later, seeds])
    assert stored["hetero@1"]["bias"] == pytest.approx(1.01 / 0.9 - 1)
    assert stored["box@1"]["bias"] == pytest.approx(0.05) and stored["seed3"]["scale"] == 0.85
    pinned = with_factors(stored["seed3"], {"level_factor": 0.9, "pinned": True})
    free = with_factors(stored["box@1"], {"level_factor": 0.9, "pinned": False})
    assert pinned["bias_at_bound"] == pinned["bias_always"] == pytest.approx(1.04 * 0.9 - 1)
    assert free["bias_at_bound"] == free["bias_never"] == pytest.approx(0.05)
    assert free["bias_always"] == pytest.approx(1.05 * 0.9 - 1)
    rows = [{"case": "seed3", "calibration": {"pinned": True}, **pinned},
            {"case": "box@1", "calibration": {}, **free}, {"case": "box@2", "calibration": {}}]
    out = summarise(rows)
    assert set(out) == {"simulate", "box"} and out["simulate"]["pinned"] == 1
    assert out["box"]["n"] == 1 and out["box"]["always"]["mean"] == pytest.approx(1.05 * 0.9 - 1)
    assert out["box"]["never"]["over_10pct"] == 0


def test_harness_child_result_ok_crash_and_timeout(harness, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD_SCRIPT.format(exp=str(EXPERIMENTS)))
    ok = harness.child_result(str(script), {"kind": "ok", "x": 21}, 60)
    assert ok == {"ok": True, "twice": 42}
    crash = harness.child_result(str(script), {"kind": "crash"}, 60)
    assert crash["ok"] is False and crash["reason"] == "crash" and "boom" in crash["message"]
    slow = harness.child_result(str(script), {"kind": "sleep"}, 1,
                                on_failure=lambda f: ("failed", f["reason"]))
    assert slow == ("failed", "timeout")


def test_harness_formatting_and_json(harness, tmp_path):
    assert harness.fmt_mb(None) == "-" and harness.fmt_mb(6293.25) == "6,293.2"
    assert harness.fmt_s(0.12944) == "0.1294" and harness.fmt_s(7.021) == "7.02"
    assert harness.fmt_duration(0.0125) == "12.5 ms" and harness.fmt_duration(1.254) == "1.25 s"
    assert harness.aligned([["a", "bb"], ["ccc", "d"]], right=[1]) == ["a    bb", "ccc   d"]
    harness.write_json(tmp_path / "r.json", {"x": float("nan")}, indent=1, newline=True)
    text = (tmp_path / "r.json").read_text()
    assert text.endswith("}\n") and "NaN" in text
    assert harness.is_oom(MemoryError()) and harness.is_oom(RuntimeError("CUDA out of memory"))
    assert not harness.is_oom(RuntimeError("shape mismatch"))
    assert harness.default_mem_cap(123.0) == 123.0


def test_no_script_keeps_its_own_copy_of_the_harness():
    """The child-process protocol and the memory helpers live in _harness.py only."""
    for path in sorted(EXPERIMENTS.glob("*.py")):
        if path.name == "_harness.py":
            continue
        text = path.read_text()
        assert "RESULT_TAG = " not in text and "def call_child" not in text, path.name
        assert "def _maxrss_mb" not in text and "resource.setrlimit" not in text, path.name


def test_fit_cpu_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, str(_script("fit_cpu.py")), "--steps", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--steps" in proc.stderr


# ---------------------------------------------------------------------------------------
# smoke tests of the scripts (slow)
# ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_fit_cpu_quick_runs_and_prints_ratios(tmp_path):
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(_script("fit_cpu.py")), "--quick", "--json", str(out_json)],
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


@pytest.mark.slow
def test_backends_quick(tmp_path):
    out, report = _run_quick_json("backends.py", tmp_path)
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


@pytest.mark.slow
def test_patch_memory_quick(tmp_path):
    out, report = _run_quick_json("patch_memory.py", tmp_path)
    assert re.search(r"^training\s+image\s+peak MB\s+process MB\s+s/step", out, re.M), out
    for side in (64, 96):
        assert re.search(rf"^patch 32\s+{side}x{side}\s+[\d.,]+\s+[\d.,]+\s+[\d.]+", out, re.M), out
    assert re.search(r"^no patches\s+64x64\s+[\d.,]+", out, re.M), out
    assert re.search(r"^peak memory ratio 96x96 / 64x64 with patch 32: [\d.]+x", out, re.M), out
    assert re.search(r"^peak memory ratio no patches / patch 32 at 64x64: [\d.]+x", out, re.M), out
    assert report["quick"] is True and report["patch"] == 32
    assert [r["training"] for r in report["rows"]] == ["patch 32", "patch 32", "no patches"]
    assert all(r["ok"] and r["finite_rate"] for r in report["rows"])


@pytest.mark.slow
def test_recovery_tiny(tmp_path):
    """experiments/recovery.py on a 64 x 64 state, 5 steps, both forward solvers' cases."""
    out_json = tmp_path / "rec.json"
    for boundary in ("box", "masked"):
        proc = subprocess.run(
            [sys.executable, str(_script("recovery.py")), "--size", "64", "--pixel-nm", "40",
             "--steps", "5", "--noise", "0", "0.05", "--threads", "1", "--boundary", boundary,
             "--cache", str(tmp_path / "cache"), "--out", str(out_json)],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert re.search(r"^\s+5%\s+-?[\d.]+\s+[\d.]+", proc.stdout, re.M), proc.stdout
        report = json.loads(out_json.read_text())
        assert report["boundary"] == boundary and [r["noise"] for r in report["rows"]] == [0.0, 0.05]
        for row in report["rows"]:
            assert -1.0 <= row["pinn_corr"] <= 1.0 and row["trusted_px"] > 0


@pytest.mark.slow
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
        assert a["training"]["pretrain_steps"] > 0 and a["network"]["parameterization"] == "free"
    assert table.count("\n| chromatin (4) |") == 8
    assert re.search(r"^\| chromatin \| fourier_mlp \| 0% \| mollifier \| [\d.]+x \| [\d.-]+x \|$",
                     table, re.M), table
    assert "wrote" in out


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_gpu_sh_dry_run(tmp_path):
    """experiments/gpu.sh on the CPU with the tiny mode: the in-process (GPU) code path."""
    script = _script("gpu.sh")
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


@pytest.mark.slow
def test_render_benchmark_quick_runs():
    out = _run("render.py", "--quick", timeout=300)
    for method in ("histogram", "gaussian"):
        assert f"ratio {method}/histogram2d time" in out, out
        assert f"ratio {method}/histogram2d peak memory" in out, out


# ---------------------------------------------------------------------------------------
# paper_table helpers (fast)
# ---------------------------------------------------------------------------------------

@pytest.fixture
def paper_table(monkeypatch):
    _script("paper_table.py")
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
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
    out = paper_table.monitored_fit(None, FitConfig(training=dict(steps=20)), truth, target=0.9, device="cpu")
    assert out["s_per_step"] == pytest.approx(1.0)
    assert out["train_s"] == pytest.approx(22.0)  # 24 s on the clock minus 4 x 0.5 s monitor
    corr = [h[2] for h in out["history"]]
    assert corr[0] < 0.9 <= min(corr[1:])
    # pre-training 2 s + 10 Adam steps = 12 s at the first logged step that stays >= 0.9
    assert out["time_to_target_s"] == pytest.approx(12.0)
    assert out["correlation"] == pytest.approx(corr[-1])


@pytest.mark.slow
def test_prior_sweep_quick(tmp_path):
    """A fixed prior through the PINN and the linear surrogate with its cross-validation, on
    the small version of a development case: every number comes back finite."""
    out_json = tmp_path / "out.json"
    out = _run("prior_sweep.py", "--quick", "--cases", "step-box-n1@101", "--priors", "1e-3:0.15",
               "--steps", "5", "--surrogate", "1e-3", "1", "--cv", "--json", str(out_json),
               timeout=600)
    assert re.search(r"^step-box-n1@101  surrogate window 0.15 um  r: 0.001:-?[\d.]+ 1:-?[\d.]+  "
                     r"\(\d+x\d+, [\d.]+ s per solve\)$", out, re.M), out
    assert re.search(r"^step-box-n1@101  cv_guard: [\d.]+ [\d.]+  -> (0.001|1)$", out, re.M), out
    assert re.search(r"rate_smoothness=0.001, test_window_um=0.15\s+r=-?[\d.]+", out), out
    case = json.loads(out_json.read_text())["cases"]["step-box-n1@101"]
    assert len(case["surrogate"]["r"]) == 2 and all(math.isfinite(r) for r in case["surrogate"]["r"])
    assert all(v > 0 for v in case["surrogate"]["cv_no_guard"] + case["surrogate"]["cv_guard"])
    assert case["priors"][0]["rate_smoothness"] == 1e-3 and math.isfinite(case["priors"][0]["r"])


@pytest.mark.slow
def test_prior_sweep_split_half_quick(tmp_path):
    """Split-half validation on the small version of a localization case: both scores and
    both r rows come back, one value per strength, the scores positive."""
    out_json = tmp_path / "out.json"
    out = _run("prior_sweep.py", "--quick", "--cases", "domains-box-loc1M@101", "--split-half",
               "1e-3", "1", "--window", "0.25", "--json", str(out_json), timeout=600)
    assert re.search(r"^domains-box-loc1M@101  split-half picks (0.001|1) \(residual\), "
                     r"(0.001|1) \(lambda\)", out, re.M), out
    row = json.loads(out_json.read_text())["cases"]["domains-box-loc1M@101"]["split_half"]
    assert row["strengths"] == [1e-3, 1.0]
    for key in ("split_score", "split_score_lambda", "split_corr", "r_full", "r_half_a"):
        assert len(row[key]) == 2 and all(math.isfinite(v) for v in row[key]), key
    assert all(v > 0 for v in row["split_score"] + row["split_score_lambda"])


@pytest.mark.slow
def test_prior_sweep_truth_blur_quick(tmp_path):
    """The true fields of a small suite case blurred by 30 nm, without and with the blur
    correction: r and the bias of the mean per strength, the unblurred row unaffected by
    the correction (it has no blur to correct)."""
    out_json = tmp_path / "out.json"
    out = _run("prior_sweep.py", "--quick", "--cases", "hetero-box-n1@101", "--truth-blur", "0", "30",
               "--surrogate", "1e-3", "1", "--window", "0.15", "--json", str(out_json), timeout=600)
    assert re.search(r"^hetero-box-n1@101  true fields blurred 30 nm, corrected \(kernel radius "
                     r"[\d.]+ px\)  r \(bias\): 0.001:-?[\d.]+ \([+-][\d.]+\)", out, re.M), out
    rows = json.loads(out_json.read_text())["cases"]["hetero-box-n1@101"]["truth_blur"]
    assert [r["blur_nm"] for r in rows] == [0.0, 30.0]
    for row in rows:
        for key in ("r", "r_corrected", "bias", "bias_corrected"):
            assert len(row[key]) == 2 and all(math.isfinite(v) for v in row[key]), key
    assert rows[0]["r"] == rows[0]["r_corrected"]


@pytest.mark.slow
def test_prior_sweep_radii_and_interval_area_quick(tmp_path):
    """Fixed kernel radii scored on both regions, and the interval's correlation areas, on
    the small version of a development case: the numbers come back and are in range."""
    out_json = tmp_path / "out.json"
    out = _run("prior_sweep.py", "--quick", "--cases", "step-box-n1@101", "--radii", "8",
               "--interval-area", "--json", str(out_json), timeout=600)
    assert re.search(r"^step-box-n1@101  window [\d.]+ px  area used [\d.e+-]+ \(coverage [\d.]+\)",
                     out, re.M), out
    case = json.loads(out_json.read_text())["cases"]["step-box-n1@101"]
    area = case["interval_area"]
    assert area["area_central"] >= 1.0 and area["area_band"] > 0 and area["area_90"] > 0
    for key in ("coverage_central", "coverage_band", "coverage_bias_only"):
        assert 0.0 <= area[key] <= 1.0
    radii = case["radii"]
    assert [r["radius_px"] for r in radii] == ["auto", 8.0]
    assert all(-1.0 <= r["r"] <= 1.0 and r["n_own"] > 0 for r in radii)
    assert radii[0]["r_on_default_region"] == radii[0]["r"]


@pytest.mark.slow
def test_prior_sweep_density_and_fourier_scales_quick(tmp_path):
    """Fixed density scales on a localization case of a seed outside both sets (``--set
    any``), fixed rate-network Fourier scales in place of the window rule, and the
    observation variants: one row per value, the fixed scale is the one the fit used."""
    out_json = tmp_path / "out.json"
    out = _run("prior_sweep.py", "--quick", "--set", "any", "--cases", "domains-box-loc1M@7",
               "--density-scales", "0.8", "0.9", "--fourier-scales", "1.7", "--observation-variants",
               "--json", str(out_json), timeout=900)
    assert re.search(r"^domains-box-loc1M@7  baseline_scale=0.8\s+r=-?[\d.]+", out, re.M), out
    case = json.loads(out_json.read_text())["cases"]["domains-box-loc1M@7"]
    assert [r["baseline_scale"] for r in case["density_scales"]] == [0.8, 0.9]
    assert all(-1.0 <= r["r"] <= 1.0 for r in case["density_scales"])
    assert case["fourier"][0]["rate_fourier_scale_per_um"] == 1.7
    assert case["fourier"][0]["chosen_fourier"] == 1.7
    variants = case["observation_variants"]
    assert [v["variant"] for v in variants] == ["as drawn", "no background", "no blinking",
                                                "4x localizations", "precision 10 nm"]
    assert all(-1.0 <= v["r"] <= 1.0 for v in variants)


@pytest.mark.slow
def test_recovery_default_config_tiny(tmp_path):
    """experiments/recovery.py with the shipped defaults (prior and kernel radius chosen from
    the data) on a 64 x 64 state: one row per noise level, r in range."""
    out_json = tmp_path / "rec.json"
    _run("recovery.py", "--size", "64", "--pixel-nm", "40", "--steps", "5", "--noise", "0.01",
         "--threads", "1", "--default-config", "--cache", str(tmp_path / "cache"),
         "--out", str(out_json), timeout=300)
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["noise"] for r in rows] == [0.01] and -1.0 <= rows[0]["pinn_corr"] <= 1.0


@pytest.mark.slow
def test_rendered_diagnosis_quick(tmp_path):
    """The diagnosis of a small rendered case: a line fitted to observed vs true density,
    and the closed form's r on the four kinds of fields, each on a reported region."""
    out_json = tmp_path / "out.json"
    out = _run("rendered_diagnosis.py", "--quick", "domains-box-loc1M@7", "--json",
               str(out_json), timeout=900)
    assert re.search(r"^domains-box-loc1M@7: observed = [\d.]+ truth", out, re.M), out
    (row,) = json.loads(out_json.read_text())
    assert row["gain"] > 0 and row["scatter_over_signal"] > 0
    assert 0.0 <= row["binned_line_deviation_phi"] < 1.0
    for key in ("calibrated", "oracle_affine", "truth_calibrated", "truth_exact", "truth_unblurred"):
        assert -1.0 <= row[key]["r"] <= 1.0 and 0.0 < row[key]["reported_fraction"] <= 1.0


@pytest.mark.slow
def test_split_half_cost_quick(tmp_path):
    """The split-half check's parts are timed against the nucleus' work in the same run."""
    out_json = tmp_path / "out.json"
    out = _run("split_half_cost.py", "--quick", "domains-box-loc1M@7", "--repeats", "1",
               "--json", str(out_json), timeout=900)
    assert re.search(r"^domains-box-loc1M@7: \d+ localizations", out, re.M), out
    (row,) = json.loads(out_json.read_text())
    assert 0.0 < row["check_s"] and 0.0 < row["nucleus_s"]
    assert row["check_over_nucleus"] == pytest.approx(row["check_s"] / row["nucleus_s"])


@pytest.mark.slow
def test_coverage_parts_quick(tmp_path):
    """Every interval variant's coverage of a small fields case comes back as a fraction,
    and a localization case is refused with its reason."""
    out_json = tmp_path / "out.json"
    out = _run("coverage_parts.py", "--quick", "bump-env-n1@101", "--json", str(out_json),
               timeout=600)
    assert re.search(r"^bump-env-n1@101\s+-?[\d.]+(\s+[\d.]+){6}$", out, re.M), out
    (row,) = json.loads(out_json.read_text())["rows"]
    for key in ("current", "noise_only", "bias_only", "debiased", "gauss_bias", "max"):
        assert 0.0 <= row[key] <= 1.0
    # a wider interval covers at least as much: sum >= larger >= each part (the shipped
    # interval is float32, hence the tolerance)
    assert row["current"] >= row["max"] - 0.01
    assert row["max"] >= max(row["noise_only"], row["bias_only"])
    proc = subprocess.run([sys.executable, str(_script("coverage_parts.py")), "--quick",
                           "domains-box-loc1M@101"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "domains-box-loc1M@101" in proc.stderr


@pytest.mark.slow
def test_halves_bias_quick(tmp_path):
    """The jackknife bias study runs the pipeline on a small localization case and returns
    coverages as fractions and finite biases."""
    out_json = tmp_path / "out.json"
    out = _run("halves_bias.py", "--quick", "domains-box-loc1M@101", "--json", str(out_json),
               timeout=600)
    assert re.search(r"^domains-box-loc1M@101(\s+-?[\d.]+){8}$", out, re.M), out
    assert re.search(r"^mean \|bias\| [\d.]+ shipped, [\d.]+ with beta subtracted", out, re.M), out
    (row,) = json.loads(out_json.read_text())["rows"]
    for key in ("coverage_shipped", "coverage_with_beta", "coverage_with_mean_beta"):
        assert 0.0 <= row[key] <= 1.0
    # a term added in quadrature only widens the interval
    assert row["coverage_with_beta"] >= row["coverage_shipped"]
    assert row["coverage_with_mean_beta"] >= row["coverage_shipped"]
    assert math.isfinite(row["bias"]) and math.isfinite(row["bias_corrected"])


@pytest.mark.slow
def test_noise_bias_quick(tmp_path):
    """The noise-bias study maps a small localization case, measures the noise of phi_h
    from its halves and scores the closed form with and without the correction."""
    out_json = tmp_path / "out.json"
    out = _run("noise_bias.py", "--quick", "domains-box-loc1M@7", "--variants", "plain",
               "poisson", "exact", "--json", str(out_json), timeout=600)
    assert re.search(r"^domains-box-loc1M@7: median noise sd of phi_h [\d.]+$", out, re.M), out
    (row,) = json.loads(out_json.read_text())
    assert 0.0 < row["noise_sd_phi_median"] < 1.0 and row["poisson_c"] > 0.0
    assert set(row["variants"]) == {"plain", "poisson", "exact"}
    for variant in row["variants"].values():
        assert variant["calibration_scale"] is None or variant["calibration_scale"] > 0
        assert -1.0 <= variant["closed_form"]["r"] <= 1.0
        assert math.isfinite(variant["closed_form"]["bias"]) and "pinn" not in variant
    # the correction changes the map: the corrected closed form is not the plain one
    assert row["variants"]["poisson"]["closed_form"] != row["variants"]["plain"]["closed_form"]


@pytest.mark.slow
def test_balance_window_quick(tmp_path):
    """experiments/balance_window.py on a small simulated nucleus: two windows, the balance
    estimate and the closed form scored, the halves compared."""
    out = tmp_path / "bw.json"
    text = _run("balance_window.py", "--quick", "--windows", "0.2", "0.3", "--closed-form",
                "--flux", "--json", str(out), timeout=600)
    assert re.search(r"balance\s+window 0.20 um: r -?[\d.]+", text), text
    (row,) = json.loads(out.read_text())
    assert row["seed"] == "quick" and set(row["balance"]) == {"0.2", "0.3"}
    for kind in ("balance", "flux_balance"):
        for s in row[kind].values():
            assert -1.0 <= s["r"] <= 1.0 and -1.0 <= s["halves_r"] <= 1.0, kind
            assert math.isfinite(s["bias"]), kind
    assert set(row["closed_form"]) == set(row["flux_balance"]) == {"0.2", "0.3"}


@pytest.mark.slow
def test_calibration_noise_quick(tmp_path):
    """experiments/calibration_noise.py on the suite's small 50k case: the scale as
    calibrated and per half (also censored), recorded and scored."""
    out = tmp_path / "cn.json"
    text = _run("calibration_noise.py", "bump-irr-env-loc50k@101", "--quick", "--splits", "1",
                "--clips", "1.0", "--censored", "--cache", str(tmp_path / "cache"),
                "--json", str(out), timeout=600)
    (row,) = json.loads(out.read_text())
    assert row["case"] == "bump-irr-env-loc50k@101" and row["k0"] > 0, text
    assert row["k_censored"] > 0 and len(row["k_halves_censored"]) == 2
    assert math.isfinite(row["bias_censored"])
    assert len(row["k_halves"]) == len(row["halves_interior"]) == 2
    assert math.isfinite(row["bias_k0"]) and math.isfinite(row["bias_k_corrected"])
    assert row["k_corrected"] == pytest.approx(2 * row["k0"] - sum(row["k_halves"]) / 2)
    assert set(row["by_clip"]) == {"1.0"} and row["by_clip"]["1.0"]["k"] > 0


@pytest.mark.slow
def test_prior_crossval_quick(tmp_path):
    """experiments/prior_crossval.py on the suite's small 50k case: both estimators from the
    whole and the halves, scored against the truth, and the cross-validated pick."""
    out = tmp_path / "pc.json"
    text = _run("prior_crossval.py", "bump-irr-env-loc50k@101", "--quick", "--cache",
                str(tmp_path / "cache"), "--json", str(out), timeout=600)
    (row,) = json.loads(out.read_text())
    assert row["pick"] in ("balance", "closed_form") and row["better"] in ("balance", "closed_form")
    for key in ("r_closed_form", "r_balance", "halves_closed_form_r", "halves_balance_r"):
        assert -1.0 <= row[key] <= 1.0, (key, text)
    assert row["shared_departure_over_mean"] >= 0.0 and "departure" in row
    assert "cross-validated pick" in text
    # the fit's own figures: this small nucleus is not calibrated, so the rule does not
    # read them and both picks are the sign rule's
    assert row["fit_departure"] is None and row["fit_shared_departure"] is None, text
    assert row["fit_prior_ratio_only"] == row["fit_prior"] in ("balance", "closed_form")
    assert -1.0 <= row["departure_phi_h_r"] <= 1.0 and -1.0 <= row["departure_interface_r"] <= 1.0


def test_departure_pattern_follows_the_heterochromatin():
    """A departure shaped like the smoothed heterochromatin pattern correlates with it at
    1; one shaped like its interfaces with the interface density; noise with neither."""
    sys.path.insert(0, str(_script("prior_crossval.py").parent))
    from prior_crossval import departure_pattern
    from scipy import ndimage as ndi

    y, x = np.mgrid[:96, :96]
    phi_h = 0.3 + 0.2 * np.tanh(np.sin(2 * np.pi * x / 32.0) * 4)
    where = np.zeros_like(phi_h, bool)
    where[16:80, 16:80] = True
    smooth = ndi.gaussian_filter(phi_h, 3.0)
    out = departure_pattern((smooth, smooth), phi_h, where, 3.0)
    assert out["departure_phi_h_r"] == pytest.approx(1.0)
    gy, gx = np.gradient(phi_h)
    edges = ndi.gaussian_filter(np.hypot(gx, gy), 3.0)
    assert departure_pattern((edges, edges), phi_h, where, 3.0)["departure_interface_r"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = departure_pattern((rng.standard_normal(phi_h.shape), rng.standard_normal(phi_h.shape)),
                              phi_h, where, 3.0)
    assert abs(noise["departure_phi_h_r"]) < 0.1 and abs(noise["departure_interface_r"]) < 0.1


def test_cross_validated_pick_rule():
    """The closed form's attainable r is Spearman-Brown's, the balance's is disattenuated
    by the closed form's reliability; the larger wins, and without a reliable closed form
    the balance does."""
    sys.path.insert(0, str(_script("prior_crossval.py").parent))
    from prior_crossval import cross_validated_pick

    att, bal, pick = cross_validated_pick(0.81, 0.45)
    assert att == pytest.approx(math.sqrt(2 * 0.81 / 1.81)) and bal == pytest.approx(0.5)
    assert pick == "closed_form"
    assert cross_validated_pick(0.25, 0.45)[2] == "balance"
    assert cross_validated_pick(-0.1, 0.3)[0] == 0.0 and cross_validated_pick(-0.1, 0.3)[2] == "balance"


@pytest.mark.slow
def test_flux_balance_is_the_window_integrated_steady_state():
    """experiments/balance_window.py's flux_balance: on an exact steady state (constant
    euchromatin, no envelope) the windowed balance with the flux put back is the rate
    smoothed by the same window, where the plain balance at that window is not."""
    sys.path.insert(0, str(_script("balance_window.py").parent))
    from balance_window import flux_balance
    from scipy import ndimage as ndi

    from chromarate.data import make_rate_map
    from chromarate.fit.prior import balance_rate
    from chromarate.fit.simulate import steady_state

    rate = make_rate_map((96, 96), pixel_size_nm=20.0, rate_range=(1.2, 2.2), length_um=1.0,
                         rng=np.random.default_rng(1))
    ss = steady_state(rate, pixel_um=0.02, tol=1e-4, seed=1)
    phi_h, phi_e = ss.phi_d + 0.2, np.full(rate.shape, 0.2)
    everywhere, sigma = np.ones(rate.shape, bool), 0.25 / 0.02
    inner = np.zeros(rate.shape, bool)
    inner[38:-38, 38:-38] = True  # beyond three windows of the box walls
    smoothed = ndi.gaussian_filter(rate, sigma)[inner]
    flux = flux_balance(phi_h, phi_e, everywhere, sigma, 0.02)[inner]
    plain = balance_rate(phi_h, phi_e, everywhere, sigma)[inner]
    assert np.max(np.abs(flux - smoothed)) < 0.05
    assert np.corrcoef(flux, smoothed)[0, 1] > 0.999
    assert np.corrcoef(plain, smoothed)[0, 1] < 0.9


@pytest.mark.slow
def test_prior_departure_quick(tmp_path):
    """experiments/prior_departure.py on the small simulated nucleus: the rule's figures
    recorded, each prior forced and scored. The nucleus is too small to calibrate its
    density scale, so the departure rule does not read it and the agreement decides."""
    out = tmp_path / "pd.json"
    text = _run("prior_departure.py", "quick", "--both-priors", "--json", str(out), timeout=600)
    (row,) = json.loads(out.read_text())
    assert row["case"] == "quick" and row["prior_departure"] is None, text
    assert row["rate_prior"] == ("closed_form" if row["prior_agreement"] < 0 else "balance")
    for key in ("fit", "balance", "closed_form", "fit_balance_prior", "fit_closed_form_prior"):
        assert -1.0 <= row[key]["r"] <= 1.0 and math.isfinite(row[key]["bias"]), key
    assert row[f"fit_{row['rate_prior']}_prior"] == row["fit"]
    assert re.search(r"^quick\s+departure\s+-\s+/\s+- of the rate\s+agreement", text, re.M), text
    assert row["prior_shared_departure"] is None and row["prior_ambiguous"] is False


@pytest.mark.slow
def test_coverage_seeds_quick(tmp_path):
    """experiments/coverage_seeds.py on a small simulated nucleus: every interval scored,
    the pipeline's own among them, and terms added in quadrature only widen."""
    out = tmp_path / "cov.json"
    text = _run("coverage_seeds.py", "--quick", "--out", str(out), timeout=600)
    (row,) = json.loads(out.read_text())
    assert row["seed"] == "quick" and -1.0 <= row["r"] <= 1.0
    cov = row["coverage"]
    assert {"current", "previous", "own", "closed_halves"} <= set(cov)
    assert all(0.0 <= v <= 1.0 for v in cov.values())
    inside = sum(0.8 <= v <= 0.98 for v in [cov["current"]])
    assert re.search(rf"^\s+current: within 80-98 % on {inside} of 1", text, re.M), text
    if "previous_cal" in cov:  # a calibration term in quadrature only widens (same pixels)
        assert cov["previous_cal"] >= cov["previous"]


def test_gate_figures_groups_nuclei_by_prior_and_distance_from_the_closed_form(tmp_path):
    """experiments/gate_figures.py: suite nuclei grouped by recipe, prior and whether r lies
    more than the margin below the closed form's; seeds apart; a case counted once; the
    status filter; a figure missing from every member gives None."""
    sys.path.insert(0, str(_script("gate_figures.py").parent))
    from gate_figures import summarise

    def row(case, prior, r, base, res, status="ok"):
        return {"case": case, "r": r, "baseline_r": base, "status": status,
                "regularisation": {"rate_prior": prior},
                "meta": {"qc_metrics": {"residual_explained": res}}}

    suite = tmp_path / "v.json"
    suite.write_text(json.dumps({"rows": [
        row("box@1", "balance", 0.5, 0.8, 0.97), row("box@2", "balance", 0.79, 0.8, 0.99),
        row("box@3", "balance", 0.4, 0.9, 0.95, status="low_confidence"),
        row("box@4", "closed_form", 0.8, 0.8, 0.99)]}))
    seeds = tmp_path / "s.json"
    seeds.write_text(json.dumps([
        {"seed": s, "status": "ok", "regularisation": {"rate_prior": "balance"},
         "qc_metrics": {"residual_explained": v}} for s, v in ((1, 0.985), (2, 0.99), (3, 0.995))]))
    out = summarise([suite, seeds, suite], ["residual_explained", "absent"])
    wrong = out["box, balance, > 0.05 below the closed form"]
    assert wrong["n"] == 2 and wrong["residual_explained"] == (0.95, 0.96, 0.97)
    assert out["box, balance"]["cases"] == ["box@2"] and out["box, closed_form"]["n"] == 1
    assert out["simulate, balance"]["residual_explained"] == (0.985, 0.99, 0.995)
    assert out["simulate, balance"]["absent"] is None
    ok = summarise([suite], ["residual_explained"], status="ok")
    assert ok["box, balance, > 0.05 below the closed form"]["cases"] == ["box@1"]
    assert "box, balance, > 0.3 below the closed form" in summarise([suite], [], margin=0.3)


def test_small_nuclei_level_oracle_interpolates_the_zero_crossing():
    """experiments/small_nuclei_level.py: the oracle scale is where the bias of the mean
    crosses zero, linear between grid points; None where it never does."""
    sys.path.insert(0, str(_script("small_nuclei_level.py").parent))
    from small_nuclei_level import _oracle

    assert _oracle([(0.9, -0.1), (0.8, 0.1)]) == pytest.approx(0.85)  # any order
    assert _oracle([(0.8, math.nan), (0.9, 0.1), (1.0, -0.3)]) == pytest.approx(0.925)
    assert _oracle([(0.8, 0.2), (0.9, 0.1)]) is None


@pytest.mark.slow
def test_small_nuclei_level_quick(tmp_path):
    out = tmp_path / "o.json"
    proc = subprocess.run([sys.executable, str(_script("small_nuclei_level.py")),
                           "cli-size96-loc250k@101", "--quick", "--fixed", "0.85", "--pipeline",
                           "--cache", str(tmp_path / "cache"), "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    rules = row["rules"]
    assert set(rules) == {"fallback", "forced", "fixed_0.85", "oracle", "pipeline",
                          "pipeline_forced"}
    assert "too small" in rules["fallback"]["skipped"] and rules["fallback"]["scale"] == 1.0
    # the pipeline as shipped skips the calibration; with the limit lifted it calibrates,
    # at the scale the forced closed-form rule found (the same fields and kernels)
    assert "too small" in rules["pipeline"]["skipped"] and rules["pipeline"]["scale"] == 1.0
    assert not rules["pipeline_forced"]["skipped"]
    assert rules["pipeline_forced"]["scale"] == pytest.approx(rules["forced"]["scale"])
    assert rules["fixed_0.85"]["scale"] == 0.85 and math.isfinite(rules["forced"]["bias"])
    assert "fallback" in proc.stdout and "RMS" in proc.stdout


def test_validation_summary_lines_read_old_and_new_summaries():
    """experiments/validation.py prints a summary stored before the resolvable part, the
    margin and the coverage existed, and says over how many cases the resolvable part is
    taken where some rows lack it."""
    sys.path.insert(0, str(_script("validation.py").parent))
    from validation import summary_lines

    from chromarate.validation import summarise

    old = {"all": {"n": 2, "median_r": 0.9, "min_r": 0.8, "worst_abs_bias": 0.1,
                   "median_abs_bias": 0.05},
           "by_status": {}, "n_flagged": 0, "flag_reasons": {}, "n_failed": 0,
           "worse_than_baseline": []}
    text = "\n".join(summary_lines(old))
    assert "resolvable part: - / -" in text and "interval" not in text
    rows = [{"case": "a", "r": 0.9, "r_resolvable": 0.95, "bias": 0.0, "status": "ok",
             "baseline_r": 0.95, "coverage90": 0.9, "n_pixels": 10},
            {"case": "b", "r": 0.8, "bias": 0.0, "status": "ok", "baseline_r": 0.7}]
    text = "\n".join(summary_lines(summarise(rows)))
    assert "resolvable part of 1 cases: 0.950 / 0.950" in text
    assert "more than 0.02 below it: 1 (a)" in text
    assert "covers 80-98 % of the pixels on 1 of 1 cases" in text


@pytest.mark.slow
def test_training_trace_quick(tmp_path):
    """experiments/training_trace.py: one row per case and variant, r at every logged step,
    the last one close to the final map's (the monitor reads the network at the last logged
    step, one optimiser step before the end at most), the variant's override applied."""
    out = tmp_path / "o.json"
    proc = subprocess.run([sys.executable, str(_script("training_trace.py")), "bump-box-n0@101",
                           "--quick", "--variant", "", "--variant",
                           "fit.training.learning_rate=0.006", "--cache", str(tmp_path / "cache"),
                           "--json", str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["overrides"] for r in rows] == [{}, {"fit.training.learning_rate": 0.006}]
    for row in rows:
        assert row["steps"] == sorted(row["steps"]) and len(row["steps"]) == len(row["r"]) >= 2
        assert row["r"][-1] == pytest.approx(row["final_r"], abs=1e-2)
        assert row["peak_r"] == max(row["r"]) and math.isfinite(row["closed_form_r"])
        # the script's own scoring agrees with the suite's (truth resampled, its mask)
        assert row["final_r"] == pytest.approx(row["scored_r"], abs=1e-6)
    assert rows[0]["r"] != rows[1]["r"]
    assert "closed form" in proc.stdout


@pytest.mark.slow
def test_smoothness_floor_quick(tmp_path):
    """experiments/smoothness_floor.py: J, v and the shipped floor as the fit reads them, r
    at each weak-end weight (the patch applied, and undone: the default fit of seed 0 is the
    weight-1e-3 fit), the seeds' maps and the smoothed map scored."""
    from chromarate.fit.regularise import variation_smoothness_floor

    out = tmp_path / "o.json"
    proc = subprocess.run([sys.executable, str(_script("smoothness_floor.py")), "domains-box-n1@101",
                           "--quick", "--weights", "0.001", "0.01", "--seeds", "0", "1",
                           "--smooth-nm", "60", "--cache", str(tmp_path / "cache"), "--json", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["strength"] == 0.0 and 0.0 < row["rate_variation"] < 1.0
    assert row["shipped_floor"] == variation_smoothness_floor(row["rate_variation"], 0.08)
    assert set(row["r_at_weight"]) == {"0.001", "0.01"}
    assert row["r_at_weight"]["0.001"] != row["r_at_weight"]["0.01"]
    assert row["r_per_seed"][0] == pytest.approx(row["r_at_weight"]["0.001"], abs=1e-9)
    assert len(row["r_per_seed"]) == 2 and -1.0 <= row["seed_map_r"] <= 1.0
    assert set(row["r_smoothed"]) == {"60.0"} and math.isfinite(row["r_smoothed"]["60.0"])
    assert math.isfinite(row["error_vs_unresolved_r"])
    assert "shipped floor" in proc.stdout


def test_whole_departure_figures_and_the_code_it_patches():
    """experiments/whole_departure.py: on halves that share a signal and carry independent
    noise, the halves' covariance and the whole's variance less the halves' noise read the
    same shared departure, and the reliability estimates follow their formulas. The script
    patches ``chromatin_problem._half_departure`` and reads its caller's locals, so the
    signature and the caller's names it relies on are checked here."""
    import inspect

    sys.path.insert(0, str(_script("whole_departure.py").parent))
    from whole_departure import _figures

    from chromarate.fit import chromatin_problem as cp

    rng = np.random.default_rng(0)
    n = 20_000
    balance = 1.5 + 0.1 * np.sin(np.arange(n) / 300.0)
    signal = 0.2 * np.sign(np.sin(np.arange(n) / 7.0))
    noise_a, noise_b = 0.1 * rng.standard_normal(n), 0.1 * rng.standard_normal(n)
    b_a = balance + 0.01 * rng.standard_normal(n)
    b_b = balance + 0.01 * rng.standard_normal(n)
    c_a, c_b = balance + signal + noise_a, balance + signal + noise_b
    whole_b, whole_c = 0.5 * (b_a + b_b), balance + signal + 0.5 * (noise_a + noise_b)
    out = _figures(whole_b, whole_c, (b_a, b_b), (c_a, c_b), np.ones(n, bool))
    assert out["pixels"] == n
    assert out["ratio_whole"] == pytest.approx(out["ratio_halves"], rel=0.05)
    assert out["shared_halves"] == pytest.approx(0.2 / 1.5, rel=0.05)
    rho = out["closed_halves_r"]
    assert out["est_r_closed"] == pytest.approx(math.sqrt(2 * rho / (1 + rho)))
    assert out["est_r_balance"] == pytest.approx(out["balance_cross_r"] / math.sqrt(rho))
    assert list(inspect.signature(cp._half_departure).parameters) == [
        "halves", "reported", "config", "radius_px", "balance_sigma_px"]
    source = inspect.getsource(cp)
    assert "closed, reported = closed_form_prior(fields, config, self.radius)" in source
    assert "self.prior_departure, self.prior_shared_departure = _half_departure(" in source


def test_fine_window_upper_rule_reads_the_window_at_the_noise_rules_radius():
    """experiments/fine_window_upper.py: its wrapped choice takes the window from J at the
    noise rule's radius (0.1 um at J_FINE or below, the chosen window where that J is at
    J_FINE_END or above), and the Fourier scale follows the window."""
    sys.path.insert(0, str(_script("fine_window_upper.py").parent))
    from fine_window_upper import upper_window_rule

    from chromarate.config import FitConfig
    from chromarate.fit import regularise as reg

    def original(fields, config):
        chosen, record = reg._settle(config, "steadiness", 0.04, 0.04, 0.0)
        return chosen, {**record, "misfit_at_upper_radius": fields}

    choose = upper_window_rule(original)
    chosen, record = choose(0.001, FitConfig())
    assert record["test_window_um"] == chosen.prior.test_window_um == reg.FINE_WINDOW_UM
    assert chosen.prior.rate_fourier_scale_per_um == pytest.approx(
        reg.fourier_scale_for_window(reg.FINE_WINDOW_UM))
    same, kept = choose(0.05, FitConfig())
    assert kept["test_window_um"] == same.prior.test_window_um == reg.WEAK[1]
    assert "window_from" not in kept
