"""Option checks shared by the localization readers in :mod:`chromarate.io` (not public).

An option a reader does not know raises ``TypeError``; an invalid option value raises
:class:`~chromarate.errors.ConfigError`.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from chromarate.errors import ConfigError
from chromarate.io._units import check_units


def check_options(options: Mapping[str, Any], allowed: Iterable[str], fmt: str) -> None:
    """Raise TypeError for options the format ``fmt`` does not know."""
    allowed = tuple(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"read_localizations() got unexpected option(s) {', '.join(unknown)} for format "
            f"{fmt!r}; accepted: {', '.join(allowed) or '(none)'}"
        )


def positive_pixel_size(value: Any) -> float | None:
    """``pixel_size_nm`` as a positive finite float (None stays None); else ConfigError."""
    if value is None:
        return None
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"pixel_size_nm must be a positive number, got {value!r}") from None
    if not (math.isfinite(p) and p > 0):
        raise ConfigError(f"pixel_size_nm must be a positive finite number, got {value!r}")
    return p


def check_pixel_size(value: Any) -> float | None:
    """As :func:`positive_pixel_size`, but a bool is refused rather than read as 0 or 1."""
    if isinstance(value, bool):
        raise ConfigError(f"pixel_size_nm must be a positive number, got {value!r}")
    return positive_pixel_size(value)


def check_frame_base(value: Any, default: int | None = None) -> int:
    """``frame_base`` as a non-negative int.

    Parameters
    ----------
    value : Any
        The option's value; None when it was not given.
    default : int, optional
        The format's first frame number, returned when ``value`` is None. Without a default,
        None is refused like any other invalid value.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        ``value`` is not a non-negative integer (a bool is refused).
    """
    if value is None and default is not None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"frame_base must be a non-negative integer (0 or 1), got {value!r}")
    return int(value)


def reader_options(
    pixel_size_nm: Any, units: Any, frame_base: Any, default_frame_base: int
) -> tuple[float | None, str | None, int]:
    """Check the options the text readers share.

    Parameters
    ----------
    pixel_size_nm, units, frame_base : Any
        The options as passed (None when not given).
    default_frame_base : int
        The format's first frame number, used when ``frame_base`` is None.

    Returns
    -------
    tuple of (float or None, str or None, int)
        ``pixel_size_nm``, ``units`` (see :func:`chromarate.io._units.check_units`) and
        ``frame_base``.

    Raises
    ------
    ConfigError
        An option has an invalid value.
    """
    return (
        check_pixel_size(pixel_size_nm),
        check_units(units),
        check_frame_base(frame_base, default_frame_base),
    )


def clean(exc: BaseException) -> str:
    """The message of ``exc`` on one line (runs of white space folded)."""
    return " ".join(str(exc).split())
