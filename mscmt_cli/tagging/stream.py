"""Tagging an endless stream of input lines in bounded memory.

Lines are taken ``window`` at a time (default 1024). Inside a window the
good lines go through the tagger's processor (images, captions) and
:meth:`Tagger.tag_outcomes` (image features, cache first; errors per line;
tokenizing; length-sorted batches), and are written
back in input order. A line that fails at any stage (parse, image, tokenizer) becomes a
:class:`BadRecord` at its place; with ``strict`` the run stops at the first one
(:class:`StrictStop`), after the good lines before it were handed on. Good
lines are never lost, duplicated or reordered. A line the model scores as NaN
(broken weights) is a bad line too: its output would not be JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.inputs import BadRecord, InputRecord
from mscmt_cli.tagging.processor import ImageName, TweetInput
from mscmt_cli.tagging.tagger import NOT_FINITE, Tagger, TagResult

__all__ = ["NOT_FINITE", "StrictStop", "Tally", "tag_stream", "tag_window"]

Outcome = tuple[InputRecord, TagResult] | BadRecord


@dataclass
class Tally:
    """What a run did."""

    tagged: int = 0
    bad: int = 0


class StrictStop(Exception):
    """Raised by :func:`tag_stream` under ``strict`` at the first bad line."""

    def __init__(self, bad: BadRecord) -> None:
        super().__init__(bad.message)
        self.bad = bad


def tweet_input(item: InputRecord) -> TweetInput:
    """A parsed input line as the processor's record (its ``image`` a name: a file, and the key of its caption)."""
    return TweetInput(item.doc, ImageName(item.image) if item.image else None, item.caption, item.line)


def tag_window(tagger: Tagger, items: list[InputRecord | BadRecord]) -> list[Outcome]:
    """Tag the good lines of one window through the tagger's processor; outcomes are in input order."""
    good = [item for item in items if isinstance(item, InputRecord)]
    tagged = iter(tagger.tag_outcomes(tagger.processor.process([tweet_input(item) for item in good])))
    outcomes: list[Outcome] = []
    for item in items:
        if isinstance(item, BadRecord):
            outcomes.append(item)
            continue
        outcome = next(tagged)
        outcomes.append(outcome if isinstance(outcome, BadRecord) else (item, outcome))
    return outcomes


def _windows(items: Iterable[InputRecord | BadRecord], size: int) -> Iterator[list[InputRecord | BadRecord]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def tag_stream(
    tagger: Tagger,
    items: Iterable[InputRecord | BadRecord],
    *,
    on_result: Callable[[InputRecord, TagResult], None],
    on_bad: Callable[[BadRecord], None],
    window: int = 1024,
    strict: bool = False,
    on_window: Callable[[Tally], None] | None = None,
) -> Tally:
    """Tag ``items`` window by window, calling ``on_result``/``on_bad`` in input order."""
    if window < 1:
        raise MscmtError(f"window must be at least 1, got {window}")
    tally = Tally()
    for chunk in _windows(items, window):
        for outcome in tag_window(tagger, chunk):
            if isinstance(outcome, BadRecord):
                tally.bad += 1
                if strict:
                    raise StrictStop(outcome)
                on_bad(outcome)
            else:
                tally.tagged += 1
                on_result(*outcome)
        if on_window is not None:
            on_window(tally)
    return tally
