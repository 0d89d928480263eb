"""Command line interface (click). Thin: parses options, calls the library, prints.

Errors raised on purpose (``ChromarateError``) become a one-line message and exit code 1;
``-v`` shows the traceback. Commands: ``run``, ``config init|validate|show|schema``,
``info``, ``report``, ``export``, ``demo``, ``simulate``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import click

from . import __version__

__all__ = ["cli", "main"]

#: Exit status when some nuclei or inputs failed, and when interrupted.
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


# ----------------------------------------------------------------------------- helpers


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _load_pipeline_config(spec: str | None, overrides: tuple[str, ...]):
    """The config of a YAML file or preset name (default config when None) plus --set."""
    from .config import PipelineConfig, with_overrides
    from .errors import ConfigError
    from .presets import resolve_pipeline

    cfg = resolve_pipeline(spec)[0] if spec else PipelineConfig()
    if overrides:
        parsed = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set expects key.path=value, got {item!r}")
            k, v = item.split("=", 1)
            parsed[k.strip()] = _parse_value(v)
        cfg = with_overrides(cfg, parsed)
    return cfg


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (not at creation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _not_batch_info(record: logging.LogRecord) -> bool:
    """The batch's progress records go to batch.log; the printer shows them on screen, and
    each failure once (as an event, not also as a log record)."""
    if getattr(record, "chromarate_failure", False):
        return False
    return not (record.name == "chromarate.batch" and record.levelno < logging.WARNING)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """Library log records to stderr: warnings by default, everything with -v."""
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    root = logging.getLogger("chromarate")
    if not any(getattr(h, "_chromarate_cli", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler.addFilter(_not_batch_info)
        handler._chromarate_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for h in root.handlers:
        if getattr(h, "_chromarate_cli", False):
            h.setLevel(level)
    logging.getLogger("distributed").setLevel(logging.INFO if verbose else logging.ERROR)


def _fmt(value, spec: str = ".3f") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else format(v, spec)


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
        from ._types import FitProgress, StageDone
        from .batch import (BatchFinished, BatchProgress, BatchStarted, InputPrepared,
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
        from ._types import FitProgress, StageDone

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
        elif row["resumed"]:
            if self.verbose:
                self.echo(f"{where}: done earlier, skipped ({row['result_path']})")
        elif not self.quiet:
            corr = row.get("rate_corr_truth")
            extra = "" if _fmt(corr) == "-" else f"  corr(truth)={_fmt(corr)}"
            self.echo(f"{where}: rate mean {_fmt(row['rate_mean'])} median "
                      f"{_fmt(row['rate_median'])}  fit {_fmt(row['fit_seconds'], '.1f')} s "
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


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _run(config, inputs, out, *, device=None, workers=1, scheduler=None, overwrite=False,
         verbose=False, quiet=False, read_limit=None, wait_for_lock=None,
         progress_every=None) -> int:
    """Run a batch and print its outcome; the exit status."""
    from .batch import run_batch
    from .batch.progress import PROGRESS_EVERY_S
    from .batch.runner import SUMMARY_NAME

    printer = _BatchPrinter(verbose, quiet, fit_steps=_fit_steps(config))
    try:
        try:
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
    click.echo(f"{report.n_ok} nucleus result(s): {report.n_fitted} fitted, "
               f"{report.n_resumed} done earlier (skipped); {report.n_failed} failed; "
               f"{report.seconds:.1f} s")
    click.echo(f"summary: {report.summary_path}")
    click.echo(f"log: {report.log_path}")
    if report.n_failed:
        click.echo(f"{report.n_failed} of {len(report.rows)} failed (see the summary's "
                   "error column)", err=True)
        return EXIT_FAILED
    return 0


def _fit_steps(config) -> int | None:
    """Optimizer steps of one fit of ``config`` (all ensemble members), if it trains."""
    fit = getattr(config, "fit", None)
    try:
        return int(fit.steps) * int(getattr(fit, "ensemble", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None


class _SolverProgress:
    """Progress of the forward solver of ``simulate``: a bar over the orders of magnitude
    the residual must fall (down to the tolerance) on a terminal, else a line every
    ``every_s`` seconds on stderr."""

    def __init__(self, tolerance: float, every_s: float | None = None) -> None:
        import time

        from .batch.progress import PROGRESS_EVERY_S

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


#: ``--progress-every`` of run, demo and simulate.
_PROGRESS_OPTION = click.option(
    "--progress-every", default=None, type=click.FloatRange(min=0), metavar="SECONDS",
    help="Seconds between progress lines in batch.log, and on stderr when it is not a "
         "terminal (default 15; 0: none).")


def _dry_run(config, inputs, out, *, workers, scheduler, overwrite) -> int:
    from .batch import plan_batch
    from .config import config_hash

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


# ----------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chromarate")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """chromarate: maps of the methylation/acetylation rate ratio in nuclei from STORM data."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@cli.command()
@click.argument("pipeline")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set fit.steps=100 (repeatable).")
@click.option("--device", default=None, metavar="auto|cpu|cuda:N",
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
@click.option("-v", "--verbose", is_flag=True, help="Stage timings, debug log.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the final summary.")
@_PROGRESS_OPTION
@click.pass_context
def run(ctx, pipeline, inputs, out, overrides, device, workers, scheduler, dry_run, overwrite,
        read_limit, no_wait, verbose, quiet, progress_every) -> None:
    """Run PIPELINE (a YAML file or a preset name) on INPUTS (files, folders, globs).

    Each nucleus is written to OUT/<input>/<nucleus-id>.ome.zarr, with OUT/summary.csv
    and OUT/batch.log. Running the same command again skips finished nuclei.
    """
    verbose = verbose or ctx.obj.get("verbose", False)
    _setup_logging(verbose, quiet)
    cfg = _load_pipeline_config(pipeline, overrides)
    if dry_run:
        sys.exit(_dry_run(cfg, list(inputs), Path(out), workers=workers, scheduler=scheduler,
                          overwrite=overwrite))
    sys.exit(_run(cfg, list(inputs), Path(out), device=device, workers=workers,
                  scheduler=scheduler, overwrite=overwrite, verbose=verbose, quiet=quiet,
                  read_limit=read_limit, wait_for_lock=0 if no_wait else None,
                  progress_every=progress_every))


@cli.group("config")
def config_group() -> None:
    """Create, check and inspect pipeline configs (YAML)."""


@config_group.command("init")
@click.argument("preset", default="default")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: print).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def config_init(preset, out, force) -> None:
    """Start a config from PRESET (default, quick-cpu, publication, ...)."""
    from .errors import ConfigError
    from .io.batch_files import write_text
    from .presets import preset_path

    text = preset_path(preset).read_text(encoding="utf-8")
    if out is None:
        click.echo(text, nl=False)
        return
    if Path(out).exists() and not force:
        raise ConfigError("file exists; use --force to replace it", path=out)
    write_text(out, text)
    click.echo(f"wrote {out} (from preset {preset!r}); check it with: chromarate config validate {out}")


@config_group.command("validate")
@click.argument("configs", nargs=-1, required=True)
def config_validate(configs) -> None:
    """Check config files (or preset names); exit 1 if any is invalid."""
    from .config import config_hash
    from .errors import ChromarateError
    from .presets import resolve_pipeline

    bad = 0
    for spec in configs:
        try:
            cfg, path = resolve_pipeline(spec)
        except ChromarateError as exc:
            bad += 1
            click.echo(f"INVALID {exc}", err=True)
            continue
        click.echo(f"ok {path}: name {cfg.name!r}, version {cfg.version}, hash {config_hash(cfg)}")
    sys.exit(EXIT_FAILED if bad else 0)


@config_group.command("show")
@click.argument("pipeline", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a value.")
def config_show(pipeline, overrides) -> None:
    """Print the resolved config (every value, defaults filled in) and its hash."""
    from .config import config_hash, dump_config

    cfg = _load_pipeline_config(pipeline, overrides)
    click.echo(f"# config hash {config_hash(cfg)}")
    click.echo(dump_config(cfg), nl=False)


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of pipeline configs (for editors and validators)."""
    from .config import PipelineConfig

    click.echo(json.dumps(PipelineConfig.model_json_schema(), indent=2))


@cli.command()
@click.argument("result", type=click.Path(exists=True))
def info(result) -> None:
    """Describe a result store (<id>.ome.zarr), or list the results of a batch folder."""
    from .analysis import load_nucleus, rate_summary
    from .analysis.nuclei import find_results
    from .errors import ChromarateError

    path = Path(result)
    if not path.name.endswith(".ome.zarr"):
        paths = find_results(path)
        failed = _print_failures(path)
        if not paths and failed:
            click.echo(f"{path}: no nucleus result: every input or nucleus of this batch "
                       f"failed ({failed}, listed above)", err=True)
            sys.exit(EXIT_FAILED)
        click.echo(f"{path}: {len(paths)} nucleus result(s)")
        bad = 0
        for p in paths:
            try:
                n = load_nucleus(p)
            except ChromarateError as exc:  # one damaged or foreign store: say so, go on
                bad += 1
                click.echo(f"  {p}: cannot be read: {exc.message}")
                continue
            s = rate_summary(n.rate, n.mask)
            click.echo(f"  {n.name} nucleus {n.nucleus_id}: area {n.area_um2:.2f} um^2, rate "
                       f"median {_fmt(s['rate_median'])}, config {n.config_hash}, {n.device}")
        if bad:
            click.echo(f"{bad} of {len(paths)} result(s) cannot be read", err=True)
            sys.exit(EXIT_FAILED)
        return
    n = load_nucleus(path)
    prov = n.provenance
    s = rate_summary(n.rate, n.mask)
    ny, nx = n.mask.shape
    fit = prov.get("fit") or {}
    versions = prov.get("versions") or {}
    lines = [
        f"{path}",
        f"  input        {n.input} (sha256 {str((prov.get('input') or {}).get('sha256'))[:12]}...)",
        f"  nucleus      {n.nucleus_id}: {n.area_um2:.3f} um^2, {n.n_localizations} localizations",
        f"  grid         {ny} x {nx} pixels of {n.pixel_size_nm:g} nm, origin "
        f"({n.origin_nm[0]:g}, {n.origin_nm[1]:g}) nm",
        f"  channels     {', '.join(n.channels)}",
        f"  config       {n.config.get('name')!r}, hash {n.config_hash}, fit method "
        f"{(n.config.get('fit') or {}).get('method')}",
        f"  fit          {fit.get('device')}, "
        + ", ".join(f"{k} {float(v):.2f} s" for k, v in (prov.get("timings") or {}).items()
                    if isinstance(v, (int, float))),
        f"  rate         mean {_fmt(s['rate_mean'])}, median {_fmt(s['rate_median'])}, "
        f"5-95 % {_fmt(s['rate_q05'])} .. {_fmt(s['rate_q95'])}",
        "  versions     " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    metrics = prov.get("metrics") or {}
    if metrics:
        lines.append("  metrics      " + ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items()))
    click.echo("\n".join(lines))


def _print_failures(folder: Path) -> int:
    """List on stderr the failed inputs and nuclei of a batch folder's summary.csv; how
    many there are."""
    from .report import batch_failures, failure_lines  # failure_lines: not in __all__

    lines = failure_lines(batch_failures(folder))
    for line in lines:
        click.echo(f"FAILED {line}", err=True)
    return len(lines)


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--no-figures", is_flag=True, help="Only the tables and batch plots (faster).")
def report(folder, no_figures) -> None:
    """Write FOLDER/nuclei.csv and FOLDER/report/ (HTML page, per-nucleus figures)."""
    from .analysis.nuclei import find_results
    from .report import make_report

    if not find_results(Path(folder)):
        failed = _print_failures(Path(folder))
        if failed:
            click.echo(f"{folder}: no nucleus result to report: every input or nucleus of "
                       f"this batch failed ({failed}, listed above)", err=True)
            sys.exit(EXIT_FAILED)
    rep = make_report(folder, figures=not no_figures)
    click.echo(f"{len(rep.table)} nucleus(es): table {rep.table_path}; {len(rep.figures)} "
               f"figure(s); page {rep.html}")
    for s in rep.skipped:
        click.echo(f"skipped: {s}", err=True)


@cli.command()
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
    from .data import sample_paths

    _setup_logging(False, False)
    csv, _ = sample_paths()
    if steps is not None:
        overrides = (*overrides, f"fit.steps={steps}")
    cfg = _load_pipeline_config(None, overrides)
    click.echo(f"chromarate {__version__} demo on {csv}")
    sys.exit(_run(cfg, [csv], Path(out), device=device, overwrite=overwrite, verbose=True,
                  progress_every=progress_every))


#: Output names of ``chromarate export`` and what each writes.
_EXPORT_KINDS = ((".ome.tif", "density"), (".ome.tiff", "density"), (".hdf5", "picasso"),
                 (".csv", "thunderstorm"), (".csv.gz", "thunderstorm"))


@cli.command("export")
@click.argument("input", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="File to write; its name says what: .csv/.csv.gz ThunderSTORM CSV, "
                   ".hdf5 Picasso (+ .yaml sidecar), .ome.tif rendered density (OME-TIFF).")
@click.option("--pipeline", "-p", default=None, metavar="PRESET|YAML",
              help="Config whose filter, drift and render settings apply (default: the "
                   "defaults: no filter, no drift correction, 20 nm pixels).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set filter.max_precision_nm=25.")
@click.option("--camera-pixel-nm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Picasso: camera pixel size (default: the input's own, if it has one).")
def export(input, out, pipeline, overrides, camera_pixel_nm) -> None:
    """Filter and drift-correct the localizations of INPUT as a pipeline would, then write
    them for ThunderSTORM or Picasso, or their rendered density for Fiji/QuPath."""
    from .drift import correct_drift
    from .filtering import filter_localizations
    from .io import read_localizations

    kind = next((k for suffix, k in _EXPORT_KINDS if out.lower().endswith(suffix)), None)
    if kind is None:
        raise click.BadParameter("name it *.csv, *.csv.gz, *.hdf5 or *.ome.tif", param_hint="--out")
    src, dst = Path(input).resolve(), Path(out).resolve()
    if dst == src or dst.with_suffix(".yaml") == src.with_suffix(".yaml") and kind == "picasso":
        raise click.BadParameter(f"{out} would replace the input {input} (or its .yaml); "
                                 "write the export elsewhere", param_hint="--out")
    dst.parent.mkdir(parents=True, exist_ok=True)
    cfg = _load_pipeline_config(pipeline, overrides)
    locs = read_localizations(input)
    n_read = len(locs)
    locs = filter_localizations(locs, cfg.filter)
    if cfg.drift is not None:
        locs = correct_drift(locs, cfg.drift)
    done = f"{len(locs)} of {n_read} localizations" + (", drift-corrected" if cfg.drift else "")
    if kind == "density":
        from .io import write_density_ome_tiff
        from .render import render_density

        density = render_density(locs, cfg.render)
        write_density_ome_tiff(density, out)
        click.echo(f"wrote {out}: density of {done}, {density.data.shape[1]} x "
                   f"{density.data.shape[0]} pixels of {density.pixel_size_nm:g} nm")
    elif kind == "picasso":
        from .io import write_picasso

        pixel = camera_pixel_nm or (locs.meta or {}).get("pixel_size_nm")
        if not pixel:
            raise click.UsageError("Picasso stores camera pixels: give --camera-pixel-nm "
                                   "(the input has no pixel size of its own)")
        try:
            h5, yml = write_picasso(locs, out, pixel_size_nm=float(pixel))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {h5} and {yml}: {done}, {float(pixel):g} nm camera pixels")
    else:
        from .io import write_thunderstorm_csv

        write_thunderstorm_csv(locs, out)
        click.echo(f"wrote {out}: {done}")


@cli.command()
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Localization file to write (.csv or .csv.gz); the truth goes beside it.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--size", default=256, show_default=True, type=int, help="Grid side in pixels.")
@click.option("--pixel-nm", default=20.0, show_default=True, type=float)
@click.option("--n-localizations", default=250_000, show_default=True, type=int)
@click.option("--tolerance", default=1e-3, show_default=True, type=float,
              help="Stop the forward solver when max |residual| is below this.")
@click.option("--rate", "rate_range", nargs=2, type=float, default=None, metavar="LOW HIGH",
              help="Range of the true rate map (default 1.0 2.4); LOW = HIGH gives a constant rate.")
@_PROGRESS_OPTION
def simulate(out, seed, size, pixel_nm, n_localizations, tolerance, rate_range,
             progress_every) -> None:
    """Simulate a nucleus with a known rate map and write its localizations and truth."""
    from .config import SimulateConfig, make_config
    from .data import simulate_nucleus
    from .io.localizations import write_thunderstorm_csv
    from .io.names import input_stem
    from .io.truth import write_truth

    scale = size * pixel_nm / 1000.0 / 5.12
    extra = {} if rate_range is None else {"rate_range": tuple(rate_range)}
    cfg = make_config(SimulateConfig, dict(
        shape=(size, size), pixel_size_nm=pixel_nm, seed=seed, n_localizations=n_localizations,
        tolerance=tolerance, nucleus_radii_um=(2.3 * scale, 2.0 * scale), **extra))
    click.echo(f"simulating {size}x{size} at {pixel_nm:g} nm (seed {seed}) ...")
    with _SolverProgress(tolerance, every_s=progress_every) as progress:
        syn = simulate_nucleus(cfg, progress=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_thunderstorm_csv(syn.localizations, out)
    truth = out.with_name(input_stem(out) + ".truth.npz")
    write_truth(truth, rate=syn.rate, phi_w=syn.phi_w, phi_d=syn.phi_d, mask=syn.mask,
                pixel_size_nm=syn.pixel_size_nm, origin_nm=syn.origin_nm, meta=syn.meta)
    m = syn.meta
    click.echo(f"steady state: {m['steady_steps']} steps, max residual {m['residual_max']:.2e}"
               f" ({'converged' if m['converged'] else 'NOT converged'})")
    click.echo(f"wrote {len(syn.localizations)} localizations to {out} and truth to {truth}")


def main(argv=None) -> None:
    """Entry point of the ``chromarate`` console script."""
    from .errors import ChromarateError

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        cli.main(args=args, prog_name="chromarate", standalone_mode=False)
    except ChromarateError as exc:
        if verbose:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
