"""Built-in fusions: the paper's token-level gate, additive fusion, and none."""

from __future__ import annotations

import torch
from torch import nn

from mscmt_cli.model.components import Fusion, FusionOutput


class GatedFusion(Fusion):
    """MSCMT_Hybrid's gate: ``fused_i = [h_i ; g_i * v_proj]``.

    ``v_proj = W_p v`` (``(B, H)``) and ``g_i = sigmoid(W_g [h_i ; v_proj] + b_g)``
    (``(B, T, H)``), so the output is ``(B, T, 2H)``.
    """

    name = "gated"
    description = "token-level sigmoid gate over [h_i; W_p v], output [h_i; g_i * W_p v] (the paper's fusion)"
    slow_parameter_prefixes = ("proj",)

    def __init__(self, text_dim: int, image_dim: int) -> None:
        super().__init__(text_dim, image_dim)
        self.proj = nn.Linear(image_dim, text_dim)  # W_p
        self.gate = nn.Linear(2 * text_dim, text_dim)  # W_g, b_g
        self.output_dim = 2 * text_dim

    def forward(self, words: torch.Tensor, image: torch.Tensor | None) -> FusionOutput:
        """words ``(B, T, H)``, image ``(B, D)`` -> fused ``(B, T, 2H)``, gate ``(B, T, H)``."""
        v = self.proj(image).unsqueeze(1).expand_as(words)  # (B, T, H)
        g = torch.sigmoid(self.gate(torch.cat([words, v], dim=-1)))
        return FusionOutput(torch.cat([words, g * v], dim=-1), g)


class AdditiveFusion(Fusion):
    """The ablation's simple fusion: ``h_i + W_p v`` (``(B, T, H)``)."""

    name = "additive"
    description = "h_i + W_p v (the paper's ablation V1)"
    slow_parameter_prefixes = ("proj",)

    def __init__(self, text_dim: int, image_dim: int) -> None:
        super().__init__(text_dim, image_dim)
        self.proj = nn.Linear(image_dim, text_dim)
        self.output_dim = text_dim

    def forward(self, words: torch.Tensor, image: torch.Tensor | None) -> FusionOutput:
        return FusionOutput(words + self.proj(image).unsqueeze(1))


class NoFusion(Fusion):
    """Text only: the word features pass through unchanged."""

    name = "none"
    description = "text only: word features pass through, no image"
    needs_image = False

    def __init__(self, text_dim: int, image_dim: int) -> None:
        super().__init__(text_dim, image_dim)
        self.output_dim = text_dim

    def forward(self, words: torch.Tensor, image: torch.Tensor | None) -> FusionOutput:
        return FusionOutput(words)
