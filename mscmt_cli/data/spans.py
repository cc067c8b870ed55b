"""Character-offset entities to BIO tags over a tweet's tokens.

An entity is ``{"start": s, "end": e, "type": T}`` with ``text[s:e]`` its
characters (``end`` exclusive, Python string indices: the convention of
``mscmt tag``'s output, :mod:`mscmt_cli.data.entities`). It must begin
where a token begins and end where a token ends, lie within the text and
not share a token with another entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mscmt_cli.data.doc import InputError


def _entity(k: int, entity: Any, length: int) -> tuple[int, int, str]:
    if not isinstance(entity, dict):
        raise InputError(f"entity {k} is not an object")
    start, end, etype = entity.get("start"), entity.get("end"), entity.get("type")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise InputError(f"entity {k}: 'start' and 'end' must be integers")
    assert isinstance(start, int) and isinstance(end, int)
    if not isinstance(etype, str) or not etype.strip():
        raise InputError(f"entity {k}: 'type' must be a non-empty string")
    if not 0 <= start < end <= length:
        raise InputError(f"entity {k} ({start}-{end}) is empty or runs past the text ({length} characters)")
    return start, end, etype


def spans_to_tags(text: str, offsets: Sequence[tuple[int, int]], entities: Any) -> list[str]:
    """BIO tags of the tokens at ``offsets`` in ``text`` for ``entities`` (raises :class:`InputError` naming the entity)."""
    if not isinstance(entities, list):
        raise InputError(f"'entities' must be a list, got {type(entities).__name__}")
    starts = {s: i for i, (s, _) in enumerate(offsets)}
    ends = {e: i for i, (_, e) in enumerate(offsets)}
    tags = ["O"] * len(offsets)
    owner: dict[int, int] = {}
    for k, raw in enumerate(entities):
        start, end, etype = _entity(k, raw, len(text))
        first, last = starts.get(start), ends.get(end)
        if first is None or last is None or last < first:
            raise InputError(f"entity {k} ({start}-{end} {text[start:end][:30]!r}) does not begin and end on token boundaries")
        for i in range(first, last + 1):
            if i in owner:
                raise InputError(f"entities {owner[i]} and {k} overlap (token {i} {text[offsets[i][0] : offsets[i][1]][:30]!r})")
            owner[i] = k
            tags[i] = f"{'B' if i == first else 'I'}-{etype}"
    return tags
