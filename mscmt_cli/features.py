"""Features of a frozen image encoder, computed once per image and kept on disk.

A feature is stored under ``<cache>/<encoder key>/<digest[:2]>/<digest>.npy``
where the encoder key hashes the encoder's identity (name, weights,
preprocessing) and the digest is the SHA-256 of the image file's bytes (or of
the caption's text). A change of image or encoder therefore never serves a
stale feature. A generated caption (:mod:`mscmt_cli.captioning`) is an entry of
the same layout whose files are ``<digest>.txt`` (UTF-8 text) and whose
identity starts with ``captioner|``; ``cache info`` counts and ``cache clear``
removes both kinds. Files are written to a temporary name and renamed, so
concurrent readers and an interrupted build never see a torn file.

``<cache>/<encoder key>/identity.txt`` holds the identity the key hashes; it
is written before the entry's first feature and is how ``cache info`` and
``cache clear`` tell an entry from anything else kept in the same directory.
"""

from __future__ import annotations

import hashlib
import os
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
from mscmt_cli.model.components import ImageEncoder
from mscmt_cli.paths import check_dir_target


class RecordSource(Protocol):
    """An image store or a caption store: ``load(id, decode)`` -> record with digest/content."""

    def load(self, image_id: str, decode: bool = True): ...


KEY_LENGTH = 20
IDENTITY_FILE = "identity.txt"
_KEY = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
_FEATURE = re.compile(r"^[0-9a-f]{64}\.(npy|txt)$|^tmp[^/]*\.tmp$")


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

    def get(self, identity: str, digest: str) -> torch.Tensor | None:
        """The cached feature ``(D,)``, or None."""
        if self.root is None:
            return None
        path = self._path(identity, digest)
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError):
            return None

    def put(self, identity: str, digest: str, feature: torch.Tensor) -> None:
        """Store one feature atomically (temporary file, then rename)."""
        if self.root is not None:
            array = feature.detach().cpu().numpy().astype(np.float32)
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
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

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
    entry.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=entry, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(identity + "\n")
        os.replace(tmp, label)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
                    f.unlink(missing_ok=True)
            _rmdir_if_empty(shard)
        elif shard.name.endswith(".tmp") and shard.is_file():
            shard.unlink(missing_ok=True)
    if not any(p.name != IDENTITY_FILE for p in d.iterdir()):
        (d / IDENTITY_FILE).unlink(missing_ok=True)
        _rmdir_if_empty(d)


def _rmdir_if_empty(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:  # not empty: something that is not ours stays
        pass


@dataclass
class ImageFeatures:
    """Image id -> feature, through memory, then the disk cache, then the encoder."""

    encoder: ImageEncoder
    source: RecordSource | None
    cache: FeatureCache
    batch_size: int = 32
    _memory: dict[str, torch.Tensor] = field(default_factory=dict)
    _identity: str | None = None
    encoder_calls: int = 0

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def identity(self) -> str:
        if self._identity is None:
            self._identity = self.encoder.identity()
        return self._identity

    def lookup(self, image_ids: list[str]) -> torch.Tensor:
        """Features ``(n, D)`` for ``image_ids`` (zeros of width 0 without an image encoder)."""
        if self.encoder.input_kind == "none" or self.source is None:
            return torch.zeros(len(image_ids), self.encoder.dim)
        self.precompute(image_ids)
        return torch.stack([self._memory[i] for i in image_ids])

    def precompute(self, image_ids: Iterable[str], on_progress: Callable[[int], None] | None = None) -> None:
        """Make sure every id's feature is in memory, computing the missing ones in batches."""
        if self.encoder.input_kind == "none" or self.source is None:
            return
        todo: dict[str, list[str]] = {}  # digest -> ids
        pending: list[str] = [i for i in dict.fromkeys(image_ids) if i not in self._memory]
        for image_id in pending:
            digest = self.source.load(image_id, decode=False).digest
            cached = self.cache.get(self.identity(), digest)
            if cached is not None:
                self._memory[image_id] = cached
                if on_progress:
                    on_progress(1)
            else:
                todo.setdefault(digest, []).append(image_id)
        self._compute(todo, on_progress)

    def _compute(self, todo: dict[str, list[str]], on_progress: Callable[[int], None] | None) -> None:
        digests = list(todo)
        source = self.source
        assert source is not None  # precompute returns early without one
        for start in range(0, len(digests), self.batch_size):
            # decoded one at a time, encoded before their pixels pass MAX_BATCH_PIXELS
            for chunk, contents in pixel_bounded(digests[start : start + self.batch_size], lambda d: source.load(todo[d][0]).content):
                self._encode_chunk(chunk, contents, todo, on_progress)

    def _encode_chunk(
        self, chunk: list[str], contents: list, todo: dict[str, list[str]], on_progress: Callable[[int], None] | None
    ) -> None:
        """Encode one chunk of decoded images (or captions) and keep their features."""
        feats = self.encoder.encode(contents)
        self.encoder_calls += 1
        for digest, feat in zip(chunk, feats):
            self.cache.put(self.identity(), digest, feat)
            for image_id in todo[digest]:
                self._memory[image_id] = feat.clone()
            if on_progress:
                on_progress(len(todo[digest]))
