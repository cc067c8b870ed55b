"""Brute-force oracle of the CRF tests (test_decoders.py, test_bio.py): every tag path scored one by one."""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
