"""Two independent halves of an acquisition, rendered like the whole (for the quality gate).

The localizations are split as Fourier ring correlation splits them
(:func:`chromarate.resolution.split_halves`: blocks of frames, so the repeats of one
blinking molecule stay in one half), and each half is rendered on the grid of one
nucleus' crop of the whole map (plus a margin for the smoothing) and denoised with the
smoothing the whole map got, so the check adds two crop-sized maps per nucleus, not two
whole maps. The pipeline maps each half to phase fields and inverts it with the settings
the fit chose; how well the two rate maps agree says how much of the map is set by the
data rather than by their noise (:func:`chromarate.quality.attainable_r`). Thin:
rendering and denoising are the stages' own functions.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ._types import DensityMap, Localizations
from .config import PipelineConfig
from .denoise import denoise_density
from .errors import StageError
from .render import FALLBACK_SIGMA_NM, render_density
from .resolution import split_halves

__all__ = ["half_density_maps", "half_labels"]

#: Fewer localizations than this in either half: no split (the halves' maps are noise).
MIN_HALF_LOCALIZATIONS = 1000
#: Margin (nm) rendered around a crop for denoisers without a Gaussian width.
EXTRA_MARGIN_NM = 200.0
#: Most a Gaussian rendering's spread (nm) widens the rendered region of a half (a table
#: with absurd precisions does not render a huge grid).
MAX_RENDER_REACH_NM = 400.0


def half_labels(locs: Localizations, *, seed: int = 0) -> np.ndarray | None:
    """Half label (0 or 1) of every localization, or None when there is no honest split.

    Parameters
    ----------
    locs : Localizations
        Needs a numeric ``frame`` column: the halves are blocks of frames
        (:func:`chromarate.resolution.split_halves`), so the repeated localizations of one
        blinking molecule stay in one half.
    seed : int
        Seed of the random assignment of blocks to halves.

    Returns
    -------
    numpy.ndarray or None
        int8 labels, one per row; None when the table has no ``frame`` column (a split of
        single localizations puts the repeats of one molecule in both halves, and the
        halves would agree better than independent acquisitions do), when the frames are
        not numeric and finite or span a single block, or when either half would hold fewer
        than ``MIN_HALF_LOCALIZATIONS``.
    """
    if "frame" not in locs.table.columns:
        return None
    try:
        side = split_halves(locs.table, seed=seed)
    except (StageError, ValueError, IndexError):
        return None
    if side.size == 0 or np.bincount(side, minlength=2).min() < MIN_HALF_LOCALIZATIONS:
        return None
    return side


def half_density_maps(locs: Localizations, crop: DensityMap, config: PipelineConfig = PipelineConfig(),
                      *, side: np.ndarray | None = None, seed: int = 0
                      ) -> tuple[DensityMap, DensityMap] | None:
    """Render and denoise two independent halves of ``locs`` on the grid of ``crop``.

    Parameters
    ----------
    locs : Localizations
        The localizations the whole map was rendered from (after filtering and drift).
    crop : DensityMap
        A crop of the whole denoised map (:func:`chromarate.pipeline.crop_density`): the
        halves get its grid, and the smoothing recorded in its ``meta["denoise"]["sigma_nm"]``
        (which resolves ``denoise.sigma_nm="auto"`` to the value the whole map used).
    config : PipelineConfig
        ``render`` and ``denoise`` settings.
    side : numpy.ndarray, optional
        Half labels from :func:`half_labels` (computed once per acquisition); default:
        computed here with ``seed``.
    seed : int
        Seed of the split when ``side`` is not given.

    Returns
    -------
    (DensityMap, DensityMap) or None
        None when the localizations cannot be split (:func:`half_labels`).

    Notes
    -----
    Each half is rendered on the crop widened by the smoothing's reach (four Gaussian
    widths, or ``EXTRA_MARGIN_NM`` for the other denoisers) and, for a Gaussian rendering,
    by four rendering widths more (so localizations just outside still spread in), then
    denoised and cut back: a Gaussian-smoothed half equals the same half of the whole map's
    smoothing away from the whole map's border. ``nl_means`` and ``tv`` with
    ``noise_sigma=None`` estimate each half's noise from the half (it is larger than the
    whole map's, as it should be for an acquisition of half the length); an explicit
    ``noise_sigma`` is scaled by 1/sqrt(2), the Poisson noise of half the counts.
    """
    side = half_labels(locs, seed=seed) if side is None else np.asarray(side)
    if side is None:
        return None
    ny, nx = crop.data.shape
    p = float(crop.pixel_size_nm)
    y0, x0 = (float(v) for v in crop.origin_nm)
    denoise = _half_denoise(config, crop)
    sigma = denoise.sigma_nm if isinstance(denoise.sigma_nm, (int, float)) else 0.0
    reach = 4.0 * float(sigma) if denoise.method == "gaussian" else EXTRA_MARGIN_NM
    m = int(math.ceil(reach / p))
    bounds = ((y0 - m * p, x0 - m * p), (y0 + (ny + m) * p, x0 + (nx + m) * p))
    # localizations a Gaussian rendering spreads into the bounds from outside them
    spread = _render_reach_nm(locs, config)
    table = locs.table
    y, x = table["y_nm"].to_numpy(), table["x_nm"].to_numpy()
    near = ((y >= bounds[0][0] - spread) & (y < bounds[1][0] + spread)
            & (x >= bounds[0][1] - spread) & (x < bounds[1][1] + spread))
    k = int(math.ceil(spread / p))  # whole crop pixels rendered beyond the bounds
    wide = ((bounds[0][0] - k * p, bounds[0][1] - k * p),
            (bounds[1][0] + k * p, bounds[1][1] + k * p))
    halves = []
    for h in (0, 1):
        rows = near & (side == h)
        if not rows.any():
            return None
        part = Localizations(table=table.loc[rows].reset_index(drop=True), meta=dict(locs.meta))
        try:
            rendered = render_density(part, config.render, bounds_nm=wide)
        except StageError:
            return None
        c = m + k  # the crop's first row and column in the rendered grid
        if rendered.data.shape[0] < ny + 2 * c or rendered.data.shape[1] < nx + 2 * c:
            return None
        smooth = denoise_density(rendered, denoise)
        halves.append(replace(smooth, data=np.ascontiguousarray(smooth.data[c:c + ny, c:c + nx]),
                              origin_nm=(y0, x0)))
    return halves[0], halves[1]


def _half_denoise(config: PipelineConfig, crop: DensityMap):
    """The whole map's denoising settings for a half: ``sigma_nm="auto"`` resolved to the
    width the whole map used, and an explicit ``noise_sigma`` scaled by 1/sqrt(2) (a half
    has half the counts, so its Poisson noise in counts is 1/sqrt(2) of the whole map's)."""
    denoise = config.denoise
    used = (crop.meta.get("denoise") or {}).get("sigma_nm")
    if denoise.sigma_nm == "auto" and used is not None:
        denoise = denoise.model_copy(update={"sigma_nm": float(used)})
    if denoise.noise_sigma is not None:
        denoise = denoise.model_copy(update={"noise_sigma": float(denoise.noise_sigma) * math.sqrt(0.5)})
    return denoise


def _render_reach_nm(locs: Localizations, config: PipelineConfig) -> float:
    """How far (nm) a rendering spreads a localization: four of its Gaussian widths (the
    99th percentile of ``precision_nm``, capped at ``MAX_RENDER_REACH_NM``), 0 for
    histograms."""
    render = config.render
    if render.method != "gaussian":
        return 0.0
    if render.fixed_sigma_nm is not None:
        sigma = float(render.fixed_sigma_nm)
    elif "precision_nm" in locs.table.columns:
        prec = locs.table["precision_nm"].to_numpy(dtype=np.float64)
        prec = prec[np.isfinite(prec)]
        sigma = float(np.percentile(prec, 99)) if prec.size else 0.0
    else:
        sigma = FALLBACK_SIGMA_NM
    sigma = max(sigma, float(render.min_sigma_nm))
    return float(min(4.0 * sigma, MAX_RENDER_REACH_NM))
