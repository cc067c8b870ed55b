"""Tagging an endless stream of input lines in bounded memory.

Lines are taken ``window`` at a time (default 1024). Inside a window the
good lines go through :meth:`Tagger.tag_outcomes` (image features, cache
first; errors per line; tokenizing; length-sorted batches), and are written
back in input order. A line that fails at any stage (parse, image, tokenizer) becomes a
:class:`BadLine` at its place; with ``strict`` the run stops at the first one
(:class:`StrictStop`), after the good lines before it were handed on. Good
lines are never lost, duplicated or reordered. A line the model scores as NaN
(broken weights) is a bad line too: its output would not be JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mscmt_cli.data.images import ImageResolver, MissingImage
from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.inputs import BadLine, TagInput
from mscmt_cli.tagging.tagger import NOT_FINITE, Tagger, TagResult

__all__ = ["NOT_FINITE", "StrictStop", "Tally", "tag_stream", "tag_window"]

Outcome = tuple[TagInput, TagResult] | BadLine


@dataclass
class Tally:
    """What a run did."""

    tagged: int = 0
    bad: int = 0


class StrictStop(Exception):
    """Raised by :func:`tag_stream` under ``strict`` at the first bad line."""

    def __init__(self, bad: BadLine) -> None:
        super().__init__(bad.message)
        self.bad = bad


def image_ref(tagger: Tagger, item: TagInput, resolve: Callable[[str], str | MissingImage]) -> Any:
    """What the feature store gets for a line: a file (or why not) for pixel models; for caption
    models the line's ``caption``, else its ``image`` as an id for the captions file, else (with a
    captioner) its image file, to be captioned."""
    if tagger.images.encoder.input_kind == "caption":
        if item.caption is None and item.image and tagger.images.needs_captioner(item.image):
            return resolve(item.image)
        return tagger.images.input_for(item.image, item.caption)
    return resolve(item.image) if item.image else None


def context_ref(tagger: Tagger, item: TagInput, resolve: Callable[[str], str | MissingImage]) -> Any:
    """What the context reader gets for a line of a caption-context model: the line's ``caption``, else
    its ``image`` as an id for the captions file, else (with a captioner) its image file, to be captioned."""
    reader = tagger.context
    if reader is None:
        return None
    if item.caption is None and item.image and reader.needs_captioner(item.image):
        return resolve(item.image)
    return reader.input_for(item.image, item.caption)


def tag_window(tagger: Tagger, items: list[TagInput | BadLine], resolve: Callable[[str], str | MissingImage]) -> list[Outcome]:
    """Tag the good lines of one window; outcomes are in input order."""
    good = [item for item in items if isinstance(item, TagInput)]
    contexts = [context_ref(tagger, item, resolve) for item in good] if tagger.context is not None else None
    tagged = iter(tagger.tag_outcomes([item.doc for item in good], [image_ref(tagger, item, resolve) for item in good], contexts))
    outcomes: list[Outcome] = []
    for item in items:
        if isinstance(item, BadLine):
            outcomes.append(item)
            continue
        outcome = next(tagged)
        outcomes.append(BadLine(item.line, outcome) if isinstance(outcome, str) else (item, outcome))
    return outcomes


def _windows(items: Iterable[TagInput | BadLine], size: int) -> Iterator[list[TagInput | BadLine]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def tag_stream(
    tagger: Tagger,
    items: Iterable[TagInput | BadLine],
    *,
    on_result: Callable[[TagInput, TagResult], None],
    on_bad: Callable[[BadLine], None],
    images_dir: Path | None = None,
    window: int = 1024,
    strict: bool = False,
    on_window: Callable[[Tally], None] | None = None,
) -> Tally:
    """Tag ``items`` window by window, calling ``on_result``/``on_bad`` in input order."""
    if window < 1:
        raise MscmtError(f"window must be at least 1, got {window}")
    tally = Tally()
    resolve = ImageResolver(images_dir).resolve
    for chunk in _windows(items, window):
        for outcome in tag_window(tagger, chunk, resolve):
            if isinstance(outcome, BadLine):
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
