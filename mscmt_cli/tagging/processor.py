"""The one input processor: a record (a corpus tweet, a JSON Lines or CoNLL line, a request, a Parquet row)
becomes one :class:`ProcessedTweet` that training, evaluation, tagging and the service all consume.

As Hugging Face's processor serves both ``Trainer`` and ``Pipeline``, the :class:`Processor` owns every
input lookup of every road:

- one id -> image resolver (:class:`~mscmt_cli.data.images.ImageResolver`: ``DIR/NAME``,
  ``DIR/NAME.jpg|.jpeg|.png``, then the working directory);
- one caption source (:class:`~mscmt_cli.data.captions.CaptionSource`) with one missing-caption policy,
  one message (``[file:line: ]no caption for image 'ID' in FILE``) and one end-of-run report;
- with a captioner (``--captioner``), the captions generated for images that come without one;
- one store of image tokens (:class:`~mscmt_cli.features.TokenStore`).

A tweet's caption (models whose image encoder reads captions, or that read the caption beside the tweet,
``--context caption``) is, first found: the caption given with it; the caption of its image name in the
captions file; with a captioner, the caption generated for its image (batched, cached by content). A tweet
without an image reads the empty caption. Otherwise the caption is missing: under policy ``error`` the
record is bad (:class:`BadRecord`), under ``blank`` it reads the empty caption, counted once per image.
Each record's caption is read once, and both encoders of a model reading captions twice read that one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from mscmt_cli.data.captions import BLANK_CAPTION, CaptionSource, MissingCaption, no_caption
from mscmt_cli.data.doc import Doc
from mscmt_cli.data.images import ImageResolver, MissingImage, check_policy
from mscmt_cli.features import Caption, FeatureCache, ImageInput, TokenRef, TokenStore
from mscmt_cli.model.image_side import ImageSide
from mscmt_cli.tagging.inputs import BadRecord

if TYPE_CHECKING:
    from mscmt_cli.captioning import CaptionMaker

#: An image given as itself: a PIL image, encoded bytes, or a path (``Tagger.tag(image=Path(...))``).
ImageData = Image.Image | bytes | bytearray | memoryview | os.PathLike[str]


@dataclass(frozen=True)
class ImageName:
    """An image named by a record (a corpus image id, a JSON Lines ``image``, a string given to ``Tagger.tag``):
    a file found by the resolver, and the key of its caption in the captions file."""

    name: str


#: A record's image: named, given as itself, or none.
ImageRef = ImageName | ImageData | None


@dataclass(frozen=True)
class TweetInput:
    """One record as it arrives: the tweet, its image, the caption given with it (None: none given).

    ``line`` is the record's line (a file's) or index (a batch's), the line of its :class:`BadRecord`;
    ``where`` (``file:line``) heads the messages of training and evaluation, which stop at a bad record.
    """

    doc: Doc
    image: ImageRef = None
    caption: str | None = None
    line: int = 0
    where: str | None = None


@dataclass
class ProcessedTweet:
    """One tweet ready for the model: what the token store reads for its image, and the caption the model reads
    (caption encoders and ``--context caption`` models; None for the others)."""

    doc: Doc
    image: ImageInput
    caption: str | None
    line: int = 0
    where: str | None = None


class Processor:
    """Records -> :class:`ProcessedTweet` (or :class:`BadRecord`), and their image tokens: the one way in."""

    def __init__(
        self,
        encoder: ImageSide,
        context: str = "none",
        *,
        cache: FeatureCache | None = None,
        policy: str = "error",
        images_dir: Path | str | None = None,
        captions: CaptionSource | None = None,
        captioner: CaptionMaker | None = None,
        batch_size: int = 32,
        keep_all: bool = False,
    ) -> None:
        check_policy(policy)
        self.context = context
        self.policy = policy
        self.resolver = ImageResolver(images_dir)
        self.captions = captions if captions is not None else CaptionSource(None, {}, policy)
        self.captioner = captioner
        #: The store of image tokens (training keeps every tweet's: ``keep_all``).
        self.tokens = TokenStore(encoder, cache or FeatureCache(None), policy, batch_size, keep_all=keep_all)

    @property
    def encoder(self) -> ImageSide:
        return self.tokens.encoder

    @property
    def reads_captions(self) -> bool:
        """Whether the model reads captions: its image encoder does, or its text encoder reads one beside the tweet."""
        return self.encoder.input_kind == "caption" or self.context == "caption"

    # -- records -> processed tweets ------------------------------------------------------------------------------

    def process(self, inputs: Sequence[TweetInput]) -> list[ProcessedTweet | BadRecord]:
        """Each record's :class:`ProcessedTweet`, or why it cannot be tagged, in order (captions generated in one pass)."""
        captions = self._captions(inputs) if self.reads_captions else [None] * len(inputs)
        out: list[ProcessedTweet | BadRecord] = []
        for item, caption in zip(inputs, captions):
            if isinstance(caption, BadRecord):
                out.append(caption)
                continue
            out.append(ProcessedTweet(item.doc, self._image_input(item, caption), caption, item.line, item.where))
        return out

    def image_file(self, image: ImageRef, where: str | None = None) -> ImageData | str | MissingImage | None:
        """A record's image for the pixels: a named one's file (or why there is none), else the image as given."""
        if isinstance(image, ImageName):
            return self.resolver.resolve(image.name, where)
        return image

    def _image_input(self, item: TweetInput, caption: str | None) -> ImageInput:
        kind = self.encoder.input_kind
        if kind == "none":
            return None
        if kind == "caption":
            return Caption(caption if caption is not None else BLANK_CAPTION)
        return self.image_file(item.image, item.where)

    def _captions(self, inputs: Sequence[TweetInput]) -> list[str | BadRecord]:
        """The caption each record reads; the images to caption are captioned in one batched pass."""
        out: list[str | BadRecord | None] = [None] * len(inputs)
        to_caption: list[int] = []
        for i, item in enumerate(inputs):
            if item.caption is not None:
                out[i] = item.caption
            elif item.image is None:
                out[i] = BLANK_CAPTION
            elif self._needs_captioner(item.image):
                to_caption.append(i)
            else:
                out[i] = self._read_caption(item)
        found = {i: self.image_file(inputs[i].image, inputs[i].where) for i in to_caption}
        for i, image in found.items():
            if isinstance(image, MissingImage):
                out[i] = self._missing(inputs[i], image.message, _label(inputs[i].image))
        readable = [(i, image) for i, image in found.items() if image is not None and not isinstance(image, MissingImage)]
        if readable:
            assert self.captioner is not None
            for (i, _), made in zip(readable, self.captioner.captions([image for _, image in readable])):
                out[i] = made if isinstance(made, str) else self._missing(inputs[i], str(made), _label(inputs[i].image))
        return [o if o is not None else BLANK_CAPTION for o in out]

    def _needs_captioner(self, image: ImageName | ImageData) -> bool:
        """Whether an image is captioned by the captioner: there is one, and the captions file has no line for it."""
        return self.captioner is not None and not (isinstance(image, ImageName) and image.name in self.captions)

    def _read_caption(self, item: TweetInput) -> str | BadRecord:
        """The caption of the record's image in the captions file; a missing one follows the policy."""
        if isinstance(item.image, ImageName):
            try:
                return self.captions.read(item.image.name)
            except MissingCaption as err:
                return BadRecord(item.line, str(err), item.where)
        return self._missing(item, no_caption(_label(item.image), self.captions.path), _label(item.image))

    def _missing(self, item: TweetInput, message: str, label: str) -> str | BadRecord:
        """A caption that cannot be had: under ``error`` the record is bad, under ``blank`` it reads "" (counted)."""
        if self.policy == "error":
            return BadRecord(item.line, message, item.where)
        self.captions.missing.append(label)
        return BLANK_CAPTION

    # -- processed tweets -> image tokens -------------------------------------------------------------------------

    def features(
        self, tweets: Sequence[ProcessedTweet], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[TokenRef | None], dict[int, str]]:
        """Each tweet's image tokens ``(N_i, D)`` (or their cached file), and ``{index: message}`` for those that
        failed (their tokens are None); ``on_progress(n)``: ``n`` more tweets are done."""
        return self.tokens.features([t.image for t in tweets], on_progress)

    def reports(self) -> list[str]:
        """The end-of-run lines about missing images and captions (policy ``blank``), each said once."""
        return [n for n in (self.tokens.report(), self.captions.report()) if n]


def _label(image: ImageRef) -> str:
    """How messages name a record's image: its name, else what it was given as."""
    if isinstance(image, ImageName):
        return image.name
    if isinstance(image, os.PathLike):
        return os.fspath(image)
    return "<PIL image>" if isinstance(image, Image.Image) else "<image bytes>"
