"""BIO transition constraints: the table, and both decoders against brute force over every VALID tag path."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from seqeval.metrics.sequence_labeling import get_entities

from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import LABELS
from mscmt_cli.model.bio import bio_table, canonical_tags, invalid_steps, transition_table
from plugins.decoders import CRFDecoder, CRFParams, SoftmaxDecoder
from tests.crf_oracle import brute_force, check_crf, path_score, random_crf

SMALL = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _valid(path, labels=SMALL) -> bool:
    return not invalid_steps([labels[i] for i in path])


def _batch(draw_lengths: list[int], num_tags: int, seed: int, scale: float = 3.0):
    """Random emissions ``(B, T, C)`` and a prefix mask ``(B, T)``."""
    torch.manual_seed(seed)
    t = max(draw_lengths)
    emissions = torch.randn(len(draw_lengths), t, num_tags) * scale
    mask = torch.tensor([[i < n for i in range(t)] for n in draw_lengths])
    return emissions, mask


def _random_crf(labels=SMALL, seed: int = 0, scale: float = 2.0, **kwargs) -> CRFDecoder:
    return random_crf(labels, seed, scale, **kwargs)


def _valid_paths(n: int, labels=SMALL) -> list[tuple[int, ...]]:
    return [p for p in itertools.product(range(len(labels)), repeat=n) if _valid(p, labels)]


def _brute_force(crf, emissions: torch.Tensor, n: int):
    """(log Z over valid paths, best valid path, marginals (n, C) over valid paths), in double.

    Valid paths never touch a forbidden entry of the transitions, so their raw pytorch-crf scores are finite.
    """
    return brute_force(crf, emissions.double(), _valid_paths(n))


# -- the table -----------------------------------------------------------------


def test_bio_table_forbids_exactly_the_impossible_steps():
    table = bio_table(LABELS)
    for i, label in enumerate(LABELS):
        assert table.start[i] == (not label.startswith("I-")), label
        assert table.end[i]
        for j, nxt in enumerate(LABELS):
            ok = not nxt.startswith("I-") or (label != "O" and label[2:] == nxt[2:])
            assert table.step[i][j] == ok, (label, nxt)
    # each of the 4 I-X tags may follow only B-X and I-X: 4 * 7 forbidden steps
    assert sum(not ok for row in table.step for ok in row) == 28
    assert table.step[LABELS.index("B-PER")][LABELS.index("I-ORG")] is False


@pytest.mark.parametrize(
    "labels,message",
    [
        (("O", "B-PER", "I-PER", "E-PER", "S-PER"), "label 'E-PER' is not BIO .a BIOES/BILOU label set."),
        (("O", "I-PER", "I-LOC"), "label 'I-PER' has no 'B-PER' in the label set .an IO label set.."),
        (("O", "PER"), "label 'PER' is not BIO"),
        (("O", "B-PER", "B-PER"), "repeats a label"),
    ],
)
def test_other_label_sets_are_refused_by_name(labels, message):
    for cls in (CRFDecoder, SoftmaxDecoder):
        with pytest.raises(MscmtError, match=message):
            cls(labels)
        assert not cls(labels, cls.Params(constraints="none")).constrained  # still buildable without constraints


def test_constraint_names_are_checked():
    with pytest.raises(ValidationError, match="constraints"):
        CRFParams(constraints="bioes")
    assert CRFDecoder(LABELS).labels == LABELS and CRFDecoder(LABELS).constrained  # constrained by default
    assert transition_table("none", 9, LABELS).unconstrained


def test_decoder_inputs_are_checked_before_any_tensor_work():
    dec = CRFDecoder(SMALL)
    e = torch.zeros(2, 3, 5)
    with pytest.raises(ValueError, match=r"emissions must have shape \(B, T, 5\), got \(2, 3, 4\)"):
        dec.decode(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask of the first word must be on"):
        dec.marginals(e, torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool))
    with pytest.raises(ValueError, match="real words first, then padding"):
        dec.loss(e, torch.zeros(2, 3, dtype=torch.long), torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.bool))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(LABELS), max_size=10))
def test_canonical_tags_are_valid_and_keep_the_spans_seqeval_reads(tags):
    fixed = canonical_tags(tags)
    assert invalid_steps(fixed) == []
    assert get_entities(fixed) == get_entities(list(tags))
    assert [t for t, (a, b) in enumerate(zip(tags, fixed)) if a != b] == invalid_steps(tags)


# -- decoders against brute force ------------------------------------------------

lengths_st = st.lists(st.integers(1, 4), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None)
@given(lengths=lengths_st, seed=st.integers(0, 10_000))
def test_constrained_crf_matches_brute_force_over_valid_paths(lengths, seed):
    dec = _random_crf(seed=seed)
    emissions, mask = _batch(lengths, len(SMALL), seed)
    # gold: random valid paths (a random path made valid keeps its spans)
    torch.manual_seed(seed + 1)
    raw = torch.randint(len(SMALL), (len(lengths), mask.size(1)))
    tags = torch.zeros_like(raw)
    for b, n in enumerate(lengths):
        fixed = canonical_tags([SMALL[i] for i in raw[b, :n].tolist()])
        tags[b, :n] = torch.tensor([SMALL.index(x) for x in fixed])
    paths, marginals = check_crf(dec, emissions, tags, mask, lengths, _valid_paths, nll_abs=1e-4)
    for b, n in enumerate(lengths):
        assert _valid(paths[b])
        assert torch.allclose(marginals[b, :n].sum(-1), torch.ones(n), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(lengths=lengths_st, seed=st.integers(0, 10_000))
def test_constrained_softmax_decode_is_the_best_valid_product_of_probabilities(lengths, seed):
    dec = SoftmaxDecoder(SMALL)
    emissions, mask = _batch(lengths, len(SMALL), seed)
    logp = torch.log_softmax(emissions.double(), -1)
    paths = dec.decode(emissions, mask)
    for b, n in enumerate(lengths):
        best = max(_valid_paths(n), key=lambda p: sum(logp[b, t, tag] for t, tag in enumerate(p)))
        assert paths[b] == list(best)
    assert torch.allclose(dec.marginals(emissions, mask), torch.softmax(emissions, -1))  # marginals stay the softmax


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5), seed=st.integers(0, 10_000), scale=st.sampled_from([1.0, 10.0, 100.0]))
def test_decoded_paths_are_always_valid(lengths, seed, scale):
    emissions, mask = _batch(lengths, len(LABELS), seed, scale)
    crf = _random_crf(LABELS, seed, scale)  # transitions as large as the emissions
    for dec in (crf, SoftmaxDecoder(LABELS)):
        for b, path in enumerate(dec.decode(emissions, mask)):
            assert len(path) == lengths[b]
            assert invalid_steps([LABELS[i] for i in path]) == []
    m = crf.marginals(emissions, mask)
    assert torch.isfinite(m).all()
    assert torch.allclose(m.sum(-1)[mask], torch.ones(int(mask.sum())), atol=1e-3)  # float32, path scores in the thousands
    forbidden_start = m[:, 0, [LABELS.index(x) for x in LABELS if x.startswith("I-")]]
    assert (forbidden_start == 0).all()  # exactly no mass on a path that opens with I-X


@settings(max_examples=20, deadline=None)
@given(lengths=lengths_st, seed=st.integers(0, 10_000), invalid_gold=st.booleans())
def test_constrained_loss_has_finite_gradients(lengths, seed, invalid_gold):
    dec = _random_crf(seed=seed, scale=5.0)
    emissions, mask = _batch(lengths, len(SMALL), seed, scale=20.0)
    emissions.requires_grad_(True)
    # an all-I-LOC gold path opens with a forbidden step; random tags are mostly invalid too
    tags = torch.full(mask.shape, SMALL.index("I-LOC")) if invalid_gold else torch.randint(len(SMALL), mask.shape)
    loss = dec.loss(emissions, tags, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(emissions.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in dec.parameters())
    forbidden = ~dec.allowed_step
    assert (dec.crf.transitions.grad[forbidden] == 0).all()  # forbidden scores are never used, so never trained


def test_invalid_gold_is_scored_as_the_same_spans_written_validly():
    dec = _random_crf(seed=3)
    emissions, mask = _batch([4], len(SMALL), 3)
    as_given = torch.tensor([[SMALL.index(t) for t in ("O", "I-PER", "I-PER", "I-LOC")]])
    written = torch.tensor([[SMALL.index(t) for t in ("O", "B-PER", "I-PER", "B-LOC")]])
    assert dec.loss(emissions, as_given, mask).item() == pytest.approx(dec.loss(emissions, written, mask).item())
    log_z, _, _ = _brute_force(dec.crf, emissions[0], 4)
    gold = path_score(dec.crf, emissions[0].double(), tuple(written[0].tolist()))
    assert dec.loss(emissions, as_given, mask).item() == pytest.approx(float(log_z - gold), rel=1e-5)


def test_unconstrained_training_is_pytorch_crf_likelihood_on_the_gold_as_given():
    dec = _random_crf(seed=4, constrain_training=False)
    emissions, mask = _batch([4, 2, 3], len(SMALL), 4)
    tags = torch.tensor([[2, 4, 0, 2], [4, 2, 0, 0], [0, 2, 1, 0]])  # invalid paths, kept as they are
    expected = -dec.crf(emissions, tags, mask=mask, reduction="mean")
    assert dec.loss(emissions, tags, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(_valid(p) for p in dec.decode(emissions, mask))  # decoding stays constrained


def test_constraints_none_is_the_plain_crf():
    dec = _random_crf(seed=5, constraints="none")
    emissions, mask = _batch([4, 3], len(SMALL), 5)
    assert dec.decode(emissions, mask) == dec.crf.decode(emissions, mask=mask)


# -- what a user sees --------------------------------------------------------------


def _preferring(path: list[str], margin: float = 50.0) -> torch.Tensor:
    """Emissions ``(1, T, 9)`` that put ``margin`` on each word's tag of ``path``."""
    e = torch.zeros(1, len(path), len(LABELS))
    for t, tag in enumerate(path):
        e[0, t, LABELS.index(tag)] = margin
    return e


def test_no_decoder_outputs_b_per_i_org_however_strongly_preferred():
    wanted = ["O", "B-PER", "I-ORG", "O"]  # "Mayor Elena Park ." as the example run tagged it
    emissions, mask = _preferring(wanted), torch.ones(1, 4, dtype=torch.bool)
    crf = CRFDecoder(LABELS)
    with torch.no_grad():
        crf.crf.transitions[LABELS.index("B-PER"), LABELS.index("I-ORG")] = 100.0  # a CRF that learned the wrong step
    unconstrained = CRFDecoder(LABELS, CRFParams(constraints="none"))
    unconstrained.load_state_dict(crf.state_dict())
    as_tags = lambda paths: [LABELS[i] for i in paths[0]]  # noqa: E731
    assert as_tags(unconstrained.decode(emissions, mask)) == wanted  # the test would catch it
    for dec in (crf, SoftmaxDecoder(LABELS)):
        tags = as_tags(dec.decode(emissions, mask))
        assert invalid_steps(tags) == [] and ("B-PER", "I-ORG") not in set(itertools.pairwise(tags))
    m = crf.marginals(emissions, mask)[0]
    i_org, b_org = LABELS.index("I-ORG"), LABELS.index("B-ORG")
    # I-ORG at word 2 only ever follows B-ORG / I-ORG at word 1, never the preferred B-PER
    assert m[2, i_org] <= m[1, b_org] + m[1, i_org] + 1e-6


def test_state_dict_is_pytorch_crf_parameters_only():
    dec = CRFDecoder(LABELS)
    assert set(dec.state_dict()) == {"crf.start_transitions", "crf.end_transitions", "crf.transitions"}
    assert set(SoftmaxDecoder(LABELS).state_dict()) == set()
    old = {k: torch.randn_like(v) for k, v in dec.state_dict().items()}  # as saved before constraints existed
    dec.load_state_dict(old)
    assert torch.equal(dec.crf.transitions, old["crf.transitions"])


@torch.no_grad()
def test_constraints_hold_across_encoder_windows(tiny):
    """Decoding runs on the word-level emissions after the windows are gathered: one path over the whole tweet."""
    from mscmt_cli.backends.batches import collate, encode_examples
    from mscmt_cli.model.mner import MNERModel
    from plugins.fusions import NoFusion
    from plugins.text_encoders import BertweetEncoder

    text = BertweetEncoder(str(tiny.bertweet))  # 128 sub-words a window
    words = ["Paris", "visits", "London"] * 60
    encoded = text.encode_words(words)
    boundary = next(j for j, (k, _) in enumerate(encoded.word_positions) if k == 1)
    assert len(encoded.windows) >= 2 and 0 < boundary < len(words)
    batch = collate(encode_examples(text, [words], None, torch.zeros(1, 0)), text.pad_id)
    for decoder in (CRFDecoder(LABELS), SoftmaxDecoder(LABELS), CRFDecoder(LABELS, CRFParams(constraints="none"))):
        model = MNERModel(text, NoFusion(text.hidden_size, 0), decoder, len(LABELS)).eval()
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-30.0)
        model.classifier.bias[LABELS.index("I-ORG")] = 30.0  # every word, in both windows, prefers I-ORG
        for p in decoder.parameters():
            p.zero_()
        output = model(batch)
        assert output.emissions.shape == (1, len(words), len(LABELS))
        tags = [LABELS[i] for i in model.decode(output)[0]]
        if decoder.constrained:  # one ORG entity from the first word to the last, through the window boundary
            assert tags == ["B-ORG"] + ["I-ORG"] * (len(words) - 1)
        else:  # what the unconstrained CRF gives: an invalid start
            assert tags == ["I-ORG"] * len(words)
