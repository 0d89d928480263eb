"""``chromarate info`` and ``chromarate report``: describe and report on results."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import EXIT_FAILED, _fmt


@click.command()
@click.argument("result", type=click.Path())  # a missing store is named by load_nucleus
def info(result) -> None:
    """Describe a result store (<id>.ome.zarr), or list the results of a batch folder."""
    from ..analysis import load_nucleus, rate_summary
    from ..analysis.nuclei import find_results
    from ..errors import ChromarateError, ResultStoreError
    from ..io.limits import current_read_limit

    current_read_limit()  # a bad $CHROMARATE_READ_LIMIT is named as such, not as the store's
    path = Path(result)
    if not path.name.endswith(".ome.zarr"):
        if not path.exists():
            raise ResultStoreError("no such file or folder; expected a <nucleus-id>.ome.zarr "
                                   "store or a batch output folder", path=path)
        if path.is_file():
            raise ResultStoreError("not a result: expected a <nucleus-id>.ome.zarr store or a "
                                   "batch output folder (localization files are analysed with "
                                   "chromarate run)", path=path)
        paths = find_results(path)
        failed = _print_failures(path)
        if not paths and failed:
            click.echo(f"{path}: no nucleus result: every input or nucleus of this batch "
                       f"failed ({failed}, listed above)", err=True)
            sys.exit(EXIT_FAILED)
        if not paths:
            raise ResultStoreError("no *.ome.zarr result under this folder; expected the output "
                                   "folder of chromarate run", path=path)
        click.echo(f"{path}: {len(paths)} nucleus result(s)")
        bad = 0
        for p in paths:
            try:
                n = load_nucleus(p)
            except ChromarateError as exc:  # one damaged or foreign store: say so, go on
                bad += 1
                click.echo(f"  {p}: cannot be read: {exc.message}")
                continue
            s = rate_summary(n.rate, n.rate_region)
            click.echo(f"  {n.name} nucleus {n.nucleus_id}: area {n.area_um2:.2f} um^2, rate "
                       f"median {_fmt(s['rate_median'])}, config {n.config_hash}, {n.device}")
        if bad:
            click.echo(f"{bad} of {len(paths)} result(s) cannot be read", err=True)
            sys.exit(EXIT_FAILED)
        return
    n = load_nucleus(path)
    prov = n.provenance
    s = rate_summary(n.rate, n.rate_region)
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
        f"5-95 % {_fmt(s['rate_q05'])} .. {_fmt(s['rate_q95'])} " + (
            f"(over the {100 * n.rate_region.sum() / max(n.mask.sum(), 1):.0f} % of the "
            "nucleus where it is trusted)" if n.trusted is not None else
            "(over the nucleus: this result stores no 'trusted' label, as those written "
            "before it was added)"),
        "  versions     " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    metrics = prov.get("metrics") or {}
    if metrics:
        lines.append("  metrics      " + ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items()))
    click.echo("\n".join(lines))


def _print_failures(folder: Path) -> int:
    """List on stderr the failed inputs and nuclei of a batch folder's summary.csv; how
    many there are."""
    from ..report import batch_failures, failure_lines  # failure_lines: not in __all__

    lines = failure_lines(batch_failures(folder))
    for line in lines:
        click.echo(f"FAILED {line}", err=True)
    return len(lines)


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--no-figures", is_flag=True, help="Only the tables and batch plots (faster).")
def report(folder, no_figures) -> None:
    """Write FOLDER/nuclei.csv and FOLDER/report/ (HTML page, per-nucleus figures)."""
    from ..analysis.nuclei import find_results
    from ..io.limits import current_read_limit
    from ..report import make_report

    current_read_limit()  # a bad $CHROMARATE_READ_LIMIT is named as such, not as a store's

    if not find_results(Path(folder)):
        failed = _print_failures(Path(folder))
        if failed:
            click.echo(f"{folder}: no nucleus result to report: every input or nucleus of "
                       f"this batch failed ({failed}, listed above)", err=True)
            sys.exit(EXIT_FAILED)
    rep = make_report(folder, figures=not no_figures)
    click.echo(f"{len(rep.table)} nucleus(es): table {rep.table_path}; {len(rep.figures)} "
               f"figure(s); page {rep.html}")
    if rep.skipped:  # each was named in a warning as it was skipped
        click.echo(f"{len(rep.skipped)} result(s) cannot be read and are not in the report "
                   "(named above)", err=True)
        sys.exit(EXIT_FAILED)
