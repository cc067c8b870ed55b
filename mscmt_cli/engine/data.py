"""From settings to encoded datasets: corpora, image features, tokenization."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mscmt_cli.backends.batches import encode_examples
from mscmt_cli.console import progress
from mscmt_cli.data.captions import CaptionStore
from mscmt_cli.data.conll import Tweet
from mscmt_cli.data.corpus import NO_DATA_DIR, Split, load_split, needs_data_dir, read_files, type_order
from mscmt_cli.data.images import ImageStore
from mscmt_cli.data.labelset import parse_types, training_labels, unseen_types
from mscmt_cli.data.reading import ReadOptions
from mscmt_cli.engine.batching import EncodedDataset
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


def check_context_inputs(settings: Settings, context: str) -> None:
    """Fail before any model loads when the text encoder reads captions (``context``) and none are given."""
    if context == "caption" and settings.captions is None:
        raise MscmtError("--context caption: the text encoder reads each tweet's caption beside it; pass --captions FILE")


def context_store(settings: Settings, context: str, features: ImageFeatures) -> CaptionStore | None:
    """The captions a caption-context model reads (``--captions`` under ``--missing-images``), or None without context.

    When the image encoder reads the same captions file, its store is shared, so both read one
    caption per tweet and a missing caption is reported once.
    """
    if context != "caption":
        return None
    check_context_inputs(settings, context)
    path = required_path(settings.captions, "--captions")
    if isinstance(features.source, CaptionStore) and features.source.path == Path(path):
        return features.source
    return CaptionStore.from_file(path, settings.missing_images)


def data_notes(features: ImageFeatures, context: CaptionStore | None) -> list[str]:
    """The end-of-run lines about missing images and captions (each store once)."""
    stores = [features.source] + ([context] if context is not None and context is not features.source else [])
    notes = [getattr(store, "report", lambda: None)() for store in stores]
    return [n for n in notes if n]


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


def precompute_features(features: ImageFeatures, tweets: list[Tweet], console: Console, progress_every: float) -> None:
    """Compute (or read from the cache) every image feature, showing progress (see :func:`~mscmt_cli.console.progress`)."""
    if features.source is None:
        return
    ids = list(dict.fromkeys(t.image_id for t in tweets))
    with progress(console, progress_every) as bar:
        task = bar.add_task(f"image features ({features.encoder.name})", total=len(ids), unit="images", info="")
        features.precompute(ids, on_progress=lambda n: bar.advance(task, n))


def encode_split(
    split: Split | list[Tweet], text: TextEncoder, features: ImageFeatures, labels: list[str], context: CaptionStore | None = None
) -> EncodedDataset:
    """Tokenize a split (with each tweet's caption from ``context`` for a caption-context model) and attach its image features."""
    tweets = split.tweets if isinstance(split, Split) else split
    index = label_to_id(tuple(labels))
    images = features.lookup([t.image_id for t in tweets])
    tag_ids = [[index.get(tag, 0) for tag in t.tags] for t in tweets]  # a type the model lacks is O here; scored as missed
    captions = None if context is None else [tweet_caption(t, context) for t in tweets]
    return EncodedDataset(encode_examples(text, [t.tokens for t in tweets], tag_ids, images, captions))


def check_captions(context: CaptionStore | None, tweets: list[Tweet], source: object = None) -> None:
    """Read every tweet's caption once (the context's, and the caption image encoder's ``source``), so a missing one under
    ``--missing-images error`` stops the run before any work."""
    if isinstance(source, CaptionStore):
        source.require(t.image_id for t in tweets)
    if context is not None:
        for tweet in tweets:
            tweet_caption(tweet, context)


def tweet_caption(tweet: Tweet, context: CaptionStore) -> str:
    """The caption of a tweet's image; under ``--missing-images error`` a missing one is an error naming the tweet's file:line."""
    if tweet.caption is not None:
        return tweet.caption
    if context.policy == "error" and tweet.image_id not in context:
        raise MscmtError(
            f"{tweet.source or tweet.image_id}: no caption for image {tweet.image_id!r} in {context.path} "
            f"(--context caption reads it beside the tweet; --missing-images blank reads an empty caption)"
        )
    return context.load(tweet.image_id).content


def imageless_note(tweets: list[Tweet], input_kind: str, policy: str) -> str | None:
    """For an image encoder reading images or captions: how many tweets name no image (read as the blank image, or
    their caption left empty), or None when all do; under ``--missing-images error`` such a tweet is an error."""
    if input_kind == "none":
        return None
    missing = [t for t in tweets if not t.image_id]
    if not missing:
        return None
    if policy == "error":
        raise MscmtError(
            f"{missing[0].source}: the tweet names no image ({len(missing)} tweet(s) name none) and the image encoder reads one; "
            "give each record an image, or pass --missing-images blank"
        )
    return f"{len(missing)} tweet(s) name no image: read as a missing image (policy 'blank')"


def read_options(settings: Settings) -> ReadOptions:
    """How the data files of ``settings`` are read."""
    names = None if settings.tag_names is None else tuple(t.strip() for t in settings.tag_names.split(","))
    return ReadOptions(
        settings.data_format, settings.scheme, settings.type_map, settings.label_column, settings.image_column, names, settings.strict
    )


def path_split(split: str, path: Path, options: ReadOptions) -> Split:
    """A split read from one file named by path (``--train``, ``--valid``, ``--test``)."""
    return read_files(str(path), split, (Path(path),), options)


def test_split(settings: Settings) -> Split:
    """The split ``mscmt evaluate`` scores by default: ``--test FILE``, else ``test`` of ``--corpus``."""
    return load_data_split(settings, "test")


def load_data_split(settings: Settings, split: str) -> Split:
    """One split: its file when ``--train``/``--valid``/``--test`` names one, else the split of ``--corpus`` under ``--data-dir``."""
    path = {"train": settings.train_file, "valid": settings.valid_file, "test": settings.test_file}.get(split)
    if path is not None:
        return path_split(split, Path(path), read_options(settings))
    if settings.train_file is not None:
        raise MscmtError(f"--train reads the data by path: give the {split} file too (--{split} FILE)")
    if settings.data_dir is None and needs_data_dir(settings.corpus):
        raise MscmtError("no data: pass --train FILE --valid FILE [--test FILE], or --data-dir DIR (laid out like ../shared/data)")
    return load_split(settings.data_dir, settings.corpus, split, read_options(settings))


@dataclass
class CorpusData:
    """The splits of a corpus, read once (``test`` is None when training by path without ``--test``)."""

    train: Split
    valid: Split
    test: Split | None

    @classmethod
    def load(cls, data_dir: Path | None, corpus: str) -> CorpusData:
        if data_dir is None:
            raise MscmtError(NO_DATA_DIR)
        return cls(*(load_split(Path(data_dir), corpus, s) for s in ("train", "valid", "test")))

    @classmethod
    def from_settings(cls, settings: Settings) -> CorpusData:
        """``--train``/``--valid``/``--test`` files, else ``--corpus`` under ``--data-dir`` (``--test`` may replace its test split)."""
        by_path = settings.train_file is not None
        if settings.valid_file is not None and not by_path:
            raise MscmtError("--valid needs --train (the data by path), or leave both out for --corpus")
        train, valid = load_data_split(settings, "train"), load_data_split(settings, "valid")
        return cls(train, valid, None if by_path and settings.test_file is None else load_data_split(settings, "test"))

    @property
    def splits(self) -> list[Split]:
        return [s for s in (self.train, self.valid, self.test) if s is not None]

    @property
    def name(self) -> str:
        """The corpus name (the training file's path when read by path)."""
        return self.train.corpus

    def all_tweets(self) -> list[Tweet]:
        return [t for split in self.splits for t in split.tweets]

    def notes(self) -> list[str]:
        """What reading the splits skipped, detected or converted (once per file, read for two splits or not)."""
        return list(dict.fromkeys(n for split in self.splits for n in split.notes))


def data_labels(settings: Settings, data: CorpusData) -> tuple[tuple[str, ...], str | None]:
    """The label set learnt from the training split, and the warning about types only valid/test have (or None)."""
    corpus = None if settings.train_file is not None else settings.corpus
    labels = training_labels(data.train.tweets, parse_types(settings.labels), type_order(corpus))
    others = {s.name: s.tweets for s in data.splits[1:]}
    return labels, unseen_types(labels, others)
