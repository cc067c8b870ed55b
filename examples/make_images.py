"""Generate the images of the bundled example corpus.

    python examples/make_images.py OUT_DIR [DATA_DIR]

writes a 64x64 JPEG ``OUT_DIR/<id>.jpg`` for every ``IMGID`` of
``DATA_DIR/tweets/{train,valid,test}.txt`` (``DATA_DIR`` defaults to
``examples/data``).  What an image shows follows the class of its caption in
``DATA_DIR/captions.txt``:

* person  - a figure (head and shoulders) on a plain background
* place   - a horizon: sky, ground, hills or a skyline
* org     - a logo-like square with letters, or a storefront sign
* other   - an object: a phone, a poster, a watch, a ball
* generic - muted blobs

Each image also carries small per-id noise, so no two are identical.  The
output is deterministic (seeded by the id); the images are generated, never
committed.  Pillow and the standard library only.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 64
SPLITS = ("train", "valid", "test")
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"

# caption words -> class, checked in this order (first match wins)
KEYWORDS = (
    ("person", ("man", "woman", "girl", "boy", "player", "singer", "man's", "person", "guy", "lady")),
    ("org", ("logo", "store", "storefront", "shop", "sign", "headquarters", "company")),
    (
        "other",
        (
            "smartphone",
            "phone",
            "earbuds",
            "laptop",
            "watch",
            "tablet",
            "poster",
            "film",
            "movie",
            "festival",
            "fireworks",
            "marathon",
            "convention",
            "jersey",
            "ball",
            "scoreboard",
            "mascot",
            "tv show",
        ),
    ),
    (
        "place",
        (
            "city",
            "skyline",
            "landscape",
            "mountain",
            "mountains",
            "river",
            "valley",
            "street",
            "beach",
            "harbor",
            "map",
            "bridge",
            "lake",
            "town",
            "desert",
            "aerial",
            "hills",
        ),
    ),
)
CLASSES = ("person", "place", "org", "other", "generic")


def caption_class(caption: str) -> str:
    """The class of a caption: person, place, org, other or generic."""
    words = caption.lower().replace(",", " ").split()
    text = " ".join(words)
    for cls, keys in KEYWORDS:
        for k in keys:
            if (" " in k and k in text) or k in words:
                return cls
    return "generic"


def read_image_ids(data_dir: Path) -> list[str]:
    ids: list[str] = []
    for split in SPLITS:
        path = Path(data_dir) / "tweets" / f"{split}.txt"
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            if line.startswith("IMGID:"):
                ids.append(line[len("IMGID:") :].strip())
    return ids


def read_captions(data_dir: Path) -> dict[str, str]:
    caps: dict[str, str] = {}
    path = Path(data_dir) / "captions.txt"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, caption = line.partition(" :")
            if sep:
                caps[name.rsplit(".", 1)[0]] = caption.strip()
    return caps


def _rgb(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _person(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    draw.rectangle([0, 0, SIZE, SIZE], fill=_rgb(rng, 150, 235))
    cx = SIZE // 2 + rng.randint(-8, 8)
    skin = rng.choice([(241, 194, 160), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172)])
    shirt = _rgb(rng, 0, 200)
    # shoulders / body
    draw.ellipse([cx - 24, 40, cx + 24, 84], fill=shirt)
    # neck, head, hair
    draw.rectangle([cx - 4, 32, cx + 4, 44], fill=skin)
    r = rng.randint(10, 13)
    draw.ellipse([cx - r, 22 - r, cx + r, 22 + r], fill=skin)
    draw.chord([cx - r, 22 - r - 2, cx + r, 22 + r - 6], 180, 360, fill=_rgb(rng, 10, 90))
    draw.point([(cx - 4, 23), (cx + 4, 23)], fill=(20, 20, 20))


def _place(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    horizon = rng.randint(26, 42)
    sky_top = rng.choice([(70, 130, 220), (250, 150, 90), (120, 170, 230), (40, 40, 90)])
    sky_low = tuple(min(255, c + 60) for c in sky_top)
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        draw.line([(0, y), (SIZE, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(sky_top, sky_low)))
    ground = rng.choice([(70, 140, 60), (200, 170, 110), (60, 110, 160), (230, 230, 235)])
    draw.rectangle([0, horizon, SIZE, SIZE], fill=ground)
    if rng.random() < 0.5:  # hills / mountains
        for _ in range(rng.randint(2, 4)):
            x = rng.randint(-10, SIZE)
            w = rng.randint(16, 32)
            h = rng.randint(8, 20)
            draw.polygon([(x, horizon), (x + w // 2, horizon - h), (x + w, horizon)], fill=_rgb(rng, 60, 130))
    else:  # skyline
        x = 0
        while x < SIZE:
            w = rng.randint(4, 9)
            h = rng.randint(6, 22)
            draw.rectangle([x, horizon - h, x + w - 1, horizon], fill=_rgb(rng, 40, 100))
            x += w + rng.randint(0, 2)
    if rng.random() < 0.6:  # sun or moon
        sx, sy = rng.randint(8, SIZE - 8), rng.randint(4, max(5, horizon - 10))
        draw.ellipse([sx - 4, sy - 4, sx + 4, sy + 4], fill=(255, 240, 180))


def _org(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    bg = rng.choice([(255, 255, 255), (240, 240, 240), (30, 30, 30)])
    draw.rectangle([0, 0, SIZE, SIZE], fill=bg)
    colour = rng.choice([(200, 30, 40), (20, 80, 200), (20, 150, 80), (250, 160, 0), (120, 40, 160)])
    if rng.random() < 0.6:  # logo square with letters
        m = rng.randint(10, 16)
        draw.rectangle([m, m, SIZE - m, SIZE - m], fill=colour)
        letters = "".join(rng.choice("ABCDEFGHKLMNRSTVWXZ") for _ in range(rng.randint(2, 3)))
        draw.text((SIZE // 2 - 4 * len(letters), SIZE // 2 - 5), letters, fill=(255, 255, 255))
    else:  # storefront with a sign
        draw.rectangle([4, 14, SIZE - 4, SIZE], fill=(150, 150, 160))
        draw.rectangle([6, 16, SIZE - 6, 28], fill=colour)
        draw.text((10, 17), "".join(rng.choice("ABCDEFGHKLMNRSTVWXZ") for _ in range(4)), fill=(255, 255, 255))
        draw.rectangle([26, 38, 38, SIZE], fill=(60, 60, 70))
        draw.rectangle([8, 36, 22, 52], fill=(170, 210, 240))
        draw.rectangle([42, 36, 56, 52], fill=(170, 210, 240))


def _other(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    draw.rectangle([0, 0, SIZE, SIZE], fill=_rgb(rng, 100, 220))
    kind = rng.randrange(4)
    if kind == 0:  # phone
        draw.rounded_rectangle([20, 6, 44, 58], radius=5, fill=(25, 25, 30))
        draw.rectangle([23, 11, 41, 51], fill=_rgb(rng, 60, 255))
    elif kind == 1:  # poster
        draw.rectangle([14, 4, 50, 60], fill=_rgb(rng, 0, 90))
        draw.rectangle([18, 44, 46, 50], fill=(240, 240, 240))
        draw.ellipse([22, 12, 42, 32], fill=_rgb(rng, 120, 255))
    elif kind == 2:  # watch
        draw.rectangle([27, 0, 37, SIZE], fill=(40, 40, 40))
        draw.ellipse([18, 18, 46, 46], fill=(200, 200, 210))
        draw.ellipse([22, 22, 42, 42], fill=(20, 20, 30))
    else:  # ball
        draw.ellipse([16, 16, 48, 48], fill=(245, 245, 245))
        draw.polygon([(32, 24), (39, 30), (36, 38), (28, 38), (25, 30)], fill=(20, 20, 20))


def _generic(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    draw.rectangle([0, 0, SIZE, SIZE], fill=_rgb(rng, 90, 170))
    for _ in range(rng.randint(3, 6)):
        x, y = rng.randint(-10, SIZE), rng.randint(-10, SIZE)
        r = rng.randint(6, 18)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_rgb(rng, 70, 190))


PAINTERS = {"person": _person, "place": _place, "org": _org, "other": _other, "generic": _generic}


def render(image_id: str, caption: str) -> Image.Image:
    """The 64x64 RGB image of one id, drawn for its caption's class plus per-id noise."""
    seed = int.from_bytes(hashlib.sha256(image_id.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)
    img = Image.new("RGB", (SIZE, SIZE))
    PAINTERS[caption_class(caption)](ImageDraw.Draw(img), rng)
    noise_bytes = hashlib.shake_256(f"noise:{image_id}".encode()).digest(SIZE * SIZE * 3)
    noise = Image.frombytes("RGB", (SIZE, SIZE), noise_bytes)
    return Image.blend(img, noise, 0.08)


def make_images(out_dir: Path, data_dir: Path = DEFAULT_DATA_DIR) -> int:
    """Write ``<id>.jpg`` for every IMGID of the three splits; return how many."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    captions = read_captions(data_dir)
    ids = list(dict.fromkeys(read_image_ids(data_dir)))
    for image_id in ids:
        render(image_id, captions.get(image_id, "")).save(out_dir / f"{image_id}.jpg", format="JPEG", quality=90)
    return len(ids)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python examples/make_images.py OUT_DIR [DATA_DIR]", file=sys.stderr)
        return 2
    data_dir = Path(argv[1]) if len(argv) == 2 else DEFAULT_DATA_DIR
    n = make_images(Path(argv[0]), data_dir)
    print(f"wrote {n} images to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
