"""Images: the one id -> file rule (:class:`ImageResolver`), bounded reading and decoding, the missing-image policy.

Policies (applied by :class:`~mscmt_cli.features.TokenStore`):
    ``blank``  a missing or unreadable image becomes a neutral grey image; each
               such image is counted and reported once, at the end of the run.
    ``error``  a missing or unreadable image stops the run with its path.

Images are opened with Pillow's decompression-bomb guard on and converted to
RGB (CMYK, 16-bit, palette and alpha images are all accepted).

What one image may cost is bounded before it is decoded: the file is at most
:data:`MAX_IMAGE_BYTES`, and the size read from its header (Pillow reads the
header only, until ``load()``) is at most :data:`MAX_PIXELS` pixels with sides
at most :data:`MAX_ASPECT_RATIO` to 1. An image refused by these checks is an
unreadable image: under ``blank`` it is replaced and counted, under ``error``
the run stops with its path (``mscmt tag`` reports its line and goes on).
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError

from mscmt_cli.errors import MscmtError

K = TypeVar("K")
POLICIES = ("blank", "error")
#: File extensions tried, in order, for an image id without one.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
BLANK_DIGEST = "blank-image"
BLANK_SIZE = 224
MAX_PIXELS = 64_000_000  # larger images are refused as decompression bombs
#: Longest side over shortest side. Image encoders resize the shortest side to their input size S
#: (CLIP: 224) keeping the ratio, so a 63,000,000 x 1 PNG of 61 KB (under MAX_PIXELS) became
#: 224 x 14.1e9 pixels: 193 GB, before any crop. With the ratio at most A the resized image is at
#: most S*S*A*3 bytes: 7.5 MB at S=224, 40 MB at S=518. Long screenshots (1080 x 20000, 18.5:1) and
#: phone panoramas (about 8:1) pass.
MAX_ASPECT_RATIO = 50
#: Largest image file read, in bytes: a 64-megapixel JPEG is about 20 MB, an uncompressed one 192 MB.
MAX_IMAGE_BYTES = 64 * 2**20
#: Most pixels decoded and alive at once in one encoder batch (an image at MAX_PIXELS goes alone):
#: 32 images at MAX_PIXELS would hold 6 GB of RGB.
MAX_BATCH_PIXELS = MAX_PIXELS


def pil_digest(img: Image.Image) -> str:
    """SHA-256 of a PIL image's mode, size and pixels (its cache key; a file's key is the SHA-256 of its bytes)."""
    h = hashlib.sha256(f"pil|{img.mode}|{img.size}|".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def image_loader(image: Any, where: str = "image") -> tuple[str, Callable[[], Image.Image]]:
    """``(digest, loader)`` of a PIL image, encoded bytes or a path (None: the blank image); the loader
    returns an RGB PIL image.

    Raises :class:`MscmtError` for a missing or unreadable path and a file or a PIL image over the
    size limits; the loader raises it for bytes that are not an image or whose header gives a size
    over the limits.
    """
    if image is None:
        return BLANK_DIGEST, blank_image
    if isinstance(image, Image.Image):
        pil = image
        check_image_size(pil.width, pil.height, f"{where} ({pil.width}x{pil.height} PIL image)")
        return pil_digest(pil), lambda: pil.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        where = os.fspath(image)
        image = read_image_file(where)
    if not isinstance(image, (bytes, bytearray, memoryview)):
        raise MscmtError(f"{where}: not an image (got {type(image).__name__})")
    data = bytes(image)
    return hashlib.sha256(data).hexdigest(), lambda: decode_image(data, where)


def blank_image() -> Image.Image:
    """The neutral stand-in used by the ``blank`` policy (mid grey)."""
    return Image.new("RGB", (BLANK_SIZE, BLANK_SIZE), (128, 128, 128))


def check_image_size(width: int, height: int, where: str) -> None:
    """Refuse a size that would cost too much to decode or to resize (:data:`MAX_PIXELS`, :data:`MAX_ASPECT_RATIO`)."""
    if width < 1 or height < 1:
        raise MscmtError(f"{where}: unreadable image (empty: {width}x{height} pixels)")
    if width * height > MAX_PIXELS:
        raise MscmtError(f"{where}: image too large ({width}x{height} pixels; limit {MAX_PIXELS})")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise MscmtError(f"{where}: image of {width}x{height} pixels refused: sides over {MAX_ASPECT_RATIO} to 1")


def decode_image(data: bytes, where: str) -> Image.Image:
    """Decode image bytes to RGB, refusing truncated files, decompression bombs and sizes over the limits."""
    import io

    if len(data) > MAX_IMAGE_BYTES:
        raise MscmtError(f"{where}: image file over {MAX_IMAGE_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                check_image_size(img.width, img.height, where)  # from the header: nothing decoded yet
                img.load()
                return _to_rgb(img)
    except MscmtError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise MscmtError(f"{where}: refused as a decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise MscmtError(f"{where}: unreadable image (not an image format Pillow reads)") from None
    except Exception as err:  # Pillow raises many types for corrupt files
        raise MscmtError(f"{where}: unreadable image ({type(err).__name__}: {err})") from None


def read_image_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an image file, refusing a missing file, a directory and a file over :data:`MAX_IMAGE_BYTES`."""
    where = os.fspath(path)
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused below)
        with open(os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(info.st_mode):
                raise MscmtError(f"{where}: cannot read image (not a regular file)")
            if info.st_size > MAX_IMAGE_BYTES:
                raise MscmtError(f"{where}: image file over {MAX_IMAGE_BYTES} bytes ({info.st_size} bytes)")
            data = fh.read(MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        raise MscmtError(f"{where}: image not found") from None
    except IsADirectoryError:
        raise MscmtError(f"{where}: cannot read image (is a directory)") from None
    except (OSError, ValueError) as err:
        raise MscmtError(f"{where}: cannot read image ({getattr(err, 'strerror', None) or err})") from None
    if len(data) > MAX_IMAGE_BYTES:  # grew while being read
        raise MscmtError(f"{where}: image file over {MAX_IMAGE_BYTES} bytes")
    return data


def pixel_count(content: object) -> int:
    """Pixels of a decoded image (0 for anything else, e.g. a caption)."""
    return int(content.width * content.height) if isinstance(content, Image.Image) else 0


def pixel_bounded(keys: Iterable[K], load: Callable[[K], Any], max_pixels: int | None = None) -> Iterator[tuple[list[K], list[Any]]]:
    """Load ``keys`` one at a time into ``(keys, contents)`` chunks holding at most ``max_pixels`` decoded
    pixels (default :data:`MAX_BATCH_PIXELS`; an image alone may reach :data:`MAX_PIXELS`). A key whose
    ``load`` returns None is left out. Keys keep their order."""
    limit = MAX_BATCH_PIXELS if max_pixels is None else max_pixels
    chunk: list[K] = []
    contents: list[Any] = []
    pixels = 0
    for key in keys:
        content = load(key)
        if content is None:
            continue
        if contents and pixels + pixel_count(content) > limit:
            yield chunk, contents
            chunk, contents, pixels = [], [], 0
        chunk.append(key)
        contents.append(content)
        pixels += pixel_count(content)
    if contents:
        yield chunk, contents


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode in ("P", "PA", "LA", "RGBA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


@dataclass(frozen=True)
class MissingImage:
    """An image that could not be found or read; ``message`` names it."""

    message: str


class ImageResolver:
    """The one id -> image file rule of every road (training, evaluation, tagging, the service's explain pages).

    An image name ``NAME`` (a corpus image id, a JSON Lines ``image``) is, first found:
    ``DIR/NAME``, ``DIR/NAME.jpg|.jpeg|.png`` (``DIR`` the images directory, when there is
    one), then ``NAME`` as a path of its own (absolute, or relative to the working directory).
    ``os.path`` rather than ``pathlib``: pathlib interns every path part, and a stream of
    distinct names would keep growing the interpreter's table of interned strings.
    """

    def __init__(self, directory: Path | str | None, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> None:
        self.directory = None if directory is None else os.fspath(directory)
        self.extensions = extensions

    def find(self, name: str) -> str | None:
        """The file of image ``name``, or None when there is none."""
        candidates = []
        if self.directory is not None:
            candidates += [os.path.join(self.directory, name)] + [os.path.join(self.directory, name + ext) for ext in self.extensions]
        candidates.append(os.path.expanduser(name))
        for path in candidates:
            try:
                if os.path.isfile(path):
                    return path
            except (OSError, ValueError):  # names too long, NUL bytes
                continue
        return None

    def not_found(self, name: str, where: str | None = None) -> str:
        """The one message for an image that is not found: ``[file:line: ]image 'ID' not found (looked in ...)``."""
        looked = (
            f" (looked in {self.directory} and the working directory)" if self.directory is not None else " (no --images directory given)"
        )
        return f"{where + ': ' if where else ''}image {name[:80]!r} not found{looked}"

    def resolve(self, name: str, where: str | None = None) -> str | MissingImage:
        """The file of image ``name``, or a :class:`MissingImage` saying where it was looked for."""
        found = self.find(name)
        return found if found is not None else MissingImage(self.not_found(name, where))


def check_policy(policy: str) -> None:
    """Fail early on a missing-image policy that is not one of :data:`POLICIES`."""
    if policy not in POLICIES:
        raise MscmtError(f"unknown missing-image policy {policy!r}; choose one of {', '.join(POLICIES)}")


def substitution_report(ids: list[str], what: str, shown: int = 5) -> str | None:
    """``"<n> <what>: id1, id2, ..."`` over the distinct ``ids``, or None when there are none (the empty id of a
    tweet naming no image is left out: those are counted where the data is read)."""
    unique = sorted(set(ids) - {""})
    if not unique:
        return None
    return f"{len(unique)} {what}: " + ", ".join(unique[:shown]) + (", ..." if len(unique) > shown else "")
