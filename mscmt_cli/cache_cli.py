"""``mscmt cache``: precompute, inspect and clear the image feature cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mscmt_cli.cli import CaptionsOpt, ConfigOpt, CorpusOpt, DataDirOpt, ImagesOpt, MissingOpt, ModelPathOpt, settings_from

cache_app = typer.Typer(no_args_is_help=True, help="The on-disk cache of frozen image-encoder features.")
CacheDirOpt = typer.Option(None, "--cache-dir", help="cache directory [$XDG_CACHE_HOME/mscmt]")


@cache_app.command("build")
def build(
    image: Optional[str] = typer.Option(None, "--image", help="image encoder whose features to compute"),
    corpus: Optional[str] = CorpusOpt, data_dir: Optional[Path] = DataDirOpt, images_dir: Optional[Path] = ImagesOpt,
    captions: Optional[Path] = CaptionsOpt, missing_images: Optional[str] = MissingOpt, cache_dir: Optional[Path] = CacheDirOpt,
    model_path: Optional[list[str]] = ModelPathOpt, config: Optional[Path] = ConfigOpt,
) -> None:
    """Compute every image feature of a corpus once (later runs read them from disk)."""
    from mscmt_cli.console import make_console
    from mscmt_cli.engine.data import CorpusData, check_image_inputs, feature_table, precompute_features
    from mscmt_cli.model.build import build_image_encoder
    from mscmt_cli.registry import Registry

    settings = settings_from(config, model_path, image=image, corpus=corpus, data_dir=data_dir, images_dir=images_dir,
                             captions=captions, missing_images=missing_images, cache_dir=cache_dir)
    registry = Registry.from_entry_points()
    check_image_inputs(settings, registry.resolve("image", settings.image)[0].input_kind)
    data = CorpusData.load(settings.data_dir, settings.corpus)
    features = feature_table(settings, build_image_encoder(registry, settings.image, settings.model_paths))
    console = make_console()
    precompute_features(features, data.all_tweets(), console)
    console.print(f"{settings.image}: {len({t.image_id for t in data.all_tweets()})} images of {settings.corpus} cached in {settings.cache_dir} "
                  f"({features.encoder_calls} encoder batches computed, the rest read from the cache)")


@cache_app.command("info")
def info(cache_dir: Optional[Path] = CacheDirOpt, config: Optional[Path] = ConfigOpt) -> None:
    """List cached encoders with their feature counts and sizes."""
    from rich.console import Console
    from rich.table import Table

    from mscmt_cli.features import FeatureCache

    settings = settings_from(config, None, cache_dir=cache_dir)
    table = Table(title=f"feature cache {settings.cache_dir}")
    for col in ("key", "encoder identity", "features", "MiB"):
        table.add_column(col, justify="right" if col in ("features", "MiB") else "left")
    for key, identity, count, size in FeatureCache(settings.cache_dir).info():
        table.add_row(key, identity, str(count), f"{size / 2**20:.1f}")
    Console().print(table)


@cache_app.command("clear")
def clear(cache_dir: Optional[Path] = CacheDirOpt, config: Optional[Path] = ConfigOpt) -> None:
    """Delete every cached feature."""
    from mscmt_cli.features import FeatureCache

    settings = settings_from(config, None, cache_dir=cache_dir)
    removed = FeatureCache(settings.cache_dir).clear()
    typer.echo(f"removed the features of {removed} encoder(s) from {settings.cache_dir}")
