"""Command line interface (click). Thin: parses options, calls the library, prints.

Errors raised on purpose (``ChromarateError``) become a one-line message and exit code 1;
``-v`` shows the traceback. Commands: ``run``, ``config init|validate|show|schema``,
``info``, ``report``, ``export``, ``demo``, ``simulate``.

The subcommands live in :mod:`chromarate._cli` (``run``: run and demo; ``configs``: config;
``inspect``: info and report; ``export``; ``simulate``; ``progress``: terminal progress;
``common``: shared helpers) and are registered on the group :func:`cli` here.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from ._cli.common import (_PROGRESS_OPTION, EXIT_FAILED, EXIT_INTERRUPTED,  # noqa: F401
                          _fmt, _is_tty, _load_pipeline_config, _not_batch_info, _parse_value,
                          _setup_logging, _StderrHandler)
from ._cli.configs import (config_group, config_init, config_schema,  # noqa: F401
                           config_show, config_validate)
from ._cli.export import _EXPORT_KINDS, export  # noqa: F401
from ._cli.inspect import _print_failures, info, report  # noqa: F401
from ._cli.progress import _BatchPrinter, _SolverProgress  # noqa: F401
from ._cli.run import _dry_run, _fit_steps, _run, demo, run  # noqa: F401
from ._cli.simulate import simulate  # noqa: F401

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chromarate")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """chromarate: maps of the methylation/acetylation rate ratio in nuclei from STORM data."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


for _command in (run, config_group, info, report, demo, export, simulate):
    cli.add_command(_command)
del _command


def _tracebacks_asked(args: list[str]) -> bool:
    """Whether the group's own ``-v`` (before the command's name) asks for tracebacks;
    a command's ``-v`` (``run -v``: stage timings) does not.

    Examples
    --------
    >>> _tracebacks_asked(["-v", "run", "default"]), _tracebacks_asked(["run", "-v"])
    (True, False)
    """
    for arg in args:
        if not arg.startswith("-"):
            return False
        if arg in ("-v", "--verbose"):
            return True
    return False


def main(argv=None) -> None:
    """Entry point of the ``chromarate`` console script."""
    from .errors import ChromarateError

    args = list(sys.argv[1:] if argv is None else argv)
    verbose = _tracebacks_asked(args)
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
