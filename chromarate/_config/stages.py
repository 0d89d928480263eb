"""Config models of the image stages (render, denoise, segment, phase) and of the
synthetic nucleus generator (simulate)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import _Model
from .fit import PhysicsConfig

__all__ = ["DenoiseConfig", "PhaseConfig", "RenderConfig", "SegmentConfig", "SimulateConfig"]


class RenderConfig(_Model):
    """Rendering localizations into a density map.

    Attributes
    ----------
    pixel_size_nm : float
        Side of a pixel of the density map before supersampling (default 20 nm).
    method : {"histogram", "gaussian"}
        ``histogram``: one count in the pixel holding each localization (default).
        ``gaussian``: each localization is a unit-mass 2-D Gaussian whose standard deviation
        is its ``precision_nm`` (or ``fixed_sigma_nm``), integrated over the pixels.
    padding_nm : float
        Margin added around the bounding box of the localizations.
    fixed_sigma_nm : float or None
        ``gaussian`` only: one sigma (nm) for every localization instead of the
        ``precision_nm`` column. When None and the table has no ``precision_nm`` column,
        :data:`chromarate.render.FALLBACK_SIGMA_NM` (20 nm) is used and ``meta`` says so.
    min_sigma_nm : float
        ``gaussian`` only: floor applied to every sigma (0 = none).
    sigma_tolerance : float
        ``gaussian`` only: bound on the L1 error of each rendered Gaussian (fraction of
        its mass) from splitting localizations between sigma classes (default 0.01);
        smaller values use more classes. See :mod:`chromarate.render`.
    supersample : int
        Render on a grid of ``pixel_size_nm / supersample``: the output pixel size becomes
        ``pixel_size_nm / supersample`` and the shape ``supersample`` times larger per
        axis (the coarse grid lines are kept, so summing ``supersample x supersample``
        blocks of a histogram gives the plain histogram). Default 1.
    """

    pixel_size_nm: float = Field(20.0, gt=0.5, le=1000.0)
    method: Literal["histogram", "gaussian"] = "histogram"
    padding_nm: float = Field(200.0, ge=0.0, le=1e5)
    fixed_sigma_nm: float | None = Field(None, gt=0.0, le=1e4)
    min_sigma_nm: float = Field(0.0, ge=0.0, le=1e4)
    sigma_tolerance: float = Field(0.01, ge=1e-5, le=0.05)
    supersample: int = Field(1, ge=1, le=32)


class DenoiseConfig(_Model):
    """Denoising of a density map.

    Attributes
    ----------
    method : {"gaussian", "nl_means", "tv", "none"}
        ``gaussian`` (default): Gaussian filter, conserves the total count.
        ``nl_means``: non-local means (scikit-image ``denoise_nl_means``).
        ``tv``: total-variation denoising (scikit-image ``denoise_tv_chambolle``),
        keeps edges sharp.
    sigma_nm : float or "auto"
        ``gaussian`` only: standard deviation of the filter in nm. ``"auto"`` takes
        ``meta["resolution_nm"]`` of the density map (an FRC resolution, a FWHM) divided by
        2.355, or 20 nm when the map has none; the choice is recorded in ``meta``.
    noise_sigma : float or None
        ``nl_means`` and ``tv``: standard deviation of the noise in counts per pixel;
        None (default) estimates it with scikit-image ``estimate_sigma`` (or, when
        PyWavelets is not installed, with the same estimator on Haar wavelet details).
    nlm_patch_size_nm, nlm_patch_distance_nm : float
        ``nl_means``: side of the compared patches and the search distance, in nm
        (converted to whole pixels, at least 1).
    nlm_h : float
        ``nl_means``: cut-off distance of patch weights in units of ``noise_sigma``
        (default 1.0; larger smooths more).
    tv_weight : float
        ``tv``: denoising weight in units of ``noise_sigma`` (default 2.0; larger smooths more; the
        absolute weight passed to scikit-image is ``tv_weight * noise_sigma``).
    """

    method: Literal["gaussian", "nl_means", "tv", "none"] = "gaussian"
    sigma_nm: float | Literal["auto"] = Field(20.0)
    noise_sigma: float | None = Field(None, gt=0.0)
    nlm_patch_size_nm: float = Field(100.0, gt=0.0, le=1e5)
    nlm_patch_distance_nm: float = Field(200.0, gt=0.0, le=1e5)
    nlm_h: float = Field(1.0, gt=0.0, le=100.0)
    tv_weight: float = Field(2.0, gt=0.0, le=1e4)

    @model_validator(mode="after")
    def _check_sigma(self) -> "DenoiseConfig":
        if not isinstance(self.sigma_nm, str) and not 0.0 <= self.sigma_nm <= 5000.0:
            raise ValueError("denoise.sigma_nm must be 'auto' or in [0, 5000] nm")
        return self


class SegmentConfig(_Model):
    """Segmentation of nuclei from a density map.

    Attributes
    ----------
    smooth_sigma_nm : float
        Gaussian smoothing before thresholding.
    threshold : "otsu", "triangle", "li" or float
        Global threshold of the smoothed map: Otsu's (default; two classes of similar
        spread), the triangle method (for maps that are mostly empty background with
        objects of very different brightness, e.g. sparse fields of view), Li's minimum
        cross-entropy, or a fixed fraction of the smoothed maximum (0-1).
    min_area_um2 : float
        Smallest accepted nucleus area.
    max_area_um2 : float or None
        Largest accepted nucleus area (None: no limit).
    fill_holes : bool
    opening_nm : float
        Radius (nm) of the disk of a binary opening after hole filling; 0 (default) skips
        it. Removes thin bridges and spurs narrower than about twice the radius.
    exclude_border : bool
        Drop objects that touch the image border (cut-off nuclei).
    split_touching : bool
        Split touching nuclei with a watershed of the distance transform.
    split_depth_nm : float
        A neck must be at least this much narrower (distance-transform depth, nm) than the
        cores on both sides for ``split_touching`` to cut it; smaller splits more.
    crop_margin_px : int
        Margin around each nucleus' bounding box in the crops of ``segment_nuclei``.
    """

    smooth_sigma_nm: float = Field(150.0, gt=0.0, le=1e4)
    threshold: Literal["otsu", "triangle", "li"] | float = "otsu"
    min_area_um2: float = Field(1.0, ge=0.0)
    max_area_um2: float | None = Field(None, gt=0.0)
    fill_holes: bool = True
    opening_nm: float = Field(0.0, ge=0.0, le=1e5)
    exclude_border: bool = False
    split_touching: bool = False
    split_depth_nm: float = Field(300.0, gt=0.0, le=1e5)
    crop_margin_px: int = Field(10, ge=0, le=10_000)

    @model_validator(mode="after")
    def _check_threshold(self) -> "SegmentConfig":
        if not isinstance(self.threshold, str) and not 0.0 < self.threshold < 1.0:
            raise ValueError(
                "segment.threshold must be 'otsu', 'triangle', 'li' or a fraction in (0, 1)")
        if self.max_area_um2 is not None and self.max_area_um2 <= self.min_area_um2:
            raise ValueError("segment.max_area_um2 must be larger than segment.min_area_um2")
        return self


class PhaseConfig(_Model):
    """Observation model that turns density into phase fields (docs/design.md section 6).

    Attributes
    ----------
    phi_e0 : float
        Constant euchromatin fraction.
    baseline_percentile : float
        Percentile of the density inside the nucleus taken as the euchromatin baseline.
    erode_nm : float
        Only pixels this far inside the mask are used to estimate the baseline.
    baseline_scale : float
        Multiplier of the percentile baseline: ``rho_eu = baseline_scale * percentile``.
        Used as given when ``calibration`` is ``"none"``; the pipeline's physics
        calibration replaces it per nucleus.
    calibration : {"physics", "physics_censored", "none"}
        ``physics`` (default): the pipeline chooses ``baseline_scale`` per nucleus as the
        one that makes the fields the steadiest state of the model for a smooth rate
        (:func:`chromarate.fit.calibrate.calibrate_scale`); the percentile alone is
        15-18 % too high on simulated nuclei and biases the mean rate 20-24 % low.
        ``physics_censored``: the same with the pixels clipped at ``phi_max`` left out of
        the steadiness misfit (their true value is only known to exceed the bound), and
        the two halves of the localizations mapped at the whole nucleus' scale. Studied,
        not the default: on twelve fresh rendered nuclei it brings the mean rate's RMS
        bias from 7.5 % to 4.6 %, but costs the heterochromatin-tied nuclei r 0.09-0.19
        on four of six (docs/validation-studies.md).
        ``none``: ``baseline_scale`` as given.
    censored_level : {"at_bound", "always", "never"}
        ``at_bound`` (default): where the ``physics`` calibration's minimum is pinned at
        its clipping bound (the next smaller scale clips more than 15 % of the nucleus at
        ``phi_max``), the rate's pattern is fitted at the calibrated scale and its level,
        the mean, moves towards the scale the misfit with the clipped pixels censored
        chooses: the fitted rate and its ``rate_std`` are multiplied by the ratio of the
        windowed closed form's mean rate at the two scales (``level_ratio`` in the
        calibration record) raised to ``censored_level_share`` (``level_factor``). There
        the clipped plateaus, which look steady, pull the scale low and the mean rate
        high, while the censored scale, which leaves them out, costs the pattern
        (docs/validation-studies.md). A ratio further than 25 % from 1 is not applied (the
        record's ``level_skipped`` says so); the halves of the localizations are not
        levelled. ``always``: the same on every calibrated nucleus (studied). ``never``:
        the rate as fitted at the calibrated scale.
    censored_level_share : float
        How far, in ratio, the level moves from the calibrated scale's towards the
        censored scale's where ``censored_level`` applies: the factor is the ratio of the
        two means raised to this power (0.5, default: halfway; 1: the censored scale's
        level). The two levels err on opposite sides (the clipped plateaus pull the
        calibrated one high; leaving the clipped pixels out keeps near the bound only the
        pixels whose noise was negative and pulls the censored one low, the more so the
        noisier the data): on pinned ``simulate`` nuclei the full step took the mean
        3-5 % low on average at 250k localizations and 7.6 % low at 100k (-12.8 ...
        +3.2 %), halfway within 1.2 % of the truth on average (the heterochromatin-tied
        rendered nuclei, +10.6 % before the level, are +1.9 % with the full step and
        +6.2 % halfway; docs/validation-studies.md).
    background : {"ring", "none"}
        ``ring`` (default): the pipeline subtracts, before phase mapping, the mean raw
        density of a ring around the nucleus, ``background_gap_nm`` clear of it and of
        every other object segmentation found (dropped ones included) and
        ``background_width_nm`` wide, inside the acquisition's data
        (:func:`chromarate.background.ring_background`): localizations that are not
        chromatin add a level inside the nucleus that the one-parameter density scale
        cannot absorb. A level above half the nucleus' baseline percentile is not
        subtracted (:func:`chromarate.background.limit_to_baseline`). ``none``: no
        subtraction.
    background_gap_nm, background_width_nm : float
        The ring's distance from the nuclei and its width (nm).

    ``phi_h`` is clipped at the model's ``phi_max``, which is not a phase setting: it is
    ``fit.physics.phi_max``, passed to :func:`chromarate.phase.phase_fields` by the
    pipeline (older configs also gave it as ``phase.phi_max``, which
    :class:`~chromarate.config.PipelineConfig` still reads).
    """

    phi_e0: float = Field(0.2, gt=0.0, lt=0.5)
    baseline_percentile: float = Field(5.0, ge=0.0, lt=100.0)
    erode_nm: float = Field(100.0, ge=0.0)
    baseline_scale: float = Field(1.0, gt=0.05, le=20.0)
    calibration: Literal["physics", "physics_censored", "none"] = "physics"
    censored_level: Literal["at_bound", "always", "never"] = "at_bound"
    censored_level_share: float = Field(0.5, ge=0.0, le=1.0)
    background: Literal["ring", "none"] = "ring"
    background_gap_nm: float = Field(300.0, ge=0.0, le=1e5)
    background_width_nm: float = Field(1000.0, gt=0.0, le=1e5)

    @model_validator(mode="before")
    @classmethod
    def _no_phi_max(cls, data: Any) -> Any:
        if isinstance(data, dict) and "phi_max" in data:
            raise ValueError(
                "phi_max is not a phase setting any more: it is the model's constant "
                "fit.physics.phi_max, which the pipeline passes to the phase stage (call "
                "chromarate.phase.phase_fields(..., phi_max=...) directly); a pipeline "
                "config still reads an older phase.phi_max")
        return data


class SimulateConfig(_Model):
    """Synthetic nucleus generation (forward model + observation model in reverse)."""

    shape: tuple[int, int] = (256, 256)
    pixel_size_nm: float = Field(20.0, gt=0.5, le=1000.0)
    nucleus_radii_um: tuple[float, float] = (2.3, 2.0)
    rate_range: tuple[float, float] = (1.0, 2.4)
    rate_length_um: float = Field(1.5, gt=0.0)
    phi_e0: float = Field(0.2, gt=0.0, lt=0.5)
    n_localizations: int = Field(250_000, ge=100)
    precision_nm: tuple[float, float] = (10.0, 20.0)
    background_fraction: float = Field(0.03, ge=0.0, lt=1.0)
    n_frames: int = Field(20_000, ge=1)
    tolerance: float = Field(1e-3, gt=0.0)
    max_steps: int = Field(200_000, ge=1)
    seed: int = Field(0, ge=0)
    physics: PhysicsConfig = PhysicsConfig()

    @model_validator(mode="after")
    def _check_ranges(self) -> "SimulateConfig":
        if min(self.shape) < 16:
            raise ValueError(f"shape must be at least 16 x 16 pixels, got {self.shape}")
        low, high = self.rate_range
        if not 0 < low <= high:
            raise ValueError(f"rate_range must be LOW HIGH with 0 < LOW <= HIGH, got "
                             f"{self.rate_range}")
        return self
