"""How ``mscmt serve`` holds up against clients that open connections and never finish a request.

Three bounds, each one place:

* at most ``max_connections`` open connections. One more evicts the connection that has waited
  longest for its request's headers (it gets a 408); when every connection is busy with a request,
  the newcomer gets a 503 and is closed. So a flood of half-sent requests costs the service
  ``max_connections`` file descriptors, never all of them, and a fresh ``GET /health`` still answers.
* a request's headers must arrive within ``header_timeout`` seconds of the connection opening (or
  of the previous answer on a kept-alive connection), else 408 and the connection is closed.
* the same warning or error (same logger, same message template) is logged at most ``log_burst``
  times a minute; the next one after a quiet spell says how many were left out
  (:class:`RepeatLimit`). A flood of failing connections cannot fill the disk with tracebacks.

The descriptors the bound needs are checked against ``ulimit -n`` before the service starts
(:func:`fd_limit`): the soft limit is raised towards the hard one if need be, else the service
refuses to start, in one line, rather than failing with "Too many open files" under load.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mscmt_cli.errors import MscmtError

#: File descriptors kept free beside the connections (model files, threads' pipes, the listening socket).
FD_RESERVE = 64

#: Most connections accepted in one go before any is looked at (the listen backlog: asyncio accepts up to
#: this many at each wake-up), and most refused connections lingering (:data:`LINGER`) at a time.
#: Both hold descriptors beyond ``max_connections``: with a backlog of 2048 and room for 300, a flood
#: ran the service out of descriptors although it held 200 connections.
BACKLOG = 128
MAX_LINGERING = 64

#: Seconds a refused connection is read (and its bytes dropped) before it is closed, so its answer is not lost to a reset.
LINGER = 0.5

#: The sweep for expired connections runs every this fraction of ``header_timeout`` (so a deadline is late by at most that).
SWEEP = 0.1

#: Loggers whose repeated lines are limited: uvicorn's, and asyncio's (``socket.accept() out of system resource``).
LIMITED_LOGGERS = ("uvicorn.error", "asyncio")


@dataclass(frozen=True)
class Connections:
    """Connection bounds of the service."""

    max_connections: int = 512
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    log_burst: int = 5  # the same warning at most this many times per minute

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections <= 1_000_000:
            raise MscmtError(f"--max-connections: must be from 1 to 1000000, got {self.max_connections}")
        if not 0 < self.header_timeout <= 3600:
            raise MscmtError(f"--header-timeout: must be a number of seconds above 0 and at most 3600, got {self.header_timeout}")


def _raw_reply(status: int, reason: str) -> bytes:
    body = f'{{"detail": "{reason.lower()}"}}'.encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode() + body


REQUEST_TIMEOUT = _raw_reply(408, "Request Timeout")
UNAVAILABLE = _raw_reply(503, "Service Unavailable")


def guarded_protocol(bounds: Connections) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``bounds`` applied (pass as ``uvicorn.Config(http=...)``).

    One timer per server, not one per connection, does the waiting: a thousand connection timers
    slowed the first answer after a flood of 1,000 half-sent requests from 0.15 s to 1.3 s.
    """

    class Guarded(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._wait_for_headers()
            if len(self.connections) > bounds.max_connections:
                oldest = _oldest_waiting(waiting, self)
                if oldest is None:
                    self._drop(UNAVAILABLE)
                else:
                    oldest._drop(REQUEST_TIMEOUT)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            waiting.pop(self, None)
            lingering.pop(self, None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self not in lingering:
                super().data_received(data)

        def _wait_for_headers(self) -> None:
            waiting.pop(self, None)
            waiting[self] = self.loop.time()  # last: the longest waiting come first
            if not sweeper:
                sweeper.append(self.loop.call_later(SWEEP * bounds.header_timeout, sweep, self.loop))

        def _drop(self, reply: bytes) -> None:
            """Answer ``reply`` and close. Closing at once with the client's request unread would reset the
            connection, and the client would lose the answer: so stop sending, read and drop what comes for
            :data:`LINGER` seconds, then close (at once if :data:`MAX_LINGERING` others linger already)."""
            waiting.pop(self, None)
            self.connections.discard(self)
            if self.transport.is_closing():
                return
            self.transport.write(reply)
            if len(lingering) >= MAX_LINGERING or not self.transport.can_write_eof():
                self.transport.close()
                return
            self.transport.write_eof()
            lingering[self] = self.loop.time() + LINGER
            if not sweeper:
                sweeper.append(self.loop.call_later(SWEEP * bounds.header_timeout, sweep, self.loop))

    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        """Close what waited too long: headers past ``header_timeout`` (408), lingering past :data:`LINGER`."""
        sweeper.clear()
        now = loop.time()
        while waiting:
            protocol, since = next(iter(waiting.items()))
            if now - since < bounds.header_timeout:
                break
            del waiting[protocol]
            if _waiting(protocol):
                protocol._drop(REQUEST_TIMEOUT)
        for protocol in [p for p, until in lingering.items() if until <= now]:
            del lingering[protocol]
            protocol.transport.close()
        if waiting or lingering:
            sweeper.append(loop.call_later(SWEEP * bounds.header_timeout, sweep, loop))

    waiting: dict[Guarded, float] = {}  # connection -> since when it waits for headers, oldest first
    lingering: dict[Guarded, float] = {}  # refused connection -> when to close it
    sweeper: list[asyncio.TimerHandle] = []  # the one pending sweep, if any
    return Guarded


def _waiting(protocol: Any) -> bool:
    """True while a connection has no request under way: its client has not finished a request's headers."""
    return (
        not protocol.transport.is_closing()
        and protocol.conn.their_state is h11.IDLE
        and (protocol.cycle is None or protocol.cycle.response_complete)
    )


def _oldest_waiting(waiting: dict[Any, float], newcomer: Any) -> Any:
    """The connection waiting longest for a request's headers, other than ``newcomer``; None if none.

    Connections whose request got under way since they were put in ``waiting`` are taken out on
    the way (they come back, last, when their answer is sent), so a call costs O(1) amortised.
    """
    while waiting:
        protocol = next(iter(waiting))
        if protocol is newcomer:
            return None
        if _waiting(protocol):
            return protocol
        del waiting[protocol]
    return None


class RepeatLimit(logging.Filter):
    """Pass at most ``burst`` records per ``window`` seconds for each (logger, level, message template).

    Records below WARNING always pass. The first record let through after some were held back
    says how many were left out.
    """

    def __init__(self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window, clock
        self.seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}  # key -> (window start, passed, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:200])
        now = self.clock()
        start, passed, held = self.seen.get(key, (now, 0, 0))
        if now - start >= self.window:
            start, passed = now, 0
        if passed >= self.burst:
            self.seen[key] = (start, passed, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} ({held} more like this were not logged)"
        if len(self.seen) > 1000:  # bounded: forget the oldest templates
            self.seen.pop(next(iter(self.seen)))
        self.seen[key] = (start, passed + 1, 0)
        return True


def limit_repeats(filter_: RepeatLimit, names: tuple[str, ...] = LIMITED_LOGGERS) -> None:
    """Put ``filter_`` on the named loggers, in place of an earlier server's (a logger's filter sees
    the records logged on it: uvicorn and asyncio log on their own loggers)."""
    for name in names:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RepeatLimit)]:
            logger.removeFilter(old)
        logger.addFilter(filter_)


def fd_limit(max_connections: int, in_use: int, soft: int, hard: int) -> int:
    """The soft ``ulimit -n`` the service needs for ``max_connections`` (``in_use`` descriptors open now).

    Returns ``soft`` when it is enough, else the raised soft limit (at most ``hard``);
    an :class:`MscmtError` when even ``hard`` is too low.
    """
    spare = in_use + BACKLOG + MAX_LINGERING + FD_RESERVE
    need = max_connections + spare
    if need <= soft:
        return soft
    if hard != -1 and need > hard:  # -1: RLIM_INFINITY
        raise MscmtError(
            f"--max-connections {max_connections}: needs about {need} open files, but `ulimit -n` allows {hard}:"
            f" lower --max-connections to at most {max(hard - spare, 0)} or raise the limit"
        )
    return need


def reserve_fds(max_connections: int) -> None:
    """Make sure this process may open the descriptors ``max_connections`` connections need (see :func:`fd_limit`)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 32
    wanted = fd_limit(max_connections, in_use, soft, hard)
    if wanted != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def make_server(app: Any, host: str, port: int, bounds: Connections, log_level: str = "info", **config: Any) -> Any:
    """A ``uvicorn.Server`` for ``app`` with ``bounds`` applied (call ``.run()``)."""
    import uvicorn

    server_config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=guarded_protocol(bounds), backlog=BACKLOG, timeout_keep_alive=5, **config
    )
    limit_repeats(RepeatLimit(bounds.log_burst))  # after Config: it configures uvicorn's loggers
    return uvicorn.Server(server_config)
