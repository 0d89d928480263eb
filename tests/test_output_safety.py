"""Untrusted input names and shared output folders: nothing is written or deleted outside
--out, no result is silently replaced, concurrent runs serialise on a lock, discovery
survives broken links, and crafted result stores give clear errors quickly.

Fits use the closed-form inversion (``fit.method=direct``) on the 96 x 96 px ``tiny_nucleus``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import hostile_corpus as hc  # noqa: E402

from chromarate.batch import run_batch  # noqa: E402
from chromarate.config import with_overrides  # noqa: E402
from chromarate.errors import ResultStoreError  # noqa: E402
from chromarate.io.names import path_tag, safe_name  # noqa: E402
from chromarate.io.outdir import LOCK_NAME, OutputLock, is_inside  # noqa: E402
from chromarate.io.zarr_store import is_complete_result  # noqa: E402
from chromarate.presets import resolve_pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    return with_overrides(resolve_pipeline("quick-cpu")[0], {"fit.method": "direct"})


def _snapshot(folder: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime) of every file under ``folder`` (not under ``skip``)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def _stores(out: Path) -> list[Path]:
    return sorted(out.glob("*/*.ome.zarr"))


# ------------------------------------------------------------------------ names


def test_safe_names():
    assert safe_name("..") == "input" and safe_name(".") == "input"
    assert safe_name("../../etc") == "_.._etc"
    assert "/" not in safe_name("a/b") and "\\" not in safe_name("a\\b")
    assert not safe_name(".hidden").startswith(".")
    assert len(safe_name("x" * 1000)) <= 96
    assert path_tag("a/b.csv") == path_tag(os.path.abspath("a/b.csv")) != path_tag("a/c.csv")
    assert not is_inside("/tmp/out", "/tmp/out/../x") and is_inside("/tmp/out", "/tmp/out/a")


def test_dotted_input_names_stay_inside_out(tmp_path, tiny_nucleus, config):
    csv = tiny_nucleus[0]
    parent = tmp_path / "parent"
    data = parent / "data"
    data.mkdir(parents=True)
    shutil.copy(csv, data / "...csv")
    shutil.copy(csv, data / "..csv")
    (parent / "sentinel.txt").write_text("keep me")
    fake = parent / "1.ome.zarr"  # looks like a damaged result beside --out
    fake.mkdir()
    (fake / "notes.txt").write_text("not a result")
    before = _snapshot(parent)
    out = parent / "out"

    # hidden names are skipped in folders, so these arrive as files given by name
    report = run_batch(config, [data / "...csv", data / "..csv"], out)

    assert report.n_failed == 0 and len(report.rows) == 2
    assert _snapshot(parent, skip=out) == before  # nothing written or deleted beside --out
    names = sorted(r["name"] for r in report.rows)
    assert all(n and not n.startswith(".") and "/" not in n for n in names), names
    assert len(set(names)) == 2
    for store in _stores(out):
        assert is_inside(out, store) and store.parent.parent == out
        assert is_complete_result(store)


def test_same_file_name_in_two_folders_never_shares_a_result(tmp_path, tiny_nucleus, config):
    csv = tiny_nucleus[0]
    ctrl, treated = tmp_path / "data" / "ctrl", tmp_path / "data" / "treated"
    for d in (ctrl, treated):
        d.mkdir(parents=True)
        shutil.copy(csv, d / "cell1.csv")
    out = tmp_path / "res"

    first = run_batch(config, [ctrl / "cell1.csv"], out)
    assert [r["name"] for r in first.rows] == ["cell1"]
    ctrl_store = out / "cell1" / "1.ome.zarr"
    kept = _snapshot(out / "cell1")

    second = run_batch(config, [treated / "cell1.csv"], out)
    tag = path_tag(treated / "cell1.csv")
    assert [r["name"] for r in second.rows] == [f"cell1-{tag}"]
    assert second.n_failed == 0 and not second.rows[0]["resumed"]
    assert _snapshot(out / "cell1") == kept and is_complete_result(ctrl_store)
    summary = pd.read_csv(out / "summary.csv")  # this run's row, then the earlier one's
    assert list(summary.name) == [f"cell1-{tag}", "cell1"]
    assert "holds the results of" in (out / "batch.log").read_text()

    third = run_batch(config, [treated / "cell1.csv"], out)  # the same name again: resumed
    assert [r["name"] for r in third.rows] == [f"cell1-{tag}"] and third.n_resumed == 1


def test_other_content_of_the_same_input_is_not_replaced_without_overwrite(
        tmp_path, tiny_nucleus, config):
    src = tmp_path / "cell.csv"
    shutil.copy(tiny_nucleus[0], src)
    out = tmp_path / "res"
    run_batch(config, [src], out)
    store = out / "cell" / "1.ome.zarr"
    kept = _snapshot(store)

    lines = src.read_text().splitlines(keepends=True)
    src.write_text("".join(lines[:-500]))  # the same file, re-exported with fewer rows
    report = run_batch(config, [src], out)
    (row,) = report.rows
    assert row["status"] == "failed" and "not replaced" in row["error"]
    assert "--overwrite" in row["error"]
    assert _snapshot(store) == kept
    summary = pd.read_csv(out / "summary.csv")
    assert "not replaced" in summary.error[0]

    report = run_batch(config, [src], out, overwrite=True)
    assert report.n_failed == 0 and report.n_fitted == 1 and _snapshot(store) != kept


def test_an_output_subfolder_linked_outside_is_refused(tmp_path, tiny_nucleus, config):
    src = tmp_path / "cell.csv"
    shutil.copy(tiny_nucleus[0], src)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "res"
    out.mkdir()
    (out / "cell").symlink_to(outside)
    report = run_batch(config, [src], out)
    (row,) = report.rows
    assert row["status"] == "failed" and "outside the output folder" in row["error"]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("planted", ["batch.log", "summary.csv", LOCK_NAME])
def test_links_planted_in_out_are_not_written_through(tmp_path, tiny_nucleus, config, planted):
    src = tmp_path / "cell.csv"
    shutil.copy(tiny_nucleus[0], src)
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    out = tmp_path / "res"
    out.mkdir()
    (out / planted).symlink_to(sentinel)
    with pytest.raises(ResultStoreError):
        run_batch(config, [src], out)
    assert sentinel.read_text() == "keep me"


# ------------------------------------------------------------------------ discovery


def test_symlink_loops_dangling_links_and_unreadable_entries_are_rows(
        tmp_path, tiny_nucleus, config):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_nucleus[0], data / "good.csv")
    (data / "loop.csv").symlink_to("loop.csv")
    (data / "a.csv").symlink_to("b.csv")
    (data / "b.csv").symlink_to("a.csv")
    (data / "dangling.csv").symlink_to("missing.csv")
    out = tmp_path / "res"

    report = run_batch(config, [data, data / "loop.csv"], out)

    by_input = {Path(r["input"]).name: r for r in report.rows}
    assert by_input["good.csv"]["status"] != "failed"
    for name in ("loop.csv", "a.csv", "b.csv"):
        assert by_input[name]["status"] == "failed"
        assert "symbolic link loop" in by_input[name]["error"]
    assert "dangling symbolic link" in by_input["dangling.csv"]["error"]
    assert len(pd.read_csv(out / "summary.csv")) == 5


def test_bombs_in_a_batch_are_failed_rows(tmp_path, tiny_nucleus, config):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_nucleus[0], data / "good.csv")
    hc.tiff_bomb(data)
    hc.hdf5_bomb(data)
    hc.smlm_zip_bomb(data, mib=64)
    report = run_batch(config, [data], tmp_path / "res", read_limit="256M")
    by_input = {Path(r["input"]).name: r for r in report.rows}
    assert by_input["good.csv"]["status"] != "failed"
    for name in ("bomb.tif", "bomb.hdf5"):
        assert by_input[name]["status"] == "failed"
        assert "read limit of 256.0 MiB" in by_input[name]["error"]
    assert "inflates to more than" in by_input["bomb.smlm"]["error"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions and a non-root user")
def test_unreadable_file_and_folder_are_rows(tmp_path, tiny_nucleus, config):
    data = tmp_path / "data"
    (data / "locked").mkdir(parents=True)
    shutil.copy(tiny_nucleus[0], data / "good.csv")
    shutil.copy(tiny_nucleus[0], data / "secret.csv")
    os.chmod(data / "secret.csv", 0)
    os.chmod(data / "locked", 0)
    try:
        report = run_batch(config, [data], tmp_path / "res")
    finally:
        os.chmod(data / "locked", 0o755)
    errors = {Path(r["input"]).name: r["error"] for r in report.rows if r["status"] == "failed"}
    assert "permission denied" in errors["secret.csv"].lower()
    assert "cannot list the folder" in errors["locked"]


# ------------------------------------------------------------------------ the lock


def test_a_second_run_waits_or_refuses(tmp_path, tiny_nucleus, config):
    src = tmp_path / "cell.csv"
    shutil.copy(tiny_nucleus[0], src)
    out = tmp_path / "res"
    stale = out / "cell" / ".1.ome.zarr.tmp-0123456789ab"
    stale.mkdir(parents=True)  # what another run could be writing right now

    with OutputLock(out) as held:  # another run (another open file: flock conflicts)
        assert held.held and (out / LOCK_NAME).exists()
        with pytest.raises(ResultStoreError, match=r"another chromarate run \(pid \d+"):
            run_batch(config, [src], out, wait_for_lock=0)
        assert stale.exists()  # its temporaries are left alone
    # released: a run that waits gets the folder as soon as the holder lets go
    holder = OutputLock(out).acquire()
    threading.Timer(1.0, holder.release).start()
    report = run_batch(config, [src], out)
    assert report.n_failed == 0 and not stale.exists()


def test_the_lock_dies_with_its_process(tmp_path):
    out = tmp_path / "res"
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from chromarate.io.outdir import OutputLock\n"
         "lock = OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
         str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(ResultStoreError, match=f"pid {child.pid}"):
            OutputLock(out, wait=0).acquire()
    finally:
        child.kill()
        child.wait()
    with OutputLock(out, wait=0) as lock:  # no stale lock left behind
        assert lock.held


def _race_inputs(tmp_path: Path, tiny_nucleus) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        shutil.copy(tiny_nucleus[0], data / name)
    return data, tmp_path / "res"


def _assert_race_ended_well(out: Path) -> None:
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 and (summary.status != "failed").all()
    stores = _stores(out)
    assert len(stores) == 3 and all(is_complete_result(s) for s in stores)
    assert not [p for p in out.rglob(".*") if p.name != LOCK_NAME]


def test_two_concurrent_runs_into_one_out(tmp_path, tiny_nucleus, config):
    data, out = _race_inputs(tmp_path, tiny_nucleus)
    reports: list = []
    errors: list = []

    def one_run():
        try:
            reports.append(run_batch(config, [data], out))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and len(reports) == 2
    assert all(r.n_failed == 0 and r.n_ok == 3 for r in reports)
    assert sorted(r.n_resumed for r in reports) == [0, 3]  # one fitted, the other resumed
    _assert_race_ended_well(out)


@pytest.mark.slow
def test_two_concurrent_processes_into_one_out(tmp_path, tiny_nucleus):
    data, out = _race_inputs(tmp_path, tiny_nucleus)
    cmd = [sys.executable, "-m", "chromarate.cli", "run", "quick-cpu", str(data), "--out",
           str(out), "--set", "fit.method=direct", "-q"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    _assert_race_ended_well(out)


# ------------------------------------------------------------------------ crafted stores


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted") / "res" / "cell"
    folder.mkdir(parents=True)
    return [hc.store_huge_shape(folder), hc.store_zero_chunks(folder)]


def test_info_on_crafted_stores(crafted, capsys):
    from chromarate.cli import main

    for store in crafted:
        with pytest.raises(SystemExit) as info:
            main(["info", str(store)])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(store) in err and "read limit" in err
    with pytest.raises(SystemExit) as info:
        main(["info", str(crafted[0].parent.parent)])
    captured = capsys.readouterr()
    assert info.value.code == 1 and captured.out.count("cannot be read") == 2
    assert "2 of 2 result(s) cannot be read" in captured.err


def test_crafted_stores_everywhere_else(crafted, tmp_path, tiny_nucleus, config):
    from chromarate._napari._reader import get_result_reader
    from chromarate.analysis import iter_nuclei, load_nucleus

    for store in crafted:
        assert not is_complete_result(store)
        assert get_result_reader(str(store)) is None
        with pytest.raises(ResultStoreError):
            load_nucleus(store)
    assert list(iter_nuclei(crafted[0].parent, skip_damaged=True)) == []
    # resume: a crafted store where a result belongs is refitted and replaced, in --out
    src = tmp_path / "cell.csv"
    shutil.copy(tiny_nucleus[0], src)
    out = tmp_path / "res"
    (out / "cell").mkdir(parents=True)
    shutil.copytree(crafted[0], out / "cell" / "1.ome.zarr")
    report = run_batch(config, [src], out)
    assert report.n_failed == 0 and is_complete_result(out / "cell" / "1.ome.zarr")
