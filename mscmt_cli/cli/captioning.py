"""``mscmt caption``: captions for a directory of new images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mscmt_cli.cli.options import Given, settings_options


@settings_options("captioner", "max_new_tokens", "missing_images", "device", "cache_dir", "no_cache", "progress_every")
def caption(
    given: Given,
    images_dir: Path = typer.Argument(..., help="directory of images (.jpg, .jpeg, .png)"),
    out: Path = typer.Option(..., "--out", help="captions file: '<id>.jpg :<caption>' lines, appended to when it exists"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, max=4096, help="images per generate() call"),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="text prompt for models that need one (default: none)"),
) -> None:
    """Caption every image of IMAGES_DIR with an image-to-text model, for caption-based models.

    Writes one '<id>.jpg :<caption>' line per image (the format --captions reads), in
    file-name order, decoding greedily. Resumable: images already in --out are skipped and
    new lines appended. Captions are cached by image content in --cache-dir.
    """
    from mscmt_cli.captioning import run_caption
    from mscmt_cli.console import make_console

    run_caption(given.settings(), images_dir, out, batch_size=batch_size, prompt=prompt, console=make_console(), reads=given.reads)
