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
from .inputs import discover_inputs
from .runner import BatchReport, plan_batch, run_batch
# Not public (not in __all__): kept importable here for chromarate._napari._sample_data,
# which is not part of this change; new code imports it from chromarate.batch.tasks.
from .tasks import file_sha256  # noqa: F401

# The user-facing names (docs/api.md): the batch entry points, their report and the
# progress events passed to ``on_event``. File names (SUMMARY_NAME, LOG_NAME, ...), the
# task functions and the executors are imported from their modules.
__all__ = [
    "BatchFinished",
    "BatchProgress",
    "BatchReport",
    "BatchStarted",
    "InputPrepared",
    "NucleusFinished",
    "NucleusProgress",
    "discover_inputs",
    "plan_batch",
    "run_batch",
]
