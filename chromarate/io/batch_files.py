"""Small files of a batch run: summary tables, input manifests, reports and the batch log.

Every writer here is atomic (a temporary sibling is written, flushed and renamed into
place), so a reader sees the old file or the new one, never half of one; a killed batch
leaves no truncated table behind. The batch runner and the report builder call these;
they never open files themselves (docs/design.md section 2).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd

from .._readfile import NotReadableError, read_regular
from ..errors import ResultStoreError
from ._atomic import atomic_binary

__all__ = [
    "MAX_JSON_BYTES",
    "batch_log",
    "read_json",
    "write_bytes",
    "write_json",
    "write_table",
    "write_text",
]

#: Largest JSON file :func:`read_json` reads (a manifest lists the nuclei of one input:
#: a few kB; 50,000 nuclei take some 400 kB). Parsed JSON takes up to ~24 bytes of Python
#: objects per byte of text, so 8 MiB bounds a crafted one at about 200 MB.
MAX_JSON_BYTES = 8 << 20

#: How text that cannot be encoded as UTF-8 is written: a file name that is not valid
#: UTF-8 reaches Python as a str with lone surrogates ("bad\udcff.csv"); it is written as
#: that escape, readably, instead of stopping the batch.
_TEXT_ERRORS = "backslashreplace"

log = logging.getLogger("chromarate.io")


def _prepare(path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultStoreError(f"cannot create folder: {exc.strerror or exc}",
                               path=path.parent) from exc
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (missing folders are created).

    Raises
    ------
    ResultStoreError
        If the file cannot be written; an existing file is then unchanged.
    """
    path = _prepare(path)
    try:
        with atomic_binary(path) as fh:
            fh.write(data)
    except OSError as exc:
        raise ResultStoreError(f"cannot write file: {exc.strerror or exc}", path=path) from exc
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`write_bytes`).

    Characters UTF-8 cannot encode (the lone surrogates of a file name that is not valid
    UTF-8) are written as backslash escapes (``bad\\udcff.csv``), so such a name never
    stops a batch from writing its summary.
    """
    return write_bytes(path, text.encode("utf-8", errors=_TEXT_ERRORS))


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a table as CSV (no index, NaN as an empty field) atomically."""
    return write_text(path, table.to_csv(index=False))


def write_json(path: str | os.PathLike, obj: Mapping[str, Any]) -> Path:
    """Write a JSON object (indented, keys in order) atomically."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES
              ) -> dict[str, Any] | None:
    """Read a JSON object written by :func:`write_json`; None if missing or unreadable.

    A batch treats a manifest it cannot read as absent and redoes the work it describes,
    so this never raises for a bad file. Only a regular file of at most ``max_bytes``
    bytes is read: a FIFO, device or socket at ``path`` (which would block or never end)
    or a larger file is treated as missing, with a warning naming it.

    Parameters
    ----------
    path : str or path-like
        The JSON file.
    max_bytes : int
        Largest file read (:data:`MAX_JSON_BYTES`).

    Returns
    -------
    dict or None
        The object; None when the file is missing, not a regular file, too large, not
        JSON or not a JSON object.
    """
    try:
        data = read_regular(path, max_bytes, expected="a JSON file")
    except FileNotFoundError:
        return None
    except NotReadableError as exc:
        log.warning("%s: %s; treated as missing", path, exc)
        return None
    except OSError:
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


@contextmanager
def batch_log(path: str | os.PathLike, logger: logging.Logger, *,
              level: int = logging.INFO) -> Iterator[Path]:
    """Append the records of ``logger`` to the text file ``path`` while the block runs.

    Lines are ``<ISO time> <LEVEL> <message>``; each record is flushed at once, so the log
    of a killed batch ends with the last event it handled. Text UTF-8 cannot encode (a file
    name that is not valid UTF-8) is written as backslash escapes, as by
    :func:`write_text`.
    """
    path = _prepare(path)
    try:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8", errors=_TEXT_ERRORS)
    except OSError as exc:
        raise ResultStoreError(f"cannot open batch log: {exc.strerror or exc}", path=path) from exc
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
