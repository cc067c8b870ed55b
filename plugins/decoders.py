"""Built-in decoders: a linear-chain CRF (pytorch-crf) and a per-word softmax."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torchcrf import CRF

from mscmt_cli.model.components import Decoder


class CRFDecoder(Decoder):
    """Linear-chain CRF: negative log-likelihood, Viterbi, forward-backward marginals."""

    name = "crf"
    description = "linear-chain CRF (pytorch-crf): NLL training, Viterbi decoding, forward-backward scores"

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__(labels)
        self.crf = CRF(self.num_tags, batch_first=True)

    def _loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """emissions ``(B, T, C)``, tags ``(B, T)``, mask ``(B, T)`` -> mean NLL per tweet."""
        return -self.crf(emissions.float(), tags, mask=mask.bool(), reduction="mean")

    def _decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        return self.crf.decode(emissions.float(), mask=mask.bool())

    def _marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag of word t = c | tweet) ``(B, T, C)``; rows of padding words are meaningless."""
        alpha = self._forward_scores(emissions.float(), mask.bool())
        beta = self._backward_scores(emissions.float(), mask.bool())
        log_z = torch.logsumexp(alpha[:, -1] + self.crf.end_transitions, dim=-1)  # (B,)
        return torch.exp(alpha + beta - log_z[:, None, None])

    def _forward_scores(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """alpha[b, t, c]: log-sum of paths ending in tag c at word t; carried past the end."""
        trans = self.crf.transitions  # (C, C) from -> to
        alphas = [self.crf.start_transitions + e[:, 0]]
        for t in range(1, e.size(1)):
            step = torch.logsumexp(alphas[-1].unsqueeze(2) + trans, dim=1) + e[:, t]
            alphas.append(torch.where(mask[:, t, None], step, alphas[-1]))
        return torch.stack(alphas, dim=1)

    def _backward_scores(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """beta[b, t, c]: log-sum of path continuations from tag c at word t to the end."""
        trans = self.crf.transitions
        end = self.crf.end_transitions.expand(e.size(0), -1)
        betas = [end]
        for t in range(e.size(1) - 2, -1, -1):
            nxt = e[:, t + 1] + betas[0]  # (B, C)
            step = torch.logsumexp(trans.unsqueeze(0) + nxt.unsqueeze(1), dim=2)
            betas.insert(0, torch.where(mask[:, t + 1, None], step, end))
        return torch.stack(betas, dim=1)


class SoftmaxDecoder(Decoder):
    """Independent per-word softmax: cross-entropy training, argmax decoding."""

    name = "softmax"
    description = "per-word softmax: cross-entropy training, argmax decoding"

    def _loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        return F.cross_entropy(emissions[mask].float(), tags[mask])

    def _decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        best = emissions.argmax(dim=-1)
        lengths = mask.long().sum(dim=1).tolist()
        return [best[b, :n].tolist() for b, n in enumerate(lengths)]

    def _marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(emissions.float(), dim=-1)
