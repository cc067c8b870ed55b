"""The four component contracts that every plugin implements.

A component is a small ``nn.Module`` whose sizes come from the encoders it is
built on. Class attributes ``name`` and ``description`` (one line) are what
``mscmt plugins`` shows. A component with parameters of its own declares them
as ``Params``, a :class:`ComponentParams` model (typed fields with defaults and
descriptions), and receives the validated values as its ``params`` argument;
``explains`` declares what it can show about a prediction (``"gate"``,
``"attention"``).

Inputs are checked at the boundary, as pytorch-crf does: a fusion or decoder
given a tensor of the wrong shape (or no image where it needs one) raises a
``ValueError`` naming the argument and the shape it expected, before any
tensor work. Plugins implement :meth:`Fusion.fuse` and the decoders'
``_loss``/``_decode``/``_marginals``; the public methods check and delegate.

Tensor shapes use ``B`` (tweets in the batch), ``T`` (words of the longest
tweet), ``W`` (sub-word windows in the batch), ``L`` (sub-words of the
longest window), ``H`` (text hidden size), ``N`` (image tokens: 1 for a
pooled image encoder, e.g. 257 for CLIP ViT-L/14 patches), ``D`` (image
feature size), ``F`` (fused size) and ``C`` (labels).

An image is a sequence of ``N`` feature tokens with a mask (:class:`ImageTokens`);
in every mask the real tokens come first, then padding, and at least one token
is real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.encoded import EncodedTweet as EncodedTweet  # re-exported: defined without torch
from mscmt_cli.model.image_side import feature_identity as feature_identity  # re-exported: defined without torch


class ComponentParams(BaseModel):
    """Base of a component's declared parameters: typed, with defaults; unknown keys are refused.

    Strict: a value of another type is refused, never converted (``proj_dim = true`` is not 1, ``"64"``
    is not 64); an int is still a float. ``--set`` strings are typed first (:func:`mscmt_cli.settings.parse_value`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def expect_shape(name: str, tensor: Any, shape: tuple[int | str, ...]) -> None:
    """Raise ``ValueError`` unless ``tensor`` is a tensor of ``shape`` (``str`` entries match any size).

    ``shape`` entries are sizes or dimension names (``"B"``); the message names
    the argument, the expected and the actual shape.
    """
    want = "(" + ", ".join(str(d) for d in shape) + ")"
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape {want}, got {type(tensor).__name__}")
    if tensor.dim() != len(shape) or any(isinstance(d, int) and d != n for d, n in zip(shape, tensor.shape)):
        raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")


@dataclass
class TextBatch:
    """Padded windows of a batch of tweets.

    Attributes:
        input_ids: ``(W, L)`` sub-word ids, padded with the encoder's pad id.
        attention_mask: ``(W, L)``, 1 on real sub-words.
        word_index: ``(B, T)`` index into the flattened ``(W * L)`` sub-words
            giving each word's first sub-word (0 on padding words).
        word_mask: ``(B, T)`` bool, True on real words.
        token_type_ids: ``(W, L)`` segment ids (0 on padding), or None when no
            window of the batch has any (the model's default, all 0, applies).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    word_mask: torch.Tensor
    token_type_ids: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> TextBatch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)

        types = None if self.token_type_ids is None else move(self.token_type_ids)
        return TextBatch(move(self.input_ids), move(self.attention_mask), move(self.word_index), move(self.word_mask), types)


class TextEncoder(nn.Module):
    """Fine-tuned text encoder giving one vector per word.

    Subclasses set ``hidden_size`` and ``pad_id`` and implement ``encode_words``
    (CPU tokenization) and ``forward``. ``context`` is what the model reads
    beside each tweet (the model spec's ``context``, set by ``build_model``):
    ``"none"``, or ``"caption"``, the image's caption as a second segment,
    which an encoder supporting it takes as ``encode_words(words, context=...)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_source: ClassVar[str] = ""
    explains: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[ComponentParams] | None] = None
    hidden_size: int
    pad_id: int
    context: str = "none"

    def encode_words(self, words: Sequence[str], context: str | None = None) -> EncodedTweet:
        """Tokenize one tweet, already split into words (``context``: its caption, for ``context == "caption"``)."""
        raise NotImplementedError

    @property
    def takes_token_types(self) -> bool:
        """Whether this encoder gives segment ids (:attr:`EncodedTweet.token_types`) and its ``forward`` reads
        them (:attr:`TextBatch.token_type_ids`): True only for an encoder reading a caption beside the tweet
        whose model takes ``token_type_ids``."""
        return False

    def check_context(self, context: str) -> None:
        """Raise ``MscmtError`` unless this encoder can read ``context`` ("none" always works)."""
        if context != "none":
            raise MscmtError(f"text encoder {self.name!r} cannot read a caption beside the tweet (--context {context})")

    def forward(self, batch: TextBatch) -> torch.Tensor:
        """Word representations ``(B, T, H)`` (first sub-word of each word)."""
        raise NotImplementedError

    def save_architecture(self, directory: Path) -> None:
        """Write what rebuilds this encoder without its weights (config, tokenizer)."""
        raise NotImplementedError


@dataclass
class ImageTokens:
    """The images of a batch as token sequences (what :meth:`ImageEncoder.encode` returns).

    Attributes:
        features: ``(n, N, D)`` float32 on the CPU; rows past an image's real tokens are zeros.
        mask: ``(n, N)`` bool, True on real tokens: real tokens first, then padding, at least one real.
    """

    features: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def pooled(cls, features: torch.Tensor) -> ImageTokens:
        """One token per image: ``features`` ``(n, D)`` -> ``(n, 1, D)`` with an all-True ``(n, 1)`` mask."""
        return cls(features.unsqueeze(1), torch.ones(features.size(0), 1, dtype=torch.bool))

    def __len__(self) -> int:
        return int(self.features.size(0))

    def check(self, name: str, dim: int, max_tokens: int) -> None:
        """Raise ``ValueError`` naming ``name`` unless the shapes, dtype and mask keep the contract."""
        expect_shape(f"{name}.features", self.features, ("n", "N", dim))
        expect_shape(f"{name}.mask", self.mask, tuple(self.features.shape[:2]))
        if self.mask.dtype != torch.bool:
            raise ValueError(f"{name}.mask must be bool, got {self.mask.dtype}")
        if self.features.size(1) > max_tokens:
            raise ValueError(f"{name}.features has {self.features.size(1)} tokens, more than the encoder's max_tokens {max_tokens}")
        check_prefix_mask(f"{name}.mask", self.mask)

    def per_image(self) -> list[torch.Tensor]:
        """Each image's real tokens ``(N_i, D)`` (views of ``features``)."""
        counts = self.mask.sum(dim=1).tolist()
        return [self.features[i, :k] for i, k in enumerate(counts)]


def check_prefix_mask(name: str, mask: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every row of the bool ``mask`` ``(n, N)`` is real entries first, then padding, the first real."""
    if mask.size(1) == 0 or not bool(mask[:, 0].all()):
        raise ValueError(f"{name}: the first token of every image must be real")
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError(f"{name}: rows must be real tokens first, then padding")


def masked_mean(image: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens: image ``(B, N, D)``, image_mask ``(B, N)`` -> ``(B, D)``.

    With ``N == 1`` this is the token itself, bit for bit (what a pooled encoder gave before tokens).
    """
    if image.size(1) == 1:
        return image[:, 0]
    weights = image_mask.unsqueeze(-1).to(image.dtype)  # (B, N, 1)
    return (image * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class ImageEncoder(nn.Module):
    """Frozen encoder giving, per image, up to ``max_tokens`` feature tokens of size ``dim``.

    ``input_kind`` says what it reads: ``"pixels"`` (PIL images from the image
    store), ``"caption"`` (caption strings), or ``"none"`` (no image at all,
    ``dim == 0``). A pooled encoder (one vector per image) has
    ``max_tokens == 1``; a token encoder sets ``max_tokens`` (an instance
    attribute read from its config, e.g. 257 for CLIP ViT-L/14 patches) and
    usually ``token_dtype = torch.float16``, the precision its tokens are kept
    in (cache and memory; :func:`feature_identity` adds both to the cache
    key). ``grid`` is ``(rows, cols)`` when the tokens after the first
    ``grid_offset`` ones lie on a row-major grid over the image (patches,
    feature maps), else None; :meth:`token_texts` names the tokens of a
    caption encoder. The explain page reads both.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_source: ClassVar[str] = ""
    family: ClassVar[str] = ""  # "" (one name), "required" (name:<variant>) or "optional" (name[:<variant>])
    input_kind: ClassVar[str] = "pixels"
    explains: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[ComponentParams] | None] = None
    token_dtype: ClassVar[torch.dtype] = torch.float32
    dim: int
    max_tokens: int = 1
    grid: tuple[int, int] | None = None
    grid_offset: int = 0

    def identity(self) -> str:
        """A string that changes whenever the features would (name, weights, preprocessing)."""
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, inputs: list[Any]) -> ImageTokens:
        """Tokens of ``n`` inputs (PIL images or caption strings): ``(n, N, D)`` float32 on the CPU and
        the ``(n, N)`` mask, ``N <= max_tokens`` (``N == 1`` for a pooled encoder)."""
        raise NotImplementedError

    def token_texts(self, item: Any) -> list[str] | None:
        """The text of each real token of one input (a caption's sub-words), or None when tokens are not text."""
        return None


class PixelEncoder(ImageEncoder):
    """An image encoder over PIL images in two steps: :meth:`pixels` (its own preprocessing, to
    ``pixel_values`` ``(n, 3, h, w)``) and :meth:`from_pixels` (its frozen model), which :attr:`graph`
    runs as one module (what ``mscmt export`` writes as ``image.onnx``)."""

    def pixels(self, inputs: list[Any]) -> torch.Tensor:
        """``n`` PIL images as ``pixel_values`` ``(n, 3, h, w)`` float32 on the model's device."""
        raise NotImplementedError

    def from_pixels(self, pixels: torch.Tensor) -> ImageTokens:
        """Tokens of ``pixel_values`` ``(n, 3, h, w)``, as :meth:`encode` gives them."""
        raise NotImplementedError

    @property
    def graph(self) -> PixelGraph:
        """:meth:`from_pixels` as a module (made on each access: the encoder cannot hold a module holding itself)."""
        return PixelGraph(self)

    @torch.inference_mode()
    def encode(self, inputs: list[Any]) -> ImageTokens:
        """Tokens of ``n`` PIL images: :meth:`from_pixels` of :meth:`pixels`."""
        return self.from_pixels(self.pixels(inputs))


class PixelGraph(nn.Module):
    """A :class:`PixelEncoder`'s computation as a module: ``forward(pixel_values (n, 3, h, w))`` gives
    ``(features (n, N, D) float32, mask (n, N) bool)``, the tokens :meth:`PixelEncoder.from_pixels` gives."""

    def __init__(self, encoder: PixelEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.encoder.from_pixels(pixel_values)
        return tokens.features, tokens.mask


@dataclass
class FusionOutput:
    """What a fusion returns.

    Attributes:
        fused: ``(B, T, F)`` fused word features.
        gate: ``(B, T, G)`` the visual gate, if the fusion explains one (``"gate"``), else None.
        attention: ``(B, T, N)`` each word's attention over the image tokens (0 on padding tokens,
            each real word's row sums to 1), if the fusion explains it (``"attention"``), else None.
    """

    fused: torch.Tensor
    gate: torch.Tensor | None = None
    attention: torch.Tensor | None = None


class Fusion(nn.Module):
    """Combines word features ``(B, T, H)`` with image tokens ``(B, N, D)`` and their mask ``(B, N)``.

    ``needs_image`` is False only for text-only fusion. ``slow_parameter_prefixes``
    names the sub-modules trained at the encoder's learning rate (the paper's W_p).
    ``explains = frozenset({"gate"})`` promises a ``gate`` in every output,
    ``"attention"`` an ``attention``. A fusion that takes one vector per image
    pools the tokens first with :func:`masked_mean` (with ``N == 1``: the
    token itself). Subclasses set ``output_dim`` and implement :meth:`fuse`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_image: ClassVar[bool] = True
    slow_parameter_prefixes: ClassVar[tuple[str, ...]] = ()
    explains: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[ComponentParams] | None] = None
    output_dim: int

    def __init__(self, text_dim: int, image_dim: int, params: ComponentParams | None = None) -> None:
        super().__init__()
        self.text_dim, self.image_dim = text_dim, image_dim

    def forward(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None = None) -> FusionOutput:
        """Check, then :meth:`fuse`.

        Args:
            words: ``(B, T, H)`` word features.
            image: ``(B, N, D)`` image tokens (None for text-only fusion).
            image_mask: ``(B, N)`` bool, True on real tokens (real first); None: every token is real.
        """
        expect_shape("words", words, ("B", "T", self.text_dim))
        if not self.needs_image:
            return self.fuse(words, image, image_mask)
        if image is None:
            raise ValueError(f"fusion {self.name!r} needs an image: image must have shape (B, N, {self.image_dim}), got None")
        expect_shape("image", image, (words.size(0), "N", self.image_dim))
        if image_mask is None:
            image_mask = torch.ones(image.shape[:2], dtype=torch.bool, device=image.device)
        expect_shape("image_mask", image_mask, tuple(image.shape[:2]))
        check_prefix_mask("image_mask", image_mask.bool())
        return self.fuse(words, image, image_mask.bool())

    def fuse(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None) -> FusionOutput:
        """words ``(B, T, H)``, image ``(B, N, D)`` and image_mask ``(B, N)`` (None for text-only
        fusion) -> fused ``(B, T, F)`` (inputs already checked)."""
        raise NotImplementedError


class Decoder(nn.Module):
    """Turns emissions ``(B, T, C)`` into a loss, tag paths and per-tag marginals.

    ``labels`` names the ``C`` tags (``model/build.py`` passes the model's
    label set); decoders use the names for the BIO transition constraints of
    :mod:`mscmt_cli.model.bio`: a decoded path never holds a step that no BIO
    corpus could hold. ``mask`` is ``(B, T)``, each row real words then
    padding, the first word on. Subclasses implement ``_loss``, ``_decode``
    and ``_marginals``; the public methods check their inputs first.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    explains: ClassVar[frozenset[str]] = frozenset()
    Params: ClassVar[type[ComponentParams] | None] = None

    def __init__(self, labels: Sequence[str], params: ComponentParams | None = None) -> None:
        super().__init__()
        self.labels = tuple(labels)
        self.num_tags = len(self.labels)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood over the batch (a scalar); tags ``(B, T)`` label ids."""
        self._check(emissions, mask)
        expect_shape("tags", tags, tuple(emissions.shape[:2]))
        if tags.dtype not in (torch.int64, torch.int32) or (tags.numel() and (tags.min() < 0 or tags.max() >= self.num_tags)):
            raise ValueError(f"tags must be integer label ids in [0, {self.num_tags}), got dtype {tags.dtype}")
        return self._loss(emissions, tags, mask.bool())

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best tag ids per tweet, each list as long as the tweet."""
        self._check(emissions, mask)
        return self._decode(emissions, mask.bool())

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-word tag probabilities ``(B, T, C)`` (rows of padding words are meaningless)."""
        self._check(emissions, mask)
        return self._marginals(emissions, mask.bool())

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor) -> None:
        expect_shape("emissions", emissions, ("B", "T", self.num_tags))
        expect_shape("mask", mask, tuple(emissions.shape[:2]))
        if emissions.size(1) == 0 or not bool(mask[:, 0].all()):
            raise ValueError("mask of the first word must be on for every tweet")
        if bool((mask[:, 1:].bool() & ~mask[:, :-1].bool()).any()):
            raise ValueError("mask rows must be real words first, then padding")

    def _loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        raise NotImplementedError

    def _marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
