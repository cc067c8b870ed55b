"""Features of a frozen image encoder, computed once per image and kept on disk.

A feature is stored under ``<cache>/<encoder key>/<digest[:2]>/<digest>.npy``
where the encoder key hashes the encoder's identity (name, weights,
preprocessing) and the digest is the SHA-256 of the image file's bytes (or of
the caption's text). A change of image or encoder therefore never serves a
stale feature. Files are written to a temporary name and renamed, so
concurrent readers and an interrupted build never see a torn file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np
import torch

from mscmt_cli.data.images import pixel_bounded
from mscmt_cli.model.components import ImageEncoder


class RecordSource(Protocol):
    """An image store or a caption store: ``load(id, decode)`` -> record with digest/content."""

    def load(self, image_id: str, decode: bool = True): ...


def encoder_key(identity: str) -> str:
    """Directory name of an encoder's features in the cache."""
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


@dataclass
class FeatureCache:
    """A directory of cached features; ``root=None`` disables caching."""

    root: Path | None

    def _path(self, identity: str, digest: str) -> Path:
        assert self.root is not None
        return Path(self.root) / encoder_key(identity) / digest[:2] / f"{digest}.npy"

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
        if self.root is None:
            return
        path = self._path(identity, digest)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            label = path.parent.parent / "identity.txt"
            if not label.exists():
                label.write_text(identity + "\n", encoding="utf-8")
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, feature.detach().cpu().numpy().astype(np.float32), allow_pickle=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def info(self) -> list[tuple[str, str, int, int]]:
        """(encoder key, encoder identity, number of features, bytes) per encoder directory."""
        if self.root is None or not Path(self.root).is_dir():
            return []
        rows = []
        for d in sorted(p for p in Path(self.root).iterdir() if p.is_dir()):
            files = list(d.glob("*/*.npy"))
            label = d / "identity.txt"
            identity = label.read_text(encoding="utf-8").strip() if label.is_file() else "?"
            rows.append((d.name, identity, len(files), sum(f.stat().st_size for f in files)))
        return rows

    def clear(self) -> int:
        """Delete every cached feature; returns how many encoder directories went."""
        rows = self.info()
        for key, _, _, _ in rows:
            shutil.rmtree(Path(self.root) / key, ignore_errors=True)
        return len(rows)


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
        for start in range(0, len(digests), self.batch_size):
            # decoded one at a time, encoded before their pixels pass MAX_BATCH_PIXELS
            for chunk, contents in pixel_bounded(digests[start:start + self.batch_size], lambda d: self.source.load(todo[d][0]).content):
                self._encode_chunk(chunk, contents, todo, on_progress)

    def _encode_chunk(self, chunk: list[str], contents: list, todo: dict[str, list[str]], on_progress: Callable[[int], None] | None) -> None:
        """Encode one chunk of decoded images (or captions) and keep their features."""
        feats = self.encoder.encode(contents)
        self.encoder_calls += 1
        for digest, feat in zip(chunk, feats):
            self.cache.put(self.identity(), digest, feat)
            for image_id in todo[digest]:
                self._memory[image_id] = feat.clone()
            if on_progress:
                on_progress(len(todo[digest]))

