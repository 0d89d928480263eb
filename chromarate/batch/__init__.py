"""Batch runs: many inputs -> one result per nucleus, resumable, on one machine or a dask
cluster.

``run_batch(config, inputs, out_dir, workers=..., scheduler=...)`` finds the inputs
(files, folders, globs), prepares each one (read, render, denoise, segment) as one task,
then fits and writes each nucleus as its own task. A nucleus whose result exists with the
same config hash and input sha256 is skipped; a bad file or a failed fit becomes a
``failed`` row of ``summary.csv`` and the batch goes on; results are written atomically.
See ``docs/batch.md``.

Modules: :mod:`~chromarate.batch.inputs` (finding and naming inputs),
:mod:`~chromarate.batch.tasks` (the two task functions and resume checks),
:mod:`~chromarate.batch.executors` (in-process, local dask, remote dask),
:mod:`~chromarate.batch.runner` (orchestration, summary, log),
:mod:`~chromarate.batch.events` (progress events).
"""

from __future__ import annotations

from .events import (BatchFinished, BatchProgress, BatchStarted, InputPrepared, NucleusFinished,
                     NucleusProgress)
from .executors import make_executor
from .inputs import INPUT_SUFFIXES, discover_inputs, input_stem, output_names
from .runner import LOG_NAME, SUMMARY_NAME, BatchReport, plan_batch, run_batch
from .tasks import (MANIFEST_NAME, SUMMARY_COLUMNS, InputJob, InputPlan, file_sha256,
                    prepare_input, run_nucleus)

__all__ = [
    "BatchFinished",
    "BatchProgress",
    "BatchReport",
    "BatchStarted",
    "INPUT_SUFFIXES",
    "InputJob",
    "InputPlan",
    "InputPrepared",
    "LOG_NAME",
    "MANIFEST_NAME",
    "NucleusFinished",
    "NucleusProgress",
    "SUMMARY_COLUMNS",
    "SUMMARY_NAME",
    "discover_inputs",
    "file_sha256",
    "input_stem",
    "make_executor",
    "output_names",
    "plan_batch",
    "prepare_input",
    "run_batch",
    "run_nucleus",
]
