"""What an exported model directory holds, and the graph's inputs.

An exported directory (``mscmt export RUN --out DIR``, or ``RUN/onnx/`` made on
the fly by ``--backend onnx``)::

    config.json      how it was made: mscmt version, source model and its weights'
                     SHA-256, opset, quantization, the graph's inputs and outputs
    model.onnx       text encoder + fusion + emission head (dynamic batch and lengths)
    decoding.json    labels, decoder kind, BIO table, CRF scores (mscmt_cli.backends.decoding)
    image.onnx       the frozen image encoder: caption sub-word ids (``caption``,
                     ``caption-tokens``) or ``pixel_values`` (CLIP, BLIP-2, timm) to
                     image tokens (never quantized)
    image.onnx.data  its weights, for an image encoder over 2 GiB
    model/           the source model's config.json and text_encoder/ (tokenizer and
                     architecture, no weights): how tweets become sub-word ids, and
                     which frozen image encoder gives the image features; for a
                     caption encoder's image.onnx, image_encoder/ (its tokenizer)

The image features come from the feature store (and its cache), as with the torch
backend, computed by ``image.onnx`` (:class:`ImageGraph` says how captions or images
become its inputs), so tagging never imports torch; an encoder the export could not
write (``tagging.image_on_torch`` says why) is loaded with torch.

The graph's inputs are the padded arrays of :class:`~mscmt_cli.backends.arrays.ArrayBatch`
(shapes in :mod:`mscmt_cli.model.components`), in the order of :func:`graph_feeds`,
the one place that names them: ``input_ids``, ``attention_mask``, ``word_index``,
``word_mask``; then ``token_type_ids`` ``(W, L)`` for a model whose text encoder
reads the caption beside the tweet in a pair format with segment ids
(``TextEncoder.takes_token_types``: BERT, MiniLM; not RoBERTa, BERTweet, nor
any model without a caption); then the image inputs of :func:`image_feeds`, the one place
that says how a batch's image features enter the graph. Inside the graph,
:func:`unpack_extras` reads the inputs after ``word_mask`` back in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError, model_validator

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.pixel_inputs import PixelRecipe

if TYPE_CHECKING:
    import torch

    from mscmt_cli.backends.arrays import ArrayBatch

Array = npt.NDArray[Any]

EXPORT_FORMAT: Literal["mscmt-onnx"] = "mscmt-onnx"
#: 2: the tagging inputs (config.json's "tagging"), read without torch; 3: a caption encoder's image.onnx; 4: a pixel encoder's.
EXPORT_FORMAT_VERSION = 4
CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
MODEL_DIR = "model"
#: An image encoder's graph, and (for a caption encoder) its tokenizer's folder under ``model/``.
IMAGE_ONNX_FILE = "image.onnx"
#: The weights of an ``image.onnx`` over 2 GiB, beside it (ONNX's external data, one file).
IMAGE_DATA_FILE = "image.onnx.data"
IMAGE_DIR = "image_encoder"
#: Where ``--backend onnx`` exports a run that has no export yet: ``RUN/onnx/``.
RUN_EXPORT_DIR = "onnx"
QUANTIZATIONS = ("none", "int8")

#: The text inputs and their dynamic axes: ``W`` windows of ``L`` sub-words, ``B`` tweets of ``T`` words.
TEXT_AXES: dict[str, dict[int, str]] = {
    "input_ids": {0: "windows", 1: "subwords"},
    "attention_mask": {0: "windows", 1: "subwords"},
    "word_index": {0: "batch", 1: "words"},
    "word_mask": {0: "batch", 1: "words"},
    "token_type_ids": {0: "windows", 1: "subwords"},  # only where TextEncoder.takes_token_types
}
#: The image inputs and their dynamic axes (see :func:`image_feeds`).
IMAGE_AXES: dict[str, dict[int, str]] = {"image": {0: "batch", 1: "tokens"}, "image_mask": {0: "batch", 1: "tokens"}}
OUTPUT_AXES: dict[str, dict[int, str]] = {
    "emissions": {0: "batch", 1: "words"},
    "gate": {0: "batch", 1: "words"},
    "attention": {0: "batch", 1: "words", 2: "tokens"},
}


def image_feeds(image: Array, image_mask: Array) -> dict[str, Array]:
    """The graph's image inputs for a batch's image tokens ``image`` ``(B, N, D)`` and ``image_mask`` ``(B, N)``.

    ``{"image": (B, N, D), "image_mask": (B, N)}``, or nothing for a text-only
    model (``D == 0``): the one function that changes when the image features change shape.
    """
    return {"image": image, "image_mask": image_mask} if image.shape[-1] else {}


def graph_feeds(batch: ArrayBatch, token_types: bool) -> dict[str, Array]:
    """The graph's named inputs of a collated batch as numpy arrays, in the order of the exported function's arguments.

    ``token_types``: whether the graph takes ``token_type_ids`` (``TextEncoder.takes_token_types``); a batch
    without segment ids (``ArrayBatch.token_type_ids`` None) feeds zeros ``(W, L)``, the model's default.
    """
    inputs: dict[str, Array] = {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "word_index": batch.word_index,
        "word_mask": batch.word_mask,
    }
    if token_types:
        inputs["token_type_ids"] = batch.token_type_ids if batch.token_type_ids is not None else np.zeros_like(batch.input_ids)
    return inputs | image_feeds(batch.image, batch.image_mask)


def graph_inputs(batch: ArrayBatch, token_types: bool) -> dict[str, torch.Tensor]:
    """:func:`graph_feeds` as torch tensors: what the graph is traced on, and what torch checks it against."""
    import torch

    return {k: torch.from_numpy(v) for k, v in graph_feeds(batch, token_types).items()}


def unpack_extras(
    extras: tuple[torch.Tensor, ...], token_types: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Inside the graph: the inputs after ``word_mask`` (:func:`graph_inputs`) as ``(token_type_ids, image,
    image_mask)``: the segment ids ``(W, L)`` (None where the graph takes none), the image tokens and mask the
    fusion gets from :func:`image_feeds` (None, None for text-only)."""
    types, image = (extras[0], extras[1:]) if token_types else (None, extras)
    return (types, image[0], image[1]) if image else (types, None, None)


class ImageGraph(BaseModel, extra="forbid"):
    """An image encoder exported as ``image.onnx`` (``config.json``'s ``tagging.image``).

    ``name``/``component``: the encoder's registered name and its component (``caption:bert-base``);
    ``input_kind``: what it reads; ``dim``, ``max_tokens``, ``token_dtype``, ``grid``, ``grid_offset``: its
    tokens as the torch encoder gives them; ``identity``: the torch encoder's; ``source``: where its
    weights came from, ``model_path`` the ``--model-path <component>=DIR`` the export was made with
    (resolved; None: none). A caption encoder's captions are tokenized by the tokenizer in
    ``model/image_encoder/`` to ``max_length`` sub-words, padded on ``padding_side``; a pixel encoder's
    images become ``pixel_values`` by ``pixels`` (checked equal to its own preprocessing's, bit for bit);
    ``batch_size`` inputs at a time. ``sha256`` is the graph file's and ``data_sha256`` that of its weights
    file (:data:`IMAGE_DATA_FILE`, for an encoder over 2 GiB; None: the weights are in the graph file);
    ``checked_max_abs_diff`` the largest difference to the torch encoder's tokens seen when it was exported.
    """

    name: str
    component: str
    input_kind: Literal["caption", "pixels"]
    dim: int
    max_tokens: int
    token_dtype: str
    grid: tuple[int, int] | None = None
    grid_offset: int = 0
    identity: str
    source: str
    model_path: str | None = None
    max_length: int | None = None
    padding_side: Literal["left", "right"] | None = None
    pixels: PixelRecipe | None = None
    batch_size: int
    sha256: str
    data_sha256: str | None = None
    checked_max_abs_diff: float

    @model_validator(mode="after")
    def _inputs_of_its_kind(self) -> ImageGraph:
        """A caption graph records its tokenizer side, a pixel graph its recipe."""
        if self.input_kind == "caption" and (self.max_length is None or self.padding_side is None):
            raise ValueError("a caption image encoder records max_length and padding_side")
        if self.input_kind == "pixels" and self.pixels is None:
            raise ValueError("a pixel image encoder records its pixels recipe")
        return self


class TaggingInputs(BaseModel, extra="forbid"):
    """How a tagger makes the graph's inputs without the torch model (``config.json``'s ``tagging``).

    With the tokenizer saved in ``model/text_encoder/`` and the model's ``config.json`` in ``model/``, these
    give :class:`~mscmt_cli.model.word_tokens.WordTokens` exactly as the trained text encoder has it:
    ``max_subwords`` (the window, special tokens included), ``normaliser`` (``"module:function"`` showing
    each word to the tokenizer, None: as it is), ``token_types`` (whether caption windows carry segment
    ids); ``image_input`` is the frozen image encoder's ``input_kind`` (``"none"``: the tagger needs no
    image encoder), ``explains`` what the fusion shows (``"gate"``, ``"attention"``) and ``image`` the
    exported image encoder (:class:`ImageGraph`), if any; else ``image_on_torch`` says why the image
    encoder is loaded with torch when tagging from the export (None: it is exported, or there is none).
    """

    max_subwords: int
    normaliser: str | None
    token_types: bool
    image_input: Literal["none", "pixels", "caption"]
    explains: list[str]
    image: ImageGraph | None = None  # the image encoder's image.onnx (captions: format 3, pixels: 4); None: torch loads it
    image_on_torch: str | None = None


class ExportConfig(BaseModel, extra="forbid"):
    """The content of an exported directory's ``config.json``."""

    format: Literal["mscmt-onnx"] = EXPORT_FORMAT
    format_version: int = EXPORT_FORMAT_VERSION
    mscmt_version: str
    created: str
    source_model: str
    source_weights_sha256: str
    source_sha256: str | None = None  # model_digest of the source (config, weights, tokenizer); absent in older exports, which are stale
    components: dict[str, str]
    opset: int
    quantization: Literal["none", "int8"]
    exporter: str
    torch_version: str
    onnx_version: str
    onnxruntime_version: str
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]
    gate: str | None = None
    checked_max_abs_diff: float | None = None
    tagging: TaggingInputs | None = None  # absent in exports of format 1, which must be made again


def resolved_path(path: str | None) -> str | None:
    """A ``--model-path`` directory as recorded and compared: user-expanded and absolute (None stays None)."""
    return None if path is None else str(Path(path).expanduser().resolve())


def made_with(graph: ImageGraph, model_path: str | None) -> bool:
    """Whether ``image.onnx`` is the encoder ``--model-path <component>=model_path`` gives (None: no such
    option): the one it was exported with, or the directory its weights came from."""
    wanted = resolved_path(model_path)
    return wanted == graph.model_path or (wanted is not None and wanted == resolved_path(graph.source or None))


def image_source_conflict(config: ExportConfig, model_paths: Mapping[str, str]) -> str | None:
    """Why an export's ``image.onnx`` is not the image encoder ``model_paths`` asks for (``--model-path
    <component>=DIR`` other than the one it was made from), or None when it is (or names none, or it has none)."""
    graph = config.tagging.image if config.tagging is not None else None
    if graph is None or graph.component not in model_paths or made_with(graph, model_paths[graph.component]):
        return None
    made = f"with --model-path {graph.component}={graph.model_path}" if graph.model_path else f"from {graph.source or 'its default'}"
    return f"--model-path {graph.component}={model_paths[graph.component]}: this export's image encoder (image.onnx) was made {made}"


def is_export_dir(path: Path) -> bool:
    """Whether ``path`` holds an exported model (its ``config.json`` says ``"format": "mscmt-onnx"``)."""
    config = Path(path) / CONFIG_FILE
    try:
        return config.is_file() and f'"format": "{EXPORT_FORMAT}"' in config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def refuse_export_dir(path: Path) -> None:
    """Refuse an exported directory where a trained run is expected (``mscmt export``, ``evaluate``, ``tag --backend torch``)."""
    if is_export_dir(path):
        raise MscmtError(
            f"{path}: an ONNX export (mscmt export), not a trained run; run it with --backend onnx, or pass the run it was exported from"
        )


def read_export_config(directory: Path) -> ExportConfig:
    """Parse and validate an exported directory's ``config.json``."""
    path = Path(directory) / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelLoadError(f"{directory}: not an exported model (no {CONFIG_FILE}; make one with mscmt export RUN --out DIR)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path}: unreadable ({err})") from None
    try:
        config = ExportConfig.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        raise ModelLoadError(f"{path}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if config.format_version > EXPORT_FORMAT_VERSION:
        raise ModelLoadError(
            f"{path}: export format {config.format_version} is newer than this mscmt reads ({EXPORT_FORMAT_VERSION}); upgrade mscmt"
        )
    return config
