"""Reader for annotated JSON Lines: one record per line (:mod:`mscmt_cli.data.records`).

Blank lines are skipped; a line that is not a JSON object, or a record that
does not read, is an error naming the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from mscmt_cli.data.conll import Tweet, decode_file
from mscmt_cli.data.doc import InputError
from mscmt_cli.data.records import record_tweet
from mscmt_cli.errors import DataError
from mscmt_cli.strict_json import loads


def iter_jsonl_tweets(path: Path, tag_names: Sequence[str] | None = None) -> Iterator[Tweet]:
    """The tweets of a JSON Lines file, in order."""
    path = Path(path)
    for number, line in enumerate(decode_file(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except (json.JSONDecodeError, ValueError, RecursionError) as err:
            raise DataError(path, number, f"invalid JSON: {getattr(err, 'msg', None) or str(err)[:80]}") from None
        try:
            yield record_tweet(record, f"{path}:{number}", tag_names)
        except InputError as err:
            raise DataError(path, number, str(err)) from None
