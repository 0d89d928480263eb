"""Background level of a density map around one nucleus (part of the observation model).

Localizations that are not chromatin (non-specific labelling, autofluorescence, out-of-focus
and camera background) fall inside the nucleus as well as outside it. Inside they add a
level that the phase mapping would read as chromatin: ``rho = rho_chromatin + b`` maps to
``phi_h = phi_e0 (rho / rho_eu - 1)`` with a wrong slope, which no choice of ``rho_eu``
repairs (the density scale calibration has one parameter; the observation then has two).
Outside every nucleus ``b`` is all there is, so it can be measured there:
:func:`ring_background` averages the raw density over a ring around the nucleus, a gap away
from its mask (clear of the blurred envelope) and from every other nucleus, and only where
the acquisition has data (not the padding a rendering adds around the localizations). The
pipeline subtracts the level from the nucleus' density before phase mapping
(``PhaseConfig.background``).

The mean of the raw counts is used, not a median: background is sparse (often well under
one count per pixel), and the median of sparse counts is zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from ._types import DensityMap

__all__ = ["Background", "MAX_BASELINE_SHARE", "MIN_RING_PIXELS", "limit_to_baseline",
           "ring_background", "subtract_level"]

#: Fewer ring pixels than this: no estimate (level 0, ``skipped`` says why).
MIN_RING_PIXELS = 200
#: A level above this share of the nucleus' euchromatin baseline is not subtracted.
MAX_BASELINE_SHARE = 0.5


@dataclass(frozen=True)
class Background:
    """Background level around one nucleus.

    Attributes
    ----------
    level : float
        Mean density of the ring (the density's units: counts per pixel for a rendering);
        0 when not estimated.
    n_pixels : int
        Pixels in the ring.
    gap_nm, width_nm : float
        The ring: pixels more than ``gap_nm`` and at most ``gap_nm + width_nm`` from the
        nucleus, more than ``gap_nm`` from any other nucleus.
    skipped : str
        Why there is no estimate ("" when there is one).
    """

    level: float
    n_pixels: int
    gap_nm: float
    width_nm: float
    skipped: str = ""

    def as_dict(self) -> dict:
        """Plain-type summary (for provenance)."""
        return {"level": float(self.level), "n_pixels": int(self.n_pixels),
                "gap_nm": float(self.gap_nm), "width_nm": float(self.width_nm),
                "skipped": self.skipped}


def ring_background(density: np.ndarray, labels: np.ndarray, nucleus_id: int, *,
                    pixel_size_nm: float, gap_nm: float = 300.0, width_nm: float = 1000.0,
                    valid: np.ndarray | None = None,
                    exclude: np.ndarray | None = None,
                    box: tuple[slice, slice] | None = None) -> Background:
    """Mean density in a ring around one nucleus, clear of every nucleus.

    Parameters
    ----------
    density : numpy.ndarray
        2-D raw density (not denoised: the mean is what is wanted, and smoothing would
        spread the nuclei's edges into the ring).
    labels : numpy.ndarray
        Integer labels of the same shape (0: no nucleus).
    nucleus_id : int
        The nucleus whose ring is measured.
    pixel_size_nm : float
        Pixel size of the grid (nm).
    gap_nm : float
        Distance kept from the nucleus and from every other nucleus (nm).
    width_nm : float
        Width of the ring beyond the gap (nm).
    valid : numpy.ndarray, optional
        bool, same shape: where the acquisition has data (default: everywhere).
    exclude : numpy.ndarray, optional
        bool, same shape: further objects to keep ``gap_nm`` clear of, such as the objects
        segmentation found and then dropped (too small, too large, on the border).
    box : tuple of slice, optional
        The nucleus' bounding box in ``labels`` (as :func:`scipy.ndimage.find_objects`
        gives it for every label in one pass), so that a map with many nuclei is not
        scanned whole for each of them. Default: found by scanning ``labels``.

    Returns
    -------
    Background

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:200, :200]
    >>> labels = ((yy - 100) ** 2 + (xx - 100) ** 2 < 40 ** 2).astype(int)
    >>> density = np.where(labels == 1, 10.0, 0.5)
    >>> b = ring_background(density, labels, 1, pixel_size_nm=10.0, gap_nm=100.0, width_nm=300.0)
    >>> round(b.level, 3), b.skipped
    (0.5, '')
    """
    p = float(pixel_size_nm)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"pixel_size_nm must be positive, got {pixel_size_nm!r}")
    gap_px, outer_px = gap_nm / p, (gap_nm + width_nm) / p
    y0, x0 = (0, 0) if box is None else (int(box[0].start or 0), int(box[1].start or 0))
    this = labels == nucleus_id if box is None else labels[box] == nucleus_id
    if not this.any():
        return Background(0.0, 0, gap_nm, width_nm, skipped=f"no nucleus {nucleus_id}")
    # work on a window around the nucleus: the ring lies within outer_px of it
    # a neighbour up to a gap beyond the ring's outer edge still shadows it
    reach = int(math.ceil(outer_px + gap_px)) + 1
    rows, cols = np.nonzero(this)
    rows, cols = rows + y0, cols + x0
    sy = slice(max(0, int(rows.min()) - reach), min(labels.shape[0], int(rows.max()) + reach + 1))
    sx = slice(max(0, int(cols.min()) - reach), min(labels.shape[1], int(cols.max()) + reach + 1))
    lab = labels[sy, sx]
    d_this = ndi.distance_transform_edt(lab != nucleus_id)
    ring = (d_this > gap_px) & (d_this <= outer_px)
    others = (lab != 0) & (lab != nucleus_id)
    if exclude is not None:
        others |= np.asarray(exclude, bool)[sy, sx] & (lab != nucleus_id)
    if others.any():
        ring &= ndi.distance_transform_edt(~others) > gap_px
    if valid is not None:
        ring &= np.asarray(valid, bool)[sy, sx]
    values = np.asarray(density[sy, sx], dtype=np.float64)[ring]
    values = values[np.isfinite(values)]
    n = int(values.size)
    if n < MIN_RING_PIXELS:
        return Background(0.0, n, gap_nm, width_nm,
                          skipped=f"{n} pixels around the nucleus are clear of nuclei and "
                                  f"inside the data (< {MIN_RING_PIXELS})")
    return Background(float(values.mean()), n, gap_nm, width_nm)


def limit_to_baseline(background: Background, baseline: float,
                      max_share: float = MAX_BASELINE_SHARE) -> Background:
    """The background, or no subtraction when its level is implausible for the nucleus.

    A level above ``max_share`` of the nucleus' baseline density (the low percentile the
    phase mapping reads as euchromatin) would leave little or no euchromatin: the ring then
    holds something else than the nucleus' background (a brighter neighbourhood,
    unsegmented cells), or the nucleus has chromatin-free regions at the background level.
    Either way the level is not subtracted, and ``skipped`` says why.

    Parameters
    ----------
    background : Background
    baseline : float
        The nucleus' baseline percentile of the density (the density's units).
    max_share : float

    Returns
    -------
    Background
    """
    if background.skipped or not background.level > max_share * baseline:
        return background
    return Background(0.0, background.n_pixels, background.gap_nm, background.width_nm,
                      skipped=f"the ring's level {background.level:.3g} is more than "
                              f"{max_share:g} of the nucleus' baseline density {baseline:.3g}; "
                              f"not subtracted")


def subtract_level(density: DensityMap, level: float) -> DensityMap:
    """``density`` less a constant level (the same map when the level is 0)."""
    if not level:
        return density
    return replace(density, data=(np.asarray(density.data, dtype=np.float32) - np.float32(level)))
