"""What ``mscmt tag``, ``mscmt explain`` and ``mscmt serve`` do, behind their thin CLI commands."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console

from mscmt_cli.captioning import captioner_files
from mscmt_cli.console import progress
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.paths import check_out_dir, check_output, check_write, open_stream, stream_kind, write_text_atomic
from mscmt_cli.settings import Settings
from mscmt_cli.strict_json import dumps
from mscmt_cli.tagging.heap import limit_heap_fragmentation
from mscmt_cli.tagging.inputs import MAX_LINE_BYTES, BadRecord, InputRecord, read_records
from mscmt_cli.tagging.outputs import (
    EXPLAIN_PAGE,
    TAG_OUTPUT,
    check_explain_dir,
    check_stdin,
    check_stdout,
    make_explain_dir,
    model_files,
)
from mscmt_cli.tagging.stream import StrictStop, Tally, tag_stream
from mscmt_cli.tagging.tagger import Tagger, TagResult

NO_MODEL = "no model given: pass --model RUN_DIR, or set 'model' in the --config file or MSCMT_MODEL"


def load_tagger(settings: Settings, missing_images: str | None = None) -> Tagger:
    """The settings' model (``--model`` / ``model`` / ``MSCMT_MODEL``), loaded once."""
    if settings.model is None:
        raise MscmtError(NO_MODEL)
    limit_heap_fragmentation()
    return Tagger.from_pretrained(
        settings.model,
        settings.model_paths,
        settings.device,
        cache_dir=None if settings.no_cache else settings.cache_dir,
        captions=settings.captions,
        missing_images=missing_images or settings.missing_images,
        batch_size=settings.eval_batch_size,
        captioner=settings.captioner,
        max_new_tokens=settings.max_new_tokens,
        backend=settings.backend,
        images_dir=settings.images_dir,
    )


def output_line(record: dict[str, Any], result: TagResult) -> bytes:
    """The input object plus ``tokens``, ``tags`` and ``entities``, as one UTF-8 line of strict JSON."""
    out = {**record, **result.as_dict()}
    try:
        line = dumps(out, "output line", ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes: keep them escaped
        return (dumps(out, "output line", ensure_ascii=True) + "\n").encode("ascii")
    # U+2028/U+2029/U+0085 are legal inside JSON strings but str.splitlines() breaks lines on them.
    for char in ("\u2028", "\u2029", "\x85"):
        line = line.replace(char.encode("utf-8"), f"\\u{ord(char):04x}".encode("ascii"))
    return line + b"\n"


class _CountingReader:
    """A binary stream's ``readline(size)`` that counts the bytes read (for the progress bar)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.bytes = 0

    def readline(self, size: int = -1) -> bytes:
        raw = self.stream.readline(size)
        self.bytes += len(raw)
        return raw


def check_input(name: str) -> None:
    """``name`` is a readable input: a file, a named pipe (``<(...)``, ``mkfifo``) or a device such as ``/dev/stdin``."""
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise MscmtError(f"{name}: input file not found") from None
    except (OSError, ValueError) as err:
        raise MscmtError(f"{name}: cannot read the input ({getattr(err, 'strerror', None) or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise MscmtError(f"{name}: is a directory, not an input file")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        raise MscmtError(f"{name}: not a file")


@contextmanager
def open_input(name: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """The input as a binary stream (``-`` is stdin) and its size in bytes when known (regular files)."""
    if name == "-":
        yield sys.stdin.buffer, None
        return
    check_input(name)
    try:
        fh = open(name, "rb")
    except OSError as err:
        raise MscmtError(f"{name}: cannot read the input ({err.strerror or err})") from None
    with fh:
        info = os.fstat(fh.fileno())
        yield fh, info.st_size if stat.S_ISREG(info.st_mode) else None


class Sink:
    """The output stream; a failed write is one :class:`MscmtError` naming the output.

    A full disk (``--out /dev/full``) or a reader that went away (``mscmt tag a.jsonl | head``)
    ended in an unexpected ``OSError``/``BrokenPipeError``; the lines written before stay written.
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.stream = stream
        self.name = name

    def write(self, data: bytes) -> None:
        self._guard(self.stream.write, data)

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def close(self) -> None:
        self._guard(self.stream.close)

    def _guard(self, call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except BrokenPipeError:
            _silence_stdout()
            raise MscmtError(f"{self.name} was closed by its reader (broken pipe); stopped") from None
        except OSError as err:
            raise MscmtError(f"{self.name}: cannot write ({err.strerror or err})") from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again on a broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # a replaced stdout (tests) has no file number
        pass


@contextmanager
def open_output(out: Path | None) -> Iterator[Sink]:
    """``--out FILE`` (written as it goes; checked with :func:`check_output` first) or stdout, as a :class:`Sink`."""
    if out is None:
        sink = Sink(getattr(sys.stdout, "buffer", sys.stdout), "stdout")  # type: ignore[arg-type]
        Sink(sys.stdout, "stdout").flush()  # type: ignore[arg-type]
        yield sink
        sink.flush()
        return
    fh = open_stream(check_out_dir(out), "--out")
    sink = Sink(fh, f"--out {out}")
    try:
        yield sink
        sink.flush()
    except BaseException:
        try:  # closing flushes again: keep the first error, not the second
            fh.close()
        except OSError:
            pass
        raise
    sink.close()


def tag_reads(settings: Settings, input_name: str) -> list[tuple[str, Path]]:
    """The files ``mscmt tag`` reads that an output must not replace: the input, ``--captions``, the model's
    files, a local ``--captioner``'s files."""
    reads: list[tuple[str, Path]] = [] if input_name == "-" else [("the input", Path(input_name))]
    if settings.captions is not None:
        reads.append(("--captions", Path(settings.captions)))
    return reads + model_files(settings.model) + captioner_files(settings.captioner)


def check_tag_paths(
    settings: Settings, input_name: str, out: Path | None, explain_dir: Path | None, also_reads: Sequence[tuple[str, Path]] = ()
) -> None:
    """Every path of ``mscmt tag``, checked before the model is loaded or anything is opened.

    ``also_reads``: more files the run reads (the CLI adds its ``--config`` file).
    """
    if input_name != "-":
        check_input(input_name)
    images = settings.images_dir
    if images is not None and not Path(images).is_dir():
        raise MscmtError(f"--images {images}: " + ("is not a directory" if Path(images).exists() else "directory not found"))
    reads = tag_reads(settings, input_name) + list(also_reads)
    if out is not None:
        check_output(out, reads, kind=TAG_OUTPUT)
        if input_name == "-":
            check_stdin(out)
    else:
        check_stdout(reads)
    if explain_dir is not None:
        check_explain_dir(explain_dir, reads + ([("--out", Path(out))] if out is not None else []))


def run_tag(
    settings: Settings,
    input_name: str,
    out: Path | None,
    *,
    strict: bool = False,
    explain_dir: Path | None = None,
    window: int = 1024,
    console: Console,
    also_reads: Sequence[tuple[str, Path]] = (),
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Tally:
    """Tag every line of ``input_name``; bad lines (also lines over ``max_line_bytes``) go to stderr with their line numbers.

    Paths are checked first (:func:`check_tag_paths`): no output replaces a file the run reads.
    """
    check_tag_paths(settings, input_name, out, explain_dir, also_reads)
    tagger = load_tagger(settings)
    source = "<stdin>" if input_name == "-" else input_name
    explain = None if explain_dir is None else line_explainer(tagger, Path(explain_dir))
    with open_input(input_name) as (stream, size), open_output(out) as sink, progress(console, settings.progress_every) as bar:
        reader = _CountingReader(stream)
        task = bar.add_task("tagging", total=size, unit="bytes" if size is not None else "lines", info="")

        def on_result(item: InputRecord, result: TagResult) -> None:
            sink.write(output_line(item.record, result))
            if explain is not None:
                explain(item, result)

        def on_bad(bad: BadRecord) -> None:
            console.print(f"{source}:{bad.line}: {bad.message}", markup=False, highlight=False, soft_wrap=True)

        def on_window(tally: Tally) -> None:
            sink.flush()
            done = reader.bytes if size is not None else tally.tagged + tally.bad
            bar.update(task, completed=done, info=f"{tally.tagged} tagged, {tally.bad} bad")

        try:
            tally = tag_stream(
                tagger,
                read_records(reader, max_line_bytes),
                on_result=on_result,
                on_bad=on_bad,
                window=window,
                strict=strict,
                on_window=on_window,
            )
        except StrictStop as stop:
            sink.flush()
            raise DataError(source, stop.bad.line, f"{stop.bad.message} (--strict: stopped here)") from None
    _summary(console, tally, tagger)
    return tally


def _summary(console: Console, tally: Tally, tagger: Tagger) -> None:
    skipped = f"; skipped {tally.bad} bad line(s) (reported above)" if tally.bad else ""
    console.print(f"tagged {tally.tagged} tweet(s){skipped}", markup=False, highlight=False, soft_wrap=True)
    for note in tagger.reports():
        console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)


def line_explainer(tagger: Tagger, directory: Path) -> Callable[[InputRecord, TagResult], None]:
    """A function writing ``directory/line-NNNNNN.html`` for one tagged line (``mscmt tag --explain``).

    An image that cannot be shown (missing, unreadable, refused by the size checks) never stops
    the run: the page says why, and that the model saw the blank image (policy ``blank``).
    """
    from mscmt_cli.tagging.explain import render_page
    from mscmt_cli.tagging.processor import ImageName

    make_explain_dir(directory)
    info = tagger.info()
    pixels = tagger.images.encoder.input_kind == "pixels"
    seen = "the model saw the neutral blank image (policy 'blank')" if tagger.images.policy == "blank" else "not shown"

    def explain(item: InputRecord, result: TagResult) -> None:
        image, note = _page_image(tagger.processor.image_file(ImageName(item.image))) if item.image and pixels else (None, None)
        html = render_page(
            result,
            image,
            info,
            title=f"line {item.line}",
            caption=result.caption,
            image_note=None if note is None else f"{note}: {seen}",
            token_texts=token_texts(tagger, result),
        )
        page = directory / f"line-{item.line:06d}.html"
        try:  # atomic: a page never writes through a link, and is never left half written
            write_text_atomic(check_write(page, "--explain", EXPLAIN_PAGE), html, "--explain")
        except OSError as err:
            raise MscmtError(f"--explain {directory}: cannot write {page.name} ({err.strerror or err})") from None

    return explain


def token_texts(tagger: Tagger, result: TagResult) -> list[str] | None:
    """The image tokens as text (a caption-token model's caption sub-words) when the page shows attention, else None."""
    if result.attention is None or result.caption is None:
        return None
    return tagger.images.encoder.token_texts(result.caption)


def _page_image(found: str | Any) -> tuple[Any, str | None]:
    """``(image, None)`` for the page, or ``(None, why not)`` for a missing or unreadable image."""
    from mscmt_cli.tagging.explain import page_image

    if not isinstance(found, str):  # a MissingImage
        return None, found.message
    try:
        return page_image(Path(found)), None
    except MscmtError as err:
        return None, str(err)


def run_explain(settings: Settings, text: str, image: Path | None, out: Path, also_reads: Sequence[tuple[str, Path]] = ()) -> Path:
    """Write the explain page of one tweet (``also_reads``: more files the run reads, e.g. ``--config``)."""
    from mscmt_cli.tagging.explain import page_image, render_page

    reads = ([("--image", Path(image))] if image is not None else []) + (
        [("--captions", Path(settings.captions))] if settings.captions else []
    )
    reads = reads + model_files(settings.model) + captioner_files(settings.captioner) + list(also_reads)
    out = check_output(out, reads, kind=EXPLAIN_PAGE)
    tagger = load_tagger(settings, missing_images="error")
    pixels = tagger.images.encoder.input_kind == "pixels"
    if pixels and image is not None and not Path(image).is_file():
        why = (
            "is a directory, not an image file"
            if Path(image).is_dir()
            else "not a regular file"
            if Path(image).exists()
            else "file not found"
        )
        raise MscmtError(f"--image {image}: {why}")
    result = tagger.tag(text, image if pixels or image is None else str(image))
    shown = page_image(Path(image)) if image is not None and pixels else None
    html = render_page(result, shown, tagger.info(), caption=result.caption, token_texts=token_texts(tagger, result))
    if stream_kind(out) is not None:  # a device, a pipe or /dev/stdout (even when sent to a file): written through
        with open_stream(out, "--out") as sink:
            sink.write(html.encode("utf-8"))
    else:
        write_text_atomic(out, html, "--out")
    return out


def run_serve(
    settings: Settings,
    host: str,
    port: int,
    limits: Any,
    console: Console,
    api_key_file: Path | None = None,
    batching: Any = None,
    connections: Any = None,
) -> None:
    """Load the model once and serve it over HTTP until interrupted.

    The API key (``api_key_file``, else ``$MSCMT_API_KEY``) is read before the model is loaded,
    so a bad key file fails at once; a non-loopback ``host`` without a key is warned about.
    ``connections`` bounds open connections and unfinished requests (:mod:`mscmt_cli.tagging.connections`).
    """
    from mscmt_cli.tagging.auth import open_warning, resolve_api_key
    from mscmt_cli.tagging.connections import Connections, make_server, reserve_fds
    from mscmt_cli.tagging.server import create_app

    connections = connections or Connections()
    api_key = resolve_api_key(api_key_file, os.environ)
    warning = open_warning(host, api_key is not None)
    if warning is not None:
        console.print(warning, markup=False, highlight=False, soft_wrap=True)
    tagger = load_tagger(settings, missing_images="error")
    reserve_fds(connections.max_connections)
    make_server(create_app(tagger, limits, api_key=api_key, batching=batching), host, port, connections).run()
