"""Helpers shared by the subcommands: exit statuses, configs from the command line,
logging to stderr, number formatting, the ``--progress-every`` option."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import warnings

import click

#: Exit status when some nuclei or inputs failed, and when interrupted.
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _parse_value(text: str):
    """A ``--set`` value read as YAML reads it (``null`` is None, ``0.5`` a number), except
    that ``nan`` (any case) is NaN, as float() reads it, so that the config refuses it by
    name instead of failing a range check with a misleading message.

    Examples
    --------
    >>> _parse_value("0.5"), _parse_value("null"), _parse_value("nm")
    (0.5, None, 'nm')
    >>> _parse_value("NaN") != _parse_value("NaN")
    True
    """
    import yaml

    if text.strip().lower() in ("nan", "+nan", "-nan"):
        return float("nan")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


@contextlib.contextmanager
def _config_warnings_to_stderr():
    """Print each :class:`~chromarate.errors.ConfigDeprecationWarning` raised inside as a
    ``warning:`` line on stderr (Python hides DeprecationWarnings raised outside
    ``__main__``); other warnings go on as usual."""
    from ..errors import ConfigDeprecationWarning

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigDeprecationWarning)
            yield
    finally:
        for w in caught:
            if issubclass(w.category, ConfigDeprecationWarning):
                click.echo(f"warning: {w.message}", err=True)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _load_pipeline_config(spec: str | None, overrides: tuple[str, ...]):
    """The config of a YAML file or preset name (default config when None) plus --set."""
    from ..config import PipelineConfig, with_overrides
    from ..errors import ConfigError
    from ..presets import resolve_pipeline

    with _config_warnings_to_stderr():
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


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _progress_option(lines: str):
    """``--progress-every``: seconds between ``lines`` (the help's words for where they go)."""
    return click.option(
        "--progress-every", default=None, type=click.FloatRange(min=0), metavar="SECONDS",
        help=f"Seconds between {lines} (default 15; 0: none).")


#: ``--progress-every`` of run and demo.
_PROGRESS_OPTION = _progress_option("progress lines in batch.log, and on stderr when it is "
                                    "not a terminal")
