"""Captions for new images: any Hugging Face image-to-text model, batched, cached by content, resumable.

A caption-based model (image encoder ``input_kind == "caption"``) reads an
image through its caption. :class:`Captioner` writes one for images that come
without: any model that ``AutoModelForImageTextToText`` and ``AutoProcessor``
load (``Salesforce/blip2-opt-2.7b``, the family that wrote the captions of
``../shared/data/captions``), by hub id or local directory, decoding greedily
(``do_sample=False, num_beams=1``), so the same image always gets the same caption.

:class:`CaptionMaker` puts a captioner behind two caches: a bounded in-memory
map and the feature cache directory (:class:`~mscmt_cli.features.FeatureCache`),
keyed by the SHA-256 of the image file's bytes and the captioner's identity
(model class, weights, processor, generation settings). Images are read with
the image store's checks (:func:`~mscmt_cli.data.images.read_image_file`,
:func:`~mscmt_cli.data.images.decode_image`: file size, pixel count, aspect
ratio, decompression bombs), one batch of decoded pixels alive at a time.

:func:`caption_directory` is ``mscmt caption IMAGES_DIR --out FILE``: one
``<name> :<caption>`` line per image (the format
:func:`~mscmt_cli.data.captions.read_captions` reads), in file-name order.
It is resumable: an image whose id is already in ``--out`` is skipped and new
lines are appended; each batch's lines are written whole, flushed and synced,
and a partial last line (a run killed mid-write) is dropped on start, once the
file is recognised as a captions file (:func:`captions_done`: whole caption
lines, then the start of a line for one of the images), so the file only ever
holds whole lines and a rerun ends with the file an uninterrupted run writes. A caption is one line: its white space (new lines
included) becomes single spaces and control characters are dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mscmt_cli.data.captions import decode_captions, image_key, parse_captions
from mscmt_cli.data.images import IMAGE_EXTENSIONS, check_policy, image_loader, pixel_bounded, substitution_report
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.features import FeatureCache
from mscmt_cli.model.hub import config_digest, load_pretrained, weights_fingerprint
from mscmt_cli.paths import check_output, open_stream, same_file, stream_kind, sync, truncate_file
from mscmt_cli.settings import Settings

if TYPE_CHECKING:
    import torch

#: The name a captioner goes by in messages and in its cache identity.
CAPTIONER = "captioner"
DEFAULT_MAX_NEW_TOKENS = 30
NO_CAPTIONER = "--captioner is required here (a hub id such as Salesforce/blip2-opt-2.7b, or a local model directory)"
#: Captions kept in memory by a :class:`CaptionMaker` (short strings: about 10 MB at this bound).
MEMORY_ITEMS = 65_536


def clean_caption(text: str) -> str:
    """``text`` as one line of a captions file: white space runs become one space, control characters go."""
    words = " ".join(text.split())
    return "".join(c for c in words if unicodedata.category(c) not in ("Cc", "Cs"))


class Captioner:
    """A Hugging Face image-to-text model and its processor, decoding greedily on one device."""

    def __init__(
        self, model: Any, processor: Any, *, source: str = "", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, prompt: str | None = None
    ) -> None:
        """``source``: where the weights came from (a local directory's weight files are fingerprinted)."""
        if max_new_tokens < 1:
            raise MscmtError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.processor = processor
        self.source = source
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.calls = 0  # generate() calls: how tests see that a cached caption cost no forward pass
        self._identity: str | None = None

    @classmethod
    def load(
        cls,
        source: str | os.PathLike[str],
        *,
        device: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        prompt: str | None = None,
    ) -> Captioner:
        """Load ``source`` (a hub id or a local directory) with ``AutoModelForImageTextToText`` and ``AutoProcessor``.

        An unreachable hub or an unusable directory is one :class:`~mscmt_cli.errors.ModelLoadError`.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from mscmt_cli.backends.device import resolve_device

        name = os.fspath(source)
        if not name.strip():
            raise MscmtError("--captioner: empty name; give a hub id or a local model directory")
        processor = load_pretrained(CAPTIONER, name, AutoProcessor.from_pretrained, local_option="--captioner")
        model: Any = load_pretrained(CAPTIONER, name, AutoModelForImageTextToText.from_pretrained, local_option="--captioner")
        local = Path(name).expanduser()
        return cls(
            model.to(resolve_device(device)),
            processor,
            source=str(local) if local.exists() else name,
            max_new_tokens=max_new_tokens,
            prompt=prompt,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def identity(self) -> str:
        """What the captions depend on: model class and weights, processor and tokenizer, generation settings."""
        if self._identity is None:
            tokenizer = getattr(self.processor, "tokenizer", None)
            vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False) if tokenizer is not None else ""
            tok = hashlib.sha256(f"{type(tokenizer).__name__}|{vocab}".encode()).hexdigest()[:12]
            dtype = str(next(self.model.parameters()).dtype).replace("torch.", "")
            self._identity = (
                f"{CAPTIONER}|{type(self.model).__name__}|{weights_fingerprint(self.source, self.model)}|"
                f"{config_digest(self.processor.to_dict())}|{tok}|{dtype}|greedy|max{self.max_new_tokens}|prompt={self.prompt!r}"
            )
        return self._identity

    def generate(self, images: Sequence[Any]) -> list[str]:
        """One caption per RGB PIL image (one ``generate`` call), each cleaned to one line."""
        import torch

        if not images:
            return []
        with torch.inference_mode():
            return self._generate(images)

    def _generate(self, images: Sequence[Any]) -> list[str]:
        import torch

        if self.prompt is None:
            inputs = self.processor(images=list(images), return_tensors="pt")
        else:
            inputs = self.processor(images=list(images), text=[self.prompt] * len(images), return_tensors="pt")
        dtype = next(self.model.parameters()).dtype
        inputs = {k: _to(v, self.device, dtype) for k, v in inputs.items()}
        self.calls += 1
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        prompt_ids = inputs.get("input_ids")
        if prompt_ids is not None and out.shape[1] >= prompt_ids.shape[1] and torch.equal(out[:, : prompt_ids.shape[1]], prompt_ids):
            out = out[:, prompt_ids.shape[1] :]  # decoder-only models return the prompt first
        return [clean_caption(t) for t in self.processor.batch_decode(out, skip_special_tokens=True)]


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """A processor output on the model's device, floating tensors (pixels) in the model's dtype."""
    import torch

    if not isinstance(value, torch.Tensor):
        return value
    return value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device)


@dataclass
class CaptionMaker:
    """Captions by image content: memory, then the disk cache, then the captioner, in batches.

    Counts what it did: ``generated`` captions (forward passes), ``cached`` (read from disk).
    """

    captioner: Captioner
    cache: FeatureCache = field(default_factory=lambda: FeatureCache(None))
    batch_size: int = 16
    memory_items: int = MEMORY_ITEMS
    generated: int = 0
    cached: int = 0
    _memory: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise MscmtError(f"--batch-size must be at least 1, got {self.batch_size}")

    def identity(self) -> str:
        return self.captioner.identity()

    def captions(self, images: Sequence[Any]) -> list[str | MscmtError]:
        """The caption of each image (a path, encoded bytes or a PIL image), in order.

        An image that cannot be read (missing, unreadable, over the size limits) gives its
        :class:`MscmtError` instead; the others are captioned all the same.
        """
        out: list[str | MscmtError | None] = [None] * len(images)
        pending: dict[str, list[int]] = {}  # digest -> indices
        loaders: dict[str, Callable[[], Any]] = {}
        for i, image in enumerate(images):
            try:
                digest, loader = image_loader(image)
            except MscmtError as err:
                out[i] = err
                continue
            known = self._known(digest)
            if known is not None:
                out[i] = known
            else:
                pending.setdefault(digest, []).append(i)
                loaders[digest] = loader
        digests = list(pending)
        for start in range(0, len(digests), self.batch_size):
            self._generate(digests[start : start + self.batch_size], pending, loaders, out)
        return [o if o is not None else MscmtError("no caption") for o in out]

    def _generate(
        self, digests: list[str], pending: dict[str, list[int]], loaders: dict[str, Callable[[], Any]], out: list[str | MscmtError | None]
    ) -> None:
        """Decode one batch of images one at a time (pixels bounded, :func:`pixel_bounded`) and caption them."""

        def load(digest: str) -> Any:
            try:
                return loaders[digest]()
            except MscmtError as err:
                for i in pending[digest]:
                    out[i] = err
                return None

        for chunk, contents in pixel_bounded(digests, load):
            for digest, caption in zip(chunk, self.captioner.generate(contents)):
                self.generated += 1
                self.cache.put_text(self.identity(), digest, caption)
                self._remember(digest, caption)
                for i in pending[digest]:
                    out[i] = caption

    def _known(self, digest: str) -> str | None:
        caption = self._memory.get(digest)
        if caption is not None:
            self._memory.move_to_end(digest)
            return caption
        caption = self.cache.get_text(self.identity(), digest)
        if caption is not None:
            self.cached += 1
            self._remember(digest, caption)
        return caption

    def _remember(self, digest: str, caption: str) -> None:
        self._memory[digest] = caption
        self._memory.move_to_end(digest)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)


# -- mscmt caption IMAGES_DIR --out FILE ----------------------------------------------------------


@dataclass(frozen=True)
class ImageFile:
    """An image of the directory: its id (file name without extension) and its file."""

    key: str
    path: Path


@dataclass
class CaptionTally:
    """What a ``mscmt caption`` run did."""

    images: int = 0
    already: int = 0
    written: int = 0
    repaired: bool = False
    skipped: list[str] = field(default_factory=list)  # one message per image left without a caption
    notes: list[str] = field(default_factory=list)


def list_images(directory: Path) -> tuple[list[ImageFile], list[str]]:
    """The images of ``directory`` (``.jpg``, ``.jpeg``, ``.png``, any case), in file-name order, and notes
    on the files left out: a name a captions line cannot hold (white space or ``:``), or a second file
    with the same id (``a.jpg`` and ``a.png``: the image store reads ``a.jpg``, so that one is kept)."""
    try:
        names = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    except OSError as err:
        raise MscmtError(f"images directory {directory}: cannot list it ({err.strerror or err})") from None
    notes: list[str] = []
    chosen: dict[str, Path] = {}
    for path in sorted(names, key=lambda p: (IMAGE_EXTENSIONS.index(p.suffix.lower()), p.suffix != p.suffix.lower(), p.name)):
        key = image_key(path.name)
        if any(c.isspace() for c in path.name) or ":" in path.name:
            notes.append(f"{path}: a name with white space or ':' cannot be written as '<id>.jpg :<caption>'; skipped")
        elif key in chosen:
            notes.append(f"{path}: same id {key!r} as {chosen[key].name}; skipped")
        else:
            chosen[key] = path
    files = sorted((ImageFile(k, p) for k, p in chosen.items()), key=lambda f: f.path.name)
    return files, notes


def check_caption_paths(images_dir: Path, out: Path, reads: Sequence[tuple[str, Path]] = ()) -> Path:
    """Refuse an images directory that is not one, and an ``--out`` that would replace an input
    (the directory, an image, ``reads``) or that a later run would take for an image."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise MscmtError(f"images directory {images_dir}: " + ("is not a directory" if images_dir.exists() else "not found"))
    out = check_output(out, [("the images directory", images_dir), *reads])
    if out.suffix.lower() in IMAGE_EXTENSIONS and same_file(out.parent, images_dir):
        raise MscmtError(f"--out {out}: an image name inside the images directory; give a captions file name (captions.txt)")
    return out


def _complete_end(data: bytes) -> int:
    """Where the whole lines of ``data`` end (after its last newline; 0 when it has none)."""
    return data.rfind(b"\n") + 1


def repair_tail(path: Path) -> bool:
    """Drop a partial last line (no final newline: a write cut short); whether anything was dropped.

    Only a regular file is repaired (``/dev/stdout`` or a pipe is written as it is). The caller has
    recognised the file as a captions file first (:func:`captions_done`)."""
    if not path.is_file() or stream_kind(path) is not None:
        return False
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MscmtError(f"--out {path}: cannot read it ({err.strerror or err})") from None
    keep = _complete_end(data)
    if keep == len(data):
        return False
    truncate_file(path, keep, "--out")
    return True


def captions_done(out: Path, files: Sequence[ImageFile] = ()) -> set[str]:
    """Ids already captioned in ``out`` (empty when it does not exist or is empty), read before anything is cut.

    ``out`` must be a captions file mscmt caption can append to: whole ``<id>.jpg :<caption>`` lines,
    then at most a partial line that is the start of a line it writes for one of ``files`` (a run killed
    mid-write). Anything else is refused, and nothing is changed.
    """
    if not out.is_file() or stream_kind(out) is not None or out.stat().st_size == 0:  # /dev/stdout sent to a file: not read
        return set()
    try:
        data = out.read_bytes()
    except OSError as err:
        raise MscmtError(f"--out {out}: cannot read it ({err.strerror or err})") from None
    if data.lstrip()[:1] == b"{":
        raise MscmtError(f"--out {out}: holds JSON Lines; mscmt caption appends '<id>.jpg :<caption>' lines, give another file")
    end = _complete_end(data)
    tail = data[end:].decode("utf-8", errors="replace")
    heads = [f"{f.path.name} :" for f in files]
    if tail and not any(h.startswith(tail) or tail.startswith(h) for h in heads):
        raise MscmtError(
            f"--out {out} exists and is not a captions file mscmt caption can append to: its last line {tail[:40]!r} "
            "is not the start of a line it writes; give another file"
        )
    try:
        text = decode_captions(out, data[:end])
        return set(parse_captions(out, text)) if text.strip() else set()
    except DataError as err:
        raise MscmtError(f"--out {out} exists and is not a captions file mscmt caption can append to: {err}") from None


class _Appender:
    """``--out`` opened for appending; each :meth:`write` is whole lines, flushed and synced to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = open_stream(path, "--out", append=True)

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self.fh.write("".join(lines).encode("utf-8"))
            sync(self.fh)
        except OSError as err:
            raise MscmtError(f"--out {self.path}: cannot write ({err.strerror or err})") from None

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError as err:
            raise MscmtError(f"--out {self.path}: cannot write ({err.strerror or err})") from None


def caption_directory(
    images_dir: Path,
    out: Path,
    maker: CaptionMaker,
    *,
    policy: str = "blank",
    console: Console | None = None,
    progress_every: float = 0.0,
    reads: Sequence[tuple[str, Path]] = (),
) -> CaptionTally:
    """Caption every image of ``images_dir`` not yet in ``out`` and append their lines (see the module doc).

    ``console``: where warnings and progress go (None: nowhere); ``progress_every``: seconds between progress lines
    where that console is not a terminal (see :func:`~mscmt_cli.console.progress`).

    ``policy``: ``blank`` reports an unreadable image and goes on without its line (a rerun tries
    it again); ``error`` writes the lines before it and stops with its path.
    ``reads``: more files the run reads, which ``out`` must not replace (``--config``).
    """
    from mscmt_cli.console import progress

    check_policy(policy)
    out = check_caption_paths(images_dir, out, reads)
    files, notes = list_images(images_dir)
    done = captions_done(out, files)  # recognised before its partial last line is dropped
    tally = CaptionTally(images=len(files), notes=notes, repaired=repair_tail(out))
    todo = [f for f in files if f.key not in done]
    tally.already = len(files) - len(todo)
    console = console or Console(stderr=True, quiet=True)
    writer = _Appender(out)
    try:
        with progress(console, progress_every) as bar:
            task = bar.add_task("captioning", total=len(todo), unit="images", info="")
            for start in range(0, len(todo), maker.batch_size):
                batch = todo[start : start + maker.batch_size]
                skipped = len(tally.skipped)
                lines, failure = _batch_lines(batch, maker.captions([str(f.path) for f in batch]), policy, tally)
                for message in tally.skipped[skipped:]:
                    console.print(f"warning: {message}; skipped", markup=False, highlight=False, soft_wrap=True)
                writer.write(lines)
                tally.written += len(lines)
                if failure is not None:
                    raise failure
                bar.update(task, advance=len(batch), info=f"{maker.generated} generated, {maker.cached} cached")
    finally:
        writer.close()
    return tally


def _batch_lines(
    batch: list[ImageFile], captions: list[str | MscmtError], policy: str, tally: CaptionTally
) -> tuple[list[str], MscmtError | None]:
    """The lines of one batch, and under ``error`` the first failure (the lines before it are kept)."""
    lines: list[str] = []
    for image, caption in zip(batch, captions):
        if isinstance(caption, MscmtError):
            if policy == "error":
                return lines, MscmtError(f"{caption} (--missing-images error: stopped; the captions before it are in --out)")
            tally.skipped.append(str(caption))
            continue
        lines.append(f"{image.path.name} :{caption}\n")
    return lines, None


def summary(tally: CaptionTally, maker: CaptionMaker, out: Path) -> list[str]:
    """The lines ``mscmt caption`` prints at the end."""
    lines = [
        f"{tally.written} caption(s) appended to {out} ({maker.generated} generated, {maker.cached} from the cache); "
        f"{tally.already} of {tally.images} image(s) were already there"
    ]
    if tally.repaired:
        lines.append(f"note: dropped a partial last line of {out} (left by an interrupted run); its image is captioned again")
    lines += [f"note: {n}" for n in tally.notes]
    report = substitution_report(tally.skipped, "unreadable image(s) skipped (no line written; a rerun tries them again)", shown=3)
    if report:
        lines.append(f"warning: {report}")
    return lines


def captioner_files(source: str | None) -> list[tuple[str, Path]]:
    """The files of a local ``--captioner`` directory, as ``reads`` (an output must not replace them)."""
    if source is None or not Path(source).expanduser().is_dir():
        return []
    try:
        return [("a file of --captioner", p) for p in Path(source).expanduser().iterdir() if p.is_file()]
    except OSError:  # unreadable: loading it reports that
        return []


def load_maker(settings: Settings, batch_size: int, prompt: str | None = None) -> CaptionMaker:
    """The settings' ``--captioner`` behind the feature cache (``--cache-dir``, off with ``--no-cache``)."""
    if settings.captioner is None:
        raise MscmtError(NO_CAPTIONER)
    captioner = Captioner.load(settings.captioner, device=settings.device, max_new_tokens=settings.max_new_tokens, prompt=prompt)
    cache = FeatureCache(None if settings.no_cache else settings.cache_dir)
    return CaptionMaker(captioner, cache, batch_size=batch_size)


def run_caption(
    settings: Settings,
    images_dir: Path,
    out: Path,
    *,
    batch_size: int = 16,
    prompt: str | None = None,
    console: Console,
    reads: Sequence[tuple[str, Path]] = (),
) -> CaptionTally:
    """``mscmt caption``: paths checked first, then the captioner loaded, then every new image captioned."""
    reads = [*reads, *captioner_files(settings.captioner)]
    if settings.captioner is None:
        raise MscmtError(NO_CAPTIONER)
    check_policy(settings.missing_images)
    captions_done(check_caption_paths(images_dir, out, reads), list_images(images_dir)[0])
    maker = load_maker(settings, batch_size, prompt)
    tally = caption_directory(
        images_dir, out, maker, policy=settings.missing_images, console=console, progress_every=settings.progress_every, reads=reads
    )
    for line in summary(tally, maker, out):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return tally
