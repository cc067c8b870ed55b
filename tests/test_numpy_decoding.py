"""Numpy decoding (:mod:`mscmt_cli.backends.decoding`) against the torch decoders of ``plugins/decoders.py``.

Random emissions, masks, CRF scores and label sets (BIO, and unconstrained):
the paths are identical to the torch decoder's, and the marginals are within
1e-5 of the torch decoder's computation done in float64 (the exact value).
The torch decoder itself computes in float32, where ``alpha + beta - log Z``
cancels sums of ~100: its own marginals are up to ~2.4e-5 from the exact value
on these inputs (seen over 1,500 random cases), so against its float32 output
the bound is ``FLOAT32_TOLERANCE``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mscmt_cli.backends.decoding import Decoding, decoding_of
from mscmt_cli.errors import ModelLoadError
from mscmt_cli.labels import LABELS
from mscmt_cli.model.bio import FORBIDDEN
from plugins.decoders import CRFDecoder, CRFParams, DecoderParams, SoftmaxDecoder, backward_scores, forward_scores

TOLERANCE = 1e-5
FLOAT32_TOLERANCE = 5e-5


def _decoder(kind: str, constraints: str, seed: int):
    torch.manual_seed(seed)
    if kind == "crf":
        dec = CRFDecoder(list(LABELS), CRFParams(constraints=constraints))
        for p in dec.parameters():
            torch.nn.init.uniform_(p, -3, 3)
        return dec
    return SoftmaxDecoder(list(LABELS), DecoderParams(constraints=constraints))


@st.composite
def batches(draw):
    """emissions (B, T, C) float32 and a prefix mask (B, T)."""
    lengths = draw(st.lists(st.integers(1, 9), min_size=1, max_size=5))
    b, t = len(lengths), max(lengths)
    values = st.floats(-20, 20, width=32, allow_nan=False, allow_infinity=False)
    emissions = draw(arrays(np.float32, (b, t, len(LABELS)), elements=values))
    mask = np.array([[i < n for i in range(t)] for n in lengths])
    return emissions, mask


@settings(max_examples=60, deadline=None)
@given(batch=batches(), kind=st.sampled_from(["crf", "softmax"]), constraints=st.sampled_from(["bio", "none"]), seed=st.integers(0, 10_000))
def test_numpy_decoding_equals_the_torch_decoder(batch, kind, constraints, seed):
    emissions, mask = batch
    dec = _decoder(kind, constraints, seed)
    decoding = decoding_of(dec)
    e, m = torch.from_numpy(emissions), torch.from_numpy(mask)
    with torch.no_grad():
        want_paths, want_probs = dec.decode(e, m), dec.marginals(e, m).numpy()
    assert decoding.decode(emissions, mask) == want_paths
    probs = decoding.marginals(emissions, mask)
    assert probs.dtype == np.float32
    assert np.abs(probs - _exact_marginals(dec, e, m))[mask].max() <= TOLERANCE
    assert np.abs(probs - want_probs)[mask].max() <= FLOAT32_TOLERANCE


@torch.no_grad()
def _exact_marginals(dec, emissions: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The torch decoder's marginals ``(B, T, C)`` computed in float64 (its own functions, its own scores)."""
    e = emissions.double()
    if isinstance(dec, SoftmaxDecoder):
        return torch.softmax(e, dim=-1).numpy()
    start, trans, end = (s.double() for s in dec.scores(FORBIDDEN))
    alpha, beta = forward_scores(e, mask, start, trans), backward_scores(e, mask, trans, end)
    log_z = torch.logsumexp(alpha[:, -1] + end, dim=-1)
    return torch.exp(alpha + beta - log_z[:, None, None]).numpy()


def test_decoding_round_trips_through_json_exactly(tmp_path):
    dec = _decoder("crf", "bio", 3)
    decoding = decoding_of(dec)
    decoding.save(tmp_path)
    again = Decoding.load(tmp_path)
    assert again == decoding
    start, trans, end = again.masked_scores(float("-inf"))
    want = [s.detach().numpy() for s in dec.scores(float("-inf"))]
    for got, ref in zip((start, trans, end), want):
        np.testing.assert_array_equal(got, ref)  # float32 values written as exact decimals


def test_constrained_paths_never_take_a_forbidden_step():
    dec = decoding_of(_decoder("softmax", "bio", 0))
    e = np.zeros((1, 3, len(LABELS)), np.float32)
    e[0, :, LABELS.index("I-PER")] = 50.0  # every word prefers I-PER, which cannot open a tweet
    path = dec.decode(e, np.ones((1, 3), bool))[0]
    assert [LABELS[k] for k in path] == ["B-PER", "I-PER", "I-PER"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "maxent"}, "cannot run outside torch"),
        ({"allowed_end": (True,)}, "transition table"),
        ({"start": (0.0,)}, "CRF scores"),
    ],
)
def test_a_malformed_decoding_is_refused_by_name(change, message):
    fields = decoding_of(_decoder("crf", "bio", 0)).__dict__ | change
    with pytest.raises(ModelLoadError, match=message):
        Decoding(**fields)


def test_bad_masks_are_refused_as_the_torch_decoder_does():
    dec = decoding_of(_decoder("crf", "bio", 0))
    e = np.zeros((1, 3, len(LABELS)), np.float32)
    with pytest.raises(ValueError, match="first word"):
        dec.decode(e, np.array([[False, True, True]]))
    with pytest.raises(ValueError, match="real words first"):
        dec.marginals(e, np.array([[True, False, True]]))
