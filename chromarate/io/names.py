"""File names of inputs: the format suffixes chromarate reads and the stem left without them.

One definition shared by batch output folders (:func:`chromarate.batch.output_names`),
ground-truth look-up (:func:`chromarate.data.truth_path_for`) and ``chromarate simulate``,
so that a truth file written beside an input is always found again.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["INPUT_SUFFIXES", "input_stem"]

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
