"""Decoding outside torch: constrained Viterbi and marginals in numpy, as ``plugins/decoders.py`` computes them.

An exported model (:mod:`mscmt_cli.export.exporter`) gives emissions; this
module turns them into tag paths and per-tag probabilities with the results of
the torch decoders:

* ``crf``: Viterbi over start/transition/end scores with every forbidden BIO
  step at ``-inf``; forward-backward marginals with forbidden steps at
  :data:`FORBIDDEN` (``-1e4``, exactly as the torch CRF).
* ``softmax``: Viterbi over the per-word log-softmax with zero transitions
  (forbidden steps ``-inf``), the plain argmax when unconstrained; marginals are
  the per-word softmax.

Viterbi mirrors the torch code step for step in float32 (the same additions
in the same order, ``max`` taking the first of equal scores as torch's does),
so the paths are identical. Forward-backward runs in float64: ``alpha + beta -
log Z`` cancels sums of ~100, where float32 loses ~1e-5; these marginals are
within 1e-5 of the exact value, the torch CRF's float32 ones within ~3e-5
(``tests/test_numpy_decoding.py`` checks both on random emissions).

Everything a decoder needs is in :class:`Decoding`, stored as ``decoding.json``
beside the exported model: the labels, the decoder kind, the BIO table of
:func:`mscmt_cli.model.bio.transition_table` and, for the CRF, its trained
start/transition/end scores (float32 values written as exact decimals).

Shapes: ``B`` tweets, ``T`` words of the longest, ``C`` labels. ``mask`` is
``(B, T)`` bool, each row real words then padding, the first word on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mscmt_cli.errors import ModelLoadError, MscmtError
from mscmt_cli.model.viterbi import backtrack
from mscmt_cli.paths import write_text_atomic

FORBIDDEN = -1.0e4  # as plugins/decoders.FORBIDDEN: forbidden steps in forward-backward
DECODING_FILE = "decoding.json"
KINDS = ("crf", "softmax")

Array = npt.NDArray[Any]


def logsumexp(x: Array, axis: int) -> Array:
    """``log(sum(exp(x)))`` along ``axis``, as ``torch.logsumexp`` computes it (max taken out first)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros_like(m))
    out: Array = np.log(np.sum(np.exp(x - m), axis=axis)) + np.squeeze(m, axis=axis)
    return out


def viterbi(emissions: Array, mask: Array, start: Array, trans: Array, end: Array) -> list[list[int]]:
    """Best path per tweet: emissions ``(B, T, C)``, mask ``(B, T)``, start ``(C,)``, trans ``(C, C)`` [from, to], end ``(C,)``.

    Scores may be ``-inf`` (forbidden); every tweet must have at least one finite path.
    """
    score = start + emissions[:, 0]  # (B, C)
    history = []
    for t in range(1, emissions.shape[1]):
        step = score[:, :, None] + trans + emissions[:, t][:, None, :]  # (B, C from, C to)
        history.append(step.argmax(axis=1))
        score = np.where(mask[:, t, None], step.max(axis=1), score)
    last = (score + end).argmax(axis=1).tolist()
    lengths = mask.sum(axis=1).tolist()
    back = np.stack(history).tolist() if history else []  # (T - 1, B, C)
    return backtrack(last, lengths, back)


def forward_scores(emissions: Array, mask: Array, start: Array, trans: Array) -> Array:
    """alpha ``(B, T, C)``: log-sum of the paths ending in tag c at word t; carried unchanged past a tweet's end."""
    alphas = [start + emissions[:, 0]]
    for t in range(1, emissions.shape[1]):
        step = logsumexp(alphas[-1][:, :, None] + trans, axis=1) + emissions[:, t]
        alphas.append(np.where(mask[:, t, None], step, alphas[-1]))
    return np.stack(alphas, axis=1)


def backward_scores(emissions: Array, mask: Array, trans: Array, end: Array) -> Array:
    """beta ``(B, T, C)``: log-sum of the continuations from tag c at word t to the tweet's end."""
    end = np.broadcast_to(end, (emissions.shape[0], end.shape[0]))
    betas = [end]
    for t in range(emissions.shape[1] - 2, -1, -1):
        nxt = emissions[:, t + 1] + betas[0]  # (B, C)
        step = logsumexp(trans[None] + nxt[:, None, :], axis=2)
        betas.insert(0, np.where(mask[:, t + 1, None], step, end))
    return np.stack(betas, axis=1)


def softmax(x: Array) -> Array:
    """Softmax over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: Array = e / e.sum(axis=-1, keepdims=True)
    return out


def log_softmax(x: Array) -> Array:
    """Log-softmax over the last axis."""
    shifted = x - x.max(axis=-1, keepdims=True)
    out: Array = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


@dataclass(frozen=True)
class Decoding:
    """A decoder as plain numbers: what :meth:`decode` and :meth:`marginals` need.

    Attributes:
        kind: ``crf`` or ``softmax``.
        labels: the ``C`` label names, in id order.
        constraints: ``bio`` or ``none`` (the decoder's parameter).
        allowed_start: ``[c]`` whether a tweet may open with label ``c``.
        allowed_step: ``[a][b]`` whether label ``b`` may follow label ``a``.
        allowed_end: ``[c]`` whether a tweet may close with label ``c``.
        start, transitions, end: the CRF's trained scores ``(C,)``, ``(C, C)``,
            ``(C,)`` (unmasked); empty for ``softmax``.
    """

    kind: str
    labels: tuple[str, ...]
    constraints: str
    allowed_start: tuple[bool, ...]
    allowed_step: tuple[tuple[bool, ...], ...]
    allowed_end: tuple[bool, ...]
    start: tuple[float, ...] = ()
    transitions: tuple[tuple[float, ...], ...] = ()
    end: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        c = len(self.labels)
        if self.kind not in KINDS:
            raise ModelLoadError(f"decoding: decoder kind {self.kind!r} cannot run outside torch (known: {', '.join(KINDS)})")
        if (
            len(self.allowed_start) != c
            or len(self.allowed_end) != c
            or any(len(r) != c for r in self.allowed_step)
            or len(self.allowed_step) != c
        ):
            raise ModelLoadError(f"decoding: the transition table does not have {c} x {c} entries for {c} labels")
        if self.kind == "crf" and (
            len(self.start) != c or len(self.end) != c or len(self.transitions) != c or any(len(r) != c for r in self.transitions)
        ):
            raise ModelLoadError(f"decoding: the CRF scores do not have {c} x {c} entries for {c} labels")

    @property
    def num_tags(self) -> int:
        return len(self.labels)

    @property
    def constrained(self) -> bool:
        return not (all(self.allowed_start) and all(self.allowed_end) and all(all(r) for r in self.allowed_step))

    def masked_scores(self, value: float) -> tuple[Array, Array, Array]:
        """start ``(C,)``, transitions ``(C, C)``, end ``(C,)`` (float32; zeros for softmax) with forbidden entries at ``value``."""
        c = self.num_tags
        if self.kind == "crf":
            start, trans, end = (np.asarray(v, dtype=np.float32) for v in (self.start, self.transitions, self.end))
        else:
            start, trans, end = np.zeros(c, np.float32), np.zeros((c, c), np.float32), np.zeros(c, np.float32)
        fill = np.float32(value)
        return (
            np.where(np.asarray(self.allowed_start), start, fill),
            np.where(np.asarray(self.allowed_step), trans, fill),
            np.where(np.asarray(self.allowed_end), end, fill),
        )

    def decode(self, emissions: Array, mask: Array) -> list[list[int]]:
        """Best tag ids per tweet (each list as long as the tweet): emissions ``(B, T, C)``, mask ``(B, T)``."""
        e, mask = self._check(emissions, mask)
        if self.kind == "crf":
            return viterbi(e, mask, *self.masked_scores(float("-inf")))
        if not self.constrained:
            best = e.argmax(axis=-1)
            return [best[b, :n].tolist() for b, n in enumerate(mask.sum(axis=1).tolist())]
        return viterbi(log_softmax(e), mask, *self.masked_scores(float("-inf")))

    def marginals(self, emissions: Array, mask: Array) -> Array:
        """Per-word tag probabilities ``(B, T, C)`` float32 (rows of padding words are meaningless)."""
        e, mask = self._check(emissions, mask)
        if self.kind == "softmax":
            return softmax(e)
        e64 = e.astype(np.float64)  # alpha + beta - log Z cancels large sums: float32 would lose ~1e-5
        start, trans, end = (s.astype(np.float64) for s in self.masked_scores(FORBIDDEN))
        alpha = forward_scores(e64, mask, start, trans)
        beta = backward_scores(e64, mask, trans, end)
        log_z = logsumexp(alpha[:, -1] + end, axis=-1)  # (B,)
        out: Array = np.exp(alpha + beta - log_z[:, None, None]).astype(np.float32)
        return out

    def _check(self, emissions: Array, mask: Array) -> tuple[Array, Array]:
        """emissions as float32 ``(B, T, C)`` and mask as bool ``(B, T)``; raises ``ValueError`` naming the argument."""
        e = np.asarray(emissions, dtype=np.float32)
        m = np.asarray(mask).astype(bool)
        if e.ndim != 3 or e.shape[2] != self.num_tags:
            raise ValueError(f"emissions must have shape (B, T, {self.num_tags}), got {e.shape}")
        if m.shape != e.shape[:2]:
            raise ValueError(f"mask must have shape {e.shape[:2]}, got {m.shape}")
        if e.shape[1] == 0 or not m[:, 0].all():
            raise ValueError("mask of the first word must be on for every tweet")
        if (m[:, 1:] & ~m[:, :-1]).any():
            raise ValueError("mask rows must be real words first, then padding")
        return e, m

    def save(self, directory: Path) -> Path:
        """Write ``decoding.json`` into ``directory``."""
        path = Path(directory) / DECODING_FILE
        write_text_atomic(path, json.dumps({"format": "mscmt-decoding", **asdict(self)}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> Decoding:
        """Read ``decoding.json`` of an exported model directory."""
        path = Path(directory) / DECODING_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: missing (an exported model directory holds {DECODING_FILE})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"{path}: unreadable ({err})") from None
        if not isinstance(data, dict) or data.pop("format", None) != "mscmt-decoding":
            raise ModelLoadError(f'{path}: not an mscmt decoding file (no "format": "mscmt-decoding")')
        try:
            return cls(**{k: _tuples(v) if k != "kind" and k != "constraints" else v for k, v in data.items()})
        except TypeError as err:
            raise ModelLoadError(f"{path}: {err}") from None


def decoding_of(decoder: Any) -> Decoding:
    """The :class:`Decoding` of a built-in ``crf`` or ``softmax`` decoder of ``plugins/decoders.py`` (its
    transition masks and, for the CRF, its trained scores); any other decoder is refused by name."""
    kind = type(decoder).name
    needed = ("labels", "constraints", "allowed_start", "allowed_step", "allowed_end") + (("crf",) if kind == "crf" else ())
    if kind not in KINDS or not all(hasattr(decoder, a) for a in needed):
        raise MscmtError(f"decoder {kind!r} cannot be exported: only the built-in crf and softmax decoders run outside torch")
    scores = {}
    if kind == "crf":
        crf = decoder.crf
        scores = {"start": crf.start_transitions, "transitions": crf.transitions, "end": crf.end_transitions}
    plain = {k: _tuples(v.tolist()) for k, v in scores.items()}
    masks = [_tuples(getattr(decoder, k).tolist()) for k in ("allowed_start", "allowed_step", "allowed_end")]
    return Decoding(kind, tuple(decoder.labels), str(decoder.constraints), *masks, **plain)


def _tuples(value: Any) -> Any:
    """JSON lists -> nested tuples (the dataclass is frozen and hashable)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
