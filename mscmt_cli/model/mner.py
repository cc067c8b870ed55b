"""MSCMT: a text encoder, a fusion with frozen image tokens, linear emissions, a decoder.

The frozen image encoder is not part of this module: its tokens arrive
precomputed (``(B, N, D)`` with a ``(B, N)`` mask; ``N == 1`` for a pooled
encoder), so the trainable model and its saved weights hold only what is
trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mscmt_cli.model.components import Decoder, Fusion, TextBatch, TextEncoder, expect_shape


@dataclass
class MNERBatch:
    """One batch of tweets.

    Attributes:
        text: the padded sub-word windows (see :class:`TextBatch`).
        image: ``(B, N, D)`` frozen image tokens (zeros past an image's real tokens), ``D`` may be 0.
        image_mask: ``(B, N)`` bool, True on real image tokens (real first, then padding).
        tags: ``(B, T)`` gold label ids (0 on padding), or None.
    """

    text: TextBatch
    image: torch.Tensor
    image_mask: torch.Tensor
    tags: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor:
        return self.text.word_mask

    def to(self, device: torch.device | str) -> MNERBatch:
        tags = self.tags.to(device, non_blocking=True) if self.tags is not None else None
        image, image_mask = (t.to(device, non_blocking=True) for t in (self.image, self.image_mask))
        return MNERBatch(self.text.to(device), image, image_mask, tags)


@dataclass
class MNEROutput:
    """What :meth:`MNERModel.forward` returns.

    Attributes:
        emissions: ``(B, T, C)`` per-word label scores.
        mask: ``(B, T)`` bool, True on real words.
        gate: ``(B, T, H)`` the visual gate ``g_i`` (gated fusion only), else None.
        loss: the decoder's mean loss when gold tags were given, else None.
        attention: ``(B, T, N)`` each word's attention over the image tokens (fusions that
            explain ``"attention"``, e.g. cross-attention), else None.
    """

    emissions: torch.Tensor
    mask: torch.Tensor
    gate: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    attention: torch.Tensor | None = None


def check_batch(batch: MNERBatch) -> None:
    """Raise ``ValueError`` naming the field when the batch's tensors disagree in shape."""
    b, t = batch.text.word_mask.shape
    expect_shape("word_index", batch.text.word_index, (b, t))
    expect_shape("attention_mask", batch.text.attention_mask, tuple(batch.text.input_ids.shape))
    expect_shape("image", batch.image, (b, "N", "D"))
    expect_shape("image_mask", batch.image_mask, tuple(batch.image.shape[:2]))
    if batch.tags is not None:
        expect_shape("tags", batch.tags, (b, t))


class MNERModel(nn.Module):
    """Text encoder -> dropout -> fusion with the image tokens -> linear -> decoder."""

    def __init__(self, text: TextEncoder, fusion: Fusion, decoder: Decoder, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.text = text
        self.dropout = nn.Dropout(dropout)
        self.fusion = fusion
        self.classifier = nn.Linear(fusion.output_dim, num_labels)
        self.decoder = decoder

    def forward(self, batch: MNERBatch) -> MNEROutput:
        """Emissions (and the loss when ``batch.tags`` is given); shapes checked first."""
        check_batch(batch)
        words = self.dropout(self.text(batch.text))  # (B, T, H)
        image = batch.image if batch.image.numel() else None
        fused = self.fusion(words, image, batch.image_mask if image is not None else None)
        emissions = self.classifier(fused.fused)  # (B, T, C)
        loss = self.decoder.loss(emissions, batch.tags, batch.mask) if batch.tags is not None else None
        return MNEROutput(emissions, batch.mask, fused.gate, loss, fused.attention)

    def decode(self, output: MNEROutput) -> list[list[int]]:
        """Best label ids per tweet (Viterbi for the CRF)."""
        return self.decoder.decode(output.emissions, output.mask)

    def marginals(self, output: MNEROutput) -> torch.Tensor:
        """Per-word label probabilities ``(B, T, C)``."""
        return self.decoder.marginals(output.emissions, output.mask)

    def parameter_groups(self, lr: float, head_lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: text encoder and the fusion's projection at ``lr``, the rest at ``head_lr``.

        Biases and LayerNorm weights get no weight decay.
        """
        slow_prefixes = ("text.",) + tuple(f"fusion.{p}." for p in self.fusion.slow_parameter_prefixes)
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            slow = name.startswith(slow_prefixes)
            decay = param.ndim > 1
            groups.setdefault((slow, decay), []).append(param)
        return [
            {
                "params": params,
                "lr": lr if slow else head_lr,
                "weight_decay": weight_decay if decay else 0.0,
                "group": ("encoder" if slow else "head"),
            }
            for (slow, decay), params in sorted(groups.items())
        ]
