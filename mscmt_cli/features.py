"""Features of a frozen image encoder, computed once per image and kept on disk.

An image's features are its real tokens, stored as one ``.npy`` array under
``<cache>/<encoder key>/<digest[:2]>/<digest>.npy``: ``(N_i, D)`` in the
encoder's ``token_dtype`` (float16 for token encoders), or ``(D,)`` when the
image has one token (every file a pooled encoder wrote before image tokens
existed, and still writes, byte for byte). The encoder key hashes
:func:`~mscmt_cli.model.components.feature_identity` (name, weights,
preprocessing; for token encoders also the token shape and dtype) and the
digest is the SHA-256 of the image file's bytes (or of the caption's text). A
change of image or encoder therefore never serves a stale feature. A
generated caption (:mod:`mscmt_cli.captioning`) is an entry of the same layout
whose files are ``<digest>.txt`` (UTF-8 text) and whose identity starts with
``captioner|``; ``cache info`` counts and ``cache clear`` removes both kinds. Files are written to a temporary name and renamed, so
concurrent readers and an interrupted build never see a torn file.

``<cache>/<encoder key>/identity.txt`` holds the identity the key hashes; it
is written before the entry's first feature and is how ``cache info`` and
``cache clear`` tell an entry from anything else kept in the same directory.

The store is numpy throughout (tokens are read, cached and kept as arrays) and imports no torch: a model
tagged by its exported ONNX graphs (a text-only model's :class:`~mscmt_cli.model.no_image.NoImage`, an
exported image encoder's :class:`~mscmt_cli.export.image_graph.OnnxImageEncoder`) never loads it. A torch
encoder's :class:`~mscmt_cli.model.components.ImageTokens` become arrays in :func:`encode_checked`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from PIL import Image

from mscmt_cli.data.captions import caption_digest
from mscmt_cli.data.images import (
    BLANK_DIGEST,
    MissingImage,
    blank_image,
    check_policy,
    decode_image,
    image_loader,
    pixel_bounded,
    read_image_file,
)
from mscmt_cli.errors import MscmtError
from mscmt_cli.model.image_side import ImageSide, TokenArrays, feature_identity, token_dtype
from mscmt_cli.model.no_image import NoImage
from mscmt_cli.paths import check_dir_target, remove_empty_dir, remove_file, write_atomic

if TYPE_CHECKING:
    import torch

#: One image's tokens: in memory ``(N_i, D)`` numpy (a ``(D,)`` vector is one token; a caller may hand a CPU
#: tensor, read through the array protocol), or the cached ``.npy`` file holding them.
TokenRef: TypeAlias = "np.ndarray | torch.Tensor | Path"


KEY_LENGTH = 20
IDENTITY_FILE = "identity.txt"
_KEY = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
_FEATURE = re.compile(r"^[0-9a-f]{64}\.(npy|txt)$|^tmp[^/]*\.tmp$|^\.[0-9a-f]{64}\.(npy|txt)\.[^/]*\.tmp$")


def read_array(path: Path) -> np.ndarray:
    """The array stored in a cached ``.npy`` file (``(N_i, D)`` or ``(D,)``), in its stored dtype."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise MscmtError(f"{path}: unreadable cached image features ({err}); run mscmt cache clear") from None


def as_tokens(array: np.ndarray) -> np.ndarray:
    """A stored array as tokens ``(N_i, D)``: a ``(D,)`` vector is one token."""
    return array[None] if array.ndim == 1 else array


def read_tokens(path: Path) -> np.ndarray:
    """The tokens ``(N_i, D)`` stored in a cached ``.npy`` file, in their stored dtype."""
    return as_tokens(read_array(path))


def _shape_fits(shape: tuple[int, ...], dim: int, max_tokens: int) -> bool:
    """Whether a stored array's shape is one image's tokens: ``(D,)`` or ``(N_i, D)`` with ``1 <= N_i <= max_tokens``."""
    return (len(shape) == 1 and shape[0] == dim) or (len(shape) == 2 and 1 <= shape[0] <= max_tokens and shape[1] == dim)


def encoder_key(identity: str) -> str:
    """Directory name of an encoder's features in the cache."""
    return hashlib.sha256(identity.encode()).hexdigest()[:KEY_LENGTH]


def check_cache_dir(root: Path | str) -> Path:
    """The cache directory, refused when empty (the current directory) or when it is a file."""
    return check_dir_target(root, "--cache-dir")


@dataclass
class FeatureCache:
    """A directory of cached features; ``root=None`` disables caching.

    Only directories that are provably cache entries are ever listed or
    deleted: an entry's name is the key of the identity written in its
    ``identity.txt`` (``encoder_key(identity) == name``), a proof no foreign
    folder carries by accident. Anything else under the root is left alone.
    """

    root: Path | None

    def __post_init__(self) -> None:
        if self.root is not None:
            self.root = check_cache_dir(self.root)

    def _path(self, identity: str, digest: str, suffix: str = ".npy") -> Path:
        assert self.root is not None
        return Path(self.root) / encoder_key(identity) / digest[:2] / f"{digest}{suffix}"

    def feature_path(self, identity: str, digest: str) -> Path:
        """Where one image's tokens are (or would be) stored."""
        return self._path(identity, digest)

    def get(self, identity: str, digest: str, dim: int | None = None, max_tokens: int = 1) -> np.ndarray | None:
        """The cached tokens ``(N_i, D)`` (stored dtype), or None (absent, unreadable, or, given
        ``dim``, not ``D == dim`` and ``N_i <= max_tokens``)."""
        if self.root is None:
            return None
        try:
            array = np.load(self._path(identity, digest), allow_pickle=False)
        except (OSError, ValueError):
            return None
        if dim is not None and not _shape_fits(tuple(array.shape), dim, max_tokens):
            return None
        return as_tokens(array)

    def file(self, identity: str, digest: str, dim: int, max_tokens: int, dtype: np.dtype[Any]) -> Path | None:
        """The cached ``.npy`` of one image's tokens when it is readable and has their shape and
        dtype (only its header is read), else None."""
        if self.root is None:
            return None
        path = self._path(identity, digest)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            fits = _shape_fits(tuple(array.shape), dim, max_tokens) and array.dtype == dtype
            del array
        except (OSError, ValueError):
            return None
        return path if fits else None

    def put(self, identity: str, digest: str, tokens: np.ndarray, dtype: np.dtype[Any] | None = None) -> None:
        """Store one image's tokens ``(N_i, D)`` (or a ``(D,)`` vector) as ``dtype`` (default theirs), atomically
        (temporary file, then rename); one token is stored as ``(D,)``."""
        if self.root is not None:
            array = np.asarray(tokens, dtype=dtype)
            if array.ndim == 2 and array.shape[0] == 1:
                array = array[0]
            self._store(self._path(identity, digest), identity, lambda fh: np.save(fh, array, allow_pickle=False))

    def get_text(self, identity: str, digest: str) -> str | None:
        """The cached text (a generated caption), or None."""
        if self.root is None:
            return None
        try:
            return self._path(identity, digest, ".txt").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def put_text(self, identity: str, digest: str, text: str) -> None:
        """Store one text (a generated caption) atomically, as UTF-8."""
        if self.root is not None:
            data = text.encode("utf-8")
            self._store(self._path(identity, digest, ".txt"), identity, lambda fh: fh.write(data))

    def _store(self, path: Path, identity: str, write: Callable[[Any], object]) -> None:
        """Write ``path`` through ``write(binary file)`` to a temporary file, then rename it into place."""
        if not path.parent.is_dir():
            _label_entry(path.parent.parent, identity)
        write_atomic(path, write, "--cache-dir", durable=False)

    def entries(self) -> list[tuple[Path, str]]:
        """(directory, encoder identity) of every provable cache entry under the root."""
        if self.root is None or not Path(self.root).is_dir():
            return []
        try:
            children = sorted(Path(self.root).iterdir())
        except OSError as err:
            raise MscmtError(f"--cache-dir {self.root}: cannot list it ({err.strerror or err})") from None
        found = []
        for d in children:
            identity = _entry_identity(d)
            if identity is not None:
                found.append((d, identity))
        return found

    def info(self) -> list[tuple[str, str, int, int]]:
        """(encoder key, encoder identity, number of features or captions, bytes) per cache entry."""
        rows = []
        for d, identity in self.entries():
            files = [f for f in d.glob("*/*") if f.is_file() and f.suffix in (".npy", ".txt")]
            rows.append((d.name, identity, len(files), sum(f.stat().st_size for f in files)))
        return rows

    def clear(self) -> int:
        """Delete every cached feature; returns how many encoder entries went.

        Inside an entry only mscmt's own files are removed (features, their
        temporary files, the identity label); a folder is removed once empty.
        """
        entries = self.entries()
        for d, _ in entries:
            _clear_entry(d)
        return len(entries)


def _label_entry(entry: Path, identity: str) -> None:
    """Write ``identity.txt`` of a new entry atomically (before any feature goes in)."""
    label = entry / IDENTITY_FILE
    if label.is_file():
        return
    write_atomic(label, lambda fh: fh.write((identity + "\n").encode("utf-8")), "--cache-dir", durable=False)


def _entry_identity(d: Path) -> str | None:
    """The identity of a cache entry directory, or None when ``d`` is not provably one."""
    if d.is_symlink() or not d.is_dir() or not _KEY.match(d.name):
        return None
    label = d / IDENTITY_FILE
    if label.is_symlink() or not label.is_file() or label.stat().st_size > 1 << 16:
        return None
    try:
        identity = label.read_text(encoding="utf-8").rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return None
    return identity if encoder_key(identity) == d.name else None


def _clear_entry(d: Path) -> None:
    """Remove a cache entry's feature files and label, and its folders when that empties them."""
    for shard in d.iterdir():
        if shard.is_dir() and not shard.is_symlink() and _SHARD.match(shard.name):
            for f in shard.iterdir():
                if _FEATURE.match(f.name) and (f.is_file() or f.is_symlink()):
                    remove_file(f)
            remove_empty_dir(shard)  # not empty: something that is not ours stays
        elif shard.name.endswith(".tmp") and shard.is_file():
            remove_file(shard)
    if not any(p.name != IDENTITY_FILE for p in d.iterdir()):
        remove_file(d / IDENTITY_FILE)
        remove_empty_dir(d)


@dataclass
class CachedEncoder:
    """Digest -> tokens through the disk cache, else the frozen encoder: the one encode path of training and tagging.

    Every road reads and writes the cache through this class (under :class:`TokenStore`),
    so training, ``mscmt cache build``, evaluation and tagging share one identity per encoder (its
    entry in the cache), one validity rule for a cached file, and one way of
    encoding: distinct digests at most ``batch_size`` at a time, decoded one by
    one into chunks of at most ``MAX_BATCH_PIXELS`` (:func:`pixel_bounded`),
    each chunk one call of the encoder (counted in ``encoder_calls``), each
    image's tokens ``(N_i, D)`` written to the cache in ``token_dtype``.
    """

    encoder: ImageSide
    cache: FeatureCache
    batch_size: int = 32
    encoder_calls: int = 0
    _identity: str | None = None

    def identity(self) -> str:
        """The encoder's :func:`feature_identity` (its cache entry is ``encoder_key(identity)``)."""
        if self._identity is None:
            self._identity = feature_identity(self.encoder)
        return self._identity

    def cached(self, digest: str) -> np.ndarray | None:
        """The cached tokens ``(N_i, D)`` in ``token_dtype``, or None (absent, unreadable, not this encoder's shape)."""
        enc = self.encoder
        tokens = self.cache.get(self.identity(), digest, enc.dim, enc.max_tokens)
        return None if tokens is None else tokens.astype(token_dtype(enc), copy=False)

    def cached_file(self, digest: str) -> Path | None:
        """The cached ``.npy`` of a digest's tokens when it has this encoder's shape and dtype, else None."""
        enc = self.encoder
        return self.cache.file(self.identity(), digest, enc.dim, enc.max_tokens, token_dtype(enc))

    def encode(self, digests: Iterable[str], load: Callable[[str], Any], on_encoded: Callable[[str, np.ndarray], None]) -> None:
        """Encode ``digests`` (distinct) in batches and store them; ``on_encoded(digest, tokens (N_i, D))`` for each.

        ``load(digest)`` gives the decoded input (a PIL image, a caption), or None to leave that digest out
        (the caller recorded why). At most one batch of decoded inputs is alive at a time.
        """
        pending = list(digests)
        for start in range(0, len(pending), self.batch_size):
            for chunk, contents in pixel_bounded(pending[start : start + self.batch_size], load):
                encoded = encode_checked(self.encoder, contents)
                self.encoder_calls += 1
                for digest, tokens in zip(chunk, encoded):
                    self.cache.put(self.identity(), digest, tokens)
                    on_encoded(digest, tokens)


#: Substituted inputs whose message the end-of-run report quotes.
SHOWN_EXAMPLES = 3


@dataclass(frozen=True)
class Caption:
    """A caption given as text (what a caption image encoder reads)."""

    text: str


#: What one tweet's image may be for the store: a PIL image, encoded bytes, a file path, nothing (the blank
#: image, or for caption encoders the empty caption), a :class:`Caption` (caption encoders), or why it is missing.
ImageInput = Image.Image | bytes | bytearray | memoryview | str | os.PathLike[str] | Caption | MissingImage | None


def caption_key(text: str) -> tuple[str, Callable[[], Any]]:
    """``(digest, loader)`` of a caption (:func:`caption_digest`; a lone surrogate is hashed as it is)."""
    try:
        digest = caption_digest(text)
    except UnicodeEncodeError:  # lone surrogates from a JSON \ud800 escape
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest, lambda: text


@dataclass
class TokenStore:
    """Image tokens ``(N_i, D)`` of a frozen encoder for every road (training, ``cache build``, evaluation, tagging).

    Every input is keyed by a content digest (SHA-256 of the file's bytes; of the mode, size and
    pixels for a PIL image; of the text for a :class:`Caption`) and looked up in memory, then the
    on-disk :class:`FeatureCache`, and only then encoded in batches (:class:`CachedEncoder`).

    Memory: with ``keep_all`` (training, which reads every tweet's tokens each epoch) every
    digest's tokens are kept, a token encoder's (``max_tokens > 1``) as their ``.npy`` file (in
    the cache or, with caching off, in a scratch directory removed with this object); else a
    bounded LRU holds at most ``memory_items`` inputs' tokens and ``memory_bytes`` bytes.

    A missing or unreadable input (a :class:`MissingImage`, a file that will not decode) is an
    error of that input under policy ``error`` and becomes the blank image (for caption encoders
    the empty caption) under ``blank``, counted once per message for :meth:`report`.
    """

    encoder: ImageSide
    cache: FeatureCache = field(default_factory=lambda: FeatureCache(None))
    policy: str = "blank"
    batch_size: int = 32
    keep_all: bool = False
    memory_items: int = 4096
    memory_bytes: int = 256 << 20
    substituted: list[str] = field(default_factory=list)
    _memory: OrderedDict[str, TokenRef] = field(default_factory=OrderedDict)
    _memory_used: int = 0
    _digests: dict[str, str] = field(default_factory=dict)  # keep_all: file path -> digest (a file is read once)
    _scratch: tempfile.TemporaryDirectory[str] | None = None
    _core: CachedEncoder | None = None

    def __post_init__(self) -> None:
        check_policy(self.policy)
        if self.on_disk and self.cache.root is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="mscmt-image-tokens-")
            self.cache = FeatureCache(Path(self._scratch.name))
        if not isinstance(self.encoder, NoImage):  # a text-only model's empty tokens are never encoded nor cached
            self._core = CachedEncoder(self.encoder, self.cache, self.batch_size)

    @property
    def core(self) -> CachedEncoder:
        """The cache-and-encoder layer under the store (none for :class:`NoImage`)."""
        assert self._core is not None, "a text-only model's store encodes nothing"
        return self._core

    @property
    def encoder_calls(self) -> int:
        """Calls of the encoder so far (one per batch computed)."""
        return 0 if self._core is None else self._core.encoder_calls

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def on_disk(self) -> bool:
        """Whether kept tokens are files (``keep_all`` with a token encoder) rather than tensors in memory."""
        return self.keep_all and self.encoder.max_tokens > 1

    def identity(self) -> str:
        return self.encoder.identity() if self._core is None else self._core.identity()

    def features(
        self, inputs: Sequence[ImageInput], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[TokenRef | None], dict[int, str]]:
        """Each input's tokens ``(N_i, D)`` in ``token_dtype`` (``keep_all`` with a token encoder: their cached
        file), and ``{index: message}`` for the inputs that failed (their tokens are None).

        ``on_progress(n)``: ``n`` more inputs are done.
        """
        if self.encoder.input_kind == "none":
            return [np.zeros((1, self.encoder.dim), np.float32) for _ in inputs], {}
        out: list[TokenRef | None] = [None] * len(inputs)
        errors: dict[int, str] = {}
        pending: dict[str, list[int]] = {}  # digest -> input indices
        loaders: dict[str, Callable[[], Any]] = {}
        for i, item in enumerate(inputs):
            digest, loader = self._key(i, item, errors)
            if digest is None:
                continue
            known = self._known(digest)
            if known is not None:
                out[i] = known
                if on_progress:
                    on_progress(1)
                continue
            pending.setdefault(digest, []).append(i)
            loaders[digest] = loader
            if len(pending) >= self.batch_size:
                self._encode(pending, loaders, out, errors, on_progress)
                pending, loaders = {}, {}
        if pending:
            self._encode(pending, loaders, out, errors, on_progress)
        return out, errors

    def _key(self, i: int, item: ImageInput, errors: dict[int, str]) -> tuple[str | None, Callable[[], Any]]:
        try:
            if self.encoder.input_kind == "caption":
                return self._caption_key(item)
            if isinstance(item, MissingImage):
                raise MscmtError(item.message)
            if isinstance(item, Caption):
                raise MscmtError(f"image encoder {self.encoder.name!r} reads pixels: give an image, not a caption")
            if self.keep_all and isinstance(item, (str, os.PathLike)):
                return self._file_key(os.fspath(item))
            return image_loader(item)
        except MscmtError as err:
            return self._substitute(i, str(err), errors)

    def _caption_key(self, item: ImageInput) -> tuple[str, Callable[[], Any]]:
        if item is None:
            return caption_key("")
        if isinstance(item, MissingImage):
            raise MscmtError(item.message)
        if not isinstance(item, Caption):
            raise MscmtError(f"this model reads images as captions: give a caption, not {type(item).__name__}")
        return caption_key(item.text)

    def _file_key(self, path: str) -> tuple[str, Callable[[], Any]]:
        """A file's digest, read once per store (training reads every split's images again and again)."""
        digest = self._digests.get(path)
        if digest is None:
            digest = hashlib.sha256(read_image_file(path)).hexdigest()
            self._digests[path] = digest
        return digest, lambda: decode_image(read_image_file(path), path)

    def _substitute(self, i: int, message: str, errors: dict[int, str]) -> tuple[str | None, Callable[[], Any]]:
        if self.policy == "error":
            errors[i] = message
            return None, blank_image
        self.substituted.append(message)
        return self._blank_key()

    def _blank_key(self) -> tuple[str, Callable[[], Any]]:
        return caption_key("") if self.encoder.input_kind == "caption" else (BLANK_DIGEST, blank_image)

    def _known(self, digest: str) -> TokenRef | None:
        known = self._memory.get(digest)
        if known is not None:
            if not self.keep_all:
                self._memory.move_to_end(digest)
            return known
        found: TokenRef | None = self.core.cached_file(digest) if self.on_disk else self.core.cached(digest)
        if found is not None:
            self._remember(digest, found)
        return found

    def _remember(self, digest: str, tokens: TokenRef) -> None:
        """Keep ``tokens``; without ``keep_all`` the least recently used go past ``memory_items`` or ``memory_bytes``."""
        old = self._memory.pop(digest, None)
        if old is not None and not isinstance(old, Path):
            self._memory_used -= old.nbytes
        self._memory[digest] = tokens
        if not isinstance(tokens, Path):
            self._memory_used += tokens.nbytes
        while (
            not self.keep_all and len(self._memory) > 1 and (len(self._memory) > self.memory_items or self._memory_used > self.memory_bytes)
        ):
            _, dropped = self._memory.popitem(last=False)
            if not isinstance(dropped, Path):
                self._memory_used -= dropped.nbytes

    def _encode(
        self,
        pending: dict[str, list[int]],
        loaders: dict[str, Callable[[], Any]],
        out: list[TokenRef | None],
        errors: dict[int, str],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        """Decode and encode one batch of unseen inputs; decoding errors follow the policy.

        Images are decoded one at a time and encoded whenever the decoded pixels would pass
        ``MAX_BATCH_PIXELS`` (:func:`pixel_bounded`), so a batch of large images is never all alive at once.
        """

        def load(digest: str) -> Any:
            try:
                return loaders[digest]()
            except MscmtError as err:
                for i in pending[digest]:
                    key, _ = self._substitute(i, str(err), errors)
                    if key is not None:
                        out[i] = self._blank_tokens()
                if on_progress:
                    on_progress(len(pending[digest]))
                return None

        def keep(digest: str, tokens: np.ndarray) -> None:
            ref: TokenRef = self.cache.feature_path(self.identity(), digest) if self.on_disk else tokens
            self._remember(digest, ref)
            for i in pending[digest]:
                out[i] = ref
            if on_progress:
                on_progress(len(pending[digest]))

        self.core.encode(pending, load, keep)

    def _blank_tokens(self) -> TokenRef:
        digest, loader = self._blank_key()
        known = self._known(digest)
        if known is None:
            found: list[TokenRef] = []

            def keep(blank: str, tokens: np.ndarray) -> None:
                ref: TokenRef = self.cache.feature_path(self.identity(), blank) if self.on_disk else tokens
                self._remember(blank, ref)
                found.append(ref)

            self.core.encode([digest], lambda _: loader(), keep)
            known = found[0]
        return known

    def report(self) -> str | None:
        """One line about inputs replaced by the blank image (policy ``blank``), or None."""
        unique = list(dict.fromkeys(self.substituted))
        if not unique:
            return None
        shown = "; ".join(unique[:SHOWN_EXAMPLES]) + ("; ..." if len(unique) > SHOWN_EXAMPLES else "")
        return f"{len(unique)} missing or unreadable image(s) replaced by a blank image (policy 'blank'): {shown}"


def encode_checked(encoder: Any, contents: list[Any]) -> list[np.ndarray]:
    """Each input's real tokens ``(N_i, D)`` in the encoder's ``token_dtype`` (fresh arrays); an encoder
    whose ``encode`` breaks the contract (:class:`~mscmt_cli.model.components.ImageTokens` of a torch
    encoder, :class:`TokenArrays` of one without torch) raises :class:`MscmtError`."""
    name = f"image encoder {encoder.name!r}: encode()"
    out = encoder.encode(contents)
    try:
        if isinstance(out, TokenArrays):
            out.check(name, encoder.dim, encoder.max_tokens)
            arrays = out
        else:  # checked by ImageTokens.check, the torch twin of TokenArrays.check
            arrays = _torch_arrays(out, name, encoder.dim, encoder.max_tokens)
    except ValueError as err:
        raise MscmtError(str(err)) from None
    if len(arrays) != len(contents):
        raise MscmtError(f"{name} gave {len(arrays)} images for {len(contents)} inputs")
    dtype = token_dtype(encoder)
    return [np.array(t, dtype=dtype) for t in arrays.per_image()]


def _torch_arrays(out: Any, name: str, dim: int, max_tokens: int) -> TokenArrays:
    """A torch encoder's :class:`ImageTokens` checked against its contract, as :class:`TokenArrays`."""
    from mscmt_cli.model.components import ImageTokens

    if not isinstance(out, ImageTokens):
        raise MscmtError(f"{name} must return ImageTokens, got {type(out).__name__}")
    out.check(name, dim, max_tokens)
    return TokenArrays(out.features.detach().cpu().float().numpy(), out.mask.cpu().numpy())
