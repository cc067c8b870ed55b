"""Tags and label sets over any entity types.

A tag is ``O`` or ``<prefix>-<type>`` (``B-person``, ``I-geo-loc``); the type
is everything after the first dash and may itself hold dashes. A model's label
set is ``O`` then ``B-``/``I-`` of each of its types, in the types' order
(:func:`label_set`); the types come from the training data
(:mod:`mscmt_cli.data.labelset`) and are saved in the model's ``config.json``.

:data:`ENTITY_TYPES` and :data:`LABELS` are the label set of the bundled
corpora (TWITTER-2015/2017) and of every model trained before the label set
came from the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: The types of the bundled corpora, in the order their runs have always used.
ENTITY_TYPES: tuple[str, ...] = ("PER", "LOC", "ORG", "OTHER")


def label_set(types: Iterable[str]) -> tuple[str, ...]:
    """``O`` then ``B-T``, ``I-T`` for each type ``T`` in order."""
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))


LABELS: tuple[str, ...] = label_set(ENTITY_TYPES)


def split_tag(tag: str) -> tuple[str, str] | None:
    """``"B-geo-loc"`` -> ``("B", "geo-loc")``; ``"O"`` -> ``("O", "")``; None when the tag has no prefix or an empty type."""
    if tag == "O":
        return "O", ""
    prefix, sep, etype = tag.partition("-")
    if not sep or not prefix or not etype.strip() or etype != etype.strip():
        return None
    return prefix, etype


def tag_type(tag: str) -> str:
    """The entity type of a tag (``""`` for ``O``)."""
    return tag.partition("-")[2]


def types_of(labels: Sequence[str]) -> tuple[str, ...]:
    """The entity types of a label set, in the order they first appear."""
    return tuple(dict.fromkeys(tag_type(label) for label in labels if label != "O"))


def map_tag(tag: str, type_map: dict[str, str]) -> str:
    """``tag`` with its type renamed by ``type_map`` (``B-MISC`` -> ``B-OTHER`` under ``{"MISC": "OTHER"}``)."""
    if tag == "O":
        return tag
    prefix, _, etype = tag.partition("-")
    return f"{prefix}-{type_map.get(etype, etype)}"


def label_to_id(labels: tuple[str, ...] = LABELS) -> dict[str, int]:
    """Index of each label in ``labels``."""
    return {label: i for i, label in enumerate(labels)}
