"""Class-balanced sampling weights (the paper's WeightedRandomSampler).

The rule, per tweet: let ``classes(t)`` be the set of entity types in tweet
``t`` (``{"NONE"}`` for a tweet without entities) and ``n(c)`` the number of
training tweets whose set contains ``c``. The tweet's weight is
``max(1 / n(c) for c in classes(t))``: a tweet is drawn as often as its
rarest class deserves, so every class, entity-free tweets included, is drawn
about equally often per epoch. Tweets are drawn with replacement, as many per
epoch as the training split holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from seqeval.metrics.sequence_labeling import get_entities

NO_ENTITY = "NONE"


def tweet_classes(tags: Sequence[str]) -> frozenset[str]:
    """Entity types present in one tweet's tags, or ``{"NONE"}``."""
    types = frozenset(etype for etype, _, _ in get_entities(list(tags)))
    return types or frozenset({NO_ENTITY})


def balanced_weights(tag_sequences: Sequence[Sequence[str]]) -> list[float]:
    """Per-tweet sampling weights from inverse class frequencies (rule above)."""
    classes = [tweet_classes(tags) for tags in tag_sequences]
    counts = Counter(c for cs in classes for c in cs)
    return [max(1.0 / counts[c] for c in cs) for cs in classes]
