"""Assembling a model from component names, and the self-describing run directory.

A saved model directory holds:

    config.json          components, sources, labels, sizes, hyper-parameters
    model.safetensors    every trained weight (text encoder, fusion, classifier, decoder)
    text_encoder/        the text encoder's config and tokenizer (no weights)

The frozen image encoder is referenced by its hub id or path, never copied.
Loading reads JSON and safetensors only: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mscmt_cli import __version__
from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.components import ImageEncoder, TextEncoder
from mscmt_cli.model.hub import resolve_source
from mscmt_cli.model.mner import MNERModel
from mscmt_cli.registry import Registry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT_DIR = "text_encoder"
FORMAT_VERSION = 1


class Components(BaseModel, extra="forbid"):
    """Registered names of the four components."""

    text: str
    image: str
    fusion: str
    decoder: str


class ModelSpec(BaseModel, extra="forbid"):
    """The content of ``config.json``."""

    format: str = "mscmt-model"
    format_version: int = FORMAT_VERSION
    mscmt_version: str = __version__
    components: Components
    sources: dict[str, str]
    labels: list[str]
    dropout: float = 0.1
    text_hidden_size: int
    image_dim: int
    fusion_dim: int
    training: dict[str, Any] = {}


@dataclass
class Assembled:
    """A model ready to train or predict, with its frozen image encoder and spec."""

    model: MNERModel
    image: ImageEncoder
    spec: ModelSpec


def build_image_encoder(registry: Registry, name: str, model_paths: dict[str, str], source: str | None = None) -> ImageEncoder:
    """Instantiate a registered image encoder (frozen, eval mode)."""
    cls, variant = registry.resolve("image", name)
    src = resolve_source(name, source or getattr(cls, "default_source", "") or (variant or ""), model_paths)
    encoder = cls(src, variant)
    encoder.requires_grad_(False)
    return encoder.eval()


def _text_encoder(registry: Registry, name: str, source: str, pretrained: bool) -> TextEncoder:
    cls, _ = registry.resolve("text", name)
    return cls(source, pretrained=pretrained)


def _check_pairing(registry: Registry, components: Components) -> None:
    fusion_cls, _ = registry.resolve("fusion", components.fusion)
    if fusion_cls.needs_image and components.image == "none":
        raise MscmtError(f"fusion {components.fusion!r} needs an image encoder; pass --image (e.g. clip-vit-l14) or use --fusion none")
    if not fusion_cls.needs_image and components.image != "none":
        raise MscmtError(f"fusion 'none' ignores images, but --image {components.image} was given; use --image none for a text-only model")


def assemble(registry: Registry, components: Components, labels: list[str], model_paths: dict[str, str], dropout: float = 0.1) -> Assembled:
    """Build a fresh model from pretrained encoders (downloads or local copies)."""
    _check_pairing(registry, components)
    text_cls, _ = registry.resolve("text", components.text)
    text_source = resolve_source(components.text, text_cls.default_source, model_paths)
    text = text_cls(text_source, pretrained=True)
    image = build_image_encoder(registry, components.image, model_paths)
    fusion_cls, _ = registry.resolve("fusion", components.fusion)
    fusion = fusion_cls(text.hidden_size, image.dim)
    decoder_cls, _ = registry.resolve("decoder", components.decoder)
    model = MNERModel(text, fusion, decoder_cls(len(labels), labels=list(labels)), len(labels), dropout)
    spec = ModelSpec(
        components=components,
        sources={"text": text_source, "image": getattr(image, "source", "")},
        labels=list(labels), dropout=dropout,
        text_hidden_size=text.hidden_size, image_dim=image.dim, fusion_dim=fusion.output_dim,
    )
    return Assembled(model, image, spec)


def save_model(directory: Path, model: MNERModel, spec: ModelSpec) -> None:
    """Write a self-describing model directory atomically (build aside, then swap in)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    os.chmod(tmp, 0o755)
    try:
        model.text.save_architecture(tmp / TEXT_DIR)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "mscmt-model"})
        (tmp / CONFIG_FILE).write_text(spec.model_dump_json(indent=2) + "\n", encoding="utf-8")
        _swap_in(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, directory: Path) -> None:
    old = None
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_spec(directory: Path) -> ModelSpec:
    """Parse and validate ``config.json`` of a model directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"{directory}: not an mscmt model directory (no {CONFIG_FILE})")
    try:
        return ModelSpec.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path}: not valid JSON ({err})") from None
    except ValidationError as err:
        first = err.errors()[0]
        raise ModelLoadError(f"{path}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def load_model(directory: Path, registry: Registry, model_paths: dict[str, str] | None = None) -> Assembled:
    """Reload a saved model directory in one call (JSON + safetensors only)."""
    directory = Path(directory)
    spec = read_spec(directory)
    model_paths = model_paths or {}
    text = _text_encoder(registry, spec.components.text, str(directory / TEXT_DIR), pretrained=False)
    image = build_image_encoder(registry, spec.components.image, model_paths, spec.sources.get("image") or None)
    if image.dim != spec.image_dim:
        raise ModelLoadError(f"{directory}: image encoder {spec.components.image} gives {image.dim}-d features, the model was trained on {spec.image_dim}-d")
    fusion_cls, _ = registry.resolve("fusion", spec.components.fusion)
    decoder_cls, _ = registry.resolve("decoder", spec.components.decoder)
    decoder = decoder_cls(len(spec.labels), labels=spec.labels)
    model = MNERModel(text, fusion_cls(text.hidden_size, image.dim), decoder, len(spec.labels), spec.dropout)
    load_weights(model, directory / WEIGHTS_FILE)
    return Assembled(model.eval(), image, spec)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into ``model``, naming the file on any mismatch."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file missing")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: unreadable weights ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise ModelLoadError(f"{path}: weights do not match the model in config.json ({detail})")
    model.load_state_dict(state)
