"""Readers of whole-file formats: Parquet rows and Label Studio's JSON export.

Parquet: one record per row, with the columns of a JSON Lines record
(:mod:`mscmt_cli.data.records`). Label Studio: the JSON export of a text
labelling project (``Labels`` spans): a list of tasks, each with
``data.text`` (and optionally ``data.image``, ``data.caption``) and
``annotations``, whose first annotation not cancelled gives the spans
(``value.start``, ``value.end``, ``value.labels[0]``). Errors name the file and
the row or task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mscmt_cli.data.conll import Tweet, decode_file
from mscmt_cli.data.doc import InputError
from mscmt_cli.data.records import record_tweet
from mscmt_cli.errors import DataError
from mscmt_cli.strict_json import loads


def iter_parquet_tweets(path: Path, tag_names: Sequence[str] | None = None) -> Iterator[Tweet]:
    """The tweets of a Parquet file, one per row."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(path, None, "reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for files that are not Parquet
        raise DataError(path, None, f"not a readable Parquet file ({type(err).__name__}: {str(err)[:80]})") from None
    for number, row in enumerate(rows, start=1):
        try:
            yield record_tweet(row, f"{path}:row {number}", tag_names)
        except InputError as err:
            raise DataError(path, None, f"row {number}: {err}") from None


def _task_record(task: Any) -> dict[str, Any]:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise InputError("not a Label Studio task (no 'data' object)")
    data = task["data"]
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        raise InputError("task without annotations")
    entities = []
    for item in done[0].get("result") or []:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict) or not value.get("labels"):
            continue  # not a span label (a choice, a relation)
        labels = value["labels"]
        entities.append({"start": value.get("start"), "end": value.get("end"), "type": labels[0]})
    return {"text": data.get("text"), "image": data.get("image"), "caption": data.get("caption"), "entities": entities}


def iter_label_studio_tweets(path: Path) -> Iterator[Tweet]:
    """The tweets of a Label Studio JSON export, one per task."""
    try:
        tasks = loads(decode_file(path))
    except (json.JSONDecodeError, ValueError, RecursionError) as err:
        raise DataError(path, getattr(err, "lineno", None), f"invalid JSON: {getattr(err, 'msg', None) or str(err)[:80]}") from None
    if not isinstance(tasks, list):
        raise DataError(path, None, "a Label Studio export is a JSON list of tasks")
    for number, task in enumerate(tasks, start=1):
        where = f"task {number}" + (f" (id {task['id']})" if isinstance(task, dict) and "id" in task else "")
        try:
            yield record_tweet(_task_record(task), f"{path}:{where}")
        except InputError as err:
            raise DataError(path, None, f"{where}: {err}") from None
