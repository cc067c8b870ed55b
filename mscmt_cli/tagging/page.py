"""The page at ``GET /`` of ``mscmt serve``: try the model in a browser.

One static, self-contained file (``page.html`` beside this module: inline style and
script, nothing fetched from elsewhere). The page sends the tweet, the image file and
the caption to ``POST /tag?explain=true`` as multipart form data, with
``Authorization: Bearer <key>`` when a key is typed, and shows the answer's
``explain.html``: the sections of ``mscmt explain``'s page
(:func:`mscmt_cli.tagging.explain.render_sections`), so one renderer draws both.

The page holds nothing about the model or the key (it is the same bytes for every
service), which is why it is answered without the key, like ``GET /health``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any

from mscmt_cli.errors import MscmtError
from mscmt_cli.tagging.tagger import TagResult

#: Where the explain page's stylesheet goes in the template.
CSS_SLOT = "/*EXPLAIN_CSS*/"


@cache
def page_html() -> str:
    """The page: ``page.html`` with the explain page's stylesheet in its ``<style>``."""
    from mscmt_cli.tagging.explain import CSS

    template = resources.files("mscmt_cli.tagging").joinpath("page.html").read_text(encoding="utf-8")
    return template.replace(CSS_SLOT, CSS, 1)


@cache
def page_headers() -> dict[str, str]:
    """HTTP headers of the page: a Content-Security-Policy allowing its own inline script (by hash)
    and calls to this service only, no framing, no referrer."""
    scripts = re.findall(r"<script>(.*?)</script>", page_html(), flags=re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    policy = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def explain_answer(result: TagResult, image: bytes | None, info: dict[str, Any]) -> dict[str, Any]:
    """What ``?explain=true`` adds to a tweet's answer: the gate per token (None without a gate), the
    caption a caption model read, and ``html``, the explain page's sections for this tweet.

    ``image``: the request's image bytes, shown when the model reads pixels (an image that
    cannot be decoded was already refused when tagging; should it fail here, the page says so).
    """
    from mscmt_cli.data.images import decode_image
    from mscmt_cli.tagging.explain import render_sections

    shown, note = None, None
    if image is not None and info.get("image_input") == "pixels":
        try:
            shown = decode_image(image, "the image")
        except MscmtError as err:
            note = str(err)
    html = render_sections(result, shown, info, caption=result.caption, image_note=note)
    return {"gate": result.gate, "caption": result.caption, "html": html}
