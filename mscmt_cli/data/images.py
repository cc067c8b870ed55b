"""The image store: ``<images-dir>/<id>.jpg`` with a named missing-image policy.

Policies:
    ``blank``  a missing or unreadable image becomes a neutral grey image; each
               such image is counted and reported once, at the end of the run.
    ``error``  a missing or unreadable image stops the run with its path.

Images are opened with Pillow's decompression-bomb guard on and converted to
RGB (CMYK, 16-bit, palette and alpha images are all accepted).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mscmt_cli.errors import MscmtError

POLICIES = ("blank", "error")
#: File extensions tried, in order, for an image id without one.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
BLANK_DIGEST = "blank-image"
BLANK_SIZE = 224
MAX_PIXELS = 64_000_000  # larger images are refused as decompression bombs


@dataclass
class ImageRecord:
    """An image's SHA-256 (its cache key) and, when decoded, the image itself."""

    digest: str
    content: Image.Image | None = None


def blank_image() -> Image.Image:
    """The neutral stand-in used by the ``blank`` policy (mid grey)."""
    return Image.new("RGB", (BLANK_SIZE, BLANK_SIZE), (128, 128, 128))


def decode_image(data: bytes, where: str) -> Image.Image:
    """Decode image bytes to RGB, refusing truncated files and decompression bombs."""
    import io

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise MscmtError(f"{where}: image too large ({img.width}x{img.height} pixels; limit {MAX_PIXELS})")
                img.load()
                return _to_rgb(img)
    except MscmtError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise MscmtError(f"{where}: refused as a decompression bomb ({err})") from None
    except Exception as err:  # Pillow raises many types for corrupt files
        raise MscmtError(f"{where}: unreadable image ({type(err).__name__}: {err})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode in ("P", "PA", "LA", "RGBA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


@dataclass
class ImageStore:
    """Reads ``<directory>/<id>.jpg`` (or another extension) under a policy."""

    directory: Path
    policy: str = "blank"
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    substituted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_policy(self.policy)
        if not Path(self.directory).is_dir():
            raise MscmtError(f"images directory {self.directory} does not exist")

    def path_for(self, image_id: str) -> Path | None:
        """The file of ``image_id``, or None if there is none."""
        for ext in self.extensions:
            candidate = Path(self.directory) / f"{image_id}{ext}"
            if candidate.is_file():
                return candidate
        return None

    def load(self, image_id: str, decode: bool = True) -> ImageRecord:
        """The image of ``image_id`` (only its digest when ``decode`` is False).

        A missing or unreadable image raises under ``error`` and becomes the
        blank image under ``blank``.
        """
        path = self.path_for(image_id)
        try:
            if path is None:
                raise MscmtError(f"{Path(self.directory) / (image_id + '.jpg')}: image not found")
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            return ImageRecord(digest, decode_image(data, str(path)) if decode else None)
        except MscmtError:
            if self.policy == "error":
                raise
            self.substituted.append(image_id)
            return ImageRecord(BLANK_DIGEST, blank_image())

    def report(self) -> str | None:
        """One line about substituted images, or None when there were none."""
        return substitution_report(self.substituted, "missing or unreadable image(s) replaced by a blank image (policy 'blank')")


def check_policy(policy: str) -> None:
    """Fail early on a missing-image policy that is not one of :data:`POLICIES`."""
    if policy not in POLICIES:
        raise MscmtError(f"unknown missing-image policy {policy!r}; choose one of {', '.join(POLICIES)}")


def substitution_report(ids: list[str], what: str, shown: int = 5) -> str | None:
    """``"<n> <what>: id1, id2, ..."`` over the distinct ``ids``, or None when there are none."""
    unique = sorted(set(ids))
    if not unique:
        return None
    return f"{len(unique)} {what}: " + ", ".join(unique[:shown]) + (", ..." if len(unique) > shown else "")
