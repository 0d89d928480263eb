"""The registry of localization readers.

:func:`~chromarate.io.localizations.read_localizations` dispatches through it.

A reader is any object that satisfies :class:`LocalizationReader`: a format ``name``, how it
recognises a file (``suffixes``, ``magic``, ``detect``), whether it is a ``fallback`` tried
after all others, and ``read(path, *, option=...)`` with the format's options as explicit
keyword parameters. :class:`ReaderSpec` makes one from two functions; :class:`ModuleReader`
makes one from a module exposing ``FORMAT``, ``detect`` and ``read``, imported on first use.

Every built-in format is registered here, in :data:`BUILTIN_READERS`, in the order
``format="auto"`` tries them: binary signatures first, then text headers, ``generic`` last.
Registering them only fills a plain dict; no format module is imported until a file is read
(a module that is missing or fails to import makes its format unavailable, nothing else).

Recognition is by content only, never by the file's name: ``detect(path, head)`` gets the
path and the first MiB of raw bytes (not decompressed). ``magic`` lists signatures the file
must start with (checked before ``detect``; with no ``detect``, a match is recognition);
``suffixes`` are the usual name endings, shown to users and never used to choose a reader.

Examples
--------
>>> from chromarate.io.registry import ReaderSpec, register_reader, unregister_reader
>>> def read_mine(path, *, pixel_size_nm=None):  # doctest: +SKIP
...     ...
>>> register_reader(ReaderSpec("mine", read_mine, magic=(b"MINE",), suffixes=(".mine",)))  # doctest: +SKIP
>>> read_localizations("cell.mine")  # doctest: +SKIP
>>> unregister_reader("mine")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from chromarate._types import Localizations
from chromarate.errors import ChromarateError, InputFormatError
from chromarate.io._options import check_options
from chromarate.io._textscan import require_regular_file

__all__ = [
    "BUILTIN_READERS",
    "LocalizationReader",
    "ModuleReader",
    "ReaderSpec",
    "accepted_options",
    "available_formats",
    "detect_format",
    "get_reader",
    "read_with",
    "register_reader",
    "registered_formats",
    "unavailable_formats",
    "unregister_reader",
]


@runtime_checkable
class LocalizationReader(Protocol):
    """What a localization reader provides.

    Attributes
    ----------
    name : str
        The format's name, lower case (``format=`` of ``read_localizations``).
    suffixes : tuple of str
        Usual file name endings (``".csv"``), for messages and documentation only.
    magic : tuple of bytes
        Signatures a file of the format starts with; empty when it has none.
    fallback : bool
        Tried by ``format="auto"`` only after every other reader declined the file.
    """

    name: str
    suffixes: tuple[str, ...]
    magic: tuple[bytes, ...]
    fallback: bool

    def detect(self, path: Path, head: bytes) -> bool:
        """Whether the file is of this format, from ``head``, its first raw bytes.

        Must not raise: an exception counts as False.
        """

    def read(self, path: Path, /, **options: Any) -> Localizations:
        """Read ``path`` into canonical columns (nm, 0-based frames).

        Concrete readers declare their options as keyword-only parameters
        (``read(path, *, pixel_size_nm=None, units=None)``); see :func:`accepted_options`.
        """


def _signature_options(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """Option names ``fn`` accepts after its path; None when it takes ``**options``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return tuple(p.name for p in named[1:])


def _magic_matches(magic: tuple[bytes, ...], head: bytes) -> bool:
    return any(head.startswith(m) for m in magic)


@dataclass(frozen=True)
class ReaderSpec:
    """A reader made of a ``read`` function and, optionally, a ``detect`` function.

    Parameters
    ----------
    name : str
        The format's name.
    read_fn : callable
        ``read_fn(path, *, option=...) -> Localizations``.
    detect_fn : callable, optional
        ``detect_fn(path, head) -> bool``. Without it the format is recognised by ``magic``
        alone, and without either it is never auto-detected (only ``format=name`` reads it).
    suffixes, magic, fallback
        See :class:`LocalizationReader`.
    """

    name: str
    read_fn: Callable[..., Localizations]
    detect_fn: Callable[[Path, bytes], bool] | None = None
    suffixes: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    fallback: bool = False

    def detect(self, path: Path, head: bytes) -> bool:
        """Magic first (when declared), then ``detect_fn``."""
        if self.magic and not _magic_matches(self.magic, head):
            return False
        if self.detect_fn is None:
            return bool(self.magic)
        return bool(self.detect_fn(path, head))

    def read(self, path: Path, /, **options: Any) -> Localizations:
        """``read_fn(path, **options)``."""
        return self.read_fn(path, **options)

    def accepted_options(self) -> tuple[str, ...] | None:
        """The option names of ``read_fn`` (None when it takes ``**options``)."""
        return _signature_options(self.read_fn)


@dataclass
class ModuleReader:
    """A reader whose ``FORMAT``, ``detect`` and ``read`` live in a module imported on first use.

    Parameters
    ----------
    name : str
        The format's name; the module's ``FORMAT`` must equal it.
    module : str
        Dotted module name.
    suffixes, magic, fallback
        See :class:`LocalizationReader`.
    """

    name: str
    module: str
    suffixes: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    fallback: bool = False
    _spec: ReaderSpec | None = field(default=None, init=False, repr=False)
    _error: str | None = field(default=None, init=False, repr=False)

    def load(self) -> ReaderSpec | None:
        """Import the module once; None (and :attr:`unavailable_reason` set) when that fails."""
        if self._spec is None and self._error is None:
            try:
                mod = importlib.import_module(self.module)
                declared = getattr(mod, "FORMAT", self.name)
                if declared != self.name:
                    raise ImportError(f"module {mod.__name__} declares FORMAT={declared!r}")
                self._spec = ReaderSpec(self.name, mod.read, mod.detect, self.suffixes, self.magic,
                                        self.fallback)
            except Exception as exc:  # noqa: BLE001 - a broken reader must not break the others
                self._error = f"{type(exc).__name__}: {exc}"
        return self._spec

    @property
    def unavailable_reason(self) -> str | None:
        """Why the module could not be used, once :meth:`load` failed; else None."""
        return self._error

    def detect(self, path: Path, head: bytes) -> bool:
        """The module's ``detect``; False when the module is unavailable."""
        spec = self.load()
        return spec is not None and spec.detect(path, head)

    def read(self, path: Path, /, **options: Any) -> Localizations:
        """The module's ``read``."""
        spec = self.load()
        if spec is None:
            raise InputFormatError(f"format {self.name!r} is not available ({self._error})", path=path)
        return spec.read(path, **options)

    def accepted_options(self) -> tuple[str, ...] | None:
        """The option names of the module's ``read`` (None when unknown or ``**options``)."""
        spec = self.load()
        return None if spec is None else spec.accepted_options()


#: The built-in readers, in the order ``format="auto"`` tries them (the one place they are
#: registered). Detection never looks at suffixes.
BUILTIN_READERS: tuple[ModuleReader, ...] = tuple(
    ModuleReader(name, f"chromarate.io.formats.{name}", suffixes, fallback=name == "generic")
    for name, suffixes in (
        ("smlm", (".smlm",)),
        ("smap", ("_sml.mat",)),
        ("decode", (".h5",)),
        ("picasso", (".hdf5",)),
        ("asdf", (".asdf",)),
        ("rapidstorm", (".txt",)),
        ("elyra", (".txt", ".csv")),
        ("nstorm", (".txt",)),
        ("nanoimager", (".csv",)),
        ("thunderstorm", (".csv", ".csv.gz")),
        ("generic", (".csv", ".tsv", ".txt", ".csv.gz")),
    )
)

_READERS: dict[str, LocalizationReader] = {r.name: r for r in BUILTIN_READERS}


# --------------------------------------------------------------------------- registry API


def register_reader(reader: LocalizationReader, *, replace: bool = False) -> None:
    """Add a reader; ``read_localizations`` then reads and detects its format.

    Parameters
    ----------
    reader : LocalizationReader
        E.g. a :class:`ReaderSpec`. It is tried by ``format="auto"`` after the readers
        registered before it (fallback readers last).
    replace : bool, optional
        Replace a reader of the same name (keeping its place in the detection order).

    Raises
    ------
    TypeError
        ``reader`` does not satisfy :class:`LocalizationReader`.
    ValueError
        Its name is not a lower-case word, is ``"auto"``, or is taken (without ``replace``).
    """
    if not isinstance(reader, LocalizationReader):
        raise TypeError(f"reader must provide name, suffixes, magic, fallback, detect and read; "
                        f"got {type(reader).__name__}")
    name = reader.name
    if not isinstance(name, str) or not name or name != name.strip().lower() or name == "auto":
        raise ValueError("a reader's name must be a non-empty lower-case word other than 'auto', "
                         f"got {name!r}")
    if name in _READERS and not replace:
        raise ValueError(f"a reader for format {name!r} is already registered; pass replace=True")
    _READERS[name] = reader


def unregister_reader(name: str) -> LocalizationReader:
    """Remove the reader of format ``name`` and return it.

    Raises
    ------
    KeyError
        No reader of that name is registered.
    """
    try:
        return _READERS.pop(name)
    except KeyError:
        raise KeyError(f"no reader registered for format {name!r}") from None


def registered_formats() -> tuple[str, ...]:
    """Names of all registered formats, in detection order (fallback readers last)."""
    readers = list(_READERS.values())
    return tuple(r.name for r in readers if not r.fallback) + tuple(r.name for r in readers if r.fallback)


def get_reader(name: str) -> LocalizationReader | None:
    """The usable reader of format ``name``; None when none is registered or it is unavailable."""
    reader = _READERS.get(name)
    if isinstance(reader, ModuleReader) and reader.load() is None:
        return None
    return reader


def unavailable_formats() -> dict[str, str]:
    """Formats whose module failed to import so far, with the reason."""
    return {
        r.name: r.unavailable_reason
        for r in _READERS.values()
        if isinstance(r, ModuleReader) and r.unavailable_reason is not None
    }


def available_formats() -> tuple[str, ...]:
    """Registered formats whose reader can be used here (imports the built-in modules)."""
    return tuple(n for n in registered_formats() if get_reader(n) is not None)


def detect_format(path: Path, head: bytes) -> str | None:
    """Name of the first registered format (detection order) whose reader claims the file.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    head : bytes
        Its first raw bytes (not decompressed).

    Returns
    -------
    str or None
        None when no reader claims it. A reader that raises does not claim it. None also
        for a path that is no regular file (a folder, FIFO, socket or device): detectors
        open the file again, and opening a FIFO would wait for a writer.
    """
    try:
        require_regular_file(path)
    except InputFormatError:
        return None
    for name in registered_formats():
        reader = _READERS[name]
        try:
            hit = bool(reader.detect(path, head))
        except Exception:  # noqa: BLE001 - a detector that fails just does not claim the file
            hit = False
        if hit:
            return name
    return None


def accepted_options(reader: LocalizationReader) -> tuple[str, ...] | None:
    """The option names ``reader.read`` accepts; None when it takes any (``**options``)."""
    method = getattr(reader, "accepted_options", None)
    if callable(method):
        return method()
    return _signature_options(reader.read)


def read_with(reader: LocalizationReader, path: Path, options: dict[str, Any]) -> Localizations:
    """Run ``reader`` on ``path`` with the user's ``options``.

    Options the reader does not declare raise ``TypeError`` naming them and those accepted;
    unexpected low-level errors on bad content become :class:`~chromarate.errors.InputFormatError`.
    A path that is no regular file (a folder, FIFO, socket or device) is refused before the
    reader is called, so no reader opens one.
    """
    accepted = accepted_options(reader)
    if accepted is not None:
        check_options(options, accepted, reader.name)
    require_regular_file(path)
    try:
        return reader.read(path, **options)
    except (ChromarateError, TypeError, MemoryError, KeyboardInterrupt):
        raise
    except (ValueError, LookupError, OSError, EOFError, zlib.error, OverflowError, RecursionError) as exc:
        raise InputFormatError(
            f"cannot read the file as format {reader.name!r} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]})",
            path=path,
        ) from exc
