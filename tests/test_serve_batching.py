"""The service's micro-batcher: concurrent requests share a forward pass, each keeps its own answer and errors."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.batcher import MicroBatcher
from tests.tagging_support import image_bytes


class FakeModel:
    """Records the items of each pass; the first pass blocks until released, so later requests queue up."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.passes: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[str]) -> list[str]:
        self.passes.append(list(items))
        self.entered.set()
        assert self.release.wait(30), "test never released the first pass"
        if self.fail_on in items:
            raise ValueError(f"cannot do {self.fail_on}")
        return [f"out:{x}" for x in items]


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until ``condition`` holds (bounded, so a bug fails rather than hangs)."""
    for _ in range(30_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


async def blocked(model: FakeModel, batcher: MicroBatcher) -> asyncio.Task:
    """Start a first request and wait until its pass is running (and blocked)."""
    first = asyncio.create_task(batcher.submit(["first"]))
    await until(model.entered.is_set)
    return first


def test_requests_queued_during_a_pass_share_the_next_pass():
    async def scenario() -> None:
        model = FakeModel()
        batcher = MicroBatcher(model, max_items=100, max_wait_s=0)
        first = await blocked(model, batcher)
        rest = [asyncio.create_task(batcher.submit([f"r{k}"])) for k in range(10)]
        await until(lambda: batcher.waiting == 10)
        model.release.set()
        assert await first == ["out:first"]
        assert [await t for t in rest] == [[f"out:r{k}"] for k in range(10)]
        assert model.passes == [["first"], [f"r{k}" for k in range(10)]]
        assert (batcher.stats.passes, batcher.stats.requests, batcher.stats.sizes) == (2, 11, [1, 10])
        batcher.close()

    asyncio.run(scenario())


def test_max_items_bounds_a_pass_and_a_request_is_never_split():
    async def scenario() -> None:
        model = FakeModel()
        batcher = MicroBatcher(model, max_items=4, max_wait_s=0)
        first = await blocked(model, batcher)
        requests = [["a1", "a2"], ["b1", "b2"], ["c1"], ["d1", "d2", "d3"], ["e1", "e2", "e3", "e4", "e5"], ["f1"]]
        tasks = []
        for items in requests:
            tasks.append(asyncio.create_task(batcher.submit(items)))
            await until(lambda: batcher.waiting == len(tasks))  # queued in this order
        model.release.set()
        await first
        assert [await t for t in tasks] == [[f"out:{x}" for x in items] for items in requests]
        # (2+2) full; c would fit with d? 1+3 = 4 yes; e (5 items) alone; f after it
        assert model.passes[1:] == [["a1", "a2", "b1", "b2"], ["c1", "d1", "d2", "d3"], ["e1", "e2", "e3", "e4", "e5"], ["f1"]]
        batcher.close()

    asyncio.run(scenario())


def test_the_oldest_request_waits_for_others_up_to_max_items():
    """Once busy (the previous pass served two requests), three requests sent together make one pass, which
    starts as soon as it is full, long before the 30 s wait is over."""

    async def scenario() -> None:
        model = FakeModel()
        batcher = MicroBatcher(model, max_items=3, max_wait_s=30)
        first = await blocked(model, batcher)
        busy = [asyncio.create_task(batcher.submit([k])) for k in ("a", "b")]
        await until(lambda: batcher.waiting == 2)
        model.release.set()
        await asyncio.gather(first, *busy)
        together = asyncio.gather(batcher.submit(["x"]), batcher.submit(["y"]), batcher.submit(["z"]))
        assert await asyncio.wait_for(together, 20) == [["out:x"], ["out:y"], ["out:z"]]
        assert model.passes == [["first"], ["a", "b"], ["x", "y", "z"]]
        batcher.close()

    asyncio.run(scenario())


def test_a_lone_request_never_waits():
    """The previous pass served one request and nothing else is queued: the next request runs at once,
    however long ``max_wait_s`` is (an hour here; the test would time out if it waited)."""

    async def scenario() -> None:
        passes: list[list[str]] = []
        batcher = MicroBatcher(lambda items: passes.append(items) or items, max_items=32, max_wait_s=3600)
        for word in ("one", "two", "three"):
            assert await asyncio.wait_for(batcher.submit([word]), 20) == [word]
        assert passes == [["one"], ["two"], ["three"]] and batcher.stats.sizes == [1, 1, 1]
        batcher.close()

    asyncio.run(scenario())


def test_an_exception_reaches_every_request_of_its_pass_and_the_worker_goes_on():
    async def scenario() -> None:
        model = FakeModel(fail_on="bad")
        batcher = MicroBatcher(model, max_items=10, max_wait_s=0)
        first = await blocked(model, batcher)
        same_pass = [asyncio.create_task(batcher.submit([x])) for x in ("ok", "bad")]
        await until(lambda: batcher.waiting == 2)
        model.release.set()
        assert await first == ["out:first"]
        for task in same_pass:
            with pytest.raises(ValueError, match="cannot do bad"):
                await task
        assert await batcher.submit(["later"]) == ["out:later"]
        batcher.close()

    asyncio.run(scenario())


def test_a_run_returning_the_wrong_number_of_outcomes_is_an_error():
    async def scenario() -> None:
        batcher = MicroBatcher(lambda items: items[:-1], max_items=10, max_wait_s=0)
        with pytest.raises(RuntimeError, match="1 outcomes for 2 items"):
            await batcher.submit(["a", "b"])
        batcher.close()

    asyncio.run(scenario())


def test_a_request_whose_caller_went_away_is_not_run():
    async def scenario() -> None:
        model = FakeModel()
        batcher = MicroBatcher(model, max_items=10, max_wait_s=0)
        first = await blocked(model, batcher)
        gone = asyncio.create_task(batcher.submit(["gone"]))
        kept = asyncio.create_task(batcher.submit(["kept"]))
        await until(lambda: batcher.waiting == 2)
        gone.cancel()
        await asyncio.sleep(0)
        model.release.set()
        await first
        assert await kept == ["out:kept"] and gone.cancelled()
        assert model.passes == [["first"], ["kept"]]
        batcher.close()

    asyncio.run(scenario())


def test_close_finishes_what_is_queued_then_refuses():
    async def scenario() -> None:
        batcher = MicroBatcher(lambda items: items, max_items=10, max_wait_s=0)
        assert await batcher.submit(["a"]) == ["a"]
        batcher.close()
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(["b"])

    asyncio.run(scenario())


@pytest.mark.parametrize("max_items, max_wait_s", [(0, 0.0), (1, -1.0), (1, float("nan")), (1, float("inf"))])
def test_bad_batcher_settings_are_refused(max_items, max_wait_s):
    with pytest.raises(ValueError):
        MicroBatcher(lambda items: items, max_items, max_wait_s)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=15), st.integers(1, 8))
def test_every_request_gets_exactly_its_own_outcomes(sizes, max_items):
    """Any request sizes, any bound: answers are each request's own items, in order; a pass
    holds at most ``max_items`` items unless it is one request; no item is run twice or lost."""

    async def scenario() -> None:
        model = FakeModel()
        batcher = MicroBatcher(model, max_items=max_items, max_wait_s=0)
        first = await blocked(model, batcher)
        requests = [[f"q{k}.{j}" for j in range(n)] for k, n in enumerate(sizes)]
        tasks = [asyncio.create_task(batcher.submit(items)) for items in requests]
        await until(lambda: batcher.waiting == len(tasks))
        model.release.set()
        await first
        assert [await t for t in tasks] == [[f"out:{x}" for x in items] for items in requests]
        later = model.passes[1:]
        assert sorted(x for p in later for x in p) == sorted(x for items in requests for x in items)
        owners = {x: k for k, items in enumerate(requests) for x in items}
        assert all(len(p) <= max_items or len({owners[x] for x in p}) == 1 for p in later)
        batcher.close()

    asyncio.run(scenario())


# --- the service ------------------------------------------------------------------------------------------------------


def _texts(n: int) -> list[str]:
    return [f"w{k} Obama visits Paris x{k}" for k in range(n)]


def test_batching_settings_are_checked_and_reported_by_info(tagger):
    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import Batching, create_app

    info = TestClient(create_app(tagger, batching=Batching(batch_max=7, batch_wait_ms=2.5))).get("/info").json()
    assert info["batching"] == {"batch_max": 7, "batch_wait_ms": 2.5}
    for bad, option in [({"batch_max": 0}, "--batch-max"), ({"batch_wait_ms": float("nan")}, "--batch-wait-ms")]:
        with pytest.raises(MscmtError, match=option):
            Batching(**bad)


def test_concurrent_requests_share_a_forward_pass_and_each_gets_its_own_answer(tagger):
    """40 /tag requests, a bad one among them and a /tag/batch with a bad item: all queued while the
    model is busy, so they make one pass; every good request gets its own tokens, the bad ones their 422."""
    import httpx

    from mscmt_cli.tagging.server import Batching, create_app

    app = create_app(tagger, batching=Batching(batch_max=64, batch_wait_ms=0))
    batcher, model = app.state.batcher, app.state.batcher.run
    busy, release = threading.Event(), threading.Event()

    def slow_first_pass(items):
        busy.set()
        assert release.wait(60)
        return model(items)

    batcher.run = slow_first_pass
    texts = _texts(40)
    unreadable = base64.b64encode(b"not an image").decode()
    png = base64.b64encode(image_bytes((10, 200, 10), (32, 24))).decode()

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc", timeout=120) as client:
            first = asyncio.create_task(client.post("/tag", json={"text": "first"}))
            await until(busy.is_set)  # the model is busy with a first request ...
            posts = [client.post("/tag", json={"text": t, **({"image": png} if k % 3 == 0 else {})}) for k, t in enumerate(texts)]
            posts.insert(20, client.post("/tag", json={"text": "bad image", "image": unreadable}))
            posts.append(client.post("/tag/batch", json={"items": [{"text": "b0 x"}, {"text": "b1 y"}, {"text": "b2 z"}]}))
            posts.append(client.post("/tag/batch", json={"items": [{"text": "c0"}, {"text": "c1", "image": unreadable}]}))
            tasks = [asyncio.create_task(p) for p in posts]
            await until(lambda: batcher.waiting == len(tasks))  # ... while all the others arrive
            release.set()
            return [await first] + [await t for t in tasks]

    answers = asyncio.run(scenario())
    first, tagged, bad, batch, bad_batch = answers[0], answers[1:21] + answers[22:42], answers[21], answers[42], answers[43]
    assert first.status_code == 200 and first.json()["tokens"] == ["first"]
    for text, answer in zip(texts, tagged):
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"] == text and answer.json()["tokens"] == text.split()
    assert [answer.json()["tags"] for answer in tagged[:3]] == [tagger.tag(t).tags for t in texts[:3]]
    assert bad.status_code == 422 and bad.json()["detail"].startswith("image: unreadable image")
    assert batch.status_code == 200 and [r["tokens"] for r in batch.json()["results"]] == [["b0", "x"], ["b1", "y"], ["b2", "z"]]
    assert bad_batch.status_code == 422 and bad_batch.json()["detail"].startswith("items[1]: image: unreadable image")
    # the first request alone, then the 43 others (48 tweets) in one pass
    assert batcher.stats.sizes == [1, 40 + 1 + 3 + 2] and batcher.stats.requests == 44


def test_many_concurrent_clients_over_threads_each_get_their_own_answer(tagger):
    """Threads and TestClient (each request in an event loop of its own): still no answer crosses over."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from mscmt_cli.tagging.server import Batching, create_app

    app = create_app(tagger, batching=Batching(batch_max=8, batch_wait_ms=20))
    client = TestClient(app)
    texts = _texts(48)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: client.post("/tag", json={"text": t}), texts))
    assert [a.json()["tokens"] for a in answers] == [t.split() for t in texts]
    stats = app.state.batcher.stats
    assert stats.requests == 48 and max(stats.sizes) <= 8
