"""A batch as numpy arrays: what the Tagger hands its backend, and the one collate of every batch.

An :class:`Example` is one tweet's sub-word windows, its label ids (none when
tagging) and its image's tokens; :func:`collate_arrays` pads examples into an
:class:`ArrayBatch` (numpy, no torch); :meth:`ArrayBatch.to_torch` gives the
:class:`~mscmt_cli.model.mner.MNERBatch` torch runs (training, evaluation and
tagging with ``--backend torch``, export), and
:func:`~mscmt_cli.export.layout.graph_feeds` the named inputs of an exported
graph (``--backend onnx``). :func:`eval_batches`
orders tweets by length into the batches of evaluation and tagging (the caller
restores the input order).

This module imports no torch: an image's tokens given as a tensor are read
through the array protocol, and ``to_torch`` imports torch when it is called.

Shapes: ``W`` sub-word windows of ``L`` sub-words, ``B`` tweets of at most ``T``
words, ``N`` image tokens of size ``D``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from mscmt_cli.features import TokenRef
    from mscmt_cli.model.encoded import EncodedTweet
    from mscmt_cli.model.mner import MNERBatch

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float32]


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


@dataclass
class ArrayBatch:
    """One padded batch of tweets as numpy arrays (the fields of :class:`~mscmt_cli.model.mner.MNERBatch`).

    Attributes:
        input_ids: ``(W, L)`` int64 sub-word ids, padded with the encoder's pad id.
        attention_mask: ``(W, L)`` int64, 1 on real sub-words.
        word_index: ``(B, T)`` int64 index into the flattened ``(W * L)`` sub-words (0 on padding words).
        word_mask: ``(B, T)`` bool, True on real words.
        token_type_ids: ``(W, L)`` int64 segment ids (0 on padding), or None when no window has any.
        image: ``(B, N, D)`` float32 image tokens, zeros past an image's real tokens (``D`` may be 0).
        image_mask: ``(B, N)`` bool, True on real image tokens (real first, then padding).
        tags: ``(B, T)`` int64 gold label ids (0 on padding), or None.
    """

    input_ids: Ints
    attention_mask: Ints
    word_index: Ints
    word_mask: Bools
    token_type_ids: Ints | None
    image: Floats
    image_mask: Bools
    tags: Ints | None = None

    def to_torch(self) -> MNERBatch:
        """The same batch as torch tensors (sharing the arrays' memory)."""
        import torch

        from mscmt_cli.model.components import TextBatch
        from mscmt_cli.model.mner import MNERBatch

        def tensor(a: npt.NDArray[Any] | None) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(a)

        text = TextBatch(
            torch.from_numpy(self.input_ids),
            torch.from_numpy(self.attention_mask),
            torch.from_numpy(self.word_index),
            torch.from_numpy(self.word_mask),
            tensor(self.token_type_ids),
        )
        return MNERBatch(text, torch.from_numpy(self.image), torch.from_numpy(self.image_mask), tensor(self.tags))


def image_rows(ref: TokenRef) -> Floats:
    """One image's real tokens ``(N_i, D)`` float32 (a ``(D,)`` vector is one token; a path is read)."""
    if isinstance(ref, Path):
        from mscmt_cli.features import read_array

        tokens = read_array(ref)
    else:
        tokens = np.asarray(ref.float() if hasattr(ref, "float") else ref)  # a CPU tensor, through the array protocol
    return (tokens[None] if tokens.ndim == 1 else tokens).astype(np.float32)


def pad_images(refs: Sequence[TokenRef]) -> tuple[Floats, Bools]:
    """Images of a batch -> tokens ``(B, N, D)`` float32 zero-padded to the most tokens, mask ``(B, N)`` bool."""
    rows = [image_rows(r) for r in refs]
    if len({r.shape[1] for r in rows}) > 1:
        raise ValueError(f"image tokens of one batch differ in size: {sorted({r.shape[1] for r in rows})}")
    n = max(r.shape[0] for r in rows)
    image = np.zeros((len(rows), n, rows[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), n), dtype=np.bool_)
    for b, r in enumerate(rows):
        image[b, : r.shape[0]] = r
        mask[b, : r.shape[0]] = True
    return image, mask


def collate_arrays(examples: Sequence[Example], pad_id: int) -> ArrayBatch:
    """Pad a list of examples into one :class:`ArrayBatch`."""
    windows = [w for e in examples for w in e.encoded.windows]
    width = max(len(w) for w in windows)
    input_ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(windows), width), dtype=np.int64)
    for k, w in enumerate(windows):
        input_ids[k, : len(w)] = w
        attention[k, : len(w)] = 1
    n_words = max(e.length for e in examples)
    word_index = np.zeros((len(examples), n_words), dtype=np.int64)
    word_mask = np.zeros((len(examples), n_words), dtype=np.bool_)
    tags = np.zeros((len(examples), n_words), dtype=np.int64)
    first_window = 0
    for b, e in enumerate(examples):
        flat = [(first_window + k) * width + p for k, p in e.encoded.word_positions]
        word_index[b, : len(flat)] = flat
        word_mask[b, : len(flat)] = True
        if e.tag_ids:
            tags[b, : len(e.tag_ids)] = e.tag_ids
        first_window += len(e.encoded.windows)
    labelled = all(e.tag_ids for e in examples)
    image, image_mask = pad_images([e.image for e in examples])
    types = _token_types(examples, len(windows), width)
    return ArrayBatch(input_ids, attention, word_index, word_mask, types, image, image_mask, tags if labelled else None)


def _token_types(examples: Sequence[Example], n_windows: int, width: int) -> Ints | None:
    """``(W, L)`` segment ids of the batch's windows (0 on padding), or None when no example has any."""
    if all(e.encoded.token_types is None for e in examples):
        return None
    types = np.zeros((n_windows, width), dtype=np.int64)
    k = 0
    for e in examples:
        for w, row in enumerate(e.encoded.token_types or [[] for _ in e.encoded.windows]):
            types[k + w, : len(row)] = row
        k += len(e.encoded.windows)
    return types


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
