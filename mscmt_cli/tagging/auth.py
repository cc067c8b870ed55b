"""Who may call ``mscmt serve``: an API key sent as ``Authorization: Bearer <key>``.

The key comes from ``--api-key-file FILE`` (one line; a trailing newline is
dropped) or, without that option, from the ``MSCMT_API_KEY`` environment
variable. With a key, every request but ``GET /health`` and the page at ``GET /``
(static: it holds nothing about the model, and asks its user for the key) must carry it, else 401;
without one the service is open to whoever can reach its port, which is why it
listens on loopback unless ``--host`` says otherwise, and then warns.

The key is compared in constant time (``hmac.compare_digest`` over SHA-256
digests, so not even its length leaks) and is never logged, echoed or shown in
``/info``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from fastapi.responses import JSONResponse

from mscmt_cli.errors import MscmtError

#: The environment variable holding the key itself (not a file name).
KEY_VARIABLE = "MSCMT_API_KEY"
#: The requests answered without the key: load balancers' probes, and the page (which sends the key it is given).
OPEN_ROUTES = frozenset({("GET", "/health"), ("HEAD", "/health"), ("GET", "/"), ("HEAD", "/")})
#: Longest key accepted (a header line, not a document).
MAX_KEY_CHARS = 4096


def _checked(key: str, where: str) -> str:
    """``key`` when it can travel in an ``Authorization`` header: one token of visible ASCII."""
    if not key:
        raise MscmtError(f"{where}: the API key is empty")
    if len(key) > MAX_KEY_CHARS:
        raise MscmtError(f"{where}: the API key is over {MAX_KEY_CHARS} characters")
    bad = next((k for k, c in enumerate(key) if not "!" <= c <= "~"), None)
    if bad is not None and key[bad] in "\r\n":
        raise MscmtError(f"{where}: the API key must be one line (a line break at character {bad + 1})")
    if bad is not None:
        raise MscmtError(f"{where}: the API key must be visible ASCII characters, no spaces (character {bad + 1} is not)")
    return key


def read_key_file(path: Path) -> str:
    """The key in ``path`` (one line; a trailing ``\\n`` or ``\\r\\n`` is dropped)."""
    where = f"--api-key-file {path}"
    if path.is_dir():
        raise MscmtError(f"{where}: is a directory, not a file holding the key")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MscmtError(f"{where}: no such file") from None
    except OSError as err:
        raise MscmtError(f"{where}: cannot read it ({err.strerror or type(err).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MscmtError(f"{where}: not a text file (invalid UTF-8)") from None
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            text = text[: -len(ending)]
            break
    return _checked(text, where)


def resolve_api_key(key_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The service's key: from ``key_file`` when given, else ``$MSCMT_API_KEY``, else None (open).

    A variable that is set but empty is an error, not an open service.
    """
    if key_file is not None:
        return read_key_file(key_file)
    if KEY_VARIABLE in environ:
        return _checked(environ[KEY_VARIABLE], f"environment variable {KEY_VARIABLE}")
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def open_warning(host: str, has_key: bool) -> str | None:
    """The warning ``mscmt serve`` prints before listening, or None."""
    if has_key or is_loopback(host):
        return None
    return (
        f"warning: listening on {host} without an API key: anyone who can reach this port can use the model"
        f" (give --api-key-file FILE or set {KEY_VARIABLE})"
    )


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class BearerAuth:
    """ASGI middleware: a request without ``Authorization: Bearer <key>`` gets 401 (but :data:`OPEN_ROUTES`).

    It runs before the body is read, so a caller without the key cannot make the
    service buffer a body either.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], key: str) -> None:
        self.app = app
        self._digest = _digest(key.encode("ascii"))

    def allowed(self, authorization: bytes | None) -> str | None:
        """None when ``authorization`` (the header's raw value) carries the key, else why not."""
        if authorization is None:
            return "missing API key: send the header 'Authorization: Bearer <key>'"
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return "the Authorization header must be 'Bearer <key>'"
        if not hmac.compare_digest(_digest(token.strip()), self._digest):
            return "wrong API key"
        return None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        headers = [v for k, v in scope.get("headers") or [] if k == b"authorization"]
        why = self.allowed(headers[0] if len(headers) == 1 else None)
        if len(headers) > 1:
            why = "more than one Authorization header"
        if why is not None:
            response = JSONResponse({"detail": why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)
