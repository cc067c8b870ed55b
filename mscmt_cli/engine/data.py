"""From settings to encoded datasets: corpora, image features, tokenization."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from mscmt_cli.backends.base import Words
from mscmt_cli.backends.batches import encode_examples
from mscmt_cli.console import progress
from mscmt_cli.data.captions import CaptionSource
from mscmt_cli.data.conll import Tweet
from mscmt_cli.data.corpus import NO_DATA_DIR, Split, load_split, needs_data_dir, read_files, type_order
from mscmt_cli.data.doc import Doc
from mscmt_cli.data.entities import joined_offsets
from mscmt_cli.data.labelset import parse_types, training_labels, unseen_types
from mscmt_cli.data.reading import ReadOptions
from mscmt_cli.engine.batching import EncodedDataset
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache, TokenRef
from mscmt_cli.labels import label_to_id
from mscmt_cli.model.components import ImageEncoder
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.inputs import BadRecord
from mscmt_cli.tagging.processor import ImageName, ProcessedTweet, Processor, TweetInput


def check_image_inputs(image: str, input_kind: str, captions: Path | None, images_dir: Path | None) -> None:
    """Fail before any model loads when image encoder ``image``'s input (``--captions``, ``--images-dir``) is not given."""
    if input_kind == "caption" and captions is None:
        raise MscmtError(f"image encoder {image!r} reads captions: pass --captions FILE")
    if input_kind == "pixels" and images_dir is None:
        raise MscmtError(
            f"image encoder {image!r} needs images: pass --images-dir DIR, or use --image none --fusion none for a text-only model"
        )


def check_context_inputs(context: str, captions: Path | None) -> None:
    """Fail before any model loads when the text encoder reads captions (``context``) and none are given."""
    if context == "caption" and captions is None:
        raise MscmtError("--context caption: the text encoder reads each tweet's caption beside it; pass --captions FILE")


def training_processor(
    encoder: ImageEncoder, context: str, *, images_dir: Path | None, captions: Path | None, policy: str, cache_dir: Path | None
) -> Processor:
    """The processor training and ``mscmt cache build`` read their corpora through: images under ``images_dir``,
    captions from ``captions`` (read when the model reads captions), the policy ``--missing-images``, the feature
    cache in ``cache_dir`` (None: off), every tweet's image tokens kept (a token encoder's on disk)."""
    if encoder.input_kind == "pixels" and images_dir is not None and not Path(images_dir).is_dir():
        raise MscmtError(f"images directory {images_dir} does not exist")
    reads = encoder.input_kind == "caption" or context == "caption"
    source = CaptionSource.from_file(Path(captions), policy) if reads and captions is not None else None
    cache = FeatureCache(None if cache_dir is None else Path(cache_dir))
    return Processor(encoder, context, cache=cache, policy=policy, images_dir=images_dir, captions=source, keep_all=True)


def corpus_doc(tokens: Sequence[str]) -> Doc:
    """A corpus tweet as the Tagger's :class:`Doc`: its own tokens, offsets into the tokens joined by spaces.

    Built as ``make_doc(tokens=...)`` builds a tokens-only tweet, without refusing a token a
    request may not have (the corpus reader decided what a token is)."""
    text, offsets = joined_offsets(list(tokens))
    return Doc(text, tuple(tokens), tuple(offsets), has_text=False)


def corpus_input(tweet: Tweet) -> TweetInput:
    """A corpus tweet as the processor's record: its tokens, its image id (a name), its own caption, its ``file:line``."""
    return TweetInput(
        corpus_doc(tweet.tokens), ImageName(tweet.image_id) if tweet.image_id else None, tweet.caption, where=tweet.source or None
    )


@dataclass
class TweetReader:
    """Labelled tweets (a split, a CoNLL file) through one :class:`Processor`: processed once each, their image
    tokens computed (with progress) and attached, their sub-words encoded. The one reader of training,
    ``mscmt cache build`` and evaluation; a bad record (a missing caption or image under ``--missing-images
    error``) stops the run, naming its ``file:line``."""

    processor: Processor
    _done: dict[int, ProcessedTweet] = field(default_factory=dict)

    def process(self, tweets: Sequence[Tweet]) -> list[ProcessedTweet]:
        """Each tweet processed (once per tweet: a missing caption is read, and reported, once)."""
        todo = [t for t in tweets if id(t) not in self._done]
        for tweet, done in zip(todo, self.processor.process([corpus_input(t) for t in todo])):
            if isinstance(done, BadRecord):
                raise MscmtError(done.located())
            self._done[id(tweet)] = done
        return [self._done[id(t)] for t in tweets]

    def features(self, tweets: Sequence[Tweet], on_progress: Callable[[int], None] | None = None) -> list[TokenRef]:
        """Each tweet's image tokens ``(N_i, D)`` or their cached file; an image failing under ``error`` stops the run."""
        processed = self.process(tweets)
        feats, errors = self.processor.features(processed, on_progress)
        if errors:
            k = min(errors)
            where = processed[k].where
            raise MscmtError(errors[k] if where is None or where in errors[k] else f"{where}: {errors[k]}")
        return [f for f in feats if f is not None]

    def precompute(self, tweets: Sequence[Tweet], console: Console, progress_every: float) -> None:
        """Compute (or read from the cache) every tweet's image tokens, showing progress (:func:`~mscmt_cli.console.progress`)."""
        if self.processor.encoder.input_kind == "none":
            return
        first: dict[object, Tweet] = {}  # one tweet per distinct image (or caption) read
        for tweet, done in zip(tweets, self.process(tweets)):
            first.setdefault(done.image, tweet)
        with progress(console, progress_every) as bar:
            task = bar.add_task(f"image features ({self.processor.encoder.name})", total=len(first), unit="images", info="")
            self.features(list(first.values()), on_progress=lambda n: bar.advance(task, n))

    def encode(self, split: Split | Sequence[Tweet], text: Words, labels: Sequence[str]) -> EncodedDataset:
        """Tokenize a split (with each tweet's caption beside it for a caption-context model) and attach its image tokens."""
        tweets = split.tweets if isinstance(split, Split) else list(split)
        index = label_to_id(tuple(labels))
        processed = self.process(tweets)
        images = self.features(tweets)
        tag_ids = [[index.get(tag, 0) for tag in t.tags] for t in tweets]  # a type the model lacks is O here; scored as missed
        context = self.processor.context == "caption"
        captions = [p.caption or "" for p in processed] if context else None
        return EncodedDataset(encode_examples(text, [t.tokens for t in tweets], tag_ids, images, captions))

    def reports(self) -> list[str]:
        """The end-of-run lines about missing images and captions (policy ``blank``)."""
        return self.processor.reports()


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


@dataclass(frozen=True)
class DataFiles:
    """Where a command's labelled data is: ``--train``/``--valid``/``--test`` files, else ``--corpus`` under
    ``--data-dir``; and how it is read. Taken from the settings once (:meth:`of`): the data helpers get this, not
    the whole :class:`Settings`."""

    train: Path | None
    valid: Path | None
    test: Path | None
    data_dir: Path | None
    corpus: str
    options: ReadOptions

    @classmethod
    def of(cls, settings: Settings) -> DataFiles:
        paths = [None if p is None else Path(p) for p in (settings.train_file, settings.valid_file, settings.test_file)]
        data_dir = None if settings.data_dir is None else Path(settings.data_dir)
        return cls(paths[0], paths[1], paths[2], data_dir, settings.corpus, read_options(settings))

    @property
    def by_path(self) -> bool:
        """Whether the data is named by path (``--train``)."""
        return self.train is not None


def path_split(split: str, path: Path, options: ReadOptions) -> Split:
    """A split read from one file named by path (``--train``, ``--valid``, ``--test``)."""
    return read_files(str(path), split, (Path(path),), options)


def load_data_split(files: DataFiles, split: str) -> Split:
    """One split: its file when ``--train``/``--valid``/``--test`` names one, else the split of ``--corpus`` under ``--data-dir``."""
    path = {"train": files.train, "valid": files.valid, "test": files.test}.get(split)
    if path is not None:
        return path_split(split, path, files.options)
    if files.by_path:
        raise MscmtError(f"--train reads the data by path: give the {split} file too (--{split} FILE)")
    if files.data_dir is None and needs_data_dir(files.corpus):
        raise MscmtError("no data: pass --train FILE --valid FILE [--test FILE], or --data-dir DIR (laid out like ../shared/data)")
    return load_split(files.data_dir, files.corpus, split, files.options)


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
    def from_files(cls, files: DataFiles) -> CorpusData:
        """``--train``/``--valid``/``--test`` files, else ``--corpus`` under ``--data-dir`` (``--test`` may replace its test split)."""
        if files.valid is not None and not files.by_path:
            raise MscmtError("--valid needs --train (the data by path), or leave both out for --corpus")
        train, valid = load_data_split(files, "train"), load_data_split(files, "valid")
        return cls(train, valid, None if files.by_path and files.test is None else load_data_split(files, "test"))

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


def data_labels(files: DataFiles, types: str | None, data: CorpusData) -> tuple[tuple[str, ...], str | None]:
    """The label set learnt from the training split (``types``: ``--labels``), and the warning about types only
    valid/test have (or None)."""
    corpus = None if files.by_path else files.corpus
    labels = training_labels(data.train.tweets, parse_types(types), type_order(corpus))
    others = {s.name: s.tweets for s in data.splits[1:]}
    return labels, unseen_types(labels, others)
