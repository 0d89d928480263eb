"""Crashes while a result store is written (the process dies; no cleanup code runs).

A crash at any point must leave either nothing at the result path (a new result) or the
previous, complete result (a rewrite); leftovers are hidden siblings that never read as a
complete result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from chromarate.errors import ResultStoreError
from chromarate.io.zarr_store import (is_complete_result, read_result,
                                      remove_stale_temporaries, write_result)

from .test_zarr_store import assert_same, make_stack

REPO = Path(__file__).resolve().parents[2]

# Runs write_result in a child process that dies (os._exit, like a power cut: no finally
# blocks, no cleanup) at the chosen point.
_CHILD = textwrap.dedent("""
    import os, sys
    from chromarate.io import _zarr_commit, zarr_store
    from tests.io.test_zarr_store import make_stack

    path, point, seed, version = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def die():
        os._exit(17)

    if point == "first-array":  # full-resolution image written, nothing else
        real = zarr_store._create_array
        def patched(*args, **kwargs):
            real(*args, **kwargs)
            die()
        zarr_store._create_array = patched
    elif point == "root-metadata":  # every array written, root metadata not yet
        real = zarr_store._put_ome
        def patched(group, ome, ngff, extra=None):
            if extra:
                die()
            real(group, ome, ngff, extra)
        zarr_store._put_ome = patched
    elif point == "commit":  # the whole temporary store is written, not renamed yet
        zarr_store._commit = lambda *args, **kwargs: die()
    elif point == "between-renames":  # systems without an atomic exchange only
        _zarr_commit.exchange_paths = lambda a, b: False
        calls = []
        real = os.rename
        def patched(src, dst):
            calls.append(src)
            real(src, dst)
            if len(calls) == 1:
                die()
        zarr_store.os.rename = patched
    zarr_store.write_result(make_stack(seed), path, ngff_version=version)
""")


def crash_writing(path: Path, point: str, *, seed: int = 1, version: str = "0.5") -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), point, str(seed), version],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr[-3000:]


def hidden_leftovers(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("point", ["first-array", "root-metadata", "commit"])
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_crash_during_new_write_leaves_no_result(tmp_path, point, version):
    path = tmp_path / "n.ome.zarr"
    crash_writing(path, point, version=version)
    assert not os.path.lexists(path)
    assert not is_complete_result(path)
    with pytest.raises(ResultStoreError, match="no such result store"):
        read_result(path)
    (tmp,) = hidden_leftovers(tmp_path)  # the half-written store, hidden and incomplete ...
    assert tmp.name.startswith(".n.ome.zarr.tmp-")
    if point != "commit":
        assert not is_complete_result(tmp)
        with pytest.raises(ResultStoreError):
            read_result(tmp)
    # ... which a batch clears away before it starts ...
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert not hidden_leftovers(tmp_path)
    # ... and a later write of the same result succeeds
    stack = make_stack(2)
    write_result(stack, path, ngff_version=version)
    assert_same(stack, read_result(path))


@pytest.mark.parametrize("point", ["first-array", "root-metadata", "commit"])
def test_crash_during_rewrite_keeps_the_good_result(tmp_path, point):
    path = tmp_path / "n.ome.zarr"
    good = make_stack(0)
    write_result(good, path)
    before = sorted((p.relative_to(path), p.read_bytes()) for p in path.rglob("*") if p.is_file())
    crash_writing(path, point, seed=1)
    assert is_complete_result(path)
    assert_same(good, read_result(path))
    after = sorted((p.relative_to(path), p.read_bytes()) for p in path.rglob("*") if p.is_file())
    assert after == before  # not a byte changed


def test_crash_between_the_two_renames_of_the_fallback(tmp_path):
    """Without an atomic exchange the old store is moved aside first; a crash right then
    leaves no store at the path, the old one intact beside it, and a reader that says so."""
    path = tmp_path / "n.ome.zarr"
    good = make_stack(0)
    write_result(good, path)
    crash_writing(path, "between-renames")
    assert not is_complete_result(path)
    with pytest.raises(ResultStoreError, match="interrupted rewrite left the previous result"
                       ) as info:
        read_result(path)
    backups = [p for p in hidden_leftovers(tmp_path) if ".old-" in p.name]
    assert len(backups) == 1 and str(backups[0]) in str(info.value)
    assert_same(good, read_result(backups[0]))  # nothing lost
    removed = remove_stale_temporaries(tmp_path)  # the new store, not yet renamed in ...
    assert removed and all(".tmp-" in p.name for p in removed)
    assert hidden_leftovers(tmp_path) == backups  # ... but the backup is kept
    assert_same(good, read_result(backups[0]))


_LOOP = textwrap.dedent("""
    import sys
    from chromarate.io.zarr_store import write_result
    from tests.io.test_zarr_store import make_stack

    stacks = [make_stack(0), make_stack(1)]
    print("ready", flush=True)
    i = 0
    while True:
        write_result(stacks[i % 2], sys.argv[1])
        i += 1
""")


def test_killed_at_random_times_the_path_always_holds_a_complete_result(tmp_path):
    """SIGKILL a process that keeps rewriting one store; each time the store is complete and
    equal to one of the two stacks it writes."""
    path = tmp_path / "n.ome.zarr"
    write_result(make_stack(0), path)
    candidates = [make_stack(0), make_stack(1)]
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.05, 0.5, size=3):
        proc = subprocess.Popen([sys.executable, "-c", _LOOP, str(path)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        back = read_result(path)
        assert any(np.array_equal(back.channels["density"], c.channels["density"])
                   for c in candidates)
        for c in candidates:
            if np.array_equal(back.channels["density"], c.channels["density"]):
                assert_same(c, back)
