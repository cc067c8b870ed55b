"""The caption store: one caption per image id, read from a captions file.

An image encoder with ``input_kind = "caption"`` reads an image through its
caption. Two file formats are accepted, told apart by the first non-blank
character of the file (``{`` means JSON Lines):

    <id>.jpg :<caption>                         the BLIP-2 files of ../shared/data/captions
    {"image": "<id>.jpg", "caption": "..."}     JSON Lines (other keys are ignored)

Ids are matched without their image extension (``.jpg``, ``.jpeg``, ``.png``,
...) or directory part, so ``IMGID:16_05_01_7`` finds ``16_05_01_7.jpg``.
Surrounding whitespace is not part of a caption; blank lines are skipped. An
empty caption (``71406.jpg :`` occurs in BLIP2_15.txt) is a caption, "".

Errors name the file and line: a malformed line, bad JSON (also ``NaN``,
``1e999``), a missing or non-string field, a string that is not Unicode (a lone
surrogate such as ``\\ud800``), bytes that are not UTF-8, a NUL character (a
UTF-16 file), an empty id. A duplicate id is accepted when it repeats the
same caption and is an error when the caption differs: keeping either one
would silently drop the other, and the real files have no duplicates.

Missing captions follow one policy, the image store's, in one message
(:func:`no_caption`: ``[file:line: ]no caption for image 'ID' in FILE``):
    ``blank``  an image without a caption reads as the empty caption ""; each
               such id is counted and reported once, at the end of the run.
    ``error``  it stops the run (``mscmt tag``: reports the line), naming the captions file and the id.

A record's digest is the SHA-256 of the caption's UTF-8 text, so the feature
cache keys on the caption's content (the blank stand-in shares the digest of a
genuinely empty caption: both encode "").
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from mscmt_cli.data.images import check_policy, substitution_report
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.strict_json import loads as strict_loads

BLANK_CAPTION = ""
_LINE = re.compile(r"^(?P<image>[^\s:]+)\s*:(?P<caption>.*)$")
_EXTENSION = re.compile(r"\.(jpe?g|png|gif|bmp|webp|tiff?)$", re.IGNORECASE)


def caption_digest(caption: str) -> str:
    """SHA-256 (hex) of the caption's UTF-8 text."""
    return hashlib.sha256(caption.encode("utf-8")).hexdigest()


def image_key(image: str) -> str:
    """The id an image is matched by: no directory, no image extension."""
    return _EXTENSION.sub("", image.strip().replace("\\", "/").rsplit("/", 1)[-1])


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise MscmtError(f"captions file {path}: is a directory")
    if not path.is_file():
        raise MscmtError(f"captions file {path} does not exist")
    return decode_captions(path, path.read_bytes())


def decode_captions(path: Path, data: bytes) -> str:
    """``data`` (the bytes of captions file ``path``) as text; bad UTF-8 or a NUL is a ``file:line`` error."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(path, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at byte {column} of the line)") from None
    nul = text.find("\x00")
    if nul >= 0:  # UTF-16 text without a byte-order mark reads as UTF-8 with a NUL before every ASCII character
        raise DataError(path, text.count("\n", 0, nul) + 1, "NUL character in the file (is it UTF-16? captions files are UTF-8)")
    return text


def _check_unicode(path: Path, number: int, key: str, value: str) -> None:
    """Refuse a lone surrogate (a JSON ``\\ud800`` escape): it is not text, and hashing or encoding it fails later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(
            path, number, f"field {key!r} is not valid Unicode (lone surrogate {value[err.start]!r} at character {err.start + 1})"
        ) from None


def _parse_text_line(path: Path, number: int, line: str) -> tuple[str, str]:
    match = _LINE.match(line)
    if match is None:
        raise DataError(path, number, f"expected '<id>.jpg :<caption>', got {line[:60]!r}")
    return match["image"], match["caption"].strip()


def _parse_json_line(path: Path, number: int, line: str) -> tuple[str, str]:
    try:
        obj = strict_loads(line)
    except json.JSONDecodeError as err:
        raise DataError(path, number, f"not valid JSON ({err.msg} at column {err.colno})") from None
    except (ValueError, RecursionError) as err:  # NaN, 1e999, a 5000-digit integer, absurd nesting
        raise DataError(path, number, f"not valid JSON ({str(err)[:80] or type(err).__name__})") from None
    if not isinstance(obj, dict):
        raise DataError(path, number, f'expected a JSON object {{"image": ..., "caption": ...}}, got {type(obj).__name__}')
    for key in ("image", "caption"):
        if key not in obj:
            raise DataError(path, number, f"missing field {key!r}")
        if not isinstance(obj[key], str):
            raise DataError(path, number, f"field {key!r} must be a string, got {type(obj[key]).__name__}")
        _check_unicode(path, number, key, obj[key])
    return obj["image"], obj["caption"].strip()


def read_captions(path: Path) -> dict[str, str]:
    """Image id (no extension) -> caption, from either format (see the module doc)."""
    path = Path(path)
    return parse_captions(path, _read_text(path))


def parse_captions(path: Path, text: str) -> dict[str, str]:
    """Image id -> caption of the text of captions file ``path`` (either format)."""
    parse = _parse_json_line if text.lstrip()[:1] == "{" else _parse_text_line
    captions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        image, caption = parse(path, number, line)
        key = image_key(image)
        if not key:
            raise DataError(path, number, f"empty image id in {image!r}")
        if key in captions and captions[key] != caption:
            raise DataError(path, number, f"image {key!r} already has a different caption (line {first_line[key]})")
        captions.setdefault(key, caption)
        first_line.setdefault(key, number)
    if not captions:
        raise DataError(path, None, "no captions in the file")
    return captions


def no_caption(name: str, path: Path | None, where: str | None = None) -> str:
    """The one message for an image without a caption: ``[file:line: ]no caption for image 'ID' in FILE`` (without
    a captions file: ``...no caption for image 'ID': pass --captions FILE or --captioner, or give a 'caption'``)."""
    head = f"{where}: " if where else ""
    found = f" in {path}" if path is not None else ": pass --captions FILE or --captioner, or give a 'caption'"
    return f"{head}no caption for image {name[:80]!r}{found}"


class MissingCaption(MscmtError):
    """An image without a caption under policy ``error`` (its message is :func:`no_caption`'s)."""


@dataclass
class CaptionSource:
    """Captions by image id under one missing-caption policy (``blank`` or ``error``), with one end-of-run report.

    Every caption any road reads (training's image and context captions, evaluation, tagging, the
    service) is looked up here, by :meth:`read`: an id without a caption raises :class:`MissingCaption`
    under ``error`` and reads as "" under ``blank``, counted once per id for :meth:`report`.
    ``path`` None is no captions file (every id is missing).
    """

    path: Path | None
    captions: dict[str, str]
    policy: str = "blank"
    missing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_policy(self.policy)

    @classmethod
    def from_file(cls, path: Path | None, policy: str = "blank") -> CaptionSource:
        """Read a captions file (``<id>.jpg :<caption>`` lines or JSON Lines); None: no file, no captions."""
        check_policy(policy)  # before reading a possibly large file
        if path is None:
            return cls(None, {}, policy)
        return cls(Path(path), read_captions(Path(path)), policy)

    def __len__(self) -> int:
        return len(self.captions)

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and image_key(image_id) in self.captions

    def read(self, image_id: str, where: str | None = None) -> str:
        """The caption of ``image_id``; a missing one raises :class:`MissingCaption` (message :func:`no_caption`,
        prefixed with ``where``, a ``file:line``) under ``error``, and reads as "" (counted) under ``blank``."""
        caption = self.captions.get(image_key(image_id))
        if caption is not None:
            return caption
        if self.policy == "error":
            raise MissingCaption(no_caption(image_id, self.path, where))
        self.missing.append(image_id)
        return BLANK_CAPTION

    def report(self) -> str | None:
        """One line about images without a caption, or None when there were none."""
        where = f" in {self.path}" if self.path is not None else " (no --captions file given)"
        return substitution_report(self.missing, f"image(s) without a caption{where} read as an empty caption (policy 'blank')")
