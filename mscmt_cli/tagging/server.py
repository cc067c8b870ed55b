"""The JSON HTTP API of ``mscmt serve`` (FastAPI), around one :class:`Tagger` loaded once.

Endpoints:
    ``GET /health``      ``{"status": "ok"}``
    ``GET /info``        model components, labels, gate, image input, limits
    ``POST /tag``        one tweet. JSON ``{"text": "...", "image": "<base64>"}``
                         (``tokens`` instead of / besides ``text``; ``caption`` for
                         caption models; the base64 may be a ``data:`` URI), or
                         multipart form data with a ``text`` field and an ``image``
                         file. Answer: ``{"text"?, "tokens", "tags", "entities"}``.
    ``POST /tag/batch``  JSON ``{"items": [<as /tag>, ...]}`` -> ``{"results": [...]}``.

Images arrive only as bytes: no file path named in a request is ever opened.
Bad input is a 4xx with ``{"detail": "<message>"}``: 400 malformed JSON, form
or base64; 413 body, image, batch or text over its limit; 415 other content
types; 422 a well-formed request that cannot be tagged (no text, empty tweet,
unreadable image).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mscmt_cli import __version__
from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.doc import Doc, InputError, make_doc
from mscmt_cli.strict_json import loads as strict_loads
from mscmt_cli.tagging.inputs import optional_str
from mscmt_cli.tagging.stream import NOT_FINITE
from mscmt_cli.tagging.tagger import Tagger, TagResult


@dataclass(frozen=True)
class Limits:
    """Request size limits of the service."""

    max_body_bytes: int = 10 * 2**20
    max_image_bytes: int = 8 * 2**20
    max_batch: int = 64
    max_text_chars: int = 10_000
    max_tokens: int = 2_000


@dataclass
class Item:
    """One validated request item: the tweet, image bytes or caption, and whether it had text."""

    doc: Doc
    image: bytes | None
    caption: str | None


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413, before any parsing."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _reply(scope, receive, send, 400, "invalid Content-Length header")
            if int(declared) > self.limit:
                return await _reply(scope, receive, send, 413, f"request body over {self.limit} bytes")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await _reply(scope, receive, send, 413, f"request body over {self.limit} bytes")
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(scope: dict, receive: Callable, send: Callable, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def _fail(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


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


def parse_item(obj: Any, limits: Limits, where: str = "") -> Item:
    """Validate one JSON tweet object (``where`` prefixes messages, e.g. ``items[3]: ``)."""
    if not isinstance(obj, dict):
        raise _fail(422, f"{where}expected a JSON object with 'text' or 'tokens'")
    text, tokens = obj.get("text"), obj.get("tokens")
    if isinstance(text, str) and len(text) > limits.max_text_chars:
        raise _fail(413, f"{where}'text' over {limits.max_text_chars} characters")
    if isinstance(tokens, list) and (len(tokens) > limits.max_tokens or sum(len(t) for t in tokens if isinstance(t, str)) > limits.max_text_chars):
        raise _fail(413, f"{where}'tokens' over {limits.max_tokens} tokens or {limits.max_text_chars} characters")
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
        form = await request.form(max_files=1, max_fields=8, max_part_size=limits.max_body_bytes)
    except HTTPException:
        raise
    except Exception as err:  # python-multipart's errors on malformed bodies
        raise _fail(400, f"malformed form data ({type(err).__name__})") from None
    text, upload = form.get("text"), form.get("image")
    if text is not None and not isinstance(text, str):
        raise _fail(422, "form field 'text' must be a plain field, not a file")
    image = None
    if upload is not None:
        if isinstance(upload, str):
            raise _fail(422, "form field 'image' must be a file upload (or send JSON with base64)")
        image = await upload.read(limits.max_image_bytes + 1)
        if len(image) > limits.max_image_bytes:
            raise _fail(413, f"image over {limits.max_image_bytes} bytes")
        if not image:
            image = None
    caption = form.get("caption")
    obj = {"text": text, "caption": caption if isinstance(caption, str) else None}
    item = parse_item(obj, limits)
    item.image = image
    return item


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


def _answer(item: Item, result: TagResult) -> dict[str, Any]:
    head = {"text": item.doc.text} if item.doc.has_text else {}
    return {**head, **result.as_dict()}


def create_app(tagger: Tagger, limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving ``tagger`` (the model is loaded by the caller, once)."""
    limits = limits or Limits()
    app = FastAPI(title="mscmt", version=__version__, description="Multimodal NER for tweets")
    lock = threading.Lock()  # one forward pass at a time: the model and its caches are shared

    def run(items: list[Item]) -> list[TagResult]:
        with lock:
            feats, errors = tagger.images.features([tagger.images.input_for(i.image, i.caption) for i in items])
            if errors:
                k = min(errors)
                raise MscmtError(f"{'items[%d]: ' % k if len(items) > 1 else ''}{errors[k]}")
            return tagger.predict([i.doc for i in items], feats)  # type: ignore[arg-type]

    async def tag_items(items: list[Item]) -> list[dict[str, Any]]:
        try:
            results = await run_in_threadpool(run, items)
        except MscmtError as err:
            raise _fail(422, str(err)) from None
        if not all(r.is_finite() for r in results):  # the answer would not be JSON; the fault is the model's
            raise _fail(500, NOT_FINITE)
        return [_answer(i, r) for i, r in zip(items, results)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    info_cache: dict[str, Any] = {}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        if not info_cache:
            def describe() -> dict[str, Any]:
                with lock:
                    return tagger.info()

            info_cache.update(await run_in_threadpool(describe))
        return {**info_cache, "version": __version__, "limits": asdict(limits)}

    @app.post("/tag")
    async def tag(request: Request) -> dict[str, Any]:
        kind = _content_type(request)
        if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            item = await _form_item(request, limits)
        elif kind == "application/json":
            item = parse_item(await _json_body(request), limits)
        else:
            raise _fail(415, f"unsupported content type {kind!r}: send application/json or multipart/form-data")
        return (await tag_items([item]))[0]

    @app.post("/tag/batch")
    async def tag_batch(request: Request) -> dict[str, Any]:
        if _content_type(request) != "application/json":
            raise _fail(415, "send application/json: {\"items\": [{\"text\": ...}, ...]}")
        body = await _json_body(request)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _fail(422, "expected a JSON object {\"items\": [...]}")
        if not items:
            raise _fail(422, "'items' is empty")
        if len(items) > limits.max_batch:
            raise _fail(413, f"batch of {len(items)} items over the limit of {limits.max_batch}")
        parsed = [parse_item(obj, limits, f"items[{k}]: ") for k, obj in enumerate(items)]
        return {"results": await tag_items(parsed)}

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    return app
