"""Entity-level scores with seqeval in its default, conlleval-compatible mode.

A span counts only when its boundaries and type both match; an ``I-`` tag
without a preceding ``B-`` starts a span (conlleval's reading), which is how
the published test supports of TWITTER-2015/2017 are counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import classification_report

from mscmt_cli.labels import ENTITY_TYPES


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], types: Sequence[str] = ENTITY_TYPES) -> dict:
    """Per-type precision/recall/F1/support, micro and weighted averages.

    Returns ``{"micro": {...}, "weighted": {...}, "types": {"PER": {...}, ...}}``
    with precision, recall and f1 as fractions in [0, 1]; ``support`` is the
    number of gold spans. Every type of ``types`` (the model's) is listed, with
    zeros when neither side has it, then any other type found in gold or predictions.
    """
    with warnings.catch_warnings():  # numpy warns on empty averages when nothing was predicted
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report([list(g) for g in gold], [list(p) for p in predicted], output_dict=True, zero_division=0)

    def pick(row: dict) -> dict:
        return {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }

    listed = {t: pick(report[t]) if t in report else {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for t in types}
    extra = {t: pick(row) for t, row in report.items() if t not in listed and not t.endswith("avg")}
    return {"micro": pick(report["micro avg"]), "weighted": pick(report["weighted avg"]), "types": {**listed, **extra}}
