"""``chromarate simulate``: a synthetic nucleus with a known rate map."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _progress_option
from .progress import _SolverProgress


@click.command()
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Localization file to write, as a ThunderSTORM CSV (gzip-compressed when "
                   "the name ends in .gz, e.g. sim.csv.gz); the truth goes beside it "
                   "(<stem>.truth.npz).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Random seed of the rate map, the steady state's start and the localizations.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=16),
              help="Grid side in pixels (the nucleus scales with the grid).")
@click.option("--pixel-nm", default=20.0, show_default=True,
              type=click.FloatRange(min=0.0, min_open=True), help="Pixel size of the grid in nm.")
@click.option("--n-localizations", default=250_000, show_default=True,
              type=click.IntRange(min=1), help="Localizations drawn from the steady state.")
@click.option("--tolerance", default=1e-3, show_default=True, type=float,
              help="Stop the forward solver when max |residual| is below this.")
@click.option("--rate", "rate_range", nargs=2, type=float, default=None, metavar="LOW HIGH",
              help="Range of the true rate map (default 1.0 2.4); LOW = HIGH gives a constant rate.")
@_progress_option("progress lines of the steady-state solver on stderr when it is not a "
                  "terminal")
def simulate(out, seed, size, pixel_nm, n_localizations, tolerance, rate_range,
             progress_every) -> None:
    """Simulate a nucleus with a known rate map and write its localizations and truth."""
    from ..config import SimulateConfig, make_config
    from ..data import simulate_nucleus
    from ..io.localizations import write_thunderstorm_csv
    from ..io.names import input_stem
    from ..io.truth import write_truth

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
