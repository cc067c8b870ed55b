"""An image encoder run from its exported graph (``image.onnx``), without torch.

:class:`OnnxImageEncoder` is the :class:`~mscmt_cli.model.image_side.ImageSide` the tagger's feature
store reads under ``--backend onnx`` for a model whose image encoder was exported: captions are
tokenized as the torch encoder does (:class:`~mscmt_cli.model.caption_inputs.CaptionInputs`), images
become the torch encoder's pixels (:class:`~mscmt_cli.model.pixel_inputs.PixelRecipe`), both from the
recorded :class:`~mscmt_cli.export.layout.ImageGraph`, and ONNX Runtime computes their tokens. Its
identity is the torch encoder's plus the graph's digest, so its features are cached apart from the
torch encoder's (they differ in the last float32 bits).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mscmt_cli.export.layout import IMAGE_DIR, IMAGE_ONNX_FILE, MODEL_DIR, ImageGraph
from mscmt_cli.export.runtime import open_session
from mscmt_cli.model.caption_inputs import GRAPH_INPUTS, CaptionInputs
from mscmt_cli.model.image_side import TokenArrays, join_token_arrays
from mscmt_cli.model.word_tokens import saved_tokenizer

#: The image graph's outputs: tokens ``(n, N, D)`` float32 and their mask ``(n, N)`` bool.
GRAPH_OUTPUTS = ("features", "mask")
#: A pixel graph's input: ``pixel_values`` ``(n, 3, H, W)`` float32.
PIXEL_INPUTS = ("pixel_values",)


class OnnxImageEncoder:
    """The image encoder of an export (``export``'s ``image.onnx``), described by ``graph``."""

    def __init__(self, export: Path, graph: ImageGraph, threads: int | None = None) -> None:
        self.graph = graph
        self.name = graph.name
        self.input_kind = graph.input_kind
        self.dim = graph.dim
        self.max_tokens = graph.max_tokens
        self.token_dtype = graph.token_dtype
        self.grid = graph.grid
        self.grid_offset = graph.grid_offset
        self.captions: CaptionInputs | None = None
        if graph.max_length is not None and graph.padding_side is not None:  # a caption encoder (ImageGraph checks)
            tokenizer = saved_tokenizer(Path(export) / MODEL_DIR / IMAGE_DIR)
            self.captions = CaptionInputs(tokenizer, graph.max_length, graph.padding_side, graph.batch_size, graph.component)
        self.session = open_session(Path(export) / IMAGE_ONNX_FILE, threads)

    def identity(self) -> str:
        """The torch encoder's identity and the graph's digest: ``<identity>|onnx:<sha256[:12]>`` (``+<data_sha256[:12]>``
        for weights beside the graph)."""
        data = f"+{self.graph.data_sha256[:12]}" if self.graph.data_sha256 else ""
        return f"{self.graph.identity}|onnx:{self.graph.sha256[:12]}{data}"

    def encode(self, inputs: list[Any]) -> TokenArrays:
        """Tokens of ``n`` captions or PIL images: ``(n, N, D)`` float32 and the ``(n, N)`` mask, as the torch
        encoder's ``encode``."""
        parts = []
        for feeds in self._feeds(inputs):
            features, real = self.session.run(list(GRAPH_OUTPUTS), feeds)
            parts.append(TokenArrays(features, real))
        return join_token_arrays(parts, self.dim)

    def _feeds(self, inputs: list[Any]) -> Iterator[dict[str, np.ndarray]]:
        """The graph's inputs, batch by batch."""
        if self.captions is not None:
            for batch in self.captions.batches(inputs):
                yield dict(zip(GRAPH_INPUTS, batch))
        elif self.graph.pixels is not None:  # a pixel encoder (ImageGraph checks it has one or the other)
            for pixels in self.graph.pixels.batches(inputs):
                yield {PIXEL_INPUTS[0]: pixels}

    def token_texts(self, item: Any) -> list[str] | None:
        """A caption's sub-words for a caption token encoder (``max_tokens > 1``), else None."""
        return self.captions.token_texts(item) if self.captions is not None and self.max_tokens > 1 else None
