"""Micro-batching: requests that arrive together share one call of the model.

Each request hands :meth:`MicroBatcher.submit` its items (one tweet for
``/tag``, many for ``/tag/batch``) and awaits their outcomes. One worker thread
takes the oldest waiting request, then every request that arrives before
``max_wait_s`` has passed since that request arrived, up to ``max_items`` items
in all (a request is never split: one larger than ``max_items`` runs alone, one
that would overflow waits for the next pass). It calls ``run`` once on all their
items, then hands each request its own slice of the outcomes, in order.

The wait is only spent when the service is busy: when other requests are
already queued, or the previous pass served more than one request. A lone
client's request (the previous pass served only it, nothing else queued) runs
at once, so batching adds no latency at low load.

Why a thread rather than an asyncio task: the model is used by exactly one
thread (no lock around every request), the forward pass never blocks the event
loop, and the batcher does not belong to one event loop (Starlette's
``TestClient`` runs each request in an event loop of its own). Requests whose
caller went away before their pass are skipped. While a pass runs, the next
requests queue up, so the busier the service, the larger its passes: with
``max_wait_s = 0`` it still batches whatever arrived during the previous pass.

Why not LitServe or Ray Serve (which the issue named): both replace the server
(LitServe its own FastAPI app and worker processes, Ray Serve a cluster
runtime of several hundred MB), and the service's request parsing, limits,
API key and 4xx rules live in this FastAPI app; the batching itself is this
one small class.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Request(Generic[T]):
    items: list[T]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float


_STOP: Any = object()


@dataclass
class BatchStats:
    """What the batcher did: calls of ``run`` and the number of items in each (the last 1000)."""

    passes: int = 0
    items: int = 0
    requests: int = 0
    sizes: list[int] = field(default_factory=list)

    def record(self, requests: int, items: int) -> None:
        self.passes += 1
        self.items += items
        self.requests += requests
        self.sizes = [*self.sizes[-999:], items]


class MicroBatcher(Generic[T, R]):
    """Combine concurrent requests' items into one call of ``run``.

    Args:
        run: items -> one outcome per item, in order (called on the worker thread).
        max_items: most items in one call (a larger single request still runs, alone).
        max_wait_s: how long after the oldest waiting request arrived the worker waits for more.
        lock: held around every call of ``run`` (for others that use the model too).
    """

    def __init__(self, run: Callable[[list[T]], list[R]], max_items: int, max_wait_s: float, lock: threading.Lock | None = None) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if not 0 <= max_wait_s < float("inf"):
            raise ValueError(f"max_wait_s must be a finite number >= 0, got {max_wait_s}")
        self.run = run
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._lock = lock or threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._last_requests = 0  # requests served by the previous pass (worker thread only)

    @property
    def waiting(self) -> int:
        """Requests queued and not yet taken by the worker."""
        return self._queue.qsize()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The outcomes of ``items`` (in order), computed in a pass shared with other requests.

        An exception raised by ``run`` is raised here, for every request of that pass.
        """
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._start()
        self._queue.put(_Request(list(items), future, loop, time.monotonic()))
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the pass under way and the requests already queued, then stop the worker."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    # -- the worker ----------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the batcher is closed (the service is shutting down)")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="mscmt-batcher", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        carry: Any = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is _STOP:
                return
            group, carry = self._collect(first)
            self._pass(group)

    def _collect(self, first: _Request[T]) -> tuple[list[_Request[T]], Any]:
        """``first`` and the requests that join it; the request (or stop) left for the next pass."""
        group, n = [first], len(first.items)
        busy = self._last_requests > 1 or not self._queue.empty()
        deadline = first.arrived + (self.max_wait_s if busy else 0.0)
        while n < self.max_items:
            try:
                left = deadline - time.monotonic()
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP or n + len(nxt.items) > self.max_items:
                return group, nxt
            group.append(nxt)
            n += len(nxt.items)
        return group, None

    def _pass(self, group: list[_Request[T]]) -> None:
        live = [r for r in group if not r.future.done()]  # a caller that went away is not run
        self._last_requests = len(live)
        if not live:
            return
        items = [item for r in live for item in r.items]
        try:
            with self._lock:
                outcomes = self.run(items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"run returned {len(outcomes)} outcomes for {len(items)} items")
        except Exception as err:  # every request of the pass learns why; the worker goes on
            for r in live:
                _settle(r, exception=err)
            return
        finally:
            self.stats.record(len(live), len(items))
        start = 0
        for r in live:
            _settle(r, result=outcomes[start : start + len(r.items)])
            start += len(r.items)


def _settle(request: _Request[Any], result: Any = None, exception: Exception | None = None) -> None:
    """Resolve ``request``'s future on its own event loop (from the worker thread)."""

    def resolve() -> None:
        if request.future.done():  # cancelled meanwhile
            return
        if exception is not None:
            request.future.set_exception(exception)
        else:
            request.future.set_result(result)

    try:
        request.loop.call_soon_threadsafe(resolve)
    except RuntimeError:  # the caller's event loop is closed: nobody is waiting
        pass
