"""Config models of the rate fit: :class:`FitConfig` and its groups (physics, mollifier,
network, training, prior, uncertainty)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from .base import _Model
from .migrate import migrate_fit, read_older

__all__ = ["FitConfig", "MollifierConfig", "NetworkConfig", "PhysicsConfig", "PriorConfig",
           "TrainingConfig", "UncertaintyConfig"]


class PhysicsConfig(_Model):
    """Parameters of the chromatin phase-field model (lengths in um, time in 1/Gamma_ac).

    Attributes
    ----------
    phi_max : float
        Largest heterochromatin fraction: the second well of the model's double-well
        potential. Set here only: the pipeline's phase stage clips the observed ``phi_h``
        at this value too (older configs also gave it as ``phase.phi_max``).
    interface_um : float
        Interface length ``l`` of the model (um).
    mobility : float
        Mobility ``M`` of the model.
    """

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
        Kernel radius in pixels. "auto": the noise rule (pixel noise through the
        bilaplacian kernel) bounds it from above; with the steadiness criterion the fit
        then uses the smallest radius from 8 px whose steadiness misfit stays in the weak
        prior's range, and reports the rate where the noise rule's kernel is trusted
        (``chromarate.fit.regularise.choose_kernel_radius``).
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


class TrainingConfig(_Model):
    """How the PINN is trained: the optimisers, their schedule and what each step sees.

    Attributes
    ----------
    steps : int
        Adam steps with the strong prior; with ``fit.prior.regularisation`` not ``manual``
        a weaker prior trains up to four times as many (see :mod:`chromarate.fit.regularise`).
    learning_rate : float
        Adam step of the field network (cosine schedule to zero).
    rate_learning_rate_factor : float
        The rate network's step is this many times ``learning_rate``.
    lbfgs_steps : int
        L-BFGS iterations after Adam (0: none).
    early_stopping_patience : int or None
        Stop Adam when the loss has not improved by 0.1 % over this many steps.
    log_every : int
        Steps between progress reports (and loss-history records).
    patch_size : int or None
        Train on random ``patch_size`` x ``patch_size`` windows (plus the kernel halo) when
        the grid is larger, so peak memory depends on the patch, not the image.
    mixed_precision : bool
        bfloat16 autocast of the networks on CUDA (kernels and losses stay in
        ``fit.dtype``).
    pretrain_steps : int
        Data-only Adam steps that fit a *free* field network to the observation (values at
        the pixel centres, no derivatives) before the joint fit: the usual warm start of a
        classic PINN, identical for every derivative backend. 0 (default): none. The
        anchored field starts at the data and needs none.
    """

    steps: int = Field(250, ge=1, le=10_000_000)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    rate_learning_rate_factor: float = Field(3.0, gt=0.0, le=1000.0)
    lbfgs_steps: int = Field(0, ge=0, le=100_000)
    early_stopping_patience: int | None = Field(None, ge=1)
    log_every: int = Field(25, ge=1)
    patch_size: int | None = Field(None, ge=16, le=8192)
    mixed_precision: bool = False
    pretrain_steps: int = Field(0, ge=0, le=1_000_000)


class PriorConfig(_Model):
    """What the fit assumes beyond the data and the model: the regularisation.

    The rate is only identified up to noise, so the fit pulls it towards smooth maps and
    denoises the observed fields before the physics sees them. This group holds every
    setting of that kind: how the rate's smoothness is chosen (``regularisation``), the
    smoothness penalty and what it pulls towards, the test window of the weak residual,
    the Fourier features of the rate network, and the denoising of the fields.

    ``rate_fourier_features`` and ``rate_fourier_scale_per_um`` are here rather than in
    ``fit.network`` (the field network): the rate network is small and fixed, and these
    two only set how fine a structure the rate can take, an implicit smoothness prior.
    By default (None) the scale follows the chosen test window
    (:func:`chromarate.fit.regularise.fourier_scale_for_window`: 0.09 / window, the window
    in um; 0.3 cycles/um with ``regularisation="manual"``), and is recorded with the chosen
    penalty and window (``chosen_rate_fourier_scale_per_um`` in summary.csv).

    Attributes
    ----------
    regularisation : {"steadiness", "pixel_noise", "manual"}
        How ``rate_smoothness`` and ``test_window_um`` are set. ``steadiness`` (default):
        per nucleus, from the share of the weak residual that no smooth rate explains
        (:mod:`chromarate.fit.regularise`); ``pixel_noise``: from a white-noise estimate of
        the pixel noise (kept for comparison; it under-regularises rendered densities);
        ``manual``: the two values as given. The chosen values are stored in
        ``FitResult.meta["regularisation"]``, the result's provenance and summary.csv.
    rate_prior : {"auto", "balance", "closed_form", "flat"}
        What the smoothness penalty pulls the rate towards. ``balance`` penalises the
        gradient of the rate's difference from the local balance estimate
        ``G * phi_h / G * phi_e`` over windows of ``balance_window_spacings`` domain
        spacings (at least the test window), which needs no derivative of the data
        (:func:`chromarate.fit.prior.balance_rate`); ``closed_form`` from the windowed closed
        form of the same weak residual with the fit's settings
        (:func:`chromarate.fit.direct.closed_form_prior`); ``flat`` the gradient of lambda
        itself. ``auto`` (default): where two independent halves of the localizations
        exist (the pipeline's split), the closed form when its departure from the balance
        estimate, in the part both halves share, is at least 3.75 times the balance
        estimate's own reproducible variation
        (:func:`chromarate.fit.prior.departure_ratio`: the balance cannot see rates that
        vary at the scale of the domains) or when that shared departure is at least
        ``shared_departure_limit`` of the rate (then flagged), else the balance estimate. Without halves
        (fields given directly), or where the density scale could not be calibrated (a
        nucleus too small), the balance estimate unless it correlates negatively
        with the closed form over the closed form's region
        (:func:`chromarate.fit.prior.prior_agreement`, with the balance taken over one
        domain spacing, where its assumption holds best; the balance assumes no flux
        through its windows, and a negative correlation says the flux matters), then the
        closed form. The prior used and both figures are recorded in
        ``FitResult.meta["regularisation"]`` (``rate_prior``, ``prior_departure``,
        ``prior_shared_departure``, ``prior_agreement``, and ``prior_ambiguous`` where the
        two departure figures disagreed). Measured
        (docs/validation-studies.md): on the `chromarate simulate` nuclei the closed form agrees with
        the balance estimate (correlation 0.46-0.89) and ``closed_form`` there costs r (the
        demo 0.968 -> 0.753); on the suite's rendered nuclei with domain-scale rates the
        two disagree, and the PINN with the balance prior fell up to 0.15 below its own
        closed form.
    rate_smoothness : float
        Weight of the gradient penalty on lambda (per um^2); used as given only with
        ``regularisation="manual"``, otherwise chosen per nucleus. The default (1.0, with 0.3 um
        test windows) is set for phase fields from rendered STORM densities, whose noise is
        spatially correlated by rendering and denoising (measured on the sample nucleus:
        r = 0.927 against 0.221 with 1e-3 and 0.15 um windows). For fields with white pixel
        noise a weak prior recovers more detail: ``rate_smoothness=1e-3,
        test_window_um=0.15`` gives r = 0.99 / 0.96 / 0.95 at 0 / 1 / 5 % noise in
        experiments/recovery.py, where 1.0 flattens lambda (r = 0.76 at 5 %).
    test_window_um : float or None
        Standard deviation (um) of the Gaussian test functions the residual is integrated
        against (a Petrov-Galerkin weak form): the PINN scores ``G * (w r)`` instead of the
        pointwise residual, and the closed form takes lambda as constant over the window (a
        local least-squares fit). Integrating against smooth test functions moves the
        fourth-order derivatives off the noise. None: pointwise residual and closed form.
        Used as given only with ``regularisation="manual"``.
    rate_fourier_features : int
    rate_fourier_scale_per_um : float
        Random Fourier features of the rate network (frequency standard deviation in
        cycles/um); a small scale keeps lambda smooth. None (default): 0.09 / window (the
        window in um; 0.3 cycles/um at 0.3 um windows and without a window) when the
        regularisation is chosen from the data, 0.3 cycles/um with ``manual``; a number is
        used as given, whatever ``regularisation`` is.
    field_prior : {"tv", "none"}
        Denoising of the observed fields before the physics sees them: ``tv`` (default)
        anchors the PINN (and feeds the closed form) with total-variation denoised fields,
        weight ``field_prior_strength`` times the estimated pixel noise. The data term still
        compares with the raw observation.
    field_prior_strength : float
        Multiplier of the noise estimate giving the TV weight.
    strength_floor : float
        The least prior strength (0 the weak end, 1 the strong end) the data-chosen
        regularisation may take (``steadiness`` or ``pixel_noise``; ignored with
        ``manual``). Default 0. On localization inputs with frames the pipeline raises it
        per nucleus, with ``steadiness``, to the strength at which two halves of the
        localizations give closed-form maps as reproducible as at any
        (:func:`chromarate.fit.regularise.split_half_strength`); the value used is
        recorded as ``strength_floor`` in ``FitResult.meta["regularisation"]`` and as
        ``chosen_strength_floor`` in summary.csv.
    balance_window_spacings : float
        Width (standard deviation) of the balance estimate's window in domain spacings of
        the nucleus' heterochromatin (:func:`chromarate.fit.prior.domain_spacing_um`), at
        least the test window. The default, 0.55, is the narrowest window that averages
        the domains out: a Gaussian of 0.55 spacings passes exp(-2 pi^2 0.55^2) = 0.3 % of
        a modulation at the domain spacing (0.3 spacings pass 17 %), and a wider one only
        blurs lambda. Measured on the development nuclei (docs/validation-studies.md): of windows of
        0.32-1.29 spacings the balance estimate alone is closest to the true rate at 0.65
        (0.48 within 0.06) on all six dev ``simulate`` nuclei, and the default fit with
        0.55 instead of one spacing lifted them from r 0.968 / 0.883 / 0.964 / 0.927 /
        0.797 / 0.458 to 0.988 / 0.963 / 0.990 / 0.967 / 0.934 / 0.618.
    split_half_floor : bool
        Let the pipeline set ``strength_floor`` per nucleus from the halves (default
        true; only with ``regularisation="steadiness"`` and localizations that carry a
        ``frame`` column).
    balance_full_strength : bool
        Where ``rate_prior="auto"`` keeps the balance estimate because of the halves'
        departure figure (the closed form does not depart from the balance reproducibly,
        on a nucleus whose density scale was calibrated), fit at the strong end with
        ``rate_smoothness`` ``balance_kept_smoothness`` (default true; ignored with
        ``manual``): the data then hold no reproducible structure of the rate beyond the
        balance estimate, and a weaker prior lets the rate follow what the halves share
        but the truth does not. The record says so (``balance_full_strength``: true where
        the strength was raised to 1, its ``strength_floor`` then 1;
        ``balance_kept_smoothness``).
    balance_kept_smoothness : float
        ``rate_smoothness`` of those fits (default 10; the strong end's is 1): the map
        keeps the balance estimate's shape up to smooth departures, the physics setting
        its level. Measured in docs/validation-studies.md ("Full prior strength where the
        departure keeps the balance").
    shared_departure_limit : float or None
        With ``rate_prior="auto"`` and two halves, also take the closed form when the
        departure the halves share is at least this fraction of the rate
        (:func:`chromarate.fit.prior.shared_departure`, recorded as
        ``prior_shared_departure``) though its ratio to the balance estimate's variation
        is below 3.75. The two figures then disagree, and the record says
        ``prior_ambiguous: true``; the quality gate flags the nucleus, since the halves
        cannot tell a rate that varies below the balance window from an error of the
        closed form that both halves share. None: only the ratio decides. The default,
        0.145, lies between the largest figure of the 100 ``simulate`` seeds (0.137,
        balance right) and the smallest of the rendered nuclei with domain-scale rates
        whose closed form beats the balance (0.151) when it was set; later draws had such
        nuclei at 0.117-0.144, which keep the balance (docs/validation-studies.md, "The shared
        departure in units of the rate" and "The mean from the censored scale").
    rate_variation_reference : float or None
        A floor under the data-chosen ``rate_smoothness`` set by how much the rate varies:
        wherever the fit solves the windowed closed form (``rate_prior`` ``closed_form``,
        and ``auto`` whichever prior it then picks, except where the departure figure kept
        the balance at full strength), its relative variation v (standard deviation over mean on the
        pixels it reports) sets the floor ``1e-3 * (reference / v)**2``, at least 1e-3 and
        at most 1e-2 (:func:`chromarate.fit.regularise.variation_smoothness_floor`). The
        penalty weight a Gaussian prior on the rate's gradients wants grows as the noise
        over the signal variance: a rate that varies by 3 % of its level leaves the weak
        end's penalty (1e-3, chosen for rates varying by 10-40 %) too weak, and the fit
        turns the fields' noise into structure. It binds only where the strength the data
        chose is below a third (the penalty there is under 1e-2) and the steadiness misfit
        is above 0.005 (the cleanest fields keep the weak end), i.e. on clean fields that
        still carry noise.
        Recorded as ``rate_variation`` and ``smoothness_floor`` in
        ``FitResult.meta["regularisation"]``. None: no floor. Measured in
        docs/validation-studies.md ("A smoothness floor from the rate's variation").
    """

    regularisation: Literal["steadiness", "pixel_noise", "manual"] = "steadiness"
    rate_prior: Literal["auto", "balance", "closed_form", "flat"] = "auto"
    rate_smoothness: float = Field(1.0, ge=0.0)
    test_window_um: float | None = Field(0.3, gt=0.0, le=100.0)
    rate_fourier_features: int = Field(32, ge=0, le=1024)
    rate_fourier_scale_per_um: float | None = Field(None, gt=0.0, le=100.0)
    field_prior: Literal["tv", "none"] = "tv"
    field_prior_strength: float = Field(1.0, ge=0.0, le=100.0)
    strength_floor: float = Field(0.0, ge=0.0, le=1.0)
    balance_window_spacings: float = Field(0.55, gt=0.0, le=10.0)
    split_half_floor: bool = True
    balance_full_strength: bool = True
    balance_kept_smoothness: float = Field(10.0, gt=0.0, le=1e4)
    shared_departure_limit: float | None = Field(0.145, gt=0.0, le=10.0)
    rate_variation_reference: float | None = Field(0.08, gt=0.0, le=10.0)

    @model_validator(mode="after")
    def _check_manual(self) -> "PriorConfig":
        fields = type(self).model_fields
        if self.regularisation != "manual" and (
                self.rate_smoothness != fields["rate_smoothness"].default
                or self.test_window_um != fields["test_window_um"].default):
            raise ValueError(
                f"fit.prior.rate_smoothness and fit.prior.test_window_um are chosen per nucleus "
                f"when fit.prior.regularisation is {self.regularisation!r}; to set them "
                "yourself (e.g. rate_smoothness 0.001, test_window_um 0.15) also set "
                "fit.prior.regularisation: manual")
        return self


class UncertaintyConfig(_Model):
    """The uncertainty map ``rate_std``: an ensemble of fits.

    Attributes
    ----------
    ensemble : int
        Number of fits with seeds ``fit.seed, fit.seed + 1, ...`` giving ``rate_std``, the
        uncertainty map (see ``method``).
    method : {"bootstrap", "seeds"}
        ``bootstrap`` (default): member 0 fits the data and gives the rate; every other
        member fits a parametric-bootstrap replicate (denoised fields plus fresh noise at
        the data's local noise level) and ``rate_std`` is their RMS deviation from the
        rate, so it is larger where the data are noisier. ``seeds``: all members fit the
        data with different initialisations; rate = mean, ``rate_std`` = their standard
        deviation (optimisation spread only).
    """

    ensemble: int = Field(1, ge=1, le=64)
    method: Literal["bootstrap", "seeds"] = "bootstrap"


class FitConfig(_Model):
    """Rate inference.

    The settings are grouped: ``physics`` (the model's constants), ``mollifier`` and
    ``network`` (the derivatives and the field network), ``training`` (optimisers and
    schedule), ``prior`` (the regularisation of rate and fields) and ``uncertainty`` (the
    ensemble). What defines the fitted objective itself (method, residual form, the data
    and residual weights) and what every part uses (seed, device, dtype) stay at the top.
    Older files that give the grouped keys flat (``fit.steps``, ``fit.uncertainty:
    seeds``) are still read, with a :class:`~chromarate.errors.ConfigDeprecationWarning`
    naming the new keys.

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
    physics : PhysicsConfig
    mollifier : MollifierConfig
    network : NetworkConfig
    training : TrainingConfig
    prior : PriorConfig
    uncertainty : UncertaintyConfig
    observation_blur_nm : float or "auto"
        Standard deviation (nm) of the Gaussian blur between the true chromatin density
        and the observed fields (localization error, rendering and denoising), which the
        residual corrects for to second order in the blur
        (:mod:`chromarate.fit.blur`). ``"auto"`` (default) reads it from the fields'
        ``meta["blur_nm"]``, which the pipeline records from the localization precisions
        and the render and denoise settings (0, no correction, when absent: fields given
        directly); 0 switches the correction off.
    data_weight, residual_weight : float
        Weights of the data misfit and the PDE residual (the prior's weight is
        ``prior.rate_smoothness``).
    seed : int
        Seed of every random choice of the fit (stored in results).
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    dtype : {"float32", "float64"}
    """

    method: Literal["pinn", "direct"] = "pinn"
    residual_form: Literal["weak", "strong"] = "weak"
    derivative_backend: Literal["mollifier", "autograd", "finite-difference", "spectral"] = "mollifier"
    physics: PhysicsConfig = PhysicsConfig()
    mollifier: MollifierConfig = MollifierConfig()
    network: NetworkConfig = NetworkConfig()
    training: TrainingConfig = TrainingConfig()
    prior: PriorConfig = PriorConfig()
    uncertainty: UncertaintyConfig = UncertaintyConfig()
    observation_blur_nm: float | Literal["auto"] = "auto"
    data_weight: float = Field(1.0, ge=0.0)
    residual_weight: float = Field(1.0, ge=0.0)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"

    @model_validator(mode="before")
    @classmethod
    def _read_old_keys(cls, data: Any, info: ValidationInfo) -> Any:
        return read_older(data, info, migrate_fit, prefix="fit.")

    @model_validator(mode="after")
    def _check_backend(self) -> "FitConfig":
        blur = self.observation_blur_nm
        if not isinstance(blur, str) and not 0.0 <= blur <= 1000.0:
            raise ValueError("fit.observation_blur_nm must be 'auto' or in [0, 1000] nm")
        if self.training.pretrain_steps and self.network.parameterization != "free":
            raise ValueError("fit.training.pretrain_steps fits a free field network to the "
                             "data; the anchored field already starts at the data (set "
                             "network.parameterization 'free' or training.pretrain_steps 0)")
        if self.derivative_backend != "mollifier" and (
                self.residual_form != "strong" or self.network.parameterization != "free"):
            raise ValueError(
                f"fit.derivative_backend {self.derivative_backend!r} differentiates the network "
                "itself: it needs residual_form 'strong' and network.parameterization 'free' "
                "(the weak form and the anchored field need the mollifier)")
        return self
