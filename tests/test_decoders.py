"""CRF and softmax decoders against brute-force enumeration of every tag path.

These decoders have 2-3 unnamed tags, so no transition constraints apply: the
math is pytorch-crf's. The BIO-constrained decoders are tested in test_bio.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.decoders import CRFDecoder, DecoderParams, SoftmaxDecoder
from tests.crf_oracle import check_crf, random_crf


def _random_crf(num_tags: int, seed: int) -> CRFDecoder:
    return random_crf([f"t{k}" for k in range(num_tags)], seed, 1.0, constraints="none", constrain_training=False)


def _all_paths(num_tags: int) -> Callable[[int], list[tuple[int, ...]]]:
    return lambda n: list(itertools.product(range(num_tags), repeat=n))


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 4), min_size=1, max_size=3), num_tags=st.integers(2, 3), seed=st.integers(0, 10_000))
def test_crf_matches_brute_force(lengths, num_tags, seed):
    dec = _random_crf(num_tags, seed)
    assert not dec.constrained
    b, t = len(lengths), max(lengths)
    emissions = torch.randn(b, t, num_tags)
    mask = torch.tensor([[i < n for i in range(t)] for n in lengths])
    tags = torch.randint(num_tags, (b, t)) * mask
    check_crf(dec, emissions, tags, mask, lengths, _all_paths(num_tags))


def test_crf_marginals_sum_to_one_on_real_words():
    dec = _random_crf(5, 0)
    emissions = torch.randn(3, 6, 5)
    mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4, [1] * 4 + [0] * 2], dtype=torch.bool)
    m = dec.marginals(emissions, mask)
    assert m.shape == (3, 6, 5)
    assert torch.allclose(m.sum(-1)[mask], torch.ones(int(mask.sum())), atol=1e-5)


def test_softmax_decoder_loss_decode_and_marginals():
    dec = SoftmaxDecoder(["a", "b", "c"], DecoderParams(constraints="none"))
    emissions = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    tags = torch.tensor([[0, 1, 2]])
    expected = torch.nn.functional.cross_entropy(emissions[0, :2], tags[0, :2])
    assert dec.loss(emissions, tags, mask).item() == pytest.approx(expected.item())
    assert dec.decode(emissions, mask) == [[0, 1]]
    assert torch.allclose(dec.marginals(emissions, mask), torch.softmax(emissions, -1))
