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

Missing captions follow the image store's policies:
    ``blank``  an image without a caption reads as the empty caption ""; each
               such id is counted and reported once, at the end of the run.
    ``error``  it stops the run, naming the captions file and the id.

A record's digest is the SHA-256 of the caption's UTF-8 text, so the feature
cache keys on the caption's content (the blank stand-in shares the digest of a
genuinely empty caption: both encode "").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mscmt_cli.data.images import check_policy, substitution_report
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.strict_json import loads as strict_loads

BLANK_CAPTION = ""
_LINE = re.compile(r"^(?P<image>[^\s:]+)\s*:(?P<caption>.*)$")
_EXTENSION = re.compile(r"\.(jpe?g|png|gif|bmp|webp|tiff?)$", re.IGNORECASE)


@dataclass
class CaptionRecord:
    """A caption's SHA-256 (its cache key) and the caption itself."""

    digest: str
    content: str


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


@dataclass
class CaptionStore:
    """Captions by image id under a missing-caption policy (``blank`` or ``error``)."""

    path: Path
    captions: dict[str, str]
    policy: str = "blank"
    substituted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_policy(self.policy)

    @classmethod
    def from_file(cls, path: Path, policy: str = "blank") -> CaptionStore:
        """Read a captions file (``<id>.jpg :<caption>`` lines or JSON Lines)."""
        check_policy(policy)  # before reading a possibly large file
        return cls(Path(path), read_captions(Path(path)), policy)

    def __len__(self) -> int:
        return len(self.captions)

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and image_key(image_id) in self.captions

    def load(self, image_id: str, decode: bool = True) -> CaptionRecord:
        """The caption of ``image_id`` (``decode`` is accepted for the store protocol; captions are always returned).

        An id without a caption raises under ``error`` and reads as "" under ``blank``.
        """
        caption = self.captions.get(image_key(image_id))
        if caption is None:
            if self.policy == "error":
                raise MscmtError(f"{self.path}: no caption for image {image_id!r} (policy 'error')")
            self.substituted.append(image_id)
            caption = BLANK_CAPTION
        return CaptionRecord(caption_digest(caption), caption)

    def require(self, image_ids: Iterable[str]) -> None:
        """Under ``error``, raise (as :meth:`load` would) for the first of ``image_ids`` without a caption; under ``blank`` nothing."""
        if self.policy == "error":
            missing = next((i for i in image_ids if i not in self), None)
            if missing is not None:
                self.load(missing)

    def report(self) -> str | None:
        """One line about images without a caption, or None when there were none."""
        return substitution_report(self.substituted, f"image(s) without a caption in {self.path} read as an empty caption (policy 'blank')")
