"""Read a small file only if it is a regular file within a size cap.

Opening a FIFO for reading waits for a writer, and a device such as ``/dev/zero`` never
ends: a name planted in an input or output folder must not hang or exhaust a run. The file
is opened without waiting (``O_NONBLOCK``) and checked on the open descriptor, so what is
read is the regular file that was checked, whatever the name pointed to before.
"""

from __future__ import annotations

import os
import stat

__all__ = ["NotReadableError", "read_regular"]


class NotReadableError(ValueError):
    """Not a regular file, or larger than its cap (the message says which)."""


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
        Not a regular file (a FIFO, device, socket or folder, also through a symbolic link)
        or larger than ``max_bytes``.
    OSError
        It cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotReadableError(f"not a regular file (a FIFO, device, socket or folder); "
                                   f"expected {expected}")
        if st.st_size > max_bytes:
            raise NotReadableError(f"{st.st_size} bytes, more than the {_size(max_bytes)} "
                                   f"{expected} may take")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotReadableError(f"more than the {_size(max_bytes)} {expected} may take")
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"
