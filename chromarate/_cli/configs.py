"""``chromarate config init|validate|show|schema``: create, check and inspect configs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .common import EXIT_FAILED, _config_warnings_to_stderr, _load_pipeline_config


@click.group("config")
def config_group() -> None:
    """Create, check and inspect pipeline configs (YAML)."""


@config_group.command("init")
@click.argument("preset", default="default")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: print).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def config_init(preset, out, force) -> None:
    """Start a config from PRESET (default, quick-cpu, publication, ...)."""
    from ..errors import ConfigError
    from ..io.batch_files import write_text
    from ..presets import preset_path

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
    from ..config import config_hash
    from ..errors import ChromarateError
    from ..presets import resolve_pipeline

    bad = 0
    for spec in configs:
        try:
            with _config_warnings_to_stderr():
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
    from ..config import config_hash, dump_config

    cfg = _load_pipeline_config(pipeline, overrides)
    click.echo(f"# config hash {config_hash(cfg)}")
    click.echo(dump_config(cfg), nl=False)


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of pipeline configs (for editors and validators)."""
    from ..config import PipelineConfig

    click.echo(json.dumps(PipelineConfig.model_json_schema(), indent=2))
