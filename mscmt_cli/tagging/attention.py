"""What a cross-attention model looked at: each word's attention over the image tokens, as HTML for the explain page.

The view follows what the image tokens are (``Tagger.info()["image_tokens"]``):

* text tokens (a caption encoder's sub-words, ``ImageEncoder.token_texts``):
  per word, the caption's sub-words as text, each shaded by the word's weight
  on it;
* a grid (CLIP patches, feature-map cells: ``grid`` is set): per word, a heat
  map drawn over the image's centre square (what a centre-cropping encoder
  sees), with the tokens before the grid (CLIP's ``[CLS]``) given as numbers;
* one token per image (a pooled encoder): a note, every word's weight is 1 on it;
* anything else: per word, the tokens by number, shaded.

Shading is relative per word, from its smallest weight (no colour) to its
largest (full colour), so that near-uniform attention still shows where it
leans; every exact weight is in the title of its cell (the heat map's title
gives its largest cell).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

HEAT_SIDE = 112
HEAT_RGB = (214, 39, 40)
SHADE_RGB = (49, 54, 149)

CSS = """
.attn{display:flex;flex-wrap:wrap;align-items:center;gap:3px;margin:3px 0}
.attn .aw{min-width:110px;font-weight:600;font-size:14px;white-space:pre}
.attn .at{padding:2px 5px;border-radius:4px;border:1px solid #ddd;font-size:13px;white-space:pre}
.heats{display:flex;flex-wrap:wrap;gap:10px} .heat{margin:0;text-align:center;font-size:13px}
.heat img{display:block;border:1px solid #ccc;border-radius:4px} .heat .extra{color:#666;font-size:11px}
"""


def _esc(text: str) -> str:
    return html.escape(text.encode("utf-8", "replace").decode("utf-8"), quote=True)


def attention_section(
    words: Sequence[str], rows: list[list[float]], layout: dict[str, Any], image: Image.Image | None, texts: list[str] | None
) -> str:
    """The HTML of each word's attention ``rows[i]`` (one weight per real image token).

    ``layout`` is ``info()["image_tokens"]`` (``grid``, ``grid_offset``), ``image`` the
    tweet's image (None when not shown), ``texts`` the image tokens' texts (caption sub-words) or None.
    """
    width = len(rows[0]) if rows else 0
    grid, offset = layout.get("grid"), int(layout.get("grid_offset") or 0)
    if width == 1:
        return '<p class="meta nogate">The image is one token (a pooled image encoder): every word puts all its attention on it.</p>'
    if texts is not None and len(texts) == width:
        note = "<p class=\"meta\">The caption's sub-words, shaded by each word's attention (white: the word's smallest weight, darkest: its largest).</p>"
        return note + "".join(_text_row(w, row, texts) for w, row in zip(words, rows))
    if grid and offset + int(grid[0]) * int(grid[1]) == width:
        return _heat_maps(words, rows, (int(grid[0]), int(grid[1])), offset, image)
    labels = [f"#{k}" for k in range(width)]
    return '<p class="meta">Image tokens by number.</p>' + "".join(_text_row(w, row, labels) for w, row in zip(words, rows))


def _levels(weights: Sequence[float]) -> list[float]:
    """Each weight's place between the smallest (0) and the largest (1); all 0 when they are equal."""
    low, high = min(weights), max(weights)
    return [(w - low) / (high - low) if high > low else 0.0 for w in weights]


def _text_row(word: str, row: list[float], labels: Sequence[str]) -> str:
    cells = "".join(_shaded(label, weight, level) for label, weight, level in zip(labels, row, _levels(row)))
    return f'<div class="attn"><span class="aw">{_esc(word)}</span>{cells}</div>'


def _shaded(label: str, weight: float, level: float) -> str:
    r, g, b = (round(255 + (c - 255) * level) for c in SHADE_RGB)
    ink = "#fff" if level > 0.55 else "#111"
    return f'<span class="at" style="background:rgb({r},{g},{b});color:{ink}" title="{weight:.4f}">{_esc(label)}</span>'


def _heat_maps(words: Sequence[str], rows: list[list[float]], grid: tuple[int, int], offset: int, image: Image.Image | None) -> str:
    base = _centre_square(image)
    where = "over the image's centre square" if image is not None else "(the image is not shown)"
    figures = "".join(_heat_figure(w, row, grid, offset, base) for w, row in zip(words, rows))
    return f'<p class="meta">Per word, its attention over the {grid[0]}x{grid[1]} grid {where}; clear: the word\'s smallest weight, red: its largest.</p><div class="heats">{figures}</div>'


def _heat_figure(word: str, row: list[float], grid: tuple[int, int], offset: int, base: Image.Image) -> str:
    cells = row[offset:]
    k = max(range(len(cells)), key=cells.__getitem__)
    title = f"largest weight {cells[k]:.4f} at row {k // grid[1] + 1}, column {k % grid[1] + 1}"
    extra = " ".join(f"[{'CLS' if j == 0 else j}] {row[j]:.2f}" for j in range(offset))
    note = f'<br><span class="extra">{_esc(extra)}</span>' if extra else ""
    return (
        f'<figure class="heat"><img alt="attention of {_esc(word)}" title="{title}" src="{_png_uri(heat_map(base, cells, grid))}">'
        f"<figcaption>{_esc(word)}{note}</figcaption></figure>"
    )


def heat_map(base: Image.Image, cells: list[float], grid: tuple[int, int]) -> Image.Image:
    """``base`` (square RGB) with the grid's weights ``cells`` (row by row) laid over it in red, from clear (their smallest) to strongest (their largest)."""
    alpha = Image.frombytes("L", (grid[1], grid[0]), bytes(round(200 * level) for level in _levels(cells)))
    alpha = alpha.resize(base.size, Image.Resampling.NEAREST)
    return Image.composite(Image.new("RGB", base.size, HEAT_RGB), base, alpha)


def _centre_square(image: Image.Image | None) -> Image.Image:
    """The centre square of ``image`` at ``HEAT_SIDE`` pixels (light grey without an image)."""
    if image is None:
        return Image.new("RGB", (HEAT_SIDE, HEAT_SIDE), (235, 235, 235))
    rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    return rgb.crop((left, top, left + side, top + side)).resize((HEAT_SIDE, HEAT_SIDE))


def _png_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
