"""Find the input files of a batch and give each one its output folder name.

Inputs may be files, folders (searched recursively for every supported format) or glob
patterns. Each input gets a folder ``<out>/<name>/`` for its nuclei; ``name`` is the file
name without its format suffixes, prefixed with parent folder names only where two inputs
would otherwise share it (``ctrl__cell1`` and ``treated__cell1``).
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import InputFormatError
from ..io.names import INPUT_SUFFIXES, input_stem

__all__ = ["INPUT_SUFFIXES", "discover_inputs", "input_stem", "output_names"]

_GLOB_CHARS = frozenset("*?[")


def _is_supported(path: Path) -> bool:
    return path.name.lower().endswith(INPUT_SUFFIXES)


def _skipped(path: Path, root: Path, exclude: Sequence[Path]) -> bool:
    """Hidden entries, result stores and the excluded folders (e.g. the batch output)."""
    rel = path.relative_to(root).parts
    if any(part.startswith(".") or part.endswith(".ome.zarr") for part in rel):
        return True
    resolved = path.resolve()
    return any(resolved == ex or ex in resolved.parents for ex in exclude)


def _search_folder(folder: Path, exclude: Sequence[Path]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not _skipped(here / d, folder, exclude))
        for name in sorted(filenames):
            p = here / name
            if _is_supported(p) and not _skipped(p, folder, exclude):
                found.append(p)
    return found


def discover_inputs(specs: Iterable[str | os.PathLike], *,
                    exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted list of input files.

    Parameters
    ----------
    specs : iterable of str or path-like
        Files (kept as given, even if missing or of an unknown format, so that the batch
        reports them), folders (searched recursively for :data:`INPUT_SUFFIXES`, skipping
        hidden entries and ``*.ome.zarr`` stores) and glob patterns (``data/*/cell*.csv``,
        ``**`` allowed).
    exclude : iterable of path, optional
        Folders never searched (the batch passes its output folder).

    Returns
    -------
    list of Path
        Each file once (by resolved path), in the order the specs were given; files found
        in one folder or by one pattern are sorted.

    Raises
    ------
    InputFormatError
        If a folder holds no supported file or a pattern matches nothing (the message
        names it and lists the suffixes searched for).

    Examples
    --------
    >>> discover_inputs(["data/", "extra/cell_7.csv.gz", "more/*.hdf5"])  # doctest: +SKIP
    """
    excluded = [Path(e).resolve() for e in exclude]
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if path.is_dir():
            found = _search_folder(path, excluded)
            if not found:
                raise InputFormatError(
                    "folder holds no input file; searched recursively for "
                    f"{', '.join(INPUT_SUFFIXES)}", path=path)
            for p in found:
                add(p)
        elif not path.exists() and _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file() and not any(
                part.startswith(".") or part.endswith(".ome.zarr") for part in m.parts[:-1])]
            if not files:
                raise InputFormatError("pattern matches no file", path=text)
            for p in files:
                add(p)
        else:
            add(path)
    return out


def output_names(paths: Sequence[str | os.PathLike]) -> dict[Path, str]:
    """A distinct output folder name for each input.

    The name is :func:`input_stem`; inputs that would share one get as many parent folder
    names prefixed (joined by ``__``) as needed to tell them apart, and, if even the full
    paths agree (the same name given twice), a ``-2``, ``-3`` ... suffix. The result is the
    same for the same list of inputs, so a resumed batch finds its earlier results.

    Examples
    --------
    >>> names = output_names(["ctrl/cell1.csv", "treated/cell1.csv", "ctrl/cell2.csv"])
    >>> sorted(names.values())
    ['cell2', 'ctrl__cell1', 'treated__cell1']
    """
    paths = [Path(p) for p in paths]
    parents = {p: [part for part in p.resolve().parent.parts if part not in ("/", "\\")]
               for p in paths}
    depth = {p: 0 for p in paths}

    def name_of(p: Path) -> str:
        prefix = parents[p][len(parents[p]) - depth[p]:] if depth[p] else []
        return "__".join([*prefix, input_stem(p)])

    while True:
        groups: dict[str, list[Path]] = defaultdict(list)
        for p in paths:
            groups[name_of(p)].append(p)
        clashes = [g for g in groups.values() if len(g) > 1]
        grown = False
        for group in clashes:
            for p in group:
                if depth[p] < len(parents[p]):
                    depth[p] += 1
                    grown = True
        if not clashes or not grown:
            break
    names: dict[Path, str] = {}
    used: dict[str, int] = defaultdict(int)
    for p in paths:
        base = name_of(p)
        used[base] += 1
        names[p] = base if used[base] == 1 else f"{base}-{used[base]}"
    return names
