"""Open or read a file only if it is a regular file (and, to read it whole, within a cap).

Opening a FIFO for reading waits for a writer, and a device such as ``/dev/zero`` never
ends: a name planted in an input or output folder must not hang or exhaust a run. The file
is opened without waiting (``O_NONBLOCK``) and checked on the open descriptor, so what is
read is the regular file that was checked, whatever the name pointed to before.
"""

from __future__ import annotations

import os
import stat

__all__ = ["NotReadableError", "open_checked", "read_regular", "special_file_kind"]


class NotReadableError(ValueError):
    """Not a regular file, or larger than its cap (the message says which; ``mode`` is the
    file's ``st_mode`` when it is not a regular file, else None)."""

    def __init__(self, message: str, mode: int | None = None) -> None:
        super().__init__(message)
        self.mode = mode


def special_file_kind(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is when it is no regular file or folder, else None.

    Examples
    --------
    >>> import stat
    >>> special_file_kind(stat.S_IFIFO)
    'a FIFO (named pipe)'
    """
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a special file"  # pragma: no cover - door, whiteout, ...


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory"
    return f"is {special_file_kind(mode)}, not a regular file"


def open_checked(path: str | os.PathLike) -> int:
    """A blocking file descriptor of ``path``, opened without waiting and only if it is a
    regular file (checked on the open descriptor).

    Raises
    ------
    NotReadableError
        It is a folder, FIFO, socket or device (also through a symbolic link).
    OSError
        It cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotReadableError(_not_regular(mode), mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike, max_bytes: int, *, expected: str = "a file") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` bytes.

    Parameters
    ----------
    path : str or path-like
    max_bytes : int
        Largest size read.
    expected : str
        What the file should be, for the message (``"a YAML text file"``).

    Raises
    ------
    NotReadableError
        Not a regular file (:func:`open_checked`) or larger than ``max_bytes``.
    OSError
        It cannot be opened or read.
    """
    try:
        fd = open_checked(path)
    except NotReadableError as exc:
        raise NotReadableError(f"{exc}; expected {expected}", exc.mode) from None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise NotReadableError(f"{size} bytes, more than the {_size(max_bytes)} "
                                   f"{expected} may take")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotReadableError(f"more than the {_size(max_bytes)} {expected} may take")
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"
