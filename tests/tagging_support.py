"""Shared helpers of the tagging tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

TRICKY_TEXTS = [
    "Obama visits Paris 🇫🇷 with @JohnKerry https://t.co/abc?x=1. #Diplomacy",
    "  New York New York new york  \t",  # surrounding whitespace, repeated words
    "東京 で 会議 , Москва и Київ — العربية हिन्दी 👨‍👩‍👧 family",  # non-Latin scripts, ZWJ emoji
    "RT @nba: LeBron's 1,000th win!!! 👍🏽👍🏽 www.nba.com/x…",
    "e\u0301clair café\u200bnoir U.S. don't",  # combining mark, zero-width space
]

# Scores (probabilities, gate values) computed twice in float32 with the sums taken in another order differ in the last
# digits: another CPU's SIMD width or BLAS (on tests/fixtures/run_v1, 4e-6 between two CPUs, 1.5e-5 on a third),
# ONNX Runtime's fused operations (about 1e-6). 1e-4 is over 6 times the largest seen and far below what a changed
# model or decoder moves a score by (those also change the tags, which are compared exactly; the lone-@ rule forced
# onto the v1 model moves its gates by 0.21).
SCORE_TOLERANCE = 1e-4


def _floats_apart(value: object, floats: list[float]) -> object:
    """``value`` (parsed JSON) with every float replaced by None, the floats appended to ``floats`` in order."""
    if isinstance(value, float):
        floats.append(value)
        return None
    if isinstance(value, dict):
        return {k: _floats_apart(v, floats) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_apart(v, floats) for v in value]
    return value


def assert_same_but_floats(got: list[object], expected: list[object], tolerance: float = SCORE_TOLERANCE) -> None:
    """Everything in ``got`` equals ``expected`` exactly (keys, order, strings, ints) except floats, within ``tolerance``."""
    got_floats: list[float] = []
    expected_floats: list[float] = []
    assert _floats_apart(got, got_floats) == _floats_apart(expected, expected_floats)
    assert got_floats == pytest.approx(expected_floats, abs=tolerance, rel=0)


@contextmanager
def forced_tag(tagger, label: str) -> Iterator[None]:
    """Make the tagger predict ``label`` for every token (zero weights, large bias), then restore it."""
    head = tagger.model.classifier
    saved = head.weight.detach().clone(), head.bias.detach().clone()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.bias[tagger.labels.index(label)] = 30.0
    try:
        yield
    finally:
        with torch.no_grad():
            head.weight.copy_(saved[0])
            head.bias.copy_(saved[1])


def image_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    """A one-colour image, encoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


@contextmanager
def serving(tagger: Any, bounds: Any = None, limits: Any = None) -> Iterator[tuple[int, Any]]:
    """A real server on a free loopback port, stopped on exit: (port, uvicorn.Server)."""
    from mscmt_cli.tagging.connections import Connections, make_server
    from mscmt_cli.tagging.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server(create_app(tagger, limits), "127.0.0.1", port, bounds or Connections(), log_level="warning", log_config=None)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield port, srv
    finally:
        srv.should_exit = True
        thread.join(10)


def clip_args(tiny) -> list[str]:
    """The ``--model-path`` option pointing ``clip-vit-l14`` at the tiny CLIP vision model."""
    return ["--model-path", f"clip-vit-l14={tiny.clip_vision}"]


def write_lines(path: Path, lines: list[str]) -> Path:
    """``path`` holding ``lines``, each ended by a newline (UTF-8)."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """``path`` holding ``records`` as JSON lines (UTF-8)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@contextmanager
def nan_weights(tagger) -> Iterator[None]:
    """Make the tagger's classifier produce NaN scores, then restore it."""
    head = tagger.model.classifier
    saved = head.weight.detach().clone()
    with torch.no_grad():
        head.weight.fill_(float("nan"))
    try:
        yield
    finally:
        with torch.no_grad():
            head.weight.copy_(saved)
