"""Built-in image encoders: CLIP ViT-L/14 (frozen) and none."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

from mscmt_cli.model.components import ImageEncoder
from mscmt_cli.model.hub import load_pretrained


def weights_fingerprint(source: str, model: torch.nn.Module) -> str:
    """A cheap identity for a model's weights.

    For a local weights file, or a local directory's weight files: names,
    sizes and the first and last MiB of each. Otherwise (or when none are
    found): a hash of every parameter's shape and a strided sample of its values.
    """
    h = hashlib.sha256()
    path = Path(source)
    if path.is_file():
        files = [path]
    else:
        files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    for f in files:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(1 << 20)
            fh.seek(max(0, size - (1 << 20)))
            tail = fh.read()
        h.update(f"{f.name}:{size}".encode() + head + tail)
    if not files:
        for name, p in model.state_dict().items():
            flat = p.detach().flatten()
            h.update(f"{name}{tuple(p.shape)}".encode() + flat[:: max(1, flat.numel() // 64)].float().numpy().tobytes())
    return h.hexdigest()[:16]


def config_digest(data: Any) -> str:
    """Short hash of a JSON-able configuration (preprocessing, transforms)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


class HFVisionEncoder(ImageEncoder):
    """A frozen Hugging Face vision model with its own image processor.

    Subclasses set ``model_class`` and define ``feature_dim(config)`` and
    ``pool(output)`` (model output -> ``(n, D)``).
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

    @torch.inference_mode()
    def encode(self, inputs: list[Any]) -> torch.Tensor:
        """Features ``(n, D)`` of ``n`` PIL images, float32 on CPU."""
        device = next(self.model.parameters()).device
        pixels = self.processor(images=inputs, return_tensors="pt")["pixel_values"].to(device)
        return self.pool(self.model(pixel_values=pixels)).float().cpu()


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

    def encode(self, inputs: list[Any]) -> torch.Tensor:
        return torch.zeros(len(inputs), 0)
