"""Streaming reader of ``mscmt tag`` input: JSON Lines or an IMGID CoNLL file.

Lines are read one at a time as bytes (split on ``\\n`` only, so a U+2028
inside a JSON string is not a line break), and every line yields either a
:class:`InputRecord` or a :class:`BadRecord` carrying its 1-based line number.
Blank lines are skipped silently. Nothing is held beyond the current line
(CoNLL: the current block), and no line is held beyond :data:`MAX_LINE_BYTES`:
a longer line is read past in pieces and reported as a bad line.

JSON Lines: each line is an object with ``text`` (raw tweet) and/or ``tokens``
(list of strings), optional ``image`` (a file name under ``--images`` or a
path) and ``caption`` (for caption image encoders), and any other fields,
which are passed through untouched. ``NaN``, ``Infinity`` and numbers out of a
double's range (``1e999``) are refused: they are not JSON, and the line is
written back out.

CoNLL (detected when the first non-blank line starts with ``IMGID:``): blocks
of ``IMGID:<id>`` then one ``token`` or ``token<TAB>label`` line per token. A
block becomes ``{"image": id, "tokens": [...]}``, plus ``"gold"`` (the labels)
when every token line has one; its line number is that of its IMGID line.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from mscmt_cli.data.conll import IMGID_PREFIX
from mscmt_cli.data.doc import Doc, InputError, make_doc
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import split_tag
from mscmt_cli.strict_json import loads as strict_loads

IMGID = IMGID_PREFIX.encode()
#: Longest input line, in bytes (newline excluded). A tweet is at most a few KB even with a
#: ``tokens`` list and pass-through fields; a 50 MB line ended in MemoryError, losing the run.
MAX_LINE_BYTES = 2**20
_SKIP_PIECE = 2**16  # bytes read at a time past the limit of an over-long line
#: Deepest nesting of a line's JSON. Python's parser and writer both stop near 1,000 levels, at a depth
#: that depends on the call stack: a fixed limit makes "read but not writable back" impossible.
MAX_NESTING = 100


class LineSource(Protocol):
    """What the reader needs of a stream: ``readline(size)`` (binary files, ``sys.stdin.buffer``, ``io.BytesIO``)."""

    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class LongLine:
    """A line over the limit, read past without being kept: its size in bytes (newline excluded)."""

    size: int
    limit: int

    def message(self) -> str:
        return f"line of {self.size} bytes is over the limit of {self.limit} bytes; skipped"


def bounded_lines(stream: LineSource, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | LongLine]:
    """The lines of a binary stream (anything with ``readline(size)``), each at most ``limit`` bytes
    plus its newline; a longer one is read past in pieces and yielded as a :class:`LongLine`."""
    if limit < 1:
        raise MscmtError(f"max_line_bytes must be at least 1, got {limit}")
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)  # no newline in it: read past the rest of the line, keeping nothing
        while piece := stream.readline(_SKIP_PIECE):
            if piece.endswith(b"\n"):
                size += len(piece) - 1
                break
            size += len(piece)
        yield LongLine(size, limit)


@dataclass
class InputRecord:
    """A good input line of ``mscmt tag`` (its JSON object, the tweet, the image name and caption it gives); a bad one is a :class:`BadRecord`.

    Attributes:
        line: 1-based line number in the input.
        record: the object written back out (with ``tokens``/``tags``/``entities`` added).
        doc: the tweet to tag.
        image: the image reference as given (file name or path), or None.
        caption: the caption (caption image encoders), or None.
    """

    line: int
    record: dict[str, Any]
    doc: Doc
    image: str | None = None
    caption: str | None = None


@dataclass
class BadRecord:
    """A record that is skipped (``mscmt tag``, the service) or stops the run (training, evaluation), with why.

    ``line``: its line in the input (or its index in a batch); ``where`` (``file:line``), when known, heads
    :meth:`located`, the one-line message of a run that stops at it.
    """

    line: int
    message: str
    where: str | None = None

    def located(self) -> str:
        """``[file:line: ]message``."""
        return f"{self.where}: {self.message}" if self.where else self.message


def optional_str(obj: dict[str, Any], key: str) -> str | None:
    """``obj[key]`` when it is a string or absent/null (raises :class:`InputError` otherwise)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def nesting(value: Any) -> int:
    """How deep arrays and objects nest in a decoded JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_object(line: int, obj: Any) -> InputRecord:
    """Validate one decoded JSON value (raises :class:`InputError`)."""
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(obj), "a number")
        raise InputError(f"expected a JSON object, got {kind}")
    if nesting(obj) > MAX_NESTING:
        raise InputError(f"JSON nested deeper than {MAX_NESTING} levels")
    doc = make_doc(obj.get("text"), obj.get("tokens"))
    image = optional_str(obj, "image")
    if image is not None and not image.strip():
        raise InputError("'image' is an empty string")
    return InputRecord(line, obj, doc, image, optional_str(obj, "caption"))


def _decode(raw: bytes, line: int) -> str:
    if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1} of the line)") from None


def parse_json_line(line: int, raw: bytes) -> InputRecord | BadRecord | None:
    """One JSON Lines line: a :class:`InputRecord`, a :class:`BadRecord`, or None when blank."""
    try:
        text = _decode(raw.rstrip(b"\r\n"), line)
        if not text.strip():
            return None
        try:
            obj = strict_loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"invalid JSON: {err.msg} at column {err.colno}") from None
        except (ValueError, RecursionError) as err:
            raise InputError(f"invalid JSON: {str(err)[:80] or type(err).__name__}") from None
        return parse_object(line, obj)
    except InputError as err:
        return BadRecord(line, str(err))


def iter_jsonl(lines: Iterable[bytes | LongLine], first_line: int = 1) -> Iterator[InputRecord | BadRecord]:
    """Parse JSON Lines, one result per non-blank line (an over-long line is a bad line)."""
    for number, raw in enumerate(lines, start=first_line):
        item = BadRecord(number, raw.message()) if isinstance(raw, LongLine) else parse_json_line(number, raw)
        if item is not None:
            yield item


@dataclass
class _Block:
    line: int
    image_id: str
    tokens: list[str]
    tags: list[str | None]
    error: str | None = None

    def finish(self) -> InputRecord | BadRecord:
        if self.error is not None:
            return BadRecord(self.line, self.error)
        record: dict[str, Any] = {"image": self.image_id, "tokens": self.tokens}
        if self.tags and all(t is not None for t in self.tags):
            record["gold"] = self.tags
        try:
            return InputRecord(self.line, record, make_doc(tokens=self.tokens), self.image_id)
        except InputError as err:
            return BadRecord(self.line, str(err))


def _token_line(block: _Block, number: int, line: str) -> None:
    token, sep, label = line.rpartition("\t")
    if not sep:
        token, tag = line, None
    else:
        tag = label.strip() if split_tag(label.strip()) is not None else None
        if tag is None and block.error is None:
            block.error = f"line {number}: unknown label {label.strip()[:20]!r} (expected O or PREFIX-TYPE)"
    block.tokens.append(token)
    block.tags.append(tag)


def iter_conll(lines: Iterable[bytes | LongLine], first_line: int = 1) -> Iterator[InputRecord | BadRecord]:
    """Parse IMGID CoNLL blocks, one result per block (errors name the block's IMGID line)."""
    block: _Block | None = None
    orphan = False  # inside a run of token lines before any IMGID line
    for number, raw in enumerate(lines, start=first_line):
        try:
            if isinstance(raw, LongLine):
                raise InputError(raw.message())
            line = _decode(raw.rstrip(b"\r\n"), number)
        except InputError as err:
            if block is not None and block.error is None:
                block.error = f"line {number}: {err}"
            elif block is None:
                yield BadRecord(number, str(err))
            continue
        if line.startswith(IMGID_PREFIX):
            if block is not None:
                yield block.finish()
            block, orphan = _Block(number, line[len(IMGID_PREFIX) :].strip(), [], []), False
            if not block.image_id:
                block.error = "IMGID line without an id"
        elif not line.strip():
            if block is not None and (block.tokens or block.error):
                yield block.finish()
                block = None
            orphan = False
        elif block is None:
            if not orphan:
                yield BadRecord(number, "token line outside an IMGID block")
            orphan = True
        else:
            _token_line(block, number, line)
    if block is not None:
        yield block.finish()


def read_records(stream: LineSource, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[InputRecord | BadRecord]:
    """Detect the format from the first non-blank line and parse the whole stream lazily.

    ``stream`` needs ``readline(size)``; lines over ``max_line_bytes`` are bad lines.
    """
    lines = bounded_lines(stream, max_line_bytes)
    head: list[bytes | LongLine] = []
    for raw in lines:
        head.append(raw)
        if isinstance(raw, LongLine) or raw.strip():
            break
    last = head[-1] if head else b""
    first = last.lstrip(b"\xef\xbb\xbf").lstrip() if isinstance(last, bytes) else b""
    lines = itertools.chain(head, lines)
    return iter_conll(lines) if first.startswith(IMGID) else iter_jsonl(lines)
