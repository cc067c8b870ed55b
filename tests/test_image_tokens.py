"""Images as token sequences: the ImageTokens contract, collation, the feature cache, pooled fusions."""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mscmt_cli.backends.arrays import Example, pad_images
from mscmt_cli.backends.batches import collate
from mscmt_cli.data.images import decode_image, read_image_file
from mscmt_cli.errors import MscmtError
from mscmt_cli.features import FeatureCache, TokenStore, encoder_key
from mscmt_cli.model.components import EncodedTweet, ImageEncoder, ImageTokens, feature_identity, masked_mean
from mscmt_cli.model.image_side import TokenArrays
from plugins.fusions import AdditiveFusion, GatedFusion


def training_tokens(encoder: ImageEncoder, directory: Path, cache: FeatureCache, ids: list[str], batch_size: int = 32):
    """The store training reads through (every tweet's tokens kept), and the tokens of images ``<directory>/<id>.jpg``."""
    store = TokenStore(encoder, cache, "error", batch_size, keep_all=True)
    refs, errors = store.features([str(Path(directory) / f"{i}.jpg") for i in ids])
    assert not errors, errors
    return store, refs


def load_rgb(directory: Path, image_id: str) -> Image.Image:
    """The RGB image ``<directory>/<id>.jpg`` as the store decodes it."""
    path = Path(directory) / f"{image_id}.jpg"
    return decode_image(read_image_file(path), str(path))


class MeanColour(ImageEncoder):
    """A pooled fake encoder: the mean colour of the image (one token of size 3)."""

    name = "mean-colour"

    def __init__(self) -> None:
        super().__init__()
        self.dim, self.calls = 3, 0

    def identity(self) -> str:
        return "mean-colour|v1"

    def encode(self, inputs):
        self.calls += 1
        return ImageTokens.pooled(torch.stack([_pixels(img).mean(0) for img in inputs]))


class ColourRows(ImageEncoder):
    """A token fake encoder: 1 to 5 tokens per image (its rows of a 5x5 thumbnail, as many as its red channel says)."""

    name = "colour-rows"
    token_dtype = torch.float16

    def __init__(self) -> None:
        super().__init__()
        self.dim, self.max_tokens, self.calls = 3, 5, 0

    def identity(self) -> str:
        return "colour-rows|v1"

    def encode(self, inputs):
        self.calls += 1
        rows = [_pixels(img, 5).reshape(5, 5, 3).mean(1)[: 1 + int(np.asarray(img)[0, 0, 0]) % 5] for img in inputs]
        n = max(len(r) for r in rows)
        features = torch.zeros(len(rows), n, 3)
        mask = torch.zeros(len(rows), n, dtype=torch.bool)
        for i, r in enumerate(rows):
            features[i, : len(r)], mask[i, : len(r)] = r, True
        return ImageTokens(features, mask)


def _pixels(img: Image.Image, side: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.resize((side, side)), dtype=np.float32)).reshape(-1, 3) / 255.0


def _ids(corpus, n: int = 6) -> list[str]:
    return sorted(p.stem for p in corpus.images_dir.glob("*.jpg"))[:n]


# --- the contract -----------------------------------------------------------------------------------------------------


def test_pooled_tokens_and_per_image():
    tokens = ImageTokens.pooled(torch.arange(6.0).reshape(2, 3))
    assert tokens.features.shape == (2, 1, 3) and tokens.mask.tolist() == [[True], [True]] and len(tokens) == 2
    tokens.check("x", 3, 1)
    ragged = ImageTokens(torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True, False, False]]))
    assert [t.shape[0] for t in ragged.per_image()] == [2, 1]


@pytest.mark.parametrize(
    "features, mask, message",
    [
        (torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool), "features must have shape"),
        (torch.zeros(2, 3, 4), torch.ones(2, 2, dtype=torch.bool), "mask must have shape"),
        (torch.zeros(2, 3, 4), torch.ones(2, 3), "must be bool"),
        (torch.zeros(2, 9, 4), torch.ones(2, 9, dtype=torch.bool), "more than the encoder's max_tokens"),
        (torch.zeros(1, 3, 4), torch.tensor([[True, False, True]]), "real tokens first"),
        (torch.zeros(1, 3, 4), torch.tensor([[False, False, False]]), "first token of every image must be real"),
    ],
)
def test_tokens_breaking_the_contract_are_named(features, mask, message):
    with pytest.raises(ValueError, match=message):
        ImageTokens(features, mask).check("x", 4, 8)
    with pytest.raises(ValueError) as numpy_twin:  # the torch-free TokenArrays keeps the same rules, in the same words
        TokenArrays(features.numpy(), mask.numpy()).check("x", 4, 8)
    with pytest.raises(ValueError) as torch_twin:
        ImageTokens(features, mask).check("x", 4, 8)
    assert str(numpy_twin.value) == str(torch_twin.value).replace("torch.float32", "float32")


def test_masked_mean_of_one_token_is_the_token_bit_for_bit():
    image = torch.randn(4, 1, 7) * 1e3
    assert torch.equal(masked_mean(image, torch.ones(4, 1, dtype=torch.bool)), image[:, 0])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 2**16))
def test_masked_mean_is_the_mean_of_the_real_tokens(counts, seed):
    torch.manual_seed(seed)
    image = torch.randn(len(counts), max(counts), 3)
    mask = torch.arange(max(counts)).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)
    want = torch.stack([image[b, :k].mean(0) for b, k in enumerate(counts)])  # brute force, row by row
    assert torch.allclose(masked_mean(image, mask), want, atol=1e-6)


@pytest.mark.parametrize("cls", [GatedFusion, AdditiveFusion])
def test_pooled_fusions_see_the_masked_mean_of_the_tokens(cls):
    torch.manual_seed(0)
    fusion = cls(4, 3).eval()
    words = torch.randn(2, 5, 4)
    image, mask = torch.randn(2, 3, 3), torch.tensor([[True, True, True], [True, False, False]])
    pooled = torch.stack([image[0].mean(0), image[1, 0]]).unsqueeze(1)  # (B, 1, D)
    assert torch.allclose(fusion(words, image, mask).fused, fusion(words, pooled).fused, atol=1e-6)


# --- collation --------------------------------------------------------------------------------------------------------


def test_collate_pads_tokens_across_a_batch(tmp_path):
    stored = torch.randn(3, 2)
    np.save(tmp_path / "t.npy", stored.numpy().astype(np.float16))
    vector = torch.tensor([1.0, 2.0])  # a (D,) vector: one token, as pooled features were
    image, mask = pad_images([vector, torch.ones(2, 2), tmp_path / "t.npy"])
    assert image.shape == (3, 3, 2) and image.dtype == np.float32
    assert mask.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert image[0, 0].tolist() == vector.tolist() and not image[0, 1:].any()
    np.testing.assert_array_equal(image[2], stored.half().float().numpy())
    with pytest.raises(ValueError, match="differ in size"):
        pad_images([torch.ones(1, 2), torch.ones(1, 3)])


def test_collate_of_pooled_features_is_one_token_each():
    examples = [Example(EncodedTweet([[0, 5, 2]], [(0, 1)]), [], torch.tensor([float(i), 1.0])) for i in range(3)]
    batch = collate(examples, pad_id=1)
    assert batch.image.shape == (3, 1, 2) and batch.image_mask.all()
    assert torch.equal(batch.image[:, 0], torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]))


# --- the feature cache ------------------------------------------------------------------------------------------------


def test_pooled_encoders_keep_their_identity_and_file_format(corpus, tmp_path):
    encoder, ids = MeanColour(), _ids(corpus)
    assert feature_identity(encoder) == encoder.identity() == "mean-colour|v1"
    cache = FeatureCache(tmp_path / "cache")
    _, got = training_tokens(encoder, corpus.images_dir, cache, ids)
    files = sorted((tmp_path / "cache" / encoder_key("mean-colour|v1")).glob("*/*.npy"))
    assert len(files) == len(ids) and all(t.shape == (1, 3) and t.dtype == np.float32 for t in got)
    assert all(np.load(f).shape == (3,) and np.load(f).dtype == np.float32 for f in files), "one (D,) float32 vector per file, as before"


def test_a_cache_written_before_image_tokens_is_served(corpus, tmp_path):
    """Files of the old layout ((D,) float32 under the identity's key) are read, never recomputed."""
    cache, ids = FeatureCache(tmp_path / "cache"), _ids(corpus, 3)
    old = {i: np.array([k, k + 0.5, -k], dtype=np.float32) for k, i in enumerate(ids)}
    for image_id, vector in old.items():  # written as the old FeatureCache.put did
        digest = hashlib.sha256((corpus.images_dir / f"{image_id}.jpg").read_bytes()).hexdigest()
        path = tmp_path / "cache" / encoder_key("mean-colour|v1") / digest[:2]
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / f"{digest}.npy", vector)
    encoder = MeanColour()
    _, got = training_tokens(encoder, corpus.images_dir, cache, ids)
    assert encoder.calls == 0 and [g[0].tolist() for g in got] == [v.tolist() for v in old.values()]
    feats, errors = TokenStore(encoder, cache).features([corpus.images_dir / f"{i}.jpg" for i in ids])
    assert not errors and encoder.calls == 0 and [f.tolist() for f in feats] == [[v.tolist()] for v in old.values()]


def test_token_encoders_are_kept_on_disk_in_float16(corpus, tmp_path):
    encoder, ids = ColourRows(), _ids(corpus)
    identity = feature_identity(encoder)
    assert identity == "colour-rows|v1|tokens<=5x3|float16"
    table, refs = training_tokens(encoder, corpus.images_dir, FeatureCache(tmp_path / "cache"), ids, batch_size=4)
    assert table.encoder_calls == encoder.calls == 2, "6 images in batches of 4"
    assert all(isinstance(r, Path) and r.parent.parent.name == encoder_key(identity) for r in refs), "an id maps to its file"
    direct = encoder.encode([load_rgb(corpus.images_dir, i) for i in ids]).per_image()
    for ref, want in zip(refs, direct):
        stored = np.load(ref)
        assert stored.dtype == np.float16 and stored.shape[-1] == 3
        assert torch.equal(torch.from_numpy(stored).float().reshape(-1, 3), want.half().float())
    image, mask = pad_images(refs)
    assert mask.sum(1).tolist() == [len(w) for w in direct]
    assert all(np.array_equal(image[b, : len(w)], w.half().float().numpy()) for b, w in enumerate(direct))
    again = ColourRows()
    assert training_tokens(again, corpus.images_dir, FeatureCache(tmp_path / "cache"), ids)[1] == refs
    assert again.calls == 0, "a second run reads the token files"


def test_token_encoders_without_a_cache_use_a_scratch_directory(corpus):
    table, refs = training_tokens(ColourRows(), corpus.images_dir, FeatureCache(None), _ids(corpus, 2))
    scratch = Path(str(table.cache.root))
    assert all(isinstance(r, Path) and scratch in r.parents for r in refs) and scratch.is_dir()
    del table
    gc.collect()
    assert not scratch.exists(), "the scratch directory goes with the table"


def test_tagging_store_keeps_tokens_in_float16_within_a_byte_budget(corpus, tmp_path):
    encoder, ids = ColourRows(), _ids(corpus)
    paths = [corpus.images_dir / f"{i}.jpg" for i in ids]
    store = TokenStore(encoder, FeatureCache(tmp_path / "cache"), memory_bytes=3 * 5 * 3 * 2)
    feats, errors = store.features(paths)
    assert not errors and all(f is not None and f.dtype == np.float16 for f in feats)
    assert store._memory_used <= 3 * 5 * 3 * 2 and len(store._memory) < len(ids)
    again = ColourRows()
    cached, _ = TokenStore(again, FeatureCache(tmp_path / "cache")).features(paths)
    assert again.calls == 0 and all(np.array_equal(a, b) for a, b in zip(cached, feats))  # type: ignore[arg-type]


def test_an_encoder_breaking_the_contract_is_named(corpus, tmp_path):
    class Plain(MeanColour):
        def encode(self, inputs):
            return super().encode(inputs).features[:, 0]

    with pytest.raises(MscmtError, match="encode\\(\\) must return ImageTokens, got Tensor"):
        training_tokens(Plain(), corpus.images_dir, FeatureCache(None), _ids(corpus, 1))
