"""Where batch tasks run: in the calling process, on local dask worker processes, or on
an existing dask.distributed cluster.

All three offer the same two calls, ``submit(fn, *args, priority=..., **kwargs)`` and
``results()`` (an iterator of ``(handle, value, error)`` in completion order that keeps
going while tasks are submitted during the iteration), so the batch runner is written once.
Higher ``priority`` runs first: the runner gives nuclei priority over preparing further
inputs, so results appear early and prepared crops do not pile up. Dask executors also
name their scheduler's dashboard (``dashboard``; local clusters serve one when bokeh is
installed) and pass on events their workers log (``subscribe``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
from typing import Any, Callable, Iterator

from ..errors import ClusterError, ConfigError

__all__ = ["DaskExecutor", "SerialExecutor", "make_executor"]

log = logging.getLogger("chromarate.batch")


class SerialExecutor:
    """Runs each task in the calling process when :meth:`results` reaches it."""

    in_process = True
    dashboard = ""

    def __init__(self) -> None:
        self._heap: list = []
        self._counter = itertools.count()
        self.description = "in this process"

    def submit(self, fn: Callable, *args: Any, priority: int = 0, key: str | None = None,
               **kwargs: Any) -> int:
        handle = next(self._counter)
        heapq.heappush(self._heap, (-priority, handle, fn, args, kwargs))
        return handle

    def results(self) -> Iterator[tuple[int, Any, BaseException | None]]:
        while self._heap:
            _, handle, fn, args, kwargs = heapq.heappop(self._heap)
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported by the runner
                yield handle, None, exc
            else:
                yield handle, value, None

    def close(self) -> None:
        self._heap.clear()

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DaskExecutor:
    """Runs tasks on a dask.distributed cluster through a :class:`distributed.Client`.

    Parameters
    ----------
    client : distributed.Client
    cluster : distributed.LocalCluster, optional
        Closed with the executor when the executor started it.
    description : str
    """

    in_process = False

    def __init__(self, client, cluster=None, description: str = "dask") -> None:
        from distributed import as_completed

        self.client = client
        self.cluster = cluster
        self.description = description
        self._ac = as_completed(loop=client.loop)
        self._topics: list[str] = []
        self.dashboard = _dashboard_link(client)

    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        """Call ``handler(message)`` (in the client's event-loop thread) for each message
        a worker sends with ``log_event(topic, message)``, until the executor closes."""
        def on_event(event) -> None:
            try:
                handler(event[1] if isinstance(event, tuple) and len(event) == 2 else event)
            except Exception:  # noqa: BLE001 - progress display only
                log.debug("forwarded event not handled", exc_info=True)

        self.client.subscribe_topic(topic, on_event)
        self._topics.append(topic)

    def submit(self, fn: Callable, *args: Any, priority: int = 0, key: str | None = None,
               **kwargs: Any):
        fut = self.client.submit(fn, *args, priority=priority, key=key, pure=False, **kwargs)
        self._ac.add(fut)
        return fut

    def results(self) -> Iterator[tuple[Any, Any, BaseException | None]]:
        for fut in self._ac:
            try:
                value = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker; reported by the runner
                yield fut, None, exc
            else:
                yield fut, value, None
            fut.release()

    def close(self) -> None:
        for topic in self._topics:
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:  # noqa: BLE001 - closing must not fail
                pass
        try:
            futures = list(self._ac.futures)
            if futures:
                self.client.cancel(futures)
        except Exception:  # noqa: BLE001 - closing must not fail
            pass
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dashboard_link(client) -> str:
    """Link of the scheduler's dashboard ("" when it serves none)."""
    try:
        services = client.scheduler_info().get("services") or {}
        if "dashboard" not in services:
            return ""
        return str(client.dashboard_link or "")
    except Exception:  # noqa: BLE001 - no dashboard is not an error
        return ""


def _dashboard_address() -> str | None:
    """Where a local cluster serves its dashboard: any free port, when bokeh (which
    distributed needs for it) is installed; else none."""
    import importlib.util

    return ":0" if importlib.util.find_spec("bokeh") is not None else None


def _probe_worker() -> str:
    import chromarate

    return chromarate.__version__


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ClusterError("--scheduler needs dask.distributed; pip install distributed") from exc
    try:  # the timeout is dask's distributed.comm.timeouts.connect
        if os.path.isfile(address):  # a scheduler file (dask scheduler --scheduler-file)
            client = Client(scheduler_file=address, set_as_default=False)
        else:
            client = Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot connect to the dask scheduler at {address!r}: {exc}") from None
    try:
        versions = client.run(_probe_worker)
    except Exception as exc:  # noqa: BLE001 - a worker without chromarate
        client.close()
        raise ClusterError(
            f"the workers of {address!r} cannot import chromarate ({type(exc).__name__}: "
            f"{exc}); install chromarate in the workers' environment") from None
    from .. import __version__

    other = sorted({v for v in versions.values() if v != __version__})
    if other:
        log.warning("workers run chromarate %s, this process %s", ", ".join(other), __version__)
    n = len(versions)
    return DaskExecutor(client, description=f"dask scheduler {address} ({n} worker(s) now)")


def _local_cluster(workers: int):
    from distributed import Client, LocalCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=_dashboard_address(), env=env,
                           silence_logs=logging.ERROR)
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    executor = DaskExecutor(client, cluster,
                            description=f"{workers} local dask worker processes "
                                        f"({threads} thread(s) each)")
    if not executor.dashboard:
        executor.description += "; no dashboard (distributed needs bokeh for it)"
    return executor


def make_executor(workers: int = 1, scheduler: str | None = None):
    """The executor for ``workers`` and ``scheduler`` (use it as a context manager).

    Parameters
    ----------
    workers : int
        1 (default): run in the calling process. N > 1: start N local dask worker
        processes (one task each at a time; the CPU threads are shared out among them;
        with several GPUs, worker ``i`` uses GPU ``i mod n``). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running dask.distributed scheduler (``tcp://host:8786``), e.g. of a
        cluster started with dask-jobqueue, or the path of its scheduler file
        (``dask scheduler --scheduler-file``); its workers need chromarate installed and
        the input and output folders on a shared file system.

    Raises
    ------
    ConfigError
        If ``workers`` is below 1.
    ClusterError
        If the scheduler cannot be reached or its workers cannot import chromarate.
    """
    if scheduler:
        return _connect(scheduler)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}")
    if workers == 1:
        return SerialExecutor()
    return _local_cluster(workers)
