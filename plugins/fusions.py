"""Built-in fusions: the paper's token-level gate, additive fusion, and none.

The gated and additive fusions take one vector per image: given image tokens
``(B, N, D)`` they first take the mean of each image's real tokens
(:func:`~mscmt_cli.model.components.masked_mean`); with a pooled encoder
(``N == 1``) that is the image's vector itself, so they compute exactly what
they computed before images were token sequences.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from mscmt_cli.model.components import ComponentParams, Fusion, FusionOutput, masked_mean


class GatedParams(ComponentParams):
    """Parameters of the paper's gate."""

    proj_dim: int | None = Field(None, ge=1, description="size P of v_proj = W_p v (default: the text hidden size H, as in the paper)")
    gate_bias: float = Field(0.0, ge=-20, le=20, description="initial b_g: negative starts with the gate mostly closed")


class GatedFusion(Fusion):
    """MSCMT_Hybrid's gate: ``fused_i = [h_i ; g_i * v_proj]``.

    ``v_proj = W_p v`` (``(B, P)``, ``P = H`` by default) and
    ``g_i = sigmoid(W_g [h_i ; v_proj] + b_g)`` (``(B, T, P)``), so the output
    is ``(B, T, H + P)``. ``v`` is the masked mean of the image tokens (the
    image's vector for a pooled encoder).
    """

    name = "gated"
    description = "token-level sigmoid gate over [h_i; W_p v], output [h_i; g_i * W_p v] (the paper's fusion)"
    slow_parameter_prefixes = ("proj",)
    explains = frozenset({"gate"})
    Params = GatedParams

    def __init__(self, text_dim: int, image_dim: int, params: GatedParams | None = None) -> None:
        super().__init__(text_dim, image_dim)
        p = params or GatedParams()
        proj_dim = p.proj_dim or text_dim
        self.proj = nn.Linear(image_dim, proj_dim)  # W_p
        self.gate = nn.Linear(text_dim + proj_dim, proj_dim)  # W_g, b_g
        nn.init.constant_(self.gate.bias, p.gate_bias)
        self.output_dim = text_dim + proj_dim

    def fuse(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None) -> FusionOutput:
        """words ``(B, T, H)``, image ``(B, N, D)``, image_mask ``(B, N)`` -> fused ``(B, T, H + P)``, gate ``(B, T, P)``."""
        assert image is not None and image_mask is not None  # checked by forward
        v = self.proj(masked_mean(image, image_mask)).unsqueeze(1).expand(-1, words.size(1), -1)  # (B, T, P)
        g = torch.sigmoid(self.gate(torch.cat([words, v], dim=-1)))
        return FusionOutput(torch.cat([words, g * v], dim=-1), g)


class AdditiveFusion(Fusion):
    """The ablation's simple fusion: ``h_i + W_p v`` (``(B, T, H)``), ``v`` the masked mean of the image tokens."""

    name = "additive"
    description = "h_i + W_p v (the paper's ablation V1)"
    slow_parameter_prefixes = ("proj",)

    def __init__(self, text_dim: int, image_dim: int, params: ComponentParams | None = None) -> None:
        super().__init__(text_dim, image_dim)
        self.proj = nn.Linear(image_dim, text_dim)
        self.output_dim = text_dim

    def fuse(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None) -> FusionOutput:
        """words ``(B, T, H)``, image ``(B, N, D)``, image_mask ``(B, N)`` -> ``(B, T, H)``."""
        assert image is not None and image_mask is not None  # checked by forward
        return FusionOutput(words + self.proj(masked_mean(image, image_mask)).unsqueeze(1))


class NoFusion(Fusion):
    """Text only: the word features pass through unchanged."""

    name = "none"
    description = "text only: word features pass through, no image"
    needs_image = False

    def __init__(self, text_dim: int, image_dim: int, params: ComponentParams | None = None) -> None:
        super().__init__(text_dim, image_dim)
        self.output_dim = text_dim

    def fuse(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None) -> FusionOutput:
        """words ``(B, T, H)`` unchanged."""
        return FusionOutput(words)

