"""Tagging schemes read on input, all converted to BIO (what every model predicts).

``bio``    ``B-`` begins an entity, ``I-`` continues it. An ``I-`` after ``O`` is
           kept as it is (conlleval and seqeval read it as a beginning; TWITTER-2015
           has such tags and its published counts read them so).
``iob1``   ``I-`` begins and continues; ``B-`` only begins an entity that directly
           follows one of the same type. Converted: an ``I-`` that does not continue
           an entity of its type becomes ``B-``.
``bioes``  ``B-`` begin, ``I-`` inside, ``E-`` end, ``S-`` single-token entity
           (BILOU's ``L-`` and ``U-`` are read as ``E-`` and ``S-``). Converted:
           ``E-`` -> ``I-``, ``S-`` -> ``B-``.

:func:`detect` names the scheme of a corpus when its prefixes say it
unambiguously; otherwise BIO.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mscmt_cli.labels import split_tag

SCHEMES: tuple[str, ...] = ("auto", "bio", "iob1", "bioes")
#: The prefixes each scheme allows (``O`` aside).
PREFIXES: dict[str, frozenset[str]] = {
    "bio": frozenset("BI"),
    "iob1": frozenset("BI"),
    "bioes": frozenset("BIESLU"),
}
NAMES: dict[str, str] = {"bio": "BIO", "iob1": "IOB1", "bioes": "BIOES/BILOU"}


class SchemeError(ValueError):
    """A tag sequence that is not valid in its scheme; ``index`` is the offending token (0-based)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def detect(sequences: Iterable[Sequence[str]]) -> str:
    """``bioes`` when an ``E-``/``S-``/``L-``/``U-`` prefix occurs; ``iob1`` when tags begin entities with ``I-``
    and no ``B-`` ever begins one after ``O`` or at the start; else ``bio``."""
    prefixes: set[str] = set()
    b_begins, i_begins = False, False
    for tags in sequences:
        previous = "O"
        for tag in tags:
            parts = split_tag(tag)
            prefix = parts[0] if parts else ""
            prefixes.add(prefix)
            after_outside = previous == "O"
            b_begins |= prefix == "B" and after_outside
            i_begins |= prefix == "I" and after_outside
            previous = tag
    if prefixes & set("ESLU"):
        return "bioes"
    return "iob1" if i_begins and not b_begins else "bio"


def _parts(tags: Sequence[str], scheme: str) -> list[tuple[str, str]]:
    allowed = PREFIXES[scheme]
    out = []
    for i, tag in enumerate(tags):
        parts = split_tag(tag)
        if parts is None:
            raise SchemeError(i, f"tag {tag!r} is not O nor PREFIX-TYPE" + (" (empty type)" if tag.endswith("-") else ""))
        if parts[0] != "O" and parts[0] not in allowed:
            raise SchemeError(i, f"tag {tag!r}: prefix {parts[0]!r} is not one of {NAMES[scheme]}'s ({', '.join(sorted(allowed))})")
        out.append(parts)
    return out


def to_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """``tags`` in ``scheme`` as BIO (raises :class:`SchemeError` naming the first bad tag)."""
    parts = _parts(tags, scheme)
    if scheme == "bio":
        return list(tags)
    if scheme == "iob1":
        return _iob1_to_bio(parts)
    return _bioes_to_bio(parts)


def _iob1_to_bio(parts: list[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    previous = ("O", "")
    for prefix, etype in parts:
        if prefix == "O":
            out.append("O")
        else:
            continues = prefix == "I" and previous[0] != "O" and previous[1] == etype
            out.append(f"{'I' if continues else 'B'}-{etype}")
        previous = (prefix, etype)
    return out


def _bioes_to_bio(parts: list[tuple[str, str]]) -> list[str]:
    rename = {"B": "B", "I": "I", "E": "I", "L": "I", "S": "B", "U": "B"}
    return ["O" if prefix == "O" else f"{rename[prefix]}-{etype}" for prefix, etype in parts]


def from_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """BIO ``tags`` (every entity begun by ``B-``) written in ``scheme``: the inverse of :func:`to_bio`."""
    if scheme == "bio":
        return list(tags)
    out: list[str] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            out.append(tag)
            continue
        prefix, _, etype = tag.partition("-")
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        ends = nxt != f"I-{etype}"
        if scheme == "bioes":
            out.append(f"{('S' if ends else 'B') if prefix == 'B' else ('E' if ends else 'I')}-{etype}")
        else:
            follows_same = i > 0 and tags[i - 1] != "O" and tags[i - 1].partition("-")[2] == etype
            out.append(f"{'B' if prefix == 'B' and follows_same else 'I'}-{etype}")
    return out
