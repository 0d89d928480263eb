"""Synthetic validation cases: rate-map families, envelopes, forward models, observation paths.

A :class:`Case` is a complete, hashable description of one synthetic nucleus; everything
random in it is drawn from ``numpy.random.default_rng([seed, index])`` (truth) and
``default_rng([seed, index, 1])`` (observation noise or localizations), so a case is
reproducible from its fields alone. :func:`simulate_case` makes the ground truth (rate
map, steady state, mask) and the observation; the steady state, the expensive part, can
be cached on disk (one ``chromarate.io.truth`` file per case, keyed by a hash of the
fields that decide the truth).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.special import erf

from .._types import Localizations, PhaseFields, TrueFields
from ..data import PSF_SIGMA_NM, make_nucleus_mask, make_rate_map, sample_localizations
from ..errors import ConfigError
from ..fit.physics import ChromatinParams
from ..fit.simulate import steady_state
from ..fit.simulate_masked import steady_state_masked

__all__ = [
    "FAMILIES",
    "PHI_E0",
    "CACHE_VERSION",
    "Case",
    "SyntheticCase",
    "make_case_mask",
    "make_case_rate",
    "irregular_mask",
    "quick_version",
    "simulate_case",
    "truth_key",
]

#: Rate-map families (see :func:`make_case_rate`).
FAMILIES = ("bump", "domains", "step", "hetero", "constant", "fine", "smooth")

#: Constant euchromatin fraction of the observation model.
PHI_E0 = 0.2

#: Bumped whenever the truth a case produces changes, so old cache files are not reused.
CACHE_VERSION = 1


@dataclass(frozen=True)
class Case:
    """One synthetic validation nucleus.

    Attributes
    ----------
    name : str
        Unique within a suite (the seed is appended by :func:`~chromarate.validation.suite`).
    family : str
        Rate-map family, one of :data:`FAMILIES` (see :func:`make_case_rate`).
    seed, index : int
        Randomness of the case: ``default_rng([seed, index])``.
    size_px : int
        Side of the square simulation grid.
    pixel_nm : float
        Pixel size of the simulation grid (and of the rendering on the localization path).
    nucleus_um : float
        Nucleus size across (major axis of the ellipse; twice the mean radius of an
        irregular envelope), in um.
    aspect : float
        Minor / major axis of the ellipse (mean elongation of an irregular envelope).
    envelope : {"ellipse", "irregular"}
        Ellipse with a gentle wobble (:func:`chromarate.data.make_nucleus_mask`) or a
        smoothed random lobed star shape (:func:`irregular_mask`).
    model : {"box", "envelope"}
        Forward model: the steady state on the whole box with no flux through the box walls
        (:func:`chromarate.fit.simulate.steady_state`; the mask only decides where chromatin
        is observed) or with no flux through the nuclear envelope
        (:func:`chromarate.fit.simulate_masked.steady_state_masked`).
    path : {"fields", "localizations"}
        Observation: phase fields with white noise, or localizations through the pipeline.
    noise : float
        Fields path: noise standard deviation as a fraction of the range (max - min) of the
        true phi_d inside the mask (0, 0.01, 0.05).
    n_localizations : int
        Localizations path: expected number of localizations (blinking repeats included).
    precision_nm : tuple of float
        Range of the per-molecule localization precision (uniform).
    background_fraction : float
        Fraction of the molecules placed uniformly over the field.
    blinking : float
        Mean number of localizations per molecule (>= 1), in consecutive frames, each with a
        fresh localization error; 1 means no repeats.
    rate_range : tuple of float
        (low, high) of the rate map (for "constant": the range the constant is drawn from).
    length_um : float
        Length scale of the family: bump standard deviation, smoothing length of "smooth"
        and of the smooth part of "fine", smoothing of phi_h for "hetero".
    fine_wavelength_um : float
        "fine" only: wavelength of the unresolvable fine structure.
    tolerance : float
        Max-norm residual at which the forward solver stops.
    """

    name: str
    family: str
    seed: int = 0
    index: int = 0
    size_px: int = 128
    pixel_nm: float = 20.0
    nucleus_um: float = 2.0
    aspect: float = 0.85
    envelope: Literal["ellipse", "irregular"] = "ellipse"
    model: Literal["box", "envelope"] = "box"
    path: Literal["fields", "localizations"] = "fields"
    noise: float = 0.0
    n_localizations: int = 250_000
    precision_nm: tuple[float, float] = (10.0, 20.0)
    background_fraction: float = 0.03
    blinking: float = 1.0
    rate_range: tuple[float, float] = (0.7, 2.2)
    length_um: float = 0.5
    fine_wavelength_um: float = 0.12
    tolerance: float = 2e-3

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown rate family {self.family!r}; use one of {FAMILIES}")
        if self.envelope not in ("ellipse", "irregular"):
            raise ConfigError(f"unknown envelope {self.envelope!r}")
        if self.model not in ("box", "envelope"):
            raise ConfigError(f"unknown forward model {self.model!r}")
        if self.path not in ("fields", "localizations"):
            raise ConfigError(f"unknown observation path {self.path!r}")
        if self.blinking < 1.0:
            raise ConfigError("blinking is the mean number of localizations per molecule (>= 1)")
        if not 0.0 < self.rate_range[0] <= self.rate_range[1]:
            raise ConfigError(f"rate_range must be 0 < low <= high, got {self.rate_range}")

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the simulation grid."""
        return (self.size_px, self.size_px)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict."""
        d = asdict(self)
        d["precision_nm"] = list(self.precision_nm)
        d["rate_range"] = list(self.rate_range)
        return d


#: Fields of a Case that do not change its ground truth (only the observation).
_OBSERVATION_FIELDS = ("name", "path", "noise", "n_localizations", "precision_nm",
                       "background_fraction", "blinking")


def truth_key(case: Case) -> str:
    """Hash of the fields that decide a case's ground truth (its cache key)."""
    d = {k: v for k, v in case.as_dict().items() if k not in _OBSERVATION_FIELDS}
    d["cache_version"] = CACHE_VERSION
    text = json.dumps(d, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, kw_only=True)
class SyntheticCase(TrueFields):
    """Ground truth and observation of one case.

    Attributes
    ----------
    case : Case
    rate, phi_d, phi_w : numpy.ndarray
        True lambda and steady state on the simulation grid.
    mask : numpy.ndarray
        bool nucleus mask on the simulation grid.
    pixel_size_nm : float
    origin_nm : tuple of float
        (y, x) of the corner of pixel (0, 0); always (0, 0).
    fields : PhaseFields or None
        Fields path: the noisy observation (``phi_w = 1 - 2 phi_e0 - phi_d``).
    localizations : Localizations or None
        Localizations path: the localization table.
    meta : dict
        Forward-solver steps, residual, convergence and seconds (``simulate_s``, the
        original cost even when read from the cache, ``from_cache``), noise sigma, ...
    """

    case: Case
    fields: PhaseFields | None = None
    localizations: Localizations | None = None

    @property
    def phi_h(self) -> np.ndarray:
        """True heterochromatin fraction phi_d + phi_e0."""
        return self.phi_d + PHI_E0


def _centred_coords(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) of the pixel centres in um, relative to the centre of the box."""
    n, p = case.size_px, case.pixel_nm / 1000.0
    c = (np.arange(n) + 0.5 - n / 2.0) * p
    return np.meshgrid(c, c, indexing="ij")


def irregular_mask(shape: tuple[int, int], *, pixel_size_nm: float, radius_um: float,
                   aspect: float, rng: np.random.Generator) -> np.ndarray:
    """A smoothed random lobed (star-shaped) nucleus, centred in the grid.

    The boundary is ``r(theta) = R (1 + sum_k a_k cos(k theta + phase_k))`` for k = 2..7,
    with an elongation term set by ``aspect``, two or three pronounced lobes (k = 3 or 4)
    and decaying random amplitudes; the region is then smoothed by a Gaussian of 2 % of
    ``radius_um`` and thresholded at one half, so the outline has no sharp corners.

    Parameters
    ----------
    shape : tuple of int
    pixel_size_nm : float
    radius_um : float
        Mean radius R.
    aspect : float
        Roughly minor / major axis.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        bool mask.
    """
    ny, nx = shape
    p = pixel_size_nm / 1000.0
    y = (np.arange(ny) + 0.5 - ny / 2.0) * p
    x = (np.arange(nx) + 0.5 - nx / 2.0) * p
    yy, xx = np.meshgrid(y, x, indexing="ij")
    rr, th = np.hypot(yy, xx), np.arctan2(yy, xx)
    bound = np.ones_like(th)
    elong = (1.0 - aspect) / (1.0 + aspect)
    bound += elong * np.cos(2 * (th - rng.uniform(0, np.pi)))
    lobes = int(rng.integers(3, 5))
    bound += rng.uniform(0.06, 0.10) * np.cos(lobes * th + rng.uniform(0, 2 * np.pi))
    for k in range(2, 8):
        if k != lobes:
            bound += rng.normal(0.0, 0.05 / k) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    inside = (rr < radius_um * bound).astype(np.float64)
    sm = ndi.gaussian_filter(inside, max(0.02 * radius_um / p, 0.5), mode="constant")
    return sm > 0.5


def make_case_mask(case: Case, rng: np.random.Generator) -> np.ndarray:
    """The nucleus mask of a case (draws from ``rng``).

    Parameters
    ----------
    case : Case
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        bool (size_px, size_px).
    """
    a = case.nucleus_um / 2.0
    if case.envelope == "ellipse":
        return make_nucleus_mask(case.shape, pixel_size_nm=case.pixel_nm,
                                 radii_um=(a, a * case.aspect), rng=rng)
    return irregular_mask(case.shape, pixel_size_nm=case.pixel_nm, radius_um=a,
                          aspect=case.aspect, rng=rng)


def _interior_points(mask: np.ndarray, margin_px: float, rng: np.random.Generator, k: int):
    """k random pixel positions (y, x) at least ``margin_px`` inside ``mask`` (or the
    deepest pixels when none are that far in)."""
    dist = ndi.distance_transform_edt(mask)
    ok = dist >= min(margin_px, 0.5 * float(dist.max()))
    rows, cols = np.nonzero(ok)
    pick = rng.integers(0, rows.size, k)
    return rows[pick].astype(float), cols[pick].astype(float)


def _rescale(z: np.ndarray, lo: float, hi: float, where: np.ndarray) -> np.ndarray:
    """Affine map of ``z`` taking its range over ``where`` to [lo, hi] (clipped)."""
    zmin, zmax = float(z[where].min()), float(z[where].max())
    u = (z - zmin) / max(zmax - zmin, 1e-12)
    return lo + (hi - lo) * np.clip(u, 0.0, 1.0)


def make_case_rate(case: Case, rng: np.random.Generator, *, mask: np.ndarray | None = None,
                   ) -> np.ndarray:
    """The true rate map lambda of a case.

    Families (``lo, hi = case.rate_range``):

    ``bump``
        One broad Gaussian bump, ``lo + (hi - lo) exp(-|r - c|^2 / (2 s^2))`` with
        ``s = case.length_um`` and the centre c at a random point well inside the nucleus.
    ``domains``
        Several discs 0.3-1 um across (as many as cover about a quarter of the nucleus, 2
        to 12), at random points inside it, with smooth edges (an erf profile 40 nm wide):
        ``hi`` inside a domain, ``lo`` outside.
    ``step``
        A sharp step across the nucleus along a random direction, through a point within
        15 % of the nucleus size of its centre, smoothed by an erf of one-pixel width.
    ``hetero``
        Correlated with heterochromatin: the steady state for the constant rate
        ``(lo + hi) / 2`` (which phase-separates into domains) is solved with the case's
        forward model, its phi_h smoothed by a Gaussian of ``case.length_um`` and mapped
        affinely onto [lo, hi] over the nucleus: ``lambda = a + b G * phi_h``.
    ``constant``
        One value drawn uniformly from [lo, hi].
    ``fine``
        A smooth random pattern (:func:`chromarate.data.make_rate_map`, length
        ``case.length_um``) over 80 % of the range plus a checkerboard of wavelength
        ``case.fine_wavelength_um`` (at least 4 pixels) over the other 20 %: fine structure
        well below the resolution of the fit (a mollifier radius, and the 0.15 um scale of
        :data:`chromarate.validation.scoring.RESOLUTION_UM` used to score it).
    ``smooth``
        :func:`chromarate.data.make_rate_map` (``chromarate simulate``'s model):
        Gaussian-filtered white noise of length ``case.length_um``, rescaled to [lo, hi].

    Parameters
    ----------
    case : Case
    rng : numpy.random.Generator
    mask : numpy.ndarray, optional
        The nucleus (default: :func:`make_case_mask` drawn from ``rng``); bumps, domains
        and steps are placed inside it.

    Returns
    -------
    numpy.ndarray
        float64 (size_px, size_px), values in ``rate_range``.
    """
    lo, hi = case.rate_range
    if mask is None:
        mask = make_case_mask(case, rng)
    p_um = case.pixel_nm / 1000.0
    n = case.size_px
    iy, ix = np.mgrid[0:n, 0:n].astype(np.float64)
    fam = case.family
    if fam == "constant":
        return np.full(case.shape, rng.uniform(lo, hi))
    if fam == "smooth":
        return make_rate_map(case.shape, pixel_size_nm=case.pixel_nm, rate_range=(lo, hi),
                             length_um=case.length_um, rng=rng)
    if fam == "bump":
        s_px = case.length_um / p_um
        cy, cx = _interior_points(mask, 0.5 * s_px, rng, 1)
        g = np.exp(-((iy - cy[0]) ** 2 + (ix - cx[0]) ** 2) / (2.0 * s_px**2))
        return lo + (hi - lo) * g
    if fam == "domains":
        area_um2 = float(mask.sum()) * p_um**2
        k = int(np.clip(round(0.25 * area_um2 / (np.pi * 0.65**2 / 4.0)), 2, 12))
        diam = rng.uniform(0.3, 1.0, k) / p_um
        cy, cx = _interior_points(mask, 0.3 / p_um, rng, k)
        edge = 0.04 / p_um
        ind = np.zeros(case.shape)
        for d, y0, x0 in zip(diam, cy, cx):
            r = np.hypot(iy - y0, ix - x0)
            ind = np.maximum(ind, 0.5 * (1.0 - erf((r - d / 2.0) / (np.sqrt(2.0) * edge))))
        return lo + (hi - lo) * ind
    if fam == "step":
        theta = rng.uniform(0.0, 2.0 * np.pi)
        rows, cols = np.nonzero(mask)
        c = np.array([rows.mean(), cols.mean()]) + rng.uniform(-0.15, 0.15, 2) * \
            case.nucleus_um / p_um
        d = (iy - c[0]) * np.sin(theta) + (ix - c[1]) * np.cos(theta)
        return lo + (hi - lo) * 0.5 * (1.0 + erf(d / np.sqrt(2.0)))
    if fam == "fine":
        smooth = make_rate_map(case.shape, pixel_size_nm=case.pixel_nm, rate_range=(0.0, 1.0),
                               length_um=case.length_um, rng=rng)
        w_px = max(case.fine_wavelength_um / p_um, 4.0)
        ph = rng.uniform(0.0, 2.0 * np.pi, 2)
        checker = np.sin(2 * np.pi * iy / w_px + ph[0]) * np.sin(2 * np.pi * ix / w_px + ph[1])
        return lo + (hi - lo) * (0.8 * smooth + 0.2 * 0.5 * (1.0 + checker))
    if fam == "hetero":
        lam0 = np.full(case.shape, 0.5 * (lo + hi))
        pre = _solve(case, lam0, mask, tol=max(1e-2, case.tolerance),
                     seed=int(rng.integers(0, 2**31 - 1)))
        phi_h = pre.phi_d + PHI_E0
        sm = ndi.gaussian_filter(phi_h, case.length_um / p_um, mode="reflect")
        return _rescale(sm, lo, hi, np.asarray(mask, bool))
    raise ConfigError(f"unknown rate family {fam!r}")  # pragma: no cover - checked by Case


def _solve(case: Case, rate: np.ndarray, mask: np.ndarray, *, tol: float, seed: int):
    """Steady state with the case's forward model."""
    params = ChromatinParams()
    if case.model == "envelope":
        return steady_state_masked(rate, mask, pixel_um=case.pixel_nm / 1000.0, params=params,
                                   phi_e0=PHI_E0, tol=tol, seed=seed)
    return steady_state(rate, pixel_um=case.pixel_nm / 1000.0, params=params, phi_e0=PHI_E0,
                        tol=tol, seed=seed)


def _truth(case: Case, cache_dir: Path | None) -> tuple[dict[str, Any], bool]:
    """Rate, steady state and mask of a case, from the cache when there."""
    from ..io.truth import read_truth, write_truth

    path = None if cache_dir is None else Path(cache_dir) / f"case_{truth_key(case)}.truth.npz"
    if path is not None and path.is_file():
        t = read_truth(path)
        return {k: t[k] for k in ("rate", "phi_d", "phi_w", "mask")} | {"meta": t["meta"]}, True
    rng = np.random.default_rng([case.seed, case.index])
    t0 = time.perf_counter()
    mask = make_case_mask(case, rng)
    rate = make_case_rate(case, rng, mask=mask)
    ss = _solve(case, rate, mask, tol=case.tolerance, seed=int(rng.integers(0, 2**31 - 1)))
    meta = {"simulate_s": time.perf_counter() - t0, "steady_steps": int(ss.steps),
            "residual_max": float(ss.residual_max), "converged": bool(ss.converged),
            "truth_key": truth_key(case), "case": case.as_dict()}
    # rounded to float32 as the cache stores them, so a cached rerun sees the same numbers
    out = {"rate": rate.astype(np.float32), "phi_d": ss.phi_d.astype(np.float32),
           "phi_w": ss.phi_w.astype(np.float32), "mask": mask, "meta": meta}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_truth(path, rate=out["rate"], phi_w=out["phi_w"], phi_d=out["phi_d"], mask=mask,
                    pixel_size_nm=case.pixel_nm, origin_nm=(0.0, 0.0), meta=meta)
    return out, False


def _blinking_localizations(density: np.ndarray, case: Case, rng: np.random.Generator,
                            ) -> Localizations:
    """Localizations with blinking: molecule positions from
    :func:`chromarate.data.sample_localizations` (drawn with a negligible 1e-3 nm error),
    each molecule seen ``1 + Poisson(blinking - 1)`` times in consecutive frames, every
    localization with its own Gaussian error at the molecule's precision."""
    n_mol = max(100, int(round(case.n_localizations / case.blinking)))
    n_frames = 20_000
    mol = sample_localizations(density, pixel_size_nm=case.pixel_nm, n_localizations=n_mol,
                               precision_nm=(1e-3, 1e-3),
                               background_fraction=case.background_fraction,
                               n_frames=n_frames, rng=rng).table
    k = 1 + rng.poisson(case.blinking - 1.0, len(mol))
    idx = np.repeat(np.arange(len(mol)), k)
    repeat = np.arange(idx.size) - np.repeat(np.cumsum(k) - k, k)
    prec_mol = rng.uniform(case.precision_nm[0], case.precision_nm[1], len(mol))
    prec = prec_mol[idx]
    x = mol["x_nm"].to_numpy()[idx] + rng.standard_normal(idx.size) * prec
    y = mol["y_nm"].to_numpy()[idx] + rng.standard_normal(idx.size) * prec
    frame = mol["frame"].to_numpy()[idx] + repeat
    order = np.lexsort((x, frame))
    table = pd.DataFrame({
        "x_nm": x[order], "y_nm": y[order], "frame": frame[order].astype(np.int64),
        "photons": np.round((PSF_SIGMA_NM / prec[order]) ** 2, 0), "precision_nm": prec[order],
        "sigma_nm": np.full(idx.size, PSF_SIGMA_NM),
    })
    return Localizations(table=table, meta={"source": f"validation:{case.name}",
                                            "format": "synthetic", "frame_base": 0,
                                            "pixel_size_nm": None})


def simulate_case(case: Case, *, cache_dir: str | Path | None = None) -> SyntheticCase:
    """Simulate a case: truth (cached) and observation.

    Fields path: ``phi_d_obs = phi_d + noise``, white Gaussian noise of standard deviation
    ``case.noise * (max - min of phi_d inside the mask)`` added independently to every
    pixel, and ``phi_w_obs = 1 - 2 phi_e0 - phi_d_obs`` (the constant-euchromatin closure).
    Localizations path: H2B density ``phi_h + phi_e0`` inside the mask (zero outside), with
    ``phi_h = max(phi_d + phi_e0, 0)``, sampled with background and blinking (see
    :class:`Case`).

    Parameters
    ----------
    case : Case
    cache_dir : str or Path, optional
        Folder of the steady-state cache (created when missing): one
        ``case_<truth_key>.truth.npz`` per truth, written and read with
        :mod:`chromarate.io.truth`. None: always simulate.

    Returns
    -------
    SyntheticCase
    """
    truth, cached = _truth(case, None if cache_dir is None else Path(cache_dir))
    rate = np.asarray(truth["rate"], dtype=np.float64)
    phi_d = np.asarray(truth["phi_d"], dtype=np.float64)
    phi_w = np.asarray(truth["phi_w"], dtype=np.float64)
    mask = np.asarray(truth["mask"], dtype=bool)
    meta = {**dict(truth["meta"]), "from_cache": cached}
    rng = np.random.default_rng([case.seed, case.index, 1])
    fields = locs = None
    if case.path == "fields":
        sigma = case.noise * float(np.ptp(phi_d[mask]))
        obs = phi_d + sigma * rng.standard_normal(phi_d.shape) if sigma > 0 else phi_d.copy()
        fields = PhaseFields(phi_w=1.0 - 2.0 * PHI_E0 - obs, phi_d=obs, mask=mask,
                             pixel_size_nm=case.pixel_nm, origin_nm=(0.0, 0.0),
                             meta={"phi_e0": PHI_E0, "source": f"validation:{case.name}",
                                   "noise_sigma": sigma})
        meta["noise_sigma"] = sigma
    else:
        phi_h = np.clip(phi_d + PHI_E0, 0.0, None)
        density = np.where(mask, phi_h + PHI_E0, 0.0)
        locs = _blinking_localizations(density, case, rng)
        meta["n_localizations"] = len(locs)
    return SyntheticCase(case=case, rate=rate, phi_d=phi_d, phi_w=phi_w, mask=mask,
                         pixel_size_nm=case.pixel_nm, origin_nm=(0.0, 0.0), fields=fields,
                         localizations=locs, meta=meta)


def quick_version(case: Case, max_px: int = 64) -> Case:
    """A small version of a case: at most ``max_px`` pixels across at the same pixel size
    (the nucleus shrinks in proportion, to at most 80 % of the box, the family's length
    scale in proportion but by at most a half; domains keep their 0.3-1 um sizes and the
    fine structure its wavelength), with localizations scaled with the area (at least
    20,000).

    Parameters
    ----------
    case : Case
    max_px : int

    Returns
    -------
    Case
    """
    if case.size_px <= max_px:
        return case
    f = max_px / case.size_px
    nucleus = min(case.nucleus_um * f, 0.8 * max_px * case.pixel_nm / 1000.0)
    return replace(case, size_px=max_px, nucleus_um=nucleus,
                   length_um=case.length_um * max(f, 0.5),
                   n_localizations=max(20_000, int(case.n_localizations * f * f)))
