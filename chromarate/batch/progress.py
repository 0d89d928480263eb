"""Progress of a running batch: what each nucleus is doing, a line every few seconds, and
the forwarding of pipeline events from dask workers to the client.

:class:`ProgressTracker` watches the batch's events (and the pipeline's, per nucleus) and,
from a background thread, writes a progress line to the batch log every ``every`` seconds
and reports it as a :class:`~chromarate.batch.events.BatchProgress` event -- also while a
single fit runs for minutes without any other event. On dask, each nucleus task gets a
:class:`WorkerForwarder` as its ``on_event``: it sends the pipeline's stage and fit-progress
events through ``distributed``'s structured event log (``Worker.log_event``), which the
client receives with ``Client.subscribe_topic`` -- with a local cluster and with an
external scheduler alike.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .._types import FitProgress, StageDone
from .events import BatchProgress, BatchStarted, InputPrepared, NucleusFinished, NucleusProgress

__all__ = ["PROGRESS_EVERY_S", "ProgressTracker", "WorkerForwarder", "decode_forwarded"]

#: Default seconds between progress lines (batch log and BatchProgress events).
PROGRESS_EVERY_S = 15.0

log = logging.getLogger("chromarate.batch")


@dataclass
class _Nucleus:
    stage: str = "phase"  # what runs now: the stage after the last one that finished
    since: float = field(default_factory=time.perf_counter)
    step: int = 0
    total_steps: int = 0
    fit_elapsed_s: float = 0.0
    #: (step, elapsed) of the fit's first progress event: the step rate is measured from
    #: there, leaving out the setup before the first step (the data-chosen settings)
    first: tuple[int, float] | None = None


def _steps_left_s(st: _Nucleus) -> float | None:
    """Seconds the fit's remaining steps will take, at the rate measured since its first
    progress event (at the average rate from the start while only one was seen); None
    before any step.

    Examples
    --------
    >>> st = _Nucleus(step=50, total_steps=250, fit_elapsed_s=50.0, first=(25, 45.0))
    >>> _steps_left_s(st)  # 25 steps in 5 s: 200 steps left take 40 s
    40.0
    """
    if st.step <= 0:
        return None
    remaining = st.total_steps - st.step
    if st.first is not None and st.step > st.first[0]:
        rate = (st.fit_elapsed_s - st.first[1]) / (st.step - st.first[0])
    else:
        rate = st.fit_elapsed_s / st.step
    return max(rate, 0.0) * remaining


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_NEXT_STAGE = {"phase": "fit", "fit": "export"}


class ProgressTracker:
    """Follows a batch's events and reports its progress every ``every`` seconds.

    Parameters
    ----------
    emit : callable
        Receives the :class:`~chromarate.batch.events.BatchProgress` events.
    every : float or None
        Seconds between reports; None or 0: no reports (the tracker still follows).
    """

    def __init__(self, emit: Callable[[object], None], every: float | None) -> None:
        self._emit = emit
        self.every = every
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._running: dict[tuple[str, int], _Nucleus] = {}
        self.n_inputs = 0
        self.n_read = 0
        self.n_total = 0
        self.n_done = 0
        self.n_failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- events
    def batch_event(self, event: object) -> None:
        """Follow an event of the batch itself (inputs prepared, nuclei finished)."""
        with self._lock:
            if isinstance(event, BatchStarted):
                self.n_inputs = int(event.n_inputs)
            elif isinstance(event, InputPrepared):
                self.n_read += 1
                if event.error:  # the whole input failed: no nucleus of it will finish
                    self.n_failed += 1
                else:
                    self.n_total += event.n_nuclei
            elif isinstance(event, NucleusFinished):
                row = event.row
                self.n_done += 1
                self.n_failed += row.get("status") == "failed"
                self._running.pop((str(row.get("name")), row.get("nucleus_id")), None)

    def nucleus_event(self, name: str, nucleus_id: int, event: object) -> None:
        """Follow a pipeline event (stage done, fit progress) of one nucleus."""
        with self._lock:
            state = self._running.setdefault((name, nucleus_id), _Nucleus())
            if isinstance(event, StageDone):
                state.stage = _NEXT_STAGE.get(event.stage, "export")
                state.since = time.perf_counter()
            elif isinstance(event, FitProgress):
                state.stage = "fit"
                state.step, state.total_steps = int(event.step), int(event.total_steps)
                state.fit_elapsed_s = float(event.elapsed_s)
                if state.first is None or state.step < state.first[0]:
                    state.first = (state.step, state.fit_elapsed_s)

    # -- reports
    def text(self) -> str:
        """The progress line: nuclei done, then what each running nucleus is doing."""
        now = time.perf_counter()
        with self._lock:
            unread = self.n_inputs - self.n_read
            head = (f"{self.n_done} of {self.n_total} nucleus(es) done"
                    + (f" ({unread} input(s) not read yet)" if unread > 0 else "")
                    + f", {self.n_failed} failed, {_duration(now - self._t0)}")
            parts = [head]
            for (name, nid), st in sorted(self._running.items(), key=lambda kv: kv[1].since):
                what = f"{name}#{nid} {st.stage}"
                if st.stage == "fit" and st.total_steps:
                    what += f" step {st.step}/{st.total_steps} ({100 * st.step / st.total_steps:.0f} %)"
                    left = _steps_left_s(st)
                    if left is not None:
                        what += f", ETA {_duration(left)}"
                else:
                    what += f" for {_duration(now - st.since)}"
                parts.append(what)
        return "; ".join(parts)

    def report(self) -> BatchProgress:
        """Write the progress line to the batch log and emit it as an event."""
        text = self.text()
        with self._lock:
            event = BatchProgress(seconds=time.perf_counter() - self._t0, n_done=self.n_done,
                                  n_total=self.n_total, n_failed=self.n_failed, text=text)
        log.info("progress: %s", text)
        try:
            self._emit(event)
        except Exception:  # noqa: BLE001 - a display must not stop the reports
            log.debug("progress display failed", exc_info=True)
        return event

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.report()

    def __enter__(self) -> "ProgressTracker":
        if self.every and self.every > 0:
            self._thread = threading.Thread(target=self._loop, name="chromarate-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class WorkerForwarder:
    """``on_event`` of a nucleus task on a dask worker: sends its pipeline events to the
    client under ``topic`` (picklable; does nothing outside a worker).

    Parameters
    ----------
    topic : str
        Event topic of this batch (the client subscribes to it).
    name : str
        Output folder name of the nucleus's input.
    nucleus_id : int
    """

    def __init__(self, topic: str, name: str, nucleus_id: int) -> None:
        self.topic, self.name, self.nucleus_id = topic, name, int(nucleus_id)

    def __call__(self, event: object) -> None:
        msg: dict[str, Any] = {"name": self.name, "nucleus_id": self.nucleus_id}
        if isinstance(event, StageDone):
            msg.update(kind="stage", stage=event.stage, seconds=float(event.seconds))
        elif isinstance(event, FitProgress):
            msg.update(kind="fit", step=int(event.step), total_steps=int(event.total_steps),
                       loss=float(event.loss), elapsed_s=float(event.elapsed_s),
                       terms={str(k): float(v) for k, v in event.terms.items()})
        else:
            return
        try:
            from distributed import get_worker

            get_worker().log_event(self.topic, msg)
        except Exception:  # noqa: BLE001 - progress is best effort; the fit goes on
            pass


def decode_forwarded(msg: Mapping[str, Any]) -> NucleusProgress | None:
    """The :class:`NucleusProgress` of a message sent by :class:`WorkerForwarder` (None for
    anything else)."""
    try:
        name, nid, kind = str(msg["name"]), int(msg["nucleus_id"]), msg["kind"]
        if kind == "stage":
            event: object = StageDone(stage=str(msg["stage"]), seconds=float(msg["seconds"]),
                                      nucleus_id=nid)
        elif kind == "fit":
            event = FitProgress(step=int(msg["step"]), total_steps=int(msg["total_steps"]),
                                loss=float(msg["loss"]), terms=dict(msg.get("terms") or {}),
                                elapsed_s=float(msg["elapsed_s"]))
        else:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    return NucleusProgress(name=name, nucleus_id=nid, event=event)
