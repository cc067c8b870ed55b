"""How a caption encoder turns caption strings into its model's inputs, without torch.

The torch caption encoders (:mod:`plugins.caption`) and their exported graph
(:class:`~mscmt_cli.export.image_graph.OnnxImageEncoder`) tokenize captions here, so both feed
their graph the same ``input_ids`` and ``attention_mask`` ``(n, L)`` int64, batch by batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mscmt_cli.errors import MscmtError

#: The caption graph's inputs, in the order of its ``forward``.
GRAPH_INPUTS = ("input_ids", "attention_mask")

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CaptionInputs:
    """A caption encoder's tokenizer side: ``tokenizer`` (Hugging Face), captions truncated to
    ``max_length`` sub-words (special tokens included), padded on ``padding_side``, at most
    ``batch_size`` per batch; ``name`` is the component named in errors."""

    tokenizer: Any
    max_length: int
    padding_side: str
    batch_size: int
    name: str

    def batches(self, captions: Sequence[Any]) -> Iterator[tuple[Ints, Ints]]:
        """``(input_ids, attention_mask)``, each ``(n, L)`` int64, per batch of at most ``batch_size`` captions."""
        bad = next((x for x in captions if not isinstance(x, str)), None)
        if bad is not None:
            raise MscmtError(f"{self.name} encodes caption strings, got {type(bad).__name__}")
        for start in range(0, len(captions), self.batch_size):
            batch = self.tokenizer(
                list(captions[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                padding_side=self.padding_side,
                return_tensors="np",
            )
            yield batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)

    def token_texts(self, caption: Any) -> list[str]:
        """The sub-words of one caption, as the tokenizer spells them (special tokens included)."""
        ids = self.tokenizer(str(caption), truncation=True, max_length=self.max_length)["input_ids"]
        return [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)]
