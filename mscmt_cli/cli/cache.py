"""``mscmt cache``: precompute, inspect and clear the image feature cache."""

from __future__ import annotations

import typer

from mscmt_cli.cli.options import Given, settings_options
from mscmt_cli.settings import fields_of

HELP = "The on-disk cache of frozen image-encoder features."


@settings_options("image", "model_paths", *fields_of("data"), "cache_dir", "progress_every")
def build(given: Given) -> None:
    """Compute every image feature of a corpus once (later runs read them from disk)."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.cache_jobs import build_cache
    from mscmt_cli.registry import Registry

    build_cache(given.settings(), Registry.from_entry_points(), make_console())


@settings_options("cache_dir")
def info(given: Given) -> None:
    """List cached encoders with their feature counts and sizes."""
    from rich.console import Console
    from rich.table import Table

    from mscmt_cli.features import FeatureCache

    cache_dir = given.settings().cache_dir
    table = Table(title=f"feature cache {cache_dir}")
    for col in ("key", "encoder identity", "features", "MiB"):
        table.add_column(col, justify="right" if col in ("features", "MiB") else "left")
    for key, identity, count, size in FeatureCache(cache_dir).info():
        table.add_row(key, identity, str(count), f"{size / 2**20:.1f}")
    Console().print(table)


@settings_options("cache_dir")
def clear(given: Given) -> None:
    """Delete every cached feature (only folders this cache wrote)."""
    from mscmt_cli.features import FeatureCache

    settings = given.settings()
    removed = FeatureCache(settings.cache_dir).clear()
    typer.echo(f"removed the features of {removed} encoder(s) from {settings.cache_dir}")
