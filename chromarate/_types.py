"""Frozen value types passed between pipeline stages.

Stages take and return these; none of them touches files. Arrays are numpy arrays in
(y, x) order; lengths are in nanometres unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_COLUMNS",
    "DensityMap",
    "FitDone",
    "FitProgress",
    "FitResult",
    "Localizations",
    "NucleusCrop",
    "NucleusFailed",
    "PhaseFields",
    "ResultStack",
    "StageDone",
]

#: Canonical localization columns; ``x_nm`` and ``y_nm`` are required.
CANONICAL_COLUMNS = (
    "x_nm", "y_nm", "z_nm", "frame", "photons", "precision_nm", "sigma_nm", "background",
)


@dataclass(frozen=True)
class Localizations:
    """A table of single-molecule localizations in nanometres.

    Attributes
    ----------
    table : pandas.DataFrame
        Canonical columns (see :data:`CANONICAL_COLUMNS`); ``frame`` is 0-based.
    meta : dict
        Provenance: ``source`` path, detected ``format``, ``pixel_size_nm`` used for a
        conversion (or None), ``frame_base`` of the file, and anything a reader adds.
    """

    table: pd.DataFrame
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def xy_nm(self) -> np.ndarray:
        """(n, 2) float64 array of x, y in nm."""
        return self.table[["x_nm", "y_nm"]].to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class DensityMap:
    """A 2-D density image on a regular grid.

    Attributes
    ----------
    data : numpy.ndarray
        float32 (ny, nx), localizations per pixel.
    pixel_size_nm : float
        Side of a square pixel.
    origin_nm : tuple of float
        (y, x) of the corner of pixel (0, 0).
    meta : dict
        Provenance (number of localizations, rendering method, ...).
    """

    data: np.ndarray
    pixel_size_nm: float
    origin_nm: tuple[float, float] = (0.0, 0.0)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


def stage_input(density, config, config_type: type,
                error: type[Exception]) -> tuple[np.ndarray, float]:
    """The data array and pixel size of a stage's input map, checked (denoise, segment).

    ``error`` is the stage's error class (``chromarate.errors.StageError``: this module
    sits below ``errors`` in the layers and does not import it).

    Raises
    ------
    TypeError
        If ``density`` is not a :class:`DensityMap` or ``config`` not a ``config_type``.
    error
        If the map is not a non-empty 2-D array, holds non-finite values, or its pixel size
        is not positive.
    """
    if not isinstance(density, DensityMap):
        raise TypeError(f"density must be a DensityMap, got {type(density).__name__}")
    if not isinstance(config, config_type):
        raise TypeError(f"config must be a {config_type.__name__}, got {type(config).__name__}")
    data = np.asarray(density.data)
    if data.ndim != 2 or data.size == 0:
        raise error(f"density map must be a non-empty 2-D array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise error("density map holds non-finite values (NaN or inf)")
    p = float(density.pixel_size_nm)
    if not (np.isfinite(p) and p > 0):
        raise error(f"density pixel_size_nm must be positive, got {density.pixel_size_nm}")
    return data, p


@dataclass(frozen=True)
class NucleusCrop:
    """One segmented nucleus: its id, mask and crop window on the parent grid.

    Attributes
    ----------
    nucleus_id : int
        Label in the parent label image (1-based).
    mask : numpy.ndarray
        bool (ny, nx) mask on the crop.
    slices : tuple of slice
        (row, col) slices of the crop in the parent image.
    origin_nm : tuple of float
        (y, x) of the corner of the crop's pixel (0, 0).
    """

    nucleus_id: int
    mask: np.ndarray
    slices: tuple[slice, slice]
    origin_nm: tuple[float, float]


@dataclass(frozen=True)
class PhaseFields:
    """Phase fields of one nucleus on the pixel grid.

    Attributes
    ----------
    phi_w, phi_d : numpy.ndarray
        float (ny, nx): nucleoplasm fraction and phi_h - phi_e.
    mask : numpy.ndarray
        bool (ny, nx), True inside the nucleus.
    pixel_size_nm : float
    origin_nm : tuple of float
    meta : dict
        Calibration of the observation model (phi_e0, rho_eu, ...).
    """

    phi_w: np.ndarray
    phi_d: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float
    origin_nm: tuple[float, float] = (0.0, 0.0)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def phi_h(self) -> np.ndarray:
        """Heterochromatin fraction (1 - phi_w + phi_d) / 2."""
        return 0.5 * (1.0 - self.phi_w + self.phi_d)

    @property
    def phi_e(self) -> np.ndarray:
        """Euchromatin fraction (1 - phi_w - phi_d) / 2."""
        return 0.5 * (1.0 - self.phi_w - self.phi_d)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.phi_d.shape)  # type: ignore[return-value]


@dataclass(frozen=True, kw_only=True)
class TrueFields(PhaseFields):
    """The ground truth of a simulated nucleus: its steady-state phase fields and the rate
    map that produced them, on the simulation grid (built with keywords).

    Attributes
    ----------
    rate : numpy.ndarray
        float (ny, nx): the true lambda.
    phi_w, phi_d, mask, pixel_size_nm, origin_nm, meta
        As in :class:`PhaseFields`.
    """

    rate: np.ndarray


@dataclass(frozen=True)
class FitResult:
    """The outcome of a rate inference.

    Attributes
    ----------
    rate : numpy.ndarray
        lambda = Gamma_me / Gamma_ac on the input grid (NaN outside the mask).
    phi_d_fit : numpy.ndarray
        Fitted (mollified) phi_d.
    residual : numpy.ndarray
        Steady-state PDE residual of the fit (NaN where it is not trusted).
    rate_std : numpy.ndarray or None
        Ensemble standard deviation of the rate, when computed.
    trusted : numpy.ndarray
        bool mask of pixels at least one mollifier radius inside the nucleus.
    history : dict of list
        Loss terms per logged step.
    timings : dict
        Seconds per phase of the fit.
    device : str
    config : dict
        The resolved fit configuration.
    meta : dict
        Anything else (chosen mollifier width, method, ...).
    """

    rate: np.ndarray
    phi_d_fit: np.ndarray
    residual: np.ndarray
    trusted: np.ndarray
    rate_std: np.ndarray | None = None
    history: Mapping[str, list] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    device: str = "cpu"
    config: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultStack:
    """Named 2-D arrays of one nucleus on one grid, plus provenance.

    Attributes
    ----------
    channels : dict of str to numpy.ndarray
        Ordered channel name -> float32 (ny, nx) array.
    labels : dict of str to numpy.ndarray
        Label images (e.g. ``"nucleus"``), integer (ny, nx).
    pixel_size_nm : float
    origin_nm : tuple of float
    provenance : dict
        JSON-serialisable block written as the ``chromarate`` attribute.
    """

    channels: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    pixel_size_nm: float
    origin_nm: tuple[float, float]
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitProgress:
    """Event yielded by the fit generator every few steps."""

    step: int
    total_steps: int
    loss: float
    terms: Mapping[str, float]
    elapsed_s: float


@dataclass(frozen=True)
class FitDone:
    """Last event of the fit generator, carrying the result."""

    result: FitResult


@dataclass(frozen=True)
class NucleusFailed:
    """Event yielded by the pipeline when one nucleus could not be processed."""

    nucleus_id: int
    stage: str
    error: str


@dataclass(frozen=True)
class StageDone:
    """Event yielded by the pipeline when a stage finishes."""

    stage: str
    seconds: float
    nucleus_id: int | None = None
