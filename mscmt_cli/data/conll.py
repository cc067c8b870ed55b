"""Reader for the IMGID CoNLL format of TWITTER-2015/2017.

One block per tweet: a line ``IMGID:<id>``, then one ``token<TAB>label`` line
per token, then a blank line. Every error names the file and the line.
CRLF line endings and a UTF-8 byte-order mark are accepted. Tags are read as
written (``PREFIX-TYPE`` or ``O``, any type); the scheme and the type map are
applied after reading (:mod:`mscmt_cli.data.reading`). A token line with an
empty token is skipped and reported (``--strict`` refuses it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mscmt_cli.data.problems import Problems
from mscmt_cli.errors import DataError
from mscmt_cli.labels import split_tag

IMGID_PREFIX = "IMGID:"


@dataclass(frozen=True)
class Tweet:
    """One labelled tweet: its tokens, one tag per token, and its image id (``""``: none).

    ``token_lines`` gives each token's line in its file when the format has one line per
    token (CoNLL), for messages; ``caption`` is the record's own caption, if it gives one.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    image_id: str
    source: str = ""  # "file:line" of the record (CoNLL: its first line), for messages
    token_lines: tuple[int, ...] = ()
    caption: str | None = None


def decode_file(path: Path) -> str:
    """A file's text (UTF-8, a byte-order mark dropped); bad bytes are an error naming the line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})") from None
    return text


def check_tag(path: Path, number: int, label: str) -> str:
    """``label`` when it reads as ``O`` or ``PREFIX-TYPE``; else an error naming the file and line."""
    if split_tag(label) is None:
        what = "a tag with an empty type" if label.endswith("-") else "not a tag (expected O or PREFIX-TYPE, e.g. B-PER)"
        raise DataError(path, number, f"label {label[:40]!r} is {what}")
    return label


def _parse_token_line(path: Path, number: int, line: str) -> tuple[str, str]:
    token, sep, label = line.rpartition("\t")
    if not sep:
        raise DataError(path, number, f"expected 'token<TAB>label', found no tab in {line[:40]!r}")
    return token, check_tag(path, number, label.strip())


def iter_tweets(path: Path, problems: Problems | None = None) -> Iterator[Tweet]:
    """Yield the tweets of one file in order, validating every line (a line with an empty token goes to ``problems``)."""
    path = Path(path)
    problems = problems or Problems()
    image_id: str | None = None
    start = 0
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    for number, raw in enumerate(decode_file(path).split("\n"), start=1):  # not splitlines: \x85, \u2028 may sit inside tokens
        line = raw.rstrip("\r\n")
        if line.startswith(IMGID_PREFIX):
            if image_id is not None:
                yield _finish(path, start, image_id, tokens, tags, lines)
            image_id, start, tokens, tags, lines = line[len(IMGID_PREFIX) :].strip(), number, [], [], []
            if not image_id:
                raise DataError(path, number, "IMGID line without an id")
        elif not line.strip():
            if image_id is not None and tokens:
                yield _finish(path, start, image_id, tokens, tags, lines)
                image_id = None
        elif image_id is None:
            raise DataError(path, number, "token line before the first IMGID line")
        else:
            token, tag = _parse_token_line(path, number, line)
            if not token:
                problems.skip(path, number, "empty token before the tab")
                continue
            tokens.append(token)
            tags.append(tag)
            lines.append(number)
    if image_id is not None:
        yield _finish(path, start, image_id, tokens, tags, lines)


def _finish(path: Path, line: int, image_id: str, tokens: list[str], tags: list[str], lines: list[int]) -> Tweet:
    if not tokens:
        raise DataError(path, line, f"IMGID:{image_id} has no tokens")
    return Tweet(tuple(tokens), tuple(tags), image_id, f"{path}:{line}", tuple(lines))


def read_conll(path: Path, problems: Problems | None = None) -> list[Tweet]:
    """Read a whole file, tags as written; an empty file (no tweet) is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file")
    tweets = list(iter_tweets(path, problems))
    if not tweets:
        raise DataError(path, None, "empty corpus file: no IMGID block found")
    return tweets
