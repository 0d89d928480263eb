"""``chromarate export``: filtered, drift-corrected localizations or their density,
for ThunderSTORM, Picasso, Fiji or QuPath."""

from __future__ import annotations

from pathlib import Path

import click

from .common import _load_pipeline_config


#: Output names of ``chromarate export`` and what each writes.
_EXPORT_KINDS = ((".ome.tif", "density"), (".ome.tiff", "density"), (".hdf5", "picasso"),
                 (".csv", "thunderstorm"), (".csv.gz", "thunderstorm"))


def _regular_input(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse an INPUT that is no regular file (a FIFO, socket or device) from its stat.

    ``click.Path(exists=True, dir_okay=False)`` lets a FIFO through, and reading one would
    wait forever for a writer; it is refused here, before anything is opened or written.
    """
    from ..errors import InputFormatError
    from ..io._textscan import require_regular_file

    try:
        require_regular_file(value)
    except InputFormatError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("export")
@click.argument("input", type=click.Path(exists=True, dir_okay=False), callback=_regular_input)
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
    from ..drift import correct_drift
    from ..filtering import filter_localizations
    from ..io import read_localizations

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
        from ..io import write_density_ome_tiff
        from ..render import render_density

        density = render_density(locs, cfg.render)
        write_density_ome_tiff(density, out)
        click.echo(f"wrote {out}: density of {done}, {density.data.shape[1]} x "
                   f"{density.data.shape[0]} pixels of {density.pixel_size_nm:g} nm")
    elif kind == "picasso":
        from ..io import write_picasso

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
        from ..io import write_thunderstorm_csv

        write_thunderstorm_csv(locs, out)
        click.echo(f"wrote {out}: {done}")
