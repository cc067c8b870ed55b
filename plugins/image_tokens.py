"""Image encoders that give a sequence of tokens per image (for fusions that attend over them).

* ``clip-vit-l14-patches``: CLIP ViT-L/14's vision tokens, the ``[CLS]``
  token and one per 14x14 patch: 257 x 1024 at 224 px.
* ``timm-grid:<model>``: a timm model's last feature map average-pooled to a
  7 x 7 grid, 49 x C (UMT's design with ``timm-grid:resnet152``: 49 x 2048).
* ``blip2-query-tokens``: BLIP-2's 32 Q-Former query tokens in its
  image-text space, 32 x 256 (the tokens ``blip2`` averages into one).

Tokens are kept in float16 (cache and memory); the grid layout (``grid``,
``grid_offset``) lets the explain page draw attention as a heat map over the
image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from transformers import CLIPVisionModel

from mscmt_cli.errors import MscmtError
from mscmt_cli.model.components import ComponentParams, ImageTokens
from plugins.image_encoders import HFVisionEncoder
from plugins.vlm import Blip2ImageEncoder, TimmImageEncoder


class ClipVitL14PatchEncoder(HFVisionEncoder):
    """Frozen CLIP ViT-L/14 vision tower; every output token, ``(n, 1 + G*G, 1024)``.

    Which layer and norm: the last encoder layer's ``last_hidden_state``
    passed through the tower's ``post_layernorm`` (the LayerNorm CLIP applies
    to its ``[CLS]`` token before the projection), for every token, so token 0
    equals the ``pooler_output`` and all tokens share its scale. No projection:
    ``D`` is the tower's hidden size (1024). Token 0 is ``[CLS]``, tokens
    ``1 .. G*G`` the patches row by row (``G = 224 / 14 = 16``: 257 tokens).
    """

    name = "clip-vit-l14-patches"
    description = "CLIP ViT-L/14 vision tokens (openai/clip-vit-large-patch14), frozen: [CLS] + 16x16 patches, 257 x 1024, post-LayerNorm"
    default_source = "openai/clip-vit-large-patch14"
    model_class = CLIPVisionModel
    token_dtype = torch.float16
    grid_offset = 1

    def __init__(self, source: str, variant: str | None = None) -> None:
        super().__init__(source, variant)
        side = int(self.model.config.image_size) // int(self.model.config.patch_size)
        self.grid = (side, side)
        self.max_tokens = self.grid_offset + side * side

    def feature_dim(self, config: Any) -> int:
        return int(config.hidden_size)

    def identity(self) -> str:
        return f"{super().identity()}|last_hidden_state+post_layernorm"

    def tokens(self, output: Any) -> ImageTokens:
        """``post_layernorm(last_hidden_state)`` ``(n, 1 + G*G, D)``, every token real."""
        hidden: torch.Tensor = self.model.post_layernorm(output.last_hidden_state)
        if hidden.size(1) != self.max_tokens:
            raise MscmtError(
                f"{self.name}: the image processor gives {hidden.size(1)} tokens, the model's config "
                f"{self.max_tokens} (image_size / patch_size); the processor and the weights do not belong together"
            )
        return ImageTokens(hidden.float().cpu(), torch.ones(hidden.shape[:2], dtype=torch.bool))


class TimmGridParams(ComponentParams):
    """Parameters of ``timm-grid``."""

    grid: int = Field(7, ge=1, le=32, description="side G of the grid the last feature map is average-pooled to (G*G tokens)")


class TimmGridEncoder(TimmImageEncoder):
    """Any convolutional timm model (``timm-grid:<model>``), frozen; its last feature map pooled to a grid.

    ``forward_features`` gives the last feature map ``(n, C, h, w)`` (before
    the global pooling and the classifier); ``adaptive_avg_pool2d`` brings it
    to ``G x G`` (``G = 7`` by default, ``--set image.grid=G``); the tokens are
    the cells row by row, ``(n, G*G, C)``. With ``resnet152`` at 224 px the map
    is already 7 x 7 x 2048, so the tokens are UMT's 49 regions. A model whose
    features are not a map (a ViT) is refused at its first image.
    """

    name = "timm-grid"
    description = "a timm CNN's last feature map pooled to a 7x7 grid, e.g. timm-grid:resnet152 (49 x 2048, UMT's regions), frozen"
    Params = TimmGridParams
    token_dtype = torch.float16

    def __init__(self, source: str, variant: str | None = None, params: TimmGridParams | None = None) -> None:
        super().__init__(source, variant)
        self.side = (params or TimmGridParams()).grid
        self.dim = int(self.model.num_features)
        self.grid, self.max_tokens = (self.side, self.side), self.side * self.side

    def identity(self) -> str:
        return f"{super().identity()}|forward_features|grid{self.side}x{self.side}"

    def from_pixels(self, pixels: torch.Tensor) -> ImageTokens:
        """The grid cells of ``pixel_values`` ``(n, 3, h, w)``: ``(n, G*G, C)`` float32 on the CPU, every token real."""
        fmap: torch.Tensor = self.model.forward_features(pixels)
        if fmap.dim() != 4 or fmap.size(1) != self.dim:
            raise MscmtError(
                f"{self.component}: forward_features gives {tuple(fmap.shape)}, not a feature map (n, {self.dim}, h, w); "
                f"timm-grid needs a convolutional model (use timm:{self.variant} for pooled features)"
            )
        cells = F.adaptive_avg_pool2d(fmap.float(), self.side).flatten(2).transpose(1, 2)  # (n, G*G, C)
        return ImageTokens(cells.contiguous().cpu(), torch.ones(cells.shape[:2], dtype=torch.bool))


class Blip2QueryTokenEncoder(Blip2ImageEncoder):
    """Frozen BLIP-2 vision path; its ``Q`` query tokens, ``(n, Q, P)`` (32 x 256 for blip2-itm-vit-g).

    Which layer and norm: ``image_embeds`` of ``Blip2VisionModelWithProjection``, the
    Q-Former's last hidden state of each query token through the vision projection,
    L2-normalised per token (the space where BLIP-2 compares images with texts); the
    pooled ``blip2`` encoder is their mean. The tokens have no spatial layout (no grid).
    """

    name = "blip2-query-tokens"
    description = "BLIP-2 ViT-g + Q-Former (Salesforce/blip2-itm-vit-g), frozen: its 32 query tokens, image_embeds 32 x 256"
    token_dtype = torch.float16

    def __init__(self, source: str, variant: str | None = None) -> None:
        super().__init__(source, variant)
        self.max_tokens = int(self.model.config.num_query_tokens)

    def identity(self) -> str:
        return f"{super().identity()}|image_embeds"

    def tokens(self, output: Any) -> ImageTokens:
        """``image_embeds`` ``(n, Q, P)``, every token real."""
        embeds: torch.Tensor = output.image_embeds
        return ImageTokens(embeds.float().cpu(), torch.ones(embeds.shape[:2], dtype=torch.bool))
