"""Assembling a model from component names, and the self-describing run directory.

A saved model directory holds:

    config.json          components, sources, labels, sizes, hyper-parameters
    model.safetensors    every trained weight (text encoder, fusion, classifier, decoder)
    text_encoder/        the text encoder's config and tokenizer (no weights)

The frozen image encoder is referenced by its hub id or path, never copied.
Loading reads JSON and safetensors only: nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.components import ImageEncoder, TextEncoder
from mscmt_cli.model.hub import resolve_source
from mscmt_cli.model.mner import MNERModel
from mscmt_cli.model.spec import CONFIG_FILE as CONFIG_FILE
from mscmt_cli.model.spec import FORMAT_VERSION as FORMAT_VERSION
from mscmt_cli.model.spec import TEXT_DIR as TEXT_DIR
from mscmt_cli.model.spec import WEIGHTS_FILE as WEIGHTS_FILE
from mscmt_cli.model.spec import Components as Components
from mscmt_cli.model.spec import ModelSpec as ModelSpec
from mscmt_cli.model.spec import model_dir as model_dir
from mscmt_cli.model.spec import read_spec as read_spec
from mscmt_cli.paths import atomic_dir, save_tensors, write_text_atomic
from mscmt_cli.registry import KINDS, Registry, component_params, params_model


@dataclass
class Assembled:
    """A model ready to train or predict, with its frozen image encoder and spec."""

    model: MNERModel
    image: ImageEncoder
    spec: ModelSpec

    @property
    def words(self) -> TextEncoder:
        """The tokenizer side: the text encoder (its ``encode_words`` and ``pad_id``)."""
        return self.model.text

    @property
    def explains(self) -> frozenset[str]:
        """What the fusion shows about a prediction (``"gate"``, ``"attention"``)."""
        return type(self.model.fusion).explains


def new_spec(
    registry: Registry,
    components: Components,
    labels: Sequence[str],
    model_paths: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    dropout: float = 0.1,
    context: Literal["none", "caption"] = "none",
) -> ModelSpec:
    """The spec of a model to train: components checked, parameters validated, sources resolved. Loads nothing."""
    _check_pairing(registry, components)
    checked = {kind: resolved_params(registry, kind, getattr(components, kind), (params or {}).get(kind, {})) for kind in KINDS}
    text_cls, _ = registry.resolve("text", components.text)
    sources = {"text": resolve_source(components.text, text_cls.default_source, model_paths)}
    return ModelSpec(components=components, sources=sources, labels=list(labels), params=checked, context=context, dropout=dropout)


def assemble(
    registry: Registry,
    components: Components,
    labels: Sequence[str],
    model_paths: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    dropout: float = 0.1,
    context: Literal["none", "caption"] = "none",
) -> Assembled:
    """A fresh model from pretrained encoders: :func:`build_model` of :func:`new_spec`."""
    return build_model(new_spec(registry, components, labels, model_paths, params, dropout, context), registry, model_paths)


def resolved_params(registry: Registry, kind: str, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter of component ``name`` (defaults filled in), ``values`` validated."""
    cls, _ = registry.resolve(kind, name)
    return component_params(kind, name, cls, values)


def build_model(
    spec: ModelSpec,
    registry: Registry,
    model_paths: Mapping[str, str] | None = None,
    directory: Path | None = None,
    *,
    weights: bool = True,
) -> Assembled:
    """Compose the model ``spec`` describes: the one path for training and loading.

    Without ``directory`` the text encoder starts from its pretrained weights
    (``spec.sources``) and the spec's sizes are filled in. With the model
    ``directory`` of a saved model, the text encoder is rebuilt from its saved
    architecture, the sizes are checked and the trained weights loaded; with
    ``weights=False`` the trainable part is built on the ``meta`` device and
    no weights are loaded (the tokenizer and component classes of a model that
    runs elsewhere: ``--backend onnx``).
    """
    model_paths = model_paths or {}
    params = _params_of(spec, registry)
    text_source = str(directory / TEXT_DIR) if directory is not None else spec.sources["text"]
    skeleton: AbstractContextManager[Any] = torch.device("meta") if not weights else nullcontext()
    with skeleton:
        text = _make(registry, "text", spec.components.text, params["text"], text_source, pretrained=directory is None)
    text.check_context(spec.context)
    text.context = spec.context
    image = saved_image_encoder(spec, registry, model_paths)
    with skeleton:
        fusion = _make(registry, "fusion", spec.components.fusion, params["fusion"], text.hidden_size, image.dim)
        decoder = _make(registry, "decoder", spec.components.decoder, params["decoder"], spec.labels)
        model = MNERModel(text, fusion, decoder, len(spec.labels), spec.dropout)
    sizes = {"text_hidden_size": text.hidden_size, "image_dim": image.dim, "fusion_dim": fusion.output_dim}
    if directory is None:
        spec = spec.model_copy(update={**sizes, "params": params, "sources": {**spec.sources, "image": getattr(image, "source", "")}})
        return Assembled(model, image, spec)
    _check_sizes(directory, spec, sizes)
    if weights:
        load_weights(model, directory / WEIGHTS_FILE)
    return Assembled(model.eval(), image, spec)


def _params_of(spec: ModelSpec, registry: Registry) -> dict[str, dict[str, Any]]:
    """The spec's parameters per kind. A parameter the saved config does not record takes its
    component's ``legacy_params`` value (how models were trained before the parameter existed),
    not today's default: a config is written with every parameter, so one without, say,
    ``text.normalization`` was saved before BERTweet's pre-training normalisation (format 2
    configs of that time included) and must see its input as it was trained on."""
    return {kind: _kind_params(spec, registry, kind) for kind in KINDS}


def _kind_params(spec: ModelSpec, registry: Registry, kind: str) -> dict[str, Any]:
    """One kind's parameters of :func:`_params_of`."""
    name = getattr(spec.components, kind)
    legacy = getattr(registry.resolve(kind, name)[0], "legacy_params", {})
    return resolved_params(registry, kind, name, {**legacy, **(spec.params.get(kind) or {})})


def saved_image_encoder(spec: ModelSpec, registry: Registry, model_paths: Mapping[str, str]) -> ImageEncoder:
    """The frozen image encoder of a saved model's spec, as :func:`build_model` makes it (its source, its parameters)."""
    name = spec.components.image
    return build_image_encoder(registry, name, model_paths, spec.sources.get("image") or None, _kind_params(spec, registry, "image"))


def _make(registry: Registry, kind: str, name: str, params: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Instantiate a registered component; its ``Params`` (if it declares any) go in as ``params``."""
    cls, _ = registry.resolve(kind, name)
    model = params_model(cls)
    return cls(*args, **kwargs, **({"params": model.model_validate(params)} if model is not None else {}))


def build_image_encoder(
    registry: Registry, name: str, model_paths: Mapping[str, str], source: str | None = None, params: dict[str, Any] | None = None
) -> ImageEncoder:
    """Instantiate a registered image encoder (frozen, eval mode)."""
    cls, variant = registry.resolve("image", name)
    src = resolve_source(name, source or getattr(cls, "default_source", "") or (variant or ""), model_paths)
    encoder: ImageEncoder = _make(
        registry, "image", name, params if params is not None else resolved_params(registry, "image", name, {}), src, variant
    )
    encoder.requires_grad_(False)
    return encoder.eval()


def _check_pairing(registry: Registry, components: Components) -> None:
    fusion_cls, _ = registry.resolve("fusion", components.fusion)
    if fusion_cls.needs_image and components.image == "none":
        raise MscmtError(f"fusion {components.fusion!r} needs an image encoder; pass --image (e.g. clip-vit-l14) or use --fusion none")
    if not fusion_cls.needs_image and components.image != "none":
        raise MscmtError(f"fusion 'none' ignores images, but --image {components.image} was given; use --image none for a text-only model")


def _check_sizes(directory: Path, spec: ModelSpec, sizes: dict[str, int]) -> None:
    """The rebuilt model has the sizes the saved one was trained with."""
    for key, value in sizes.items():
        if getattr(spec, key) != value:
            raise ModelLoadError(
                f"{directory}: {key} is {value} with the components as configured now, "
                f"the model was trained with {getattr(spec, key)} (config.json)"
            )


def save_model(directory: Path, model: MNERModel, spec: ModelSpec) -> None:
    """Write a self-describing model directory atomically (build aside, then swap in)."""
    with atomic_dir(Path(directory), "model directory", old_name=f".{Path(directory).name}.old") as tmp:
        model.text.save_architecture(tmp / TEXT_DIR)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_tensors(tmp / WEIGHTS_FILE, state, metadata={"format": "mscmt-model"})
        plain = {"context"} if spec.context == "none" else None  # a model without context: config.json as before
        write_text_atomic(tmp / CONFIG_FILE, spec.model_dump_json(indent=2, exclude=plain) + "\n")


def load_model(directory: Path, registry: Registry, model_paths: Mapping[str, str] | None = None) -> Assembled:
    """Reload a saved model directory in one call (JSON + safetensors only)."""
    return build_model(read_spec(Path(directory)), registry, model_paths, directory=Path(directory))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into ``model``, naming the file on any mismatch."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file missing")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: unreadable weights ({err})") from None
    detail = weights_mismatch(model, state)
    if detail:
        raise ModelLoadError(f"{path}: weights do not match the model in config.json ({detail})")
    model.load_state_dict(state)


def weights_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    """The missing, unexpected and wrong-shape keys of ``state`` for ``model`` (first 3 of each); "" when it fits."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    return "; ".join(
        f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    )
