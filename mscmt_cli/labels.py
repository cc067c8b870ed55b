"""The one label set shared by every corpus: ``O`` and ``{B,I}-{PER,LOC,ORG,OTHER}``."""

from __future__ import annotations

ENTITY_TYPES: tuple[str, ...] = ("PER", "LOC", "ORG", "OTHER")
LABELS: tuple[str, ...] = ("O",) + tuple(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I"))

# TWITTER-2017 calls the fourth class MISC; both name the same thing.
TYPE_ALIASES: dict[str, str] = {"MISC": "OTHER"}


def normalise_label(label: str) -> str | None:
    """Map a raw corpus label to the shared label set.

    Returns ``None`` when the label is not a known tag (the caller reports it
    with its file and line). ``B-MISC`` becomes ``B-OTHER``.
    """
    if label == "O":
        return label
    prefix, sep, etype = label.partition("-")
    if not sep or prefix not in ("B", "I"):
        return None
    etype = TYPE_ALIASES.get(etype, etype)
    return f"{prefix}-{etype}" if etype in ENTITY_TYPES else None


def label_to_id(labels: tuple[str, ...] = LABELS) -> dict[str, int]:
    """Index of each label in ``labels``."""
    return {label: i for i, label in enumerate(labels)}
