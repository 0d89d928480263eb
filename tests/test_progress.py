"""Progress while a user waits: progress lines when the output is not a terminal, the
batch log's progress lines, fit progress forwarded from dask workers, simulate's solver
progress."""

from __future__ import annotations

from pathlib import Path

import sys
import threading

import pandas as pd
import pytest
from click.testing import CliRunner

from chromarate._types import FitProgress, StageDone
from chromarate.batch import BatchProgress, NucleusProgress, progress
from chromarate.batch.progress import ProgressTracker, WorkerForwarder, decode_forwarded
from chromarate.cli import cli

from .test_cli import FAST, PRESETS


@pytest.fixture
def reports_during_the_fit(monkeypatch):
    """Hold the fit at its first progress event until the tracker has reported twice, so
    that progress lines are written during the fit whatever the machine's speed."""
    seen = threading.Condition()
    count = {"reports": 0, "held": 0}
    report, nucleus_event = ProgressTracker.report, ProgressTracker.nucleus_event

    def counting_report(self):
        out = report(self)
        with seen:
            count["reports"] += 1
            seen.notify_all()
        return out

    def holding_nucleus_event(self, name, nucleus_id, event):
        nucleus_event(self, name, nucleus_id, event)
        if isinstance(event, FitProgress) and not count["held"]:
            count["held"] = 1
            with seen:
                start = count["reports"]
                seen.wait_for(lambda: count["reports"] >= start + 2, timeout=60)

    monkeypatch.setattr(ProgressTracker, "report", counting_report)
    monkeypatch.setattr(ProgressTracker, "nucleus_event", holding_nucleus_event)
    return count


def test_piped_run_prints_progress_lines_during_the_fit(tiny_nucleus, tmp_path,
                                                        reports_during_the_fit):
    """stdout/stderr not a terminal (CliRunner's): no bars, a progress line every
    --progress-every seconds on stderr and in batch.log, naming the fit's step."""
    csv, _, _ = tiny_nucleus
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", str(PRESETS / "quick-cpu.yaml"), str(csv),
                                   "--out", str(out), *FAST, "--progress-every", "0.05"])
    assert res.exit_code == 0, res.output
    assert reports_during_the_fit["held"]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("progress: ")]
    fit_lines = [ln for ln in lines if "tiny#1 fit step" in ln and "of 1 nucleus(es) done" in ln]
    assert len(fit_lines) >= 2, res.stderr
    assert "ETA" in fit_lines[0]
    assert "\r" not in res.stderr  # no progress bar drawn into a pipe
    log = (out / "batch.log").read_text()
    assert "progress: 0 of 1 nucleus(es) done" in log and "tiny#1 fit step" in log
    assert pd.read_csv(out / "summary.csv").status.iloc[0] != "failed"


def test_no_progress_lines_with_zero_interval_or_quiet(tiny_nucleus, tmp_path):
    csv, _, _ = tiny_nucleus
    for extra in (["--progress-every", "0"], ["-q", "--progress-every", "0.01"]):
        out = tmp_path / extra[0].strip("-")
        res = CliRunner().invoke(cli, ["run", str(PRESETS / "quick-cpu.yaml"), str(csv),
                                       "--out", str(out), "--set", "fit.method=direct", *extra])
        assert res.exit_code == 0, res.output
        assert "progress: " not in res.stderr


def test_demo_piped_through_cat_prints_progress(tmp_path):
    """``chromarate demo --steps 30 2>&1 | cat`` shows progress lines during the fit."""
    import subprocess

    proc = subprocess.run(
        f"{sys.executable} -m chromarate.cli demo --steps 30 --out {tmp_path / 'demo'} "
        f"--progress-every 1 2>&1 | cat", shell=True, capture_output=True, text=True,
        timeout=1800)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert any("fit" in ln and ln.startswith("progress: ") for ln in lines), proc.stdout


def test_tracker_text_follows_the_nuclei():
    events = []
    tracker = ProgressTracker(events.append, None)
    from chromarate.batch import BatchStarted, InputPrepared, NucleusFinished

    tracker.batch_event(BatchStarted(n_inputs=3, out_dir=Path("out"), config_name="c",
                                     config_hash="h", executor="here"))
    tracker.batch_event(InputPrepared(input="a.csv", name="a", n_nuclei=2, n_to_fit=2,
                                      n_resumed=0, n_failed=0, seconds=0.1))
    tracker.batch_event(InputPrepared(input="b.csv", name="b", n_nuclei=0, n_to_fit=0,
                                      n_resumed=0, n_failed=1, seconds=0.1, error="bad"))
    tracker.nucleus_event("a", 1, StageDone(stage="phase", seconds=1.0, nucleus_id=1))
    assert "a#1 fit for" in tracker.text()
    tracker.nucleus_event("a", 1, FitProgress(step=50, total_steps=200, loss=1.0, terms={},
                                              elapsed_s=10.0))
    text = tracker.text()
    assert text.startswith("0 of 2 nucleus(es) done (1 input(s) not read yet), 1 failed")
    assert "a#1 fit step 50/200 (25 %), ETA 30 s" in text
    # later steps are timed from the first progress event, without the setup before it
    tracker.nucleus_event("a", 1, FitProgress(step=100, total_steps=200, loss=1.0, terms={},
                                              elapsed_s=12.0))
    assert "a#1 fit step 100/200 (50 %), ETA 4 s" in tracker.text()
    tracker.nucleus_event("a", 2, StageDone(stage="fit", seconds=3.0, nucleus_id=2))
    assert "a#2 export" in tracker.text()
    tracker.batch_event(NucleusFinished(row={"name": "a", "nucleus_id": 1, "status": "ok"}))
    assert "a#1" not in tracker.text() and tracker.text().startswith("1 of 2")
    tracker.batch_event(InputPrepared(input="c.csv", name="c", n_nuclei=1, n_to_fit=1,
                                      n_resumed=0, n_failed=0, seconds=0.1))
    assert tracker.text().startswith("1 of 3 nucleus(es) done, 1 failed")
    event = tracker.report()
    assert isinstance(event, BatchProgress) and events == [event] and event.n_done == 1


def test_forwarded_messages_round_trip():
    fwd = WorkerForwarder("topic", "cell", 3)
    sent = []

    class FakeWorker:
        def log_event(self, topic, msg):
            sent.append((topic, msg))

    import distributed

    original = distributed.get_worker
    distributed.get_worker = lambda: FakeWorker()
    try:
        fwd(FitProgress(step=5, total_steps=10, loss=0.5, terms={"data": 0.25}, elapsed_s=2.0))
        fwd(StageDone(stage="fit", seconds=4.0, nucleus_id=3))
        fwd("something else")
    finally:
        distributed.get_worker = original
    assert [t for t, _ in sent] == ["topic", "topic"]
    fit, stage = (decode_forwarded(m) for _, m in sent)
    assert fit == NucleusProgress("cell", 3, FitProgress(5, 10, 0.5, {"data": 0.25}, 2.0))
    assert stage == NucleusProgress("cell", 3, StageDone("fit", 4.0, 3))
    assert decode_forwarded({"kind": "fit"}) is None
    assert WorkerForwarder("t", "c", 1)(StageDone("fit", 1.0, 1)) is None  # no worker: no-op


def test_dask_workers_forward_fit_progress_to_the_client(tiny_nucleus, tmp_path):
    """On a dask cluster (worker threads of this process) the client gets each nucleus's
    stage and fit progress, named by input and nucleus."""
    from chromarate.batch import run_batch
    from chromarate.config import load_config, with_overrides

    distributed = pytest.importorskip("distributed")
    csv, _, _ = tiny_nucleus
    cfg = with_overrides(load_config(PRESETS / "quick-cpu.yaml"),
                         {"fit.training.steps": 6, "fit.training.log_every": 2, "fit.network.width": 16,
                          "fit.network.fourier_features": 16})
    events = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        report = run_batch(cfg, [csv], tmp_path / "out", scheduler=cluster.scheduler_address,
                           on_event=events.append, progress_every=None)
    assert report.n_failed == 0
    forwarded = [e for e in events if isinstance(e, NucleusProgress)]
    assert {(e.name, e.nucleus_id) for e in forwarded} == {("tiny", 1)}
    # events travel asynchronously (worker -> scheduler -> client); the last ones may
    # arrive after the batch closed its client, the first ones are there long before
    # (every log_every = 2 steps; the fit may train more than fit.training.steps when weakly
    # regularised, so the count is not fixed)
    fits = [e.event for e in forwarded if isinstance(e.event, FitProgress)]
    steps = [e.step for e in fits]
    assert steps and all(s % 2 == 0 for s in steps) and steps == sorted(steps)
    assert all(0 < e.step <= e.total_steps for e in fits)
    stages = [e.event.stage for e in forwarded if isinstance(e.event, StageDone)]
    assert stages[0] == "phase"


def test_dashboard_link_is_printed():
    from chromarate.batch import BatchStarted
    from chromarate.batch.executors import _dashboard_link
    from chromarate.cli import _BatchPrinter

    class Client:
        dashboard_link = "http://127.0.0.1:8787/status"

        def __init__(self, services):
            self.services = services

        def scheduler_info(self):
            return {"services": self.services}

    assert _dashboard_link(Client({"dashboard": 8787})) == "http://127.0.0.1:8787/status"
    assert _dashboard_link(Client({})) == ""  # a scheduler serving no dashboard
    runner = CliRunner()
    with runner.isolation() as (out, _err, _):
        printer = _BatchPrinter(False, False)
        printer(BatchStarted(n_inputs=1, out_dir="o", config_name="c", config_hash="h",
                             executor="2 local dask worker processes",
                             dashboard="http://127.0.0.1:8787/status"))
        printer.close()
        text = out.getvalue().decode()
    assert "dask dashboard: http://127.0.0.1:8787/status" in text


def test_default_interval_is_at_most_30_s():
    assert 10 <= progress.PROGRESS_EVERY_S <= 30


def test_steady_state_reports_its_residual():
    import numpy as np

    from chromarate.fit.simulate import steady_state

    calls = []
    s = steady_state(np.full((32, 32), 1.5), pixel_um=0.02, tol=1e-6, progress_every=10,
                     progress=lambda step, r: calls.append((step, r)))
    assert s.converged and calls[0][0] == 0
    steps = [c[0] for c in calls]
    assert steps == list(range(0, 10 * len(calls), 10)) and steps[-1] <= s.steps
    assert calls[-1][1] < calls[0][1] and all(r >= 1e-6 for _, r in calls)
    # no callback: the same result
    t = steady_state(np.full((32, 32), 1.5), pixel_um=0.02, tol=1e-6)
    assert t.steps == s.steps and np.array_equal(t.phi_d, s.phi_d)


def test_simulate_prints_solver_progress_when_piped(tmp_path):
    out = tmp_path / "sim.csv"
    res = CliRunner().invoke(cli, ["simulate", "--out", str(out), "--size", "32",
                                   "--n-localizations", "2000", "--tolerance", "1e-3",
                                   "--progress-every", "1e-9"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("progress: steady state")]
    assert lines[0].startswith("progress: steady state step 0, max residual")
    assert len(lines) >= 2 and "step 100," in lines[1]
    quiet = CliRunner().invoke(cli, ["simulate", "--out", str(out), "--size", "32",
                                     "--n-localizations", "2000", "--tolerance", "1e-2",
                                     "--progress-every", "0"])
    assert quiet.exit_code == 0 and "progress:" not in quiet.stderr
