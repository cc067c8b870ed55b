"""A caption image encoder run from its exported graph (``image.onnx``), without torch.

:class:`OnnxImageEncoder` is the :class:`~mscmt_cli.model.image_side.ImageSide` the tagger's feature
store reads under ``--backend onnx`` for a model whose image is its caption: captions are tokenized
as the torch encoder does (:class:`~mscmt_cli.model.caption_inputs.CaptionInputs`, from the recorded
:class:`~mscmt_cli.export.layout.ImageGraph`) and ONNX Runtime computes their tokens. Its identity is
the torch encoder's plus the graph's digest, so its features are cached apart from the torch encoder's
(they differ in the last float32 bits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mscmt_cli.export.layout import IMAGE_DIR, IMAGE_ONNX_FILE, MODEL_DIR, ImageGraph
from mscmt_cli.export.runtime import open_session
from mscmt_cli.model.caption_inputs import GRAPH_INPUTS, CaptionInputs
from mscmt_cli.model.image_side import TokenArrays, join_token_arrays
from mscmt_cli.model.word_tokens import saved_tokenizer

#: The image graph's outputs: tokens ``(n, N, D)`` float32 and their mask ``(n, N)`` bool.
GRAPH_OUTPUTS = ("features", "mask")


class OnnxImageEncoder:
    """The caption encoder of an export (``export``'s ``image.onnx``), described by ``graph``."""

    input_kind = "caption"

    def __init__(self, export: Path, graph: ImageGraph, threads: int | None = None) -> None:
        self.graph = graph
        self.name = graph.name
        self.dim = graph.dim
        self.max_tokens = graph.max_tokens
        self.token_dtype = graph.token_dtype
        self.grid = graph.grid
        self.grid_offset = graph.grid_offset
        tokenizer = saved_tokenizer(Path(export) / MODEL_DIR / IMAGE_DIR)
        self.inputs = CaptionInputs(tokenizer, graph.max_length, graph.padding_side, graph.batch_size, graph.component)
        self.session = open_session(Path(export) / IMAGE_ONNX_FILE, threads)

    def identity(self) -> str:
        """The torch encoder's identity and the graph's digest: ``<identity>|onnx:<sha256[:12]>``."""
        return f"{self.graph.identity}|onnx:{self.graph.sha256[:12]}"

    def encode(self, inputs: list[Any]) -> TokenArrays:
        """Tokens of ``n`` caption strings: ``(n, N, D)`` float32 and the ``(n, N)`` mask, as the torch encoder's ``encode``."""
        parts = []
        for ids, mask in self.inputs.batches(inputs):
            features, real = self.session.run(list(GRAPH_OUTPUTS), dict(zip(GRAPH_INPUTS, (ids, mask))))
            parts.append(TokenArrays(features, real))
        return join_token_arrays(parts, self.dim)

    def token_texts(self, item: Any) -> list[str] | None:
        """A caption's sub-words for a token encoder (``max_tokens > 1``), else None (one pooled token)."""
        return self.inputs.token_texts(item) if self.max_tokens > 1 else None
