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
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from mscmt_cli.data.images import pixel_bounded
from mscmt_cli.errors import MscmtError
from mscmt_cli.model.components import ImageEncoder, ImageTokens, feature_identity
from mscmt_cli.paths import check_dir_target, remove_empty_dir, remove_file, write_atomic

#: One image's tokens: in memory ``(N_i, D)`` (a ``(D,)`` vector is one token), or the cached ``.npy`` file holding them.
TokenRef = torch.Tensor | Path


class RecordSource(Protocol):
    """An image store or a caption store: ``load(id, decode)`` -> record with digest/content."""

    def load(self, image_id: str, decode: bool = True): ...


KEY_LENGTH = 20
IDENTITY_FILE = "identity.txt"
_KEY = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
_FEATURE = re.compile(r"^[0-9a-f]{64}\.(npy|txt)$|^tmp[^/]*\.tmp$|^\.[0-9a-f]{64}\.(npy|txt)\.[^/]*\.tmp$")


def read_tokens(path: Path) -> torch.Tensor:
    """The tokens ``(N_i, D)`` stored in a cached ``.npy`` file, in their stored dtype."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise MscmtError(f"{path}: unreadable cached image features ({err}); run mscmt cache clear") from None
    tokens = torch.from_numpy(array)
    return tokens.unsqueeze(0) if tokens.dim() == 1 else tokens


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

    def get(self, identity: str, digest: str, dim: int | None = None, max_tokens: int = 1) -> torch.Tensor | None:
        """The cached tokens ``(N_i, D)`` (stored dtype), or None (absent, unreadable, or, given
        ``dim``, not ``D == dim`` and ``N_i <= max_tokens``)."""
        if self.root is None:
            return None
        try:
            tokens = torch.from_numpy(np.load(self._path(identity, digest), allow_pickle=False))
        except (OSError, ValueError):
            return None
        if dim is not None and not _shape_fits(tuple(tokens.shape), dim, max_tokens):
            return None
        return tokens.unsqueeze(0) if tokens.dim() == 1 else tokens

    def file(self, identity: str, digest: str, dim: int, max_tokens: int, dtype: torch.dtype) -> Path | None:
        """The cached ``.npy`` of one image's tokens when it is readable and has their shape and
        dtype (only its header is read), else None."""
        if self.root is None:
            return None
        path = self._path(identity, digest)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            fits = _shape_fits(tuple(array.shape), dim, max_tokens) and array.dtype == torch.empty(0, dtype=dtype).numpy().dtype
            del array
        except (OSError, ValueError):
            return None
        return path if fits else None

    def put(self, identity: str, digest: str, tokens: torch.Tensor, dtype: torch.dtype = torch.float32) -> None:
        """Store one image's tokens ``(N_i, D)`` (or a ``(D,)`` vector) as ``dtype``, atomically
        (temporary file, then rename); one token is stored as ``(D,)``."""
        if self.root is not None:
            array = tokens.detach().cpu().to(dtype).numpy()
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
class FeatureEncoder:
    """Digest -> tokens through the disk cache, else the frozen encoder: the one encode path of training and tagging.

    Training (:class:`ImageFeatures`, ``mscmt cache build``) and tagging
    (:class:`~mscmt_cli.tagging.images.FeatureStore`) both read and write the
    cache through this class, so they share one identity per encoder (its
    entry in the cache), one validity rule for a cached file, and one way of
    encoding: distinct digests at most ``batch_size`` at a time, decoded one by
    one into chunks of at most ``MAX_BATCH_PIXELS`` (:func:`pixel_bounded`),
    each chunk one call of the encoder (counted in ``encoder_calls``), each
    image's tokens ``(N_i, D)`` written to the cache in ``token_dtype``.
    """

    encoder: ImageEncoder
    cache: FeatureCache
    batch_size: int = 32
    encoder_calls: int = 0
    _identity: str | None = None

    def identity(self) -> str:
        """The encoder's :func:`feature_identity` (its cache entry is ``encoder_key(identity)``)."""
        if self._identity is None:
            self._identity = feature_identity(self.encoder)
        return self._identity

    def cached(self, digest: str) -> torch.Tensor | None:
        """The cached tokens ``(N_i, D)`` in ``token_dtype``, or None (absent, unreadable, not this encoder's shape)."""
        enc = self.encoder
        tokens = self.cache.get(self.identity(), digest, enc.dim, enc.max_tokens)
        return None if tokens is None else tokens.to(enc.token_dtype)

    def cached_file(self, digest: str) -> Path | None:
        """The cached ``.npy`` of a digest's tokens when it has this encoder's shape and dtype, else None."""
        enc = self.encoder
        return self.cache.file(self.identity(), digest, enc.dim, enc.max_tokens, enc.token_dtype)

    def encode(self, digests: Iterable[str], load: Callable[[str], Any], on_encoded: Callable[[str, torch.Tensor], None]) -> None:
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
                    self.cache.put(self.identity(), digest, tokens, self.encoder.token_dtype)
                    on_encoded(digest, tokens)


class OnFeatureEncoder:
    """What training's :class:`ImageFeatures` and tagging's ``FeatureStore`` share: the one
    :class:`FeatureEncoder` under them (``_core``, set in their ``__post_init__``)."""

    _core: FeatureEncoder | None

    @property
    def core(self) -> FeatureEncoder:
        """The cache-and-encoder layer that training and tagging share."""
        assert self._core is not None
        return self._core

    @property
    def encoder_calls(self) -> int:
        """Calls of the encoder so far (one per batch computed)."""
        return self.core.encoder_calls


@dataclass
class ImageFeatures(OnFeatureEncoder):
    """Image id -> its tokens, through memory, then the disk cache, then the encoder (:class:`FeatureEncoder`).

    A pooled encoder's features (one token each) are kept in memory. A token
    encoder's (``max_tokens > 1``) stay on disk, in the cache or, with caching
    off, in a scratch directory removed with this object: an id maps to its
    ``.npy`` file, read when its batch is collated, so memory stays bounded
    whatever the number of tokens (CLIP ViT-L/14 patches are 0.5 MB per image
    in float16).
    """

    encoder: ImageEncoder
    source: RecordSource | None
    cache: FeatureCache
    batch_size: int = 32
    _memory: dict[str, TokenRef] = field(default_factory=dict)
    _scratch: tempfile.TemporaryDirectory[str] | None = None
    _core: FeatureEncoder | None = None

    def __post_init__(self) -> None:
        if self.on_disk and self.cache.root is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="mscmt-image-tokens-")
            self.cache = FeatureCache(Path(self._scratch.name))
        self._core = FeatureEncoder(self.encoder, self.cache, self.batch_size)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def on_disk(self) -> bool:
        """Whether tokens are kept as files (token encoders) rather than in memory (pooled encoders)."""
        return self.encoder.max_tokens > 1

    def identity(self) -> str:
        return self.core.identity()

    def lookup(self, image_ids: list[str]) -> list[TokenRef]:
        """Each id's tokens ``(N_i, D)`` or their cached file (one token of width 0 without an image encoder)."""
        if self.encoder.input_kind == "none" or self.source is None:
            return [torch.zeros(1, self.encoder.dim) for _ in image_ids]
        self.precompute(image_ids)
        return [self._memory[i] for i in image_ids]

    def precompute(self, image_ids: Iterable[str], on_progress: Callable[[int], None] | None = None) -> None:
        """Make sure every id's tokens are known, computing the missing ones in batches."""
        if self.encoder.input_kind == "none" or self.source is None:
            return
        todo: dict[str, list[str]] = {}  # digest -> ids
        pending: list[str] = [i for i in dict.fromkeys(image_ids) if i not in self._memory]
        for image_id in pending:
            digest = self.source.load(image_id, decode=False).digest
            cached = self.core.cached_file(digest) if self.on_disk else self.core.cached(digest)
            if cached is not None:
                self._memory[image_id] = cached
                if on_progress:
                    on_progress(1)
            else:
                todo.setdefault(digest, []).append(image_id)
        source = self.source

        def keep(digest: str, tokens: torch.Tensor) -> None:
            ref: TokenRef = self.cache.feature_path(self.identity(), digest) if self.on_disk else tokens
            for image_id in todo[digest]:
                self._memory[image_id] = ref
            if on_progress:
                on_progress(len(todo[digest]))

        self.core.encode(todo, lambda d: source.load(todo[d][0]).content, keep)


def encode_checked(encoder: ImageEncoder, contents: list[Any]) -> list[torch.Tensor]:
    """Each input's real tokens ``(N_i, D)`` in the encoder's ``token_dtype`` (fresh tensors);
    an encoder that breaks the :class:`ImageTokens` contract raises :class:`MscmtError`."""
    out = encoder.encode(contents)
    if not isinstance(out, ImageTokens):
        raise MscmtError(f"image encoder {encoder.name!r}: encode() must return ImageTokens, got {type(out).__name__}")
    try:
        out.check(f"image encoder {encoder.name!r}: encode()", encoder.dim, encoder.max_tokens)
    except ValueError as err:
        raise MscmtError(str(err)) from None
    if len(out) != len(contents):
        raise MscmtError(f"image encoder {encoder.name!r}: encode() gave {len(out)} images for {len(contents)} inputs")
    return [t.detach().cpu().to(encoder.token_dtype).clone() for t in out.per_image()]
