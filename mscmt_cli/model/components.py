"""The four component contracts that every plugin implements.

A component is a small ``nn.Module`` whose sizes come from the encoders it is
built on. Class attributes ``name`` and ``description`` (one line) are what
``mscmt plugins`` shows.

Tensor shapes use ``B`` (tweets in the batch), ``T`` (words of the longest
tweet), ``W`` (sub-word windows in the batch), ``L`` (sub-words of the
longest window), ``H`` (text hidden size), ``D`` (image feature size),
``F`` (fused size) and ``C`` (labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from mscmt_cli.model.bio import resolve_labels


@dataclass
class EncodedTweet:
    """One tweet as sub-word windows, ready for collation (plain Python, picklable).

    ``windows[k]`` is a list of sub-word ids including the encoder's special
    tokens; ``word_positions[j] = (k, p)`` says that word ``j`` is represented
    by sub-word ``p`` (its first) of window ``k``.
    """

    windows: list[list[int]]
    word_positions: list[tuple[int, int]]

    @property
    def n_subwords(self) -> int:
        return sum(len(w) for w in self.windows)


@dataclass
class TextBatch:
    """Padded windows of a batch of tweets.

    Attributes:
        input_ids: ``(W, L)`` sub-word ids, padded with the encoder's pad id.
        attention_mask: ``(W, L)``, 1 on real sub-words.
        word_index: ``(B, T)`` index into the flattened ``(W * L)`` sub-words
            giving each word's first sub-word (0 on padding words).
        word_mask: ``(B, T)`` bool, True on real words.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    word_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "TextBatch":
        return TextBatch(*(t.to(device, non_blocking=True) for t in (self.input_ids, self.attention_mask, self.word_index, self.word_mask)))


class TextEncoder(nn.Module):
    """Fine-tuned text encoder giving one vector per word.

    Subclasses set ``hidden_size`` and ``pad_id`` and implement ``encode_words``
    (CPU tokenization) and ``forward``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_source: ClassVar[str] = ""
    hidden_size: int
    pad_id: int

    def encode_words(self, words: Sequence[str]) -> EncodedTweet:
        """Tokenize one tweet, already split into words."""
        raise NotImplementedError

    def forward(self, batch: TextBatch) -> torch.Tensor:
        """Word representations ``(B, T, H)`` (first sub-word of each word)."""
        raise NotImplementedError

    def save_architecture(self, directory: Path) -> None:
        """Write what rebuilds this encoder without its weights (config, tokenizer)."""
        raise NotImplementedError


class ImageEncoder(nn.Module):
    """Frozen encoder giving one ``D``-dimensional vector per image.

    ``input_kind`` says what it reads: ``"pixels"`` (PIL images from the image
    store), ``"caption"`` (caption strings), or ``"none"`` (no image at all,
    ``dim == 0``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_source: ClassVar[str] = ""
    family: ClassVar[bool] = False
    input_kind: ClassVar[str] = "pixels"
    dim: int

    def identity(self) -> str:
        """A string that changes whenever the features would (name, weights, preprocessing)."""
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, inputs: list[Any]) -> torch.Tensor:
        """Features ``(n, D)`` of ``n`` inputs (PIL images or caption strings), float32 on CPU."""
        raise NotImplementedError


@dataclass
class FusionOutput:
    """Fused word features ``(B, T, F)`` and the visual gate ``(B, T, H)`` if any."""

    fused: torch.Tensor
    gate: torch.Tensor | None = None


class Fusion(nn.Module):
    """Combines word features ``(B, T, H)`` with an image feature ``(B, D)``.

    ``needs_image`` is False only for text-only fusion. ``slow_parameter_prefixes``
    names the sub-modules trained at the encoder's learning rate (the paper's W_p).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_image: ClassVar[bool] = True
    slow_parameter_prefixes: ClassVar[tuple[str, ...]] = ()
    output_dim: int

    def __init__(self, text_dim: int, image_dim: int) -> None:
        super().__init__()

    def forward(self, words: torch.Tensor, image: torch.Tensor | None) -> FusionOutput:
        raise NotImplementedError


class Decoder(nn.Module):
    """Turns emissions ``(B, T, C)`` into a loss, tag paths and per-tag marginals.

    ``labels`` names the ``C`` tags (``model/build.py`` passes the model's
    label set); None means mscmt's own :data:`~mscmt_cli.labels.LABELS` when
    ``C`` matches it, else unnamed tags. Decoders use the names for the BIO
    transition constraints of :mod:`mscmt_cli.model.bio`: a decoded path never
    holds a step that no BIO corpus could hold.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, num_tags: int, *, labels: Sequence[str] | None = None) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.labels = resolve_labels(num_tags, labels)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood over the batch (a scalar)."""
        raise NotImplementedError

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best tag ids per tweet, each list as long as the tweet."""
        raise NotImplementedError

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-word tag probabilities ``(B, T, C)``."""
        raise NotImplementedError
