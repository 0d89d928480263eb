"""Interrupted batches: a killed process leaves no damaged result, and running the same
command again completes the batch, fitting only what was not finished."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from chromarate.batch import NucleusFinished, run_batch
from chromarate.cli import cli, main
from chromarate.config import with_overrides
from chromarate.io.zarr_store import is_complete_result, read_result
from chromarate.presets import resolve_pipeline

REPO = Path(__file__).resolve().parents[1]
#: A short but real PINN fit (about a second per nucleus on one thread).
SHORT_FIT = ["--set", "fit.training.steps=15", "--set", "fit.training.log_every=5",
             "--set", "fit.network.width=16", "--set", "fit.network.fourier_features=16"]


@pytest.mark.slow  # kills a real batch process mid-fit (~20 s): in the CI's slow step
def test_killed_batch_reruns_to_completion_without_damage(synthetic_batch, tmp_path,
                                                          torch_one_thread):
    folder, _, _ = synthetic_batch
    inputs = [str(folder / f"cell{i}.csv") for i in (4, 5, 6)]
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "chromarate.cli", "run", "quick-cpu", *inputs, "--out", str(out),
           "--device", "cpu", *SHORT_FIT]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*/*.ome.zarr")):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no result appeared in time"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no clean-up code runs
        proc.wait()
    done = {p.parent.name: p for p in out.glob("*/*.ome.zarr")}
    assert 1 <= len(done) < len(inputs), "the batch was not stopped mid-run"
    for p in done.values():
        assert is_complete_result(p)  # what is visible is complete
    stamps = {k: (p / "zarr.json").stat().st_mtime_ns for k, p in done.items()}
    # a store left half-written by a kill during its write
    stale = out / "cell6" / ".1.ome.zarr.tmp-0123456789ab"
    stale.mkdir(parents=True)
    (stale / "zarr.json").write_text("{")

    res = CliRunner().invoke(cli, ["run", "quick-cpu", *inputs, "--out", str(out),
                                   "--device", "cpu", *SHORT_FIT])
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 and (summary.status != "failed").all()
    assert sorted(summary[summary.resumed].name) == sorted(done)  # finished ones kept
    for row in summary.itertuples():
        stack = read_result(row.result_path)  # every result reads back in full
        assert stack.provenance["config"]["fit"]["training"]["steps"] == 15
    for k, p in done.items():
        assert (p / "zarr.json").stat().st_mtime_ns == stamps[k]
    assert not stale.exists()
    assert "removed a half-written result" in (out / "batch.log").read_text()


def test_interrupt_writes_summary_then_resume_finishes(synthetic_batch, tmp_path):
    folder, _, _ = synthetic_batch
    inputs = [folder / "cell2.csv", folder / "cell3.csv", folder / "cell4.csv"]
    cfg = with_overrides(resolve_pipeline("quick-cpu")[0], {"fit.method": "direct"})
    out = tmp_path / "out"

    def stop_after_first(event):
        if isinstance(event, NucleusFinished):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(cfg, inputs, out, on_event=stop_after_first)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 1 and (summary.status != "failed").all()
    assert "batch interrupted" in (out / "batch.log").read_text()

    report = run_batch(cfg, inputs, out)
    assert (report.n_ok, report.n_resumed, report.n_fitted) == (3, 1, 2)


def test_cli_interrupt_exits_130(monkeypatch, tmp_path, capsys):
    import chromarate.batch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(chromarate.batch, "run_batch", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["run", "quick-cpu", str(tmp_path), "--out", str(tmp_path / "o")])
    assert exc.value.code == 130
    assert "run the same command again to resume" in capsys.readouterr().err
