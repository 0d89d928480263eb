"""Terminal progress of a batch (:class:`_BatchPrinter`) and of the forward solver of
``simulate`` (:class:`_SolverProgress`)."""

from __future__ import annotations

import math
import sys

import click

from .. import __version__
from .common import _fmt, _is_tty


class _BatchPrinter:
    """Turns batch and pipeline events into terminal output: a progress bar over the
    nuclei of the batch, a bar per running fit (from its first step, with an ETA), one line
    per finished nucleus, stage timings with ``-v``. When stderr is not a terminal (a pipe,
    a file, a SLURM log) the bars are off and the batch's progress line is printed every
    few seconds instead."""

    def __init__(self, verbose: bool, quiet: bool, fit_steps: int | None = None) -> None:
        self.verbose, self.quiet = verbose, quiet
        self.fit_steps = fit_steps  # steps of one fit (all ensemble members), when known
        self.tty = _is_tty(sys.stderr)
        self.bar = None
        self.fit_bars: dict = {}  # (input name or None, nucleus id) -> tqdm bar
        self.total = 0
        self.inputs_done = 0
        self.n_inputs = 0
        self.failed = 0

    def echo(self, text: str, err: bool = False) -> None:
        if self.bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr if err else sys.stdout)
        else:
            click.echo(text, err=err)

    def __call__(self, event) -> None:
        from .._types import FitProgress, StageDone
        from ..batch import (BatchFinished, BatchProgress, BatchStarted, InputPrepared,
                            NucleusFinished, NucleusProgress)

        if isinstance(event, BatchStarted):
            self.n_inputs = event.n_inputs
            if not self.quiet:
                click.echo(f"chromarate {__version__}: {event.n_inputs} input(s) -> "
                           f"{event.out_dir}; config {event.config_name!r} "
                           f"(hash {event.config_hash}); {event.executor}")
                if event.dashboard:
                    click.echo(f"dask dashboard: {event.dashboard}")
                from tqdm import tqdm

                self.bar = tqdm(total=0, desc="nuclei", unit="nucleus", file=sys.stderr,
                                disable=None, dynamic_ncols=True)
        elif isinstance(event, InputPrepared):
            self.inputs_done += 1
            self.total += event.n_nuclei
            if event.error:
                self.failed += 1
                self.echo(f"{event.input}: FAILED: {event.error}", err=True)
            elif self.verbose:
                self.echo(f"{event.input}: {event.n_nuclei} nucleus(es), {event.n_to_fit} to "
                          f"fit, {event.n_resumed} already done ({event.seconds:.1f} s)")
            self._refresh()
        elif isinstance(event, NucleusFinished):
            self._nucleus(event.row)
        elif isinstance(event, NucleusProgress):
            self._pipeline_event(event.name, event.nucleus_id, event.event)
        elif isinstance(event, (StageDone, FitProgress)):
            self._pipeline_event(None, getattr(event, "nucleus_id", None), event)
        elif isinstance(event, BatchProgress):
            if not self.tty and not self.quiet:
                click.echo(f"progress: {event.text}", err=True)
        elif isinstance(event, BatchFinished):
            self.close()

    def _pipeline_event(self, name, nucleus_id, event) -> None:
        """Stage timings (-v) and the fit bars, of a nucleus here or on a dask worker."""
        from .._types import FitProgress, StageDone

        if isinstance(event, StageDone):
            if event.nucleus_id is not None:
                self._current = (name, event.nucleus_id)
            if event.stage == "phase" and event.nucleus_id is not None:
                self._fit_bar((name, event.nucleus_id), self.fit_steps)  # the fit starts now
            elif event.stage == "fit":
                bar = self.fit_bars.pop((name, event.nucleus_id), None)
                if bar is not None:
                    bar.close()
            if self.verbose:
                where = f"{name} " if name else ""
                nid = (f" {where}nucleus {event.nucleus_id}"
                       if event.nucleus_id is not None else "")
                self.echo(f"  {event.stage:<10}{nid:<11} {event.seconds:8.2f} s")
        elif isinstance(event, FitProgress):
            key = (name, nucleus_id) if name is not None else getattr(self, "_current", (None, None))
            bar = self._fit_bar(key, event.total_steps)
            if bar is not None:
                bar.total = event.total_steps
                bar.n = event.step
                bar.set_postfix(loss=f"{event.loss:.4g}", refresh=False)
                bar.refresh()

    def _fit_bar(self, key, total):
        """The fit bar of nucleus ``key``, created at the start of its fit."""
        if self.quiet:
            return None
        bar = self.fit_bars.get(key)
        if bar is None:
            from tqdm import tqdm

            name, nid = key
            desc = f"  fit {name + ' ' if name else ''}#{nid}" if nid is not None else "  fit"
            bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr,
                       disable=None, dynamic_ncols=True)
            self.fit_bars[key] = bar
        return bar

    def _nucleus(self, row) -> None:
        where = f"{row['input']} nucleus {row['nucleus_id']}"
        if row["status"] == "failed":
            self.failed += 1
            self.echo(f"{where}: FAILED: {row['error']}", err=True)
        else:
            corr = row.get("rate_corr_truth")
            extra = "" if _fmt(corr) == "-" else f"  corr(truth)={_fmt(corr)}"
            rates = f"rate mean {_fmt(row['rate_mean'])} median {_fmt(row['rate_median'])}"
            if row["resumed"]:
                if self.verbose:
                    self.echo(f"{where}: done earlier, skipped ({row['result_path']}): "
                              f"{rates}{extra}")
            elif not self.quiet:
                self.echo(f"{where}: {rates}  fit {_fmt(row['fit_seconds'], '.1f')} s "
                          f"on {row['device']}{extra}")
        if row["status"] == "low_confidence" and not self.quiet:
            self.echo(f"{where}: LOW CONFIDENCE: {row.get('qc_reasons', '')}", err=True)
        if self.bar is not None:
            self.bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is not None:
            self.bar.total = max(self.total, self.bar.n)
            self.bar.set_postfix_str(f"inputs {self.inputs_done}/{self.n_inputs}, "
                                     f"failed {self.failed}", refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        for bar in (*self.fit_bars.values(), self.bar):
            if bar is not None:
                bar.close()
        self.fit_bars = {}
        self.bar = None


class _SolverProgress:
    """Progress of the forward solver of ``simulate``: a bar over the orders of magnitude
    the residual must fall (down to the tolerance) on a terminal, else a line every
    ``every_s`` seconds on stderr."""

    def __init__(self, tolerance: float, every_s: float | None = None) -> None:
        import time

        from ..batch.progress import PROGRESS_EVERY_S

        self.tol = float(tolerance)
        self.every_s = PROGRESS_EVERY_S if every_s is None else float(every_s)
        self.tty = _is_tty(sys.stderr)
        self.r0 = None
        self.bar = None
        self._clock = time.perf_counter
        self._last = self._clock()

    def __enter__(self) -> "_SolverProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _percent(self, rmax: float) -> float:
        if self.r0 is None or not (self.r0 > self.tol > 0) or not rmax > 0:
            return 0.0
        return float(min(100.0, max(0.0, 100.0 * math.log(self.r0 / rmax)
                                    / math.log(self.r0 / self.tol))))

    def __call__(self, step: int, rmax: float) -> None:
        if self.r0 is None:
            self.r0 = float(rmax)
        pct = self._percent(rmax)
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=100, desc="steady state", unit="%", file=sys.stderr,
                                leave=False, dynamic_ncols=True,
                                bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
            self.bar.n = round(pct, 1)
            self.bar.set_postfix_str(f"step {step}, max residual {rmax:.2e}", refresh=False)
            self.bar.refresh()
        elif self.every_s > 0 and (step == 0 or self._clock() - self._last >= self.every_s):
            self._last = self._clock()
            click.echo(f"progress: steady state step {step}, max residual {rmax:.2e} "
                       f"(tolerance {self.tol:.0e}, {pct:.0f} % of the way in log scale)",
                       err=True)
