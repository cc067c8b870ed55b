"""One annotated record (a JSON object, a Parquet row) as a :class:`~mscmt_cli.data.conll.Tweet`.

A record gives its words as ``tokens`` (a list of strings) or ``text`` (split
by the tweet tokenizer, :mod:`mscmt_cli.data.tweet_tokenize`), or both
(the tokens are found in the text), and its labels as either

* ``tags`` (or ``ner_tags``): one tag per token, as strings, or as integers with the tag of
  each id given by ``tag_names`` (a Hugging Face ``ClassLabel``'s names); or
* ``entities``: character offsets ``start``/``end`` and a ``type``
  (:mod:`mscmt_cli.data.spans`), the format ``mscmt tag`` writes; offsets
  refer to ``text``, or to the tokens joined by single spaces when there is
  no text. When both are given, ``entities`` wins.

A record may name its ``image`` (a path relative to ``--images-dir``; one
pointing outside it is refused) and its ``caption``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from mscmt_cli.data.conll import Tweet
from mscmt_cli.data.doc import InputError, make_doc
from mscmt_cli.data.images import IMAGE_EXTENSIONS
from mscmt_cli.data.spans import spans_to_tags
from mscmt_cli.labels import split_tag


def image_id(value: Any) -> str:
    """The image id of a record's ``image``: its path under ``--images-dir`` less a known extension (``""``: none)."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise InputError("'image' must be a non-empty string (a path relative to --images-dir)")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or value[1:2] == ":":
        raise InputError(f"'image' {value[:60]!r} points outside --images-dir (give a path relative to it)")
    return str(path.with_suffix("")) if path.suffix.lower() in IMAGE_EXTENSIONS else str(path)


def _tags(value: Any, count: int, tag_names: Sequence[str] | None) -> list[str]:
    if not isinstance(value, list):
        raise InputError(f"'tags' must be a list, got {type(value).__name__}")
    if len(value) != count:
        raise InputError(f"{len(value)} tags for {count} tokens")
    out = []
    for k, tag in enumerate(value):
        if isinstance(tag, int) and not isinstance(tag, bool):
            if tag_names is None:
                raise InputError("integer tags need the tag of each id: pass --tag-names O,B-PER,I-PER,...")
            if not 0 <= tag < len(tag_names):
                raise InputError(f"tag id {tag} (token {k}) is not in --tag-names ({len(tag_names)} tags)")
            tag = tag_names[tag]
        if not isinstance(tag, str) or split_tag(tag) is None:
            raise InputError(f"tag {tag!r} (token {k}) is not O nor PREFIX-TYPE" + (" (empty type)" if str(tag).endswith("-") else ""))
        out.append(tag)
    return out


def record_tweet(record: Any, source: str, tag_names: Sequence[str] | None = None) -> Tweet:
    """The tweet of one record (raises :class:`InputError`; ``source`` is its ``file:line`` for messages)."""
    if not isinstance(record, dict):
        raise InputError(f"expected an object, got {type(record).__name__}")
    if record.get("text") is None and record.get("tokens") is None:
        raise InputError("no tweet: give 'text' (a string) or 'tokens' (a list of strings)")
    doc = make_doc(record.get("text"), record.get("tokens"))
    if record.get("entities") is not None:
        tags = spans_to_tags(doc.text, doc.offsets, record["entities"])
    elif record.get("tags", record.get("ner_tags")) is not None:
        tags = _tags(record.get("tags", record.get("ner_tags")), len(doc.tokens), tag_names)
    else:
        raise InputError("no labels: give 'tags' (one per token) or 'entities' (start, end, type)")
    caption = record.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise InputError(f"'caption' must be a string, got {type(caption).__name__}")
    return Tweet(doc.tokens, tuple(tags), image_id(record.get("image")), source, caption=caption)
