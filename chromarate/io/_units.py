"""The one table of length units shared by the localization readers (not public).

Every text reader (ThunderSTORM, generic, Elyra, N-STORM, Nanoimager, rapidSTORM) converts a
length column through :func:`length_scale`, so a column unit is accepted or refused the same
way whichever format it comes in, and a ``units=`` option is validated by
:func:`check_units` against the same table.

Rules of :func:`length_scale`
-----------------------------
- A unit the file states and :data:`LENGTH_UNITS` knows is used; ``units=`` never overrides it.
- A column without a unit, or with a unit that is not a known length unit, takes the unit of
  the ``units=`` option; without that option it is refused, naming the column.
- Camera pixels are converted with ``pixel_size_nm``; without it they are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chromarate.errors import ConfigError, InputFormatError

__all__ = [
    "LENGTH_UNITS",
    "PHOTON_UNITS",
    "check_units",
    "length_scale",
    "unit_factor",
    "unit_label",
]

#: Nanometres per unit of length, by lower-case unit name; None marks camera pixels (they
#: need ``pixel_size_nm``).
LENGTH_UNITS: dict[str, float | None] = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1e3, "\u00b5m": 1e3, "\u03bcm": 1e3, "micron": 1e3, "microns": 1e3,
    "micrometer": 1e3, "micrometers": 1e3, "micrometre": 1e3, "micrometres": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimeters": 1e6, "millimetre": 1e6, "millimetres": 1e6,
    "m": 1e9, "meter": 1e9, "meters": 1e9, "metre": 1e9, "metres": 1e9,
    "angstrom": 0.1, "angstroms": 0.1, "\u00e5": 0.1,  # å: Å in lower case
    "px": None, "pix": None, "pixel": None, "pixels": None, "camera pixel": None,
}

#: Lower-case unit names that mean photons (for intensity and background columns).
PHOTON_UNITS = frozenset({"photon", "photons"})

_LABELS = {1.0: "nm", 1e3: "um", 1e6: "mm", 1e9: "m"}


def unit_factor(unit: str) -> float | None | bool:
    """Nanometres per ``unit``.

    Parameters
    ----------
    unit : str
        A unit name; case and runs of blanks do not matter (``"Nanometer"``, ``"camera  pixel"``).

    Returns
    -------
    float or None or bool
        nm per unit; None for camera pixels; False when ``unit`` is no known length unit.
    """
    key = " ".join(unit.strip().lower().split())
    return LENGTH_UNITS.get(key, False)


def unit_label(factor: float, unit: str) -> str:
    """Short name of a length unit for ``meta["units"]`` (``"nm"``, ``"um"``, ``"mm"``, ``"m"``).

    Parameters
    ----------
    factor : float
        nm per unit, as :func:`unit_factor` gives it.
    unit : str
        The unit as written, used when ``factor`` has no short name.

    Returns
    -------
    str
    """
    return _LABELS.get(factor, unit)


def check_units(value: Any) -> str | None:
    """Validate a ``units=`` option.

    Parameters
    ----------
    value : Any
        The option; None when it was not given.

    Returns
    -------
    str or None
        The unit, stripped and lower case (a key of :data:`LENGTH_UNITS`), or None.

    Raises
    ------
    ConfigError
        ``value`` is not the name of a length unit.
    """
    if value is None:
        return None
    if not isinstance(value, str) or unit_factor(value) is False:
        raise ConfigError(
            f"units must be one of 'nm', 'um', 'mm', 'm', 'px' (length unit of the file), got {value!r}"
        )
    return " ".join(value.strip().lower().split())


def length_scale(
    unit: str | None,
    *,
    column: str,
    units: str | None,
    pixel_size_nm: float | None,
    path: Path,
    fmt: str,
) -> tuple[float, str, bool]:
    """Scale to nanometres of one length column (see the module docstring for the rules).

    Parameters
    ----------
    unit : str or None
        The unit the file states for the column; None or ``""`` when it states none.
    column : str
        The column's name, for messages.
    units : str or None
        The ``units=`` option, checked by :func:`check_units`.
    pixel_size_nm : float or None
        The ``pixel_size_nm=`` option.
    path : pathlib.Path
        The file, for messages.
    fmt : str
        The format's name, for messages.

    Returns
    -------
    tuple of (float, str, bool)
        nm per file unit, the unit's name for ``meta["units"]``, and whether camera pixels
        were converted.

    Raises
    ------
    InputFormatError
        The column has no known unit and ``units`` is None, or it is in pixels and
        ``pixel_size_nm`` is None.
    """
    factor = unit_factor(unit) if unit else False
    if factor is False:
        if units is None:
            said = f'unknown unit "{unit}" in column "{column}"' if unit else f'column "{column}" has no unit'
            raise InputFormatError(
                f"{said}; expected a length unit (nm, um, mm, m, or px with pixel_size_nm=...); "
                'pass units="nm" (or "um", or units="px" with pixel_size_nm=...) to state the '
                f"unit of such columns (format {fmt!r})",
                path=path,
            )
        unit = units
        factor = unit_factor(units)
    if factor is None:
        if pixel_size_nm is None:
            raise InputFormatError(
                f'column "{column}" is in camera pixels; pass pixel_size_nm=... to convert it '
                "to nanometres",
                path=path,
            )
        return pixel_size_nm, "px", True
    assert isinstance(factor, float)
    return factor, unit_label(factor, str(unit)), False
