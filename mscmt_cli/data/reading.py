"""Annotated data files in any supported format, read into tweets with BIO tags.

The format comes from ``--format`` or the file: ``.jsonl``/``.ndjson`` JSON
Lines, ``.parquet`` Parquet, ``.json`` a Label Studio export, anything else
IMGID CoNLL when its first line starts with ``IMGID:`` and column CoNLL
otherwise. Each reader gives tweets with the tags as written; then the type
map renames types (``--map MISC=OTHER``) and the tagging scheme (``--scheme``,
or detected per file, :mod:`mscmt_cli.data.schemes`) is converted to BIO.
What a read skipped, detected or converted is said in :attr:`ReadFile.notes`
(``FILE: tags read as BIO (detected)`` too: a file read under ``--scheme auto``
always says which scheme it was read as).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from mscmt_cli.data.columns import iter_column_tweets
from mscmt_cli.data.conll import IMGID_PREFIX, Tweet, read_conll
from mscmt_cli.data.jsonl import iter_jsonl_tweets
from mscmt_cli.data.labelset import tweet_line
from mscmt_cli.data.problems import Problems
from mscmt_cli.data.schemes import NAMES, SchemeError, detect, to_bio
from mscmt_cli.data.tables import iter_label_studio_tweets, iter_parquet_tweets
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.labels import map_tag

FORMATS: tuple[str, ...] = ("auto", "imgid", "conll", "jsonl", "parquet", "label-studio")
EXTENSIONS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".json": "label-studio"}


@dataclass(frozen=True)
class ReadOptions:
    """How data files are read (the data settings, :class:`~mscmt_cli.settings.Settings`)."""

    format: str = "auto"
    scheme: str = "auto"
    type_map: Mapping[str, str] = field(default_factory=dict)
    label_column: int = -1
    image_column: int | None = None
    tag_names: tuple[str, ...] | None = None
    strict: bool = False


@dataclass(frozen=True)
class ReadFile:
    """The tweets of one file (BIO tags, types mapped) and the lines to tell the user about it."""

    path: Path
    tweets: list[Tweet]
    notes: tuple[str, ...] = ()


def file_format(path: Path, requested: str = "auto") -> str:
    """The format to read ``path`` with: ``requested`` unless ``auto``, else by extension, else by the first line."""
    if requested != "auto":
        return requested
    by_extension = EXTENSIONS.get(Path(path).suffix.lower())
    if by_extension:
        return by_extension
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.lstrip(b"\xef\xbb\xbf").strip()
            if line:
                return "imgid" if line.startswith(IMGID_PREFIX.encode()) else "conll"
    return "imgid"


def _raw_tweets(path: Path, fmt: str, options: ReadOptions, problems: Problems) -> list[Tweet]:
    if fmt == "imgid":
        return read_conll(path, problems)
    if fmt == "conll":
        return list(iter_column_tweets(path, problems, options.label_column, options.image_column))
    if fmt == "jsonl":
        return list(iter_jsonl_tweets(path, options.tag_names))
    if fmt == "parquet":
        return list(iter_parquet_tweets(path, options.tag_names))
    if fmt == "label-studio":
        return list(iter_label_studio_tweets(path))
    raise MscmtError(f"--format {fmt!r}: unknown; choose one of {', '.join(FORMATS)}")


def convert(path: Path, tweets: list[Tweet], scheme: str, type_map: Mapping[str, str]) -> tuple[list[Tweet], str]:
    """``tweets`` with types mapped and tags converted from ``scheme`` (``auto``: detected) to BIO; and the scheme read."""
    mapped = [replace(t, tags=tuple(map_tag(tag, dict(type_map)) for tag in t.tags)) for t in tweets] if type_map else tweets
    read_as = detect(t.tags for t in mapped) if scheme == "auto" else scheme
    out = []
    for tweet in mapped:
        try:
            tags = to_bio(tweet.tags, read_as)
        except SchemeError as err:
            raise MscmtError(f"{tweet_line(tweet, err.index)}: {err} (--scheme {read_as})") from None
        out.append(tweet if tuple(tags) == tweet.tags else replace(tweet, tags=tuple(tags)))
    return out, read_as


def read_data_file(path: Path, options: ReadOptions) -> ReadFile:
    """Read one annotated file; an empty one is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file" if not path.exists() else "not a file")
    fmt = file_format(path, options.format)
    problems = Problems(options.strict)
    tweets = _raw_tweets(path, fmt, options, problems)
    if not tweets:
        raise DataError(path, None, f"no tweet in it (read as {fmt})")
    tweets, read_as = convert(path, tweets, options.scheme, options.type_map)
    notes = []
    if read_as != "bio" or options.scheme == "auto":  # what was detected is said, BIO too; a scheme given is not repeated
        converted = ", converted to BIO" if read_as != "bio" else ""
        notes.append(f"{path}: tags read as {NAMES[read_as]}" + (" (detected)" if options.scheme == "auto" else "") + converted)
    skipped = problems.report()
    if skipped:
        notes.append(f"{path}: {skipped}")
    return ReadFile(path, tweets, tuple(notes))
