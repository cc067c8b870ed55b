"""Image features for tagging: bytes, PIL images or paths -> image tokens ``(N_i, D)``.

Every image is keyed by a content digest (SHA-256 of the file's bytes; of the
mode, size and pixels for a PIL image; of the text for a caption) and looked
up in a small in-memory LRU, then the on-disk :class:`FeatureCache`, and only
then encoded by the frozen image encoder, in batches. The cache and the
encoder are reached through :class:`~mscmt_cli.features.FeatureEncoder`, the
layer training (``mscmt train``, ``mscmt cache build``) uses too: a feature
either computed is the other's, never encoded twice. Bytes are decoded with
:func:`decode_image` (decompression-bomb guard). Memory stays bounded: the LRU
holds at most ``memory_items`` images' tokens and at most ``memory_bytes``
bytes of them (tokens are kept in the encoder's ``token_dtype``), and at most
one encoder batch of decoded images is alive at a time.

A tweet without an image gets the features of the neutral blank image (as
images missing at training time do). A missing or unreadable image is an
error under policy ``error``; under ``blank`` it becomes the blank image and
is counted (:meth:`FeatureStore.report`).

Caption image encoders (``input_kind == "caption"``) read a :class:`Caption`
(the text itself), or an image id (a string) looked up in the captions file
(:func:`mscmt_cli.data.captions.read_captions`, ids matched without directory
and extension); no image reads as the empty caption, like a blank image. The
digest is :func:`caption_digest`, as at training time, so cached features are
shared with ``mscmt train``/``evaluate``. With a captioner
(:class:`~mscmt_cli.captioning.CaptionMaker`, ``--captioner``) an image that
has no caption (a path not in the captions file, bytes, a PIL image) is
captioned first (:meth:`FeatureStore.prepare`, batched, cached by content); an
image the captioner cannot read follows the missing-image policy.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from mscmt_cli.data.captions import CaptionSource, caption_digest, image_key
from mscmt_cli.data.images import BLANK_DIGEST, MissingImage, blank_image, check_policy, image_loader
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache, FeatureEncoder, OnFeatureEncoder
from mscmt_cli.model.components import ImageEncoder

if TYPE_CHECKING:
    from mscmt_cli.captioning import CaptionMaker

#: Substituted images whose message the end-of-run report quotes.
SHOWN_EXAMPLES = 3
#: What a tweet's image may be: a PIL image, encoded bytes, a path, or nothing.
ImageLike = Image.Image | bytes | bytearray | memoryview | str | os.PathLike[str] | None


@dataclass(frozen=True)
class Caption:
    """A caption given as text (for caption image encoders)."""

    text: str


def load_pixels(image: ImageLike | MissingImage, where: str = "image") -> tuple[str, Callable[[], Any]]:
    """``(digest, loader)`` of one image (:func:`~mscmt_cli.data.images.image_loader`); a
    :class:`MissingImage` raises its message."""
    if isinstance(image, MissingImage):
        raise MscmtError(image.message)
    return image_loader(image, where)


def _caption_key(text: str) -> tuple[str, Callable[[], Any]]:
    try:
        digest = caption_digest(text)
    except UnicodeEncodeError:  # lone surrogates from a JSON \ud800 escape
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest, lambda: text


def load_caption(item: Any, captions: CaptionSource | None) -> tuple[str, Callable[[], Any]]:
    """``(digest, loader)`` of a caption: a :class:`Caption`, an image id read from ``captions``, or None ("")."""
    if item is None:
        return _caption_key("")
    if isinstance(item, MissingImage):
        raise MscmtError(item.message)
    if isinstance(item, Caption):
        return _caption_key(item.text)
    if not isinstance(item, (str, os.PathLike)):
        raise MscmtError(f"this model reads images as captions: give a caption, not {type(item).__name__}")
    if captions is None:
        raise MscmtError(f"image {str(item)[:80]!r}: this model reads images as captions; pass --captions FILE or give a 'caption'")
    return _caption_key(captions.read(os.fspath(item)))


@dataclass
class FeatureStore(OnFeatureEncoder):
    """Features of a frozen image encoder: a bounded memory LRU over the cache-and-encoder layer of training
    (:class:`FeatureEncoder`), with per-input errors under the missing-image policy, and captions."""

    encoder: ImageEncoder
    cache: FeatureCache = field(default_factory=lambda: FeatureCache(None))
    policy: str = "blank"
    batch_size: int = 32
    memory_items: int = 4096
    memory_bytes: int = 256 << 20
    captions: CaptionSource | None = None
    captioner: CaptionMaker | None = None
    substituted: int = 0
    substituted_examples: list[str] = field(default_factory=list)
    _memory: OrderedDict = field(default_factory=OrderedDict)
    _memory_used: int = 0
    _core: FeatureEncoder | None = None

    def __post_init__(self) -> None:
        check_policy(self.policy)
        self._core = FeatureEncoder(self.encoder, self.cache, self.batch_size)

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def identity(self) -> str:
        return self.core.identity()

    def input_for(self, image: Any, caption: str | None) -> Any:
        """What :meth:`features` reads for one tweet: for caption models its ``caption`` when
        given (else ``image``, as an id for the captions file); for other models ``image``."""
        return Caption(caption) if caption is not None and self.encoder.input_kind == "caption" else image

    def needs_captioner(self, image_id: str) -> bool:
        """Whether a caption model's image ``image_id`` is captioned by the captioner (not in the captions file)."""
        if self.captioner is None or self.encoder.input_kind != "caption":
            return False
        return self.captions is None or image_id not in self.captions

    def prepare(self, images: Sequence[Any]) -> list[Any]:
        """For a caption model with a captioner: each image without a caption (a path not in the captions
        file, bytes, a PIL image) becomes its generated :class:`Caption`, or a :class:`MissingImage` naming
        why it could not be read; all of them in one batched, cached pass. Otherwise ``images`` unchanged."""
        out = list(images)
        if self.captioner is None or self.encoder.input_kind != "caption":
            return out
        todo = [i for i, x in enumerate(out) if self._to_caption(x)]
        for i, made in zip(todo, self.captioner.captions([out[i] for i in todo])):
            out[i] = MissingImage(str(made)) if isinstance(made, MscmtError) else Caption(made)
        return out

    def _to_caption(self, image: Any) -> bool:
        if image is None or isinstance(image, (Caption, MissingImage)):
            return False
        return not isinstance(image, (str, os.PathLike)) or self.needs_captioner(os.fspath(image))

    def caption_text(self, image: Any) -> str | None:
        """The caption a caption model read for a prepared input that was tagged (None for other models)."""
        if self.encoder.input_kind != "caption":
            return None
        if isinstance(image, Caption):
            return image.text
        if isinstance(image, (str, os.PathLike)) and self.captions is not None:
            return self.captions.captions.get(image_key(os.fspath(image)), "")
        return ""  # no image, or one replaced under policy 'blank'

    def features(self, images: Sequence[Any]) -> tuple[list[torch.Tensor | None], dict[int, str]]:
        """Each input's tokens ``(N_i, D)`` (``token_dtype``), and ``{index: message}`` for the inputs that failed.

        Inputs are :data:`ImageLike` values or :class:`MissingImage` (for
        caption encoders: :class:`Caption`, image ids or None; images too with
        a captioner, see :meth:`prepare`). A failed input's feature is None.
        """
        if self.encoder.input_kind == "none":
            return [torch.zeros(1, 0) for _ in images], {}
        images = self.prepare(images)
        out: list[torch.Tensor | None] = [None] * len(images)
        errors: dict[int, str] = {}
        pending: dict[str, list[int]] = {}  # digest -> input indices
        loaders: dict[str, Callable[[], Any]] = {}
        for i, image in enumerate(images):
            digest, loader = self._key(i, image, errors)
            if digest is None:
                continue
            feature = self._known(digest)
            if feature is not None:
                out[i] = feature
                continue
            pending.setdefault(digest, []).append(i)
            loaders[digest] = loader
            if len(pending) >= self.batch_size:
                self._encode(pending, loaders, out, errors)
                pending, loaders = {}, {}
        if pending:
            self._encode(pending, loaders, out, errors)
        return out, errors

    def _key(self, i: int, image: Any, errors: dict[int, str]) -> tuple[str | None, Callable[[], Any]]:
        try:
            if self.encoder.input_kind == "caption":
                return load_caption(image, self.captions)
            return load_pixels(image)
        except MscmtError as err:
            return self._substitute(i, str(err), errors)

    def _substitute(self, i: int, message: str, errors: dict[int, str]) -> tuple[str | None, Callable[[], Any]]:
        if self.policy == "error":
            errors[i] = message
            return None, blank_image
        self.substituted += 1
        if len(self.substituted_examples) < SHOWN_EXAMPLES:
            self.substituted_examples.append(message)
        return self._blank_key()

    def _blank_key(self) -> tuple[str, Callable[[], Any]]:
        return _caption_key("") if self.encoder.input_kind == "caption" else (BLANK_DIGEST, blank_image)

    def _known(self, digest: str) -> torch.Tensor | None:
        feature = self._memory.get(digest)
        if feature is None:
            feature = self.core.cached(digest)
            if feature is None:
                return None
            self._remember(digest, feature)
        else:
            self._memory.move_to_end(digest)
        return feature

    def _remember(self, digest: str, feature: torch.Tensor) -> None:
        """Keep ``feature`` ``(N_i, D)``; the least recently used go past ``memory_items`` or ``memory_bytes``."""
        old = self._memory.pop(digest, None)
        if old is not None:
            self._memory_used -= old.nbytes
        self._memory[digest] = feature
        self._memory_used += feature.nbytes
        while len(self._memory) > 1 and (len(self._memory) > self.memory_items or self._memory_used > self.memory_bytes):
            _, dropped = self._memory.popitem(last=False)
            self._memory_used -= dropped.nbytes

    def _encode(
        self, pending: dict[str, list[int]], loaders: dict[str, Callable[[], Any]], out: list[torch.Tensor | None], errors: dict[int, str]
    ) -> None:
        """Decode and encode one batch of unseen images; decoding errors follow the policy.

        Images are decoded one at a time and encoded whenever the decoded pixels would pass
        ``MAX_BATCH_PIXELS`` (:func:`pixel_bounded`), so a batch of large images is never all alive at once.
        """

        def load(digest: str) -> Any:
            try:
                return loaders[digest]()
            except MscmtError as err:
                for i in pending[digest]:
                    key, _ = self._substitute(i, str(err), errors)
                    if key is not None:
                        out[i] = self._blank_feature()
                return None

        def keep(digest: str, feature: torch.Tensor) -> None:
            self._remember(digest, feature)
            for i in pending[digest]:
                out[i] = feature

        self.core.encode(pending, load, keep)

    def _blank_feature(self) -> torch.Tensor:
        digest, loader = self._blank_key()
        feature = self._known(digest)
        if feature is None:
            found: list[torch.Tensor] = []

            def keep(blank: str, tokens: torch.Tensor) -> None:
                self._remember(blank, tokens)
                found.append(tokens)

            self.core.encode([digest], lambda _: loader(), keep)
            feature = found[0]
        return feature

    def report(self) -> str | None:
        """One line about images replaced by the blank image, or None."""
        if not self.substituted:
            return None
        shown = "; ".join(self.substituted_examples) + ("; ..." if self.substituted > SHOWN_EXAMPLES else "")
        return f"{self.substituted} missing or unreadable image(s) replaced by a blank image (policy 'blank'): {shown}"
