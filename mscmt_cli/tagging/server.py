"""The JSON HTTP API of ``mscmt serve`` (FastAPI), around one :class:`Tagger` loaded once.

Endpoints:
    ``GET /``            a page to try the model in a browser (:mod:`mscmt_cli.tagging.page`)
    ``GET /health``      ``{"status": "ok"}``
    ``GET /info``        model components, labels, gate, image input, limits
    ``POST /tag``        one tweet. JSON ``{"text": "...", "image": "<base64>"}``
                         (``tokens`` instead of / besides ``text``; ``caption`` for
                         caption models; the base64 may be a ``data:`` URI), or
                         multipart form data with a ``text`` field and an ``image``
                         file. Answer: ``{"text"?, "tokens", "tags", "entities"}``.
    ``POST /tag/batch``  JSON ``{"items": [<as /tag>, ...]}`` -> ``{"results": [...]}``.
    ``?explain=true``    on either: each answer also holds ``"explain"``: the gate per token,
                         the caption read, and ``html``, the sections of ``mscmt explain``'s page.

Requests that arrive together are tagged in one pass of the model
(:class:`Batching`, :mod:`mscmt_cli.tagging.batcher`); each keeps its own answer and
its own errors: an unreadable image is that request's 422, not its neighbours'.

With an API key (``mscmt serve --api-key-file``, ``MSCMT_API_KEY``) every request but
``GET /health`` and the page at ``GET /`` needs ``Authorization: Bearer <key>``, else 401 (:mod:`mscmt_cli.tagging.auth`).

Images arrive only as bytes: no file path named in a request is ever opened.
Bad input is a 4xx with ``{"detail": "<message>"}``: 400 malformed JSON, form
or base64, and text that is not valid Unicode (invalid UTF-8 in a JSON body or
a form field, a lone surrogate ``\\ud800`` in a string); 413 body, image,
batch, text, caption or tokens over its limit; 415 other content types; 422 a
well-formed request that cannot be tagged (no text, empty tweet, unreadable or
oversized image). A 500 says the model's scores were not finite (broken weights).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from mscmt_cli.data.doc import Doc, InputError, make_doc
from mscmt_cli.errors import MscmtError
from mscmt_cli.strict_json import loads as strict_loads
from mscmt_cli.tagging.auth import BearerAuth
from mscmt_cli.tagging.batcher import MicroBatcher
from mscmt_cli.tagging.forms import FormError, parse_form
from mscmt_cli.tagging.inputs import BadRecord, optional_str
from mscmt_cli.tagging.page import explain_answer, page_headers, page_html
from mscmt_cli.tagging.processor import TweetInput
from mscmt_cli.tagging.tagger import NOT_FINITE, Tagger, TagResult
from mscmt_cli.version import __version__


@dataclass(frozen=True)
class Limits:
    """Request size limits of the service."""

    max_body_bytes: int = 10 * 2**20
    max_image_bytes: int = 8 * 2**20
    max_batch: int = 64
    max_text_chars: int = 10_000  # also the longest 'caption', and all 'tokens' together
    max_tokens: int = 2_000
    body_seconds: float = 60.0  # a request's whole body must arrive within this (else 408): a half-sent body holds no slot for ever


@dataclass
class Item:
    """One validated request item: the tweet, image bytes or caption, and whether it had text."""

    doc: Doc
    image: bytes | None
    caption: str | None


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413, before any parsing,
    and bodies not all sent within ``seconds`` with 408."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int, seconds: float = 60.0) -> None:
        self.app = app
        self.limit = limit
        self.seconds = seconds

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _reply(scope, receive, send, 400, "invalid Content-Length header")
            if int(declared) > self.limit:
                return await _reply(scope, receive, send, 413, f"request body over {self.limit} bytes")
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self.seconds):
                if not await self._read(chunks, receive):
                    return  # client went away
        except TimeoutError:
            return await _reply(scope, receive, send, 408, f"request body not sent within {self.seconds:g} seconds")
        except _TooLarge:
            return await _reply(scope, receive, send, 413, f"request body over {self.limit} bytes")
        body, sent = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, chunks: list[bytes], receive: Callable) -> bool:
        """Read the whole body into ``chunks``; False if the client went away."""
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return False
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                raise _TooLarge
            more = message.get("more_body", False)
        return True


class _TooLarge(Exception):
    """A body over the limit (raised inside :meth:`BodyLimit._read`)."""


async def _reply(scope: dict, receive: Callable, send: Callable, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def _fail(status: int, detail: str) -> HTTPException:
    # a detail quoting user input must still be writable as UTF-8 JSON
    return HTTPException(status_code=status, detail=detail.encode("utf-8", "backslashreplace").decode("utf-8"))


def decode_base64_image(value: Any, limits: Limits, where: str) -> bytes | None:
    """A base64 (or ``data:`` URI) string -> bytes; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(422, f"{where}'image' must be a base64 string, got {type(value).__name__}")
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    if len(payload) > limits.max_image_bytes * 4 // 3 + 4:
        raise _fail(413, f"{where}image over {limits.max_image_bytes} bytes")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(400, f"{where}'image' is not valid base64") from None
    if not data:
        raise _fail(422, f"{where}'image' is empty")
    return data


def _check_text(value: Any, name: str, where: str) -> None:
    """Refuse a string holding a lone surrogate (a JSON ``\\ud800`` escape): it is not Unicode text,
    and the answer, which repeats it, could not be written as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise _fail(400, f"{where}{name} is not valid Unicode: lone surrogate {value[err.start]!r} at character {err.start}") from None


def parse_item(obj: Any, limits: Limits, where: str = "") -> Item:
    """Validate one JSON tweet object (``where`` prefixes messages, e.g. ``items[3]: ``)."""
    if not isinstance(obj, dict):
        raise _fail(422, f"{where}expected a JSON object with 'text' or 'tokens'")
    text, tokens, caption = obj.get("text"), obj.get("tokens"), obj.get("caption")
    for name, value in (("'text'", text), ("'caption'", caption)):
        if isinstance(value, str) and len(value) > limits.max_text_chars:
            raise _fail(413, f"{where}{name} over {limits.max_text_chars} characters")
        _check_text(value, name, where)
    if isinstance(tokens, list) and (
        len(tokens) > limits.max_tokens or sum(len(t) for t in tokens if isinstance(t, str)) > limits.max_text_chars
    ):
        raise _fail(413, f"{where}'tokens' over {limits.max_tokens} tokens or {limits.max_text_chars} characters")
    for i, token in enumerate(tokens if isinstance(tokens, list) else []):
        _check_text(token, f"'tokens'[{i}]", where)
    try:
        caption = optional_str(obj, "caption")
        doc = make_doc(text, tokens)
    except InputError as err:
        raise _fail(422, f"{where}{err}") from None
    if len(doc.tokens) > limits.max_tokens:
        raise _fail(413, f"{where}tweet over {limits.max_tokens} tokens")
    return Item(doc, decode_base64_image(obj.get("image"), limits, where), caption)


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return strict_loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(400, "request body is not valid UTF-8") from None
    except json.JSONDecodeError as err:
        raise _fail(400, f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (ValueError, RecursionError) as err:
        raise _fail(400, f"invalid JSON: {str(err)[:80] or type(err).__name__}") from None


async def _form_item(request: Request, limits: Limits) -> Item:
    try:
        form = parse_form(await request.body(), request.headers.get("content-type", ""), limits.max_image_bytes)
    except FormError as err:
        raise _fail(err.status, str(err)) from None
    item = parse_item({"text": form.fields.get("text"), "caption": form.fields.get("caption")}, limits)
    item.image = form.image
    return item


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


def _explain_flag(request: Request) -> bool:
    """The ``explain`` query parameter: ``true``/``1`` or ``false``/``0``, absent = false."""
    values = request.query_params.getlist("explain")
    if len(values) > 1 or (values and values[0].lower() not in ("true", "1", "false", "0")):
        raise _fail(400, "query parameter 'explain' must be true or false (once)")
    return bool(values) and values[0].lower() in ("true", "1")


def _answer(item: Item, result: TagResult) -> dict[str, Any]:
    head = {"text": item.doc.text} if item.doc.has_text else {}
    return {**head, **result.as_dict()}


@dataclass(frozen=True)
class Batching:
    """How the service combines concurrent requests into one forward pass (:mod:`mscmt_cli.tagging.batcher`)."""

    batch_max: int = 32  # most tweets in one pass (a larger /tag/batch request runs alone)
    batch_wait_ms: float = 5.0  # how long the oldest waiting request waits for others to join it

    def __post_init__(self) -> None:
        if self.batch_max < 1:
            raise MscmtError(f"--batch-max: must be at least 1, got {self.batch_max}")
        if not 0 <= self.batch_wait_ms <= 60_000:
            raise MscmtError(f"--batch-wait-ms: must be a number of milliseconds from 0 to 60000, got {self.batch_wait_ms}")


def create_app(tagger: Tagger, limits: Limits | None = None, *, api_key: str | None = None, batching: Batching | None = None) -> FastAPI:
    """The FastAPI application serving ``tagger`` (the model is loaded by the caller, once).

    With ``api_key``, every request but ``GET /health`` must carry ``Authorization: Bearer <api_key>``.
    Concurrent requests are tagged together, per ``batching``; each keeps its own answer and errors.
    """
    limits = limits or Limits()
    batching = batching or Batching()
    lock = threading.Lock()  # the model and its caches are shared: the batcher's passes and /info take turns

    def run(items: list[Item]) -> list[TagResult | BadRecord]:
        inputs = [TweetInput(i.doc, i.image, i.caption, line=k) for k, i in enumerate(items)]
        return tagger.tag_outcomes(tagger.processor.process(inputs))

    batcher: MicroBatcher[Item, TagResult | BadRecord] = MicroBatcher(run, batching.batch_max, batching.batch_wait_ms / 1000, lock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(batcher.close)

    app = FastAPI(title="mscmt", version=__version__, description="Multimodal NER for tweets", lifespan=lifespan)
    app.state.batcher = batcher

    async def tag_items(items: list[Item], explain: bool = False) -> list[dict[str, Any]]:
        try:
            outcomes = await batcher.submit(items)
        except MscmtError as err:
            raise _fail(422, str(err)) from None
        for k, outcome in enumerate(outcomes):
            if isinstance(outcome, BadRecord) and outcome.message != NOT_FINITE:
                raise _fail(422, f"{f'items[{k}]: ' if len(items) > 1 else ''}{outcome.message}")
        if any(isinstance(o, BadRecord) for o in outcomes):  # the answer would not be JSON; the fault is the model's
            raise _fail(500, NOT_FINITE)
        done = [(i, r) for i, r in zip(items, outcomes) if isinstance(r, TagResult)]
        answers = [_answer(i, r) for i, r in done]
        if explain:
            info = await model_info()
            for answer, (i, r) in zip(answers, done):
                answer["explain"] = await run_in_threadpool(explain_answer, r, i.image, info)
        return answers

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers=page_headers())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    info_cache: dict[str, Any] = {}

    async def model_info() -> dict[str, Any]:
        if not info_cache:

            def describe() -> dict[str, Any]:
                with lock:
                    return tagger.info()

            info_cache.update(await run_in_threadpool(describe))
        return info_cache

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            **(await model_info()),
            "version": __version__,
            "limits": asdict(limits),
            "batching": asdict(batching),
            "api_key_required": api_key is not None,
        }

    @app.post("/tag")
    async def tag(request: Request) -> dict[str, Any]:
        kind = _content_type(request)
        if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            item = await _form_item(request, limits)
        elif kind == "application/json":
            item = parse_item(await _json_body(request), limits)
        else:
            raise _fail(415, f"unsupported content type {kind!r}: send application/json or multipart/form-data")
        return (await tag_items([item], _explain_flag(request)))[0]

    @app.post("/tag/batch")
    async def tag_batch(request: Request) -> dict[str, Any]:
        if _content_type(request) != "application/json":
            raise _fail(415, 'send application/json: {"items": [{"text": ...}, ...]}')
        body = await _json_body(request)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _fail(422, 'expected a JSON object {"items": [...]}')
        if not items:
            raise _fail(422, "'items' is empty")
        if len(items) > limits.max_batch:
            raise _fail(413, f"batch of {len(items)} items over the limit of {limits.max_batch}")
        parsed = [parse_item(obj, limits, f"items[{k}]: ") for k, obj in enumerate(items)]
        return {"results": await tag_items(parsed, _explain_flag(request))}

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes, seconds=limits.body_seconds)
    if api_key is not None:  # added last, so it runs first: no body is read for a caller without the key
        app.add_middleware(BearerAuth, key=api_key)
    return app
