"""Helpers shared by the binary format readers (not part of the public API).

Conventions follow :mod:`chromarate.io.localizations`: every problem with a file raises
:class:`~chromarate.errors.InputFormatError` whose message names the file; an invalid option
value raises :class:`~chromarate.errors.ConfigError`; an option a reader does not know raises
``TypeError``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from chromarate._types import CANONICAL_COLUMNS, Localizations
from chromarate.errors import ChromarateError, InputFormatError
from chromarate.io._options import check_frame_base, check_options, check_pixel_size
from chromarate.io._options import clean as _clean
from chromarate.io._textscan import GZIP_MAGIC, require_regular_file
from chromarate.io.limits import check_decoded_size

#: Rows of an HDF5 dataset read at a time (bounds the temporary memory of a read).
HDF5_BLOCK_ROWS = 1 << 20

#: Soft links followed at most while looking up one HDF5 object (HDF5's own limit, 16,
#: for the links of one path); more is a loop or a file made to keep the reader busy.
MAX_SOFT_LINKS = 16

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")

_FLOAT_COLUMNS = tuple(c for c in CANONICAL_COLUMNS if c != "frame")

#: ``meta`` keys that :func:`localizations` and :func:`build_localizations` fill themselves;
#: a reader's ``extra`` entries must use other names.
OWN_META_KEYS = frozenset({
    "source", "format", "pixel_size_nm", "frame_base", "columns_in_file", "column_map", "units",
    "skipped_columns", "dropped_columns", "n_rows",
})


# --------------------------------------------------------------------------- recognition


def hdf5_signature_offset(head: bytes) -> int | None:
    """Offset of the HDF5 signature in ``head`` (0, 512, 1024, ...; a user block such as the
    MATLAB v7.3 header shifts it), or None when there is none."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= len(head):
        if head[offset:offset + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


def is_hdf5(head: bytes) -> bool:
    return hdf5_signature_offset(head) is not None


def import_h5py(path: Path, what: str):
    """Import h5py, or explain that it is needed to read ``what`` files."""
    try:
        import h5py  # noqa: PLC0415 - optional at import time of chromarate
    except ImportError:  # pragma: no cover - h5py is installed where tests run
        raise InputFormatError(
            f"reading {what} files needs the h5py package; install it with 'pip install h5py'",
            path=path,
        ) from None
    return h5py


def check_regular_file(path: Path, what: str) -> None:
    """Raise InputFormatError unless ``path`` is an existing, non-empty regular file.

    A folder, FIFO, socket or device is refused from its ``stat`` alone, before it is
    opened (opening a FIFO waits for a writer; a device may never end).
    """
    size = require_regular_file(path, f"{what} file")
    if size == 0:
        raise InputFormatError(f"empty file (0 bytes); expected a {what} file", path=path)


def read_head(path: Path, n: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise InputFormatError(f"cannot read the file: {exc.strerror or exc}", path=path) from None


@contextlib.contextmanager
def open_hdf5(path: Path, what: str) -> Iterator[Any]:
    """Open ``path`` read-only with h5py; any h5py/OS failure becomes an InputFormatError."""
    check_regular_file(path, what)
    h5py = import_h5py(path, what)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        head = read_head(path, 1 << 16)
        if head.startswith(GZIP_MAGIC):
            msg = f"the file is gzip-compressed; decompress it first (expected a {what} HDF5 file)"
        elif not is_hdf5(head):
            msg = f"not an HDF5 file (no HDF5 signature); expected a {what} file"
        else:
            msg = (
                f"truncated or corrupt HDF5 file ({_clean(exc)}); expected a complete {what} "
                "file"
            )
        raise InputFormatError(msg, path=path) from None
    try:
        yield fh
    except ChromarateError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise InputFormatError(
            f"cannot read the {what} content: corrupt or truncated HDF5 data "
            f"({type(exc).__name__}: {_clean(exc)})",
            path=path,
        ) from None
    finally:
        with contextlib.suppress(Exception):
            fh.close()


def detect_hdf5(path: Path, head: bytes, what: str, probe: Callable[[Path, Any, Any], Any]) -> bool:
    """``probe(path, h5py, fh)`` on an HDF5 file opened read-only; False when ``head`` is not
    HDF5 or anything fails (``detect`` functions never raise).

    A probe that meets an object the readers refuse (:class:`UnsafeHDF5Error`: an external
    link, external storage or a virtual dataset where the format keeps its data) claims the
    file, so that reading it says what is refused instead of "no reader recognises it".
    The probe must look objects up with :func:`hdf5_get`, which never leaves the file.
    """
    try:
        if not is_hdf5(head):
            return False
        path = Path(path)
        h5py = import_h5py(path, what)
        with h5py.File(path, "r") as fh:
            try:
                return bool(probe(path, h5py, fh))
            except UnsafeHDF5Error:
                return True
    except Exception:  # noqa: BLE001 - detection never raises
        return False


class UnsafeHDF5Error(InputFormatError):
    """An HDF5 object whose data live outside the file: an external link, a dataset with
    external storage, a virtual dataset (or a soft link chain that does not end).

    Following one would read a file the user did not give (any path: ``/etc/...``) or wait
    forever (a FIFO), so the readers refuse them; :func:`detect_hdf5` lets such a file be
    claimed by the format whose layout it names, so that its reader explains the refusal.
    """


def _link_name(parent: Any, name: str) -> str:
    base = getattr(parent, "name", None) or "/"
    return f"{base.rstrip('/')}/{name}".lstrip("/") or "/"


def hdf5_get(parent: Any, name: str, path: Path, *, _hops: list[int] | None = None) -> Any:
    """The member ``name`` of the HDF5 group ``parent``, following only links inside the file.

    The link is looked at before anything is opened (``getlink=True``): a hard link gives
    its object; a soft link is followed, component by component, inside this file (at most
    :data:`MAX_SOFT_LINKS` soft links per look-up); an external link (or a user-defined
    one) is refused. A dataset found is checked with :func:`check_dataset_storage` before
    it is returned, so that neither its shape nor its data is asked for when its values
    live in other files.

    Parameters
    ----------
    parent : h5py.Group or h5py.File
        The group holding the link.
    name : str
        One link name (no ``/``).
    path : Path
        The file, for messages.

    Returns
    -------
    h5py.Group, h5py.Dataset, h5py.Datatype or None
        None when there is no such member (or a soft link leads nowhere).

    Raises
    ------
    UnsafeHDF5Error
        The member is an external or user-defined link, leads through one, is a dataset
        stored outside the file, or its soft links do not end.
    """
    import h5py  # noqa: PLC0415 - the caller imported it already (import_h5py)

    if "/" in name:
        raise ValueError(f"hdf5_get takes one link name, got {name!r}")
    hops = [0] if _hops is None else _hops
    shown = _link_name(parent, name)
    link = parent.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.HardLink):
        obj = parent.get(name)
    elif isinstance(link, h5py.SoftLink):
        hops[0] += 1
        if hops[0] > MAX_SOFT_LINKS:
            raise UnsafeHDF5Error(
                f"'{shown}' is reached through more than {MAX_SOFT_LINKS} soft links (a loop?); "
                "expected an object stored in this HDF5 file", path=path)
        target = str(link.path)
        obj = parent.file if target.startswith("/") else parent
        for component in target.split("/"):
            if component in ("", "."):
                continue
            if not isinstance(obj, h5py.Group):
                return None
            obj = hdf5_get(obj, component, path, _hops=hops)
            if obj is None:
                return None
    elif isinstance(link, h5py.ExternalLink):
        raise UnsafeHDF5Error(
            f"'{shown}' is an external link to '{link.path}' in the file '{link.filename}'; links "
            "to other files are not followed (they could read any file, or wait forever on a "
            "pipe); expected the data stored in this HDF5 file", path=path)
    else:  # pragma: no cover - h5py raises for user-defined links before this
        raise UnsafeHDF5Error(f"'{shown}' is a link of an unsupported type; expected an object "
                              "stored in this HDF5 file", path=path)
    if isinstance(obj, h5py.Dataset):
        check_dataset_storage(obj, f"'{shown}'", path)
    return obj


def hdf5_members(group: Any, path: Path) -> dict[str, Any]:
    """Every member of ``group`` by name, each looked up with :func:`hdf5_get`.

    Raises
    ------
    UnsafeHDF5Error
        A member is an external link or a dataset stored outside the file.
    """
    return {name: hdf5_get(group, name, path) for name in group.keys()}


def check_dataset_storage(ds: Any, where: str, path: Path) -> None:
    """Refuse a dataset whose values are not stored in the HDF5 file itself.

    A virtual dataset reads them from other files (even its shape may need them); one with
    external storage reads raw bytes from files named in the HDF5 file, which may be any
    file (``/etc/...``) or a FIFO that blocks forever. Both are refused from the dataset's
    creation properties, before its shape or data is asked for.

    Raises
    ------
    UnsafeHDF5Error
        Naming the dataset ``where`` and, for external storage, the files it names.
    """
    if ds.is_virtual:
        raise UnsafeHDF5Error(
            f"{where} is a virtual dataset: its values are read from other files; virtual "
            "datasets are not read (expected a dataset stored in this HDF5 file)", path=path)
    external = ds.external
    if external:
        names = [e[0].decode("utf-8", "replace") if isinstance(e[0], bytes) else str(e[0])
                 for e in external]
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise UnsafeHDF5Error(
            f"{where} keeps its values in external file(s) {shown}, outside this HDF5 file; "
            "external storage is not read (it could read any file, or wait forever on a pipe); "
            "expected a dataset stored in this HDF5 file", path=path)


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (str for text, None for empty)."""
    if value is None:
        return None
    if type(value).__name__ == "Empty":  # h5py.Empty: a NULL dataspace
        return None
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO" and value.size == 1:
            return attr_value(value.reshape(-1)[0])
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_dataset(ds: Any, where: str, path: Path, *, fields: tuple[str, ...] | None = None,
                 out_per_value: int = 16) -> np.ndarray:
    """Read an HDF5 dataset block by block, after checking its declared size.

    The size the data would take once decoded -- the stored values of ``fields`` (all of
    them when None) plus ``out_per_value`` bytes per value for the float64 columns made of
    them -- is checked against the read limit (:mod:`chromarate.io.limits`) from the
    dataset's shape and type alone, before anything is read. The data is then read in
    blocks of :data:`HDF5_BLOCK_ROWS` rows along the first axis, so a dataset is never
    decoded twice over in memory.

    Parameters
    ----------
    ds : h5py.Dataset
    where : str
        How the message names the dataset (``"'locs'"``, ``"data/xyz"``).
    path : Path
    fields : tuple of str, optional
        Fields of a compound dataset to read (the others are skipped).
    out_per_value : int
        Bytes the caller will allocate per value read (its float64 copies).

    Returns
    -------
    numpy.ndarray
        The dataset's values (a structured array with ``fields`` for a compound one).

    Raises
    ------
    InputFormatError
        If the declared size exceeds the read limit.
    UnsafeHDF5Error
        If the dataset's values live outside the file (:func:`check_dataset_storage`).
    """
    check_dataset_storage(ds, where, path)
    shape = tuple(int(n) for n in (ds.shape or ()))
    dtype = np.dtype(ds.dtype)
    if fields is not None:
        dtype = np.dtype([(f, dtype.fields[f][0]) for f in fields])
    n_values = math.prod(shape)
    per_row_values = max(1, len(fields) if fields is not None else 1)
    nbytes = n_values * (dtype.itemsize + out_per_value * per_row_values)
    shown = " x ".join(str(n) for n in shape) or "scalar"
    check_decoded_size(path, nbytes, f"HDF5 dataset {where} ({shown} of {dtype.itemsize}-byte "
                                     "values)")
    source = ds.fields(list(fields)) if fields is not None else ds
    if not shape:
        return np.asarray(source[()], dtype=dtype)
    out = np.empty(shape, dtype=dtype)
    for start in range(0, shape[0], HDF5_BLOCK_ROWS):
        stop = min(shape[0], start + HDF5_BLOCK_ROWS)
        out[start:stop] = source[start:stop]
    return out


# --------------------------------------------------------------------------- options


def positive_number(value: Any) -> float | None:
    """``value`` as a positive finite float, or None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        p = float(value)
    except (TypeError, ValueError):
        return None
    return p if math.isfinite(p) and p > 0 else None


# --------------------------------------------------------------------------- columns


def as_float(values: Any, source: str, path: Path) -> np.ndarray:
    """A 1-D float64 copy of ``values``; refuses non-numeric data."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise InputFormatError(
            f"{source} holds {arr.dtype} data; expected numbers", path=path
        )
    return arr.astype(np.float64).reshape(-1)


def check_finite_coordinates(values: np.ndarray, source: str, path: Path) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        what = "NaN" if np.isnan(values[i]) else f"infinite value {values[i]:g}"
        raise InputFormatError(
            f"{what} in coordinate {source} at row {i} (0-based; {int(bad.sum())} such "
            f"row(s) in all); expected finite coordinates",
            path=path,
        )


def require_fields(fields: list[str], required: tuple[str, ...], owner: str, expected: str,
                   path: Path) -> None:
    """Refuse a table ``owner`` whose ``fields`` miss one of ``required``; ``expected`` says
    what the format holds there."""
    missing = [n for n in required if n not in fields]
    if missing:
        raise InputFormatError(
            f"{owner} has no field {' or '.join(repr(m) for m in missing)} (fields: "
            f"{', '.join(fields) or 'none'}); expected {expected}",
            path=path,
        )


def check_same_length(arrays: Mapping[str, np.ndarray], n: int, name: str, reference: str,
                      expected: str, path: Path) -> None:
    """Refuse an array of ``arrays`` that does not hold ``n`` values; ``name`` is formatted
    with its key for the message, ``reference`` says where ``n`` comes from."""
    for key, values in arrays.items():
        if len(values) != n:
            raise InputFormatError(
                f"{name.format(key)} has {len(values)} values but {reference}; expected {expected}",
                path=path,
            )


def first_bad_length(values: np.ndarray) -> tuple[int, str] | None:
    """(row, "negative" or "infinite") of the first value that is no length, or None when all
    are finite and non-negative (NaN = missing is allowed)."""
    with np.errstate(invalid="ignore"):
        bad = (values < 0) | np.isinf(values)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    return i, "negative" if values[i] < 0 else "infinite"


def check_non_negative(
    values: np.ndarray, source: str, path: Path, *,
    at: Callable[[int], str] | None = None, spec: str = "g",
) -> None:
    """Refuse negative or infinite lengths (NaN = missing is allowed).

    The message names the value (formatted with ``spec``), ``source`` and where the row is:
    ``at(row)``, by default its 0-based row number (the text readers give its file line).
    """
    bad = first_bad_length(values)
    if bad is not None:
        i, kind = bad
        where = f"row {i} (0-based)" if at is None else at(i)
        raise InputFormatError(
            f"{kind} value {values[i]:{spec}} in {source} at {where}; expected a finite, "
            "non-negative length",
            path=path,
        )


#: The largest frame number read: above 2**53 a float64 no longer holds every integer, so a
#: frame number there is not read exactly (and no image series is that long).
MAX_FRAME = 2.0**53


def frame_limit_error(value: float, where: str, path: Path) -> InputFormatError:
    """The error for frame number ``value`` (at ``where``) above :data:`MAX_FRAME`.

    Parameters
    ----------
    value : float
        The frame number as read.
    where : str
        Where it is, e.g. ``'column "frame" at line 3'``.
    path : Path
        The file.

    Returns
    -------
    InputFormatError
        To be raised by the caller.
    """
    return InputFormatError(
        f"frame number {value:.6g} in {where} is beyond the largest frame number supported, "
        f"2**53 = {int(MAX_FRAME)} (above it frame numbers are not exactly representable as "
        "read); expected the frame numbers of an image series -- is this column frames?",
        path=path,
    )


def frames_zero_based(
    values: np.ndarray, frame_base: int, source: str, path: Path, hint: str = ""
) -> tuple[np.ndarray | None, str | None]:
    """Return (0-based int64 frames, None), or (None, reason) when the values are not
    integers (e.g. mean frames of merged localizations); refuse frames below the base."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        n_bad = int(bad.sum())
        return None, (
            f"{source} holds {n_bad} non-integer or non-finite value(s) (e.g. mean frames of "
            "merged localizations); frame numbers were not kept"
        )
    below = values < frame_base
    if below.any():
        i = int(np.argmax(below))
        raise InputFormatError(
            f"frame number {values[i]:g} in {source} at row {i} (0-based) is below {frame_base}, "
            f"the first frame number of this format{hint}; expected integers >= {frame_base}",
            path=path,
        )
    above = values > MAX_FRAME
    if above.any():
        i = int(np.argmax(above))
        raise frame_limit_error(values[i], f"{source} at row {i} (0-based)", path)
    return values.astype(np.int64) - frame_base, None


def mean_of(arrays: list[np.ndarray]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    return np.mean(np.vstack(arrays), axis=0)


def z_is_trivial(values: np.ndarray) -> bool:
    """True when a z column carries no information (every value exactly 0: a 2-D fit)."""
    return values.size > 0 and bool(np.all(values == 0))


@dataclass
class ColumnSet:
    """Canonical columns a reader gathers, with their sources, units and dropped columns
    for the meta."""

    path: Path
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    column_map: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    def add(self, canonical: str, values: np.ndarray, source: str, unit: str | None = None) -> None:
        self.columns[canonical] = values
        self.column_map[canonical] = source
        if unit is not None:
            self.units[canonical] = unit

    def add_z(
        self, values: np.ndarray, where: str, source: str, unit: str,
        reason: str = "0 in every row (a 2-D fit); not kept",
    ) -> None:
        """Check z like any coordinate; keep it unless it is 0 everywhere (then drop it)."""
        check_finite_coordinates(values, where, self.path)
        if z_is_trivial(values):
            self.dropped[source] = reason
        else:
            self.add("z_nm", values, source, unit)

    def add_frames(self, values: np.ndarray, frame_base: int, where: str, source: str) -> None:
        """Keep 0-based frames; drop non-integer ones (see :func:`frames_zero_based`)."""
        frames, reason = frames_zero_based(values, frame_base, where, self.path)
        if frames is None:
            self.dropped[source] = reason  # type: ignore[assignment]
        else:
            self.add("frame", frames, source)

    def localizations(self, fmt: str, *, pixel_size_nm: Any, frame_base: int,
                      columns_in_file: list[str], **extra: Any) -> Localizations:
        """The gathered columns as :class:`Localizations` (see :func:`localizations`).

        Raises
        ------
        ValueError
            A key of ``extra`` is one of :data:`OWN_META_KEYS`.
        """
        return localizations(
            self.path, self.columns, fmt=fmt, pixel_size_nm=pixel_size_nm, frame_base=frame_base,
            columns_in_file=columns_in_file, column_map=self.column_map, units=self.units,
            extra=extra, dropped=self.dropped,
        )


def localizations(
    path: Path,
    columns: Mapping[str, np.ndarray],
    *,
    fmt: str,
    pixel_size_nm: Any,
    frame_base: int,
    columns_in_file: list[str],
    column_map: Mapping[str, str],
    units: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
    skipped: Mapping[str, str] | None = None,
    dropped: Mapping[str, str] | None = None,
) -> Localizations:
    """:func:`build_localizations` with the ``meta`` every binary reader gives.

    ``meta`` holds ``source``, ``format``, ``pixel_size_nm``, ``frame_base``,
    ``columns_in_file``, ``column_map`` and ``units``, then the reader's ``extra`` entries,
    then ``skipped_columns`` and ``dropped_columns`` when there are any (and ``n_rows``).

    Raises
    ------
    ValueError
        A key of ``extra`` is one of :data:`OWN_META_KEYS`: it would replace, or be replaced
        by, an entry filled here.
    """
    clash = sorted(set(extra or {}) & OWN_META_KEYS)
    if clash:
        raise ValueError(
            f"extra meta entries {clash} collide with entries localizations() fills itself; "
            "give them other names"
        )
    meta: dict[str, Any] = {
        "source": str(path),
        "format": fmt,
        "pixel_size_nm": pixel_size_nm,
        "frame_base": frame_base,
        "columns_in_file": columns_in_file,
        "column_map": dict(column_map),
        "units": dict(units),
        **(extra or {}),
    }
    if skipped:
        meta["skipped_columns"] = dict(skipped)
    if dropped:
        meta["dropped_columns"] = dict(dropped)
    return build_localizations(columns, meta, path)


def build_localizations(
    columns: Mapping[str, np.ndarray], meta: dict[str, Any], path: Path
) -> Localizations:
    """Order canonical columns, fix dtypes, check lengths, and fill ``n_rows``."""
    if "x_nm" not in columns or "y_nm" not in columns:  # pragma: no cover - readers ensure it
        raise InputFormatError("no x/y coordinates", path=path)
    n = len(columns["x_nm"])
    data: dict[str, np.ndarray] = {}
    for name in CANONICAL_COLUMNS:
        if name not in columns:
            continue
        arr = np.asarray(columns[name])
        if len(arr) != n:
            raise InputFormatError(
                f"column for {name} has {len(arr)} rows but the coordinates have {n}; expected "
                "columns of equal length",
                path=path,
            )
        data[name] = arr.astype(np.int64 if name == "frame" else np.float64, copy=False)
    table = pd.DataFrame(data, copy=False)
    meta = dict(meta)
    meta["n_rows"] = int(n)
    return Localizations(table=table, meta=meta)


__all__ = [
    "ColumnSet",
    "GZIP_MAGIC",
    "HDF5_SIGNATURE",
    "MAX_FRAME",
    "MAX_SOFT_LINKS",
    "OWN_META_KEYS",
    "UnsafeHDF5Error",
    "ZIP_MAGICS",
    "as_float",
    "attr_value",
    "build_localizations",
    "check_dataset_storage",
    "check_finite_coordinates",
    "check_frame_base",
    "check_non_negative",
    "check_options",
    "check_pixel_size",
    "check_regular_file",
    "check_same_length",
    "detect_hdf5",
    "first_bad_length",
    "frame_limit_error",
    "frames_zero_based",
    "hdf5_get",
    "hdf5_members",
    "hdf5_signature_offset",
    "import_h5py",
    "is_hdf5",
    "localizations",
    "mean_of",
    "open_hdf5",
    "positive_number",
    "read_dataset",
    "read_head",
    "require_fields",
    "z_is_trivial",
]
