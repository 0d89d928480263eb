"""Command line interface (click). Thin: parses options, calls the library, prints.

Errors raised on purpose (``ChromarateError``) become a one-line message and exit code 1;
``-v`` shows the traceback.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from . import __version__

__all__ = ["main"]


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _load_pipeline_config(config_path: str | None, overrides: tuple[str, ...]):
    from .config import PipelineConfig, load_config, with_overrides
    from .errors import ConfigError

    cfg = load_config(config_path) if config_path else PipelineConfig()
    if overrides:
        parsed = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set expects key.path=value, got {item!r}")
            k, v = item.split("=", 1)
            parsed[k.strip()] = _parse_value(v)
        cfg = with_overrides(cfg, parsed)
    return cfg


class _Printer:
    """Turns pipeline events into terminal output (stage timings and a fit progress bar)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, path, event) -> None:
        from ._types import FitProgress, StageDone

        if self.quiet:
            return
        if isinstance(event, FitProgress):
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event.total_steps, desc="  fit", unit="step",
                                leave=False, file=sys.stderr)
            self.bar.n = event.step
            self.bar.set_postfix(loss=f"{event.loss:.4g}", refresh=False)
            self.bar.refresh()
        elif isinstance(event, StageDone):
            if event.stage == "fit" and self.bar is not None:
                self.bar.close()
                self.bar = None
            nid = f" nucleus {event.nucleus_id}" if event.nucleus_id is not None else ""
            click.echo(f"  {event.stage:<8}{nid:<11} {event.seconds:8.2f} s")


def _run(config, inputs, out, device, quiet) -> int:
    from .batch import run_batch

    report = run_batch(config, inputs, out, device=device, on_event=_Printer(quiet))
    for row in report.rows:
        if row["status"] == "ok":
            corr = row["rate_corr_truth"]
            extra = "" if corr is None or math.isnan(corr) else f"  corr(truth)={corr:.3f}"
            click.echo(f"{row['input']} nucleus {row['nucleus_id']}: rate mean "
                       f"{row['rate_mean']:.3f} median {row['rate_median']:.3f}  fit "
                       f"{row['fit_seconds']:.1f} s on {row['device']}{extra}")
        else:
            click.echo(f"{row['input']}: FAILED: {row['error']}", err=True)
    click.echo(f"summary: {report.summary_path}")
    if report.n_failed:
        click.echo(f"{report.n_failed} of {len(report.rows)} input(s) failed", err=True)
        return 1
    return 0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chromarate")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """chromarate: maps of the methylation/acetylation rate ratio in nuclei from STORM data."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set fit.steps=100 (repeatable).")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: config).")
@click.option("-q", "--quiet", is_flag=True, help="Only print the result lines.")
def run(config, inputs, out, overrides, device, quiet) -> None:
    """Run the pipeline in CONFIG (YAML) on localization files INPUTS."""
    cfg = _load_pipeline_config(config, overrides)
    sys.exit(_run(cfg, [Path(p) for p in inputs], Path(out), device, quiet))


@cli.command()
@click.option("--out", "-o", default="chromarate-demo", show_default=True,
              type=click.Path(file_okay=False), help="Output folder.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps.")
def demo(out, overrides, device) -> None:
    """Run the whole pipeline on the bundled sample nucleus and compare with its truth."""
    from .data import sample_paths

    csv, _ = sample_paths()
    cfg = _load_pipeline_config(None, overrides)
    click.echo(f"chromarate {__version__} demo on {csv}")
    sys.exit(_run(cfg, [csv], Path(out), device, False))


@cli.command()
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Localization file to write (.csv or .csv.gz); the truth goes beside it.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--size", default=256, show_default=True, type=int, help="Grid side in pixels.")
@click.option("--pixel-nm", default=20.0, show_default=True, type=float)
@click.option("--n-localizations", default=250_000, show_default=True, type=int)
@click.option("--tolerance", default=1e-3, show_default=True, type=float,
              help="Stop the forward solver when max |residual| is below this.")
def simulate(out, seed, size, pixel_nm, n_localizations, tolerance) -> None:
    """Simulate a nucleus with a known rate map and write its localizations and truth."""
    from .config import SimulateConfig
    from .data import simulate_nucleus
    from .io.localizations import write_thunderstorm_csv
    from .io.truth import write_truth

    scale = size * pixel_nm / 1000.0 / 5.12
    cfg = SimulateConfig(shape=(size, size), pixel_size_nm=pixel_nm, seed=seed,
                         n_localizations=n_localizations, tolerance=tolerance,
                         nucleus_radii_um=(2.3 * scale, 2.0 * scale))
    click.echo(f"simulating {size}x{size} at {pixel_nm:g} nm (seed {seed}) ...")
    syn = simulate_nucleus(cfg)
    out = Path(out)
    write_thunderstorm_csv(syn.localizations, out)
    name = out.name
    for suffix in (".csv.gz", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    truth = out.with_name(name + ".truth.npz")
    write_truth(truth, rate=syn.rate, phi_w=syn.phi_w, phi_d=syn.phi_d, mask=syn.mask,
                pixel_size_nm=syn.pixel_size_nm, origin_nm=syn.origin_nm, meta=syn.meta)
    m = syn.meta
    click.echo(f"steady state: {m['steady_steps']} steps, max residual {m['residual_max']:.2e}"
               f" ({'converged' if m['converged'] else 'NOT converged'})")
    click.echo(f"wrote {len(syn.localizations)} localizations to {out} and truth to {truth}")


def main(argv=None) -> None:
    """Entry point of the ``chromarate`` console script."""
    from .errors import ChromarateError

    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="chromarate", standalone_mode=False)
    except ChromarateError as exc:
        if verbose:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SystemExit:
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
