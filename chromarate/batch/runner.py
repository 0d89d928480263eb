"""The batch runner: inputs -> one task per input (read, segment) -> one task per nucleus
(fit, write) -> ``summary.csv`` and ``batch.log``.

Tasks run through an executor (:mod:`chromarate.batch.executors`): in the calling process,
on local dask worker processes, or on an existing dask cluster. Nothing a task does can stop
the batch: failures come back as summary rows. The summary is rewritten (atomically) every
few seconds while the batch runs and once at the end, also when the batch is interrupted.
A progress line goes to ``batch.log`` (and to ``on_event``) every ``progress_every`` seconds,
also while one long fit runs; dask workers forward their nuclei's stage and fit progress
(:mod:`chromarate.batch.progress`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .. import __version__
from ..config import PipelineConfig, config_hash
from ..device import check_device
from ..errors import ChromarateError
from ..io.batch_files import batch_log, write_table
from ..io.limits import current_read_limit, parse_size, read_limit as _read_limit
from ..io.outdir import OutputLock, check_inside
from ..io.zarr_store import remove_stale_temporaries, settle_backups
from .events import BatchFinished, BatchStarted, InputPrepared, NucleusFinished
from .executors import make_executor
from .progress import PROGRESS_EVERY_S, ProgressTracker, WorkerForwarder, decode_forwarded
from .earlier import earlier_rows, merged_rows
from .inputs import (as_input_list, check_input_folders, claim_output_names, find_inputs,
                     output_names)
from .tasks import (LOG_NAME, SUMMARY_COLUMNS, SUMMARY_NAME, InputJob, InputPlan, failure_row,
                    input_state, prepare_input, run_nucleus)

__all__ = ["BatchReport", "LOG_NAME", "SUMMARY_NAME", "plan_batch", "run_batch"]


#: Seconds between rewrites of the summary while a batch runs.
SUMMARY_EVERY_S = 10.0

log = logging.getLogger("chromarate.batch")

#: ``extra`` of the log records of failed inputs and nuclei: they are also reported as
#: events, so a display that shows the events can leave these records out
#: (``record.chromarate_failure``).
_FAILURE = {"chromarate_failure": True}


@dataclass
class BatchReport:
    """What a batch did.

    Attributes
    ----------
    rows : list of dict
        One summary row per nucleus, and one per input that failed before segmentation
        (columns :data:`SUMMARY_COLUMNS`), in input order then nucleus order.
    summary_path, log_path : Path
        ``summary.csv`` and ``batch.log`` in the output folder.
    seconds : float
        Wall time.
    interrupted : bool
        True when the batch was stopped (Ctrl-C) before every task finished.
    """

    rows: list[dict] = field(default_factory=list)
    summary_path: Path | None = None
    log_path: Path | None = None
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def n_failed(self) -> int:
        """Rows (nuclei or whole inputs) that failed."""
        return sum(r["status"] == "failed" for r in self.rows)

    @property
    def n_ok(self) -> int:
        """Nuclei with a result, fitted now or earlier."""
        return sum(r["status"] != "failed" for r in self.rows)

    @property
    def n_resumed(self) -> int:
        """Nuclei skipped because their result existed with the same config and input."""
        return sum(r["status"] != "failed" and bool(r["resumed"]) for r in self.rows)

    @property
    def n_fitted(self) -> int:
        """Nuclei fitted (and written) by this run."""
        return self.n_ok - self.n_resumed

    @property
    def table(self) -> pd.DataFrame:
        """This run's rows as a DataFrame (``nucleus_id`` and ``n_localizations`` empty for
        inputs that failed whole). ``summary.csv`` also keeps an earlier run's rows of
        inputs this run did not reach (:mod:`chromarate.batch.earlier`)."""
        return summary_table(self.rows)


def summary_table(rows) -> pd.DataFrame:
    """Summary rows as a DataFrame with :data:`SUMMARY_COLUMNS`, counts as integers."""
    table = pd.DataFrame(list(rows), columns=list(SUMMARY_COLUMNS))
    # counts stay integers where some rows have none (pandas would make them floats)
    for column in ("nucleus_id", "n_localizations"):
        table[column] = pd.to_numeric(table[column], errors="coerce").round().astype("Int64")
    return table


@dataclass
class _Batch:
    """The inputs of a batch: one job each, and what is known about them before reading."""

    jobs: list[InputJob]
    problems: dict[str, str]  # job name -> why its input cannot be read or written
    notes: list[str]  # output folders given another name, for the log


def _jobs(config: PipelineConfig, inputs, out_dir: Path, overwrite: bool) -> _Batch:
    paths, problems = find_inputs(inputs, exclude=[out_dir])
    names, notes = claim_output_names(out_dir, output_names(paths))
    jobs = [InputJob(path=p, name=names[p], out_dir=out_dir, config=config, overwrite=overwrite)
            for p in paths]
    why = {}
    for job in jobs:
        try:  # every path the batch writes lies inside out_dir; its folders are proven to
            check_inside(out_dir, job.folder)
        except ChromarateError as exc:
            why[job.name] = str(exc)
        if job.path in problems:
            why[job.name] = f"{job.path}: {problems[job.path]}"
    return _Batch(jobs=jobs, problems=why, notes=notes)


def _prepare_within(job: InputJob, limit: int | None) -> InputPlan:
    """:func:`prepare_input` under the batch's read limit (on whichever worker runs it)."""
    with _read_limit(limit):
        return prepare_input(job)


def plan_batch(config: PipelineConfig, inputs: Iterable, out_dir: str | Path, *,
               overwrite: bool = False) -> pd.DataFrame:
    """What :func:`run_batch` would do, without reading inputs (beyond hashing) or writing.

    Returns
    -------
    pandas.DataFrame
        One row per input: ``input``, ``name`` (output folder), ``state`` (``"done"``:
        skipped, every nucleus has a result for this config; ``"partial"``; ``"new"``;
        ``"unreadable"``), ``n_nuclei`` and ``n_done`` (when a manifest is there) and
        ``error``.
    """
    rows = []
    batch = _jobs(config, inputs, Path(out_dir), overwrite)
    for job in batch.jobs:
        if job.name in batch.problems:
            rows.append({"input": str(job.path), "name": job.name, "state": "unreadable",
                         "n_nuclei": None, "n_done": None, "error": batch.problems[job.name]})
            continue
        st = input_state(job)
        rows.append({"input": str(job.path), "name": job.name, "state": st["state"],
                     "n_nuclei": st.get("n_nuclei"), "n_done": st.get("n_done"),
                     "error": st.get("error", "")})
    table = pd.DataFrame(rows, columns=["input", "name", "state", "n_nuclei", "n_done", "error"])
    # counts stay integers where some are missing (pandas would make them floats)
    return table.astype({"n_nuclei": "Int64", "n_done": "Int64"})


def run_batch(config: PipelineConfig, inputs: Iterable, out_dir: str | Path, *,
              device: str | None = None, workers: int = 1, scheduler: str | None = None,
              overwrite: bool = False, on_event: Callable[[object], None] | None = None,
              read_limit: int | float | str | None = None,
              wait_for_lock: float | None = None,
              progress_every: float | None = PROGRESS_EVERY_S) -> BatchReport:
    """Run ``config`` over ``inputs`` and write one result per nucleus under ``out_dir``.

    Parameters
    ----------
    config : PipelineConfig
    inputs : str, path or an iterable of them
        Files, folders (searched recursively) and glob patterns
        (see :func:`chromarate.batch.discover_inputs`); one given alone is one input. A
        folder that is, or lies inside, ``out_dir`` is refused before anything is written.
    out_dir : str or path
        Results go to ``out_dir/<name>/<nucleus-id>.ome.zarr`` (``name``: see
        :func:`chromarate.batch.inputs.output_names`), the summary to ``out_dir/summary.csv``, the
        log to ``out_dir/batch.log`` (appended).
    device : str, optional
        Overrides ``config.fit.device`` without changing the config hash.
    workers : int
        1 (default): in this process. N > 1: N local dask worker processes.
    scheduler : str, optional
        Address (or scheduler file) of a running dask.distributed scheduler; overrides
        ``workers``.
    overwrite : bool
        Refit every nucleus, even those whose result exists with the same config hash
        and input (they are replaced atomically).
    on_event : callable, optional
        Called with each :mod:`chromarate.batch.events` event, with the pipeline's stage
        and fit-progress events (as they are when tasks run in this process, as
        :class:`~chromarate.batch.events.NucleusProgress` from dask workers), and every
        ``progress_every`` seconds with a :class:`~chromarate.batch.events.BatchProgress`
        (from a background thread).
    read_limit : int, float or str, optional
        Most memory one input (or existing result) may take once decoded, e.g. ``"16G"``;
        larger ones fail with a clear error before they are read. Default: the
        ``CHROMARATE_READ_LIMIT`` environment variable of each worker, else 4 GiB or a
        quarter of its memory (see :mod:`chromarate.io.limits`).
    wait_for_lock : float, optional
        Another run writing into ``out_dir`` holds its lock: wait this many seconds for it
        (None, the default: as long as it takes; 0: fail at once). Each run takes the lock
        before it writes anything, so two runs never write into one folder together.
    progress_every : float, optional
        Seconds between progress lines in ``batch.log`` (and BatchProgress events); None
        or 0: none.

    Returns
    -------
    BatchReport

    Raises
    ------
    InputFormatError
        If a folder or pattern in ``inputs`` finds no file (before anything runs).
    ClusterError
        If ``scheduler`` cannot be reached.
    ResultStoreError
        If another run holds ``out_dir`` beyond ``wait_for_lock``.
    ConfigError
        If ``read_limit`` is not a size, or (without ``scheduler``) the
        ``CHROMARATE_READ_LIMIT`` environment variable is set to something else.
    DeviceError
        If ``device`` is not a device name, or (without ``scheduler``) names a device this
        machine does not have; checked before anything is read.
    KeyboardInterrupt
        Re-raised after the summary of the finished nuclei is written.

    Examples
    --------
    >>> from chromarate.config import load_config
    >>> report = run_batch(load_config("mine.yaml"), ["data/"],
    ...                    "results", workers=4)  # doctest: +SKIP
    >>> report.n_failed  # doctest: +SKIP
    0
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    limit = None if read_limit is None else parse_size(read_limit)
    here = scheduler is None
    if limit is None and here:
        current_read_limit()  # a bad $CHROMARATE_READ_LIMIT: refused now, not once per input
    check_device(device, here=here)
    inputs = as_input_list(inputs)
    check_input_folders(inputs, out_dir)  # before the lock file is written into it
    with OutputLock(out_dir, wait=wait_for_lock, on_wait=log.warning):
        return _run_locked(config, inputs, out_dir, device=device, workers=workers,
                           scheduler=scheduler, overwrite=overwrite, on_event=on_event,
                           limit=limit, t0=t0, progress_every=progress_every)


def _run_locked(config, inputs, out_dir: Path, *, device, workers, scheduler, overwrite,
                on_event, limit, t0, progress_every=None) -> BatchReport:
    """:func:`run_batch` once the output folder's lock is held."""
    batch = _jobs(config, inputs, out_dir, overwrite)
    jobs = batch.jobs
    order = {job.name: i for i, job in enumerate(jobs)}
    report = BatchReport(summary_path=out_dir / SUMMARY_NAME, log_path=out_dir / LOG_NAME)
    outside = on_event if on_event is not None else (lambda event: None)
    tracker = ProgressTracker(outside, progress_every)

    def emit(event) -> None:
        tracker.batch_event(event)
        outside(event)
    chash = config_hash(config)

    def save() -> None:
        rows = sorted(report.rows, key=lambda r: (order.get(r["name"], 0),
                                                  -1 if r["nucleus_id"] is None else r["nucleus_id"]))
        report.rows[:] = rows
        write_table(report.summary_path, summary_table(merged_rows(rows, earlier, order)))

    for own in (report.log_path, report.summary_path):
        if os.path.lexists(own):  # a link planted there must not be written through
            check_inside(out_dir, own)
    earlier = earlier_rows(report.summary_path, out_dir)
    with batch_log(report.log_path, log):
        log.info("chromarate %s batch: %d input(s) -> %s; config %r (hash %s); overwrite=%s",
                 __version__, len(jobs), out_dir, config.name, chash, overwrite)
        for note in batch.notes:
            log.warning("%s", note)
        runnable = [job for job in jobs if job.name not in batch.problems]
        for job in runnable:  # safe: this run holds the folder's lock
            for backup, action in settle_backups(job.folder):
                log.warning("%s the previous result an interrupted rewrite left at %s",
                            action, backup)
            for stale in remove_stale_temporaries(job.folder):
                log.warning("removed a half-written result left by an earlier run: %s", stale)
        try:
            with make_executor(workers, scheduler) as executor:
                log.info("running %s", executor.description)
                dashboard = getattr(executor, "dashboard", "")
                if dashboard:
                    log.info("dask dashboard: %s", dashboard)
                emit(BatchStarted(n_inputs=len(jobs), out_dir=out_dir, config_name=config.name,
                                  config_hash=chash, executor=executor.description,
                                  dashboard=dashboard))
                with tracker:
                    for job in jobs:
                        if job.name in batch.problems:
                            _prepared(InputPlan(job=job, sha256=None, failed=(
                                failure_row(job, batch.problems[job.name]),)), report, emit)
                    _drive(executor, runnable, report, emit, device, save, limit, tracker)
        except KeyboardInterrupt:
            report.interrupted = True
            log.warning("interrupted: %d nucleus result(s) finished; run again to resume",
                        report.n_ok)
            raise
        finally:
            report.seconds = time.perf_counter() - t0
            save()
            log.info("batch %s in %.1f s: %d ok (%d fitted, %d resumed), %d failed; summary %s",
                     "interrupted" if report.interrupted else "done", report.seconds,
                     report.n_ok, report.n_fitted, report.n_resumed, report.n_failed,
                     report.summary_path)
            emit(BatchFinished(n_ok=report.n_ok, n_fitted=report.n_fitted,
                               n_resumed=report.n_resumed, n_failed=report.n_failed,
                               seconds=report.seconds, summary_path=report.summary_path,
                               interrupted=report.interrupted))
    return report


class _InProcessEvents:
    """``on_event`` of a nucleus task run in this process: the tracker follows the nucleus,
    the caller's callback gets the pipeline's events as they are."""

    def __init__(self, name: str, nucleus_id: int, tracker: ProgressTracker, emit) -> None:
        self.name, self.nucleus_id, self.tracker, self.emit = name, nucleus_id, tracker, emit

    def __call__(self, event) -> None:
        self.tracker.nucleus_event(self.name, self.nucleus_id, event)
        self.emit(event)


def _forwarded(tracker: ProgressTracker, emit):
    """Handler of the events dask workers forward (see :class:`WorkerForwarder`)."""
    def handle(msg) -> None:
        event = decode_forwarded(msg) if isinstance(msg, dict) else None
        if event is None:
            return
        tracker.nucleus_event(event.name, event.nucleus_id, event.event)
        emit(event)

    return handle


def _drive(executor, jobs: list[InputJob], report: BatchReport, emit, device, save,
           limit: int | None = None, tracker: ProgressTracker | None = None) -> None:
    """Submit the input tasks, then each nucleus task as its input is prepared."""
    token = uuid.uuid4().hex[:8]
    pending: dict = {}
    tracker = tracker if tracker is not None else ProgressTracker(emit, None)
    topic = f"chromarate-progress-{token}"
    if not executor.in_process:
        executor.subscribe(topic, _forwarded(tracker, emit))
    for job in jobs:
        h = executor.submit(_prepare_within, job, limit, priority=0,
                            key=f"prepare-{job.name}-{token}")
        pending[h] = ("prepare", job, None)
    last_save = time.perf_counter()
    for handle, value, error in executor.results():
        kind, job, nucleus_id = pending.pop(handle)
        if kind == "prepare":
            plan = value if error is None else InputPlan(
                job=job, sha256=None, failed=(failure_row(job, _describe(error)),))
            _prepared(plan, report, emit)
            slim = replace(plan, tasks=(), resumed=(), failed=())
            for task in plan.tasks:
                events = (_InProcessEvents(job.name, task.nucleus_id, tracker, emit)
                          if executor.in_process
                          else WorkerForwarder(topic, job.name, task.nucleus_id))
                h = executor.submit(run_nucleus, slim, task, device=device,
                                    on_event=events, priority=1,
                                    key=f"nucleus-{job.name}-{task.nucleus_id}-{token}")
                pending[h] = ("nucleus", job, task.nucleus_id)
        else:
            row = value if error is None else failure_row(job, _describe(error), nucleus_id)
            _finished(row, report, emit)
        if time.perf_counter() - last_save > SUMMARY_EVERY_S:
            save()
            last_save = time.perf_counter()


def _describe(error: BaseException) -> str:
    name = type(error).__name__
    if name == "KilledWorker":
        return f"the worker running this task died ({error}); see the worker logs"
    return f"{name}: {error}"


def _prepared(plan: InputPlan, report: BatchReport, emit) -> None:
    job = plan.job
    whole = [r for r in plan.failed if r["nucleus_id"] is None]
    if whole:
        error = whole[0]["error"]
        log.error("FAILED input %s", error if str(job.path) in error else f"{job.path}: {error}",
                  extra=_FAILURE)
        if plan.error_detail:
            log.info("%s", plan.error_detail.rstrip())
    else:
        log.info("input %s -> %s/: %d nucleus(es), %d to fit, %d already done%s (%.1f s)",
                 job.path, job.name, plan.n_nuclei, len(plan.tasks), len(plan.resumed),
                 "" if plan.read_input else ", input not read", plan.seconds)
    for note in plan.notes:
        log.info("%s", note)
    emit(InputPrepared(input=str(job.path), name=job.name, n_nuclei=plan.n_nuclei,
                       n_to_fit=len(plan.tasks), n_resumed=len(plan.resumed),
                       n_failed=len(plan.failed), seconds=plan.seconds,
                       read_input=plan.read_input, error=whole[0]["error"] if whole else ""))
    for row in (*whole, *plan.resumed, *(r for r in plan.failed if r["nucleus_id"] is not None)):
        _finished(dict(row), report, emit, announce=row["nucleus_id"] is not None)


def _finished(row: dict, report: BatchReport, emit, announce: bool = True) -> None:
    tb = row.pop("_traceback", None)
    where = f"{row['name']}#{row['nucleus_id']}" if row["nucleus_id"] is not None else row["input"]
    if row["status"] != "failed" and row["resumed"]:
        log.info("resumed %s: result exists with this config (%s)", where, row["result_path"])
    elif row["status"] != "failed":
        log.info("%s %s: rate mean %.4g median %.4g, fit %.1f s on %s -> %s%s", row["status"], where,
                 row["rate_mean"], row["rate_median"], _num(row["fit_seconds"]),
                 row["device"], row["result_path"],
                 f" ({row['qc_reasons']})" if row.get("qc_reasons") else "")
    elif row["nucleus_id"] is not None:
        log.error("FAILED %s (%s): %s", where, row["input"], row["error"], extra=_FAILURE)
    if tb:
        log.info("%s", tb.rstrip())
    report.rows.append(row)
    if announce:
        emit(NucleusFinished(row=row))


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(np.nan)
