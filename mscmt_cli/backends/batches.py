"""From encoded tweets to one model batch: what every backend runs (training, evaluation, tagging, export).

An :class:`Example` is one tweet's sub-word windows, its label ids (none when
tagging) and its image's tokens; :func:`collate` pads examples into an
:class:`~mscmt_cli.model.mner.MNERBatch`; :func:`eval_batches` orders tweets
by length into the batches of evaluation and tagging (the caller restores the
input order). Training's own batch order is in :mod:`mscmt_cli.engine.batching`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mscmt_cli.features import TokenRef, read_tokens
from mscmt_cli.model.components import EncodedTweet, ImageTokens, TextBatch, TextEncoder
from mscmt_cli.model.mner import MNERBatch


@dataclass
class Example:
    """One encoded tweet with its label ids (empty when unlabelled) and its image's tokens.

    ``image`` is the image's real tokens ``(N_i, D)`` (a ``(D,)`` vector is one
    token), or the cached ``.npy`` file holding them, read when the batch is
    collated (so a dataset of token encoders holds paths, not hundreds of
    tokens per tweet).
    """

    encoded: EncodedTweet
    tag_ids: list[int]
    image: TokenRef

    @property
    def length(self) -> int:
        return len(self.encoded.word_positions)


def encode_examples(
    encoder: TextEncoder,
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


def image_rows(ref: TokenRef) -> torch.Tensor:
    """One image's real tokens ``(N_i, D)`` float32 (a ``(D,)`` vector is one token; a path is read)."""
    tokens = read_tokens(ref) if isinstance(ref, Path) else ref
    return (tokens.unsqueeze(0) if tokens.dim() == 1 else tokens).float()


def pad_images(refs: Sequence[TokenRef]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of a batch -> tokens ``(B, N, D)`` float32 zero-padded to the most tokens, mask ``(B, N)`` bool."""
    rows = [image_rows(r) for r in refs]
    if len({r.size(1) for r in rows}) > 1:
        raise ValueError(f"image tokens of one batch differ in size: {sorted({r.size(1) for r in rows})}")
    n = max(r.size(0) for r in rows)
    if all(r.size(0) == n for r in rows):
        return torch.stack(rows), torch.ones(len(rows), n, dtype=torch.bool)
    image = torch.zeros(len(rows), n, rows[0].size(1))
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    for b, r in enumerate(rows):
        image[b, : r.size(0)] = r
        mask[b, : r.size(0)] = True
    return image, mask


def collate(examples: Sequence[Example], pad_id: int) -> MNERBatch:
    """Pad a list of examples into one :class:`MNERBatch`."""
    windows = [w for e in examples for w in e.encoded.windows]
    width = max(len(w) for w in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(windows), width), dtype=torch.long)
    for k, w in enumerate(windows):
        input_ids[k, : len(w)] = torch.tensor(w)
        attention[k, : len(w)] = 1
    token_types = _token_types(examples, len(windows), width)
    n_words = max(e.length for e in examples)
    word_index = torch.zeros((len(examples), n_words), dtype=torch.long)
    word_mask = torch.zeros((len(examples), n_words), dtype=torch.bool)
    tags = torch.zeros((len(examples), n_words), dtype=torch.long)
    first_window = 0
    for b, e in enumerate(examples):
        flat = [(first_window + k) * width + p for k, p in e.encoded.word_positions]
        word_index[b, : len(flat)] = torch.tensor(flat)
        word_mask[b, : len(flat)] = True
        if e.tag_ids:
            tags[b, : len(e.tag_ids)] = torch.tensor(e.tag_ids)
        first_window += len(e.encoded.windows)
    labelled = all(e.tag_ids for e in examples)
    image, image_mask = pad_images([e.image for e in examples])
    text = TextBatch(input_ids, attention, word_index, word_mask, token_types)
    return MNERBatch(text, image, image_mask, tags if labelled else None)


def _token_types(examples: Sequence[Example], n_windows: int, width: int) -> torch.Tensor | None:
    """``(W, L)`` segment ids of the batch's windows (0 on padding), or None when no example has any."""
    if all(e.encoded.token_types is None for e in examples):
        return None
    types = torch.zeros((n_windows, width), dtype=torch.long)
    k = 0
    for e in examples:
        for w, row in enumerate(e.encoded.token_types or [[] for _ in e.encoded.windows]):
            types[k + w, : len(row)] = torch.tensor(row, dtype=torch.long)
        k += len(e.encoded.windows)
    return types


class Collator:
    """A picklable ``collate_fn`` for DataLoader workers."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[Example]) -> MNERBatch:
        return collate(examples, self.pad_id)


def eval_batches(lengths: Sequence[int], batch_size: int, max_subwords: int | None = None) -> list[list[int]]:
    """All indices sorted by length, cut into batches of at most ``batch_size`` tweets and, with
    ``max_subwords``, about that many padded sub-words (a longer tweet gets a batch of its own).
    The caller restores the input order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    budget = math.inf if max_subwords is None else max_subwords
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
