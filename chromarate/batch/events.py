"""Events a batch run reports to its ``on_event`` callback (progress displays, logs).

The runner also passes on the pipeline's own events (:class:`~chromarate._types.StageDone`,
:class:`~chromarate._types.FitProgress`) as they are when tasks run in the calling process,
and wrapped in :class:`NucleusProgress` (naming the nucleus) when dask workers run them.
Every few seconds it reports :class:`BatchProgress`, also while one long fit runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["BatchFinished", "BatchProgress", "BatchStarted", "InputPrepared",
           "NucleusFinished", "NucleusProgress"]


@dataclass(frozen=True)
class BatchStarted:
    """The batch found its inputs and started its executor."""

    n_inputs: int
    out_dir: Path
    config_name: str
    config_hash: str
    executor: str
    dashboard: str = ""  # link of the dask dashboard, when the executor has one


@dataclass(frozen=True)
class InputPrepared:
    """An input was read and segmented (or skipped because all its nuclei were done).

    ``error`` is set when the whole input failed; ``read_input`` is False when it was not
    read at all (every nucleus already done).
    """

    input: str
    name: str
    n_nuclei: int
    n_to_fit: int
    n_resumed: int
    n_failed: int
    seconds: float
    read_input: bool = True
    error: str = ""


@dataclass(frozen=True)
class NucleusFinished:
    """A nucleus is done: fitted and written, skipped (resumed), or failed.

    ``row`` is its summary row (see :data:`chromarate.batch.tasks.SUMMARY_COLUMNS`).
    """

    row: Mapping


@dataclass(frozen=True)
class BatchFinished:
    """The batch is over; ``interrupted`` when it was stopped before the end."""

    n_ok: int
    n_fitted: int
    n_resumed: int
    n_failed: int
    seconds: float
    summary_path: Path
    interrupted: bool = False


@dataclass(frozen=True)
class NucleusProgress:
    """A pipeline event of one nucleus fitted on a dask worker, forwarded to the client.

    ``event`` is a :class:`~chromarate._types.StageDone` or a
    :class:`~chromarate._types.FitProgress` of nucleus ``nucleus_id`` of the input whose
    output folder is ``name``.
    """

    name: str
    nucleus_id: int
    event: object


@dataclass(frozen=True)
class BatchProgress:
    """Where the batch stands, reported every few seconds while it runs.

    ``text`` is the one-line description the runner also writes to ``batch.log``, e.g.
    ``"1 of 3 nucleus(es) done, 0 failed, 42 s; cell1#2 fit step 300/2000 (15 %), ETA 3 min"``.
    """

    seconds: float
    n_done: int
    n_total: int
    n_failed: int
    text: str
