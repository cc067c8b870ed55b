"""From settings to encoded datasets: corpora, image features, tokenization."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mscmt_cli.console import progress
from mscmt_cli.data.conll import Tweet
from mscmt_cli.data.corpus import Split, load_split
from mscmt_cli.data.images import ImageStore
from mscmt_cli.engine.batching import EncodedDataset, encode_examples
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache, ImageFeatures
from mscmt_cli.labels import label_to_id
from mscmt_cli.model.components import ImageEncoder, TextEncoder
from mscmt_cli.settings import Settings, required_path


def check_image_inputs(settings: Settings, input_kind: str) -> None:
    """Fail before any model loads when the image encoder's input is not given."""
    if input_kind == "caption" and settings.captions is None:
        raise MscmtError(f"image encoder {settings.image!r} reads captions: pass --captions FILE")
    if input_kind == "pixels" and settings.images_dir is None:
        raise MscmtError(
            f"image encoder {settings.image!r} needs images: pass --images-dir DIR, or use --image none --fusion none for a text-only model"
        )


def record_source(settings: Settings, encoder: ImageEncoder):
    """The image store (or caption store) an image encoder reads."""
    check_image_inputs(settings, encoder.input_kind)
    if encoder.input_kind == "none":
        return None
    if encoder.input_kind == "caption":
        from mscmt_cli.data.captions import CaptionStore

        return CaptionStore.from_file(required_path(settings.captions, "--captions"), settings.missing_images)
    return ImageStore(required_path(settings.images_dir, "--images-dir"), settings.missing_images)


def feature_table(settings: Settings, encoder: ImageEncoder) -> ImageFeatures:
    """Image features through the on-disk cache (unless ``no_cache``)."""
    cache = FeatureCache(None if settings.no_cache else Path(settings.cache_dir))
    return ImageFeatures(encoder, record_source(settings, encoder), cache)


def precompute_features(features: ImageFeatures, tweets: list[Tweet], console: Console) -> None:
    """Compute (or read from the cache) every image feature with a progress bar."""
    if features.source is None:
        return
    ids = list(dict.fromkeys(t.image_id for t in tweets))
    with progress(console) as bar:
        task = bar.add_task(f"image features ({features.encoder.name})", total=len(ids), info="")
        features.precompute(ids, on_progress=lambda n: bar.advance(task, n))


def encode_split(split: Split | list[Tweet], text: TextEncoder, features: ImageFeatures, labels: list[str]) -> EncodedDataset:
    """Tokenize a split and attach its image features."""
    tweets = split.tweets if isinstance(split, Split) else split
    index = label_to_id(tuple(labels))
    images = features.lookup([t.image_id for t in tweets])
    tag_ids = [[index[tag] for tag in t.tags] for t in tweets]
    return EncodedDataset(encode_examples(text, [t.tokens for t in tweets], tag_ids, images))


@dataclass
class CorpusData:
    """The three splits of a corpus, read once."""

    train: Split
    valid: Split
    test: Split

    @classmethod
    def load(cls, data_dir: Path | None, corpus: str) -> CorpusData:
        if data_dir is None:
            raise MscmtError("no data directory: pass --data-dir DIR (laid out like ../shared/data)")
        return cls(*(load_split(Path(data_dir), corpus, s) for s in ("train", "valid", "test")))

    def all_tweets(self) -> list[Tweet]:
        return self.train.tweets + self.valid.tweets + self.test.tweets
