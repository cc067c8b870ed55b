"""Reader for column CoNLL: one token per line, sentences separated by blank lines.

Columns are separated by tabs (by runs of spaces on a line without a tab);
the token is the first column and the tag the ``label_column``-th (default:
the last), so WNUT-17's ``token<TAB>tag``, CoNLL-2003's four columns and
Tweebank-NER's ``.bio`` files all read. ``-DOCSTART-`` lines are skipped; a
line holding only spaces or tabs is a blank line. ``image_column`` names a
column holding the sentence's image id (its value on the sentence's first
line). A line with an empty token is skipped and reported (``--strict``
refuses it). Every error names the file and the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mscmt_cli.data.conll import Tweet, check_tag, decode_file
from mscmt_cli.data.problems import Problems
from mscmt_cli.errors import DataError

DOCSTART = "-DOCSTART-"


@dataclass
class _Sentence:
    start: int = 0
    image: str = ""
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def tweet(self, path: Path) -> Tweet:
        return Tweet(tuple(self.tokens), tuple(self.tags), self.image, f"{path}:{self.start}", tuple(self.lines))


def split_columns(line: str) -> list[str]:
    """The columns of a token line: tab-separated, or space-separated when there is no tab."""
    return line.split("\t") if "\t" in line else line.split()


def _column(columns: list[str], index: int, path: Path, number: int, what: str) -> str:
    try:
        return columns[index].strip()
    except IndexError:
        raise DataError(path, number, f"{len(columns)} column(s), no {what} column {index}") from None


def iter_column_tweets(
    path: Path, problems: Problems | None = None, label_column: int = -1, image_column: int | None = None
) -> Iterator[Tweet]:
    """The sentences of a column CoNLL file, in order."""
    path = Path(path)
    problems = problems or Problems()
    current = _Sentence()
    for number, raw in enumerate(decode_file(path).split("\n"), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if current.tokens:
                yield current.tweet(path)
            current = _Sentence()
            continue
        if line.split(maxsplit=1)[0] == DOCSTART:
            continue
        columns = split_columns(line)
        if len(columns) < 2:
            raise DataError(path, number, f"expected a token and a tag, found one column in {line[:40]!r}")
        tag = check_tag(path, number, _column(columns, label_column, path, number, "label"))
        token = columns[0]
        if not token.strip():
            problems.skip(path, number, "empty token")
            continue
        if not current.tokens:
            current.start = number
            current.image = "" if image_column is None else _column(columns, image_column, path, number, "image")
        current.tokens.append(token)
        current.tags.append(tag)
        current.lines.append(number)
    if current.tokens:
        yield current.tweet(path)
