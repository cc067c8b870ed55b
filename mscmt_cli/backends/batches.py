"""From tweets to torch batches: tokenized examples, and :func:`collate` into an :class:`~mscmt_cli.model.mner.MNERBatch`.

:func:`encode_examples` tokenizes tweets into :class:`~mscmt_cli.backends.arrays.Example` s;
:func:`collate` is :func:`~mscmt_cli.backends.arrays.collate_arrays` (the one padding of a batch, in
numpy) as torch tensors, for training, evaluation and export. Training's own batch order is in
:mod:`mscmt_cli.engine.batching`; evaluation's and tagging's is :func:`~mscmt_cli.backends.arrays.eval_batches`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mscmt_cli.backends.arrays import Example, collate_arrays
from mscmt_cli.backends.base import Words
from mscmt_cli.features import TokenRef
from mscmt_cli.model.components import ImageTokens
from mscmt_cli.model.mner import MNERBatch


def encode_examples(
    encoder: Words,
    words: Sequence[Sequence[str]],
    tag_ids: Sequence[Sequence[int]] | None,
    images: Sequence[TokenRef] | torch.Tensor | ImageTokens,
    contexts: Sequence[str] | None = None,
) -> list[Example]:
    """Tokenize tweets into examples; ``images`` has one entry per tweet: its tokens (or their
    file), a ``(n, D)`` tensor of one vector per tweet, or an encoder's :class:`ImageTokens`;
    ``contexts``: each tweet's caption, for a caption-context encoder."""
    refs = images.per_image() if isinstance(images, ImageTokens) else images
    tags = tag_ids if tag_ids is not None else [[] for _ in words]
    if contexts is None:
        return [Example(encoder.encode_words(w), list(t), refs[i]) for i, (w, t) in enumerate(zip(words, tags))]
    return [Example(encoder.encode_words(w, c), list(t), refs[i]) for i, (w, t, c) in enumerate(zip(words, tags, contexts, strict=True))]


def collate(examples: Sequence[Example], pad_id: int) -> MNERBatch:
    """Pad a list of examples into one torch :class:`MNERBatch` (:func:`collate_arrays`, as tensors)."""
    return collate_arrays(examples, pad_id).to_torch()


class Collator:
    """A picklable ``collate_fn`` for DataLoader workers."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[Example]) -> MNERBatch:
        return collate(examples, self.pad_id)
