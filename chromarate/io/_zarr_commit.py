"""Atomic placement of result stores: build beside, then rename into place.

A store is built in a hidden sibling directory ``.<name>.tmp-<token>`` (:func:`temporary`)
and moved to its path by :func:`commit`: one rename that refuses to replace anything for a
new path; for an existing store, one atomic exchange where the system has one
(``renameat2(RENAME_EXCHANGE)`` on Linux), else the old store is first renamed aside to
``.<name>.old-<token>`` and put back if the new one cannot take its place. A result path
therefore holds either a complete store or nothing new.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
from pathlib import Path

from ..errors import ResultStoreError
from ._atomic import exchange_paths, rename_no_replace

__all__ = ["backups", "commit", "remove_stale_temporaries", "remove_tree", "settle_backups",
           "temporary"]

_TMP_MARK = ".tmp-"  # hidden siblings: .<name>.tmp-<token> (being written)
_OLD_MARK = ".old-"  # and .<name>.old-<token> (previous store, being replaced)


def temporary(path: Path, token: str) -> Path:
    """The hidden sibling of ``path`` a store is built in before :func:`commit`."""
    return path.parent / f".{path.name}{_TMP_MARK}{token}"


def backups(path: Path) -> list[Path]:
    """Previous stores an interrupted rewrite of ``path`` left beside it, oldest name first."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}{_OLD_MARK}*"))


def remove_tree(path: Path) -> None:
    """Remove a directory tree (not following a link) or a file; missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove result stores a killed run left half-written in ``folder`` (not recursive).

    Only the hidden ``.<name>.ome.zarr.tmp-<token>`` siblings
    :func:`chromarate.io.zarr_store.write_result` builds stores in are removed: complete
    results are kept, and the ``.old-`` backups of interrupted rewrites are left to
    :func:`settle_backups` (the batch calls it first). A store being
    written by another process looks just the same, so call this only while holding the
    output folder's lock (:class:`chromarate.io.outdir.OutputLock`), as the batch does.

    Parameters
    ----------
    folder : str or path-like
        The folder holding result stores.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    mark = f".ome.zarr{_TMP_MARK}"
    removed: list[Path] = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") and mark in entry.name:
            remove_tree(entry)
            removed.append(entry)
    return removed


def settle_backups(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """Settle the ``.old-`` backups an interrupted rewrite left in ``folder`` (not recursive).

    A rewrite without an atomic exchange moves the previous store aside, moves the new one
    into place, then removes the previous one. Killed between the first two renames it
    leaves the result path empty: the newest backup is put back there. Killed after the
    second, the result path holds the new, complete store: its backups are removed. Call
    this only while holding the output folder's lock, as :func:`remove_stale_temporaries`.

    Returns
    -------
    list of (Path, str)
        Each backup and what was done with it (``"restored"`` or ``"removed"``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    mark = f".ome.zarr{_OLD_MARK}"
    targets = {entry.name[1:entry.name.index(mark) + len(".ome.zarr")]
               for entry in folder.iterdir() if entry.name.startswith(".") and mark in entry.name}
    done: list[tuple[Path, str]] = []
    for name in sorted(targets):
        path = folder / name
        found = []
        for old in backups(path):  # only folders this module made: never a link out
            try:
                st = os.lstat(old)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                found.append((st.st_mtime, old))
        found = [old for _, old in sorted(found)]
        try:
            if found and not os.path.lexists(path):
                rename_no_replace(found[-1], path)
                done.append((found.pop(), "restored"))
            for old in found:
                remove_tree(old)
                done.append((old, "removed"))
        except OSError:
            continue  # left as it is; the result path is refitted
    return done


def commit(tmp: Path, path: Path, *, overwrite: bool, token: str) -> None:
    """Move the finished store at ``tmp`` to ``path``; keep any old store until it is there.

    Parameters
    ----------
    tmp : Path
        The complete store (:func:`temporary`).
    path : Path
        Where it goes.
    overwrite : bool
        Whether an existing store at ``path`` may be replaced.
    token : str
        The token of ``tmp``, reused for the ``.old-`` sibling.

    Raises
    ------
    ResultStoreError
        ``path`` exists (or appeared meanwhile) and ``overwrite`` is False.
    OSError
        A rename failed; the old store, if any, is back at ``path``.
    """
    if not os.path.lexists(path):
        try:
            rename_no_replace(tmp, path)
            return
        except FileExistsError:  # someone created path meanwhile: fall through to replace it
            pass
    if not overwrite:
        raise ResultStoreError("result store already exists (overwrite=False)", path=path)
    if exchange_paths(tmp, path):  # path now holds the new store, tmp the old one
        remove_tree(tmp)
        return
    old = path.parent / f".{path.name}{_OLD_MARK}{token}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)  # put the previous store back
        raise
    remove_tree(old)
