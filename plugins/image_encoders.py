"""Built-in image encoders: CLIP ViT-L/14 (frozen) and none."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

from mscmt_cli.model.components import ImageEncoder, ImageTokens, PixelEncoder
from mscmt_cli.model.hub import config_digest, load_pretrained, weights_fingerprint


class HFVisionEncoder(PixelEncoder):
    """A frozen Hugging Face vision model with its own image processor.

    Subclasses set ``model_class`` and define ``feature_dim(config)`` and
    ``pool(output)`` (model output -> ``(n, D)``, one token per image), or
    ``tokens(output)`` (model output -> :class:`ImageTokens`) for a token encoder.
    """

    model_class: Any = None

    def __init__(self, source: str, variant: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.processor = load_pretrained(self.name, source, AutoImageProcessor.from_pretrained)
        self.model = load_pretrained(self.name, source, self.model_class.from_pretrained).eval()
        self.model.requires_grad_(False)
        self.dim = int(self.feature_dim(self.model.config))

    def feature_dim(self, config: Any) -> int:
        raise NotImplementedError

    def pool(self, output: Any) -> torch.Tensor:
        raise NotImplementedError

    def identity(self) -> str:
        return f"{self.name}|{weights_fingerprint(self.source, self.model)}|{config_digest(self.processor.to_dict())}"

    def tokens(self, output: Any) -> ImageTokens:
        """The model output as tokens: by default one, :meth:`pool`'s ``(n, D)`` -> ``(n, 1, D)``."""
        return ImageTokens.pooled(self.pool(output).float().cpu())

    def pixels(self, inputs: list[Any]) -> torch.Tensor:
        """``n`` PIL images through the model's own image processor: ``(n, 3, h, w)`` on the model's device."""
        device = next(self.model.parameters()).device
        pixels: torch.Tensor = self.processor(images=inputs, return_tensors="pt")["pixel_values"]
        return pixels.to(device)

    def from_pixels(self, pixels: torch.Tensor) -> ImageTokens:
        """Tokens of ``pixel_values`` ``(n, 3, h, w)``: :meth:`tokens` of the model's output."""
        return self.tokens(self.model(pixel_values=pixels))


class ClipVitL14Encoder(HFVisionEncoder):
    """Frozen CLIP ViT-L/14 vision tower; its projected image embedding (768-d)."""

    name = "clip-vit-l14"
    description = "CLIP ViT-L/14 vision tower (openai/clip-vit-large-patch14), frozen, projected image embedding"
    default_source = "openai/clip-vit-large-patch14"
    model_class = CLIPVisionModelWithProjection

    def feature_dim(self, config: Any) -> int:
        return int(config.projection_dim)

    def pool(self, output: Any) -> torch.Tensor:
        """``image_embeds`` ``(n, projection_dim)``."""
        embeds: torch.Tensor = output.image_embeds
        return embeds


class NoImageEncoder(ImageEncoder):
    """No image: text-only models use this (``dim == 0``)."""

    name = "none"
    description = "no image (text-only models)"
    input_kind = "none"

    def __init__(self, source: str = "", variant: str | None = None) -> None:
        super().__init__()
        self.dim = 0

    def identity(self) -> str:
        return self.name

    def encode(self, inputs: list[Any]) -> ImageTokens:
        """One token of width 0 per input: ``(n, 1, 0)``."""
        return ImageTokens.pooled(torch.zeros(len(inputs), 0))
