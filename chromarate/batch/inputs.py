"""Find the input files of a batch and give each one its output folder name.

Inputs may be files, folders (searched recursively for every supported format) or glob
patterns. Each input gets a folder ``<out>/<name>/`` for its nuclei; ``name`` is the file
name without its format suffixes, made safe (:func:`chromarate.io.names.safe_name`: no
path separators, no ``.``/``..``, no hidden names), prefixed with parent folder names only
where two inputs would otherwise share it (``ctrl__cell1`` and ``treated__cell1``). A folder
that already holds the results of another input file (by its manifest) is never reused:
the input then gets ``<name>-<tag>``, ``tag`` being 8 hex digits of the sha256 of its
resolved path (:func:`claim_output_names`).

Discovery never raises for a bad entry: symbolic link loops, dangling links, unreadable
files and folders are kept (or reported) so that the batch records each as a failed row.
"""

from __future__ import annotations

import errno
import glob
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import InputFormatError, ResultStoreError
from ..io.batch_files import read_json
from ..io.names import INPUT_SUFFIXES, input_stem, path_tag, safe_name
from ..io.zarr_store import open_result
from .tasks import LOG_NAME, MANIFEST_NAME, SUMMARY_NAME

__all__ = ["INPUT_SUFFIXES", "as_input_list", "check_input_folders", "claim_output_names",
           "discover_inputs", "find_inputs", "input_problem", "input_stem", "output_names"]

_GLOB_CHARS = frozenset("*?[")


def _real(path: str | os.PathLike) -> str:
    """The absolute path with symbolic links resolved as far as they go (never raises)."""
    return os.path.realpath(os.fspath(path))


def _is_supported(path: Path) -> bool:
    return path.name.lower().endswith(INPUT_SUFFIXES)


def _hidden_or_store(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part.endswith(".ome.zarr") for part in parts)


def _skipped(path: Path, root: Path, exclude: Sequence[str]) -> bool:
    """Hidden entries, result stores and the excluded folders (e.g. the batch output)."""
    if _hidden_or_store(path.relative_to(root).parts):
        return True
    real = _real(path)
    return any(real == ex or real.startswith(ex.rstrip(os.sep) + os.sep) for ex in exclude)


def input_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be an input file, found without reading it; None if it may be.

    Names symbolic link loops, dangling links, folders, special files and files this
    process may not read. Never raises.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link resolves to itself); expected a file"
        if os.path.islink(p):
            return f"dangling symbolic link to {os.readlink(p)!r}; expected a file"
        if exc.errno == errno.ENOENT:
            return None  # reported as "file not found" when the input is read
        return f"cannot access the file: {exc.strerror or exc}"
    import stat

    if stat.S_ISDIR(st.st_mode):
        return None  # a folder given as a file is reported when read
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket); expected a localization file"
    if not os.access(p, os.R_OK):
        return "permission denied: this user cannot read the file"
    return None


#: Files every batch output folder holds (``summary.csv``, ``batch.log``): a folder with both
#: holds results, not inputs, and is not searched (its tables are not localizations).
OUTPUT_MARKERS = (SUMMARY_NAME, LOG_NAME)


def _is_output_folder(folder: Path) -> bool:
    try:
        return all((folder / name).is_file() for name in OUTPUT_MARKERS)
    except OSError:  # a folder that cannot be entered: reported when it is listed
        return False


def _search_folder(folder: Path, exclude: Sequence[str],
                   problems: dict[Path, str]) -> list[Path]:
    if _is_output_folder(folder):
        raise InputFormatError(
            f"a chromarate output folder (it holds {' and '.join(OUTPUT_MARKERS)}), not "
            "inputs; give the folder of localization files, or open the results with "
            "chromarate info / report or napari", path=folder)
    found = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        problems[where] = f"cannot list the folder: {exc.strerror or exc}"
        found.append(where)

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not _skipped(here / d, folder, exclude)
                             and not _is_output_folder(here / d))
        for name in sorted(filenames):
            p = here / name
            if _is_supported(p) and not _skipped(p, folder, exclude):
                found.append(p)
    return found


def _refuse_excluded(folder: Path, excluded: Sequence[str]) -> None:
    if _skipped(folder, folder, excluded):
        raise InputFormatError(
            "this folder is, or lies inside, the batch's output folder (--out); results are "
            "not written among the inputs: give another --out (a folder inside the inputs' "
            "folder is fine)", path=folder)


def as_input_list(specs: str | os.PathLike | Iterable[str | os.PathLike]) -> list:
    """The inputs of a batch as a list: one file, folder or pattern given alone is one
    input (not the characters of its name)."""
    if isinstance(specs, (str, bytes, os.PathLike)):
        return [specs]
    return list(specs)


def check_input_folders(specs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> None:
    """Refuse an input folder that is, or lies inside, the output folder, before anything
    is written there (:class:`~chromarate.errors.InputFormatError` naming it)."""
    excluded = [_real(out_dir)]
    for spec in specs:
        path = Path(os.fspath(spec))
        if path.is_dir():
            _refuse_excluded(path, excluded)


def find_inputs(specs: Iterable[str | os.PathLike], *,
                exclude: Iterable[str | os.PathLike] = ()) -> tuple[list[Path], dict[Path, str]]:
    """:func:`discover_inputs`, plus why some of the entries found cannot be read.

    Returns
    -------
    paths : list of Path
        As :func:`discover_inputs`.
    problems : dict of Path to str
        For entries known to be unusable without reading them (symbolic link loops,
        dangling links, unreadable files, folders that cannot be listed): the reason. The
        batch records each as a failed input.
    """
    specs = as_input_list(specs)
    excluded = [_real(e) for e in exclude]
    out: list[Path] = []
    seen: set[str] = set()
    problems: dict[Path, str] = {}

    def add(p: Path) -> None:
        key = _real(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if path.is_dir():
            _refuse_excluded(path, excluded)
            found = _search_folder(path, excluded, problems)
            if not found:
                raise InputFormatError(
                    "folder holds no input file; searched recursively for "
                    f"{', '.join(INPUT_SUFFIXES)}", path=path)
            for p in found:
                add(p)
        elif not os.path.lexists(path) and _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if (m.is_file() or m.is_symlink())
                     and not _hidden_or_store(m.parts[:-1])]
            if not files:
                raise InputFormatError("pattern matches no file", path=text)
            for p in files:
                add(p)
        else:
            add(path)
    for p in out:
        why = problems.get(p) or input_problem(p)
        if why:
            problems[p] = why
    return out, problems


def discover_inputs(specs: Iterable[str | os.PathLike], *,
                    exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted list of input files.

    Parameters
    ----------
    specs : str, path-like or an iterable of them
        One input, or several: files (kept as given, even if missing or of an unknown
        format, so that the batch reports them), folders (searched recursively for
        :data:`INPUT_SUFFIXES`, skipping hidden entries, ``*.ome.zarr`` stores and batch
        output folders, which hold :data:`OUTPUT_MARKERS`; symbolic links to folders are
        not followed) and glob patterns (``data/*/cell*.csv``, ``**`` allowed).
    exclude : iterable of path, optional
        Folders never searched (the batch passes its output folder).

    Returns
    -------
    list of Path
        Each file once (by resolved path), in the order the specs were given; files found
        in one folder or by one pattern are sorted. Symbolic link loops, dangling links and
        unreadable files or folders are kept, so that the batch reports them
        (:func:`find_inputs` also says why each cannot be read).

    Raises
    ------
    InputFormatError
        If a folder holds no supported file, is itself a batch output folder or is (or lies
        inside) an excluded folder, or a pattern matches nothing (the message names it and
        lists the suffixes searched for).

    Examples
    --------
    Not run as a doctest: the paths stand for the user's own files.

    >>> discover_inputs(["data/", "extra/cell_7.csv.gz", "more/*.hdf5"])  # doctest: +SKIP
    """
    return find_inputs(specs, exclude=exclude)[0]


#: Names an input's output folder may not take: ``chromarate report`` writes its pages into
#: the output folder's ``report/`` (:data:`chromarate.report.REPORT_DIR`).
RESERVED_NAMES = frozenset({"report"})


def output_names(paths: Sequence[str | os.PathLike]) -> dict[Path, str]:
    """A distinct output folder name for each input.

    The name is :func:`input_stem` made safe (:func:`chromarate.io.names.safe_name`), with
    ``-input`` appended to a name the output folder keeps for itself
    (:data:`RESERVED_NAMES`); inputs that would share one get as many parent folder
    names prefixed (joined by ``__``) as needed to tell them apart, and, if even the full
    paths agree (the same name given twice), a ``-2``, ``-3`` ... suffix. The result is the
    same for the same list of inputs, so a resumed batch finds its earlier results.

    Examples
    --------
    >>> names = output_names(["ctrl/cell1.csv", "treated/cell1.csv", "ctrl/cell2.csv"])
    >>> sorted(names.values())
    ['cell2', 'ctrl__cell1', 'treated__cell1']
    >>> output_names(["data/report.csv"])[Path("data/report.csv")]
    'report-input'
    """
    paths = [Path(p) for p in paths]
    parents = {p: [safe_name(part, fallback="_") for part in Path(_real(p)).parent.parts
                   if part not in ("/", "\\") and not part.endswith(":\\")]
               for p in paths}
    depth = {p: 0 for p in paths}

    def name_of(p: Path) -> str:
        prefix = parents[p][len(parents[p]) - depth[p]:] if depth[p] else []
        name = safe_name("__".join([*prefix, safe_name(input_stem(p))]))
        return f"{name}-input" if name.lower() in RESERVED_NAMES else name

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


def _folder_owner(folder: Path) -> str | None:
    """The resolved input path whose results ``folder`` holds: from its manifest, else from
    the provenance of a result store in it (metadata only); None for a new or empty one."""
    manifest = read_json(folder / MANIFEST_NAME)
    if manifest is not None and isinstance(manifest.get("input"), str):
        return manifest["input"]
    try:
        stores = sorted(e for e in os.scandir(folder)
                        if e.name.endswith(".ome.zarr") and not e.name.startswith("."))
    except OSError:
        return None
    for entry in stores[:1]:
        try:
            prov = open_result(entry.path).provenance
        except ResultStoreError:
            continue
        owner = (prov.get("input") or {}).get("path")
        if isinstance(owner, str):
            return owner
    return None


def claim_output_names(out_dir: str | os.PathLike, names: dict[Path, str]
                       ) -> tuple[dict[Path, str], list[str]]:
    """Keep inputs out of output folders that hold the results of other input files.

    Parameters
    ----------
    out_dir : str or path-like
        The batch output folder.
    names : dict of Path to str
        Output folder names, from :func:`output_names`.

    Returns
    -------
    names : dict of Path to str
        The same names, except for inputs whose folder already holds the results of
        another file (by the resolved path its manifest or results record): those get
        ``<name>-<tag>`` (:func:`chromarate.io.names.path_tag`), the same on every run.
    notes : list of str
        One line per name changed, for the batch log.

    Examples
    --------
    Not run as a doctest: it needs a result folder that already holds another file's results.

    >>> claim_output_names("results", {Path("treated/cell1.csv"): "cell1"})  # doctest: +SKIP
    ({PosixPath('treated/cell1.csv'): 'cell1-1c9e5f2a'}, ['results/cell1/ holds ...'])
    """
    out_dir = Path(out_dir)
    claimed: dict[Path, str] = {}
    notes: list[str] = []
    for path, name in names.items():
        owner = _folder_owner(out_dir / name)
        mine = _real(path)
        if owner is not None and owner != mine:
            new = safe_name(f"{name[:80]}-{path_tag(path)}")
            notes.append(f"{out_dir / name}/ holds the results of {owner}, not of {path}; "
                         f"those go to {out_dir / new}/ (nothing is replaced)")
            name = new
        claimed[path] = name
    return claimed, notes
