"""``mscmt tag``, ``mscmt serve`` and ``mscmt explain``: applying a trained model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mscmt_cli.cli.options import APPLY, Given, settings_options

TAG_NAMES = {"images_dir": ("--images", "--images-dir"), "eval_batch_size": ("--batch-size",)}


@settings_options(*APPLY, "images_dir", "captions", "missing_images", rename=TAG_NAMES)
def tag(
    given: Given,
    input: str = typer.Argument(
        ..., help='JSON Lines file ({"text" | "tokens", "image"?, ...} per line), an IMGID CoNLL file, or - for stdin'
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="output JSON Lines file (default: stdout)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first bad line (exit code 2) instead of reporting and skipping it"),
    explain: Optional[Path] = typer.Option(None, "--explain", help="also write one gate page per tagged line into this directory"),
) -> None:
    """Tag tweets: each output line is the input object plus tokens, tags and entities.

    Raw text is split by the tweet-aware tokenizer (rules: mscmt_cli/tagging/tweet_tokenize.py).
    Entity start/end are character offsets into the line's text (into the tokens joined by
    single spaces when only tokens are given); score is the mean probability of the entity's
    predicted tags. Bad lines are reported on stderr with their line numbers and skipped.
    """
    from mscmt_cli.console import make_console
    from mscmt_cli.tagging.jobs import run_tag

    run_tag(given.settings(), input, out, strict=strict, explain_dir=explain, console=make_console(), also_reads=given.reads)


@settings_options(*APPLY)
def serve(
    given: Given,
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (loopback by default)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port"),
    max_body: int = typer.Option(10 * 2**20, "--max-body-bytes", min=1024, help="largest request body"),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="most tweets in one /tag/batch request"),
    max_text: int = typer.Option(10_000, "--max-text-chars", min=1, help="longest tweet text (also: longest caption, all tokens together)"),
    batch_max: int = typer.Option(
        32, "--batch-max", min=1, max=10_000, help="most tweets in one forward pass: requests arriving together are tagged together"
    ),
    batch_wait_ms: float = typer.Option(
        5.0, "--batch-wait-ms", min=0.0, max=10_000.0, help="how long a request waits for others to share its forward pass"
    ),
    api_key_file: Optional[Path] = typer.Option(
        None,
        "--api-key-file",
        help="file holding the API key (one line): every request but GET /health and the page at GET / must send 'Authorization: Bearer <key>'"
        " (default: the key in $MSCMT_API_KEY, else no key)",
    ),
) -> None:
    """Serve the model over HTTP: POST /tag, POST /tag/batch, GET /health, GET /info, and a page to try it at GET /."""
    from mscmt_cli.console import make_console
    from mscmt_cli.tagging.jobs import run_serve
    from mscmt_cli.tagging.server import Batching, Limits

    limits = Limits(
        max_body_bytes=max_body, max_image_bytes=min(max_body, Limits.max_image_bytes), max_batch=max_batch, max_text_chars=max_text
    )
    batching = Batching(batch_max=batch_max, batch_wait_ms=batch_wait_ms)
    run_serve(given.settings(), host, port, limits, make_console(), api_key_file=api_key_file, batching=batching)


@settings_options(*APPLY, "captions")
def explain(
    given: Given,
    text: str = typer.Option(..., "--text", help="the tweet"),
    out: Path = typer.Option(..., "--out", help="HTML page to write"),
    image: Optional[Path] = typer.Option(None, "--image", help="the tweet's image file (for caption models: its id in --captions)"),
) -> None:
    """Write a self-contained HTML page: entities by type, the image, and the visual gate per token."""
    from mscmt_cli.tagging.jobs import run_explain

    print(run_explain(given.settings(), text, image, out, also_reads=given.reads), file=sys.stderr)
