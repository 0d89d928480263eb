"""Events a batch run reports to its ``on_event`` callback (progress displays, logs).

The runner also passes on the pipeline's own events (:class:`~chromarate._types.StageDone`,
:class:`~chromarate._types.FitProgress`) when tasks run in the calling process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["BatchStarted", "InputPrepared", "NucleusFinished", "BatchFinished"]


@dataclass(frozen=True)
class BatchStarted:
    """The batch found its inputs and started its executor."""

    n_inputs: int
    out_dir: Path
    config_name: str
    config_hash: str
    executor: str


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

    ``row`` is its summary row (see :data:`chromarate.batch.SUMMARY_COLUMNS`).
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
