"""``mscmt tag``, ``mscmt serve`` and ``mscmt explain``: applying a trained model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mscmt_cli.cli.options import APPLY, Given, settings_options
from mscmt_cli.errors import MscmtError

TAG_NAMES = {"images_dir": ("--images", "--images-dir"), "eval_batch_size": ("--batch-size",)}
#: serve and explain show no progress
APPLY_AT_ONCE = tuple(name for name in APPLY if name != "progress_every")


@settings_options(*APPLY, "images_dir", "captions", "missing_images", rename=TAG_NAMES)
def tag(
    given: Given,
    input: str = typer.Argument(
        ...,
        help='JSON Lines file ({"text" | "tokens", "image"?, ...} per line), an IMGID CoNLL file, or - for stdin; '
        "with --ray also a directory or glob of .jsonl/.parquet shards",
    ),
    out: Optional[str] = typer.Option(  # a str, not a Path: with --ray a trailing / marks a directory
        None,
        "--out",
        help="output JSON Lines file (default: stdout); with --ray, a directory (existing, or ending in /) gets one output shard per input shard",
    ),
    strict: bool = typer.Option(False, "--strict", help="stop at the first bad line (exit code 2) instead of reporting and skipping it"),
    explain: Optional[Path] = typer.Option(None, "--explain", help="also write one gate page per tagged line into this directory"),
    ray: Optional[str] = typer.Option(
        None,
        "--ray",
        help="tag on a Ray cluster (local, auto, ray://HOST:PORT or HOST:PORT): INPUT may then be a directory or glob of "
        '.jsonl/.parquet shards, and --out a directory (one output shard per input shard); pip install "mscmt[ray]"',
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=1, help="with --ray: workers, each with the model loaded once (default: one per GPU, else per CPU)"
    ),
    gpus_per_worker: Optional[float] = typer.Option(
        None, "--gpus-per-worker", min=0.0, help="with --ray: GPUs each worker asks for (default: 1 when the cluster has GPUs, else 0)"
    ),
) -> None:
    """Tag tweets: each output line is the input object plus tokens, tags and entities.

    Raw text is split by the tweet-aware tokenizer (rules: mscmt_cli/data/tweet_tokenize.py).
    Entity start/end are character offsets into the line's text (into the tokens joined by
    single spaces when only tokens are given); score is the mean probability of the entity's
    predicted tags. Bad lines are reported on stderr with their line numbers and skipped.
    """
    from mscmt_cli.console import make_console

    if ray is not None:
        from mscmt_cli.cluster.tagging import run_tag_cluster

        if explain is not None:
            raise MscmtError("--explain is not available with --ray (tag the lines to explain without --ray)")
        run_tag_cluster(
            given.settings(),
            input,
            out,
            address=ray,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            strict=strict,
            console=make_console(),
            also_reads=given.reads,
        )
        return
    for value, flag in ((workers, "--workers"), (gpus_per_worker, "--gpus-per-worker")):
        if value is not None:
            raise MscmtError(f"{flag} needs --ray ADDRESS")
    from mscmt_cli.tagging.jobs import run_tag

    out_path = None if out is None else Path(out)
    run_tag(given.settings(), input, out_path, strict=strict, explain_dir=explain, console=make_console(), also_reads=given.reads)


@settings_options(*APPLY_AT_ONCE)
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
        5.0,
        "--batch-wait-ms",
        min=0.0,
        max=10_000.0,
        help="how long a request waits for others to share its forward pass (only while the service is busy)",
    ),
    api_key_file: Optional[Path] = typer.Option(
        None,
        "--api-key-file",
        help="file holding the API key (one line): every request but GET /health and the page at GET / must send 'Authorization: Bearer <key>'"
        " (default: the key in $MSCMT_API_KEY, else no key)",
    ),
    max_connections: int = typer.Option(
        512,
        "--max-connections",
        min=1,
        max=1_000_000,
        help="most open connections: one more closes the one waiting longest for its request (408), or gets a 503 when all are busy",
    ),
    header_timeout: float = typer.Option(
        10.0, "--header-timeout", min=0.001, max=3600.0, help="seconds a client has to send a request's headers (else 408)"
    ),
) -> None:
    """Serve the model over HTTP: POST /tag, POST /tag/batch, GET /health, GET /info, and a page to try it at GET /."""
    from mscmt_cli.console import make_console
    from mscmt_cli.tagging.connections import Connections
    from mscmt_cli.tagging.jobs import run_serve
    from mscmt_cli.tagging.server import Batching, Limits

    limits = Limits(
        max_body_bytes=max_body, max_image_bytes=min(max_body, Limits.max_image_bytes), max_batch=max_batch, max_text_chars=max_text
    )
    batching = Batching(batch_max=batch_max, batch_wait_ms=batch_wait_ms)
    connections = Connections(max_connections=max_connections, header_timeout=header_timeout)
    run_serve(given.settings(), host, port, limits, make_console(), api_key_file=api_key_file, batching=batching, connections=connections)


@settings_options(*APPLY_AT_ONCE, "captions")
def explain(
    given: Given,
    text: str = typer.Option(..., "--text", help="the tweet"),
    out: Path = typer.Option(..., "--out", help="HTML page to write"),
    image: Optional[Path] = typer.Option(None, "--image", help="the tweet's image file (for caption models: its id in --captions)"),
) -> None:
    """Write a self-contained HTML page: entities by type, the image, and the visual gate per token."""
    from mscmt_cli.tagging.jobs import run_explain

    print(run_explain(given.settings(), text, image, out, also_reads=given.reads), file=sys.stderr)
