"""The shared real SMLM sample files (``../shared/data/smlm``) for the format tests.

A test that needs a file it does not find is skipped, not failed: the data live outside the
repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: The folder of the real sample files, next to the repository.
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "smlm"


def real_file(rel: str) -> Path:
    """``DATA / rel``; skips the calling test when the file is absent."""
    path = DATA / rel
    if not path.is_file():
        pytest.skip(f"shared real-data file {path} is absent (expected under ../shared/data/smlm)")
    return path


def head(path: Path) -> bytes:
    """The first MiB of ``path``, as the registry hands it to ``detect``."""
    with open(path, "rb") as fh:
        return fh.read(1 << 20)
