"""Built-in decoders: a linear-chain CRF (pytorch-crf's parameters) and a per-word softmax.

Both decode under the BIO transition constraints of :mod:`mscmt_cli.model.bio`
(``constraints="bio"``, the default; ``"none"`` turns them off): a forbidden
step (start -> ``I-X``, ``O`` -> ``I-X``, ``B-Y``/``I-Y`` -> ``I-X``) gets a
score of ``-inf`` in Viterbi, so no decoded path ever takes one, however
strongly the emissions prefer it.

In the CRF's forward-backward marginals and its training likelihood a
forbidden step scores :data:`FORBIDDEN` (``-1e4``) instead of ``-inf``: any
path through one is then at least 1e4 below a valid path, so ``exp`` of it is
exactly 0 in float32 and float64 (the mass of invalid paths vanishes, as in
the brute-force tests) while every gradient stays finite (``-inf`` would give
``NaN`` gradients wherever a log-sum-exp sees only forbidden terms).

Tensor shapes: ``B`` tweets, ``T`` words of the longest, ``C`` labels. Masks
are ``(B, T)`` bool, True on real words, each row a prefix that starts on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torchcrf import CRF

from mscmt_cli.model.bio import FORBIDDEN, begin_index, transition_table
from mscmt_cli.model.components import ComponentParams, Decoder
from mscmt_cli.model.viterbi import backtrack


class DecoderParams(ComponentParams):
    """Parameters of every built-in decoder."""

    constraints: Literal["bio", "none"] = Field(
        "bio", description="transition constraints when decoding: bio (no I-X after O, at the start or after another type) or none"
    )


class CRFParams(DecoderParams):
    """Parameters of the CRF."""

    constrain_training: bool = Field(
        True,
        description="normalise the training likelihood over valid paths only (with constraints=bio); false trains pytorch-crf's plain CRF",
    )


def viterbi(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor, end: torch.Tensor) -> list[list[int]]:
    """Best path per tweet: emissions ``(B, T, C)``, mask ``(B, T)``, start ``(C,)``, trans ``(C, C)`` [from, to], end ``(C,)``.

    Scores may be ``-inf`` (forbidden); every tweet must have at least one finite path.
    """
    score = start + emissions[:, 0]  # (B, C)
    history = []
    for t in range(1, emissions.size(1)):
        step = score.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1)  # (B, C from, C to)
        best, index = step.max(dim=1)
        score = torch.where(mask[:, t, None], best, score)
        history.append(index)
    last = (score + end).argmax(dim=1).tolist()
    lengths = mask.sum(dim=1).tolist()
    back = torch.stack(history).cpu().tolist() if history else []  # (T - 1, B, C)
    return backtrack(last, lengths, back)


def forward_scores(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """alpha ``(B, T, C)``: log-sum of the paths ending in tag c at word t; carried unchanged past a tweet's end."""
    alphas = [start + emissions[:, 0]]
    for t in range(1, emissions.size(1)):
        step = torch.logsumexp(alphas[-1].unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alphas.append(torch.where(mask[:, t, None], step, alphas[-1]))
    return torch.stack(alphas, dim=1)


def backward_scores(emissions: torch.Tensor, mask: torch.Tensor, trans: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """beta ``(B, T, C)``: log-sum of the continuations from tag c at word t to the tweet's end."""
    end = end.expand(emissions.size(0), -1)
    betas = [end]
    for t in range(emissions.size(1) - 2, -1, -1):
        nxt = emissions[:, t + 1] + betas[0]  # (B, C)
        step = torch.logsumexp(trans.unsqueeze(0) + nxt.unsqueeze(1), dim=2)
        betas.insert(0, torch.where(mask[:, t + 1, None], step, end))
    return torch.stack(betas, dim=1)


def path_scores(
    emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """Unnormalised log-score ``(B,)`` of each tweet's path ``tags`` ``(B, T)`` (padding ignored)."""
    emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
    steps = trans[tags[:, :-1], tags[:, 1:]]  # (B, T - 1)
    zero = emitted.new_zeros(())
    score = start[tags[:, 0]] + torch.where(mask, emitted, zero).sum(dim=1) + torch.where(mask[:, 1:], steps, zero).sum(dim=1)
    last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1)).squeeze(1)
    return score + end[last]


class ConstrainedDecoder(Decoder):
    """A decoder with a transition table: masks of the allowed start, step and end (non-persistent buffers).

    The masks are rebuilt from the label names at construction, so they never
    enter ``state_dict``. A model saved before decoders had parameters
    (``config.json`` format 1) was trained and decoded without constraints,
    and loads so (``legacy_params``).
    """

    Params = DecoderParams
    legacy_params: ClassVar[dict[str, Any]] = {"constraints": "none"}

    def __init__(self, labels: Sequence[str], params: DecoderParams | None = None) -> None:
        super().__init__(labels, params)
        num_tags = self.num_tags
        constraints = (params or DecoderParams()).constraints
        table = transition_table(constraints, num_tags, self.labels)
        self.constraints = constraints
        self.constrained = not table.unconstrained
        self.register_buffer("allowed_start", torch.tensor(table.start), persistent=False)
        self.register_buffer("allowed_step", torch.tensor(table.step), persistent=False)
        self.register_buffer("allowed_end", torch.tensor(table.end), persistent=False)
        begin = begin_index(self.labels) if self.constrained and self.labels else list(range(num_tags))
        self.register_buffer("begin_of", torch.tensor(begin, dtype=torch.long), persistent=False)

    allowed_start: torch.Tensor  # (C,) bool, the buffers registered above
    allowed_step: torch.Tensor  # (C, C) bool
    allowed_end: torch.Tensor  # (C,) bool
    begin_of: torch.Tensor  # (C,) long

    def masked(
        self, start: torch.Tensor, trans: torch.Tensor, end: torch.Tensor, value: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scores with every forbidden entry set to ``value`` (gradients reach the allowed ones only)."""
        return (
            start.masked_fill(~self.allowed_start, value),
            trans.masked_fill(~self.allowed_step, value),
            end.masked_fill(~self.allowed_end, value),
        )

    def canonical(self, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tags ``(B, T)`` with every ``I-X`` that opens a span written as ``B-X`` (seqeval's reading of the same spans)."""
        if not self.constrained:
            return tags
        opens = torch.cat([~self.allowed_start[tags[:, :1]], ~self.allowed_step[tags[:, :-1], tags[:, 1:]]], dim=1) & mask
        return torch.where(opens, self.begin_of[tags], tags)


class CRFDecoder(ConstrainedDecoder):
    """Linear-chain CRF: negative log-likelihood, Viterbi, forward-backward marginals, all under BIO constraints.

    Parameters (:class:`CRFParams`):
        constraints: ``"bio"`` (default) or ``"none"`` (pytorch-crf's unconstrained CRF).
        constrain_training: with constraints on, normalise the training
            likelihood over valid paths only (default). An invalid gold path
            (an ``I-X`` that opens a span, as TWITTER-2015 has) is scored as the
            same spans written validly (:func:`mscmt_cli.model.bio.canonical_tags`).
            False trains the unconstrained CRF on the gold tags as given and
            applies the constraints only when decoding.
    """

    name = "crf"
    description = "linear-chain CRF (pytorch-crf): NLL training, Viterbi decoding, forward-backward scores, BIO-constrained"

    Params = CRFParams
    legacy_params: ClassVar[dict[str, Any]] = {"constraints": "none", "constrain_training": False}

    def __init__(self, labels: Sequence[str], params: CRFParams | None = None) -> None:
        params = params or CRFParams()
        super().__init__(labels, params)
        self.crf = CRF(self.num_tags, batch_first=True)
        self.constrain_training = params.constrain_training

    def scores(self, value: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """start ``(C,)``, transitions ``(C, C)`` and end ``(C,)`` with forbidden entries at ``value``."""
        return self.masked(self.crf.start_transitions, self.crf.transitions, self.crf.end_transitions, value)

    def _loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """emissions ``(B, T, C)``, tags ``(B, T)``, mask ``(B, T)`` -> mean NLL per tweet."""
        e = emissions.float()
        if self.constrain_training:
            start, trans, end = self.scores(FORBIDDEN)
            tags = self.canonical(tags, mask)
        else:
            start, trans, end = self.crf.start_transitions, self.crf.transitions, self.crf.end_transitions
        alpha = forward_scores(e, mask, start, trans)
        log_z = torch.logsumexp(alpha[:, -1] + end, dim=-1)  # (B,)
        return (log_z - path_scores(e, tags, mask, start, trans, end)).mean()

    def _decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best valid path per tweet (Viterbi), each list as long as the tweet."""
        with torch.no_grad():
            return viterbi(emissions.float(), mask, *self.scores(float("-inf")))

    def _marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag of word t = c | tweet) over valid paths ``(B, T, C)``; rows of padding words are meaningless."""
        e = emissions.float()
        start, trans, end = self.scores(FORBIDDEN)
        alpha = forward_scores(e, mask, start, trans)
        beta = backward_scores(e, mask, trans, end)
        log_z = torch.logsumexp(alpha[:, -1] + end, dim=-1)  # (B,)
        return torch.exp(alpha + beta - log_z[:, None, None])


class SoftmaxDecoder(ConstrainedDecoder):
    """Independent per-word softmax: cross-entropy training, constrained Viterbi decoding.

    Decoding picks the valid path with the highest product of per-word softmax
    probabilities (Viterbi over the log-probabilities, forbidden steps at
    ``-inf``); with ``constraints="none"`` it is the per-word argmax.
    :meth:`marginals` stay the plain per-word softmax (not conditioned on a
    valid path), so the score of a decoded tag is its softmax probability.
    """

    name = "softmax"
    description = "per-word softmax: cross-entropy training, BIO-constrained Viterbi decoding"

    def _loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        return F.cross_entropy(emissions[mask].float(), tags[mask])

    def _decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        e = emissions.float()
        if not self.constrained:
            best = e.argmax(dim=-1)
            return [best[b, :n].tolist() for b, n in enumerate(mask.sum(dim=1).tolist())]
        zeros = e.new_zeros(self.num_tags)
        start, trans, end = self.masked(zeros, e.new_zeros(self.num_tags, self.num_tags), zeros, float("-inf"))
        with torch.no_grad():
            return viterbi(torch.log_softmax(e, dim=-1), mask, start, trans, end)

    def _marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(emissions.float(), dim=-1)
