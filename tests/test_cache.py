"""The image feature cache: keys, atomic files, and a second run that never calls the image model."""

from __future__ import annotations

import numpy as np
import torch

from mscmt_cli.data.images import ImageStore
from mscmt_cli.features import FeatureCache, ImageFeatures
from mscmt_cli.model.components import ImageEncoder, ImageTokens
from tests.cli_support import train_args


class CountingEncoder(ImageEncoder):
    """A fake frozen encoder: mean colour of the image, counting its calls."""

    name = "counting"
    input_kind = "pixels"

    def __init__(self, tag: str = "v1") -> None:
        super().__init__()
        self.dim, self.tag, self.calls = 3, tag, 0

    def identity(self) -> str:
        return f"counting|{self.tag}"

    def encode(self, inputs):
        self.calls += 1
        means = [torch.from_numpy(np.asarray(img.resize((4, 4)), dtype=np.float32)).reshape(-1, 3).mean(0) for img in inputs]
        return ImageTokens.pooled(torch.stack(means))


def test_second_pass_reads_the_cache(corpus, tmp_path):
    ids = sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))[:10]
    cache = FeatureCache(tmp_path / "cache")
    first_enc = CountingEncoder()
    first = ImageFeatures(first_enc, ImageStore(corpus.images_dir), cache, batch_size=4).lookup(ids)
    assert first_enc.calls == 3
    again_enc = CountingEncoder()
    again = ImageFeatures(again_enc, ImageStore(corpus.images_dir), cache).lookup(ids)
    assert again_enc.calls == 0 and all(torch.equal(a, b) for a, b in zip(first, again))
    other = CountingEncoder(tag="v2")  # another encoder identity never gets v1's features
    ImageFeatures(other, ImageStore(corpus.images_dir), cache).lookup(ids[:2])
    assert other.calls == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert sorted(n for _, _, n, _ in cache.info()) == [2, 10]


def test_changed_image_is_recomputed(corpus, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    src = sorted(corpus.images_dir.glob("*.jpg"))
    (images / "a.jpg").write_bytes(src[0].read_bytes())
    cache = FeatureCache(tmp_path / "cache")
    before = ImageFeatures(CountingEncoder(), ImageStore(images), cache).lookup(["a"])
    (images / "a.jpg").write_bytes(src[1].read_bytes())
    enc = CountingEncoder()
    after = ImageFeatures(enc, ImageStore(images), cache).lookup(["a"])
    assert enc.calls == 1 and not torch.equal(before[0], after[0])


def test_second_train_never_calls_the_image_model(corpus, tiny, mscmt, tmp_path, monkeypatch):
    from plugins.image_encoders import ClipVitL14Encoder

    cache = tmp_path / "cache"
    built = mscmt(["cache", "build", "--image", "clip-vit-l14", *corpus.args(), "--cache-dir", cache, *tiny.model_path_args()])
    assert built.code == 0, built.err
    calls = []
    original = ClipVitL14Encoder.encode
    monkeypatch.setattr(ClipVitL14Encoder, "encode", lambda self, x: calls.append(len(x)) or original(self, x))
    monkeypatch.setenv("MSCMT_CACHE_DIR", str(cache))
    for name in ("one", "two"):
        result = mscmt(train_args(corpus, tmp_path / name, tiny, image="clip-vit-l14", fusion=None))
        assert result.code == 0, result.err
    assert calls == []
    info = mscmt(["cache", "info", "--cache-dir", cache])
    assert info.code == 0 and "clip-vit-l14|" in info.out
    cleared = mscmt(["cache", "clear", "--cache-dir", cache])
    assert cleared.code == 0 and "removed the features of 1 encoder(s)" in cleared.out
