"""The pipeline: localizations -> (filter, drift) -> density -> denoised -> nuclei -> phase fields
-> fit -> result stack.

Written once as a generator (:meth:`Pipeline.iter_run`) yielding typed events, with a plain
wrapper (:meth:`Pipeline.run`). No file access here: callers read inputs and write results
through :mod:`chromarate.io`.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from scipy import ndimage as ndi

from . import __version__
from ._types import (DensityMap, FitDone, FitProgress, FitResult, Localizations, NucleusFailed,
                     PhaseFields, ResultStack, StageDone)
from .background import Background, limit_to_baseline, ring_background
from .config import FitConfig, PipelineConfig, config_hash
from .denoise import denoise_density
from .drift import correct_drift
from .filtering import filter_localizations
from .export import build_result_stack
from .phase import phase_fields
from .quality import QualityReport, assess_quality, map_agreement
from .render import render_density
from .resolution import fourier_ring_correlation
from .errors import ChromarateError
from .segment import segment_foreground, segment_nuclei
from .split_half import half_density_maps, half_labels

__all__ = ["Pipeline", "NucleusResult", "NucleusTask", "crop_density", "calibrated_phase_fields",
           "phase_density",
           "balance_maps", "closed_form_check", "fields_quality", "gate_half_maps",
           "half_balance_maps",
           "half_phase_fields", "halves_scale",
           "half_rate_maps",
           "nucleus_quality", "split_half_floor", "with_level",
           "with_calibration_std", "with_split_half_std"]


@dataclass(frozen=True)
class NucleusResult:
    """Everything the pipeline produced for one nucleus."""

    nucleus_id: int
    stack: ResultStack
    fit: FitResult
    fields: PhaseFields
    timings: Mapping[str, float] = field(default_factory=dict)
    n_localizations: int = 0


@dataclass(frozen=True)
class NucleusTask:
    """One segmented nucleus, ready for phase mapping and fitting (small and picklable).

    Attributes
    ----------
    nucleus_id : int
        Label of the nucleus in the segmentation of its acquisition (1-based).
    density, denoised : DensityMap
        Raw and denoised density cropped around the nucleus (with a kernel-wide margin).
    mask : numpy.ndarray
        bool mask of the nucleus on the crop.
    n_localizations : int
        Localizations inside the mask (the summed density for image inputs).
    timings : dict
        Seconds of the shared stages (filter ... segment) of the acquisition.
    halves : tuple of DensityMap, optional
        Denoised maps of two independent halves of the localizations on the crop's grid
        (:func:`chromarate.split_half.half_density_maps`), for the quality gate's
        split-half check; None for image inputs or when the localizations cannot be split.
    background : Background, optional
        Background level around the nucleus (:func:`chromarate.background.ring_background`),
        subtracted before phase mapping; None with ``phase.background="none"``.
    """

    nucleus_id: int
    density: DensityMap
    denoised: DensityMap
    mask: np.ndarray
    n_localizations: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)
    has_localizations: bool = True
    resolution_nm: float | None = None
    halves: tuple[DensityMap, DensityMap] | None = None
    background: Background | None = None


def crop_density(density: DensityMap, slices: tuple[slice, slice]) -> DensityMap:
    """Crop a density map, moving its origin so the crop maps back to the parent grid."""
    sy, sx = slices
    p = density.pixel_size_nm
    origin = (density.origin_nm[0] + sy.start * p, density.origin_nm[1] + sx.start * p)
    return replace(density, data=np.ascontiguousarray(density.data[sy, sx]), origin_nm=origin)


class Pipeline:
    """An ordered run of the stages for one acquisition.

    Parameters
    ----------
    config : PipelineConfig

    Examples
    --------
    >>> from chromarate import Pipeline, PipelineConfig
    >>> pipe = Pipeline(PipelineConfig())
    >>> # results = pipe.run(read_localizations("cell.csv"))
    """

    stages = ("filter", "drift", "render", "denoise", "segment", "phase", "fit", "export")

    def __init__(self, config: PipelineConfig = PipelineConfig()) -> None:
        self.config = config

    def iter_run(self, locs: Localizations, *, device: str | None = None,
                 provenance: Mapping[str, Any] | None = None
                 ) -> Iterator[StageDone | FitProgress | NucleusResult]:
        """Run all stages, yielding events.

        Yields
        ------
        StageDone
            After each stage (with the nucleus id for per-nucleus stages).
        FitProgress
            While a fit trains.
        NucleusResult
            Once per nucleus, when its result stack is assembled.
        NucleusFailed
            For a nucleus whose phase mapping, fit or export raised a ChromarateError;
            the other nuclei go on.
        """
        yield from self._iter_tasks(self.iter_prepare(locs), device, provenance)

    def iter_run_density(self, density: DensityMap, *, device: str | None = None,
                         provenance: Mapping[str, Any] | None = None
                         ) -> Iterator[StageDone | FitProgress | NucleusResult | NucleusFailed]:
        """Run the stages from denoising on, for a rendered density image (e.g. a TIFF).

        ``n_localizations`` of a nucleus is then the summed density inside its mask.
        """
        yield from self._iter_tasks(self.iter_prepare_density(density), device, provenance)

    def _iter_tasks(self, items, device, provenance):
        """Pass prepared items through, fitting each :class:`NucleusTask` as it comes."""
        for item in items:
            if isinstance(item, NucleusTask):
                yield from self.iter_nucleus(item, device=device, provenance=provenance)
            else:
                yield item

    def iter_prepare(self, locs: Localizations) -> Iterator[StageDone | NucleusTask | NucleusFailed]:
        """Run the shared stages (filter ... segment) and yield one task per nucleus.

        The first half of :meth:`iter_run`: a batch runner sends each :class:`NucleusTask`
        to :meth:`iter_nucleus`, possibly on another worker.

        Yields
        ------
        StageDone
            After each shared stage.
        NucleusTask
            One per segmented nucleus, in label order.
        NucleusFailed
            For a nucleus that could not be cropped.
        """
        cfg = self.config
        timings: dict[str, float] = {}
        timed = _timer(timings)

        locs, ev = timed("filter", filter_localizations, locs, cfg.filter)
        yield ev
        if cfg.drift is not None:
            locs, ev = timed("drift", correct_drift, locs, cfg.drift)
            yield ev
        density, ev = timed("render", render_density, locs, cfg.render)
        yield ev
        if cfg.denoise.sigma_nm == "auto":
            frc, ev = timed("resolution", fourier_ring_correlation, locs)
            yield ev
            density = replace(density, meta={**dict(density.meta),
                                             "resolution_nm": frc.resolution_nm})
        yield from self._iter_prepare_density(density, locs, timings, timed)

    def iter_prepare_density(self, density: DensityMap
                             ) -> Iterator[StageDone | NucleusTask | NucleusFailed]:
        """:meth:`iter_prepare` for a rendered density image (stages from denoising on)."""
        timings: dict[str, float] = {}
        yield from self._iter_prepare_density(density, None, timings, _timer(timings))

    def _iter_prepare_density(self, density, locs, timings, timed):
        cfg = self.config
        denoised, ev = timed("denoise", denoise_density, density, cfg.denoise)
        yield ev
        (labels, _crops), ev = timed("segment", segment_nuclei, denoised, cfg.segment)
        yield ev
        # the quality gate's split-half check: one split per acquisition, each nucleus'
        # halves rendered on its crop below (no event: a helper of the gate)
        side = half_labels(locs) if locs is not None else None
        radius = cfg.fit.mollifier.radius_px
        margin = int(np.ceil(24 if radius == "auto" else radius)) + 5  # kernel half-width
        valid = foreground = None
        if locs is not None:
            x, y = locs.table["x_nm"].to_numpy(), locs.table["y_nm"].to_numpy()
        if cfg.phase.background == "ring":
            valid = (_data_extent(x, y, density) if locs is not None
                     else _nonzero_extent(density.data))
            foreground = segment_foreground(denoised, cfg.segment)
        # one pass for every nucleus' box: a map with many nuclei is not scanned per nucleus
        for nucleus_id, box in enumerate(ndi.find_objects(labels), start=1):
            if box is None:
                continue
            try:
                slices = _grown(box, margin, labels.shape)
                dens_c, den_c = crop_density(density, slices), crop_density(denoised, slices)
                mask_c = np.ascontiguousarray(labels[slices] == nucleus_id)
                n_in = (_count_inside(x, y, mask_c, den_c) if locs is not None
                        else int(round(float(dens_c.data[mask_c].sum()))))
            except ChromarateError as exc:
                yield NucleusFailed(nucleus_id=nucleus_id, stage="segment", error=str(exc))
                continue
            try:  # the gate's evidence, never a reason to fail the nucleus
                halves_c = (None if side is None
                            else half_density_maps(locs, den_c, cfg, side=side))
            except ChromarateError:
                halves_c = None
            background = None
            if cfg.phase.background == "ring":
                background = ring_background(
                    density.data, labels, nucleus_id, pixel_size_nm=density.pixel_size_nm,
                    gap_nm=cfg.phase.background_gap_nm, width_nm=cfg.phase.background_width_nm,
                    valid=valid, exclude=foreground, box=box)
                inside = np.asarray(den_c.data, dtype=np.float64)[mask_c]
                background = limit_to_baseline(
                    background, float(np.percentile(inside, cfg.phase.baseline_percentile)))
            yield NucleusTask(nucleus_id=nucleus_id, density=dens_c, denoised=den_c,
                              mask=mask_c, n_localizations=n_in, timings=dict(timings),
                              has_localizations=locs is not None,
                              resolution_nm=_resolution(density, locs, dens_c),
                              halves=halves_c, background=background)

    def iter_nucleus(self, task: NucleusTask, *, device: str | None = None,
                     provenance: Mapping[str, Any] | None = None
                     ) -> Iterator[StageDone | FitProgress | NucleusResult | NucleusFailed]:
        """Phase mapping, fit and export of one nucleus (the second half of :meth:`iter_run`).

        Yields
        ------
        StageDone
            After phase mapping, fitting and export (with the nucleus id).
        FitProgress
            While the fit trains.
        NucleusResult or NucleusFailed
            Last: the result, or the stage and error when a ChromarateError was raised.
        """
        from .fit.loop import iter_fit  # torch is imported only when a nucleus is fitted

        cfg = self.config
        nucleus_id = task.nucleus_id
        stage = "phase"
        try:
            ntimings = dict(task.timings)
            t0 = time.perf_counter()
            fields = calibrated_phase_fields(phase_density(task), task.mask, cfg)
            fields = replace(fields, meta={**fields.meta, "background": (
                task.background.as_dict() if task.background is not None else None)})
            ntimings["phase"] = time.perf_counter() - t0
            yield StageDone(stage="phase", seconds=ntimings["phase"], nucleus_id=nucleus_id)
            stage = "fit"
            t0 = time.perf_counter()
            half_fields = (None if task.halves is None
                           else half_phase_fields(task.halves, fields.mask, cfg, _level(task),
                                                  scale=halves_scale(fields)))
            fit_cfg, floor_record = split_half_floor(fields, half_fields, cfg.fit)
            fit = None
            for event in iter_fit(fields, fit_cfg, device=device, halves=half_fields):
                if isinstance(event, FitDone):
                    fit = event.result
                else:
                    yield event
            if floor_record:
                reg = {**(fit.meta.get("regularisation") or {}), **floor_record}
                fit = replace(fit, meta={**fit.meta, "regularisation": reg})
            ntimings["fit"] = time.perf_counter() - t0
            yield StageDone(stage="fit", seconds=ntimings["fit"], nucleus_id=nucleus_id)
            t0 = time.perf_counter()
            half_maps = (None if half_fields is None
                         else half_rate_maps(fields, fit, cfg, task.halves, _level(task),
                                             half_fields=half_fields))
            closed = closed_form_check(fields, fit, cfg)
            balance = balance_maps(fit, fields, half_fields)
            fit = with_split_half_std(fit, half_maps, closed, balance=balance)
            fit = with_level(with_calibration_std(fit, fields), fields)
            gate_maps, source = gate_half_maps(fit, half_fields, lambda: half_maps,
                                               followed=None if balance is None else balance[1])
            qc = nucleus_quality(task, fields, fit, cfg, gate_maps, split_half_source=source,
                                 closed_form_rate=closed)
            ntimings["qc"] = time.perf_counter() - t0
            stage = "export"
            prov = {
                "config": cfg.model_dump(mode="json"),
                "config_hash": config_hash(cfg),
                "versions": _versions(),
                "nucleus_id": nucleus_id,
                "n_localizations": task.n_localizations,
                "phase": dict(fields.meta),
                "qc": qc.as_dict(),
                "timings": dict(ntimings),
                **dict(provenance or {}),
            }
            t0 = time.perf_counter()
            stack = build_result_stack(density=task.density, denoised=task.denoised,
                                       fields=fields, fit=fit, provenance=prov)
            ntimings["export"] = time.perf_counter() - t0
            yield StageDone(stage="export", seconds=ntimings["export"], nucleus_id=nucleus_id)
        except ChromarateError as exc:
            yield NucleusFailed(nucleus_id=nucleus_id, stage=stage, error=str(exc))
            return
        yield NucleusResult(nucleus_id=nucleus_id, stack=stack, fit=fit, fields=fields,
                            timings=ntimings, n_localizations=task.n_localizations)

    def run(self, locs: Localizations, *, device: str | None = None,
            provenance: Mapping[str, Any] | None = None) -> list[NucleusResult | NucleusFailed]:
        """Run all stages; one :class:`NucleusResult` (or :class:`NucleusFailed`) per nucleus."""
        return [e for e in self.iter_run(locs, device=device, provenance=provenance)
                if isinstance(e, (NucleusResult, NucleusFailed))]


def calibrated_phase_fields(density: DensityMap, mask: np.ndarray,
                            config: PipelineConfig = PipelineConfig()) -> PhaseFields:
    """Phase fields with the density scale calibrated by the physics (by default).

    With ``config.phase.calibration == "physics"`` the multiplier of the baseline density
    is chosen by :func:`chromarate.fit.calibrate.calibrate_scale` (the scale that makes
    the fields the steadiest state of the model for a smooth rate); the choice and its
    misfit curve are stored in ``fields.meta["calibration"]``; ``"physics_censored"``
    leaves the pixels clipped at ``phi_max`` out of the misfit (the record then has
    ``censored: true``). With ``"none"`` this is
    :func:`chromarate.phase.phase_fields` with ``config.phase`` as given. Either way
    ``phi_h`` is clipped at ``config.fit.physics.phi_max``.

    Parameters
    ----------
    density : DensityMap
        Denoised density of one nucleus (crop).
    mask : numpy.ndarray
        bool mask of the nucleus.
    config : PipelineConfig
        ``phase`` and ``fit`` settings are used.

    Returns
    -------
    PhaseFields
    """
    if config.phase.calibration == "none":
        return phase_fields(density, mask, config.phase, phi_max=config.fit.physics.phi_max)
    from .fit.calibrate import calibrate_scale  # numpy/scipy only, but lives with the fit

    def fields_at(scale: float) -> PhaseFields:
        return _fields_at_scale(density, mask, config, scale)

    censored = config.phase.calibration == "physics_censored"
    cal = calibrate_scale(fields_at, config.fit, censored=censored,
                          censored_level=config.phase.censored_level,
                          level_share=config.phase.censored_level_share)
    fields = fields_at(cal.scale)
    method = "none" if cal.skipped else "physics"
    meta = {**fields.meta, "calibration": {"method": method, **cal.as_dict(),
                                           **({"censored": True} if censored else {})}}
    return replace(fields, meta=meta)


#: ``nucleus_quality``'s ``half_maps`` when the caller did not map the halves (None is an
#: answer: the halves were tried and could not be mapped).
_NOT_MAPPED: Any = object()


def nucleus_quality(task: NucleusTask, fields: PhaseFields, fit: FitResult,
                    config: PipelineConfig,
                    half_maps: tuple[np.ndarray, np.ndarray] | None = _NOT_MAPPED, *,
                    split_half_source: str = "closed-form",
                    closed_form_rate: np.ndarray | None = None) -> QualityReport:
    """The quality report of one fitted nucleus of the pipeline (see :func:`fields_quality`).

    ``half_maps`` are the halves' maps the split-half check compares (the closed-form maps
    from :func:`half_rate_maps`, or the balance maps from :func:`half_balance_maps`, as
    ``split_half_source`` says), or None when they could not be mapped (not tried again);
    left out, the closed-form maps are computed here when the task has halves.
    ``closed_form_rate``: the closed form the pipeline already computed
    (:func:`closed_form_check`), not computed again.
    """
    if half_maps is _NOT_MAPPED:
        half_maps = (None if task.halves is None
                     else half_rate_maps(fields, fit, config, task.halves, _level(task)))
    return fields_quality(fields, fit, config, density=task.denoised.data,
                          n_localizations=task.n_localizations if task.has_localizations else None,
                          resolution_nm=task.resolution_nm, half_maps=half_maps,
                          split_half_source=split_half_source, closed_form_rate=closed_form_rate)


def gate_half_maps(fit: FitResult, half_fields: tuple[PhaseFields, PhaseFields] | None,
                   closed_maps: Callable[[], tuple[np.ndarray, np.ndarray] | None], *,
                   followed: tuple[np.ndarray, np.ndarray] | None = _NOT_MAPPED,
                   ) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """The halves' maps the split-half check compares, and which estimator made them.

    The balance maps (:func:`half_balance_maps`, or ``followed`` when the caller already
    made them: None means the fit did not follow the balance) where the fit followed the
    balance prior at full strength, else the closed-form maps ``closed_maps()`` gives
    (called only then: :func:`half_rate_maps`, or maps already made).

    Returns
    -------
    (maps or None, str)
        The maps, and ``"balance"`` or ``"closed-form"``.
    """
    if followed is _NOT_MAPPED:
        followed = half_balance_maps(fit, half_fields)
    return (closed_maps(), "closed-form") if followed is None else (followed, "balance")


def half_balance_maps(fit: FitResult, half_fields: tuple[PhaseFields, PhaseFields] | None
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """The halves' balance maps, when the fit followed the balance prior at full strength.

    With the data-chosen prior at the strong end (strength 1) and ``rate_prior`` balance,
    the fit's map is the balance estimate over the recorded ``balance_window_um`` plus a
    smooth correction, and how reproducible that map is is the balance estimate's, not the
    closed form's (whose fourth-order terms carry the noise the strong prior keeps out of
    the fit). Elsewhere the fit leans on the physics and the closed form is the map to
    check.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) or None
        :func:`chromarate.fit.prior.balance_rate` of each half over the fit's balance
        window; None when the fit did not follow the balance at full strength, or without
        halves.
    """
    return None if half_fields is None else _followed_balance(fit, half_fields)


def balance_maps(fit: FitResult, fields: PhaseFields,
                 half_fields: tuple[PhaseFields, PhaseFields] | None
                 ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """The balance estimate of the whole data and of the two halves, ``(whole, (half_a,
    half_b))``, where the fit followed the balance prior at full strength (as
    :func:`half_balance_maps`; :func:`with_split_half_std` compares the fit with it); None
    otherwise or without halves.

    Below full strength the fit leans on the physics, and the balance estimate, smooth and
    reproducible even where its no-flux assumption is wrong, would make the interval too
    narrow: on the flagged ``hetero-irr-env-loc250k@303`` (strength 0.85, r 0.55) it
    covered 11 % of the pixels against 64 % with the closed form alone
    (docs/validation.md)."""
    whole = _followed_balance(fit, (fields,))
    halves = None if whole is None else half_balance_maps(fit, half_fields)
    return None if halves is None else (whole[0], halves)


def _held_to_balance(fit: FitResult) -> bool:
    """Whether the fit's strength was raised to 1 and held to the balance estimate because
    the halves' departure figure kept that prior (``fit.prior.balance_full_strength``;
    recorded as ``balance_full_strength`` in ``meta["regularisation"]``)."""
    return bool((fit.meta.get("regularisation") or {}).get("balance_full_strength"))


def _ambiguous_prior(fit: FitResult) -> tuple[float, float] | None:
    """``(prior_departure, prior_shared_departure)`` where the fit recorded that the two
    figures of the rate prior disagreed (``prior_ambiguous``, :mod:`chromarate.fit.loop`),
    else None."""
    reg = fit.meta.get("regularisation") or {}
    if not reg.get("prior_ambiguous"):
        return None
    return float(reg["prior_departure"]), float(reg["prior_shared_departure"])


def _followed_balance(fit: FitResult, fields_seq) -> tuple[np.ndarray, ...] | None:
    """Balance maps of each of ``fields_seq`` over the window ``fit`` recorded, when the
    fit followed the balance prior at the full strength its data chose (not raised to it by
    ``fit.prior.balance_full_strength``); else None."""
    from .fit.prior import balance_rate

    reg = fit.meta.get("regularisation") or {}
    window_um = reg.get("balance_window_um")
    # a strength raised to 1 only because the halves' departure kept the balance
    # (fit.prior.balance_full_strength) keeps the closed-form check and interval of the
    # strength its data chose: the halves' balance maps share the error both are there to
    # see (with them simulate seed 5, r 0.663, passed as ok, and the flagged
    # hetero-irr-env-loc250k@909's interval covered 24 % of its pixels, 86 % without, at
    # weight 1)
    if (reg.get("rate_prior") != "balance" or not window_um
            or float(reg.get("strength", 0.0)) < 1.0 or _held_to_balance(fit)):
        return None
    sigma_px = float(window_um) * 1000.0 / float(fields_seq[0].pixel_size_nm)
    return tuple(balance_rate(f.phi_h, f.phi_e, np.asarray(f.mask, dtype=bool), sigma_px)
                 for f in fields_seq)


def _closed_config(fit: FitResult, config: PipelineConfig):
    """The closed form's settings for checking ``fit``
    (:func:`chromarate.fit.direct.closed_form_settings`)."""
    from .fit.direct import closed_form_settings

    return closed_form_settings(config.fit, fit.meta.get("regularisation") or {},
                                fit.meta.get("mollifier_radius_px"))


def half_phase_fields(halves: tuple[DensityMap, DensityMap], mask: np.ndarray,
                      config: PipelineConfig, background: float = 0.0, *,
                      scale: float | None = None) -> tuple[PhaseFields, PhaseFields] | None:
    """Phase fields of two independent halves of the localizations.

    Parameters
    ----------
    halves : (DensityMap, DensityMap)
        Denoised maps of the halves on the nucleus' grid
        (:func:`chromarate.split_half.half_density_maps`).
    mask : numpy.ndarray
        bool mask of the nucleus.
    config : PipelineConfig
    background : float
        The level subtracted from the whole density, shared between the halves in
        proportion to their counts.
    scale : float, optional
        Map each half at this multiplier of its own baseline percentile
        (:func:`halves_scale`: the whole nucleus' scale where its calibration was
        censored, whose choice moves with the noise, so that the halves differ by their
        noise and not by a scale chosen under twice the noise). None (default): each
        half is calibrated on its own.

    Returns
    -------
    (PhaseFields, PhaseFields) or None
        None when a half is too sparse to map (no figure, not a failure).
    """
    try:
        total = float(sum(np.sum(h.data, dtype=np.float64) for h in halves))
        shares = [float(np.sum(h.data, dtype=np.float64)) / total if total > 0 else 0.5
                  for h in halves]
        a, b = (_half_fields(_minus(h, background * w), mask, config, scale)
                for h, w in zip(halves, shares))
    except ChromarateError:
        return None
    return a, b


def halves_scale(fields: PhaseFields) -> float | None:
    """The density-scale multiplier at which the halves of a nucleus are mapped.

    Parameters
    ----------
    fields : PhaseFields
        The whole nucleus' fields (:func:`calibrated_phase_fields`).

    Returns
    -------
    float or None
        The whole nucleus' own scale where its calibration was censored
        (``phase.calibration: physics_censored``, whose choice moves with the noise); None
        otherwise, or without a recorded scale: each half is calibrated on its own.
    """
    record = fields.meta.get("calibration") or {}
    scale = record.get("scale")
    return float(scale) if record.get("censored") and scale is not None else None


def _fields_at_scale(density: DensityMap, mask: np.ndarray, config: PipelineConfig,
                     scale: float) -> PhaseFields:
    """Phase fields with the baseline density at ``scale`` times the configured
    ``phase.baseline_scale``, ``phi_h`` clipped at ``fit.physics.phi_max``."""
    phase = config.phase.model_copy(update={"baseline_scale": scale * config.phase.baseline_scale})
    return phase_fields(density, mask, phase, phi_max=config.fit.physics.phi_max)


def _half_fields(density: DensityMap, mask: np.ndarray, config: PipelineConfig,
                 scale: float | None) -> PhaseFields:
    """One half's fields: calibrated on its own (``scale`` None) or mapped at ``scale``."""
    if scale is None:
        # the halves' maps are compared, not reported: their own censored level is not used
        return calibrated_phase_fields(density, mask, config.model_copy(update={
            "phase": config.phase.model_copy(update={"censored_level": "never"})}))
    fields = _fields_at_scale(density, mask, config, scale)
    return replace(fields, meta={**fields.meta, "calibration": {
        "method": "whole_nucleus", "scale": float(scale)}})


def split_half_floor(fields: PhaseFields, half_fields: tuple[PhaseFields, PhaseFields] | None,
                     config: FitConfig) -> tuple[FitConfig, dict[str, Any]]:
    """The fit configuration with the prior's strength floor set from the halves.

    Parameters
    ----------
    fields : PhaseFields
        The whole nucleus' fields (for the kernel radius).
    half_fields : (PhaseFields, PhaseFields) or None
        The halves' fields (:func:`half_phase_fields`).
    config : FitConfig

    Returns
    -------
    (FitConfig, dict)
        With ``config.prior.split_half_floor`` (default), the data-chosen regularisation
        (``"steadiness"``) and two half fields: ``config`` with ``prior.strength_floor``
        the larger of :func:`chromarate.fit.regularise.split_half_strength` (at the kernel
        radius :func:`chromarate.fit.direct.resolve_radius` gives: the noise rule's, or
        the configured one) and the user's floor, and a record of the halves'
        ``split_half_agreement`` and their own floor ``split_half_floor``. Otherwise
        ``config`` unchanged and an empty record.
    """
    from .fit.direct import resolve_radius
    from .fit.regularise import split_half_strength

    prior = config.prior
    if half_fields is None or not prior.split_half_floor or prior.regularisation != "steadiness":
        return config, {}
    try:
        radius, _ = resolve_radius(fields, config)
        floor, record = split_half_strength(half_fields, config, radius)
    except ChromarateError:
        return config, {}
    record = {**record, "split_half_floor": floor}
    return config.model_copy(update={"prior": prior.model_copy(
        update={"strength_floor": max(floor, float(prior.strength_floor))})}), record


def half_rate_maps(fields: PhaseFields, fit: FitResult, config: PipelineConfig,
                   halves: tuple[DensityMap, DensityMap], background: float = 0.0, *,
                   half_fields: tuple[PhaseFields, PhaseFields] | None = None
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Closed-form rate maps of two independent halves of the localizations.

    The halves' phase fields (:func:`half_phase_fields`, or ``half_fields`` when already
    mapped) are inverted by the closed form with the settings ``fit`` chose.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) or None
        None when a half is too sparse to map (no figure, not a failure).
    """
    from .fit.direct import invert_direct

    if half_fields is None:
        half_fields = half_phase_fields(halves, fields.mask, config, background,
                                        scale=halves_scale(fields))
    if half_fields is None:
        return None
    closed_config = _closed_config(fit, config)
    try:
        a, b = (invert_direct(h, closed_config).rate for h in half_fields)
    except ChromarateError:
        return None
    return a, b


def closed_form_check(fields: PhaseFields, fit: FitResult, config: PipelineConfig) -> np.ndarray:
    """The windowed closed form on ``fields`` with the settings ``fit`` chose (the fit's own
    map when it is the closed form)."""
    from .fit.direct import invert_direct

    if fit.meta.get("method") == "direct":
        return fit.rate
    return invert_direct(fields, _closed_config(fit, config)).rate


def with_split_half_std(fit: FitResult,
                        half_maps: tuple[np.ndarray, np.ndarray] | None,
                        closed: np.ndarray | None = None, *,
                        balance: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None
                        ) -> FitResult:
    """``fit`` with the noise part of its single-fit ``rate_std`` measured by the halves.

    The noise part is :func:`chromarate.fit.uncertainty.nearest_estimator_noise` over the
    estimators the fit can be compared with: the windowed closed form (``half_maps``, the
    halves' closed-form maps, and ``closed``, the whole data's,
    :func:`closed_form_check`) and, where the fit followed the balance prior at full
    strength, the balance estimate (``balance``: :func:`balance_maps`). For each, the larger of its noise
    measured by the halves and the fit's RMS departure from it (over
    ``SPLIT_HALF_SMOOTHING_WINDOWS`` test windows); of the two, the smaller. The smoothing
    bias (:func:`chromarate.fit.uncertainty.smoothing_bias`) is added in quadrature. A
    fit that follows the balance prior is then charged with the balance estimate's noise
    and its departure from it, not with the closed form's noise, which its prior keeps out
    (on the ``simulate`` nuclei the closed form's made the interval cover 99-100 % of the
    pixels; docs/validation.md).

    Without ``closed`` a PINN fit's own interval (``"disagreement"``: its disagreement with
    the closed form and the same bias, :mod:`chromarate.fit.loop`) stands for the closed
    form's departure: the closed-form halves' interval is kept where it is wider. A
    closed-form fit (``"residual"``) is its own closed form, and without ``closed`` the
    balance estimator is not used. Pixels where no estimator gives a figure (a half's map,
    or the whole closed form, undefined there) keep the fit's own value. An ensemble's
    ``rate_std`` (the user asked for it), a fit without ``rate_std``, without the halves'
    closed-form maps (a half too sparse to map; then the balance halves are not used
    either), and a fit that did not record its test window are returned unchanged.
    ``meta["rate_std_source"]`` becomes ``"split_half"``.
    """
    from .fit.uncertainty import (SPLIT_HALF_SMOOTHING_WINDOWS, interval_std,
                                  nearest_estimator_noise, smoothing_bias)

    source = fit.meta.get("rate_std_source")
    window = fit.meta.get("test_window_px")  # as the fit capped it on a small nucleus
    if (half_maps is None or fit.rate_std is None or not window
            or source not in ("residual", "disagreement")):
        return fit
    trusted = np.asarray(fit.trusted, dtype=bool)
    own = np.asarray(fit.rate_std, dtype=np.float64)
    if source == "residual":  # the fit is the closed form
        closed = fit.rate
    if closed is None:  # the closed-form halves' noise alone, the fit's own interval below
        estimators = [(fit.rate, half_maps)]
    else:
        estimators = [(closed, half_maps)] + ([] if balance is None else [balance])
    noise = nearest_estimator_noise(fit.rate, estimators, trusted,
                                    SPLIT_HALF_SMOOTHING_WINDOWS * float(window))
    passes = 1 if fit.meta.get("method") == "direct" else 2
    measured = interval_std(noise, smoothing_bias(fit.rate, trusted, float(window), passes=passes))
    if closed is None:
        measured = np.fmax(measured, own)
    std = np.where(np.isfinite(measured), measured, own)
    std = np.where(trusted, std, np.nan).astype(np.float32)
    return replace(fit, rate_std=std, meta={**fit.meta, "rate_std_source": "split_half"})


def with_calibration_std(fit: FitResult, fields: PhaseFields) -> FitResult:
    """``fit`` with the density-scale calibration's error of the absolute rate added to a
    single fit's ``rate_std`` in quadrature.

    The term is ``CALIBRATION_REL_STD[method]`` times the rate
    (:data:`chromarate.fit.uncertainty.CALIBRATION_REL_STD`, by the calibration method in
    ``fields.meta["calibration"]``): an error shared by the whole nucleus, which neither
    the halves nor the fit's residuals can show. Fields without a calibration record
    (given directly, or mapped with ``phase.calibration: none`` and the user's own density
    scale), an ensemble's ``rate_std`` and a fit without ``rate_std`` are returned
    unchanged, as is a fit that already carries the term. The relative figure used is
    recorded in ``meta["calibration_rel_std"]``.
    """
    from .fit.uncertainty import CALIBRATION_REL_STD, interval_std

    method = (fields.meta.get("calibration") or {}).get("method")
    rel = CALIBRATION_REL_STD.get(method) if isinstance(method, str) else None
    if (rel is None or fit.rate_std is None or "calibration_rel_std" in fit.meta
            or fit.meta.get("rate_std_source") not in ("residual", "disagreement", "split_half")):
        return fit
    std = interval_std(fit.rate_std, rel * np.abs(np.asarray(fit.rate, dtype=np.float64)))
    return replace(fit, rate_std=std.astype(np.float32),
                   meta={**fit.meta, "calibration_rel_std": float(rel)})


def with_level(fit: FitResult, fields: PhaseFields) -> FitResult:
    """``fit`` with its rate and ``rate_std`` multiplied by the calibration's level factor.

    The factor is ``level_factor`` of ``fields.meta["calibration"]``
    (:func:`chromarate.fit.calibrate.calibrate_scale` with ``censored_level``; recorded
    by default only where the calibration's minimum is pinned at its clipping bound,
    ``phase.censored_level: at_bound``): the ratio of the censored scale's mean rate to
    the calibrated scale's, raised to ``phase.censored_level_share`` (0.5 by default, so
    the mean moves halfway, in ratio, towards the censored scale's), while the pattern
    stays the one fitted at the calibrated scale. A fit without the record, or one that
    already carries ``meta["level_factor"]``, is returned unchanged; otherwise the
    factor applied is recorded there.
    """
    if "level_factor" in fit.meta:
        return fit
    factor = float((fields.meta.get("calibration") or {}).get("level_factor", 1.0))
    if not np.isfinite(factor) or factor <= 0:
        factor = 1.0
    if factor == 1.0:
        return fit
    std = None if fit.rate_std is None else (np.asarray(fit.rate_std) * factor).astype(
        np.asarray(fit.rate_std).dtype)
    rate = (np.asarray(fit.rate) * factor).astype(np.asarray(fit.rate).dtype)
    return replace(fit, rate=rate, rate_std=std, meta={**fit.meta, "level_factor": factor})


def fields_quality(fields: PhaseFields, fit: FitResult, config: PipelineConfig = PipelineConfig(),
                   *, density: np.ndarray | None = None, n_localizations: int | None = None,
                   resolution_nm: float | None = None,
                   halves: tuple[DensityMap, DensityMap] | None = None,
                   background: float = 0.0,
                   half_maps: tuple[np.ndarray, np.ndarray] | None = None,
                   split_half_source: str = "closed-form",
                   closed_form_rate: np.ndarray | None = None) -> QualityReport:
    """The quality report of a fit (:func:`chromarate.quality.assess_quality`).

    The windowed closed form is computed on the same fields for the agreement check (unless
    the fit is the closed form itself), with the rate prior, window and mollifier radius the
    fit chose (so the choice is not measured again). Without a density (fields given directly), the density
    contrast is read from the chromatin fraction ``phi_h + phi_e``. The split-half check
    is the agreement, on the fit's trusted pixels, of ``half_maps`` (two halves of the
    localizations mapped by the estimator ``split_half_source`` names: ``"closed-form"``,
    :func:`half_rate_maps`, or ``"balance"``, :func:`half_balance_maps`), or of the maps
    computed here from ``halves`` (denoised maps of the two halves on the fields' grid) and
    ``background`` (the level subtracted from the whole density), by the estimator the
    pipeline would choose: the balance where the fit followed the balance prior at full
    strength, the closed form otherwise. ``closed_form_rate``: the closed form already
    computed by :func:`closed_form_check` (else computed here).
    """
    closed = (closed_form_check(fields, fit, config) if closed_form_rate is None
              else closed_form_rate)
    if half_maps is None and halves is not None:
        half_fields = half_phase_fields(halves, fields.mask, config, background,
                                        scale=halves_scale(fields))
        half_maps, split_half_source = gate_half_maps(fit, half_fields, lambda: (
            None if half_fields is None else half_rate_maps(
                fields, fit, config, halves, background, half_fields=half_fields)))
    split_r = None if half_maps is None else map_agreement(half_maps[0], half_maps[1], fit.trusted)
    dens = density if density is not None else np.where(fields.mask, fields.phi_h + fields.phi_e, 0.0)
    return assess_quality(
        n_localizations=n_localizations, pixel_size_nm=fields.pixel_size_nm, mask=fields.mask,
        denoised=dens, phase_meta=fields.meta, rate=fit.rate, trusted=fit.trusted,
        closed_form_rate=closed, rate_std=fit.rate_std,
        residual_term=(fit.meta.get("final_terms") or {}).get("residual"),
        mollifier_radius_px=fit.meta.get("mollifier_radius_px"), resolution_nm=resolution_nm,
        rate_std_source=fit.meta.get("rate_std_source"), split_half_r=split_r,
        split_half_source=split_half_source,
        held_to_balance=_held_to_balance(fit), ambiguous_prior=_ambiguous_prior(fit),
        rate_prior=(fit.meta.get("regularisation") or {}).get("rate_prior"))


def _timer(timings: dict[str, float]):
    """A helper that runs a stage, records its seconds in ``timings`` and returns the event."""

    def timed(name, fn, *args, nucleus_id=None):
        t0 = time.perf_counter()
        out = fn(*args)
        timings[name] = time.perf_counter() - t0
        return out, StageDone(stage=name, seconds=timings[name], nucleus_id=nucleus_id)

    return timed


def _resolution(density: DensityMap, locs: Localizations | None, crop: DensityMap) -> float | None:
    """FRC resolution (nm) for the quality gate: the acquisition's when it was measured
    (``density.meta``), else from the localizations inside the nucleus crop; None for
    image inputs or when FRC cannot be computed."""
    known = density.meta.get("resolution_nm") if density.meta else None
    if known is not None:
        return float(known)
    if locs is None:
        return None
    p = crop.pixel_size_nm
    (y0, x0), (ny, nx) = crop.origin_nm, crop.data.shape
    x, y = locs.table["x_nm"].to_numpy(), locs.table["y_nm"].to_numpy()
    inside = (y >= y0) & (y < y0 + ny * p) & (x >= x0) & (x < x0 + nx * p)
    if inside.sum() < 100:
        return None
    sub = Localizations(table=locs.table.loc[inside].reset_index(drop=True), meta=dict(locs.meta))
    try:
        value = fourier_ring_correlation(sub).resolution_nm
    except (ChromarateError, ValueError):
        return None
    return float(value) if value is not None and np.isfinite(value) else None


def phase_density(task: NucleusTask) -> DensityMap:
    """The density a nucleus' phase mapping reads: its denoised crop less the background
    level measured around it (:attr:`NucleusTask.background`; the crop itself without one).
    """
    return _minus(task.denoised, _level(task))


def _level(task: NucleusTask) -> float:
    """The background level to subtract for a task (0 without an estimate)."""
    return float(task.background.level) if task.background is not None else 0.0


def _minus(density: DensityMap, level: float) -> DensityMap:
    """``density`` less a constant level (the same map when the level is 0)."""
    if not level:
        return density
    return replace(density, data=(np.asarray(density.data, dtype=np.float32) - np.float32(level)))


def _grown(box: tuple[slice, slice], margin: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """A bounding box (:func:`scipy.ndimage.find_objects`) grown by ``margin`` pixels on
    every side and clipped to ``shape`` (:func:`chromarate.segment.crop_to_mask` of the
    label's mask, without scanning the map)."""
    return tuple(slice(max(int(b.start) - margin, 0), min(int(b.stop) + margin, n))
                 for b, n in zip(box, shape))


def _data_extent(x: np.ndarray, y: np.ndarray, grid: DensityMap) -> np.ndarray:
    """bool map of ``grid``: the pixels inside the bounding box of the localizations, less a
    band of three blur widths at its edge (the padding a rendering adds holds no data, and
    the localization error scatters a few localizations past the field's edge, so the
    outermost pixels of the box are nearly empty)."""
    p = grid.pixel_size_nm
    out = np.zeros(grid.data.shape, dtype=bool)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        return out
    blur = float(grid.meta.get("blur_nm") or 0.0)
    m = int(np.ceil(3.0 * blur / p)) + 1 if np.isfinite(blur) else 1
    iy0, iy1 = (int(np.floor((v - grid.origin_nm[0]) / p)) for v in (y[finite].min(), y[finite].max()))
    ix0, ix1 = (int(np.floor((v - grid.origin_nm[1]) / p)) for v in (x[finite].min(), x[finite].max()))
    out[max(iy0 + m, 0):max(iy1 + 1 - m, 0), max(ix0 + m, 0):max(ix1 + 1 - m, 0)] = True
    return out


def _nonzero_extent(data: np.ndarray) -> np.ndarray:
    """bool map: the bounding box of the nonzero pixels of an image (a rendered map given as
    an image keeps its zero padding outside it)."""
    out = np.zeros(data.shape, dtype=bool)
    rows, cols = np.nonzero(np.isfinite(data) & (data != 0))
    if rows.size:
        out[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    return out


def _count_inside(x: np.ndarray, y: np.ndarray, mask: np.ndarray, grid: DensityMap) -> int:
    """Number of localizations that fall in ``mask`` on ``grid``'s pixels."""
    p = grid.pixel_size_nm
    iy = np.floor((y - grid.origin_nm[0]) / p).astype(np.int64)
    ix = np.floor((x - grid.origin_nm[1]) / p).astype(np.int64)
    ok = (iy >= 0) & (iy < mask.shape[0]) & (ix >= 0) & (ix < mask.shape[1])
    return int(mask[iy[ok], ix[ok]].sum())


def _versions() -> dict[str, str]:
    out = {"chromarate": __version__, "python": platform.python_version(),
           "numpy": np.__version__}
    try:
        from importlib.metadata import version
        for pkg in ("torch", "zarr", "scipy", "scikit-image"):
            try:
                out[pkg] = version(pkg)
            except Exception:  # noqa: BLE001 - a missing optional package is fine
                pass
    except ImportError:  # pragma: no cover
        pass
    return out
