"""The same batch command on an existing dask.distributed cluster (``--scheduler``), as a
cluster started with dask-jobqueue or dask-kubernetes would be used."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from chromarate.batch.executors import make_executor
from chromarate.cli import cli, main
from chromarate.errors import ClusterError

distributed = pytest.importorskip("distributed")


def test_batch_runs_on_a_scheduler_given_by_address(synthetic_batch, tmp_path):
    folder, rates, _ = synthetic_batch
    inputs = [folder / "cell2.csv", folder / "cell3.csv"]
    out = tmp_path / "out"
    # worker threads in this process: cheap to start, and the workers' task log is visible
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        res = CliRunner().invoke(cli, ["run", "quick-cpu", *map(str, inputs), "--out", str(out),
                                       "--scheduler", address, "--set", "fit.method=direct"])
        prefixes = set(cluster.scheduler.task_prefixes)
    assert res.exit_code == 0, res.output
    assert f"dask scheduler {address} (2 worker(s) now)" in res.output
    assert any(p.startswith("prepare") for p in prefixes)
    assert any(p.startswith("nucleus") for p in prefixes)  # the fits ran on the cluster
    summary = pd.read_csv(out / "summary.csv")
    assert (summary.status != "failed").all() and len(summary) == 2 and list(summary.name) == ["cell2", "cell3"]
    assert f"running dask scheduler {address}" in (out / "batch.log").read_text()


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys):
    import dask

    (tmp_path / "cell.csv").write_text("x [nm],y [nm]\n1,2\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(SystemExit) as exc:
            main(["run", "quick-cpu", str(tmp_path / "cell.csv"), "--out", str(tmp_path / "o"),
                  "--scheduler", "tcp://127.0.0.1:9"])
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert "cannot connect to the dask scheduler" in err and "Traceback" not in err
        # the library raises a ClusterError, which callers may catch as a ConnectionError
        assert issubclass(ClusterError, ConnectionError)
        with pytest.raises(ConnectionError, match="cannot connect to the dask scheduler") as info:
            make_executor(1, scheduler="tcp://127.0.0.1:9")
        assert isinstance(info.value, ClusterError)


def test_bad_worker_count_is_refused():
    from chromarate.errors import ConfigError

    with pytest.raises(ConfigError, match="workers"):
        make_executor(0)


def test_each_local_worker_gets_its_own_gpu(monkeypatch):
    """'auto' on worker i of a pool uses GPU i mod n when n >= 2 GPUs are visible."""
    torch = pytest.importorskip("torch")
    from chromarate.device import spread_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [spread_device("auto", i) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert spread_device(None, 1) == "cuda:1"
    assert spread_device("cpu", 1) == "cpu" and spread_device("cuda:0", 1) == "cuda:0"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert spread_device("auto", 1) == "auto"  # one GPU: nothing to spread


def test_auto_device_on_a_numbered_dask_worker_takes_its_gpu(monkeypatch):
    """run_nucleus's device choice: worker "1" of a pool on a two-GPU machine gets cuda:1;
    explicit devices, unnumbered workers and runs outside dask are left alone."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from chromarate.batch import tasks
    from chromarate.config import PipelineConfig

    auto = PipelineConfig()
    assert auto.fit.device == "auto"
    cpu = PipelineConfig.model_validate({**auto.model_dump(), "fit": {
        **auto.fit.model_dump(), "device": "cpu"}})
    assert tasks._worker_device(None, auto) is None  # not on a dask worker
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    worker = SimpleNamespace(name="1")
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    assert tasks._worker_device(None, auto) == "cuda:1"
    assert tasks._worker_device("auto", cpu) == "cuda:1"  # the argument overrides the config
    assert tasks._worker_device(None, cpu) is None  # config's explicit device is kept
    assert tasks._worker_device("cuda:0", auto) == "cuda:0"
    worker.name = "3"
    assert tasks._worker_device(None, auto) == "cuda:1"  # 3 mod 2
    worker.name = "tcp://10.0.0.1:4000"  # a worker without a number
    assert tasks._worker_device(None, auto) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    worker.name = "1"
    assert tasks._worker_device(None, auto) is None  # one GPU: nothing to spread
