"""``chromarate run`` and ``chromarate demo``: a batch, or the demo, with printed
progress and outcome."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

import click

from .. import __version__
from .common import (_PROGRESS_OPTION, EXIT_FAILED, EXIT_INTERRUPTED, _load_pipeline_config,
                     _setup_logging)
from .progress import _BatchPrinter


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the block runs, SIGTERM (what a cluster scheduler sends at its time limit, and
    ``kill``'s default) stops the batch as Ctrl-C does: the summary of what finished is
    written and the log says the batch was interrupted. The former handler comes back
    after; nothing is changed outside the main thread (signals are only handled there)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    former = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, former)


def _run(config, inputs, out, *, device=None, workers=1, scheduler=None, overwrite=False,
         verbose=False, quiet=False, read_limit=None, wait_for_lock=None,
         progress_every=None) -> int:
    """Run a batch and print its outcome; the exit status."""
    from ..batch import run_batch
    from ..batch.progress import PROGRESS_EVERY_S
    from ..batch.runner import SUMMARY_NAME

    printer = _BatchPrinter(verbose, quiet, fit_steps=_fit_steps(config))
    try:
        try:
            with _terminate_as_interrupt():
                report = run_batch(config, inputs, out, device=device, workers=workers,
                                   scheduler=scheduler, overwrite=overwrite, on_event=printer,
                                   read_limit=read_limit, wait_for_lock=wait_for_lock,
                                   progress_every=(PROGRESS_EVERY_S if progress_every is None
                                                   else progress_every))
        finally:
            printer.close()  # before any message, so no progress bar is left drawn
    except KeyboardInterrupt:
        click.echo(f"interrupted; finished results are kept, run the same command again to "
                   f"resume (summary: {Path(out) / SUMMARY_NAME})", err=True)
        return EXIT_INTERRUPTED
    failed = _failed_counts(report.rows)
    click.echo(f"{report.n_ok} nucleus result(s): {report.n_fitted} fitted, "
               f"{report.n_resumed} done earlier (skipped); {failed or 'nothing'} failed; "
               f"{report.seconds:.1f} s")
    click.echo(f"summary: {report.summary_path}")
    click.echo(f"log: {report.log_path}")
    if report.n_failed:
        click.echo(f"{failed} failed (see the summary's error column)", err=True)
        return EXIT_FAILED
    return 0


def _failed_counts(rows) -> str:
    """What failed, as inputs (read or segmentation failed: no nucleus) and nuclei.

    Examples
    --------
    >>> _failed_counts([{"status": "failed", "nucleus_id": None},
    ...                 {"status": "failed", "nucleus_id": 2}, {"status": "ok", "nucleus_id": 1}])
    '1 input and 1 nucleus'
    >>> _failed_counts([{"status": "ok", "nucleus_id": 1}])
    ''
    """
    import math

    def whole(row) -> bool:
        nid = row.get("nucleus_id")
        return nid is None or (isinstance(nid, float) and math.isnan(nid))

    bad = [row for row in rows if row.get("status") == "failed"]
    inputs = sum(whole(row) for row in bad)
    nuclei = len(bad) - inputs
    parts = [f"{inputs} input{'s' if inputs != 1 else ''}" if inputs else "",
             f"{nuclei} nucle{'i' if nuclei != 1 else 'us'}" if nuclei else ""]
    return " and ".join(p for p in parts if p)


def _fit_steps(config) -> int | None:
    """Optimizer steps of one fit of ``config`` (all ensemble members), if it trains."""
    fit = getattr(config, "fit", None)
    try:
        return int(fit.training.steps) * int(fit.uncertainty.ensemble)
    except (AttributeError, TypeError, ValueError):
        return None


def _dry_run(config, inputs, out, *, workers, scheduler, overwrite) -> int:
    from ..batch import plan_batch
    from ..config import config_hash

    plan = plan_batch(config, inputs, out, overwrite=overwrite)
    where = (f"dask scheduler {scheduler}" if scheduler else
             "this process" if workers == 1 else f"{workers} local dask worker processes")
    click.echo(f"dry run: {len(plan)} input(s) -> {out}; config {config.name!r} "
               f"(hash {config_hash(config)}); would run in {where}; nothing is written")
    for row in plan.itertuples():
        if row.state == "done":
            what = f"skip: all {row.n_nuclei} nucleus(es) done"
        elif row.state == "partial":
            what = f"resume: {row.n_done} of {row.n_nuclei} nucleus(es) done"
        elif row.state == "unreadable":
            what = f"will fail: {row.error}"
        else:
            what = "run"
        click.echo(f"  {row.input} -> {Path(out) / row.name}/  [{what}]")
    return 0


@click.command()
@click.argument("pipeline")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set fit.training.steps=100 (repeatable).")
@click.option("--device", default=None, metavar="auto|cpu|cuda[:N]|mps",
              help="Device of the fits (default: the config's; does not change the config hash).")
@click.option("--workers", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="1: run here; N > 1: N local dask worker processes (with GPUs: one each).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing dask.distributed scheduler: its address "
                   "(tcp://host:8786) or scheduler file.")
@click.option("--dry-run", is_flag=True, help="Show what would run and what is done; write nothing.")
@click.option("--overwrite", is_flag=True,
              help="Refit nuclei whose results already exist, also results made from other "
                   "content of the same input file.")
@click.option("--read-limit", default=None, metavar="SIZE",
              help="Most memory one input may take once decoded, e.g. 16G (default: "
                   "$CHROMARATE_READ_LIMIT, else 4 GiB or a quarter of the memory).")
@click.option("--no-wait", is_flag=True,
              help="Fail at once if another run is writing into OUT (default: wait for it).")
@click.option("--units", type=click.Choice(["nm", "um", "px"]), default=None,
              help="Length unit of inputs whose coordinate columns state none, e.g. a CSV "
                   "with a plain x,y header (sets read.units; never overrides a unit a file "
                   "states).")
@click.option("--pixel-size-nm", type=click.FloatRange(min=0.0, min_open=True), default=None,
              metavar="NM", help="Camera pixel size for inputs whose coordinates are in pixels "
                                 "(sets read.pixel_size_nm).")
@click.option("-v", "--verbose", is_flag=True, help="Stage timings, debug log.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the final summary.")
@_PROGRESS_OPTION
@click.pass_context
def run(ctx, pipeline, inputs, out, overrides, device, workers, scheduler, dry_run, overwrite,
        read_limit, no_wait, units, pixel_size_nm, verbose, quiet, progress_every) -> None:
    """Run PIPELINE (a YAML file, or a preset: default, quick-cpu, publication) on INPUTS
    (files, folders, globs).

    Each nucleus is written to OUT/<input>/<nucleus-id>.ome.zarr, with OUT/summary.csv
    and OUT/batch.log. Running the same command again skips finished nuclei.
    """
    verbose = verbose or ctx.obj.get("verbose", False)
    _setup_logging(verbose, quiet)
    read = [f"read.{key}={value}" for key, value in (("units", units),
                                                      ("pixel_size_nm", pixel_size_nm))
            if value is not None]
    cfg = _load_pipeline_config(pipeline, [*overrides, *read])
    from ..io.limits import current_read_limit, parse_size

    if read_limit is not None:  # refused now, also for a dry run
        parse_size(read_limit)
    else:
        current_read_limit()  # a bad $CHROMARATE_READ_LIMIT
    if dry_run:
        sys.exit(_dry_run(cfg, list(inputs), Path(out), workers=workers, scheduler=scheduler,
                          overwrite=overwrite))
    sys.exit(_run(cfg, list(inputs), Path(out), device=device, workers=workers,
                  scheduler=scheduler, overwrite=overwrite, verbose=verbose, quiet=quiet,
                  read_limit=read_limit, wait_for_lock=0 if no_wait else None,
                  progress_every=progress_every))


@click.command()
@click.option("--out", "-o", default="chromarate-demo", show_default=True,
              type=click.Path(file_okay=False), help="Output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--steps", default=None, type=click.IntRange(min=1),
              help="Fit steps (default: the default config's); e.g. --steps 10 for a "
                   "seconds-long smoke test (a rough rate map).")
@click.option("--overwrite", is_flag=True, help="Refit even if the demo result exists.")
@_PROGRESS_OPTION
def demo(out, overrides, device, steps, overwrite, progress_every) -> None:
    """Run the whole pipeline on the bundled sample nucleus and compare with its truth.

    The result goes to OUT (default ./chromarate-demo/, which the napari plugin's sample
    result looks for).
    """
    from ..data import sample_paths

    _setup_logging(False, False)
    csv, _ = sample_paths()
    if steps is not None:
        overrides = (*overrides, f"fit.training.steps={steps}")
    cfg = _load_pipeline_config(None, overrides)
    click.echo(f"chromarate {__version__} demo on {csv}")
    sys.exit(_run(cfg, [csv], Path(out), device=device, overwrite=overwrite, verbose=True,
                  progress_every=progress_every))
