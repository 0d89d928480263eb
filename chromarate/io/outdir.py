"""The batch output folder: a lock that keeps two runs from writing into it at once, and
the check that a path lies inside it.

The lock is an operating-system advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on
Windows) on the hidden file ``<out>/.chromarate.lock``. It belongs to the open file, so it
dies with the process that holds it -- a killed run never leaves a stale lock behind -- and
the file itself is never deleted (deleting a lock file lets two runs each lock a different
one). While locked, the file names the holder (process id, host, start time) for the
message another run shows.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import ResultStoreError

__all__ = ["LOCK_NAME", "OutputLock", "check_inside", "is_inside"]

#: File in the output folder that carries the lock.
LOCK_NAME = ".chromarate.lock"

_POLL_S = 0.25

log = logging.getLogger("chromarate.io")


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True if ``path``, with every symbolic link resolved, lies inside ``root`` (also
    resolved) or is ``root`` itself. Never raises (a symlink loop is not inside)."""
    try:
        r = os.path.realpath(os.fspath(root))
        p = os.path.realpath(os.fspath(path))
    except (OSError, ValueError):
        return False
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def check_inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` if it lies inside ``root`` (see :func:`is_inside`).

    Raises
    ------
    ResultStoreError
        If it resolves to somewhere else (e.g. through a symbolic link), naming both.
    """
    if not is_inside(root, path):
        raise ResultStoreError(
            f"resolves to {os.path.realpath(os.fspath(path))}, outside the output folder "
            f"{os.path.realpath(os.fspath(root))}; chromarate writes only inside --out "
            "(remove the symbolic link or choose another --out)", path=path)
    return Path(path)


def _try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


class OutputLock:
    """Exclusive use of an output folder by one run (a context manager).

    Parameters
    ----------
    out_dir : str or path-like
        The folder (created if missing).
    wait : float or None
        Seconds to wait for another run to release the folder: None (default) waits as
        long as it takes, 0 refuses at once.
    on_wait : callable, optional
        Called once with a message (who holds the folder) when the lock is busy and this
        run starts waiting.

    Raises
    ------
    ResultStoreError
        On entering, when another run holds the folder and ``wait`` runs out (the message
        names that run), or the lock file cannot be created.

    Examples
    --------
    >>> with OutputLock("results/", wait=0):  # doctest: +SKIP
    ...     ...  # write results
    """

    def __init__(self, out_dir: str | os.PathLike, *, wait: float | None = None,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None
        self.supported = True

    def _holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as fh:
                info = json.loads(fh.read(4096) or "{}")
            return (f"pid {info.get('pid')} on {info.get('host')}, started "
                    f"{info.get('started')}")
        except (OSError, ValueError, AttributeError):
            return "details unknown"

    def acquire(self) -> "OutputLock":
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # never follow a link planted at the lock's name: the lock file is truncated
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
        except OSError as exc:
            raise ResultStoreError(f"cannot create the lock file: {exc.strerror or exc}"
                                   + (" (it is a symbolic link; remove it)"
                                      if os.path.islink(self.path) else ""),
                                   path=self.path) from exc
        deadline = None if self.wait is None else time.monotonic() + max(0.0, self.wait)
        told = False
        try:
            while True:
                try:
                    if _try_lock(fd):
                        break
                except OSError as exc:  # e.g. a file system without locks
                    log.warning("cannot lock %s (%s); make sure no other run writes into "
                                "this folder at the same time", self.path, exc.strerror or exc)
                    self.supported = False
                    break
                busy = (f"another chromarate run ({self._holder()}) is writing into "
                        f"{self.out_dir}")
                if deadline is not None and time.monotonic() >= deadline:
                    raise ResultStoreError(
                        f"{busy}; wait for it to finish (its results will then be resumed, "
                        "not redone) or choose another --out", path=self.out_dir)
                if not told and self.on_wait is not None:
                    self.on_wait(f"{busy}; waiting for it to finish")
                    told = True
                time.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if self.supported:
            self._record()
        return self

    def _record(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        data = (json.dumps(info) + "\n").encode("utf-8")
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0) if hasattr(os, "pwrite") else os.write(self._fd, data)
        except OSError:  # the note is informative only
            pass

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.supported:
                os.ftruncate(fd, 0)
                _unlock(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
