"""Atomic file and directory replacement shared by the writers in :mod:`chromarate.io`."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_binary(path: Path) -> Iterator[Any]:
    """Yield a binary file handle whose content replaces ``path`` only on success."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# renameat2(2) flags (Linux >= 3.15, glibc >= 2.28)
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None  # the libc function once looked up; False when unavailable


def _libc_renameat2():
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2 = fn
            except (OSError, AttributeError):
                pass
    return _renameat2


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2 with ``flags``; False when the system or file system does not support it."""
    fn = _libc_renameat2()
    if not fn:
        return False
    import ctypes

    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths (files or directories) in one atomic step.

    Returns False, changing nothing, where the operating system cannot do that (then the
    caller falls back to two renames); raises OSError for other failures.
    """
    return _rename2(a, b, _RENAME_EXCHANGE)


def rename_no_replace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; fail with FileExistsError if ``dst`` exists, even if it
    is an empty directory (which a plain rename would silently replace)."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)
