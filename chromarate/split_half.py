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
from .render import render_density
from .resolution import split_halves

__all__ = ["half_density_maps", "half_labels"]

#: Fewer localizations than this in either half: no split (the halves' maps are noise).
MIN_HALF_LOCALIZATIONS = 1000
#: Margin (nm) rendered around a crop for denoisers without a Gaussian width, and beyond
#: the margin for the localizations a Gaussian rendering spreads into the crop.
EXTRA_MARGIN_NM = 200.0


def half_labels(locs: Localizations, *, seed: int = 0) -> np.ndarray | None:
    """Half label (0 or 1) of every localization, or None when the localizations cannot be
    split into two halves of at least ``MIN_HALF_LOCALIZATIONS`` (too few, frames that are
    not numeric, or frames that span a single block)."""
    try:
        side = split_halves(locs.table, seed=seed)
    except StageError:
        return None
    if np.bincount(side, minlength=2).min() < MIN_HALF_LOCALIZATIONS:
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

    Returns
    -------
    (DensityMap, DensityMap) or None
        None when the localizations cannot be split (:func:`half_labels`).

    Notes
    -----
    Each half is rendered on the crop widened by the smoothing's reach (four Gaussian
    widths, or ``EXTRA_MARGIN_NM`` for the other denoisers), denoised and cut back, so a
    Gaussian-smoothed half equals the same half of the whole map's smoothing away from the
    whole map's border.
    """
    side = half_labels(locs, seed=seed) if side is None else np.asarray(side)
    if side is None:
        return None
    ny, nx = crop.data.shape
    p = float(crop.pixel_size_nm)
    y0, x0 = (float(v) for v in crop.origin_nm)
    denoise = config.denoise
    used = (crop.meta.get("denoise") or {}).get("sigma_nm")
    if denoise.sigma_nm == "auto" and used is not None:
        denoise = denoise.model_copy(update={"sigma_nm": float(used)})
    sigma = denoise.sigma_nm if isinstance(denoise.sigma_nm, (int, float)) else 0.0
    reach = 4.0 * float(sigma) if denoise.method == "gaussian" else EXTRA_MARGIN_NM
    m = int(math.ceil(reach / p))
    bounds = ((y0 - m * p, x0 - m * p), (y0 + (ny + m) * p, x0 + (nx + m) * p))
    table = locs.table
    y, x = table["y_nm"].to_numpy(), table["x_nm"].to_numpy()
    near = ((y >= bounds[0][0] - EXTRA_MARGIN_NM) & (y < bounds[1][0] + EXTRA_MARGIN_NM)
            & (x >= bounds[0][1] - EXTRA_MARGIN_NM) & (x < bounds[1][1] + EXTRA_MARGIN_NM))
    halves = []
    for h in (0, 1):
        rows = near & (side == h)
        if not rows.any():
            return None
        part = Localizations(table=table.loc[rows].reset_index(drop=True), meta=dict(locs.meta))
        try:
            rendered = render_density(part, config.render, bounds_nm=bounds)
        except StageError:
            return None
        if rendered.data.shape[0] < ny + 2 * m or rendered.data.shape[1] < nx + 2 * m:
            return None
        smooth = denoise_density(rendered, denoise)
        halves.append(replace(smooth, data=np.ascontiguousarray(smooth.data[m:m + ny, m:m + nx]),
                              origin_nm=(y0, x0)))
    return halves[0], halves[1]
