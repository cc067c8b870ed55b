"""Built-in fusions: the paper's token-level gate, additive fusion, none, and cross-attention.

The gated and additive fusions take one vector per image: given image tokens
``(B, N, D)`` they first take the mean of each image's real tokens
(:func:`~mscmt_cli.model.components.masked_mean`); with a pooled encoder
(``N == 1``) that is the image's vector itself, so they compute exactly what
they computed before images were token sequences.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.components import ComponentParams, Fusion, FusionOutput, masked_mean

#: Largest gate projection: W_g then holds (768 + 8192) x 8192 floats (294 MB) for BERTweet; 10^10 asked for 640 GB.
MAX_PROJ_DIM = 8192


class GatedParams(ComponentParams):
    """Parameters of the paper's gate."""

    proj_dim: int | None = Field(
        None,
        ge=1,
        le=MAX_PROJ_DIM,
        description="size P of v_proj = W_p v (default: the text hidden size H, as in the paper); W_g holds (H + P) x P weights",
    )
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


class CrossAttentionParams(ComponentParams):
    """Parameters of the cross-attention fusion."""

    heads: int = Field(4, ge=1, le=64, description="attention heads (must divide the text hidden size H)")
    layers: int = Field(1, ge=1, le=12, description="stacked cross-attention layers, each word attending over the image tokens")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the attention weights and on the attended vector")
    gate: bool = Field(
        True, description="a learned sigmoid gate on the attended vector, g * a with g = sigmoid(W_g [h; a]) (UMT's visual gate)"
    )


class MaskedAttention(nn.Module):
    """Multi-head attention of queries over keys with a key padding mask (batch first).

    The arithmetic and parameter names of ``nn.MultiheadAttention`` (``in_proj_weight``
    ``(3E, E)``, ``in_proj_bias``, ``out_proj``), written with reshapes over the head
    axes only, so a traced graph (``mscmt export``) keeps its batch and length axes free.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, S, E)`` -> ``(B, heads, S, E / heads)``."""
        return x.reshape(*x.shape[:-1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query ``(B, T, E)``, memory ``(B, N, E)``, padding ``(B, N)`` (True on padding) ->
        attended ``(B, T, E)`` and the weights ``(B, T, N)`` averaged over heads."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._split(F.linear(query, w_q, b_q))  # (B, h, T, d)
        k, v = self._split(F.linear(memory, w_k, b_k)), self._split(F.linear(memory, w_v, b_v))  # (B, h, N, d)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, h, T, N)
        weights = scores.masked_fill(padding[:, None, None, :], float("-inf")).softmax(dim=-1)
        attended = (self.dropout(weights) @ v).transpose(1, 2).flatten(2)  # (B, T, E)
        return self.out_proj(attended), weights.mean(dim=1)


class CrossAttentionLayer(nn.Module):
    """One layer: ``x <- LayerNorm(x + dropout(g * a))``, ``a`` the words' multi-head attention over the image tokens."""

    def __init__(self, dim: int, heads: int, dropout: float, gate: bool) -> None:
        super().__init__()
        self.attention = MaskedAttention(dim, heads, dropout)
        self.gate = nn.Linear(2 * dim, dim) if gate else None  # W_g, b_g
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, image: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(B, T, H)``, image ``(B, N, H)``, padding ``(B, N)`` (True on padding tokens) ->
        new x ``(B, T, H)`` and the attention ``(B, T, N)`` averaged over heads."""
        attended, weights = self.attention(x, image, padding)
        if self.gate is not None:
            attended = torch.sigmoid(self.gate(torch.cat([x, attended], dim=-1))) * attended
        return self.norm(x + self.dropout(attended)), weights


class CrossAttentionFusion(Fusion):
    """Each word state attends over the image tokens (UMT's cross-modal attention, ``(B, T, H)``).

    The image tokens are projected to the text size, ``v = W_p image``
    (``(B, N, H)``); then each of ``layers`` layers computes, per word, the
    multi-head attention ``a_i`` over the real tokens of its tweet's image
    (padding tokens masked out of the keys), gates it with ``g_i =
    sigmoid(W_g [x_i ; a_i] + b_g)`` (``--set fusion.gate=false`` drops the
    gate) and adds it back: ``x_i <- LayerNorm(x_i + dropout(g_i * a_i))``.
    The output is the last ``x``, ``(B, T, H)``. With one token per image
    (a pooled encoder) each word's attention is 1 on it.

    ``attention`` in the output is the last layer's ``(B, T, N)`` weights,
    averaged over heads (what ``mscmt explain`` draws). Learning rates: every
    parameter here is new and randomly initialised, ``W_p`` included, so all
    train at the head's learning rate (``--head-lr``); nothing is slow. (The
    gated fusion keeps ``W_p`` at the encoder's rate only because the paper
    does.)
    """

    name = "cross-attention"
    description = "each word attends over the image tokens (multi-head, masked, residual + LayerNorm, sigmoid gate on the attended vector)"
    explains = frozenset({"attention"})
    Params = CrossAttentionParams

    def __init__(self, text_dim: int, image_dim: int, params: CrossAttentionParams | None = None) -> None:
        super().__init__(text_dim, image_dim)
        p = params or CrossAttentionParams()
        if text_dim % p.heads:
            raise MscmtError(
                f"fusion cross-attention: heads={p.heads} does not divide the text hidden size {text_dim}; --set fusion.heads=N"
            )
        self.proj = nn.Linear(image_dim, text_dim)  # W_p
        self.layers = nn.ModuleList(CrossAttentionLayer(text_dim, p.heads, p.dropout, p.gate) for _ in range(p.layers))
        self.output_dim = text_dim

    def fuse(self, words: torch.Tensor, image: torch.Tensor | None, image_mask: torch.Tensor | None) -> FusionOutput:
        """words ``(B, T, H)``, image ``(B, N, D)``, image_mask ``(B, N)`` -> fused ``(B, T, H)``, attention ``(B, T, N)``."""
        assert image is not None and image_mask is not None  # checked by forward
        v, padding = self.proj(image), ~image_mask  # (B, N, H), (B, N)
        x, weights = words, words.new_zeros(0)
        for layer in self.layers:
            x, weights = layer(x, v, padding)
        return FusionOutput(x, attention=weights)
