"""Parameter documentation shared by the localization readers (not public).

Every reader declares its options as explicit keyword parameters (the registry reads them
from the signature) and documents them in numpydoc form. The options most readers share
(``path``, ``channel``, ``frame_base``, ``pixel_size_nm``, ``units``) are described here
once; :func:`reader_doc` completes a reader's docstring -- its summary written in the
reader's module -- with the ``Parameters``, ``Returns`` and ``Raises`` sections, one entry
per parameter of its signature, in signature order.
"""

from __future__ import annotations

import inspect
from typing import Callable, TypeVar

__all__ = ["BINARY", "TEXT", "reader_doc"]

F = TypeVar("F", bound=Callable[..., object])

#: (type, description) of the options shared by the binary readers; ``{frame_base}`` is the
#: format's first frame number.
BINARY: dict[str, tuple[str, str]] = {
    "path": ("str or pathlib.Path", "The file."),
    "channel": ("str or int, optional", "Keep only the localizations of this channel (default: all)."),
    "frame_base": (
        "int, optional",
        "Number of the file's first frame (default {frame_base}); frames are returned 0-based.",
    ),
    "pixel_size_nm": (
        "float, optional",
        "Camera pixel size for coordinates stored in pixels (see the module docstring).",
    ),
    "units": ("str, optional", "Length unit where the file states none (see the module docstring)."),
}

#: The same for the text readers, whose files may be gzip-compressed and whose length
#: columns state their unit in the header.
TEXT: dict[str, tuple[str, str]] = {
    **BINARY,
    "path": ("str or pathlib.Path", "The file, plain or gzip-compressed."),
    "pixel_size_nm": ("float, optional", "Camera pixel size, for columns in pixels."),
    "units": (
        "str, optional",
        "Length unit of columns whose unit the file does not state or that is unknown\n"
        "(see :mod:`chromarate.io._units`); it never overrides a known unit.",
    ),
}

_RETURNS = "Canonical columns in nm with 0-based frames."
_RAISES = (
    ("InputFormatError", "The file cannot be read as this format (the message names the file)."),
    ("ConfigError", "An option has an invalid value."),
)


def _entry(name: str, kind: str, text: str) -> list[str]:
    return [f"{name} : {kind}", *("    " + line for line in text.splitlines())]


def reader_doc(
    shared: dict[str, tuple[str, str]],
    *,
    frame_base: int | None = None,
    returns: str = _RETURNS,
    **own: tuple[str, str],
) -> Callable[[F], F]:
    """Decorator completing a reader's docstring with its parameter, return and error sections.

    Parameters
    ----------
    shared : dict
        :data:`TEXT` or :data:`BINARY`: (type, description) of the shared options.
    frame_base : int, optional
        The format's default first frame number, shown in the ``frame_base`` entry.
    returns : str, optional
        Description of the returned :class:`~chromarate._types.Localizations`.
    **own : tuple of (str, str)
        (type, description) of the reader's own parameters, or of shared ones it describes
        otherwise.

    Returns
    -------
    callable
        The decorator; it returns the reader itself, its docstring completed.

    Raises
    ------
    TypeError
        A parameter of the reader is described nowhere (raised when the module is imported).
    """

    def decorate(fn: F) -> F:
        lines = [inspect.cleandoc(fn.__doc__ or ""), "", "Parameters", "----------"]
        for name in inspect.signature(fn).parameters:
            kind, text = own.get(name) or shared.get(name) or (None, None)
            if kind is None:
                raise TypeError(f"parameter {name!r} of {fn.__module__}.{fn.__name__} is not documented")
            lines += _entry(name, kind, text.replace("{frame_base}", str(frame_base)))
        lines += ["", "Returns", "-------", "Localizations", *("    " + r for r in returns.splitlines())]
        lines += ["", "Raises", "------"]
        for error, text in _RAISES:
            lines += [error, "    " + text]
        fn.__doc__ = "\n".join(lines)
        return fn

    return decorate
