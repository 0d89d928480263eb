"""Typed, versioned configuration: one pydantic model per stage, composed into
:class:`PipelineConfig`, with YAML load/dump.

Every model forbids unknown keys and can be built with no arguments, which gives the
documented defaults. ``PipelineConfig.version`` is the schema version of the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

__all__ = [
    "CONFIG_VERSION",
    "DenoiseConfig",
    "DriftConfig",
    "FilterConfig",
    "FitConfig",
    "MollifierConfig",
    "NetworkConfig",
    "PhaseConfig",
    "PhysicsConfig",
    "PipelineConfig",
    "RenderConfig",
    "SegmentConfig",
    "SimulateConfig",
    "config_hash",
    "load_config",
    "dump_config",
]

#: Schema version written into every pipeline config and result.
CONFIG_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


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
    phi_max : float
        Upper clip of phi_h; must equal ``fit.physics.phi_max``.
    baseline_percentile : float
        Percentile of the density inside the nucleus taken as the euchromatin baseline.
    erode_nm : float
        Only pixels this far inside the mask are used to estimate the baseline.
    baseline_scale : float
        Multiplier of the percentile baseline: ``rho_eu = baseline_scale * percentile``.
        Used as given when ``calibration`` is ``"none"``; the pipeline's physics
        calibration replaces it per nucleus.
    calibration : {"physics", "none"}
        ``physics`` (default): the pipeline chooses ``baseline_scale`` per nucleus as the
        one that makes the fields the steadiest state of the model for a smooth rate
        (:func:`chromarate.fit.calibrate.calibrate_scale`); the percentile alone is
        15-18 % too high on simulated nuclei and biases the mean rate 20-24 % low.
        ``none``: ``baseline_scale`` as given.
    """

    phi_e0: float = Field(0.2, gt=0.0, lt=0.5)
    phi_max: float = Field(0.7, gt=0.0, le=1.0)
    baseline_percentile: float = Field(5.0, ge=0.0, lt=100.0)
    erode_nm: float = Field(100.0, ge=0.0)
    baseline_scale: float = Field(1.0, gt=0.05, le=20.0)
    calibration: Literal["physics", "none"] = "physics"


class PhysicsConfig(_Model):
    """Parameters of the chromatin phase-field model (lengths in um, time in 1/Gamma_ac)."""

    phi_max: float = Field(0.7, gt=0.0, le=1.0)
    interface_um: float = Field(0.03, gt=0.0, le=10.0)
    mobility: float = Field(1.0, gt=0.0, le=1e6)


class MollifierConfig(_Model):
    """The mollifier layer.

    Attributes
    ----------
    kernel : {"bump", "wendland"}
        Smooth compact weight of the kernels.
    radius_px : float or "auto"
        Kernel radius in pixels; "auto" picks it from a noise estimate of the data.
    degree : int or None
        Degree of the polynomials every kernel reproduces exactly; None (default) means the
        highest derivative order + 2 (= 6 for the fourth-order chromatin model).
    method : {"auto", "direct", "fft"}
        Convolution path.
    """

    kernel: Literal["bump", "wendland"] = "bump"
    radius_px: float | Literal["auto"] = "auto"
    degree: int | None = Field(None, ge=4, le=10)
    method: Literal["auto", "direct", "fft"] = "auto"

    @model_validator(mode="after")
    def _check_radius(self) -> "MollifierConfig":
        if not isinstance(self.radius_px, str) and not 2.0 <= self.radius_px <= 64.0:
            raise ValueError("mollifier.radius_px must be 'auto' or in [2, 64] pixels")
        return self


class NetworkConfig(_Model):
    """Network for the field phi_d (MLP with random Fourier features).

    Attributes
    ----------
    width, depth : int
        Hidden width and number of hidden layers.
    fourier_features : int
        Number of random Fourier frequencies (0 for a plain MLP).
    fourier_scale_per_um : float
        Standard deviation of the frequencies in cycles per um.
    parameterization : {"anchored", "free"}
        ``anchored``: the field is the observation plus the network's correction (starts at
        the data, converges in hundreds of steps); ``free``: the network alone (classic PINN).
    architecture : {"fourier_mlp", "mlp", "pirate"}
        MLP with random Fourier features, plain MLP, or PirateNet (``depth`` blocks).
    evaluation_stride : int or "auto"
        The networks are evaluated on a lattice of every ``stride``-th pixel and carried to
        the pixel grid by bicubic interpolation (weak form). Their outputs are smooth (the
        field network learns a low-frequency correction to the denoised anchor, the rate
        network is low-frequency by construction) and the mollifier averages over many
        lattice cells, so this costs little accuracy and divides the network work by
        ``stride^2``. "auto": a third of the mollifier radius, but at least four lattice
        points per wavelength of the field network's finest typical frequency
        (``3 fourier_scale_per_um``); 1 at 20 nm pixels with a small radius.
    """

    width: int = Field(64, ge=4, le=4096)
    depth: int = Field(3, ge=1, le=32)
    fourier_features: int = Field(64, ge=0, le=4096)
    fourier_scale_per_um: float = Field(2.0, gt=0.0, le=1e3)
    parameterization: Literal["anchored", "free"] = "anchored"
    architecture: Literal["fourier_mlp", "mlp", "pirate"] = "fourier_mlp"
    evaluation_stride: int | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _check_stride(self) -> "NetworkConfig":
        if not isinstance(self.evaluation_stride, str) and not 1 <= self.evaluation_stride <= 16:
            raise ValueError("network.evaluation_stride must be 'auto' or in [1, 16]")
        return self


class FitConfig(_Model):
    """Rate inference.

    Attributes
    ----------
    method : {"pinn", "direct"}
        Mollifier-layer PINN, or the closed-form inversion.
    residual_form : {"weak", "strong"}
        ``weak``: all derivatives on the mollifier kernels (noise-robust, default);
        ``strong``: derivatives of the mollified fields combined by the chain rule.
    derivative_backend : {"mollifier", "autograd", "finite-difference", "spectral"}
        Where the PINN's derivatives come from. Only the mollifier (default) supports the
        weak form and the anchored field; the others (nested autograd, the standard PINN;
        finite differences; FFT) are for like-for-like comparisons and need
        ``residual_form="strong"`` and ``network.parameterization="free"``.
    steps : int
        Adam steps with the strong prior; with ``regularisation`` not ``manual`` a weaker
        prior trains up to four times as many (see :mod:`chromarate.fit.regularise`).
    learning_rate : float
        Adam step of the field network (cosine schedule to zero).
    rate_learning_rate_factor : float
        The rate network's step is this many times ``learning_rate``.
    data_weight, residual_weight : float
        Weights of the data misfit and the PDE residual.
    rate_smoothness : float
        Weight of the gradient penalty on lambda (per um^2); used as given only with
        ``regularisation="manual"``, otherwise chosen per nucleus. The default (1.0, with 0.3 um
        test windows) is set for phase fields from rendered STORM densities, whose noise is
        spatially correlated by rendering and denoising (measured on the sample nucleus:
        r = 0.927 against 0.221 with 1e-3 and 0.15 um windows). For fields with white pixel
        noise a weak prior recovers more detail: ``rate_smoothness=1e-3,
        test_window_um=0.15`` gives r = 0.99 / 0.96 / 0.95 at 0 / 1 / 5 % noise in
        experiments/recovery.py, where 1.0 flattens lambda (r = 0.76 at 5 %).
    rate_fourier_features : int
    rate_fourier_scale_per_um : float
        Random Fourier features of the rate network; a small scale keeps lambda smooth.
    seed : int
        Seed of every random choice of the fit (stored in results).
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    dtype : {"float32", "float64"}
    log_every : int
    lbfgs_steps : int
        L-BFGS iterations after Adam (0: none).
    early_stopping_patience : int or None
        Stop Adam when the loss has not improved by 0.1 % over this many steps.
    ensemble : int
        Number of fits with seeds ``seed, seed + 1, ...`` giving ``rate_std``, the
        uncertainty map (see ``uncertainty``).
    uncertainty : {"bootstrap", "seeds"}
        ``bootstrap`` (default): member 0 fits the data and gives the rate; every other
        member fits a parametric-bootstrap replicate (denoised fields plus fresh noise at
        the data's local noise level) and ``rate_std`` is their RMS deviation from the
        rate, so it is larger where the data are noisier. ``seeds``: all members fit the
        data with different initialisations; rate = mean, ``rate_std`` = their standard
        deviation (optimisation spread only).
    patch_size : int or None
        Train on random ``patch_size`` x ``patch_size`` windows (plus the kernel halo) when
        the grid is larger, so peak memory depends on the patch, not the image.
    mixed_precision : bool
        bfloat16 autocast of the networks on CUDA (kernels and losses stay in ``dtype``).
    field_prior : {"tv", "none"}
        Denoising of the observed fields before the physics sees them: ``tv`` (default)
        anchors the PINN (and feeds the closed form) with total-variation denoised fields,
        weight ``field_prior_strength`` times the estimated pixel noise. The data term still
        compares with the raw observation.
    field_prior_strength : float
        Multiplier of the noise estimate giving the TV weight.
    test_window_um : float or None
        Standard deviation (um) of the Gaussian test functions the residual is integrated
        against (a Petrov-Galerkin weak form): the PINN scores ``G * (w r)`` instead of the
        pointwise residual, and the closed form takes lambda as constant over the window (a
        local least-squares fit). Integrating against smooth test functions moves the
        fourth-order derivatives off the noise. None: pointwise residual and closed form.
    regularisation : {"steadiness", "pixel_noise", "manual"}
        How ``rate_smoothness`` and ``test_window_um`` are set. ``steadiness`` (default):
        per nucleus, from the share of the weak residual that no smooth rate explains
        (:mod:`chromarate.fit.regularise`); ``pixel_noise``: from a white-noise estimate of
        the pixel noise (kept for comparison; it under-regularises rendered densities);
        ``manual``: the two values as given. The chosen values are stored in
        ``FitResult.meta["regularisation"]``, the result's provenance and summary.csv.
    rate_prior : {"balance", "flat"}
        What the smoothness penalty pulls the rate towards: ``balance`` (default) penalises
        the gradient of the rate's difference from the local balance estimate
        ``G * phi_h / G * phi_e`` over windows of one domain spacing (at least the test
        window), which needs no derivative of the data
        (:func:`chromarate.fit.prior.balance_rate`); ``flat`` the gradient of lambda itself.
        With the strong prior that noisy rendered densities get, the balance prior keeps
        the rate from following noise in the fourth-order term (measured with the default
        pipeline on `chromarate simulate` seeds 0 and 1, where it was chosen: r = 0.976 /
        0.845 against 0.963 / 0.361 with ``flat``; on seeds 2-5, not looked at while
        choosing: 0.944 / 0.900 / 0.948 / 0.474, experiments/cli_seeds.py).
    pretrain_steps : int
        Data-only Adam steps that fit a *free* field network to the observation (values at
        the pixel centres, no derivatives) before the joint fit: the usual warm start of a
        classic PINN, identical for every derivative backend. 0 (default): none. The
        anchored field starts at the data and needs none.
    """

    method: Literal["pinn", "direct"] = "pinn"
    residual_form: Literal["weak", "strong"] = "weak"
    derivative_backend: Literal["mollifier", "autograd", "finite-difference", "spectral"] = "mollifier"
    physics: PhysicsConfig = PhysicsConfig()
    mollifier: MollifierConfig = MollifierConfig()
    network: NetworkConfig = NetworkConfig()
    steps: int = Field(250, ge=1, le=10_000_000)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    rate_learning_rate_factor: float = Field(3.0, gt=0.0, le=1000.0)
    data_weight: float = Field(1.0, ge=0.0)
    residual_weight: float = Field(1.0, ge=0.0)
    rate_smoothness: float = Field(1.0, ge=0.0)
    rate_fourier_features: int = Field(32, ge=0, le=1024)
    rate_fourier_scale_per_um: float = Field(0.3, gt=0.0, le=100.0)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    log_every: int = Field(25, ge=1)
    lbfgs_steps: int = Field(0, ge=0, le=100_000)
    early_stopping_patience: int | None = Field(None, ge=1)
    ensemble: int = Field(1, ge=1, le=64)
    uncertainty: Literal["bootstrap", "seeds"] = "bootstrap"
    patch_size: int | None = Field(None, ge=16, le=8192)
    mixed_precision: bool = False
    field_prior: Literal["tv", "none"] = "tv"
    field_prior_strength: float = Field(1.0, ge=0.0, le=100.0)
    test_window_um: float | None = Field(0.3, gt=0.0, le=100.0)
    pretrain_steps: int = Field(0, ge=0, le=1_000_000)
    regularisation: Literal["steadiness", "pixel_noise", "manual"] = "steadiness"
    rate_prior: Literal["flat", "balance"] = "balance"

    @model_validator(mode="after")
    def _check_backend(self) -> "FitConfig":
        fields = type(self).model_fields
        if self.regularisation != "manual" and (
                self.rate_smoothness != fields["rate_smoothness"].default
                or self.test_window_um != fields["test_window_um"].default):
            raise ValueError(
                f"fit.rate_smoothness and fit.test_window_um are chosen per nucleus when "
                f"fit.regularisation is {self.regularisation!r}; to set them yourself "
                "(e.g. rate_smoothness 0.001, test_window_um 0.15) also set "
                "fit.regularisation: manual")
        if self.pretrain_steps and self.network.parameterization != "free":
            raise ValueError("fit.pretrain_steps fits a free field network to the data; the "
                             "anchored field already starts at the data (set "
                             "network.parameterization 'free' or pretrain_steps 0)")
        if self.derivative_backend != "mollifier" and (
                self.residual_form != "strong" or self.network.parameterization != "free"):
            raise ValueError(
                f"fit.derivative_backend {self.derivative_backend!r} differentiates the network "
                "itself: it needs residual_form 'strong' and network.parameterization 'free' "
                "(the weak form and the anchored field need the mollifier)")
        return self


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


class FilterConfig(_Model):
    """Filtering and blinking merge of a localization table (every filter is off by default).

    Attributes
    ----------
    max_precision_nm : float or None
        Keep rows with ``precision_nm <= max_precision_nm`` (NaN precision is removed).
    min_photons : float or None
        Keep rows with ``photons >= min_photons`` (NaN photons are removed).
    frame_range : (int, int) or None
        Keep rows with ``start <= frame < stop`` (0-based, half-open).
    region_nm : ((y0, x0), (y1, x1)) or None
        Keep rows with ``y0 <= y_nm < y1`` and ``x0 <= x_nm < x1`` (half-open, like pixels).
    merge_blinking : bool
        After filtering, merge localizations of one blinking event (see
        :func:`chromarate.filtering.merge_blinking`).
    merge_radius_nm : float
        Largest distance between linked localizations of one event.
    merge_max_gap_frames : int
        Number of missing frames allowed inside one event (0: strictly consecutive frames).
    """

    max_precision_nm: float | None = Field(None, gt=0.0)
    min_photons: float | None = Field(None, ge=0.0)
    frame_range: tuple[int, int] | None = None
    region_nm: tuple[tuple[float, float], tuple[float, float]] | None = None
    merge_blinking: bool = False
    merge_radius_nm: float = Field(30.0, gt=0.0, le=1e4)
    merge_max_gap_frames: int = Field(1, ge=0, le=10_000)

    @model_validator(mode="after")
    def _check_ranges(self) -> "FilterConfig":
        if self.frame_range is not None:
            start, stop = self.frame_range
            if start < 0 or stop <= start:
                raise ValueError(
                    f"filter.frame_range must be (start, stop) with 0 <= start < stop, "
                    f"got {self.frame_range}"
                )
        if self.region_nm is not None:
            (y0, x0), (y1, x1) = self.region_nm
            vals = (y0, x0, y1, x1)
            if not all(v == v and abs(v) != float("inf") for v in vals):
                raise ValueError(f"filter.region_nm must be finite, got {self.region_nm}")
            if not (y1 > y0 and x1 > x0):
                raise ValueError(
                    f"filter.region_nm must be ((y0, x0), (y1, x1)) with y1 > y0 and x1 > x0, "
                    f"got {self.region_nm}"
                )
        return self


class DriftConfig(_Model):
    """Drift estimation by redundant cross-correlation (RCC).

    Attributes
    ----------
    n_segments : int
        Number of time segments the frames are split into (equal frame spans).
    pixel_size_nm : float
        Pixel of the images rendered for the correlations.
    blur_nm : float
        Standard deviation of a Gaussian applied to each segment image before correlating
        (smooths shot noise and makes the correlation peak well sampled for the sub-pixel
        fit); 0 disables it.
    subpixel : {"gaussian", "upsample"}
        Sub-pixel peak location: 3-point Gaussian (log-parabola) fit per axis of the
        blurred correlation (default; fast and, with ``blur_nm`` about one pixel, as
        accurate as upsampling in tests), or matrix-multiply DFT upsampling of the
        correlation around its peak (slower: two matrix products per pair).
    upsample_factor : int
        Refinement factor of the ``"upsample"`` method (1/upsample_factor pixel steps).
    max_drift_nm : float
        Largest drift between any two segments; the correlation peak is searched only
        within this shift.
    outlier_sigma : float or None
        Pairs whose residual length exceeds ``outlier_sigma * s`` (and a tenth of a pixel)
        are dropped one at a time, worst first, and the system is re-solved, as long as
        every segment stays constrained. ``s`` is the robust per-axis residual standard
        deviation, ``median(|residual|) / sqrt(2 ln 2)`` (Rayleigh median); with the
        default 4 a consistent pair is dropped with probability exp(-8). None keeps all.
    min_localizations_per_segment : int
        Fewer localizations in any segment raises a StageError.
    """

    n_segments: int = Field(10, ge=2, le=1000)
    pixel_size_nm: float = Field(20.0, gt=0.5, le=1000.0)
    blur_nm: float = Field(20.0, ge=0.0, le=1000.0)
    subpixel: Literal["gaussian", "upsample"] = "gaussian"
    upsample_factor: int = Field(20, ge=1, le=1000)
    max_drift_nm: float = Field(500.0, gt=0.0, le=1e5)
    outlier_sigma: float | None = Field(4.0, gt=0.0)
    min_localizations_per_segment: int = Field(100, ge=1)


class PipelineConfig(_Model):
    """A whole pipeline: one model per stage plus the schema version.

    ``filter`` (all filters off by default) and ``drift`` (None: no drift correction) act
    on the localizations before rendering.
    """

    version: int = CONFIG_VERSION
    name: str = "default"
    filter: FilterConfig = FilterConfig()
    drift: DriftConfig | None = None
    render: RenderConfig = RenderConfig()
    denoise: DenoiseConfig = DenoiseConfig()
    segment: SegmentConfig = SegmentConfig()
    phase: PhaseConfig = PhaseConfig()
    fit: FitConfig = FitConfig()

    @model_validator(mode="after")
    def _check(self) -> "PipelineConfig":
        if self.version != CONFIG_VERSION:
            raise ValueError(
                f"config version {self.version} is not supported (this chromarate reads "
                f"version {CONFIG_VERSION})"
            )
        if abs(self.phase.phi_max - self.fit.physics.phi_max) > 1e-12:
            raise ValueError("phase.phi_max must equal fit.physics.phi_max")
        return self


_M = TypeVar("_M", bound=BaseModel)


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (YAML itself would
    silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise ConfigError(
                        f"key {key!r} is given twice (lines {seen[key]} and "
                        f"{key_node.start_mark.line + 1}); give each setting once")
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: let PyYAML explain
                pass
        return super().construct_mapping(node, deep=deep)



def load_config(path: str | Path) -> PipelineConfig:
    """Read a pipeline configuration from a YAML file.

    Parameters
    ----------
    path : str or Path
        UTF-8 YAML file holding a mapping of stage names to settings; missing keys take
        their defaults (``{}`` takes every default).

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        If the file cannot be read, is not UTF-8 text, is empty, is not a mapping, gives a
        key twice, holds NaN values, or fails validation.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", path=path) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save the config as UTF-8", path=path) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=path) from exc
    if raw is None:
        raise ConfigError("the config file is empty; expected a YAML mapping of stage names "
                          "to settings (write {} to take every default)", path=path)
    if not isinstance(raw, dict):
        raise ConfigError("expected a YAML mapping of stage names to settings", path=path)
    return config_from_dict(raw, path=path)


def _nan_keys(value: Any, where: str = "") -> list[str]:
    """Dotted keys of the NaN values in a nested mapping (or list)."""
    if isinstance(value, float) and value != value:
        return [where or "<root>"]
    if isinstance(value, dict):
        return [k for key, v in value.items()
                for k in _nan_keys(v, f"{where}.{key}" if where else str(key))]
    if isinstance(value, (list, tuple)):
        return [k for i, v in enumerate(value) for k in _nan_keys(v, f"{where}[{i}]")]
    return []


def config_from_dict(raw: dict[str, Any], *, path: str | Path | None = None) -> PipelineConfig:
    """Validate a plain mapping into a :class:`PipelineConfig` (errors as ConfigError).

    NaN is refused wherever it appears (a NaN would otherwise pass some range checks and
    fail others with a misleading message).
    """
    return make_config(PipelineConfig, raw, path=path)


def make_config(model: type[_M], raw: dict[str, Any], *,
                path: str | Path | None = None) -> _M:
    """Validate ``raw`` into ``model`` (any config model), with errors as ConfigError.

    Raises
    ------
    ConfigError
        Naming each invalid key and why; NaN values are refused by name.

    Examples
    --------
    >>> make_config(SimulateConfig, {"tolerance": -1})
    Traceback (most recent call last):
    ...
    chromarate.errors.ConfigError: invalid config: tolerance: Input should be greater than 0
    """
    nans = _nan_keys(raw)
    if nans:
        raise ConfigError(f"invalid config: {', '.join(nans)}: NaN is not a value; expected "
                          "a number", path=path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format_validation(exc)}", path=path) from None


def dump_config(config: BaseModel) -> str:
    """Serialise a config to YAML text (round-trips through :func:`load_config`)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def config_hash(config: BaseModel) -> str:
    """Stable sha256 (hex, first 16) of a config's canonical JSON form."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def with_overrides(config: PipelineConfig, overrides: dict[str, Any]) -> PipelineConfig:
    """Return a copy of ``config`` with dotted-key overrides applied and validated.

    Parameters
    ----------
    overrides : dict
        ``{"fit.steps": 100, ...}``; values are taken as given (already parsed).
    """
    raw = config.model_dump(mode="json")
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"unknown config key {key!r}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key {key!r}")
        node[parts[-1]] = value
    return config_from_dict(raw)


# --- Localization-table stages (filtering, drift). Composed into PipelineConfig by the lead.
