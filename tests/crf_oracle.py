"""Brute-force oracle of the CRF tests (test_decoders.py, test_bio.py): every tag path scored one by one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from plugins.decoders import CRFDecoder, CRFParams


@torch.no_grad()
def path_score(crf, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    """Unnormalised pytorch-crf log-score of one tag path of one tweet (emissions ``(T, C)``, ``T`` tag ids), in their dtype."""
    score = crf.start_transitions[path[0]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        score = score + crf.transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return score + crf.end_transitions[path[-1]]


@torch.no_grad()
def brute_force(crf, emissions: torch.Tensor, paths: Sequence[tuple[int, ...]]) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """(log Z, best path, marginals ``(T, C)`` in double) over ``paths`` (each of length ``T``), by enumerating them.

    Scores are in the dtype of ``emissions`` ``(T, C)``: pass ``emissions.double()`` for a double-precision oracle.
    """
    scores = torch.stack([path_score(crf, emissions, p) for p in paths])
    log_z = torch.logsumexp(scores, 0)
    probs = torch.exp(scores - log_z)
    marg = torch.zeros(len(paths[0]), emissions.size(-1), dtype=torch.double)
    for p, pr in zip(paths, probs):
        for t, tag in enumerate(p):
            marg[t, tag] += pr.double()
    return log_z, list(paths[int(scores.argmax())]), marg


def random_crf(labels: Sequence[str], seed: int, scale: float, **params) -> CRFDecoder:
    """A CRF decoder over ``labels`` (``params``: its ``CRFParams``) whose parameters are uniform in ``[-scale, scale]``."""
    torch.manual_seed(seed)
    dec = CRFDecoder(list(labels), CRFParams(**params))
    for p in dec.parameters():
        torch.nn.init.uniform_(p, -scale, scale)
    return dec


def check_crf(
    dec: CRFDecoder,
    emissions: torch.Tensor,
    tags: torch.Tensor,
    mask: torch.Tensor,
    lengths: Sequence[int],
    paths_of: Callable[[int], Sequence[tuple[int, ...]]],
    nll_abs: float = 1e-5,
) -> tuple[list[list[int]], torch.Tensor]:
    """Assert that the decoder's loss, Viterbi paths and marginals equal the brute force over ``paths_of(n)`` for each
    tweet of ``n`` words (in double precision); returns the paths and the marginals ``(B, T, C)``.

    ``emissions`` ``(B, T, C)``, ``tags`` ``(B, T)`` gold tag ids, ``mask`` ``(B, T)`` the first ``lengths[b]`` words.
    """
    with torch.no_grad():
        nll = dec.loss(emissions, tags, mask)
        paths = dec.decode(emissions, mask)
        marginals = dec.marginals(emissions, mask)
    expected_nll = 0.0
    for b, n in enumerate(lengths):
        log_z, best, marg = brute_force(dec.crf, emissions[b].double(), paths_of(n))
        expected_nll += float(log_z - path_score(dec.crf, emissions[b].double(), tuple(tags[b, :n].tolist())))
        assert paths[b] == best
        assert torch.allclose(marginals[b, :n].double(), marg, atol=1e-5)
    assert nll.item() == pytest.approx(expected_nll / len(lengths), rel=1e-5, abs=nll_abs)
    return paths, marginals
