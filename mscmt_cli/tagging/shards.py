"""Tagging input in shards: JSON Lines and Parquet files, read in chunks that any process can tag.

``mscmt tag INPUT --ray ...`` takes a file, a directory (its ``.jsonl``,
``.json``, ``.ndjson`` and ``.parquet`` files, by name) or a glob of such
files. A shard is read in :class:`Chunk` s of at most ``window`` lines and
:data:`CHUNK_BYTES` bytes, so no process ever holds more than a chunk of it.

A chunk carries the shard's raw lines and the number of its first line; the
process that tags it parses them with :func:`~mscmt_cli.tagging.inputs.parse_json_line`,
tags them with :func:`~mscmt_cli.tagging.stream.tag_window` and writes them
with :func:`~mscmt_cli.tagging.jobs.output_line`: the functions ``mscmt tag``
uses in one process, so a line comes out (or is reported bad) the same way.

A Parquet row is the JSON object of its columns, numbered from 1 like a line;
a date or time becomes its ISO 8601 text, and a row holding a value JSON has
no form for (NaN, bytes) is a bad line naming the column.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mscmt_cli.data.conll import IMGID_PREFIX
from mscmt_cli.data.doc import InputError
from mscmt_cli.errors import MscmtError
from mscmt_cli.paths import listing
from mscmt_cli.tagging.inputs import MAX_LINE_BYTES, BadRecord, InputRecord, LongLine, bounded_lines, parse_json_line
from mscmt_cli.tagging.jobs import check_input, output_line
from mscmt_cli.tagging.stream import tag_window
from mscmt_cli.tagging.tagger import Tagger

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIX = ".parquet"
#: Most input bytes in one chunk: a window of long tweets (with pass-through fields) stays a few MB.
CHUNK_BYTES = 4 * 2**20
PYARROW_HINT = 'Parquet shards need pyarrow, which is not installed: pip install "mscmt[ray]"'

#: A line of a chunk: its bytes, a line over the length limit, or a row already known to be bad (Parquet).
RawLine = bytes | LongLine | BadRecord


@dataclass(frozen=True)
class Shard:
    """One input file: ``kind`` is ``jsonl`` or ``parquet``; ``size`` its bytes; ``rows`` (Parquet) its row count."""

    path: Path
    kind: str
    size: int
    rows: int | None = None

    @property
    def out_name(self) -> str:
        """Its output shard's name: ``part-1.parquet`` -> ``part-1.jsonl``."""
        return Path(self.path.name).stem + ".jsonl"


@dataclass
class Chunk:
    """Consecutive lines of one shard.

    Attributes:
        shard: the shard's index in the list of shards.
        first_line: the 1-based number of ``lines[0]`` in the shard.
        lines: the raw lines (blank lines included, so the numbers hold).
        size: the input bytes the chunk covers (for progress; estimated for Parquet).
    """

    shard: int
    first_line: int
    lines: list[RawLine] = field(default_factory=list)
    size: int = 0


def find_shards(input_name: str) -> tuple[list[Shard], list[str]]:
    """The shards ``input_name`` names, in order, and the files of a directory or glob that are not shards.

    A file is one shard whatever its name (``.parquet`` is read as Parquet); a directory
    or a glob gives its ``.jsonl``/``.json``/``.ndjson``/``.parquet`` files, sorted by path.
    """
    if input_name == "-":
        raise MscmtError("--ray reads files: give a file, a directory or a glob of shards, not - (stdin)")
    if os.path.isdir(input_name):
        candidates, what = sorted(str(p) for p in Path(input_name).iterdir()), f"directory {input_name}"
    elif not os.path.exists(input_name) and glob.has_magic(input_name):
        candidates, what = sorted(glob.glob(input_name)), f"pattern {input_name!r}"
        if not candidates:
            raise MscmtError(f"{input_name}: no file matches this pattern")
    else:
        check_input(input_name)
        return [_shard(Path(input_name))], []
    names = [c for c in candidates if os.path.isfile(c) and c.lower().endswith((*JSONL_SUFFIXES, PARQUET_SUFFIX))]
    ignored = [os.path.basename(c) for c in candidates if c not in names]
    if not names:
        raise MscmtError(f"{what} holds no .jsonl, .json, .ndjson or .parquet file")
    return [_shard(Path(n)) for n in names], ignored


def _shard(path: Path) -> Shard:
    """A shard, checked: a Parquet file's footer is read, a JSON Lines file must not be an IMGID CoNLL file."""
    size = path.stat().st_size
    if path.suffix.lower() == PARQUET_SUFFIX:
        return Shard(path, "parquet", size, _parquet_file(path).metadata.num_rows)
    if _is_conll(path):
        raise MscmtError(f"{path}: an IMGID CoNLL file; --ray tags JSON Lines and Parquet shards (tag this file without --ray)")
    return Shard(path, "jsonl", size)


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MscmtError(PYARROW_HINT) from None
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...: the file is not Parquet
        raise MscmtError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


def _is_conll(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            for raw in bounded_lines(fh):
                if isinstance(raw, LongLine) or raw.strip():
                    return isinstance(raw, bytes) and raw.lstrip(b"\xef\xbb\xbf").lstrip().startswith(IMGID_PREFIX.encode())
    except OSError as err:
        raise MscmtError(f"{path}: cannot read the input ({err.strerror or err})") from None
    return False


def read_chunks(shards: list[Shard], window: int = 1024, max_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Every shard's lines in chunks, shard by shard; each shard gives at least one chunk (an empty one when empty).

    A chunk holds ``window`` non-blank lines (blank lines ride along, as ``mscmt tag`` skips them
    before it takes a window), so a shard's chunks are the windows one process would tag, and its
    lines are batched, and score, the same; a chunk also ends before it passes ``max_bytes``.
    """
    if window < 1:
        raise MscmtError(f"window must be at least 1, got {window}")
    for index, shard in enumerate(shards):
        lines = _parquet_lines(shard, window) if shard.kind == "parquet" else _jsonl_lines(shard)
        chunk, counted = Chunk(index, 1), 0
        for raw, size in lines:
            blank = isinstance(raw, bytes) and not raw.strip()
            if (counted >= window and not blank) or (chunk.size + size > max_bytes and chunk.lines):
                yield chunk
                chunk, counted = Chunk(index, chunk.first_line + len(chunk.lines)), 0
            chunk.lines.append(raw)
            chunk.size += size
            counted += not blank
        yield chunk


def _jsonl_lines(shard: Shard) -> Iterator[tuple[RawLine, int]]:
    try:
        with open(shard.path, "rb") as fh:
            for raw in bounded_lines(fh, MAX_LINE_BYTES):
                yield raw, raw.size + 1 if isinstance(raw, LongLine) else len(raw)
    except OSError as err:
        raise MscmtError(f"{shard.path}: cannot read the input ({err.strerror or err})") from None


def _parquet_lines(shard: Shard, batch_rows: int) -> Iterator[tuple[RawLine, int]]:
    """Each row as its JSON line (or a bad line), with the line's size: the same limits as a JSON Lines
    shard, on the decoded values (a row whose line is over :data:`MAX_LINE_BYTES` is a :class:`LongLine`;
    a chunk's bound counts decoded bytes, never compressed ones). Rows are read in batches of at most
    ``batch_rows`` and at most a chunk's worth of bytes as the file's metadata gives uncompressed sizes."""
    parquet = _parquet_file(shard.path)
    number = 0
    batches = parquet.iter_batches(batch_size=_rows_per_batch(parquet.metadata, batch_rows))
    while True:
        try:
            batch = next(batches, None)
        except (OSError, ValueError) as err:  # pyarrow: corrupt pages behind an intact footer (ArrowInvalid is a ValueError)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            yield BadRecord(number + 1, f"unreadable Parquet data from row {number + 1} on ({first}); the rest of this shard is skipped"), 1
            return
        if batch is None:
            return
        for row in batch.to_pylist():
            number += 1
            try:
                line = parquet_line(row)
            except InputError as err:
                yield BadRecord(number, str(err)), 1
                continue
            yield (LongLine(len(line), MAX_LINE_BYTES) if len(line) > MAX_LINE_BYTES else line), len(line) + 1


def _rows_per_batch(metadata: Any, most: int) -> int:
    """Rows per read: at most ``most``, and about :data:`CHUNK_BYTES` of uncompressed data (the largest row group's rows' mean)."""
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    per_row = max((g.total_byte_size / g.num_rows for g in groups if g.num_rows), default=1.0)
    return max(1, min(most, int(CHUNK_BYTES // max(per_row, 1.0))))


def parquet_line(row: dict[str, Any]) -> bytes:
    """A Parquet row as the JSON Lines line it stands for (raises :class:`InputError` naming a column JSON cannot hold)."""
    try:
        return json.dumps(row, ensure_ascii=False, allow_nan=False, default=_json_value).encode("utf-8")
    except (TypeError, ValueError):
        for name, value in row.items():
            try:
                json.dumps(value, allow_nan=False, default=_json_value)
            except ValueError:
                raise InputError(f"column {name!r}: NaN or infinity is not a JSON number") from None
            except TypeError as err:
                raise InputError(f"column {name!r}: {err}") from None
        raise


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.time)):  # datetime.datetime is a date
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} value has no JSON form")


def parse_chunk(chunk: Chunk) -> list[InputRecord | BadRecord]:
    """The chunk's lines parsed as ``mscmt tag`` parses JSON Lines (blank lines dropped), numbered in their shard."""
    items: list[InputRecord | BadRecord] = []
    for number, raw in enumerate(chunk.lines, start=chunk.first_line):
        if isinstance(raw, BadRecord):
            items.append(raw)
        elif isinstance(raw, LongLine):
            items.append(BadRecord(number, raw.message()))
        elif (item := parse_json_line(number, raw)) is not None:
            items.append(item)
    return items


def tag_chunk(tagger: Tagger, chunk: Chunk) -> list[bytes | BadRecord]:
    """Tag one chunk: per non-blank line, in order, its output line (:func:`output_line`) or why it is bad."""
    return [o if isinstance(o, BadRecord) else output_line(o[0].record, o[1]) for o in tag_window(tagger, parse_chunk(chunk))]


def ignored_note(ignored: list[str]) -> str | None:
    """One line about the files of a directory or glob that were not read, or None."""
    if not ignored:
        return None
    return f"not shards, not read: {listing(ignored)} (shards end in .jsonl, .json, .ndjson or .parquet)"
