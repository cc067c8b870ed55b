"""What the :class:`~mscmt_cli.tagging.tagger.Tagger` needs of an exported model, read without torch.

The graph (``model.onnx``) computes the emissions; around it the tagger needs the model's tokenizer side
(words to sub-word windows), its spec (labels, components, context), what its fusion explains, and its
image side. :func:`served_model` reads them from an export (``config.json``'s ``tagging``, ``model/``):
the tokenizer is the class its saved ``tokenizer_config.json`` names, the word normaliser the function
the export names. A text-only model's image side is :class:`~mscmt_cli.model.no_image.NoImage` and an
exported image encoder's its graph (:class:`~mscmt_cli.export.image_graph.OnnxImageEncoder`: captions,
or pixels whose preprocessing has a numpy twin), so tagging imports no torch; an image encoder the
export kept on torch (``tagging.image_on_torch`` says why), or one of an export of format 2 or 3, is
loaded with torch as the torch backend does, since the graph takes its features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mscmt_cli.errors import ModelLoadError
from mscmt_cli.export.image_graph import OnnxImageEncoder
from mscmt_cli.export.layout import CONFIG_FILE, MODEL_DIR, TaggingInputs, image_source_conflict, read_export_config
from mscmt_cli.model.image_side import ImageSide
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


def served_model(export: Path, registry: Any, model_paths: Mapping[str, str], threads: int | None = None) -> ServedModel:
    """The :class:`ServedModel` of an exported directory (``threads``: ONNX Runtime's, for ``image.onnx``);
    ``ModelLoadError`` (one line) for an export made before its tagging inputs were recorded (format 1),
    which must be made again, or whose ``image.onnx`` is not the encoder ``--model-path`` names."""
    export = Path(export)
    config = read_export_config(export)
    if config.tagging is None:
        raise ModelLoadError(
            f"{export / CONFIG_FILE}: an export of format {config.format_version}, made before exports recorded how tweets "
            f"become the graph's inputs; export the run again: mscmt export {config.source_model} --out DIR"
        )
    conflict = image_source_conflict(config, model_paths)
    if conflict is not None:
        raise ModelLoadError(
            f"{conflict}; drop --model-path, or export the run again with it: mscmt export {config.source_model} --out DIR --model-path ..."
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
    image = _image_side(export, spec, inputs, registry, model_paths, threads)
    return ServedModel(spec, words, image, frozenset(inputs.explains))


def _image_side(
    export: Path, spec: ModelSpec, inputs: TaggingInputs, registry: Any, model_paths: Mapping[str, str], threads: int | None
) -> ImageSide:
    """:class:`NoImage` for a text-only model, the exported image encoder, else the frozen image encoder (torch)."""
    if inputs.image_input == "none":
        return NoImage(name=spec.components.image)
    if inputs.image is not None:
        return OnnxImageEncoder(export, inputs.image, threads)
    from mscmt_cli.model.build import saved_image_encoder

    return saved_image_encoder(spec, registry, model_paths)
