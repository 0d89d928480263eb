"""The two kinds of batch task: prepare one input, and fit and write one nucleus.

Both are plain functions of small picklable arguments, so they run the same in the calling
process or on a dask worker, and both always return (errors become failure rows): a bad
file or a failed fit never raises out of a task. Files are touched only through
:mod:`chromarate.io`.

Resume: a nucleus is skipped when ``<out>/<name>/<id>.ome.zarr`` is a complete result
written with the same config hash from an input with the same sha256. An input whose
manifest (``<out>/<name>/input.json``) lists nuclei that are all done is not even read.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._types import NucleusFailed
from ..analysis import rate_correlation, rate_summary
from ..analysis.nuclei import nucleus_from_stack
from ..config import QUIET_MIGRATION, PhaseConfig, PipelineConfig, config_hash, make_config
from ..data import read_truth_for
from ..device import spread_device
from ..errors import ChromarateError, ConfigError, InputFormatError, ResultStoreError, ResultVersionError
from ..export import TRUSTED_LABEL
from ..io.batch_files import read_json, write_json
from ..io.zarr_store import read_result, write_result
from ..pipeline import NucleusResult, NucleusTask, Pipeline

__all__ = [
    "InputJob",
    "InputPlan",
    "MANIFEST_NAME",
    "SUMMARY_COLUMNS",
    "failure_row",
    "file_sha256",
    "input_state",
    "prepare_input",
    "result_path",
    "row_from_stack",
    "run_nucleus",
]

log = logging.getLogger("chromarate.batch")

#: Columns of ``summary.csv``, one row per nucleus (or per input that failed before
#: segmentation, with an empty ``nucleus_id``).
SUMMARY_COLUMNS = (
    "input", "name", "nucleus_id", "status", "resumed", "error", "n_localizations",
    "pixel_size_nm", "rate_mean", "rate_median", "rate_q05", "rate_q95", "rate_corr_truth",
    "mollifier_radius_px", "report_radius_px", "qc_reasons", "split_half_r", "calibration_scale",
    "calibration_level_factor", "background_level",
    "chosen_rate_smoothness", "chosen_test_window_um", "chosen_rate_fourier_scale_per_um",
    "chosen_rate_prior", "chosen_prior_departure", "chosen_prior_shared_departure",
    "chosen_strength_floor", "chosen_rate_variation", "chosen_smoothness_floor",
    "observation_blur_nm", "fit_seconds", "total_seconds", "device", "config_hash", "result_path",
)

def _number(value) -> float:
    """``value`` as a float, NaN (an empty cell) for None."""
    return np.nan if value is None else float(value)


#: File in each input's output folder recording what segmentation found.
MANIFEST_NAME = "input.json"

#: File names in the batch output folder.
SUMMARY_NAME = "summary.csv"
LOG_NAME = "batch.log"
_MANIFEST_FORMAT = "chromarate-batch-input"
_MANIFEST_VERSION = 1
_IMAGE_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class InputJob:
    """One input of a batch and where its results go.

    Attributes
    ----------
    path : Path
        The input file.
    name : str
        Its output folder name (see :func:`chromarate.batch.inputs.output_names`).
    out_dir : Path
        The batch output folder; results go to ``out_dir / name``.
    config : PipelineConfig
    overwrite : bool
        Refit nuclei even when a matching result exists.
    """

    path: Path
    name: str
    out_dir: Path
    config: PipelineConfig
    overwrite: bool = False

    @property
    def folder(self) -> Path:
        return self.out_dir / self.name

    @cached_property
    def config_hash(self) -> str:
        """:func:`chromarate.config.config_hash` of ``config`` (computed once)."""
        return config_hash(self.config)


@dataclass(frozen=True)
class InputPlan:
    """What preparing an input found: nuclei to fit, nuclei already done, failures.

    Attributes
    ----------
    job : InputJob
    sha256 : str or None
        Of the input file (None if it could not be read).
    input_format : str or None
        Detected format of the input.
    tasks : tuple of NucleusTask
        Nuclei to fit.
    resumed : tuple of dict
        Summary rows of nuclei whose results already exist (skipped).
    failed : tuple of dict
        Summary rows of failures: the whole input, or single nuclei.
    seconds : float
        Wall time of the preparation.
    read_input : bool
        False when the manifest showed every nucleus done and the file was not read.
    notes : tuple of str
        Existing results that will be replaced, and why (for the batch log).
    """

    job: InputJob
    sha256: str | None
    input_format: str | None = None
    tasks: tuple[NucleusTask, ...] = ()
    resumed: tuple[dict, ...] = ()
    failed: tuple[dict, ...] = ()
    seconds: float = 0.0
    read_input: bool = True
    notes: tuple[str, ...] = ()
    error_detail: str = field(default="", repr=False)

    @property
    def n_nuclei(self) -> int:
        return len(self.tasks) + len(self.resumed) + sum(
            r["nucleus_id"] is not None for r in self.failed)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (hex).

    Raises
    ------
    InputFormatError
        If the file cannot be read (the message names it).
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise InputFormatError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputFormatError("is a directory, expected a localization file", path=path) from None
    except OSError as exc:
        raise InputFormatError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    return h.hexdigest()


def _with_read_hint(message: str) -> str:
    """A reader's error with the batch's way to give the option it asks for: where it asks
    to ``pass units=`` or ``pass pixel_size_nm=`` (Python keywords a batch user cannot
    pass), the ``read`` settings and the ``run`` command's options that give them.

    Examples
    --------
    >>> _with_read_hint('column "x" has no unit; pass units="nm"')
    'column "x" has no unit; pass units="nm"; in a batch set read.units (chromarate run --units)'
    >>> _with_read_hint('not a recognised format; pass format="generic" ... units="nm"')
    'not a recognised format; pass format="generic" ... units="nm"'
    """
    pixel = "read.pixel_size_nm (chromarate run --pixel-size-nm)"
    if "pass units=" in message:
        # a unit is asked for; the pixel size only if the unit turns out to be px
        extra = f", and for px also {pixel}" if "pixel_size_nm=" in message else ""
        return f"{message}; in a batch set read.units (chromarate run --units){extra}"
    if "pass pixel_size_nm=" in message:
        return f"{message}; in a batch set {pixel}"
    return message


def result_path(job: InputJob, nucleus_id: int) -> Path:
    """Where the result of nucleus ``nucleus_id`` of ``job`` is written."""
    return job.folder / f"{nucleus_id}.ome.zarr"


def failure_row(job: InputJob, error: str, nucleus_id: int | None = None) -> dict:
    """Summary row of a failed input (``nucleus_id`` None) or nucleus."""
    row = {c: np.nan for c in SUMMARY_COLUMNS}
    row.update(input=str(job.path), name=job.name, nucleus_id=nucleus_id, status="failed",
               resumed=False, error=error, qc_reasons="", device="", config_hash=job.config_hash,
               result_path="")
    return row


def row_from_stack(stack, job: InputJob, path: Path, *, resumed: bool) -> dict:
    """Summary row of a written result, from the result stack and its provenance."""
    prov = stack.provenance
    fit = prov.get("fit") or {}
    timings = prov.get("timings") or {}
    # the rate is summarised where the fit trusts it (Nucleus.rate_region: results written
    # before the trusted label are summarised over the nucleus, docs/batch.md)
    region = nucleus_from_stack(stack, path).rate_region
    if stack.labels.get(TRUSTED_LABEL) is None:
        log.debug("%s: written before the trusted label; rate summary over the nucleus", path)
    corr = (prov.get("metrics") or {}).get("rate_corr_truth")
    row = {c: np.nan for c in SUMMARY_COLUMNS}
    qc = prov.get("qc") or {}
    chosen = (fit.get("meta") or {}).get("regularisation") or {}
    calibration = (prov.get("phase") or {}).get("calibration") or {}
    row.update(
        input=str(job.path), name=job.name, nucleus_id=int(prov.get("nucleus_id")),
        status=qc.get("status", "ok"), resumed=resumed, error="",
        qc_reasons="; ".join(qc.get("reasons") or []),
        split_half_r=(qc.get("metrics") or {}).get("split_half_r", np.nan),
        calibration_scale=calibration.get("scale", np.nan),
        calibration_level_factor=_number(calibration.get("level_factor")),
        background_level=((prov.get("phase") or {}).get("background") or {}).get("level", np.nan),
        chosen_rate_smoothness=chosen.get("rate_smoothness", np.nan),
        chosen_test_window_um=chosen.get("test_window_um", np.nan),
        chosen_rate_fourier_scale_per_um=chosen.get("rate_fourier_scale_per_um", np.nan),
        chosen_rate_prior=chosen.get("rate_prior") or "",
        chosen_prior_departure=_number(chosen.get("prior_departure")),
        chosen_prior_shared_departure=_number(chosen.get("prior_shared_departure")),
        chosen_strength_floor=chosen.get("strength_floor", np.nan),
        chosen_rate_variation=_number(chosen.get("rate_variation")),
        chosen_smoothness_floor=_number(chosen.get("smoothness_floor")),
        observation_blur_nm=(fit.get("meta") or {}).get("observation_blur_nm", np.nan),
        n_localizations=prov.get("n_localizations", np.nan),
        pixel_size_nm=stack.pixel_size_nm,
        **rate_summary(stack.channels["rate"], region),
        rate_corr_truth=np.nan if corr is None else float(corr),
        mollifier_radius_px=(fit.get("meta") or {}).get("mollifier_radius_px", np.nan),
        report_radius_px=chosen.get("report_radius_px",
                                    (fit.get("meta") or {}).get("mollifier_radius_px", np.nan)),
        fit_seconds=timings.get("fit", np.nan),
        total_seconds=float(sum(v for v in timings.values() if isinstance(v, (int, float)))),
        device=fit.get("device", ""), config_hash=prov.get("config_hash", ""),
        result_path=str(path),
    )
    return row


def _migrated_hash(prov: dict) -> str | None:
    """The config hash of a result's stored config read in the current layout (None when
    it has none or it no longer validates). A result written by an older chromarate holds
    its config in that version's layout, and a hash of that layout: read through the
    migration (quietly: the user cannot edit a stored config), the same settings hash as
    they do now."""
    stored = prov.get("config")
    if not isinstance(stored, dict):
        return None
    phase = stored.get("phase")
    if isinstance(phase, dict) and "background" not in phase:
        # written before the background subtraction existed: it was made without one
        phase = {**phase, "background": "none"}
        stored = {**stored, "phase": phase}
    if isinstance(phase, dict) and "censored_level" not in phase:
        # written before the censored level at the clipping bound: its rate has none
        phase = {**phase, "censored_level": "never"}
        stored = {**stored, "phase": phase}
    if isinstance(phase, dict) and "censored_level_share" not in phase:
        # written before the share existed: a level applied then was the full step; where
        # none could apply the share changes nothing, and the current default stands
        levelled = (phase.get("censored_level") != "never"
                    and phase.get("calibration", "physics") == "physics")
        share = 1.0 if levelled else PhaseConfig.model_fields["censored_level_share"].default
        stored = {**stored, "phase": {**phase, "censored_level_share": share}}
    try:
        return config_hash(make_config(PipelineConfig, stored, context={QUIET_MIGRATION: True}))
    except (ConfigError, TypeError, ValueError, RecursionError):
        # a stored config is input like any other: whatever it holds, the nucleus is refitted
        return None


def _check_done(job: InputJob, nucleus_id: int, sha256: str) -> tuple[dict | None, str]:
    """(summary row, "") of a finished result that matches ``job``; (None, why) if the
    nucleus must be fitted (why is "" when there is simply no result yet); (failed row, "")
    for a result made from other content of the input, which only --overwrite replaces."""
    path = result_path(job, nucleus_id)
    if not path.exists():
        return None, ""
    if job.overwrite:
        return None, "--overwrite"
    try:
        stack = read_result(path)
    except ResultVersionError as exc:  # not damaged: kept, like a result of other content
        return failure_row(job, f"{path} was not replaced: {exc.message}; pass --overwrite "
                                "to replace it", nucleus_id), ""
    except ResultStoreError as exc:
        return None, f"damaged ({exc.message})"  # fit again and replace it
    prov = stack.provenance
    migrated = False
    if prov.get("config_hash") != job.config_hash:
        if _migrated_hash(prov) != job.config_hash:
            return None, f"made with another config (hash {prov.get('config_hash')})"
        migrated = True  # an older layout of this config: resumed, not refitted
    if (prov.get("input") or {}).get("sha256") != sha256:  # kept: never replaced silently
        return failure_row(job, f"{path} exists and was made from different content of this "
                                "input file (sha256 differs); it was not replaced: pass "
                                "--overwrite to replace it", nucleus_id), ""
    row = row_from_stack(stack, job, path, resumed=True)
    if migrated:  # the summary names the config one way (the result keeps its own record)
        row["config_hash"] = job.config_hash
    return row, ""


def _done_row(job: InputJob, nucleus_id: int, sha256: str) -> dict | None:
    row = _check_done(job, nucleus_id, sha256)[0]
    return row if row is not None and row["status"] != "failed" else None


def _manifest(job: InputJob, sha256: str) -> dict | None:
    """The manifest of ``job``'s input folder if it describes this input file (``sha256``)
    under this config and the job does not overwrite; else None."""
    if job.overwrite:
        return None
    m = read_json(job.folder / MANIFEST_NAME)
    if m is None or m.get("format") != _MANIFEST_FORMAT or m.get("version") != _MANIFEST_VERSION:
        return None
    if m.get("sha256") != sha256 or m.get("config_hash") != job.config_hash:
        return None
    return m


def _write_manifest(job: InputJob, sha256: str, fmt: str | None, ids: list[int],
                    failed: list[dict]) -> None:
    write_json(job.folder / MANIFEST_NAME, {
        "format": _MANIFEST_FORMAT, "version": _MANIFEST_VERSION,
        "input": str(Path(job.path).resolve()), "sha256": sha256, "input_format": fmt,
        "config_hash": job.config_hash, "nuclei": ids,
        "failed": [{"nucleus_id": r["nucleus_id"], "error": r["error"]} for r in failed],
    })


def input_state(job: InputJob) -> dict[str, Any]:
    """What a run would do with ``job``, without reading the input beyond its sha256.

    Returns
    -------
    dict
        ``state``: ``"done"`` (every nucleus of the manifest has a matching result; the
        input would be skipped), ``"partial"`` (some are done), ``"new"`` (no manifest for
        this config and input), or ``"unreadable"``; ``n_nuclei`` and ``n_done`` when
        known; ``error`` when unreadable.
    """
    try:
        sha = file_sha256(job.path)
    except ChromarateError as exc:
        return {"state": "unreadable", "error": str(exc)}
    m = _manifest(job, sha)
    if m is None:
        return {"state": "new"}
    ids = [int(i) for i in m.get("nuclei", [])]
    done = sum(_done_row(job, i, sha) is not None for i in ids)
    return {"state": "done" if done == len(ids) else "partial", "n_nuclei": len(ids),
            "n_done": done}


def _fast_resume(job: InputJob, sha: str, t0: float) -> InputPlan | None:
    """The plan of an input whose manifest says all its nuclei are done, else None."""
    m = _manifest(job, sha)
    if m is None:
        return None
    rows = []
    for nid in m.get("nuclei", []):
        row = _done_row(job, int(nid), sha)
        if row is None:
            return None
        rows.append(row)
    failed = tuple(failure_row(job, f["error"], int(f["nucleus_id"])) for f in m.get("failed", []))
    return InputPlan(job=job, sha256=sha, input_format=m.get("input_format"),
                     resumed=tuple(rows), failed=failed, seconds=time.perf_counter() - t0,
                     read_input=False)


def prepare_input(job: InputJob) -> InputPlan:
    """Read an input, segment its nuclei and decide which ones need fitting.

    Never raises: an input that cannot be read or segmented gives a plan whose ``failed``
    holds one row with the error.

    Parameters
    ----------
    job : InputJob

    Returns
    -------
    InputPlan
    """
    from ..io.images import read_density_image
    from ..io.localizations import read_localizations

    t0 = time.perf_counter()
    path = Path(job.path)
    try:
        sha = file_sha256(path)
        plan = _fast_resume(job, sha, t0)
        if plan is not None:
            return plan
        pipe = Pipeline(job.config)
        if path.name.lower().endswith(_IMAGE_SUFFIXES):
            fmt = "tiff-density"
            items = pipe.iter_prepare_density(read_density_image(path))
        else:
            try:
                locs = read_localizations(path, defaults=job.config.read.options())
            except InputFormatError as exc:
                raise InputFormatError(_with_read_hint(exc.message), path=exc.path) from None
            fmt = locs.meta.get("format")
            items = pipe.iter_prepare(locs)
        tasks, failed = [], []
        for item in items:
            if isinstance(item, NucleusTask):
                tasks.append(item)
            elif isinstance(item, NucleusFailed):
                failed.append(failure_row(job, f"{item.stage}: {item.error}", item.nucleus_id))
        _write_manifest(job, sha, fmt, [t.nucleus_id for t in tasks], failed)
        to_fit, resumed, notes = [], [], []
        for task in tasks:
            row, why = _check_done(job, task.nucleus_id, sha)
            if row is None:
                to_fit.append(task)
                if why:
                    notes.append(f"{result_path(job, task.nucleus_id)} will be replaced: {why}")
            elif row["status"] == "failed":
                failed.append(row)  # an existing result that must not be replaced
            else:
                resumed.append(row)
        return InputPlan(job=job, sha256=sha, input_format=fmt, tasks=tuple(to_fit),
                         resumed=tuple(resumed), failed=tuple(failed),
                         seconds=time.perf_counter() - t0, notes=tuple(notes))
    except ChromarateError as exc:
        return InputPlan(job=job, sha256=None, failed=(failure_row(job, str(exc)),),
                         seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad input must not stop the batch
        return InputPlan(job=job, sha256=None,
                         failed=(failure_row(job, f"{type(exc).__name__}: {exc}"),),
                         seconds=time.perf_counter() - t0, error_detail=traceback.format_exc())


def _worker_device(device: str | None, config: PipelineConfig) -> str | None:
    """Spread ``auto`` over the GPUs (:func:`~chromarate.device.spread_device`) when
    running on a numbered dask worker; else ``device`` unchanged."""
    try:
        from distributed import get_worker

        index = int(get_worker().name)
    except (ImportError, ValueError, TypeError):
        return device  # not on a dask worker, or a worker without a numeric name
    spec = device if device is not None else config.fit.device
    spread = spread_device(spec, index)
    return device if spread == spec else spread


def run_nucleus(plan: InputPlan, task: NucleusTask, *, device: str | None = None,
                on_event: Callable[[object], None] | None = None) -> dict:
    """Fit one nucleus, write its result atomically and return its summary row.

    Never raises for a failed fit or write: the row then has ``status="failed"`` and the
    error (``"<stage>: <message>"``); an unexpected exception's traceback is kept in the
    row's ``_traceback`` (not a summary column) for the batch log.

    Parameters
    ----------
    plan : InputPlan
        The plan of the nucleus's input (job, input sha256 and format).
    task : NucleusTask
    device : str, optional
        Overrides ``config.fit.device``; ``"auto"`` on a numbered dask worker takes GPU
        ``worker number mod GPU count`` when there are several.
    on_event : callable, optional
        Called with every pipeline event (stage timings, fit progress).
    """
    job = plan.job
    try:
        dev = _worker_device(device, job.config)
        prov = {"input": {"path": str(Path(job.path).resolve()), "sha256": plan.sha256,
                          "format": plan.input_format}}
        result = None
        for event in Pipeline(job.config).iter_nucleus(task, device=dev, provenance=prov):
            if on_event is not None:
                on_event(event)
            if isinstance(event, NucleusFailed):
                return failure_row(job, f"{event.stage}: {event.error}", task.nucleus_id)
            if isinstance(event, NucleusResult):
                result = event
        stack = _with_truth_metrics(result, job.path)
        target = result_path(job, task.nucleus_id)
        write_result(stack, target, overwrite=True)
        return row_from_stack(stack, job, target, resumed=False)
    except ChromarateError as exc:
        return failure_row(job, str(exc), task.nucleus_id)
    except Exception as exc:  # noqa: BLE001 - one failed fit must not stop the batch
        row = failure_row(job, f"{type(exc).__name__}: {exc}", task.nucleus_id)
        row["_traceback"] = traceback.format_exc()
        return row


def _truth_or_warn(input_path: Path) -> dict | None:
    """The ground truth beside ``input_path`` (:func:`read_truth_for`), or None when there
    is none or it cannot be read; the truth is optional validation metadata, so a bad truth
    file is a logged warning, never a failed nucleus."""
    try:
        return read_truth_for(input_path)
    except (ChromarateError, OSError) as exc:
        log.warning("%s: ground truth not used, the result is written without "
                    "rate_corr_truth: %s", input_path, exc)
        return None


def _with_truth_metrics(result: NucleusResult, input_path: Path):
    """The result stack, with ``metrics.rate_corr_truth`` when a readable truth file is
    beside the input (read once for all the nuclei of an input, see
    :func:`read_truth_for`; one that cannot be read is warned about and left out)."""
    stack = result.stack
    truth = _truth_or_warn(input_path)
    if truth is None:
        return stack
    corr = rate_correlation(result.fit.rate, result.fit.trusted, pixel_nm=stack.pixel_size_nm,
                            origin_nm=stack.origin_nm, truth=truth)
    metrics = {**dict(stack.provenance.get("metrics") or {}), "rate_corr_truth": corr}
    return replace(stack, provenance={**stack.provenance, "metrics": metrics})
