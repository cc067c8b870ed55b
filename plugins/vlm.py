"""The vision-language baselines the paper reports as failing (about 50 F1).

* text ``clip-text``: the CLIP ViT-L/14 text transformer as a token encoder.
  Its 77-position limit is met by the word windows of :class:`HFTextEncoder`;
  CLIP's tokenizer has no ``[CLS]``/``[SEP]``, so every window is wrapped in
  ``<|startoftext|>`` ... ``<|endoftext|>`` (its bos/eos).
* text ``blip2``: the BLIP-2 Q-Former run as a text encoder (no query
  tokens), per-token ``last_hidden_state`` ``(W, L, 768)``.
* image ``blip2``: the BLIP-2 ViT-g + Q-Former vision path. Its
  ``image_embeds`` are ``(n, Q, P)`` (``Q`` = 32 query tokens, ``P`` = 256,
  each L2-normalised); the image feature is their mean over the queries,
  ``(n, P)``.
* image ``timm:<model>``: any timm model as a frozen global image encoder
  (``num_classes=0``: the pooled pre-logits features), with the model's own
  preprocessing (``resolve_data_config`` + ``create_transform``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    Blip2Config,
    Blip2TextModelWithProjection,
    Blip2VisionModelWithProjection,
    CLIPTextConfig,
    CLIPTextModel,
)

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.components import ImageTokens, PixelEncoder
from mscmt_cli.model.hf_text import HFTextEncoder
from mscmt_cli.model.hub import config_digest, load_pretrained, weights_fingerprint
from plugins.image_encoders import HFVisionEncoder

BLIP2_SOURCE = "Salesforce/blip2-itm-vit-g"
TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


class ClipTextEncoder(HFTextEncoder):
    """CLIP ViT-L/14 text transformer, word-aligned, in windows of 77 sub-words."""

    name = "clip-text"
    description = "CLIP ViT-L/14 text transformer (openai/clip-vit-large-patch14) as a token encoder, 77-token windows"
    default_source = "openai/clip-vit-large-patch14"
    model_class = CLIPTextModel  # the text tower alone: a full CLIP checkpoint's vision weights are skipped
    config_class = CLIPTextConfig  # a full CLIP config.json gives its text_config


class _QFormerText(nn.Module):
    """``Blip2TextModelWithProjection`` seen as a plain encoder.

    ``config`` is the Q-Former's config (``hidden_size``,
    ``max_position_embeddings``), which is what :class:`HFTextEncoder` reads;
    ``blip.config`` is the full ``Blip2Config`` that rebuilds the model.
    """

    def __init__(self, blip: Blip2TextModelWithProjection) -> None:
        super().__init__()
        self.blip = blip
        self.config = blip.config.qformer_config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """Output with ``last_hidden_state`` ``(W, L, H)`` for ``input_ids`` ``(W, L)``."""
        return self.blip(input_ids=input_ids, attention_mask=attention_mask)


class Blip2TextEncoder(HFTextEncoder):
    """BLIP-2 Q-Former text path; one ``last_hidden_state`` vector per word."""

    name = "blip2"
    description = "BLIP-2 Q-Former text path (Salesforce/blip2-itm-vit-g), per-token hidden states"
    default_source = BLIP2_SOURCE
    unused_parameters = ("query_tokens", "crossattention", "_query.", "text_projection")  # the image side of the Q-Former

    def _load_model(self, source: str, pretrained: bool) -> nn.Module:
        config = load_pretrained(self.name, source, Blip2Config.from_pretrained)
        if not getattr(config.qformer_config, "use_qformer_text_input", False):
            raise ModelLoadError(
                f"{self.name}: {source} has no Q-Former text layers (qformer_config.use_qformer_text_input is false); "
                f"use an image-text retrieval checkpoint such as {BLIP2_SOURCE}"
            )
        if pretrained:
            load = lambda s, **hub: Blip2TextModelWithProjection.from_pretrained(s, config=config, **hub)  # noqa: E731 (config read once)
            return _QFormerText(load_pretrained(self.name, source, load))
        return _QFormerText(Blip2TextModelWithProjection(config))

    def save_architecture(self, directory: Path) -> None:
        """The full ``Blip2Config`` (not the Q-Former part) and the tokenizer."""
        from mscmt_cli.paths import save_pretrained

        save_pretrained(self.model.blip.config, directory)  # self.model is the _QFormerText wrapper
        save_pretrained(self.tokenizer, directory)


class Blip2ImageEncoder(HFVisionEncoder):
    """Frozen BLIP-2 vision path; the mean over query tokens of ``image_embeds``, ``(n, P)``."""

    name = "blip2"
    description = "BLIP-2 ViT-g + Q-Former (Salesforce/blip2-itm-vit-g), frozen, image_embeds mean over query tokens"
    default_source = BLIP2_SOURCE
    model_class = Blip2VisionModelWithProjection

    def feature_dim(self, config: Any) -> int:
        return int(config.image_text_hidden_size)

    def pool(self, output: Any) -> torch.Tensor:
        """``image_embeds`` ``(n, Q, P)`` averaged over the ``Q`` query tokens."""
        embeds: torch.Tensor = output.image_embeds
        return embeds.mean(dim=1)


class TimmImageEncoder(PixelEncoder):
    """Any timm model (``timm:<model>``), frozen, pooled features (``num_classes=0``)."""

    name = "timm"
    description = "any timm model as a frozen global image encoder, e.g. timm:resnet152 (pooled features, the model's own transforms)"
    family = "required"

    def __init__(self, source: str, variant: str | None = None) -> None:
        super().__init__()
        from timm.data import create_transform, resolve_data_config

        self.variant, self.source = _timm_variant(self.name, variant), source
        self.component = f"{self.name}:{self.variant}"
        local = source != variant  # build_image_encoder passes the variant when no --model-path was given
        self.model: Any = load_pretrained(self.component, source, _timm_loader(self.component, self.variant, local)).eval()
        self.model.requires_grad_(False)
        self.data_config = resolve_data_config({}, model=self.model)  # type: ignore[no-untyped-call]
        self.transform = create_transform(**self.data_config, is_training=False)
        self.dim = int(getattr(self.model, "head_hidden_size", None) or getattr(self.model, "num_features"))  # noqa: B009

    def identity(self) -> str:
        """Model name, weights fingerprint and transform config."""
        return f"{self.component}|{weights_fingerprint(self.source, self.model)}|{config_digest(self.data_config)}"

    def pixels(self, inputs: list[Any]) -> torch.Tensor:
        """``n`` PIL images through the model's own transform: ``(n, 3, h, w)`` on the model's device."""
        device = next(self.model.parameters()).device
        return torch.stack([self.transform(image) for image in inputs]).to(device)

    def from_pixels(self, pixels: torch.Tensor) -> ImageTokens:
        """Pooled features of ``pixel_values`` ``(n, 3, h, w)`` as one token each: ``(n, 1, D)``."""
        features: torch.Tensor = self.model(pixels)
        return ImageTokens.pooled(features.float().cpu())


def _timm_variant(name: str, variant: str | None) -> str:
    """The timm model name after ``<name>:``, refused when missing or unknown to timm."""
    import timm

    if not variant:
        raise MscmtError(f"image encoder {name!r} needs a model name, e.g. {name}:resnet152")
    if not timm.is_model(variant):
        raise MscmtError(f"{name}:{variant}: timm has no model {variant!r} (see timm.list_models())")
    return variant


def _timm_loader(component: str, variant: str, local: bool) -> Callable[..., nn.Module]:
    """A loader for :func:`load_pretrained`: failures become ``OSError``/``ValueError``."""
    import timm

    def load(source: str, local_files_only: bool = False) -> nn.Module:
        if not local and local_files_only:
            raise OSError("timm's own weights are not looked up in the Hugging Face cache")  # load_pretrained asks the hub
        if not local:
            _check_has_weights(component, variant)
            return timm.create_model(variant, pretrained=True, num_classes=0)
        path = Path(source)
        try:
            if path.is_dir() and (path / "config.json").is_file():  # a timm hub snapshot
                return timm.create_model(f"local-dir:{path}", pretrained=True, num_classes=0)
            overlay = dict(file=str(_weights_file(path)), source="")
            return timm.create_model(variant, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        except RuntimeError as err:  # state dict of another architecture
            raise ValueError(str(err).strip().splitlines()[0]) from err

    return load


def _check_has_weights(component: str, variant: str) -> None:
    """timm silently keeps random weights for a model without any; refuse instead."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(variant, allow_unregistered=True)
    if cfg is None or not (cfg.url or cfg.hf_hub_id or cfg.file):
        raise ModelLoadError(
            f"{component}: timm knows no pretrained weights for this model; pass --model-path {component}=/path/to/weights.safetensors"
        )


def _weights_file(path: Path) -> Path:
    """``path`` itself, or the weights file inside the directory ``path``."""
    if path.is_file():
        return path
    for name in TIMM_WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.pth")) + sorted(path.glob("*.bin"))
    if not found:
        raise FileNotFoundError(f"no weights file (*.safetensors, *.pth, *.bin) in {path}")
    return found[0]
