"""Form bodies of ``POST /tag``: ``multipart/form-data`` and urlencoded, read in memory, every odd form a one-line 4xx.

A form has at most the plain fields ``text`` and ``caption`` and one file, ``image``, each once.
Everything else is refused with a :class:`FormError` naming the cause (never "malformed form
data" alone): more than :data:`MAX_FORM_FIELDS` parts, a field given twice, a second file, a
name that is not one of the three (``text[]``, ``items[0][text]``, ``Text``), a part without a
name, a missing or malformed boundary, a body that ends before its closing boundary, bytes
that are not text in a text field.

The body was already read whole and bounded by the service's body limit, so every part is kept
in memory: nothing is spooled to a temporary file. The multipart tokenizer is python-multipart's
:class:`~python_multipart.multipart.MultipartParser`, given a silent logger: its warnings on a
bad body would otherwise reach the log once per request.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

#: Most parts in a form (text, caption, image and a few spare); more is refused before any is read.
MAX_FORM_FIELDS = 8
#: Longest boundary RFC 2046 (section 5.1.1) allows.
MAX_BOUNDARY = 70
#: The plain fields a form may hold; the file is :data:`FILE_FIELD`.
TEXT_FIELDS = ("text", "caption")
FILE_FIELD = "image"
_KNOWN = "the fields are 'text', 'caption' and the file 'image'"

_SILENT = logging.getLogger("mscmt_cli.tagging.forms.parser")
_SILENT.disabled = True  # python-multipart logs a warning per bad body; the client gets the cause instead


class FormError(Exception):
    """A form the service refuses: ``status`` (400 malformed, 413 too large, 422 not taggable) and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Form:
    """A read form: its text fields (decoded) and the bytes of its ``image`` file, if any."""

    fields: dict[str, str]
    image: bytes | None


@dataclass
class _Part:
    """One part of a multipart body as it arrives: raw headers and data."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    data: bytearray = field(default_factory=bytearray)
    name: str = ""
    filename: bytes | None = None


def parse_form(body: bytes, content_type: str, max_image_bytes: int) -> Form:
    """The text fields and the ``image`` file of a ``multipart/form-data`` or urlencoded ``body``.

    Fields are decoded strictly (UTF-8, or the ``charset`` the Content-Type names): bytes that
    are not valid text are a 400, never replaced or read as Latin-1.
    """
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(content_type)
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        codecs.lookup(charset)
    except LookupError:
        raise FormError(400, f"unknown charset {charset[:40]!r} in the Content-Type") from None
    if kind == b"application/x-www-form-urlencoded":
        named = _urlencoded_parts(body)
    else:
        named = _multipart_parts(body, params.get(b"boundary"))
    return _read_form(named, charset, max_image_bytes)


def _urlencoded_parts(body: bytes) -> list[_Part]:
    """``a=1&b=2`` -> parts (``+`` is a space, ``%XX`` a byte; an empty piece between ``&&`` is skipped)."""
    pieces = [p for p in body.split(b"&") if p]
    _check_count(len(pieces))
    parts = []
    for piece in pieces:
        name, _, value = piece.partition(b"=")
        part = _Part(data=bytearray(unquote_to_bytes(value.replace(b"+", b" "))))
        part.name = _field_name(unquote_to_bytes(name.replace(b"+", b" ")))
        parts.append(part)
    return parts


def _multipart_parts(body: bytes, boundary: bytes | None) -> list[_Part]:
    """The parts of a ``multipart/form-data`` body, each named; the body must end with its closing boundary."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, MultipartState

    if not boundary:
        raise FormError(400, "multipart/form-data without a boundary in the Content-Type header")
    if len(boundary) > MAX_BOUNDARY or any(b < 0x20 or b > 0x7E for b in boundary):
        raise FormError(400, f"invalid multipart boundary in the Content-Type header (1 to {MAX_BOUNDARY} printable ASCII characters)")
    if not body.lstrip(b"\r\n").startswith(b"--" + boundary):
        what = "is empty" if not body.strip() else f"does not start with its boundary '--{boundary.decode('ascii')}'"
        raise FormError(400, f"malformed form data: the body {what}")
    parts: list[_Part] = []
    count = 0

    def begin() -> None:
        nonlocal count
        count += 1
        if count <= MAX_FORM_FIELDS:  # beyond, parts are only counted (the answer says how many)
            parts.append(_Part())

    def into(attr: str) -> Callable[[bytes, int, int], None]:
        def append(data: bytes, start: int, end: int) -> None:
            if count <= MAX_FORM_FIELDS:
                getattr(parts[-1], attr).extend(data[start:end])

        return append

    def header_end() -> None:
        if count > MAX_FORM_FIELDS:
            return
        part = parts[-1]
        part.headers.append((bytes(part.header_name).strip().lower(), bytes(part.header_value).strip()))
        part.header_name.clear()
        part.header_value.clear()

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": into("header_name"),
        "on_header_value": into("header_value"),
        "on_header_end": header_end,
        "on_part_data": into("data"),
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    parser.logger = _SILENT
    try:
        parser.write(body)
    except MultipartParseError as err:
        _check_count(count)
        raise FormError(400, f"malformed form data at byte {err.offset + 1}: {_cause(err)}") from None
    _check_count(count)
    if parser.state != MultipartState.END:
        raise FormError(
            400, f"malformed form data: the body ends before its closing boundary '--{boundary.decode('ascii')}--' (truncated?)"
        )
    for k, part in enumerate(parts, 1):
        _name_part(part, k)
    return parts


def _cause(err: Exception) -> str:
    """python-multipart's message without its offsets ("Did not find CR at end of boundary (12)" -> "did not find CR ...")."""
    text = re.sub(r"\s*(\(\d+\)|at (index )?\d+)\s*$", "", str(err)).strip()
    return text[:1].lower() + text[1:120]


def _name_part(part: _Part, k: int) -> None:
    """Set ``part.name`` and ``part.filename`` from its Content-Disposition; refuse odd headers."""
    from python_multipart.multipart import parse_options_header

    headers = dict(part.headers)
    disposition, params = parse_options_header(headers.get(b"content-disposition", b""))
    if disposition != b"form-data" or b"name" not in params:
        raise FormError(400, f"form part {k} has no 'Content-Disposition: form-data; name=...' header")
    part.name = _field_name(params[b"name"])
    part.filename = params.get(b"filename")
    if part.filename is None and re.search(rb";\s*filename\*\s*=", headers.get(b"content-disposition", b""), re.IGNORECASE):
        part.filename = b""  # an RFC 2231 name only (filename*=UTF-8''...): still a file
    encoding = headers.get(b"content-transfer-encoding", b"binary").lower()
    if encoding not in (b"binary", b"7bit", b"8bit"):
        raise FormError(
            400,
            f"form field {part.name!r}: Content-Transfer-Encoding {encoding.decode('latin-1')[:20]!r} is not read (send the bytes as they are)",
        )


def _field_name(raw: bytes) -> str:
    """A part's name: UTF-8 text, not empty."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(400, f"a form field name is not valid UTF-8 ({raw[:40]!r})") from None
    if not name:
        raise FormError(400, f"a form field without a name; {_KNOWN}")
    return name


def _check_known(name: str) -> None:
    """Refuse a name that is not one of the form's fields (``text[]`` or ``a[b]`` is not read as ``text``)."""
    if name not in (*TEXT_FIELDS, FILE_FIELD):
        odd = "nested or list names are not read" if re.search(r"[\[\].]", name) else "unknown form field"
        raise FormError(422, f"{odd}: {name[:40]!r}; {_KNOWN}")


def _check_count(count: int) -> None:
    if count > MAX_FORM_FIELDS:
        raise FormError(400, f"too many form fields ({count}; at most {MAX_FORM_FIELDS}: 'text', 'caption' and one file 'image')")


def _read_form(parts: list[_Part], charset: str, max_image_bytes: int) -> Form:
    """Check the named parts (each name once, one file, the file only as ``image``) and decode the text fields."""
    files = [p.name for p in parts if p.filename is not None]
    if len(files) > 1:
        raise FormError(400, f"more than one file in the form ({', '.join(map(repr, files))}): send one, as 'image'")
    seen: set[str] = set()
    for part in parts:
        if part.name in seen:
            raise FormError(400, f"form field {part.name!r} given twice")
        seen.add(part.name)
    for part in parts:
        _check_known(part.name)
    fields: dict[str, str] = {}
    image = None
    for part in parts:
        if part.name == FILE_FIELD:
            if part.filename is None:
                raise FormError(422, "form field 'image' must be a file upload (or send JSON with base64)")
            if len(part.data) > max_image_bytes:
                raise FormError(413, f"image over {max_image_bytes} bytes")
            image = bytes(part.data) or None
        elif part.filename is not None:
            raise FormError(422, f"form field {part.name!r} must be a plain field, not a file")
        else:
            fields[part.name] = _decode(bytes(part.data), part.name, charset)
    return Form(fields, image)


def _decode(raw: bytes, name: str, charset: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as err:
        raise FormError(400, f"form field {name!r} is not valid {charset} (byte 0x{raw[err.start]:02x} at byte {err.start + 1})") from None
