"""Encoded datasets and length-aware batch order (collation is :mod:`mscmt_cli.backends.batches`).

Tweets are tokenized once, up front. Batches are formed from tweets of similar
length (less padding): training draws an epoch's indices (shuffled, or from
the class-balanced sampler), cuts them into pools of ``pool_batches``
batches, sorts each pool by length, and shuffles the batch order; evaluation
sorts everything by length and restores the original order afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from mscmt_cli.backends.batches import Example, collate
from mscmt_cli.model.mner import MNERBatch


class EncodedDataset(Dataset):
    """A list of :class:`Example` usable with a ``DataLoader``."""

    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    @property
    def lengths(self) -> list[int]:
        return [e.encoded.n_subwords for e in self.examples]


def length_batches(
    indices: Sequence[int], lengths: Sequence[int], batch_size: int, pool_batches: int, generator: torch.Generator | None
) -> list[list[int]]:
    """Cut ``indices`` into batches of similar length.

    Pools of ``batch_size * pool_batches`` consecutive indices are sorted by
    length and cut into batches; with a ``generator`` the batch order is then
    shuffled, without one the batches come longest-pool-first in order.
    """
    pool = batch_size * max(1, pool_batches)
    batches: list[list[int]] = []
    for start in range(0, len(indices), pool):
        chunk = sorted(indices[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    if generator is not None:
        order = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in order]
    return batches


def epoch_indices(n: int, weights: Sequence[float] | None, generator: torch.Generator) -> list[int]:
    """One epoch's draw: weighted with replacement (balanced) or a permutation."""
    if weights is None:
        return torch.randperm(n, generator=generator).tolist()
    return list(WeightedRandomSampler(list(weights), n, replacement=True, generator=generator))


def iter_batches(dataset: EncodedDataset, batches: list[list[int]], pad_id: int) -> Iterator[tuple[list[int], MNERBatch]]:
    """Collate batches in the main process (cheap: tokenization happened up front)."""
    for idx in batches:
        yield idx, collate([dataset[i] for i in idx], pad_id)
