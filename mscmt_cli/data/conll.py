"""Reader for the IMGID CoNLL format of TWITTER-2015/2017.

One block per tweet: a line ``IMGID:<id>``, then one ``token<TAB>label`` line
per token, then a blank line. Every error names the file and the line.
CRLF line endings and a UTF-8 byte-order mark are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mscmt_cli.errors import DataError
from mscmt_cli.labels import normalise_label

IMGID_PREFIX = "IMGID:"


@dataclass(frozen=True)
class Tweet:
    """One labelled tweet: its tokens, one tag per token, and its image id."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    image_id: str
    source: str = ""  # "file:line" of the IMGID line, for messages


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    return text


def _parse_token_line(path: Path, number: int, line: str) -> tuple[str, str]:
    token, sep, label = line.rpartition("\t")
    if not sep:
        raise DataError(path, number, f"expected 'token<TAB>label', found no tab in {line[:40]!r}")
    label = label.strip()
    tag = normalise_label(label)
    if tag is None:
        raise DataError(path, number, f"unknown label {label!r} (known: O, B-/I- with PER, LOC, ORG, OTHER or MISC)")
    if not token:
        raise DataError(path, number, "empty token before the tab")
    return token, tag


def iter_tweets(path: Path) -> Iterator[Tweet]:
    """Yield the tweets of one file in order, validating every line."""
    path = Path(path)
    image_id: str | None = None
    start = 0
    tokens: list[str] = []
    tags: list[str] = []
    for number, raw in enumerate(_decode(path).split("\n"), start=1):  # not splitlines: \x85, \u2028 may sit inside tokens
        line = raw.rstrip("\r\n")
        if line.startswith(IMGID_PREFIX):
            if image_id is not None:
                yield _finish(path, start, image_id, tokens, tags)
            image_id, start, tokens, tags = line[len(IMGID_PREFIX) :].strip(), number, [], []
            if not image_id:
                raise DataError(path, number, "IMGID line without an id")
        elif not line.strip():
            if image_id is not None and tokens:
                yield _finish(path, start, image_id, tokens, tags)
                image_id = None
        elif image_id is None:
            raise DataError(path, number, "token line before the first IMGID line")
        else:
            token, tag = _parse_token_line(path, number, line)
            tokens.append(token)
            tags.append(tag)
    if image_id is not None:
        yield _finish(path, start, image_id, tokens, tags)


def _finish(path: Path, line: int, image_id: str, tokens: list[str], tags: list[str]) -> Tweet:
    if not tokens:
        raise DataError(path, line, f"IMGID:{image_id} has no tokens")
    return Tweet(tuple(tokens), tuple(tags), image_id, f"{path}:{line}")


def read_conll(path: Path) -> list[Tweet]:
    """Read a whole file; an empty file (no tweet) is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file")
    tweets = list(iter_tweets(path))
    if not tweets:
        raise DataError(path, None, "empty corpus file: no IMGID block found")
    return tweets
