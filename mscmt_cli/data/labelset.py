"""The label set of a training run, taken from its training split.

The types are those of the training tweets, sorted, unless ``--labels``
fixes them (then in the order given, and a training tag of another type is
refused with its file and line), or the corpus has a preferred order (the
bundled corpora keep ``PER, LOC, ORG, OTHER``, so their runs are those of
before). Types of the validation and test splits that training never saw are
named in one warning with their counts: they are scored as missed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from mscmt_cli.data.conll import Tweet
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import label_set, tag_type


def type_counts(tweets: Sequence[Tweet]) -> Counter[str]:
    """Entities per type (counted at their ``B-`` tags, and at an ``I-`` that begins one)."""
    counts: Counter[str] = Counter()
    for tweet in tweets:
        previous = "O"
        for tag in tweet.tags:
            etype = tag_type(tag)
            if etype and (tag.startswith("B-") or tag_type(previous) != etype):
                counts[etype] += 1
            previous = tag
    return counts


def parse_types(value: str | None) -> tuple[str, ...] | None:
    """``"PER,LOC"`` -> ``("PER", "LOC")``; None stays None; an empty or repeated type is refused."""
    if value is None:
        return None
    types = tuple(t.strip() for t in value.split(","))
    if not types or any(not t for t in types):
        raise MscmtError(f"--labels {value!r}: give comma-separated entity types, e.g. PER,LOC,ORG")
    repeated = sorted({t for t in types if types.count(t) > 1})
    if repeated:
        raise MscmtError(f"--labels {value!r}: type {repeated[0]!r} given twice")
    return types


def training_labels(train: Sequence[Tweet], fixed: tuple[str, ...] | None, preferred: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The label set learnt from ``train``: ``fixed`` types as given, else the training types (``preferred`` first, then sorted)."""
    if fixed is not None:
        allowed = set(fixed)
        for tweet in train:
            for k, tag in enumerate(tweet.tags):
                if tag != "O" and tag_type(tag) not in allowed:
                    raise MscmtError(
                        f"{tweet_line(tweet, k)}: tag {tag!r} is not in --labels ({', '.join(fixed)}); "
                        f"add its type or map it with --map {tag_type(tag)}=TYPE"
                    )
        return label_set(fixed)
    seen = set(type_counts(train))
    if not seen:
        raise MscmtError("the training split has no entity at all: nothing to learn (is the label column right?)")
    order = [t for t in preferred if t in seen] + sorted(seen - set(preferred))
    return label_set(order)


def tweet_line(tweet: Tweet, token: int) -> str:
    """``file:line`` of a tweet's token when the record gives one line per token (CoNLL), else the record's own place."""
    path, sep, line = tweet.source.rpartition(":")
    if sep and line.isdigit() and tweet.token_lines:
        return f"{path}:{tweet.token_lines[token]}"
    return tweet.source or tweet.image_id


def unseen_types(labels: Sequence[str], splits: Mapping[str, Sequence[Tweet]]) -> str | None:
    """One warning naming the types of ``splits`` the label set lacks, with their entity counts, or None."""
    known = {tag_type(label) for label in labels}
    parts = []
    for name, tweets in splits.items():
        missing = {t: n for t, n in sorted(type_counts(tweets).items()) if t not in known}
        if missing:
            parts.append(f"{name} " + ", ".join(f"{t} ({n})" for t, n in missing.items()))
    if not parts:
        return None
    return "types the label set lacks, scored as missed: " + "; ".join(parts)
