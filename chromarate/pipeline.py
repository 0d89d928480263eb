"""The pipeline: localizations -> (filter, drift) -> density -> denoised -> nuclei -> phase fields
-> fit -> result stack.

Written once as a generator (:meth:`Pipeline.iter_run`) yielding typed events, with a plain
wrapper (:meth:`Pipeline.run`). No file access here: callers read inputs and write results
through :mod:`chromarate.io`. The per-nucleus steps it chains live in modules of their own:
the calibrated phase mapping (:mod:`chromarate.calibrated_phase`), the maps of two halves
of the localizations (:mod:`chromarate.halves`) and the interval and level of the fitted
rate (:mod:`chromarate.rate_interval`); the quality report of a fitted nucleus is made here
(:func:`nucleus_quality`, :func:`fields_quality`).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping

import numpy as np
from scipy import ndimage as ndi

from . import __version__
from ._types import (DensityMap, FitDone, FitProgress, FitResult, Localizations, NucleusFailed,
                     PhaseFields, ResultStack, StageDone)
from .background import Background, limit_to_baseline, ring_background, subtract_level
from .calibrated_phase import calibrated_phase_fields
from .config import PipelineConfig, config_hash
from .denoise import denoise_density
from .drift import correct_drift
from .filtering import filter_localizations
from .export import build_result_stack
from .halves import (_NOT_MAPPED, held_to_balance, balance_maps, closed_form_check,
                     gate_half_maps, half_phase_fields, half_rate_maps, halves_scale,
                     split_half_floor)
from .quality import QualityReport, assess_quality, map_agreement
from .rate_interval import with_calibration_std, with_level, with_split_half_std
from .render import render_density
from .resolution import fourier_ring_correlation
from .errors import ChromarateError
from .segment import segment_foreground, segment_nuclei
from .split_half import half_density_maps, half_labels

__all__ = ["Pipeline", "NucleusResult", "NucleusTask", "crop_density", "phase_density",
           "fields_quality", "nucleus_quality"]


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


def nucleus_quality(task: NucleusTask, fields: PhaseFields, fit: FitResult,
                    config: PipelineConfig,
                    half_maps: tuple[np.ndarray, np.ndarray] | None = _NOT_MAPPED, *,
                    split_half_source: str = "closed-form",
                    closed_form_rate: np.ndarray | None = None) -> QualityReport:
    """The quality report of one fitted nucleus of the pipeline (see :func:`fields_quality`).

    ``half_maps`` are the halves' maps the split-half check compares (the closed-form maps
    from :func:`chromarate.halves.half_rate_maps`, or the balance maps from
    :func:`chromarate.halves.half_balance_maps`, as ``split_half_source`` says), or None
    when they could not be mapped (not tried again); left out, the closed-form maps are
    computed here when the task has halves. ``closed_form_rate``: the closed form the
    pipeline already computed (:func:`chromarate.halves.closed_form_check`), not computed
    again.
    """
    if half_maps is _NOT_MAPPED:
        half_maps = (None if task.halves is None
                     else half_rate_maps(fields, fit, config, task.halves, _level(task)))
    return fields_quality(fields, fit, config, density=task.denoised.data,
                          n_localizations=task.n_localizations if task.has_localizations else None,
                          resolution_nm=task.resolution_nm, half_maps=half_maps,
                          split_half_source=split_half_source, closed_form_rate=closed_form_rate)


def _ambiguous_prior(fit: FitResult) -> tuple[float, float] | None:
    """``(prior_departure, prior_shared_departure)`` where the fit recorded that the two
    figures of the rate prior disagreed (``prior_ambiguous``, :mod:`chromarate.fit.loop`),
    else None."""
    reg = fit.meta.get("regularisation") or {}
    if not reg.get("prior_ambiguous"):
        return None
    return float(reg["prior_departure"]), float(reg["prior_shared_departure"])


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
    :func:`chromarate.halves.half_rate_maps`, or ``"balance"``,
    :func:`chromarate.halves.half_balance_maps`), or of the maps
    computed here from ``halves`` (denoised maps of the two halves on the fields' grid) and
    ``background`` (the level subtracted from the whole density), by the estimator the
    pipeline would choose: the balance where the fit followed the balance prior at full
    strength, the closed form otherwise. ``closed_form_rate``: the closed form already
    computed by :func:`chromarate.halves.closed_form_check` (else computed here).
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
        held_to_balance=held_to_balance(fit), ambiguous_prior=_ambiguous_prior(fit),
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
    return subtract_level(task.denoised, _level(task))


def _level(task: NucleusTask) -> float:
    """The background level to subtract for a task (0 without an estimate)."""
    return float(task.background.level) if task.background is not None else 0.0


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
