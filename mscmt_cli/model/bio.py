"""Which tag follows which: the transition constraints of a BIO label set.

A BIO label set (``O``, ``B-X``, ``I-X``) forbids three kinds of step, the
ones no BIO-labelled corpus could hold:

* start -> ``I-X`` (a tweet cannot open inside an entity),
* ``O`` -> ``I-X``,
* ``B-Y`` / ``I-Y`` -> ``I-X`` for ``X != Y`` (an entity cannot change type).

Every other step is allowed, and any tag may end a tweet. The decoders
(``plugins/decoders.py``) turn this table into masks on their transition
scores, so no decoded path ever takes a forbidden step.

Only BIO has a table. Other schemes are refused by name rather than guessed:
a BIOES set (``S-X``, ``E-X``) would need its own end constraints (``B-X``
cannot end a tweet), and an IO set (``I-X`` with no ``B-X``) allows every
step, so reading it as BIO would forbid its entities outright. mscmt's reader
only produces BIO (:func:`mscmt_cli.labels.normalise_label`); a model with
another label set can still be built with ``constraints="none"``.

Gold files are not always valid: TWITTER-2015 opens 186 train, 53 valid and
135 test spans with ``I-X`` after ``O`` or another type. seqeval and
conlleval read such an ``I-X`` as the start of a span, i.e. as ``B-X``;
:func:`canonical_tags` writes the same spans that way (used by the CRF's
constrained likelihood, which gives an invalid path no probability at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mscmt_cli.errors import MscmtError

CONSTRAINTS: tuple[str, ...] = ("bio", "none")
#: The score of a forbidden step in forward-backward and the CRF likelihood (Viterbi uses ``-inf``): the torch
#: decoders (``plugins/decoders.py``) and the numpy ones (:mod:`mscmt_cli.backends.decoding`) both read it here.
FORBIDDEN = -1.0e4


@dataclass(frozen=True)
class TransitionTable:
    """Allowed steps of a label set of ``C`` labels, as plain booleans.

    Attributes:
        start: ``[c]`` True when a tweet may open with label ``c``.
        step: ``[a][b]`` True when label ``b`` may follow label ``a``.
        end: ``[c]`` True when a tweet may close with label ``c``.
    """

    start: tuple[bool, ...]
    step: tuple[tuple[bool, ...], ...]
    end: tuple[bool, ...]

    @property
    def unconstrained(self) -> bool:
        return all(self.start) and all(self.end) and all(all(row) for row in self.step)


def _split(label: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``; anything else is refused by name."""
    if label == "O":
        return "O", ""
    prefix, sep, etype = label.partition("-")
    if prefix in ("B", "I") and sep and etype:
        return prefix, etype
    if prefix in ("E", "S", "L", "U") and sep and etype:
        raise MscmtError(
            f"label {label!r} is not BIO (a BIOES/BILOU label set): only BIO label sets have transition "
            "constraints; build the decoder with constraints='none'"
        )
    raise MscmtError(
        f"label {label!r} is not BIO (expected 'O', 'B-TYPE' or 'I-TYPE'); build the decoder with constraints='none' for another label set"
    )


def check_bio(labels: Sequence[str]) -> list[tuple[str, str]]:
    """Every label split into ``(prefix, type)``; refuses non-BIO labels and IO sets."""
    parts = [_split(label) for label in labels]
    if len(set(labels)) != len(labels):
        raise MscmtError(f"label set repeats a label: {list(labels)}")
    begins = {etype for prefix, etype in parts if prefix == "B"}
    for label, (prefix, etype) in zip(labels, parts):
        if prefix == "I" and etype not in begins:
            raise MscmtError(
                f"label {label!r} has no 'B-{etype}' in the label set (an IO label set?): only BIO label sets "
                "have transition constraints; build the decoder with constraints='none'"
            )
    return parts


def allowed(prev: tuple[str, str] | None, tag: tuple[str, str]) -> bool:
    """Whether split label ``tag`` may follow split label ``prev`` (None: the tweet's start)."""
    prefix, etype = tag
    if prefix != "I":
        return True
    return prev is not None and prev[0] in ("B", "I") and prev[1] == etype


def bio_table(labels: Sequence[str]) -> TransitionTable:
    """The allowed steps of a BIO label set (see the module docstring)."""
    parts = check_bio(labels)
    return TransitionTable(
        start=tuple(allowed(None, t) for t in parts),
        step=tuple(tuple(allowed(a, b) for b in parts) for a in parts),
        end=tuple(True for _ in parts),
    )


def open_table(num_tags: int) -> TransitionTable:
    """Every step allowed (``constraints="none"``)."""
    return TransitionTable((True,) * num_tags, ((True,) * num_tags,) * num_tags, (True,) * num_tags)


def transition_table(constraints: str, num_tags: int, labels: Sequence[str] | None) -> TransitionTable:
    """The table a decoder applies: ``"bio"`` over ``labels`` (open when no label names are known), or ``"none"``."""
    if constraints not in CONSTRAINTS:
        raise MscmtError(f"decoder constraints {constraints!r}: expected one of {', '.join(CONSTRAINTS)}")
    if constraints == "none" or labels is None:
        return open_table(num_tags)
    return bio_table(labels)


def invalid_steps(tags: Sequence[str]) -> list[int]:
    """Positions ``t`` where ``tags[t]`` is an ``I-X`` that does not continue an ``X`` entity."""
    out = []
    prev: tuple[str, str] | None = None
    for t, tag in enumerate(tags):
        part = _split(tag)
        if not allowed(prev, part):
            out.append(t)
        prev = part
    return out


def canonical_tags(tags: Sequence[str]) -> list[str]:
    """The same spans as seqeval reads them, written validly: an ``I-X`` that opens a span becomes ``B-X``."""
    out = list(tags)
    for t in invalid_steps(tags):
        out[t] = "B-" + out[t][2:]
    return out


def begin_index(labels: Sequence[str]) -> list[int]:
    """For each label id, the id of the label that opens its span (``I-X`` -> ``B-X``; others map to themselves)."""
    index = {label: i for i, label in enumerate(labels)}
    return [index.get("B-" + label[2:], i) if label.startswith("I-") else i for i, label in enumerate(labels)]
