"""File names of inputs: the format suffixes chromarate reads and the stem left without them.

One definition shared by batch output folders (:func:`chromarate.batch.output_names`),
ground-truth look-up (:func:`chromarate.data.truth_path_for`) and ``chromarate simulate``,
so that a truth file written beside an input is always found again.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

__all__ = ["INPUT_SUFFIXES", "MAX_NAME_LENGTH", "input_stem", "path_tag", "safe_name"]

#: Longest folder name :func:`safe_name` returns (file systems allow 255 bytes).
MAX_NAME_LENGTH = 96

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)])

#: File name endings of inputs: localization tables of every format
#: :func:`chromarate.io.read_localizations` reads, plus rendered TIFF density images.
#: Compound endings come before their tails (``.csv.gz`` before ``.csv``).
INPUT_SUFFIXES: tuple[str, ...] = (
    ".csv.gz", ".tsv.gz", ".txt.gz", ".csv", ".tsv", ".txt",
    ".hdf5", ".h5", ".mat", ".smlm", ".asdf", ".tiff", ".tif",
)


def input_stem(path: str | os.PathLike) -> str:
    """File name without its format suffixes (``cell1.csv.gz`` -> ``cell1``).

    Suffixes are matched case-insensitively; a name with none of :data:`INPUT_SUFFIXES`
    loses its last suffix only.

    Examples
    --------
    >>> input_stem("data/cell1.csv.gz"), input_stem("a.b.TIFF"), input_stem("x.dat")
    ('cell1', 'a.b', 'x')
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in INPUT_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name


def safe_name(text: str, *, fallback: str = "input") -> str:
    r"""``text`` made into one harmless folder name.

    Path separators, control characters and characters Windows forbids become ``_``;
    leading dots and spaces are dropped (no ``.``, ``..`` or hidden names), as are trailing
    dots and spaces; Windows device names get a ``_`` prefix; the result is cut to
    :data:`MAX_NAME_LENGTH` characters. An empty result is ``fallback``.

    Examples
    --------
    >>> safe_name(".."), safe_name("a/b\\c"), safe_name(" .hidden"), safe_name("con")
    ('input', 'a_b_c', 'hidden', '_con')
    """
    name = unicodedata.normalize("NFC", str(text))
    name = _UNSAFE.sub("_", name).lstrip(". ").rstrip(". ")
    if name.split(".")[0].lower() in _WINDOWS_RESERVED:
        name = "_" + name
    name = name[:MAX_NAME_LENGTH].rstrip(". ")
    return name or fallback


def path_tag(path: str | os.PathLike) -> str:
    """Eight hex digits of the sha256 of the absolute, symlink-free path of ``path``.

    Tells apart inputs that share a file name (the batch appends it to an output folder
    name already used by another input). Never raises, also for a symlink loop.

    Examples
    --------
    >>> len(path_tag("data/cell1.csv"))
    8
    """
    resolved = os.path.realpath(os.fspath(path))
    return hashlib.sha256(os.fsencode(resolved)).hexdigest()[:8]
