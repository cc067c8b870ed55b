"""Strict JSON in and out: every number finite, every document one that any JSON parser reads.

Python's ``json`` module writes ``NaN``, ``Infinity`` and ``-Infinity`` by
default and reads them back, and it reads ``1e999`` as ``inf``; none of these
is JSON (RFC 8259), and JavaScript, ``jq`` or a JSON schema validator refuse
the file. mscmt writes its records (``run.json``, ``metrics.jsonl``, score
files, study results, ``mscmt tag`` lines) with :func:`dumps`, which refuses a
non-finite number and names where it is, and reads user input with
:func:`loads`, which refuses them as well.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from mscmt_cli.errors import MscmtError


def reject_constant(name: str) -> Any:
    """``json.loads(parse_constant=...)``: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def finite_float(text: str) -> float:
    """``json.loads(parse_float=...)``: a number that overflows a double (``1e999``) is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:24]} is out of range (not a finite double)")
    return value


def loads(text: str | bytes) -> Any:
    """``json.loads`` refusing ``NaN``, ``Infinity`` and out-of-range numbers with ``ValueError``.

    Raises ``json.JSONDecodeError`` (a ``ValueError``) for malformed text,
    ``ValueError`` for a non-finite number and ``RecursionError`` for absurd nesting.
    """
    return json.loads(text, parse_constant=reject_constant, parse_float=finite_float)


def first_non_finite(data: Any, where: str = "") -> tuple[str, float] | None:
    """``(path, value)`` of the first non-finite float in ``data`` (dicts, lists, tuples), or None.

    The path reads like ``valid.f1`` or ``rows[3].score``; the top level is ``value``.
    """
    for path, value in _floats(data, where):
        if not math.isfinite(value):
            return path or "value", value
    return None


def _floats(data: Any, where: str) -> Iterator[tuple[str, float]]:
    if isinstance(data, float):
        yield where, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _floats(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            yield from _floats(value, f"{where}[{i}]")


def dumps(data: Any, what: str, **kwargs: Any) -> str:
    """``json.dumps(data, allow_nan=False, **kwargs)``; a non-finite number raises :class:`MscmtError`.

    ``what`` names the file or message being written (``runs/a/metrics.jsonl``);
    the error names it and the value's path, and nothing has been written.
    """
    try:
        return json.dumps(data, allow_nan=False, **kwargs)
    except ValueError:
        found = first_non_finite(data)
        if found is None:
            raise
        path, value = found
        raise MscmtError(f"{what}: {path} is {value}, which is not JSON; refusing to write it") from None
