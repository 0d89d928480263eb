"""Heterochromatin domains of a nucleus: detection, geometry and the lab closed form.

Domains are the connected regions (8-connectivity) where the heterochromatin fraction
phi_h exceeds a threshold inside the nucleus. Per domain: area, equivalent-circle radius R,
centroid, whether it is interior (clear of the envelope), the distance to the nearest
interior domain and the spacing d, the Shenoy-lab closed form
lambda_lab = 1 / ((d / R)^2 - 1) (Kant et al., Nat. Commun. 15:4338, 2024; docs/design.md
section 5) and, next to it, the inferred rate averaged over the domain's territory (the
disc of radius d around its centroid, inside the nucleus).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .config import AnalysisConfig

__all__ = ["DOMAIN_COLUMNS", "Domains", "find_domains", "lab_lambda"]

#: Columns of :attr:`Domains.table`.
DOMAIN_COLUMNS = (
    "domain", "area_um2", "radius_um", "centroid_y_um", "centroid_x_um", "interior",
    "nn_distance_um", "spacing_um", "lab_lambda", "rate_territory", "rate_in_domain",
)

_EIGHT = np.ones((3, 3), dtype=bool)

#: ``rate_in_domain`` and ``rate_territory`` are averaged only where the rate is known
#: (finite) on at least this share of the domain or its territory inside the nucleus.
MIN_RATE_SHARE = 0.5


@dataclass(frozen=True)
class Domains:
    """The heterochromatin domains of one nucleus.

    Attributes
    ----------
    labels : numpy.ndarray
        int32 label image on the nucleus grid: 0 outside domains, 1..N one per domain
        (domains below the size limit are not labelled).
    table : pandas.DataFrame
        One row per labelled domain, columns :data:`DOMAIN_COLUMNS`; lengths in um,
        centroids relative to the grid origin. ``nn_distance_um``, ``spacing_um``,
        ``lab_lambda`` and ``rate_territory`` are NaN for domains that are not interior
        (and for every domain when fewer than two are interior); ``rate_in_domain`` and
        ``rate_territory`` also where the rate is known on less than
        :data:`MIN_RATE_SHARE` of the domain or of its territory.
    heterochromatin : numpy.ndarray
        bool mask of all pixels above the threshold inside the nucleus (before the size
        limit), the basis of the heterochromatin fraction.
    threshold : float
        The phi_h threshold used.
    """

    labels: np.ndarray
    table: pd.DataFrame
    heterochromatin: np.ndarray
    threshold: float

    @property
    def interior(self) -> pd.DataFrame:
        """Rows of the interior domains."""
        return self.table[self.table["interior"]]


def lab_lambda(radius_um, spacing_um) -> np.ndarray:
    """Shenoy-lab closed form lambda = Gamma_me / Gamma_ac = 1 / ((d / R)^2 - 1).

    From the balance of methylation in a domain's territory of radius d with acetylation in
    the domain of radius R (Kant et al. 2024). NaN where d <= R or either is not positive.

    Examples
    --------
    >>> float(lab_lambda(0.1, 0.2))  # (d/R)^2 = 4
    0.3333333333333333
    """
    r = np.asarray(radius_um, dtype=np.float64)
    d = np.asarray(spacing_um, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 / ((d / r) ** 2 - 1.0)
    return np.where((r > 0) & (d > r) & np.isfinite(out), out, np.nan)


def _threshold(config: AnalysisConfig, phi_max: float) -> float:
    return 0.5 * phi_max if config.threshold == "half_max" else float(config.threshold)


def find_domains(phi_h: np.ndarray, mask: np.ndarray, *, pixel_size_nm: float,
                 phi_max: float = 0.7, rate: np.ndarray | None = None,
                 config: AnalysisConfig = AnalysisConfig()) -> Domains:
    """Find the heterochromatin domains of a nucleus and measure them.

    Parameters
    ----------
    phi_h : numpy.ndarray
        Heterochromatin fraction on the nucleus grid.
    mask : numpy.ndarray
        bool nucleus mask of the same shape.
    pixel_size_nm : float
    phi_max : float
        Largest phi_h of the model (sets the ``"half_max"`` threshold).
    rate : numpy.ndarray, optional
        Inferred rate map on the grid; fills ``rate_territory`` and ``rate_in_domain``.
    config : AnalysisConfig
        ``smooth_nm``, ``threshold``, ``min_domain_radius_nm``, ``envelope_margin_nm``,
        ``spacing``.

    Returns
    -------
    Domains

    Raises
    ------
    ValueError
        If the arrays are not 2-D of one shape or the pixel size is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:100, :100]
    >>> phi_h = 0.6 * ((yy - 50) ** 2 + (xx - 50) ** 2 < 10 ** 2)
    >>> d = find_domains(phi_h, np.ones((100, 100), bool), pixel_size_nm=10.0,
    ...                  config=AnalysisConfig(smooth_nm=0.0))
    >>> len(d.table), round(float(d.table.radius_um[0]), 2)
    (1, 0.1)
    """
    phi_h = np.asarray(phi_h, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if phi_h.ndim != 2 or phi_h.shape != mask.shape:
        raise ValueError(f"phi_h {phi_h.shape} and mask {mask.shape} must be 2-D of one shape")
    if rate is not None and np.shape(rate) != mask.shape:
        raise ValueError(f"rate {np.shape(rate)} must have the mask's shape {mask.shape}")
    p_um = float(pixel_size_nm) / 1000.0
    if not p_um > 0:
        raise ValueError(f"pixel_size_nm must be positive, got {pixel_size_nm}")
    thr = _threshold(config, phi_max)

    field = np.where(mask & np.isfinite(phi_h), phi_h, 0.0)
    if config.smooth_nm > 0:
        # normalised convolution: smooth inside the nucleus without pulling in the outside
        s = config.smooth_nm / pixel_size_nm
        w = ndi.gaussian_filter(mask.astype(np.float64), s)
        field = np.divide(ndi.gaussian_filter(field, s), w, out=np.zeros_like(w), where=w > 1e-6)
    hetero = mask & (field > thr)

    labels, n = ndi.label(hetero, structure=_EIGHT)
    min_area_px = np.pi * (config.min_domain_radius_nm / pixel_size_nm) ** 2
    ids = np.arange(1, n + 1)
    areas = ndi.sum_labels(np.ones_like(labels), labels, ids) if n else np.zeros(0)
    keep = ids[areas >= min_area_px]
    relabel = np.zeros(n + 1, dtype=np.int32)
    relabel[keep] = np.arange(1, keep.size + 1)
    labels = relabel[labels]
    n = keep.size

    depth_um = ndi.distance_transform_edt(mask) * p_um  # distance to the envelope
    idx = np.arange(1, n + 1)
    area_px = ndi.sum_labels(np.ones_like(labels), labels, idx) if n else np.zeros(0)
    cents = np.array(ndi.center_of_mass(np.ones_like(labels), labels, idx)).reshape(-1, 2)
    cents_um = (cents + 0.5) * p_um
    min_depth = ndi.minimum(depth_um, labels, idx) if n else np.zeros(0)
    interior = np.asarray(min_depth) >= config.envelope_margin_nm / 1000.0
    radius = np.sqrt(np.asarray(area_px) / np.pi) * p_um

    nn = np.full(n, np.nan)
    inner = np.flatnonzero(interior)
    if inner.size >= 2:
        c = cents_um[inner]
        dist = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(dist, np.inf)
        nn[inner] = dist.min(axis=1)
    spacing = nn / 2.0 if config.spacing == "half_nn_distance" else nn.copy()

    rate_terr = np.full(n, np.nan)
    rate_in = np.full(n, np.nan)
    if rate is not None and n:
        r = np.where(mask, np.asarray(rate, dtype=np.float64), np.nan)
        finite = np.isfinite(r)
        sums = np.asarray(ndi.sum_labels(np.where(finite, r, 0.0), labels, idx), dtype=float)
        counts = np.asarray(ndi.sum_labels(finite, labels, idx), dtype=float)
        # a mean only where the rate is known on at least half of the region (a rate map
        # reported on the trusted pixels only leaves domains near the envelope without one)
        enough = counts >= MIN_RATE_SHARE * np.asarray(area_px, dtype=float)
        rate_in = np.divide(sums, counts, out=np.full(n, np.nan), where=enough & (counts > 0))
        ny, nx = mask.shape
        yy = (np.arange(ny) + 0.5) * p_um
        xx = (np.arange(nx) + 0.5) * p_um
        for k in np.flatnonzero(np.isfinite(spacing)):
            disc = ((yy[:, None] - cents_um[k, 0]) ** 2 + (xx[None, :] - cents_um[k, 1]) ** 2
                    <= spacing[k] ** 2) & mask
            known = disc & finite
            if known.any() and known.sum() >= MIN_RATE_SHARE * disc.sum():
                rate_terr[k] = float(r[known].mean())

    table = pd.DataFrame({
        "domain": idx.astype(int), "area_um2": np.asarray(area_px) * p_um**2,
        "radius_um": radius, "centroid_y_um": cents_um[:, 0], "centroid_x_um": cents_um[:, 1],
        "interior": interior.astype(bool), "nn_distance_um": nn, "spacing_um": spacing,
        "lab_lambda": lab_lambda(radius, spacing), "rate_territory": rate_terr,
        "rate_in_domain": rate_in,
    }, columns=list(DOMAIN_COLUMNS))
    return Domains(labels=labels, table=table, heterochromatin=hetero, threshold=thr)
