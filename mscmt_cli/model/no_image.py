"""The image side of a text-only model, without torch.

A model whose image encoder reads nothing (``input_kind == "none"``) gives every tweet one
empty image token ``(1, 0)``. :class:`NoImage` is what the processor and the tagger read of
such an encoder, for a tagger that runs an exported ONNX graph and never loads torch
(:mod:`mscmt_cli.export.served`); the torch model's own encoder (``--image none``) says the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NoImage:
    """No image: ``dim == 0``, one token per tweet, no grid; its tokens are never encoded (the store makes them)."""

    name: str = "none"
    input_kind: str = "none"
    dim: int = 0
    max_tokens: int = 1
    grid: tuple[int, int] | None = None
    grid_offset: int = 0
    token_dtype: str = "float32"

    def identity(self) -> str:
        return self.name

    def token_texts(self, item: Any) -> list[str] | None:
        return None
