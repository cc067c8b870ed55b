"""From per-token tags and probabilities to entity records with character offsets.

Conventions (shared by ``mscmt tag``, the Python API and the HTTP service):

* Tags are BIO (``B-PER``, ``I-PER``, ``O``). An ``I-X`` that does not continue
  an entity of type ``X`` starts a new one (conlleval / seqeval behaviour), so
  every tag sequence decodes to well-formed spans.
* ``token_start``/``token_end`` are token indices, ``token_end`` exclusive
  (``tokens[token_start:token_end]`` are the entity's tokens).
* ``start``/``end`` are character offsets, ``end`` exclusive, counted in
  Unicode code points (Python ``str`` indices, not UTF-16 units or bytes):
  ``text[start:end] == entity["text"]``.
* ``score`` is the mean over the entity's tokens of the probability of the tag
  that was predicted for the token (CRF forward-backward marginal, or the
  softmax probability), a number in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Entity:
    """One predicted entity (fields as in the JSON output)."""

    text: str
    type: str
    start: int
    end: int
    token_start: int
    token_end: int
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, token_start, token_end)`` of every entity in a BIO tag sequence (end exclusive)."""
    spans: list[tuple[str, int, int]] = []
    current: tuple[str, int] | None = None
    for i, tag in enumerate(tags):
        prefix, _, etype = tag.partition("-")
        continues = prefix == "I" and current is not None and current[0] == etype
        if current is not None and not continues:
            spans.append((current[0], current[1], i))
            current = None
        if prefix in ("B", "I") and etype and not continues:
            current = (etype, i)
    if current is not None:
        spans.append((current[0], current[1], len(tags)))
    return spans


def joined_offsets(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The tokens joined by single spaces, and each token's offsets in that string.

    Used for input that arrives as tokens without its original text.
    """
    offsets: list[tuple[int, int]] = []
    cursor = 0
    for token in tokens:
        offsets.append((cursor, cursor + len(token)))
        cursor += len(token) + 1
    return " ".join(tokens), offsets


def extract_entities(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str], tag_probs: Sequence[float]) -> list[Entity]:
    """Entity records of one tweet.

    Args:
        text: the string the offsets refer to.
        offsets: ``(start, end)`` of each token in ``text``.
        tags: the predicted tag of each token.
        tag_probs: the probability of each token's predicted tag.
    """
    if not len(offsets) == len(tags) == len(tag_probs):
        raise ValueError(f"{len(offsets)} offsets, {len(tags)} tags and {len(tag_probs)} probabilities: lengths differ")
    out = []
    for etype, first, last in bio_spans(tags):
        start, end = offsets[first][0], offsets[last - 1][1]
        score = sum(tag_probs[first:last]) / (last - first)
        out.append(Entity(text[start:end], etype, start, end, first, last, round(float(score), 6)))
    return out
