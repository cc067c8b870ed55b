"""What the :class:`~mscmt_cli.tagging.tagger.Tagger` needs of an exported model, read without torch.

The graph (``model.onnx``) computes the emissions; around it the tagger needs the model's tokenizer side
(words to sub-word windows), its spec (labels, components, context), what its fusion explains, and its
image side. :func:`served_model` reads them from an export (``config.json``'s ``tagging``, ``model/``):
the tokenizer is the class its saved ``tokenizer_config.json`` names, the word normaliser the function
the export names. A text-only model's image side is :class:`~mscmt_cli.model.no_image.NoImage`, so
tagging it imports no torch; a model with a frozen image encoder loads that encoder (torch) as the torch
backend does, since the graph takes its features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.export.layout import CONFIG_FILE, MODEL_DIR, read_export_config
from mscmt_cli.features import ImageSide
from mscmt_cli.model.no_image import NoImage
from mscmt_cli.model.spec import TEXT_DIR, ModelSpec, read_spec
from mscmt_cli.model.word_tokens import WordTokens, named_normaliser, saved_tokenizer


@dataclass(frozen=True)
class ServedModel:
    """An exported model's side of tagging: ``spec`` (its ``model/config.json``), ``words`` (the tokenizer
    side), ``image`` (the frozen image encoder, or :class:`NoImage`) and ``explains`` (what the fusion shows)."""

    spec: ModelSpec
    words: WordTokens
    image: ImageSide
    explains: frozenset[str]


def served_model(export: Path, registry: Any, model_paths: Mapping[str, str]) -> ServedModel:
    """The :class:`ServedModel` of an exported directory; ``ModelLoadError`` (one line) for an export made
    before its tagging inputs were recorded (format 1), which must be made again."""
    export = Path(export)
    config = read_export_config(export)
    if config.tagging is None:
        raise ModelLoadError(
            f"{export / CONFIG_FILE}: an export of format {config.format_version}, made before exports recorded how tweets "
            f"become the graph's inputs; export the run again: mscmt export {config.source_model} --out DIR"
        )
    inputs, directory = config.tagging, export / MODEL_DIR
    spec = read_spec(directory)
    words = WordTokens(
        saved_tokenizer(directory / TEXT_DIR),
        inputs.max_subwords,
        spec.components.text,
        named_normaliser(inputs.normaliser, export / CONFIG_FILE) or str,
        context=spec.context,
        token_types=inputs.token_types,
    )
    return ServedModel(spec, words, _image_side(spec, inputs.image_input, registry, model_paths), frozenset(inputs.explains))


def _image_side(spec: ModelSpec, input_kind: str, registry: Any, model_paths: Mapping[str, str]) -> ImageSide:
    """:class:`NoImage` for a text-only model, else its frozen image encoder (loaded with torch)."""
    if input_kind == "none":
        return NoImage(name=spec.components.image)
    from mscmt_cli.model.build import saved_image_encoder

    return saved_image_encoder(spec, registry, model_paths)
