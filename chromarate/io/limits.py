"""How much memory reading one file may take: the read limit, decided before reading.

A small file can declare a huge content: a compressed TIFF of 30000 x 30000 pixels, an
HDF5 table of 3e8 rows, a zip member that inflates to gigabytes, a result store whose
arrays claim terabytes. Every reader in :mod:`chromarate.io` computes the size the decoded
data would take from the file's headers and calls :func:`check_decoded_size` before it
allocates anything; data that is streamed (zip members, gzip text) is counted while it is
read and refused as soon as it passes the limit.

The limit is, in order of precedence:

1. the value of an enclosing :func:`read_limit` block (``run_batch(read_limit=...)`` and
   ``chromarate run --read-limit`` set one around each input they read);
2. the environment variable ``CHROMARATE_READ_LIMIT`` (e.g. ``16G``, ``500M``, ``2e9``);
3. :func:`default_read_limit`: 4 GiB, or a quarter of the machine's memory when that is
   less.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, InputFormatError

__all__ = [
    "ENV_VAR",
    "check_decoded_size",
    "current_read_limit",
    "default_read_limit",
    "format_size",
    "parse_size",
    "read_limit",
    "size_error",
]

#: Environment variable that sets the read limit (a size such as ``16G``).
ENV_VAR = "CHROMARATE_READ_LIMIT"

_GIB = 1 << 30
_CAP = 4 * _GIB
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20,
          "MB": 1 << 20, "MIB": 1 << 20, "G": _GIB, "GB": _GIB, "GIB": _GIB,
          "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")

_override: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "chromarate_read_limit", default=None)


def parse_size(value: int | float | str) -> int:
    """A size in bytes from a number or a text such as ``"16G"``, ``"500 MB"``, ``"2e9"``.

    Units are binary (``K`` = 1024 bytes, ``G`` = 1024**3 bytes), case-insensitive.

    Raises
    ------
    ConfigError
        If ``value`` is not a positive size.

    Examples
    --------
    >>> parse_size("16G"), parse_size("1.5k"), parse_size(2e9)
    (17179869184, 1536, 2000000000)
    """
    if isinstance(value, bool):
        raise ConfigError(f"a read limit must be a size such as 16G, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = _SIZE_RE.match(str(value))
        if m is None or m.group(2).upper() not in _UNITS:
            raise ConfigError(f"a read limit must be a size such as 16G, 500M or 2e9 "
                              f"(bytes), got {value!r}")
        number, unit = float(m.group(1)), m.group(2).upper()
    size = number * _UNITS[unit]
    if not (math.isfinite(size) and size >= 1):
        raise ConfigError(f"a read limit must be a positive size, got {value!r}")
    return int(size)


def format_size(n: int | float) -> str:
    """``n`` bytes for people: ``"9.0 GiB"``, ``"512.0 MiB"``, ``"17 bytes"``."""
    n = float(n)
    for unit, size in (("EiB", 1 << 60), ("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", _GIB),
                       ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _total_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def default_read_limit() -> int:
    """4 GiB, or a quarter of the machine's memory when that is less."""
    total = _total_memory()
    return _CAP if not total else max(1 << 26, min(_CAP, total // 4))


def current_read_limit() -> int:
    """The read limit in force here (see the module docstring for the precedence).

    Raises
    ------
    ConfigError
        If ``CHROMARATE_READ_LIMIT`` is set to something that is not a size.
    """
    value = _override.get()
    if value is not None:
        return value
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            return parse_size(env)
        except ConfigError as exc:
            raise ConfigError(f"environment variable {ENV_VAR}: {exc.message}") from None
    return default_read_limit()


@contextlib.contextmanager
def read_limit(size: int | float | str | None) -> Iterator[int]:
    """Use ``size`` as the read limit inside the block (None: leave it as it is).

    The setting is local to the thread or task that enters the block (a
    :class:`contextvars.ContextVar`), so concurrent readers may use different limits.

    Examples
    --------
    >>> with read_limit("16G") as limit:
    ...     limit
    17179869184
    """
    if size is None:
        yield current_read_limit()
        return
    token = _override.set(parse_size(size))
    try:
        yield _override.get()  # type: ignore[misc]
    finally:
        _override.reset(token)


def size_error(path: str | Path, what: str, nbytes: int | float, limit: int,
               *, error: type = InputFormatError):
    """The error for ``what`` in ``path`` needing ``nbytes`` above ``limit``."""
    return error(
        f"{what} would take {format_size(nbytes)} of memory when decoded, more than the read "
        f"limit of {format_size(limit)}; if the file is genuine, raise the limit with "
        f"--read-limit (chromarate run), read_limit= (run_batch), or the {ENV_VAR} "
        f"environment variable, e.g. {ENV_VAR}=16G", path=path)


def check_decoded_size(path: str | Path, nbytes: int | float, what: str, *,
                       error: type = InputFormatError) -> None:
    """Refuse ``what`` of ``path`` if decoding it needs more than the read limit.

    Parameters
    ----------
    path : str or Path
        The file (named in the message).
    nbytes : int or float
        Bytes the decoded data would occupy (as declared by the file's headers).
    what : str
        What is being decoded, e.g. ``"the TIFF image (30000 x 30000 uint16)"``.
    error : type
        The ChromarateError subclass to raise (InputFormatError, or ResultStoreError for
        result stores).

    Raises
    ------
    InputFormatError
        (or ``error``) naming the file, the declared size, the limit and how to raise it.
    """
    limit = current_read_limit()
    if not (nbytes <= limit):  # also refuses NaN
        raise size_error(path, what, nbytes, limit, error=error)
