"""A picture of the gate: one self-contained HTML page per tagged tweet.

The page shows the tweet with its entities highlighted by type (with a colour
legend), the image (embedded as a base64 PNG data URI, shrunk to at most
``MAX_SIDE`` pixels), and a heat strip with, for each token, how far the
visual gate is open: the mean over hidden dimensions of ``g_i`` from
:attr:`MNEROutput.gate` (0 = closed, the token ignores the image; 1 = open).
A model whose fusion has no gate gets a note saying so instead of the strip.
A model whose fusion explains attention (cross-attention) also gets, per
token, its attention over the image tokens (:mod:`mscmt_cli.tagging.attention`:
the caption's sub-words shaded, or a heat map over the image).
No scripts, no external resources.
"""

from __future__ import annotations

import base64
import colorsys
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from mscmt_cli.data.images import decode_image, read_image_file
from mscmt_cli.labels import types_of
from mscmt_cli.registry import KINDS
from mscmt_cli.tagging.attention import CSS as ATTENTION_CSS
from mscmt_cli.tagging.attention import attention_section
from mscmt_cli.tagging.tagger import TagResult

MAX_SIDE = 480
#: Light background colours, one per entity type in the model's order (PER, LOC, ORG, OTHER of the bundled
#: corpora keep the first four, theirs since the first page); types past the palette get generated hues.
PALETTE: tuple[str, ...] = (
    "#f4a6a6", "#9fc8f0", "#a8e0a0", "#f5d77a", "#d9c2f0", "#f7c08a", "#9fe0d8", "#e8a8d8", "#c8d88a", "#b8c0f0",
)  # fmt: skip
GOLDEN_ANGLE = 137.508  # degrees between successive generated hues: no two near each other for a long while


def type_colours(types: Sequence[str]) -> dict[str, str]:
    """A distinct light colour for every type, in order: the palette, then hues spaced by the golden angle."""
    out = {}
    for k, etype in enumerate(dict.fromkeys(types)):
        if k < len(PALETTE):
            out[etype] = PALETTE[k]
        else:
            r, g, b = colorsys.hls_to_rgb(((k - len(PALETTE)) * GOLDEN_ANGLE % 360) / 360, 0.82, 0.65)
            out[etype] = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
    return out


def page_types(result: TagResult, info: dict[str, Any]) -> list[str]:
    """The types the page colours: the model's (``info["labels"]``), then any other the tweet's entities have."""
    known = list(types_of(info.get("labels") or []))
    return known + sorted({e.type for e in result.entities} - set(known))


#: The stylesheet of the explain page (and of the service's page, which shows the same sections).
_BASE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 8px} .meta{color:#666;font-size:13px}
.tweet{font-size:20px;line-height:2.1;padding:12px 14px;border:1px solid #ddd;border-radius:8px;white-space:pre-wrap;word-break:break-word}
mark{padding:2px 4px;border-radius:4px;color:#111}
mark .t{font-size:11px;font-weight:700;margin-left:4px;vertical-align:middle;opacity:.75}
.legend span{display:inline-block;padding:2px 10px;margin:6px 8px 0 0;border-radius:4px;font-size:13px;font-weight:600}
.media img{max-width:480px;max-height:480px;min-width:160px;border:1px solid #ddd;border-radius:6px}
.strip{display:flex;flex-wrap:wrap;gap:3px}
.cell{display:flex;flex-direction:column;align-items:center;min-width:38px;padding:4px 6px;border-radius:4px;border:1px solid #ccc}
.cell .tok{font-size:14px;white-space:pre} .cell .val{font-size:11px;font-variant-numeric:tabular-nums}
.scale{display:inline-block;width:180px;height:12px;vertical-align:middle;margin:0 6px;border:1px solid #ccc;
 background:linear-gradient(to right,rgb(255,255,255),rgb(49,54,149))}
.nogate{padding:10px 12px;background:#f4f4f4;border-radius:6px}
table{border-collapse:collapse;font-size:14px} td,th{border-bottom:1px solid #eee;padding:4px 10px;text-align:left}
"""
#: The explain page's stylesheet (the service's page at ``GET /`` embeds it too).
CSS = _BASE_CSS + ATTENTION_CSS


def page_image(path: Path) -> Image.Image:
    """Read an image file for the page (the size checks of :func:`decode_image`; raises :class:`MscmtError`)."""
    return decode_image(read_image_file(path), str(path))


def image_data_uri(image: Image.Image) -> str:
    """A PNG data URI of ``image`` shrunk to at most ``MAX_SIDE`` pixels a side."""
    shown = image.convert("RGB")
    shown.thumbnail((MAX_SIDE, MAX_SIDE))
    buf = io.BytesIO()
    shown.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _esc(text: str) -> str:
    return html.escape(text.encode("utf-8", "replace").decode("utf-8"), quote=True)


def highlighted_text(result: TagResult, colours: dict[str, str]) -> str:
    """The tweet as HTML, each entity in a ``<mark>`` of its type's colour (``colours``: :func:`type_colours`)."""
    text, parts, cursor = result.doc.text, [], 0
    for ent in result.entities:
        parts.append(_esc(text[cursor : ent.start]))
        title = f"{ent.type} (score {ent.score:.2f})"
        parts.append(
            f'<mark class="ent ent-{_esc(ent.type)}" style="background:{colours[ent.type]}" title="{_esc(title)}">'
            f'{_esc(text[ent.start : ent.end])}<span class="t">{_esc(ent.type)}</span></mark>'
        )
        cursor = ent.end
    parts.append(_esc(text[cursor:]))
    return "".join(parts)


def _legend(colours: dict[str, str]) -> str:
    return "".join(f'<span style="background:{colour}">{_esc(t)}</span>' for t, colour in colours.items())


def _gate_cell(token: str, value: float) -> str:
    v = min(1.0, max(0.0, value))
    r, g, b = (round(255 + (c - 255) * v) for c in (49, 54, 149))
    ink = "#fff" if v > 0.55 else "#111"
    return (
        f'<div class="cell" style="background:rgb({r},{g},{b});color:{ink}" title="g = {value:.4f}">'
        f'<span class="tok">{_esc(token)}</span><span class="val">{value:.2f}</span></div>'
    )


def gate_strip(result: TagResult, fusion: str) -> str:
    """The per-token gate heat strip, or the note that the fusion has no gate."""
    if result.gate is None:
        name = f"The fusion of this model (<b>{_esc(fusion)}</b>) has no gate"
        if result.attention is not None:
            return f'<p class="nogate">{name}: each token attends over the image tokens instead (see below).</p>'
        how = "the model is text-only" if fusion == "none" else "every token takes the image in the same way"
        return f'<p class="nogate">{name}: {how}, so there is nothing to show per token.</p>'
    cells = "".join(_gate_cell(tok, g) for tok, g in zip(result.doc.tokens, result.gate))
    return (
        f'<p class="meta">0 (closed: the token ignores the image)<span class="scale"></span>1 (open). '
        f'Value: mean over hidden dimensions of the gate g<sub>i</sub>.</p><div class="strip">{cells}</div>'
    )


def _entity_table(result: TagResult) -> str:
    if not result.entities:
        return '<p class="meta">No entities found.</p>'
    rows = "".join(
        f"<tr><td>{_esc(e.text)}</td><td>{_esc(e.type)}</td><td>{e.start}–{e.end}</td><td>{e.score:.3f}</td></tr>" for e in result.entities
    )
    return f"<table><tr><th>entity</th><th>type</th><th>characters</th><th>score</th></tr>{rows}</table>"


def _media(image: Image.Image | None, caption: str | None, info: dict[str, Any], note: str | None = None) -> str:
    if image is not None:
        return f'<img alt="tweet image" src="{image_data_uri(image)}">'
    if note is not None:
        return f'<p class="meta nogate">Image not shown: {_esc(note)}</p>'
    if info.get("image_input") == "caption":
        return f"<p>The model reads the image as its caption: <q>{_esc(caption or '')}</q></p>"
    if info.get("image_input") == "none":
        return '<p class="meta">This model is text-only.</p>'
    return '<p class="meta">No image was given (the model saw the neutral blank image).</p>'


def _attention(result: TagResult, image: Image.Image | None, info: dict[str, Any], texts: list[str] | None) -> str:
    """The attention section (empty for a fusion that does not explain attention)."""
    if result.attention is None:
        return ""
    body = attention_section(result.doc.tokens, result.attention, info.get("image_tokens") or {}, image, texts)
    return f"<h2>Attention over the image tokens</h2>{body}\n"


def render_page(
    result: TagResult,
    image: Image.Image | None,
    info: dict[str, Any],
    title: str | None = None,
    caption: str | None = None,
    image_note: str | None = None,
    token_texts: list[str] | None = None,
) -> str:
    """The whole self-contained HTML page (``caption``: what a caption model read instead of pixels, or beside the tweet;
    ``image_note``: why the tweet's image is not shown, when it is missing or unreadable;
    ``token_texts``: the image tokens as text, for a caption-token model's attention)."""
    comps = info.get("components", {})
    model = " + ".join(str(comps.get(k, "?")) for k in KINDS)
    heading = "mscmt explain" + (f" — {_esc(title)}" if title else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{heading}</title><style>{CSS}</style></head><body>\n"
        f'<h1>{heading}</h1><p class="meta">model: {_esc(model)}</p>\n'
        f"{render_sections(result, image, info, caption, image_note, token_texts)}"
        "</body></html>\n"
    )


def render_sections(
    result: TagResult,
    image: Image.Image | None,
    info: dict[str, Any],
    caption: str | None = None,
    image_note: str | None = None,
    token_texts: list[str] | None = None,
) -> str:
    """The page's body below its heading: the tweet and legend, the image, the explain view, the entities.

    The service's page at ``GET /`` shows this same HTML (styled by :data:`CSS`) for each tweet it tags.
    """
    comps = info.get("components", {})
    media = _media(image, caption, info, image_note)
    if info.get("context") == "caption":
        media += f"<p>The text encoder reads the caption beside the tweet: <q>{_esc(caption or '')}</q></p>"
    origin = "" if result.doc.has_text else '<p class="meta">Given as tokens; shown joined by single spaces.</p>'
    colours = type_colours(page_types(result, info))
    return (
        f'<h2>Tweet</h2><div class="tweet">{highlighted_text(result, colours)}</div>{origin}\n'
        f'<div class="legend">{_legend(colours)}</div>\n'
        f'<h2>Image</h2><div class="media">{media}</div>\n'
        f"<h2>Visual gate per token</h2>{gate_strip(result, str(comps.get('fusion', '?')))}\n"
        f"{_attention(result, image, info, token_texts)}"
        f"<h2>Entities</h2>{_entity_table(result)}\n"
    )
