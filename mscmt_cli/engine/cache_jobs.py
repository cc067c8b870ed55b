"""``mscmt cache build``: compute every image feature of a corpus once, into the on-disk cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mscmt_cli.engine.data import CorpusData, DataFiles, TweetReader, check_image_inputs, training_processor
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import check_cache_dir
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings


@dataclass(frozen=True)
class CacheBuild:
    """What a build did: distinct images of the corpus, encoder batches computed now, where."""

    images: int
    encoder_batches: int
    cache_dir: Path


def check_cache_build(settings: Settings, registry: Registry) -> None:
    """Refuse, before any model or data loads, a build that would cache nothing or write in the wrong place."""
    if settings.no_cache:
        raise MscmtError("cache build with --no-cache (MSCMT_NO_CACHE) would cache nothing; drop --no-cache")
    cls, _ = registry.resolve("image", settings.image)
    if cls.input_kind == "none":
        raise MscmtError(
            f"--image {settings.image}: this image encoder has no features to cache; "
            f"pass the one you train with (e.g. --image clip-vit-l14; see mscmt plugins)"
        )
    check_cache_dir(settings.cache_dir)
    check_image_inputs(settings.image, cls.input_kind, settings.captions, settings.images_dir)


def build_cache(settings: Settings, registry: Registry, console: Console) -> CacheBuild:
    """Compute (or find cached) the feature of every image of ``settings.corpus`` with ``settings.image``."""
    from mscmt_cli.model.build import build_image_encoder

    check_cache_build(settings, registry)
    data = CorpusData.from_files(DataFiles.of(settings))
    encoder = build_image_encoder(registry, settings.image, settings.model_paths)
    processor = training_processor(
        encoder,
        "none",
        images_dir=settings.images_dir,
        captions=settings.captions,
        policy=settings.missing_images,
        cache_dir=Path(settings.cache_dir),
    )
    tweets = data.all_tweets()
    TweetReader(processor).precompute(tweets, console, settings.progress_every)
    done = CacheBuild(len({t.image_id for t in tweets}), processor.tokens.encoder_calls, Path(settings.cache_dir))
    console.print(
        f"{settings.image}: {done.images} images of {data.train.corpus} cached in {done.cache_dir} "
        f"({done.encoder_batches} encoder batches computed, the rest read from the cache)"
    )
    return done
