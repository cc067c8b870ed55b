"""``mscmt serve`` against clients that open connections and never finish a request (loopback only).

The service is started for real (uvicorn, h11) with small bounds, so a few hundred sockets show
what 1,000 would: the bound holds, the oldest half-sent request is closed with 408, a fresh
``GET /health`` answers, and repeated log lines stay bounded.
"""

from __future__ import annotations

import logging
import socket
import time
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.connections import BACKLOG, FD_RESERVE, MAX_LINGERING, Connections, RepeatLimit, fd_limit
from tests.cli_support import one_line_error
from tests.tagging_support import serving

HALF_OPEN = b"GET /health HTTP/1.1\r\nHost: x\r\n"  # no blank line: the headers never end


def _open(port: int, data: bytes, stack: ExitStack) -> socket.socket:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
    sock.sendall(data)
    return sock


def _reply(sock: socket.socket) -> bytes:
    """All the server sends before it closes the connection (waits up to the socket's timeout)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def _connections(srv: Any, count: int) -> int:
    """The server's open connections, once it has seen the ``count`` made (the event loop runs in its thread)."""
    deadline = time.monotonic() + 10
    while srv.server_state.total_requests == 0 and time.monotonic() < deadline and len(srv.server_state.connections) < count:
        time.sleep(0.02)
    return len(srv.server_state.connections)


def test_a_flood_of_half_sent_requests_evicts_the_oldest_and_health_answers(tagger):
    bound, flood = 40, 200
    with serving(tagger, Connections(max_connections=bound, header_timeout=600)) as (port, srv), ExitStack() as stack:
        socks = [_open(port, HALF_OPEN, stack) for _ in range(flood)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            answer = http.get("/health")
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert _connections(srv, bound) <= bound
        assert _reply(socks[0]).startswith(b"HTTP/1.1 408 ")  # the oldest waiting one made room
        assert _still_open(socks[-1])  # the newest are kept


def test_when_every_connection_is_busy_a_newcomer_gets_503(tagger):
    busy = b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    with serving(tagger, Connections(max_connections=3, header_timeout=600)) as (port, _), ExitStack() as stack:
        for _ in range(3):
            _open(port, busy, stack)
        time.sleep(0.2)  # let the server read the three requests' headers (a request under way is not evicted)
        newcomer = _open(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", stack)
        assert _reply(newcomer).startswith(b"HTTP/1.1 503 ")


def test_unfinished_headers_and_bodies_time_out_with_408(tagger):
    from mscmt_cli.tagging.server import Limits

    body = b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    with serving(tagger, Connections(header_timeout=0.3), Limits(body_seconds=0.3)) as (port, _), ExitStack() as stack:
        header, half_body = _open(port, HALF_OPEN, stack), _open(port, body, stack)
        assert _reply(header).startswith(b"HTTP/1.1 408 ")
        answer = _reply(half_body)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"not sent within 0.3 seconds" in answer


def test_a_repeated_error_is_logged_a_bounded_number_of_times(tagger, caplog, monkeypatch):
    for name in ("uvicorn", "uvicorn.error"):  # an earlier server's log config may have cut them off
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    with caplog.at_level(logging.WARNING), serving(tagger, Connections(log_burst=5)) as (port, _), ExitStack() as stack:
        for _ in range(60):
            assert _reply(_open(port, b"NOT HTTP AT ALL\r\n\r\n", stack)).startswith(b"HTTP/1.1 400 ")
    invalid = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(invalid) == 5


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, level: int = logging.WARNING, name: str = "uvicorn.error") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_repeat_limit_counts_what_it_held_back():
    clock = Clock()
    limit = RepeatLimit(burst=2, window=60, clock=clock)
    passed = [limit.filter(_record("socket.accept() out of system resource\nsocket: <fd=6>")) for _ in range(10)]
    assert passed == [True, True] + [False] * 8
    assert limit.filter(_record("another message"))
    assert limit.filter(_record("an info line", logging.INFO))
    clock.now = 61
    later = _record("socket.accept() out of system resource\nsocket: <fd=6>")
    assert limit.filter(later) and "8 more like this were not logged" in later.getMessage()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 5)), max_size=200), st.integers(1, 4))
def test_repeat_limit_never_passes_more_than_burst_per_window(events, burst):
    clock = Clock()
    limit = RepeatLimit(burst=burst, window=10, clock=clock)
    passed: dict[str, list[float]] = {}
    for msg, step in events:
        clock.now += step
        if limit.filter(_record(msg)):
            passed.setdefault(msg, []).append(clock.now)
    for times in passed.values():
        for t in times:
            assert sum(1 for u in times if t <= u < t + 10) <= 2 * burst  # windows are fixed, so two may straddle t


@given(st.integers(1, 100_000), st.integers(0, 1000), st.integers(1, 200_000), st.integers(1, 200_000))
def test_fd_limit_raises_the_soft_limit_or_refuses(connections, in_use, soft, hard):
    soft = min(soft, hard)
    need = connections + in_use + FD_RESERVE + BACKLOG + MAX_LINGERING
    if need > hard:
        with pytest.raises(MscmtError, match="--max-connections"):
            fd_limit(connections, in_use, soft, hard)
    else:
        assert fd_limit(connections, in_use, soft, hard) == max(soft, need)


def test_serve_refuses_a_bound_the_file_limit_cannot_hold(mscmt, trained_run, tiny):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    result = mscmt(["serve", "--model", trained_run, "--model-path", f"clip-vit-l14={tiny.clip_vision}", "--max-connections", hard + 1])
    one_line_error(result, "ulimit -n", alone=True)


@pytest.mark.parametrize("kwargs", [{"max_connections": 0}, {"header_timeout": 0}, {"header_timeout": float("nan")}])
def test_connection_bounds_are_checked(kwargs):
    with pytest.raises(MscmtError):
        Connections(**kwargs)
